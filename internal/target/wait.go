package target

import (
	"context"
	"fmt"
	"time"
)

// Helpers for reloads that wait until a deploy has finished (see
// Reloader): they poll every reload_poll until the engine's reload_timeout
// ends ctx.

// Sleep waits d, or until ctx ends (then it returns ctx.Err()).
func Sleep(ctx context.Context, d time.Duration) error {
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-tm.C:
		return nil
	}
}

// Elapsed is how long a wait that began at start has taken by now, as
// messages show it: whole seconds, or milliseconds under a second.
func Elapsed(start, now time.Time) time.Duration {
	d := now.Sub(start)
	if d >= time.Second {
		return d.Round(time.Second)
	}
	return d.Round(time.Millisecond)
}

// ParseReloadPoll reads a target's reload_poll option; def when it is not
// set.
func ParseReloadPoll(raw string, def time.Duration) (time.Duration, error) {
	if raw == "" {
		return def, nil
	}
	d, err := time.ParseDuration(raw)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("reload_poll %q is not a positive duration like 10s or 1m", raw)
	}
	return d, nil
}
