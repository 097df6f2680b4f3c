package storetest

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/rotorhq/rotor/internal/store"
)

// finish ends rotation id without extra options and returns it.
func finish(t *testing.T, s store.Store, id int64, status store.Status, promote bool) *store.Rotation {
	t.Helper()
	r, err := s.FinishRotation(t.Context(), store.FinishRotationParams{
		ID: id, Status: status, Promote: promote, Now: t0,
		Audit: store.AppendAuditParams{Event: "rotation." + string(status), Actor: "test"},
	})
	require.NoError(t, err)
	return r
}

// rotate runs one rotation of cred up to finish: a rotation from the
// current version and a pending version recorded as its ToVersionID.
func rotate(t *testing.T, s store.Store, cred string) (*store.Rotation, *store.Version) {
	t.Helper()
	var from int64
	cur, err := s.ListVersions(t.Context(), store.ListVersionsParams{Credential: cred, Stages: []store.Stage{store.StageCurrent}})
	require.NoError(t, err)
	if len(cur) == 1 {
		from = cur[0].ID
	}
	r := insertRotation(t, s, cred, from)
	v := insertVersion(t, s, cred, store.StagePending, r.ID)
	_, err = s.UpdateRotation(t.Context(), store.UpdateRotationParams{ID: r.ID, ToVersionID: ptr(v.ID), Now: t0})
	require.NoError(t, err)
	return r, v
}

// requireVersion checks a version's stage and whether it still holds its
// secret.
func requireVersion(t *testing.T, s store.Store, id int64, stage store.Stage, hasSecret bool) *store.Version {
	t.Helper()
	v, err := s.GetVersion(t.Context(), store.GetVersionParams{ID: id})
	require.NoError(t, err)
	require.Equal(t, stage, v.Stage, "version %d", id)
	if hasSecret {
		require.NotNil(t, v.Sealed, "version %d must keep its secret", id)
	} else {
		require.Nil(t, v.Sealed, "version %d must be wiped", id)
	}
	return v
}

