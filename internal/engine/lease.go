package engine

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
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
func (e *Engine) lock(ctx context.Context, name string) (*store.Lease, func() error, error) {
	// Deferred, like the release (durableBefore): the lease keeps other
	// processes out while this one lives, and every action it allows comes
	// after a durable record, which makes the lease durable too.
	p := store.AcquireLeaseParams{Name: leaseName(name), Holder: e.Holder, TTL: e.LeaseTTL, Now: e.now(), Deferred: true}
	l, err := e.Store.AcquireLease(ctx, p)
	if errors.Is(err, store.ErrLeaseHeld) && l != nil && deadLocalHolder(l.Holder) {
		p.TakeOverFrom = l.Holder
		l, err = e.Store.AcquireLease(ctx, p)
		e.auditTakeover(ctx, name, p.TakeOverFrom, err)
	}
	if err != nil {
		if errors.Is(err, store.ErrLeaseHeld) && l != nil {
			return nil, nil, &InProgressError{Credential: name, Holder: l.Holder, Until: l.ExpiresAt}
		}
		return nil, nil, fmt.Errorf("%s: take lease: %w", name, err)
	}
	return l, e.releaser(ctx, name), nil
}

// releaser returns what lets the credential's lease go.
func (e *Engine) releaser(ctx context.Context, name string) func() error {
	return func() error {
		// Released even when the run was cancelled: the next run should not
		// have to wait for the lease to expire.
		if err := e.Store.ReleaseLease(context.WithoutCancel(ctx), store.ReleaseLeaseParams{Name: leaseName(name), Holder: e.Holder, Deferred: true}); err != nil {
			return fmt.Errorf("%s: the lease could not be released, so the next run waits until it expires (within %s): %w", name, e.LeaseTTL, err)
		}
		return nil
	}
}

func leaseName(credential string) string { return "credential/" + credential }

// heldLease is what a run knows of its lease without asking the store:
// its fence, and until when the last acquisition or renewal made it valid
// by this process's clock.
type heldLease struct {
	fence   store.Fence
	ttl     time.Duration
	expires atomic.Int64 // Unix nanoseconds
}

func newHeldLease(l *store.Lease, ttl time.Duration) *heldLease {
	h := &heldLease{fence: l.Fence(), ttl: ttl}
	h.expires.Store(l.ExpiresAt.UnixNano())
	return h
}

// renew keeps the lease alive until stop is called; losing it cancels the
// rotation so two processes never act on one credential. A renewal that
// fails is tried again at the next tick as long as the lease is still
// valid then; once it would expire first, the rotation is cancelled too.
// Each renewal moves held's expiry.
func (e *Engine) renew(ctx context.Context, l *store.Lease, held *heldLease, cancel context.CancelCauseFunc) (stop func()) {
	done := make(chan struct{})
	finished := make(chan struct{})
	period := e.LeaseTTL / 3
	go func() {
		defer close(finished)
		tick, stopTick := e.Tick(period)
		defer stopTick()
		expires := l.ExpiresAt
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-tick:
				renewed, err := e.Store.RenewLease(ctx, store.RenewLeaseParams{Name: l.Name, Holder: e.Holder, TTL: e.LeaseTTL, Now: e.now()})
				switch {
				case err == nil:
					expires = renewed.ExpiresAt
					held.expires.Store(expires.UnixNano())
				case errors.Is(err, store.ErrLeaseLost):
					cancel(fmt.Errorf("lost the lease %s to another process", l.Name))
					return
				case ctx.Err() != nil:
					return
				case !e.now().Add(period).Before(expires):
					cancel(fmt.Errorf("the lease %s could not be renewed before it expires: %w", l.Name, err))
					return
				default:
					e.Logger.Warn("lease renewal failed; trying again", "lease", l.Name, "expires", expires, "error", err)
				}
			}
		}
	}()
	return func() { close(done); <-finished }
}

// tickerTick is the default Engine.Tick.
func tickerTick(d time.Duration) (<-chan time.Time, func()) {
	t := time.NewTicker(d)
	return t.C, t.Stop
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

// stillHeld checks, before an action outside the store (a password change,
// a write to a target, a retirement), that fence's lease is still this
// holder's: a process that was paused past its lease and resumed must not
// act on a credential another process has taken over. Store writes check
// the fence themselves; this closes the gap for everything else up to the
// next renewal.
func (e *Engine) stillHeld(ctx context.Context, fence store.Fence) error {
	if fence.Lease == "" {
		return nil
	}
	l, err := e.Store.GetLease(ctx, store.GetLeaseParams{Name: fence.Lease})
	if err != nil {
		return fmt.Errorf("check the lease %s: %w", fence.Lease, err)
	}
	if l.Holder != e.Holder || l.Token != fence.Token || !l.ExpiresAt.After(e.now()) {
		return fmt.Errorf("%w (now held by %s)", store.ErrFenced, l.Holder)
	}
	return nil
}

// holds is stillHeld for a run that renews its lease itself: while more
// than half the lease's TTL is left by this process's clock since the last
// renewal, no other process can have it — a lease passes to another
// holder only once it expired, or when its holder's process is gone — so
// the store is not asked. A process paused past that point (or whose
// renewals fail) asks, as stillHeld does. The clocks of two hosts sharing
// a store would have to differ by more than half the TTL to tell these
// apart, and then the lease itself would not keep them apart either.
func (e *Engine) holds(ctx context.Context, h *heldLease) error {
	if h == nil || time.Unix(0, h.expires.Load()).Sub(e.now()) > h.ttl/2 {
		return nil
	}
	return e.stillHeld(ctx, h.fence)
}
