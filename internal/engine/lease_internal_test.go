package engine

import (
	"context"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/rotorhq/rotor/internal/store"
	"github.com/rotorhq/rotor/internal/store/sqlite"
)

// countedLeases counts the store's lease reads.
type countedLeases struct {
	store.Store
	reads atomic.Int64
}

func (c *countedLeases) GetLease(ctx context.Context, p store.GetLeaseParams) (*store.Lease, error) {
	c.reads.Add(1)
	return c.Store.GetLease(ctx, p)
}

// TestHoldsAsksTheStoreOnlyWhenTheLeaseMayHavePassed: a run whose lease
// has more than half its TTL left cannot have lost it, so the check before
// an action reads nothing; past that (a pause, renewals failing) it reads
// the lease and sees that another process took it over.
func TestHoldsAsksTheStoreOnlyWhenTheLeaseMayHavePassed(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "state.db"))
	require.NoError(t, err)
	t.Cleanup(func() { st.Close() })
	c := &countedLeases{Store: st}
	now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	e := &Engine{Store: c, Holder: "a", LeaseTTL: 30 * time.Second, Now: func() time.Time { return now }}
	l, err := st.AcquireLease(ctx, store.AcquireLeaseParams{Name: "credential/app", Holder: "a", TTL: e.LeaseTTL, Now: now})
	require.NoError(t, err)
	h := newHeldLease(l, e.LeaseTTL)

	require.NoError(t, e.holds(ctx, h))
	now = now.Add(14 * time.Second)
	require.NoError(t, e.holds(ctx, h))
	require.Zero(t, c.reads.Load(), "more than half the TTL left: nothing to ask")

	now = now.Add(2 * time.Second)
	require.NoError(t, e.holds(ctx, h))
	require.EqualValues(t, 1, c.reads.Load(), "less than half left: the store is asked")

	// Paused past the lease: another process took it over.
	now = now.Add(time.Minute)
	_, err = st.AcquireLease(ctx, store.AcquireLeaseParams{Name: "credential/app", Holder: "b", TTL: e.LeaseTTL, Now: now})
	require.NoError(t, err)
	require.ErrorIs(t, e.holds(ctx, h), store.ErrFenced)

	// A renewal moves what the run knows; a nil lease (no fence) holds.
	h.expires.Store(now.Add(e.LeaseTTL).UnixNano())
	reads := c.reads.Load()
	require.NoError(t, e.holds(ctx, h), "the run believes its renewal")
	require.Equal(t, reads, c.reads.Load())
	require.NoError(t, e.holds(ctx, nil))
}
