package storetest

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/rotorhq/rotor/internal/store"
)

func exerciseStep(t *testing.T, newStore func(t *testing.T) store.Store) {
	t.Run("AppendAndListInOrder", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		ctx := t.Context()
		r := insertRotation(t, s, "app-db", 0)
		other := insertRotation(t, s, "other-db", 0)

		journal := []store.AppendStepParams{
			{RotationID: r.ID, Name: "lock", Status: store.StepStarted, Now: t0},
			{RotationID: r.ID, Name: "lock", Status: store.StepDone, Detail: `{"holder":"h1"}`, Now: t0.Add(time.Millisecond)},
			{RotationID: other.ID, Name: "lock", Status: store.StepStarted, Now: t0},
			{RotationID: r.ID, Name: "apply", Status: store.StepFailed, Detail: "timeout", Now: t0.Add(time.Second)},
		}
		var want []*store.Step
		for _, p := range journal {
			st, err := s.AppendStep(ctx, p)
			require.NoError(t, err)
			require.NotZero(t, st.ID)
			require.Equal(t, p.RotationID, st.RotationID)
			require.Equal(t, p.Name, st.Name)
			require.Equal(t, p.Status, st.Status)
			require.Equal(t, p.Detail, st.Detail)
			requireTime(t, p.Now, st.At)
			if p.RotationID == r.ID {
				want = append(want, st)
			}
		}

		got, err := s.ListSteps(ctx, store.ListStepsParams{RotationID: r.ID})
		require.NoError(t, err)
		require.Equal(t, want, got)

		none, err := s.ListSteps(ctx, store.ListStepsParams{RotationID: r.ID + 1000})
		require.NoError(t, err)
		require.Empty(t, none)
	})

	t.Run("MirrorsLastEventOnRotation", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		ctx := t.Context()
		r := insertRotation(t, s, "app-db", 0)
		_, err := s.AppendStep(ctx, store.AppendStepParams{RotationID: r.ID, Name: "publish", Status: store.StepFailed, Detail: "target env: disk full", Now: t0})
		require.NoError(t, err)
		got, err := getRotation(ctx, s, r.ID)
		require.NoError(t, err)
		require.Equal(t, "publish", got.Step)
		require.Equal(t, "target env: disk full", got.Error)

		_, err = s.AppendStep(ctx, store.AppendStepParams{RotationID: r.ID, Name: "publish", Status: store.StepStarted, Now: t0.Add(time.Second)})
		require.NoError(t, err)
		got, err = getRotation(ctx, s, r.ID)
		require.NoError(t, err)
		require.Equal(t, "publish", got.Step)
		require.Empty(t, got.Error, "a new attempt clears the last error")

		finish(t, s, r.ID, store.StatusAbandoned, false)
		_, err = s.AppendStep(ctx, store.AppendStepParams{RotationID: r.ID, Name: "late", Status: store.StepFailed, Detail: "x", Now: t0.Add(2 * time.Second)})
		require.NoError(t, err)
		got, err = getRotation(ctx, s, r.ID)
		require.NoError(t, err)
		require.Equal(t, "publish", got.Step, "a finished rotation's summary is frozen")
	})

	t.Run("FinishedRotationStillJournals", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		r := insertRotation(t, s, "app-db", 0)
		finish(t, s, r.ID, store.StatusAbandoned, false)
		_, err := s.AppendStep(t.Context(), store.AppendStepParams{RotationID: r.ID, Name: "finish", Status: store.StepDone, Now: t0})
		require.NoError(t, err)
	})

	t.Run("UnknownRotation", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		_, err := s.AppendStep(t.Context(), store.AppendStepParams{RotationID: 4242, Name: "lock", Status: store.StepStarted, Now: t0})
		require.ErrorIs(t, err, store.ErrNotFound)
	})
}