func exerciseFinish(t *testing.T, newStore func(t *testing.T) store.Store) {
	t.Run("ReleasesTheLeaseInTheSameWrite", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		ctx := t.Context()
		l, err := acquire(t, s, "a", t0)
		require.NoError(t, err)
		r, _ := rotate(t, s, "app-db")
		params := store.FinishRotationParams{ID: r.ID, Status: store.StatusSucceeded, Promote: true, Now: t0, Fence: l.Fence(), Release: true,
			Audit: store.AppendAuditParams{Event: "rotation.succeeded", Actor: "a"}}

		// A stale fence finishes nothing and releases nothing.
		stale := params
		stale.Fence.Token++
		_, err = s.FinishRotation(ctx, stale)
		require.ErrorIs(t, err, store.ErrFenced)
		_, err = acquire(t, s, "b", t0.Add(time.Second))
		require.ErrorIs(t, err, store.ErrLeaseHeld, "the lease is still a's")

		_, err = s.FinishRotation(ctx, params)
		require.NoError(t, err)
		_, err = s.GetLease(ctx, store.GetLeaseParams{Name: "app-db"})
		require.ErrorIs(t, err, store.ErrNotFound, "released with the finish")
		b, err := acquire(t, s, "b", t0.Add(time.Second))
		require.NoError(t, err, "free at once, long before it would expire")
		require.Greater(t, b.Token, l.Token)
	})

	t.Run("WipesRollbackSnapshot", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		r, _ := rotate(t, s, "app-db")
		_, err := s.UpdateRotation(t.Context(), store.UpdateRotationParams{ID: r.ID, Rollback: []byte{7, 7}, Now: t0})
		require.NoError(t, err)
		got := finish(t, s, r.ID, store.StatusSucceeded, true)
		require.Nil(t, got.Rollback, "the old password's snapshot has no use once the rotation is over")
		again, err := getRotation(t.Context(), s, r.ID)
		require.NoError(t, err)
		require.Nil(t, again.Rollback)
	})

	t.Run("PromoteShiftsStages", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		ctx := t.Context()
		v1 := insertVersion(t, s, "app-db", store.StageCurrent, 0)
		bystander := insertVersion(t, s, "other-db", store.StageCurrent, 0)

		// First rotation: v1 becomes previous and keeps its secret, so the
		// old connection string works until consumers have moved.
		r1, v2 := rotate(t, s, "app-db")
		t1 := t0.Add(time.Minute)
		done, err := s.FinishRotation(ctx, store.FinishRotationParams{
			ID: r1.ID, Status: store.StatusSucceeded, Outcome: "3/3 targets verified", Promote: true, Now: t1,
			Audit: store.AppendAuditParams{Event: "rotation.succeeded", Actor: "alice", Detail: `{"targets":3}`},
		})
		require.NoError(t, err)
		require.Equal(t, store.StatusSucceeded, done.Status)
		require.Equal(t, "3/3 targets verified", done.Outcome)
		require.Empty(t, done.Error)
		require.Equal(t, v2.ID, done.ToVersionID)
		requireTime(t, t1, done.FinishedAt)
		requireTime(t, t1, done.UpdatedAt)
		got, err := getRotation(ctx, s, r1.ID)
		require.NoError(t, err)
		require.Equal(t, done, got)

		cur := requireVersion(t, s, v2.ID, store.StageCurrent, true)
		requireTime(t, t1, cur.ActivatedAt)
		prev := requireVersion(t, s, v1.ID, store.StagePrevious, true)
		require.True(t, prev.RetiredAt.IsZero())
		requireVersion(t, s, bystander.ID, store.StageCurrent, true)

		events, err := s.ListAudit(ctx, store.ListAuditParams{Credential: "app-db"})
		require.NoError(t, err)
		require.Len(t, events, 1)
		require.Equal(t, "rotation.succeeded", events[0].Event)
		require.Equal(t, "alice", events[0].Actor)
		require.Equal(t, `{"targets":3}`, events[0].Detail)
		require.Equal(t, r1.ID, events[0].RotationID, "blank audit fields come from the rotation")
		requireTime(t, t1, events[0].At)

		// Second rotation: v1 falls off the end, retired and wiped.
		r2, v3 := rotate(t, s, "app-db")
		t2 := t1.Add(time.Minute)
		_, err = s.FinishRotation(ctx, store.FinishRotationParams{ID: r2.ID, Status: store.StatusOldInUse, Promote: true, Now: t2})
		require.NoError(t, err)
		requireVersion(t, s, v3.ID, store.StageCurrent, true)
		requireVersion(t, s, v2.ID, store.StagePrevious, true)
		old := requireVersion(t, s, v1.ID, store.StageRetired, false)
		requireTime(t, t2, old.RetiredAt)

		// RetirePrevious: the version current until now is retired at once.
		r3, v4 := rotate(t, s, "app-db")
		_, err = s.FinishRotation(ctx, store.FinishRotationParams{
			ID: r3.ID, Status: store.StatusSucceeded, Promote: true, RetirePrevious: true, Now: t2,
		})
		require.NoError(t, err)
		requireVersion(t, s, v4.ID, store.StageCurrent, true)
		requireVersion(t, s, v3.ID, store.StageRetired, false)
		requireVersion(t, s, v2.ID, store.StageRetired, false)
		requireVersion(t, s, bystander.ID, store.StageCurrent, true)

		live, err := s.ListVersions(ctx, store.ListVersionsParams{
			Credential: "app-db", Stages: []store.Stage{store.StagePending, store.StagePrevious},
		})
		require.NoError(t, err)
		require.Empty(t, live)
	})

	t.Run("FirstRotationWithoutCurrent", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		r, v := rotate(t, s, "app-db")
		finish(t, s, r.ID, store.StatusSucceeded, true)
		requireVersion(t, s, v.ID, store.StageCurrent, true)
	})

	t.Run("PromoteFindsTheRotationsVersion", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		// A crash between InsertVersion and UpdateRotation leaves
		// ToVersionID unset; the version still names its rotation.
		r := insertRotation(t, s, "app-db", 0)
		v := insertVersion(t, s, "app-db", store.StagePending, r.ID)
		done := finish(t, s, r.ID, store.StatusSucceeded, true)
		require.Equal(t, v.ID, done.ToVersionID)
		requireVersion(t, s, v.ID, store.StageCurrent, true)
	})

	t.Run("WithoutPromoteRetiresPending", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		ctx := t.Context()
		cur := insertVersion(t, s, "app-db", store.StageCurrent, 0)
		r1, v1 := rotate(t, s, "app-db")
		finish(t, s, r1.ID, store.StatusSucceeded, true)

		for _, status := range []store.Status{store.StatusRolledBack, store.StatusAbandoned} {
			r, v := rotate(t, s, "app-db")
			done, err := s.FinishRotation(ctx, store.FinishRotationParams{
				ID: r.ID, Status: status, Error: "test step failed", Now: t0.Add(time.Hour),
			})
			require.NoError(t, err)
			require.Equal(t, status, done.Status)
			require.Equal(t, "test step failed", done.Error)
			requireTime(t, t0.Add(time.Hour), done.FinishedAt)
			gone := requireVersion(t, s, v.ID, store.StageRetired, false)
			requireTime(t, t0.Add(time.Hour), gone.RetiredAt)
			requireVersion(t, s, v1.ID, store.StageCurrent, true)
			requireVersion(t, s, cur.ID, store.StagePrevious, true)
		}
	})

	t.Run("WithoutPromoteRetiresUnrecordedPending", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		r := insertRotation(t, s, "app-db", 0)
		v := insertVersion(t, s, "app-db", store.StagePending, r.ID)
		finish(t, s, r.ID, store.StatusAbandoned, false)
		requireVersion(t, s, v.ID, store.StageRetired, false)
		// The credential is free for the next rotation.
		rotate(t, s, "app-db")
	})

	t.Run("NoDoubleFinish", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		ctx := t.Context()
		r, _ := rotate(t, s, "app-db")
		done := finish(t, s, r.ID, store.StatusSucceeded, true)

		_, err := s.FinishRotation(ctx, store.FinishRotationParams{ID: r.ID, Status: store.StatusAbandoned, Now: t0.Add(time.Hour)})
		require.ErrorIs(t, err, store.ErrConflict)
		got, err := getRotation(ctx, s, r.ID)
		require.NoError(t, err)
		require.Equal(t, done, got)
		events, err := s.ListAudit(ctx, store.ListAuditParams{})
		require.NoError(t, err)
		require.Len(t, events, 1, "a refused finish appends no audit event")

		_, err = s.FinishRotation(ctx, store.FinishRotationParams{ID: r.ID + 1000, Status: store.StatusAbandoned, Now: t0})
		require.ErrorIs(t, err, store.ErrNotFound)
	})

	t.Run("FinishRace", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		insertVersion(t, s, "app-db", store.StageCurrent, 0)
		r, v := rotate(t, s, "app-db")
		errs := race(func(int) error {
			_, err := s.FinishRotation(t.Context(), store.FinishRotationParams{
				ID: r.ID, Status: store.StatusSucceeded, Promote: true, Now: t0,
				Audit: store.AppendAuditParams{Event: "rotation.succeeded"},
			})
			return err
		})
		won := winners(errs)
		require.Len(t, won, 1, "errors: %v", errs)
		for i, err := range errs {
			if i != won[0] {
				require.ErrorIs(t, err, store.ErrConflict)
			}
		}
		requireVersion(t, s, v.ID, store.StageCurrent, true)
		events, err := s.ListAudit(t.Context(), store.ListAuditParams{})
		require.NoError(t, err)
		require.Len(t, events, 1)
	})

	t.Run("FailedFinishChangesNothing", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		ctx := t.Context()
		cur := insertVersion(t, s, "app-db", store.StageCurrent, 0)
		prev := insertVersion(t, s, "app-db", store.StagePrevious, 0)
		r := insertRotation(t, s, "app-db", cur.ID)

		// Nothing to promote: the finish fails as a whole, leaving the
		// rotation resumable and the working versions untouched.
		_, err := s.FinishRotation(ctx, store.FinishRotationParams{
			ID: r.ID, Status: store.StatusSucceeded, Promote: true, Now: t0,
			Audit: store.AppendAuditParams{Event: "rotation.succeeded"},
		})
		require.Error(t, err)
		require.NotErrorIs(t, err, store.ErrNotFound, "the rotation exists")

		got, err := getRotation(ctx, s, r.ID)
		require.NoError(t, err)
		require.Equal(t, r, got)
		requireVersion(t, s, cur.ID, store.StageCurrent, true)
		requireVersion(t, s, prev.ID, store.StagePrevious, true)
		events, err := s.ListAudit(ctx, store.ListAuditParams{})
		require.NoError(t, err)
		require.Empty(t, events)
	})

	t.Run("PromoteNonPendingIsConflict", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		ctx := t.Context()
		r := insertRotation(t, s, "app-db", 0)
		v := insertVersion(t, s, "app-db", store.StageCurrent, r.ID)
		_, err := s.UpdateRotation(ctx, store.UpdateRotationParams{ID: r.ID, ToVersionID: ptr(v.ID), Now: t0})
		require.NoError(t, err)
		_, err = s.FinishRotation(ctx, store.FinishRotationParams{ID: r.ID, Status: store.StatusSucceeded, Promote: true, Now: t0})
		require.ErrorIs(t, err, store.ErrConflict)
		requireVersion(t, s, v.ID, store.StageCurrent, true)
	})

	t.Run("ActiveIsNotAFinish", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		r, _ := rotate(t, s, "app-db")
		_, err := s.FinishRotation(t.Context(), store.FinishRotationParams{ID: r.ID, Status: store.StatusActive, Now: t0})
		require.Error(t, err)
		got, err := getRotation(t.Context(), s, r.ID)
		require.NoError(t, err)
		require.Equal(t, store.StatusActive, got.Status)
	})

	t.Run("FreesTheCredential", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		r, _ := rotate(t, s, "app-db")
		finish(t, s, r.ID, store.StatusSucceeded, true)
		rotate(t, s, "app-db")
	})
}
