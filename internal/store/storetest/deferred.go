package storetest

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/rotorhq/rotor/internal/store"
)

// exerciseDeferred: a deferred write ("Deferred writes" in package store)
// is the same write with a weaker wait. Everything it writes reads back at
// once, and every rule of the durable write holds: fences, uniqueness,
// leases held by others.
func exerciseDeferred(t *testing.T, newStore func(t *testing.T) store.Store) {
	t.Run("ReadsBackAtOnce", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		ctx := t.Context()
		l, err := s.AcquireLease(ctx, store.AcquireLeaseParams{Name: "app-db", Holder: "h1", TTL: ttl, Now: t0, Deferred: true})
		require.NoError(t, err)
		got, err := s.GetLease(ctx, store.GetLeaseParams{Name: "app-db"})
		require.NoError(t, err)
		require.Equal(t, l, got)
		fence := l.Fence()

		r, err := s.InsertRotation(ctx, store.InsertRotationParams{Credential: "app-db", Strategy: "single", Trigger: "manual", Now: t0, Fence: fence, Deferred: true})
		require.NoError(t, err)
		_, err = s.AppendAudit(ctx, store.AppendAuditParams{Credential: "app-db", RotationID: r.ID, Event: "rotation.started", Actor: "h1", Detail: `{}`, Now: t0, Deferred: true})
		require.NoError(t, err)
		_, err = s.AppendStep(ctx, store.AppendStepParams{Fence: fence, RotationID: r.ID, Name: "prepare", Status: store.StepStarted, Now: t0, Deferred: true})
		require.NoError(t, err)
		v, err := s.InsertVersion(ctx, store.InsertVersionParams{
			Credential: "app-db", Role: "app", Stage: store.StagePending, RotationID: r.ID,
			Sealed: sealed(7), Fingerprint: "fp-7", Now: t0, Fence: fence, Deferred: true,
		})
		require.NoError(t, err)
		applied := t0.Add(time.Second)
		_, err = s.UpdateRotation(ctx, store.UpdateRotationParams{ID: r.ID, ToVersionID: &v.ID, Rollback: sealed(8), AppliedAt: &applied, Now: applied, Fence: fence, Deferred: true})
		require.NoError(t, err)
		_, err = s.AppendStep(ctx, store.AppendStepParams{Fence: fence, RotationID: r.ID, Name: "prepare", Status: store.StepDone, Detail: "role app", Now: applied, Deferred: true})
		require.NoError(t, err)
		_, err = s.UpsertDelivery(ctx, store.UpsertDeliveryParams{
			RotationID: r.ID, Credential: "app-db", Target: "env", State: store.DeliveryWritten, Fingerprint: "fp-7", Attempts: 1, Now: applied, Fence: fence, Deferred: true,
		})
		require.NoError(t, err)

		rot, err := getRotation(ctx, s, r.ID)
		require.NoError(t, err)
		require.Equal(t, v.ID, rot.ToVersionID)
		require.Equal(t, sealed(8), rot.Rollback)
		requireTime(t, applied, rot.AppliedAt)
		require.Equal(t, "prepare", rot.Step, "the rotation mirrors its journal's last event, deferred or not")
		steps, err := s.ListSteps(ctx, store.ListStepsParams{RotationID: r.ID})
		require.NoError(t, err)
		require.Len(t, steps, 2)
		require.Equal(t, store.StepDone, steps[1].Status)
		pending := requireVersion(t, s, v.ID, store.StagePending, true)
		require.Equal(t, sealed(7), pending.Sealed)
		ds, err := s.ListDeliveries(ctx, store.ListDeliveriesParams{RotationID: r.ID})
		require.NoError(t, err)
		require.Len(t, ds, 1)
		require.Equal(t, store.DeliveryWritten, ds[0].State)
		events, err := s.ListAudit(ctx, store.ListAuditParams{Credential: "app-db"})
		require.NoError(t, err)
		require.Len(t, events, 1)
		require.Equal(t, "rotation.started", events[0].Event)

		// A durable write after them all: the usual finish.
		done, err := s.FinishRotation(ctx, store.FinishRotationParams{ID: r.ID, Status: store.StatusSucceeded, Promote: true, Now: applied, Fence: fence,
			Audit: store.AppendAuditParams{Event: "rotation.succeeded"}})
		require.NoError(t, err)
		require.Equal(t, store.StatusSucceeded, done.Status)
		requireVersion(t, s, v.ID, store.StageCurrent, true)

		require.NoError(t, s.ReleaseLease(ctx, store.ReleaseLeaseParams{Name: "app-db", Holder: "h1", Deferred: true}))
		_, err = s.GetLease(ctx, store.GetLeaseParams{Name: "app-db"})
		require.ErrorIs(t, err, store.ErrNotFound)
		require.ErrorIs(t, s.ReleaseLease(ctx, store.ReleaseLeaseParams{Name: "app-db", Holder: "h1", Deferred: true}), store.ErrLeaseLost,
			"a deferred release of a lease not held fails as a durable one does")
	})

	t.Run("KeepsEveryRule", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		ctx := t.Context()
		old, err := acquire(t, s, "a", t0)
		require.NoError(t, err)
		r, err := s.InsertRotation(ctx, store.InsertRotationParams{Credential: "app-db", Strategy: "dual", Trigger: "manual", Now: t0, Fence: old.Fence(), Deferred: true})
		require.NoError(t, err)
		_, err = s.InsertVersion(ctx, store.InsertVersionParams{Credential: "app-db", Role: "app_blue", Stage: store.StagePending, RotationID: r.ID,
			Sealed: sealed(1), Fingerprint: "fp-1", Now: t0, Fence: old.Fence(), Deferred: true})
		require.NoError(t, err)
		_, err = s.InsertVersion(ctx, store.InsertVersionParams{Credential: "app-db", Role: "app_green", Stage: store.StagePending, RotationID: r.ID,
			Sealed: sealed(2), Fingerprint: "fp-2", Now: t0, Fence: old.Fence(), Deferred: true})
		require.ErrorIs(t, err, store.ErrConflict, "a second pending version is refused, deferred or not")

		_, err = s.AcquireLease(ctx, store.AcquireLeaseParams{Name: "app-db", Holder: "b", TTL: ttl, Now: t0.Add(time.Second), Deferred: true})
		require.ErrorIs(t, err, store.ErrLeaseHeld)
		_, err = s.AcquireLease(ctx, store.AcquireLeaseParams{Name: "app-db", Holder: "b", TTL: ttl, Now: t0.Add(time.Hour), Deferred: true})
		require.NoError(t, err, "expired")

		before := snapshot(t, s, r.ID)
		_, err = s.AppendStep(ctx, store.AppendStepParams{Fence: old.Fence(), RotationID: r.ID, Name: "apply", Status: store.StepStarted, Now: t0, Deferred: true})
		require.ErrorIs(t, err, store.ErrFenced)
		_, err = s.UpdateRotation(ctx, store.UpdateRotationParams{ID: r.ID, Rollback: sealed(9), Now: t0, Fence: old.Fence(), Deferred: true})
		require.ErrorIs(t, err, store.ErrFenced)
		_, err = s.UpsertDelivery(ctx, store.UpsertDeliveryParams{RotationID: r.ID, Credential: "app-db", Target: "env", State: store.DeliveryWritten, Now: t0, Fence: old.Fence(), Deferred: true})
		require.ErrorIs(t, err, store.ErrFenced)
		require.Equal(t, before, snapshot(t, s, r.ID), "a fenced deferred write changes nothing")

		// The store still writes, durably, after refused deferred writes.
		_, err = s.AppendStep(ctx, store.AppendStepParams{RotationID: r.ID, Name: "apply", Status: store.StepStarted, Now: t0})
		require.NoError(t, err)
	})
}
