package engine

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/rotorhq/rotor/internal/store"
)

// InProgressError is ErrInProgress with the holder's identity.
type InProgressError struct {
	Credential string
	Holder     string
	Until      time.Time
}

func (e *InProgressError) Error() string {
	return fmt.Sprintf("%s: %v (held by %s until %s); wait for it, or run `rotor resume` after it stops",
		e.Credential, ErrInProgress, e.Holder, e.Until.Format(time.RFC3339))
}

func (e *InProgressError) Unwrap() error { return ErrInProgress }

// lock takes the credential's lease. A lease left by a process on this
// host that no longer exists (SIGKILL, OOM) is taken over at once instead
// of making the next run wait for it to expire.
func (e *Engine) lock(ctx context.Context, name string) (release func(), err error) {
	p := store.AcquireLeaseParams{Name: "credential/" + name, Holder: e.Holder, TTL: e.LeaseTTL, Now: e.now()}
	l, err := e.Store.AcquireLease(ctx, p)
	if errors.Is(err, store.ErrLeaseHeld) && l != nil && deadLocalHolder(l.Holder) {
		p.TakeOverFrom = l.Holder
		l, err = e.Store.AcquireLease(ctx, p)
	}
	if err != nil {
		if errors.Is(err, store.ErrLeaseHeld) && l != nil {
			return nil, &InProgressError{Credential: name, Holder: l.Holder, Until: l.ExpiresAt}
		}
		return nil, fmt.Errorf("%s: take lease: %w", name, err)
	}
	return func() {
		e.Store.ReleaseLease(context.Background(), store.ReleaseLeaseParams{Name: p.Name, Holder: e.Holder})
	}, nil
}

// renew keeps the lease alive until stop is called; losing it cancels the
// rotation so two processes never act on one credential.
func (e *Engine) renew(ctx context.Context, name string, cancel context.CancelCauseFunc) (stop func()) {
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(e.LeaseTTL / 3)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-t.C:
				_, err := e.Store.RenewLease(ctx, store.RenewLeaseParams{Name: "credential/" + name, Holder: e.Holder, TTL: e.LeaseTTL, Now: e.now()})
				if errors.Is(err, store.ErrLeaseLost) {
					cancel(fmt.Errorf("lost the lease on %s to another process", name))
					return
				}
			}
		}
	}()
	return func() { close(done); <-finished }
}

// deadLocalHolder reports whether holder ("host/pid/nonce") names a
// process on this host that is gone.
func deadLocalHolder(holder string) bool {
	parts := strings.Split(holder, "/")
	if len(parts) != 3 {
		return false
	}
	host, _ := os.Hostname()
	if parts[0] != host {
		return false
	}
	pid, err := strconv.Atoi(parts[1])
	if err != nil || pid <= 0 {
		return false
	}
	if pid == os.Getpid() {
		return false
	}
	err = syscall.Kill(pid, 0)
	return errors.Is(err, syscall.ESRCH)
}
