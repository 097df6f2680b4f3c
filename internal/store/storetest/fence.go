package storetest

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/rotorhq/rotor/internal/store"
)

func exerciseFence(t *testing.T, newStore func(t *testing.T) store.Store) {
	t.Run("TokenGrowsOnEveryChangeOfHands", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		ctx := t.Context()
		a, err := acquire(t, s, "a", t0)
		require.NoError(t, err)
		require.NotZero(t, a.Token, "a zero token would be an unchecked fence")

		renewed, err := s.RenewLease(ctx, store.RenewLeaseParams{Name: "app-db", Holder: "a", TTL: ttl, Now: t0.Add(time.Second)})
		require.NoError(t, err)
		require.Equal(t, a.Token, renewed.Token, "renewing keeps the token")
		again, err := acquire(t, s, "a", t0.Add(2*time.Second))
		require.NoError(t, err)
		require.Equal(t, a.Token, again.Token, "re-acquiring one's own lease keeps the token")

		b, err := acquire(t, s, "b", t0.Add(time.Hour))
		require.NoError(t, err, "expired")
		require.Greater(t, b.Token, a.Token, "an expired lease taken over gets a larger token")

		require.NoError(t, s.ReleaseLease(ctx, store.ReleaseLeaseParams{Name: "app-db", Holder: "b"}))
		c, err := acquire(t, s, "a", t0.Add(time.Hour))
		require.NoError(t, err)
		require.Greater(t, c.Token, b.Token, "a release does not reset the token")

		d, err := s.AcquireLease(ctx, store.AcquireLeaseParams{Name: "app-db", Holder: "d", TTL: ttl, Now: t0.Add(time.Hour), TakeOverFrom: "a"})
		require.NoError(t, err)
		require.Greater(t, d.Token, c.Token, "a take-over gets a larger token")
		got, err := s.GetLease(ctx, store.GetLeaseParams{Name: "app-db"})
		require.NoError(t, err)
		require.Equal(t, d, got)
	})

	t.Run("StaleTokenWritesNothing", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		ctx := t.Context()
		old, err := acquire(t, s, "a", t0)
		require.NoError(t, err)
		stale := old.Fence()

		// Writes under the current token pass.
		r, err := s.InsertRotation(ctx, store.InsertRotationParams{Credential: "app-db", Strategy: "dual", Trigger: "manual", Now: t0, Fence: stale})
		require.NoError(t, err)
		v, err := s.InsertVersion(ctx, store.InsertVersionParams{
			Credential: "app-db", Role: "app_blue", Stage: store.StagePending, RotationID: r.ID,
			Sealed: sealed(1), Fingerprint: "fp-1", Now: t0, Fence: stale,
		})
		require.NoError(t, err)
		_, err = s.AppendStep(ctx, store.AppendStepParams{RotationID: r.ID, Name: "prepare", Status: store.StepDone, Now: t0, Fence: stale})
		require.NoError(t, err)

		cur, err := acquire(t, s, "b", t0.Add(ttl))
		require.NoError(t, err)
		require.Greater(t, cur.Token, old.Token)

		before := snapshot(t, s, r.ID)
		applied := t0.Add(time.Hour)
		writes := map[string]func() error{
			"InsertRotation": func() error {
				_, err := s.InsertRotation(ctx, store.InsertRotationParams{Credential: "other-db", Strategy: "dual", Trigger: "manual", Now: applied, Fence: stale})
				return err
			},
			"InsertVersion": func() error {
				_, err := s.InsertVersion(ctx, store.InsertVersionParams{Credential: "app-db", Role: "app_green", Stage: store.StageRetired, Now: applied, Fence: stale})
				return err
			},
			"ReplacePendingSecret": func() error {
				return s.ReplacePendingSecret(ctx, store.ReplacePendingSecretParams{ID: v.ID, Sealed: sealed(9), Fingerprint: "fp-9", Fence: stale})
			},
			"UpdateRotation": func() error {
				_, err := s.UpdateRotation(ctx, store.UpdateRotationParams{ID: r.ID, AppliedAt: &applied, Rollback: []byte{1}, Now: applied, Fence: stale})
				return err
			},
			"AppendStep": func() error {
				_, err := s.AppendStep(ctx, store.AppendStepParams{RotationID: r.ID, Name: "apply", Status: store.StepStarted, Now: applied, Fence: stale})
				return err
			},
			"AppendStep with its started record and deliveries": func() error {
				_, err := s.AppendStep(ctx, store.AppendStepParams{RotationID: r.ID, Name: "confirm", Status: store.StepDone, Now: applied, Fence: stale,
					Open:       &store.OpenStep{Name: "confirm", At: applied},
					Deliveries: []store.UpsertDeliveryParams{{RotationID: r.ID, Target: "env", State: store.DeliveryVerified, Now: applied}}})
				return err
			},
			"UpsertDelivery": func() error {
				_, err := s.UpsertDelivery(ctx, store.UpsertDeliveryParams{RotationID: r.ID, Target: "env", State: store.DeliveryWritten, Now: applied, Fence: stale})
				return err
			},
			"FinishRotation": func() error {
				_, err := s.FinishRotation(ctx, store.FinishRotationParams{
					ID: r.ID, Status: store.StatusSucceeded, Promote: true, Now: applied, Fence: stale,
					Audit: store.AppendAuditParams{Event: "rotation.succeeded"},
				})
				return err
			},
		}
		for name, write := range writes {
			require.ErrorIs(t, write(), store.ErrFenced, name)
		}
		require.Equal(t, before, snapshot(t, s, r.ID), "a fenced write changes nothing")

		// The new holder's fence passes, and an unknown lease's fence fails.
		_, err = s.AppendStep(ctx, store.AppendStepParams{RotationID: r.ID, Name: "apply", Status: store.StepStarted, Now: applied, Fence: cur.Fence()})
		require.NoError(t, err)
		_, err = s.AppendStep(ctx, store.AppendStepParams{RotationID: r.ID, Name: "apply", Status: store.StepDone, Now: applied,
			Fence: store.Fence{Lease: "never-taken", Token: 1}})
		require.ErrorIs(t, err, store.ErrFenced)
	})
}

// stateSnapshot is everything a fenced write could have touched.
type stateSnapshot struct {
	Rotations  []*store.Rotation
	Versions   []*store.Version
	Steps      []*store.Step
	Deliveries []*store.Delivery
	Audit      []*store.AuditEvent
}

func snapshot(t *testing.T, s store.Store, rotationID int64) stateSnapshot {
	t.Helper()
	ctx := t.Context()
	var (
		snap stateSnapshot
		err  error
	)
	snap.Rotations, err = s.ListRotations(ctx, store.ListRotationsParams{})
	require.NoError(t, err)
	snap.Versions, err = s.ListVersions(ctx, store.ListVersionsParams{})
	require.NoError(t, err)
	snap.Steps, err = s.ListSteps(ctx, store.ListStepsParams{RotationID: rotationID})
	require.NoError(t, err)
	snap.Deliveries, err = s.ListDeliveries(ctx, store.ListDeliveriesParams{RotationID: rotationID})
	require.NoError(t, err)
	snap.Audit, err = s.ListAudit(ctx, store.ListAuditParams{})
	require.NoError(t, err)
	return snap
}
