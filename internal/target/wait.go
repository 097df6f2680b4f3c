package target

import (
	"context"
	"fmt"
	"strings"
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

// States are the states a deploy, run or pipeline was seen in, each once
// and in order, for messages ("QUEUED → BUILDING → READY").
type States []string

// See records state unless it is empty or the same as the last one.
func (s *States) See(state string) {
	if state != "" && s.Last() != state {
		*s = append(*s, state)
	}
}

// Last is the state seen last, "" before any.
func (s States) Last() string {
	if len(s) == 0 {
		return ""
	}
	return s[len(s)-1]
}

func (s States) String() string { return strings.Join(s, " → ") }
