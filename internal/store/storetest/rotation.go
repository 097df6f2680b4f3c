package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/rotorhq/rotor/internal/store"
)

func insertRotation(t *testing.T, s store.Store, cred string, fromVersionID int64) *store.Rotation {
	t.Helper()
	r, err := s.InsertRotation(t.Context(), store.InsertRotationParams{
		Credential: cred, Strategy: "dual", Trigger: "manual", FromVersionID: fromVersionID, Now: t0,
	})
	require.NoError(t, err)
	return r
}

func exerciseRotation(t *testing.T, newStore func(t *testing.T) store.Store) {
	t.Run("InsertAndGet", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		from := insertVersion(t, s, "app-db", store.StageCurrent, 0)
		r, err := s.InsertRotation(t.Context(), store.InsertRotationParams{
			Credential: "app-db", Strategy: "single", Trigger: "schedule", Revoke: true, FromVersionID: from.ID, Now: t0,
		})
		require.NoError(t, err)
		require.NotZero(t, r.ID)
		require.Equal(t, "app-db", r.Credential)
		require.Equal(t, store.StatusActive, r.Status)
		require.Equal(t, "single", r.Strategy)
		require.Equal(t, "schedule", r.Trigger)
		require.True(t, r.Revoke)
		require.Equal(t, from.ID, r.FromVersionID)
		require.Zero(t, r.ToVersionID)
		require.Nil(t, r.Rollback)
		requireTime(t, t0, r.StartedAt)
		requireTime(t, t0, r.UpdatedAt)
		require.True(t, r.FinishedAt.IsZero())

		got, err := getRotation(t.Context(), s, r.ID)
		require.NoError(t, err)
		require.Equal(t, r, got)
	})

	t.Run("UnknownFromVersion", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		_, err := s.InsertRotation(t.Context(), store.InsertRotationParams{
			Credential: "app-db", Strategy: "dual", Trigger: "manual", FromVersionID: 4242, Now: t0,
		})
		require.ErrorIs(t, err, store.ErrNotFound)
	})

	t.Run("OneActivePerCredential", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		insertRotation(t, s, "app-db", 0)
		_, err := s.InsertRotation(t.Context(), store.InsertRotationParams{Credential: "app-db", Strategy: "dual", Trigger: "manual", Now: t0})
		require.ErrorIs(t, err, store.ErrConflict)
		insertRotation(t, s, "other-db", 0)
	})

	t.Run("OneActiveRace", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		errs := race(func(int) error {
			_, err := s.InsertRotation(t.Context(), store.InsertRotationParams{Credential: "app-db", Strategy: "dual", Trigger: "manual", Now: t0})
			return err
		})
		won := winners(errs)
		require.Len(t, won, 1, "errors: %v", errs)
		for i, err := range errs {
			if i != won[0] {
				require.ErrorIs(t, err, store.ErrConflict)
			}
		}
	})

	t.Run("List", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		ctx := t.Context()
		r1 := insertRotation(t, s, "app-db", 0)
		finish(t, s, r1.ID, store.StatusAbandoned, false)
		r2 := insertRotation(t, s, "other-db", 0)
		r3 := insertRotation(t, s, "app-db", 0)

		all, err := s.ListRotations(ctx, store.ListRotationsParams{})
		require.NoError(t, err)
		require.Equal(t, []int64{r3.ID, r2.ID, r1.ID}, rotationIDs(all), "newest first")

		app, err := s.ListRotations(ctx, store.ListRotationsParams{Credential: "app-db"})
		require.NoError(t, err)
		require.Equal(t, []int64{r3.ID, r1.ID}, rotationIDs(app))

		active, err := s.ListRotations(ctx, store.ListRotationsParams{Active: true})
		require.NoError(t, err)
		require.Equal(t, []int64{r3.ID, r2.ID}, rotationIDs(active))

		one, err := s.ListRotations(ctx, store.ListRotationsParams{Credential: "app-db", Limit: 1})
		require.NoError(t, err)
		require.Equal(t, []int64{r3.ID}, rotationIDs(one))
	})

	t.Run("Update", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		ctx := t.Context()
		r := insertRotation(t, s, "app-db", 0)
		v := insertVersion(t, s, "app-db", store.StagePending, r.ID)

		t1 := t0.Add(time.Second)
		applied := t0.Add(time.Minute)
		u, err := s.UpdateRotation(ctx, store.UpdateRotationParams{
			ID: r.ID, ToVersionID: ptr(v.ID), Rollback: sealed(9), AppliedAt: &applied, Now: t1,
		})
		require.NoError(t, err)
		require.Equal(t, v.ID, u.ToVersionID)
		require.Equal(t, sealed(9), u.Rollback)
		requireTime(t, applied, u.AppliedAt)
		requireTime(t, t1, u.UpdatedAt)
		requireTime(t, t0, u.StartedAt)
		require.Equal(t, store.StatusActive, u.Status)

		// Nil fields are left alone.
		t2 := t1.Add(time.Second)
		u, err = s.UpdateRotation(ctx, store.UpdateRotationParams{ID: r.ID, Now: t2})
		require.NoError(t, err)
		require.Equal(t, v.ID, u.ToVersionID)
		require.Equal(t, sealed(9), u.Rollback)
		requireTime(t, applied, u.AppliedAt)
		requireTime(t, t2, u.UpdatedAt)

		got, err := getRotation(ctx, s, r.ID)
		require.NoError(t, err)
		require.Equal(t, u, got)

		_, err = s.UpdateRotation(ctx, store.UpdateRotationParams{ID: r.ID + 1000, Now: t2})
		require.ErrorIs(t, err, store.ErrNotFound)
	})

	t.Run("UpdateFinishedIsConflict", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		ctx := t.Context()
		r := insertRotation(t, s, "app-db", 0)
		done := finish(t, s, r.ID, store.StatusAbandoned, false)

		_, err := s.UpdateRotation(ctx, store.UpdateRotationParams{ID: r.ID, Rollback: sealed(3), Now: t0.Add(time.Hour)})
		require.ErrorIs(t, err, store.ErrConflict)
		got, err := getRotation(ctx, s, r.ID)
		require.NoError(t, err)
		require.Equal(t, done, got, "a refused update changes nothing")
	})
}

// getRotation finds one rotation by id the way callers of the store do,
// through ListRotations; ErrNotFound when there is none.
func getRotation(ctx context.Context, s store.Store, id int64) (*store.Rotation, error) {
	rs, err := s.ListRotations(ctx, store.ListRotationsParams{})
	if err != nil {
		return nil, err
	}
	for _, r := range rs {
		if r.ID == id {
			return r, nil
		}
	}
	return nil, store.ErrNotFound
}

func rotationIDs(rs []*store.Rotation) []int64 {
	ids := make([]int64, len(rs))
	for i, r := range rs {
		ids[i] = r.ID
	}
	return ids
}
