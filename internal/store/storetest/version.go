package storetest

import (
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/rotorhq/rotor/internal/store"
)

// sealed returns distinct opaque bytes, including the bytes a text column
// would mangle (NUL, invalid UTF-8).
func sealed(tag byte) []byte { return []byte{0x00, tag, 0xff, 0xfe, '\n', 0x00} }

func insertVersion(t *testing.T, s store.Store, cred string, stage store.Stage, rotationID int64) *store.Version {
	t.Helper()
	v, err := s.InsertVersion(t.Context(), store.InsertVersionParams{
		Credential: cred, Role: cred + "_blue", Stage: stage, RotationID: rotationID,
		Sealed: sealed(byte(len(stage))), Fingerprint: "fp-" + string(stage), Now: t0,
	})
	require.NoError(t, err)
	return v
}

func exerciseVersion(t *testing.T, newStore func(t *testing.T) store.Store) {
	t.Run("InsertAsTheRotationsPending", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		ctx := t.Context()
		r := insertRotation(t, s, "app-db", 0)
		v, err := s.InsertVersion(ctx, store.InsertVersionParams{
			Credential: "app-db", Role: "app", Stage: store.StagePending, RotationID: r.ID,
			Sealed: sealed(3), Fingerprint: "fp-3", Now: t0.Add(time.Second),
			Pending: &store.UpdateRotationParams{Rollback: sealed(4), Now: t0.Add(time.Second)},
		})
		require.NoError(t, err)
		got, err := getRotation(ctx, s, r.ID)
		require.NoError(t, err)
		require.Equal(t, v.ID, got.ToVersionID, "the rotation points at the version written with it")
		require.Equal(t, sealed(4), got.Rollback)
		requireTime(t, t0.Add(time.Second), got.UpdatedAt)

		// A finished rotation takes no pending version, and none is left.
		done := insertRotation(t, s, "other-db", 0)
		finish(t, s, done.ID, store.StatusAbandoned, false)
		_, err = s.InsertVersion(ctx, store.InsertVersionParams{
			Credential: "other-db", Role: "app", Stage: store.StagePending, RotationID: done.ID,
			Sealed: sealed(5), Fingerprint: "fp-5", Now: t0, Pending: &store.UpdateRotationParams{Now: t0},
		})
		require.ErrorIs(t, err, store.ErrConflict)
		left, err := s.ListVersions(ctx, store.ListVersionsParams{Credential: "other-db"})
		require.NoError(t, err)
		require.Empty(t, left, "the version and the rotation's update are one write")
	})

	t.Run("ReplacePendingSecret", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		ctx := t.Context()
		r := insertRotation(t, s, "app-db", 0)
		v := insertVersion(t, s, "app-db", store.StagePending, r.ID)
		require.NoError(t, s.ReplacePendingSecret(ctx, store.ReplacePendingSecretParams{ID: v.ID, Sealed: []byte{9, 0, 9}, Fingerprint: "fp-new"}))
		got, err := s.GetVersion(ctx, store.GetVersionParams{ID: v.ID})
		require.NoError(t, err)
		require.Equal(t, []byte{9, 0, 9}, got.Sealed)
		require.Equal(t, "fp-new", got.Fingerprint)
		require.Equal(t, store.StagePending, got.Stage)

		cur := insertVersion(t, s, "app-db", store.StageCurrent, 0)
		err = s.ReplacePendingSecret(ctx, store.ReplacePendingSecretParams{ID: cur.ID, Sealed: []byte{1}, Fingerprint: "x"})
		require.ErrorIs(t, err, store.ErrConflict, "only a pending secret may be replaced")
		err = s.ReplacePendingSecret(ctx, store.ReplacePendingSecretParams{ID: cur.ID + 1000, Sealed: []byte{1}, Fingerprint: "x"})
		require.ErrorIs(t, err, store.ErrNotFound)
	})

	t.Run("InsertAndGet", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		r := insertRotation(t, s, "app-db", 0)
		v, err := s.InsertVersion(t.Context(), store.InsertVersionParams{
			Credential: "app-db", Role: "app_green", Stage: store.StagePending, RotationID: r.ID,
			Sealed: sealed(7), Fingerprint: "hmac:abc", Now: t0,
		})
		require.NoError(t, err)
		require.NotZero(t, v.ID)
		require.Equal(t, int64(1), v.Seq)
		require.Equal(t, "app-db", v.Credential)
		require.Equal(t, "app_green", v.Role)
		require.Equal(t, store.StagePending, v.Stage)
		require.Equal(t, r.ID, v.RotationID)
		require.Equal(t, sealed(7), v.Sealed)
		require.Equal(t, "hmac:abc", v.Fingerprint)
		requireTime(t, t0, v.CreatedAt)
		require.True(t, v.ActivatedAt.IsZero())
		require.True(t, v.RetiredAt.IsZero())

		got, err := s.GetVersion(t.Context(), store.GetVersionParams{ID: v.ID})
		require.NoError(t, err)
		require.Equal(t, v, got)

		_, err = s.GetVersion(t.Context(), store.GetVersionParams{ID: v.ID + 1000})
		require.ErrorIs(t, err, store.ErrNotFound)
	})

	t.Run("NilSealedAndNoRotation", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		v, err := s.InsertVersion(t.Context(), store.InsertVersionParams{
			Credential: "app-db", Role: "app", Stage: store.StagePending, Now: t0,
		})
		require.NoError(t, err)
		require.Nil(t, v.Sealed)
		require.Zero(t, v.RotationID)
	})

	t.Run("InsertedCurrentIsActivated", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		v := insertVersion(t, s, "app-db", store.StageCurrent, 0)
		requireTime(t, t0, v.ActivatedAt)
	})

	t.Run("SeqPerCredential", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		require.Equal(t, int64(1), insertVersion(t, s, "a", store.StageRetired, 0).Seq)
		require.Equal(t, int64(2), insertVersion(t, s, "a", store.StageRetired, 0).Seq)
		require.Equal(t, int64(1), insertVersion(t, s, "b", store.StageRetired, 0).Seq)
		require.Equal(t, int64(3), insertVersion(t, s, "a", store.StagePending, 0).Seq)
	})

	t.Run("SeqRace", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		seqs := make([]int64, racers)
		errs := race(func(i int) error {
			v, err := s.InsertVersion(t.Context(), store.InsertVersionParams{
				Credential: "app-db", Role: "app", Stage: store.StageRetired, Fingerprint: "fp", Now: t0,
			})
			if err == nil {
				seqs[i] = v.Seq
			}
			return err
		})
		require.Len(t, winners(errs), racers, "errors: %v", errs)
		slices.Sort(seqs)
		for i, seq := range seqs {
			require.Equal(t, int64(i+1), seq, "seqs must be 1..%d without gaps or repeats: %v", racers, seqs)
		}
	})

	t.Run("OnePendingPerCredential", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		insertVersion(t, s, "app-db", store.StagePending, 0)
		_, err := s.InsertVersion(t.Context(), store.InsertVersionParams{
			Credential: "app-db", Role: "app", Stage: store.StagePending, Now: t0,
		})
		require.ErrorIs(t, err, store.ErrConflict)
		insertVersion(t, s, "other-db", store.StagePending, 0)
	})

	t.Run("OnePendingRace", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		errs := race(func(int) error {
			_, err := s.InsertVersion(t.Context(), store.InsertVersionParams{
				Credential: "app-db", Role: "app", Stage: store.StagePending, Now: t0,
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
	})

	t.Run("OneVersionPerRotation", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		r := insertRotation(t, s, "app-db", 0)
		insertVersion(t, s, "app-db", store.StageRetired, r.ID)
		_, err := s.InsertVersion(t.Context(), store.InsertVersionParams{
			Credential: "app-db", Role: "app", Stage: store.StagePending, RotationID: r.ID, Now: t0,
		})
		require.ErrorIs(t, err, store.ErrConflict)
	})

	t.Run("UnknownRotation", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		_, err := s.InsertVersion(t.Context(), store.InsertVersionParams{
			Credential: "app-db", Role: "app", Stage: store.StagePending, RotationID: 4242, Now: t0,
		})
		require.ErrorIs(t, err, store.ErrNotFound)
	})

	t.Run("List", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		ctx := t.Context()
		v1 := insertVersion(t, s, "app-db", store.StageRetired, 0)
		v2 := insertVersion(t, s, "app-db", store.StagePrevious, 0)
		v3 := insertVersion(t, s, "app-db", store.StageCurrent, 0)
		insertVersion(t, s, "other-db", store.StageCurrent, 0)
		v4 := insertVersion(t, s, "app-db", store.StagePending, 0)

		all, err := s.ListVersions(ctx, store.ListVersionsParams{Credential: "app-db"})
		require.NoError(t, err)
		require.Equal(t, []int64{v4.ID, v3.ID, v2.ID, v1.ID}, versionIDs(all), "newest first")

		live, err := s.ListVersions(ctx, store.ListVersionsParams{
			Credential: "app-db", Stages: []store.Stage{store.StageCurrent, store.StagePrevious},
		})
		require.NoError(t, err)
		require.Equal(t, []int64{v3.ID, v2.ID}, versionIDs(live))

		two, err := s.ListVersions(ctx, store.ListVersionsParams{Credential: "app-db", Limit: 2})
		require.NoError(t, err)
		require.Equal(t, []int64{v4.ID, v3.ID}, versionIDs(two))

		none, err := s.ListVersions(ctx, store.ListVersionsParams{Credential: "nope"})
		require.NoError(t, err)
		require.Empty(t, none)
	})
}

func versionIDs(vs []*store.Version) []int64 {
	ids := make([]int64, len(vs))
	for i, v := range vs {
		ids[i] = v.ID
	}
	return ids
}
