package webhook

import "time"

// SetAfter replaces the timer Reload waits reload_wait with, so tests see
// how long it waits and decide when the wait ends.
func (t *Target) SetAfter(after func(time.Duration) <-chan time.Time) { t.settle.After = after }
