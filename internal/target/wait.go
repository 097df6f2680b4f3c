package target

import (
	"context"
	"fmt"
	"strings"
	"sync"
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

// Settle is a reload's optional pause after the consumer acknowledged the
// change — the exec target's reload_command exited 0, a webhook receiver
// answered 2xx — for consumers that act on it asynchronously (a signal, a
// queued job): the engine must not count the reload finished, and so start
// the old role's grace period, before they have moved. It remembers, per
// rotation, when the acknowledgement came, so a Reload called again (a
// resume after the wait was cut short) waits only what is left.
type Settle struct {
	// Wait is the pause; 0 means none.
	Wait time.Duration
	// Now is the target's clock.
	Now func() time.Time
	// After is time.After; tests replace it to see and control the wait.
	After func(time.Duration) <-chan time.Time

	mu    sync.Mutex
	acked map[string]time.Time
}

// ParseSettle reads a reload_wait option: "" is 0; otherwise a
// non-negative duration.
func ParseSettle(raw string) (time.Duration, error) {
	if raw == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(raw)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("reload_wait %q is not a duration like 20s or 2m", raw)
	}
	return d, nil
}

// Ack records that the consumer acknowledged rotation's change now, unless
// an earlier acknowledgement is recorded; it returns the recorded time.
func (s *Settle) Ack(rotation string) time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	if at, ok := s.acked[rotation]; ok {
		return at
	}
	if s.acked == nil {
		s.acked = map[string]time.Time{}
	}
	at := s.Now()
	s.acked[rotation] = at
	return at
}

// Acked reports when rotation's change was acknowledged in this process.
func (s *Settle) Acked(rotation string) (time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	at, ok := s.acked[rotation]
	return at, ok
}

// Until waits what is left of Wait since at. When ctx ends first it
// returns what was left then and ctx.Err().
func (s *Settle) Until(ctx context.Context, at time.Time) (time.Duration, error) {
	left := s.Wait - s.Now().Sub(at)
	if left <= 0 {
		return 0, nil
	}
	after := s.After
	if after == nil {
		after = time.After
	}
	select {
	case <-ctx.Done():
		return left, ctx.Err()
	case <-after(left):
		return 0, nil
	}
}
