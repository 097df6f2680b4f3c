package storetest

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/rotorhq/rotor/internal/store"
)

const ttl = time.Minute

func acquire(t *testing.T, s store.Store, holder string, now time.Time) (*store.Lease, error) {
	t.Helper()
	return s.AcquireLease(t.Context(), store.AcquireLeaseParams{Name: "app-db", Holder: holder, TTL: ttl, Now: now})
}

func exerciseLease(t *testing.T, newStore func(t *testing.T) store.Store) {
	t.Run("FreeIsGranted", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		_, err := s.GetLease(t.Context(), store.GetLeaseParams{Name: "app-db"})
		require.ErrorIs(t, err, store.ErrNotFound)

		l, err := acquire(t, s, "a", t0)
		require.NoError(t, err)
		require.Equal(t, "app-db", l.Name)
		require.Equal(t, "a", l.Holder)
		requireTime(t, t0.Add(ttl), l.ExpiresAt)

		got, err := s.GetLease(t.Context(), store.GetLeaseParams{Name: "app-db"})
		require.NoError(t, err)
		require.Equal(t, l, got)
	})

	t.Run("HeldIsRefusedWithCurrentHolder", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		_, err := acquire(t, s, "a", t0)
		require.NoError(t, err)

		cur, err := acquire(t, s, "b", t0.Add(ttl-time.Nanosecond))
		require.ErrorIs(t, err, store.ErrLeaseHeld)
		require.NotNil(t, cur, "the current lease tells the caller who holds it")
		require.Equal(t, "a", cur.Holder)
		requireTime(t, t0.Add(ttl), cur.ExpiresAt)

		got, err := s.GetLease(t.Context(), store.GetLeaseParams{Name: "app-db"})
		require.NoError(t, err)
		require.Equal(t, "a", got.Holder)
	})

	t.Run("SameHolderRenews", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		_, err := acquire(t, s, "a", t0)
		require.NoError(t, err)
		l, err := acquire(t, s, "a", t0.Add(time.Second))
		require.NoError(t, err)
		requireTime(t, t0.Add(time.Second+ttl), l.ExpiresAt)
	})

	t.Run("ExpiredIsGranted", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		_, err := acquire(t, s, "a", t0)
		require.NoError(t, err)
		// The lease ends at, not after, its expiry instant.
		l, err := acquire(t, s, "b", t0.Add(ttl))
		require.NoError(t, err)
		require.Equal(t, "b", l.Holder)
		requireTime(t, t0.Add(2*ttl), l.ExpiresAt)
	})

	t.Run("TakeOverFromCurrentHolder", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		_, err := acquire(t, s, "a", t0)
		require.NoError(t, err)

		_, err = s.AcquireLease(t.Context(), store.AcquireLeaseParams{
			Name: "app-db", Holder: "b", TTL: ttl, Now: t0, TakeOverFrom: "someone-else",
		})
		require.ErrorIs(t, err, store.ErrLeaseHeld)

		l, err := s.AcquireLease(t.Context(), store.AcquireLeaseParams{
			Name: "app-db", Holder: "b", TTL: ttl, Now: t0, TakeOverFrom: "a",
		})
		require.NoError(t, err)
		require.Equal(t, "b", l.Holder)
	})

	t.Run("NamesAreIndependent", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		_, err := acquire(t, s, "a", t0)
		require.NoError(t, err)
		l, err := s.AcquireLease(t.Context(), store.AcquireLeaseParams{Name: "other-db", Holder: "b", TTL: ttl, Now: t0})
		require.NoError(t, err)
		require.Equal(t, "b", l.Holder)
	})

	t.Run("Renew", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		ctx := t.Context()
		_, err := s.RenewLease(ctx, store.RenewLeaseParams{Name: "app-db", Holder: "a", TTL: ttl, Now: t0})
		require.ErrorIs(t, err, store.ErrLeaseLost, "renewing a lease never taken")

		_, err = acquire(t, s, "a", t0)
		require.NoError(t, err)

		_, err = s.RenewLease(ctx, store.RenewLeaseParams{Name: "app-db", Holder: "b", TTL: ttl, Now: t0})
		require.ErrorIs(t, err, store.ErrLeaseLost)
		got, err := s.GetLease(ctx, store.GetLeaseParams{Name: "app-db"})
		require.NoError(t, err)
		require.Equal(t, "a", got.Holder)
		requireTime(t, t0.Add(ttl), got.ExpiresAt)

		l, err := s.RenewLease(ctx, store.RenewLeaseParams{Name: "app-db", Holder: "a", TTL: 2 * ttl, Now: t0.Add(time.Second)})
		require.NoError(t, err)
		requireTime(t, t0.Add(time.Second+2*ttl), l.ExpiresAt)

		// Expired but not taken over: nobody else can have acted, so the
		// holder may carry on.
		l, err = s.RenewLease(ctx, store.RenewLeaseParams{Name: "app-db", Holder: "a", TTL: ttl, Now: t0.Add(time.Hour)})
		require.NoError(t, err)
		requireTime(t, t0.Add(time.Hour+ttl), l.ExpiresAt)

		// Taken over: the old holder has lost it for good.
		_, err = acquire(t, s, "b", t0.Add(2*time.Hour))
		require.NoError(t, err)
		_, err = s.RenewLease(ctx, store.RenewLeaseParams{Name: "app-db", Holder: "a", TTL: ttl, Now: t0.Add(2 * time.Hour)})
		require.ErrorIs(t, err, store.ErrLeaseLost)
	})

	t.Run("Release", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		ctx := t.Context()
		_, err := acquire(t, s, "a", t0)
		require.NoError(t, err)

		err = s.ReleaseLease(ctx, store.ReleaseLeaseParams{Name: "app-db", Holder: "b"})
		require.ErrorIs(t, err, store.ErrLeaseLost)
		got, err := s.GetLease(ctx, store.GetLeaseParams{Name: "app-db"})
		require.NoError(t, err, "a foreign release changes nothing")
		require.Equal(t, "a", got.Holder)

		require.NoError(t, s.ReleaseLease(ctx, store.ReleaseLeaseParams{Name: "app-db", Holder: "a"}))
		_, err = s.GetLease(ctx, store.GetLeaseParams{Name: "app-db"})
		require.ErrorIs(t, err, store.ErrNotFound)
		err = s.ReleaseLease(ctx, store.ReleaseLeaseParams{Name: "app-db", Holder: "a"})
		require.ErrorIs(t, err, store.ErrLeaseLost)

		l, err := acquire(t, s, "b", t0)
		require.NoError(t, err, "a released lease is free at once")
		require.Equal(t, "b", l.Holder)
	})

	t.Run("RaceHasOneWinner", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		leases := make([]*store.Lease, racers)
		errs := race(func(i int) error {
			var err error
			leases[i], err = s.AcquireLease(t.Context(), store.AcquireLeaseParams{
				Name: "app-db", Holder: fmt.Sprintf("h%d", i), TTL: ttl, Now: t0,
			})
			return err
		})
		won := winners(errs)
		require.Len(t, won, 1, "errors: %v", errs)
		winner := fmt.Sprintf("h%d", won[0])
		for i, err := range errs {
			if i == won[0] {
				continue
			}
			require.ErrorIs(t, err, store.ErrLeaseHeld)
			require.Equal(t, winner, leases[i].Holder, "losers are told who won")
		}
		got, err := s.GetLease(t.Context(), store.GetLeaseParams{Name: "app-db"})
		require.NoError(t, err)
		require.Equal(t, winner, got.Holder)
	})
}
