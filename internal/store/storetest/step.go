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

	t.Run("OpenRidesWithTheWrite", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		ctx := t.Context()
		r := insertRotation(t, s, "app-db", 0)
		at := func(i int) time.Time { return t0.Add(time.Duration(i) * time.Second) }
		open := func(name string, i int) *store.OpenStep { return &store.OpenStep{Name: name, At: at(i)} }

		// Each write that carries a started record journals it in its own
		// transaction: the record's time is when the step started.
		v, err := s.InsertVersion(ctx, store.InsertVersionParams{
			Credential: "app-db", Role: "app", Stage: store.StagePending, RotationID: r.ID,
			Sealed: sealed(1), Fingerprint: "fp-1", Now: at(2), Open: open("prepare", 1),
			Pending: &store.UpdateRotationParams{Now: at(2)},
		})
		require.NoError(t, err)
		got, err := getRotation(ctx, s, r.ID)
		require.NoError(t, err)
		require.Equal(t, "prepare", got.Step, "the rotation row mirrors the carried record")
		require.Equal(t, v.ID, got.ToVersionID)

		_, err = s.AppendStep(ctx, store.AppendStepParams{RotationID: r.ID, Name: "test", Status: store.StepDone, Detail: "logged in", Now: at(4), Open: open("test", 3), AppliedAt: at(3)})
		require.NoError(t, err)
		got, err = getRotation(ctx, s, r.ID)
		require.NoError(t, err)
		requireTime(t, at(3), got.AppliedAt)
		_, err = s.AppendStep(ctx, store.AppendStepParams{RotationID: r.ID, Name: "publish", Status: store.StepStarted, Now: at(5)})
		require.NoError(t, err)
		got, err = getRotation(ctx, s, r.ID)
		require.NoError(t, err)
		requireTime(t, at(3), got.AppliedAt) // a record without AppliedAt leaves it alone

		_, err = s.AppendStep(ctx, store.AppendStepParams{RotationID: r.ID, Name: "publish", Status: store.StepDone, Now: at(6)})
		require.NoError(t, err)
		_, err = s.FinishRotation(ctx, store.FinishRotationParams{ID: r.ID, Status: store.StatusSucceeded, Promote: true, Now: at(9), Open: open("finish", 8),
			Audit: store.AppendAuditParams{Event: "rotation.succeeded", Actor: "test"}})
		require.NoError(t, err)

		steps, err := s.ListSteps(ctx, store.ListStepsParams{RotationID: r.ID})
		require.NoError(t, err)
		type rec struct {
			name   string
			status store.StepStatus
			at     time.Time
		}
		var journal []rec
		for _, st := range steps {
			journal = append(journal, rec{st.Name, st.Status, st.At.UTC()})
		}
		require.Equal(t, []rec{
			{"prepare", store.StepStarted, at(1).UTC()},
			{"test", store.StepStarted, at(3).UTC()},
			{"test", store.StepDone, at(4).UTC()},
			{"publish", store.StepStarted, at(5).UTC()},
			{"publish", store.StepDone, at(6).UTC()},
			{"finish", store.StepStarted, at(8).UTC()},
		}, journal)

		// A write that fails leaves no started record behind.
		other := insertRotation(t, s, "other-db", 0)
		_, err = s.InsertVersion(ctx, store.InsertVersionParams{
			Credential: "other-db", Role: "app", Stage: store.StagePending, RotationID: other.ID,
			Sealed: sealed(2), Fingerprint: "fp-2", Now: at(1), Open: open("prepare", 1),
			Pending: &store.UpdateRotationParams{Now: at(1)},
		})
		require.NoError(t, err)
		_, err = s.InsertVersion(ctx, store.InsertVersionParams{
			Credential: "other-db", Role: "app", Stage: store.StagePending, RotationID: other.ID,
			Sealed: sealed(3), Fingerprint: "fp-3", Now: at(2), Open: open("prepare", 2),
		})
		require.ErrorIs(t, err, store.ErrConflict, "a second pending version")
		_, err = s.FinishRotation(ctx, store.FinishRotationParams{ID: r.ID, Status: store.StatusSucceeded, Now: at(10), Open: open("finish", 10),
			Audit: store.AppendAuditParams{Event: "rotation.succeeded", Actor: "test"}})
		require.ErrorIs(t, err, store.ErrConflict, "the rotation already finished")
		left, err := s.ListSteps(ctx, store.ListStepsParams{RotationID: other.ID})
		require.NoError(t, err)
		require.Len(t, left, 1, "only the first version's started record: %+v", left)
		after, err := s.ListSteps(ctx, store.ListStepsParams{RotationID: r.ID})
		require.NoError(t, err)
		require.Equal(t, steps, after, "the failed finish's started record")
	})

	t.Run("DoneRecordCarriesDeliveries", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		ctx := t.Context()
		r := insertRotation(t, s, "app-db", 0)
		d := func(target string, state store.DeliveryState) store.UpsertDeliveryParams {
			return store.UpsertDeliveryParams{RotationID: r.ID, Target: target, State: state, Fingerprint: "fp", Attempts: 1, Now: t0,
				Audit: &store.AppendAuditParams{Event: "delivery." + string(state), Actor: "test"}}
		}
		upsertDelivery(t, s, r, "vercel", store.DeliveryWritten)
		_, err := s.AppendStep(ctx, store.AppendStepParams{RotationID: r.ID, Name: "confirm", Status: store.StepDone, Now: t0.Add(time.Second),
			Open: &store.OpenStep{Name: "confirm", At: t0}, Deliveries: []store.UpsertDeliveryParams{d("env", store.DeliveryVerified), d("vercel", store.DeliveryUnverified)}})
		require.NoError(t, err)
		ds, err := s.ListDeliveries(ctx, store.ListDeliveriesParams{RotationID: r.ID})
		require.NoError(t, err)
		require.Len(t, ds, 2)
		require.Equal(t, "env", ds[0].Target)
		require.Equal(t, store.DeliveryVerified, ds[0].State)
		require.Equal(t, "app-db", ds[0].Credential, "a blank credential is the rotation's")
		require.Equal(t, store.DeliveryUnverified, ds[1].State, "an existing delivery is updated")
		events, err := s.ListAudit(ctx, store.ListAuditParams{Credential: "app-db", Events: []string{"delivery.verified", "delivery.unverifiable"}})
		require.NoError(t, err)
		require.Len(t, events, 2, "each delivery's audit event")
		steps, err := s.ListSteps(ctx, store.ListStepsParams{RotationID: r.ID})
		require.NoError(t, err)
		require.Len(t, steps, 2)

		// One delivery that cannot be written fails the whole write.
		other := insertRotation(t, s, "other-db", 0)
		bad := d("env", store.DeliveryMismatch)
		bad.Credential = "other-db"
		_, err = s.AppendStep(ctx, store.AppendStepParams{RotationID: r.ID, Name: "confirm", Status: store.StepFailed, Detail: "x", Now: t0.Add(2 * time.Second),
			Deliveries: []store.UpsertDeliveryParams{d("vercel", store.DeliveryMismatch), bad}})
		require.Error(t, err)
		misfiled := d("env", store.DeliveryMismatch)
		misfiled.RotationID = other.ID
		_, err = s.AppendStep(ctx, store.AppendStepParams{RotationID: r.ID, Name: "confirm", Status: store.StepFailed, Detail: "x", Now: t0.Add(2 * time.Second),
			Deliveries: []store.UpsertDeliveryParams{misfiled}})
		require.Error(t, err, "a delivery of another rotation")
		after, err := s.ListDeliveries(ctx, store.ListDeliveriesParams{RotationID: r.ID})
		require.NoError(t, err)
		require.Equal(t, ds, after)
		stepsAfter, err := s.ListSteps(ctx, store.ListStepsParams{RotationID: r.ID})
		require.NoError(t, err)
		require.Equal(t, steps, stepsAfter)
	})

	t.Run("UnknownRotation", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		_, err := s.AppendStep(t.Context(), store.AppendStepParams{RotationID: 4242, Name: "lock", Status: store.StepStarted, Now: t0})
		require.ErrorIs(t, err, store.ErrNotFound)
	})
}
