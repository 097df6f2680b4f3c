package storetest

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/rotorhq/rotor/internal/store"
)

// exerciseRetirement: a dual rotation that switched keeps the version it
// started from as previous, with its secret, until FinishRetirement says
// the old role was retired.
func exerciseRetirement(t *testing.T, newStore func(t *testing.T) store.Store) {
	switched := func(t *testing.T, s store.Store) (r *store.Rotation, old, cur *store.Version) {
		t.Helper()
		old = insertVersion(t, s, "app-db", store.StageCurrent, 0)
		r, cur = rotate(t, s, "app-db")
		got, err := s.FinishRotation(t.Context(), store.FinishRotationParams{
			ID: r.ID, Status: store.StatusSwitched, Promote: true, Outcome: "switched", Now: t0,
			Audit: store.AppendAuditParams{Event: "rotation.switched", Actor: "test"},
		})
		require.NoError(t, err)
		require.Equal(t, store.StatusSwitched, got.Status)
		require.True(t, got.Status.Terminal(), "a switched rotation has run all its steps")
		requireVersion(t, s, cur.ID, store.StageCurrent, true)
		requireVersion(t, s, old.ID, store.StagePrevious, true)
		active, err := s.ListRotations(t.Context(), store.ListRotationsParams{Credential: "app-db", Active: true})
		require.NoError(t, err)
		require.Empty(t, active, "a switched rotation is not active")
		return r, old, cur
	}

	t.Run("RetiredWipesThePrevious", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		r, old, cur := switched(t, s)
		t1 := t0.Add(time.Minute)
		got, err := s.FinishRetirement(t.Context(), store.FinishRetirementParams{
			ID: r.ID, Status: store.StatusSucceeded, Outcome: "retired", RetirePrevious: true, Now: t1,
			Audit: store.AppendAuditParams{Event: "rotation.retired", Actor: "test", Detail: `{"role":"app_blue"}`},
		})
		require.NoError(t, err)
		require.Equal(t, store.StatusSucceeded, got.Status)
		require.Equal(t, "retired", got.Outcome)
		requireVersion(t, s, old.ID, store.StageRetired, false)
		requireVersion(t, s, cur.ID, store.StageCurrent, true)
		ev, err := s.ListAudit(t.Context(), store.ListAuditParams{Credential: "app-db", Limit: 1})
		require.NoError(t, err)
		require.Equal(t, "rotation.retired", ev[0].Event)
		require.Equal(t, r.ID, ev[0].RotationID)

		// Over: a second retirement is a conflict and changes nothing.
		_, err = s.FinishRetirement(t.Context(), store.FinishRetirementParams{ID: r.ID, Status: store.StatusOldInUse, Now: t1})
		require.ErrorIs(t, err, store.ErrConflict)
		again, err := getRotation(t.Context(), s, r.ID)
		require.NoError(t, err)
		require.Equal(t, store.StatusSucceeded, again.Status)
	})

	t.Run("StillPendingKeepsTheSecret", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		r, old, _ := switched(t, s)
		got, err := s.FinishRetirement(t.Context(), store.FinishRetirementParams{
			ID: r.ID, Status: store.StatusOldInUse, Outcome: "in use", RetirePrevious: true, Now: t0,
			Audit: store.AppendAuditParams{Event: "rotation.old_in_use", Actor: "test"},
		})
		require.NoError(t, err)
		require.Equal(t, store.StatusOldInUse, got.Status)
		requireVersion(t, s, old.ID, store.StagePrevious, true)
		// In use is still awaiting retirement: `rotor retire` may end it.
		got, err = s.FinishRetirement(t.Context(), store.FinishRetirementParams{ID: r.ID, Status: store.StatusSucceeded, RetirePrevious: true, Now: t0,
			Audit: store.AppendAuditParams{Event: "rotation.retired", Actor: "test"}})
		require.NoError(t, err)
		require.Equal(t, store.StatusSucceeded, got.Status)
		requireVersion(t, s, old.ID, store.StageRetired, false)
	})

	t.Run("OnlyPendingRetirements", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		r, _ := rotate(t, s, "app-db")
		_, err := s.FinishRetirement(t.Context(), store.FinishRetirementParams{ID: r.ID, Status: store.StatusSucceeded, Now: t0})
		require.ErrorIs(t, err, store.ErrConflict, "an active rotation has not switched yet")
		_, err = s.FinishRetirement(t.Context(), store.FinishRetirementParams{ID: r.ID, Status: store.StatusActive, Now: t0})
		require.Error(t, err)
	})

	t.Run("Fenced", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		r, old, _ := switched(t, s)
		_, err := s.AcquireLease(t.Context(), store.AcquireLeaseParams{Name: "l", Holder: "a", TTL: time.Minute, Now: t0})
		require.NoError(t, err)
		_, err = s.FinishRetirement(t.Context(), store.FinishRetirementParams{ID: r.ID, Status: store.StatusSucceeded, RetirePrevious: true, Now: t0,
			Fence: store.Fence{Lease: "l", Token: 999}})
		require.ErrorIs(t, err, store.ErrFenced)
		requireVersion(t, s, old.ID, store.StagePrevious, true)
	})
}
