package exec

import (
	"time"

	"github.com/rotorhq/rotor/internal/target"
)

// SetAfter replaces the timer Reload waits reload_wait with, so tests see
// how long it waits and decide when the wait ends.
func SetAfter(tg target.Target, after func(time.Duration) <-chan time.Time) {
	t, ok := tg.(*Target)
	if !ok {
		panic("not an exec target")
	}
	t.settle.After = after
}
