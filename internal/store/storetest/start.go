package storetest

import (
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/rotorhq/rotor/internal/store"
)

func exerciseStart(t *testing.T, newStore func(t *testing.T) store.Store) {
	lease := func(holder string) store.AcquireLeaseParams {
		return store.AcquireLeaseParams{Name: "credential/app-db", Holder: holder, TTL: time.Minute, Now: t0}
	}
	rotation := func(from int64) store.InsertRotationParams {
		return store.InsertRotationParams{Credential: "app-db", Strategy: "single", Trigger: "schedule", FromVersionID: from, Now: t0,
			Audit: &store.AppendAuditParams{Event: "rotation.started", Actor: "test"}}
	}
	// unchanged checks that a refused start left the store as it was:
	// the lease as before and the rotations as before.
	unchanged := func(t *testing.T, s store.Store, wantLease *store.Lease, wantRotations int) {
		t.Helper()
		l, err := s.GetLease(t.Context(), store.GetLeaseParams{Name: "credential/app-db"})
		if wantLease == nil {
			require.ErrorIs(t, err, store.ErrNotFound, "the lease was not taken: %+v", l)
		} else {
			require.NoError(t, err)
			require.Equal(t, wantLease.Holder, l.Holder)
			require.Equal(t, wantLease.Token, l.Token)
		}
		rots, err := s.ListRotations(t.Context(), store.ListRotationsParams{Credential: "app-db"})
		require.NoError(t, err)
		require.Len(t, rots, wantRotations)
	}

	t.Run("LeaseAndRotationInOneWrite", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		ctx := t.Context()
		r, l, err := s.StartRotation(ctx, store.StartRotationParams{Lease: lease("a"), Rotation: rotation(0)})
		require.NoError(t, err)
		require.Equal(t, store.StatusActive, r.Status)
		require.Equal(t, "schedule", r.Trigger)
		require.Equal(t, "a", l.Holder)
		require.Equal(t, int64(1), l.Token)
		requireTime(t, t0.Add(time.Minute), l.ExpiresAt)
		got, err := s.GetLease(ctx, store.GetLeaseParams{Name: "credential/app-db"})
		require.NoError(t, err)
		require.Equal(t, *l, *got)
		events, err := s.ListAudit(ctx, store.ListAuditParams{Credential: "app-db"})
		require.NoError(t, err)
		require.Len(t, events, 1)
		require.Equal(t, r.ID, events[0].RotationID)
		// The rotation is fenced by the lease it came with.
		_, err = s.AppendStep(ctx, store.AppendStepParams{RotationID: r.ID, Name: "prepare", Status: store.StepStarted, Now: t0, Fence: l.Fence()})
		require.NoError(t, err)

		// Another holder is refused, with the lease, and changes nothing.
		_, held, err := s.StartRotation(ctx, store.StartRotationParams{Lease: lease("b"), Rotation: rotation(0), After: r.ID})
		require.ErrorIs(t, err, store.ErrLeaseHeld)
		require.NotNil(t, held)
		require.Equal(t, "a", held.Holder)
		unchanged(t, s, l, 1)

		// Once the rotation finished and the lease is free, the next start
		// gets a larger token.
		finish(t, s, r.ID, store.StatusSucceeded, false)
		require.NoError(t, s.ReleaseLease(ctx, store.ReleaseLeaseParams{Name: "credential/app-db", Holder: "a"}))
		r2, l2, err := s.StartRotation(ctx, store.StartRotationParams{Lease: lease("b"), Rotation: rotation(0), After: r.ID})
		require.NoError(t, err)
		require.Greater(t, r2.ID, r.ID)
		require.Equal(t, int64(2), l2.Token)
		_, err = s.AppendStep(ctx, store.AppendStepParams{RotationID: r.ID, Name: "finish", Status: store.StepDone, Now: t0, Fence: l.Fence()})
		require.ErrorIs(t, err, store.ErrFenced, "the old token is fenced off")
	})

	t.Run("StaleReadsAreAConflict", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		ctx := t.Context()
		first := insertRotation(t, s, "app-db", 0)
		cur := insertVersion(t, s, "app-db", store.StageCurrent, first.ID)
		finish(t, s, first.ID, store.StatusSucceeded, false)

		// A rotation started since the read, or none read where there is
		// one; a current version that changed, or appeared.
		for name, p := range map[string]store.StartRotationParams{
			"no rotation read":        {Lease: lease("a"), Rotation: rotation(cur.ID)},
			"an older rotation read":  {Lease: lease("a"), Rotation: rotation(cur.ID), After: first.ID - 1},
			"no current version read": {Lease: lease("a"), Rotation: rotation(0), After: first.ID},
			"another current version": {Lease: lease("a"), Rotation: rotation(cur.ID + 1), After: first.ID},
		} {
			_, _, err := s.StartRotation(ctx, p)
			require.ErrorIs(t, err, store.ErrConflict, name)
			unchanged(t, s, nil, 1)
		}

		// An active rotation read as the latest still cannot have a second.
		active := insertRotation(t, s, "app-db", cur.ID)
		_, _, err := s.StartRotation(ctx, store.StartRotationParams{Lease: lease("a"), Rotation: rotation(cur.ID), After: active.ID})
		require.ErrorIs(t, err, store.ErrConflict)
		unchanged(t, s, nil, 2)

		// Bad lease parameters are refused before anything is written.
		bad := lease("")
		_, _, err = s.StartRotation(ctx, store.StartRotationParams{Lease: bad, Rotation: rotation(cur.ID), After: active.ID})
		require.Error(t, err)
	})

	t.Run("ConcurrentStartsOneWins", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		var (
			wg   sync.WaitGroup
			mu   sync.Mutex
			won  []string
			errs []error
		)
		for _, h := range []string{"a", "b", "c", "d"} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, _, err := s.StartRotation(t.Context(), store.StartRotationParams{Lease: lease(h), Rotation: rotation(0)})
				mu.Lock()
				defer mu.Unlock()
				if err == nil {
					won = append(won, h)
				} else {
					errs = append(errs, err)
				}
			}()
		}
		wg.Wait()
		require.Len(t, won, 1, "exactly one start wins: %v", errs)
		for _, err := range errs {
			require.ErrorIs(t, err, store.ErrLeaseHeld)
		}
		l, err := s.GetLease(t.Context(), store.GetLeaseParams{Name: "credential/app-db"})
		require.NoError(t, err)
		require.Equal(t, won[0], l.Holder)
		rots, err := s.ListRotations(t.Context(), store.ListRotationsParams{Credential: "app-db"})
		require.NoError(t, err)
		require.Len(t, rots, 1)
	})
}
