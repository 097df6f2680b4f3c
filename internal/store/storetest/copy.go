package storetest

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/rotorhq/rotor/internal/store"
)

// Fill writes a store's worth of varied rows through s's ordinary methods,
// for tests of whatever moves stores (Export/Import, storecopy): versions
// in every stage, one wiped; rotations finished, rolled back and
// unfinished, one with a rollback snapshot; journal steps, a failed one
// among them; deliveries and leases whose names sort differently byte-wise
// than in most locales; held, released and taken-over leases; audit events.
func Fill(t *testing.T, s store.Store) {
	t.Helper()
	ctx := t.Context()
	at := func(minutes int) time.Time { return t0.Add(time.Duration(minutes)*time.Minute + 7) }

	// app-db: a password imported as current, then two rotations that
	// finished and one that stopped at a failed step.
	_, err := s.InsertVersion(ctx, store.InsertVersionParams{Credential: "app-db", Role: "app_green", Stage: store.StageCurrent,
		Sealed: sealed(1), Fingerprint: "fp-imported", Now: at(1)})
	require.NoError(t, err)
	for i := range 2 {
		r, _ := rotate(t, s, "app-db")
		for _, name := range []string{"prepare", "apply", "test", "publish"} {
			_, err := s.AppendStep(ctx, store.AppendStepParams{RotationID: r.ID, Name: name, Status: store.StepDone, Detail: `{"step":"` + name + `"}`, Now: at(10*i + 2)})
			require.NoError(t, err)
		}
		for _, target := range []string{"b", "B", "a_1"} {
			_, err := s.UpsertDelivery(ctx, store.UpsertDeliveryParams{RotationID: r.ID, Credential: "app-db", Target: target,
				State: store.DeliveryVerified, Fingerprint: "fp-" + target, Attempts: i + 2, Detail: "ok", Now: at(10*i + 3)})
			require.NoError(t, err)
		}
		_, err := s.FinishRotation(ctx, store.FinishRotationParams{ID: r.ID, Status: store.StatusSucceeded, Outcome: "rotated", Promote: true,
			RetirePrevious: i == 1, Audit: store.AppendAuditParams{Event: "rotation.succeeded", Actor: "holder-a", Detail: `{"n":1}`}, Now: at(10*i + 4)})
		require.NoError(t, err)
	}
	r, _ := rotate(t, s, "app-db")
	applied := at(30)
	_, err = s.UpdateRotation(ctx, store.UpdateRotationParams{ID: r.ID, Rollback: sealed(9), AppliedAt: &applied, Now: at(30)})
	require.NoError(t, err)
	_, err = s.AppendStep(ctx, store.AppendStepParams{RotationID: r.ID, Name: "apply", Status: store.StepFailed, Detail: "connection refused", Now: at(30)})
	require.NoError(t, err)
	_, err = s.UpsertDelivery(ctx, store.UpsertDeliveryParams{RotationID: r.ID, Credential: "app-db", Target: "b", State: store.DeliveryFailed,
		Error: "HTTP 500", Attempts: 3, Now: at(31)})
	require.NoError(t, err)

	// other-db: a rotation rolled back, its pending version wiped.
	r, _ = rotate(t, s, "other-db")
	_, err = s.FinishRotation(ctx, store.FinishRotationParams{ID: r.ID, Status: store.StatusRolledBack, Error: "login test failed",
		Audit: store.AppendAuditParams{Event: "rotation.rolled_back", Actor: "holder-b"}, Now: at(40)})
	require.NoError(t, err)
	_, err = s.AppendAudit(ctx, store.AppendAuditParams{Event: "roles.setup", Actor: "ünïcode ✓", Detail: `{"roles":["a","b"]}`, Now: at(41)})
	require.NoError(t, err)

	// Leases: held; released (the row stays, with its token); taken over.
	_, err = s.AcquireLease(ctx, store.AcquireLeaseParams{Name: "app-db", Holder: "holder-a", TTL: time.Hour, Now: at(30)})
	require.NoError(t, err)
	_, err = s.AcquireLease(ctx, store.AcquireLeaseParams{Name: "z-done", Holder: "holder-b", TTL: time.Hour, Now: at(40)})
	require.NoError(t, err)
	require.NoError(t, s.ReleaseLease(ctx, store.ReleaseLeaseParams{Name: "z-done", Holder: "holder-b"}))
	_, err = s.AcquireLease(ctx, store.AcquireLeaseParams{Name: "Other", Holder: "holder-c", TTL: time.Minute, Now: at(40)})
	require.NoError(t, err)
	_, err = s.AcquireLease(ctx, store.AcquireLeaseParams{Name: "Other", Holder: "holder-d", TTL: time.Minute, Now: at(42)})
	require.NoError(t, err)
}

func export(t *testing.T, s store.Store) *store.Snapshot {
	t.Helper()
	snap, err := s.Export(t.Context(), store.ExportParams{})
	require.NoError(t, err)
	return snap
}

func storeID(t *testing.T, s store.Store) string {
	t.Helper()
	in, err := s.Info(t.Context())
	require.NoError(t, err)
	return in.ID
}

// exerciseCopy: Export reads everything, Import writes it into an empty
// store of any driver exactly, keeps the store's rules and refuses a store
// that is not empty.
func exerciseCopy(t *testing.T, newStore func(t *testing.T) store.Store) {
	t.Run("ExportEmpty", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		snap := export(t, s)
		require.Equal(t, storeID(t, s), snap.ID)
		require.Equal(t, &store.Snapshot{ID: snap.ID}, snap, "an empty store exports only its id")
	})

	t.Run("RoundTrip", func(t *testing.T) {
		t.Parallel()
		a, b := newStore(t), newStore(t)
		Fill(t, a)
		snap := export(t, a)
		require.Equal(t, storeID(t, a), snap.ID)
		require.Len(t, snap.Versions, 5)
		require.Len(t, snap.Rotations, 4)
		require.Len(t, snap.Steps, 9)
		require.Len(t, snap.Deliveries, 7)
		require.Len(t, snap.Audit, 4)
		var wiped, rollback int
		for _, v := range snap.Versions {
			if v.Sealed == nil {
				wiped++
			}
		}
		for _, r := range snap.Rotations {
			if r.Rollback != nil {
				rollback++
			}
		}
		require.Positive(t, wiped, "Fill leaves a wiped version")
		require.Equal(t, 1, rollback, "the unfinished rotation keeps its rollback snapshot")
		var leases, targets []string
		for _, l := range snap.Leases {
			leases = append(leases, l.Name+"/"+l.Holder)
		}
		for _, d := range snap.Deliveries[:3] {
			targets = append(targets, d.Target)
		}
		require.Equal(t, []string{"Other/holder-d", "app-db/holder-a", "z-done/"}, leases, "leases by name, byte-wise, released ones included")
		require.Equal(t, []string{"B", "a_1", "b"}, targets, "deliveries by rotation, then target byte-wise")

		require.NoError(t, b.Import(t.Context(), store.ImportParams{Snapshot: snap}))
		require.Equal(t, snap, export(t, b), "the copy holds exactly the rows exported")
		require.Equal(t, snap.ID, storeID(t, b), "the copy takes the store's id")
	})

	t.Run("ContinuesAfterImport", func(t *testing.T) {
		t.Parallel()
		a, b := newStore(t), newStore(t)
		Fill(t, a)
		snap := export(t, a)
		require.NoError(t, b.Import(t.Context(), store.ImportParams{Snapshot: snap}))
		ctx := t.Context()

		// The unfinished rotation is still the one active rotation.
		_, err := b.InsertRotation(ctx, store.InsertRotationParams{Credential: "app-db", Strategy: "dual", Trigger: "manual", Now: t0})
		require.ErrorIs(t, err, store.ErrConflict)

		// New rows are numbered on from the imported ones.
		r := insertRotation(t, b, "other-db", 0)
		require.Greater(t, r.ID, snap.Rotations[len(snap.Rotations)-1].ID)
		v := insertVersion(t, b, "other-db", store.StagePending, r.ID)
		require.Greater(t, v.ID, snap.Versions[len(snap.Versions)-1].ID)
		var otherSeq int64
		for _, sv := range snap.Versions {
			if sv.Credential == "other-db" {
				otherSeq = max(otherSeq, sv.Seq)
			}
		}
		require.Equal(t, otherSeq+1, v.Seq, "sequence numbers go on from the imported ones")
		st, err := b.AppendStep(ctx, store.AppendStepParams{RotationID: r.ID, Name: "prepare", Status: store.StepStarted, Now: t0})
		require.NoError(t, err)
		require.Greater(t, st.ID, snap.Steps[len(snap.Steps)-1].ID)
		e, err := b.AppendAudit(ctx, store.AppendAuditParams{Event: "x", Now: t0})
		require.NoError(t, err)
		require.Greater(t, e.ID, snap.Audit[len(snap.Audit)-1].ID)

		// Lease tokens never go back: a takeover of the imported lease
		// gets a larger token than it had.
		var other *store.Lease
		for _, l := range snap.Leases {
			if l.Name == "Other" {
				other = l
			}
		}
		require.NotNil(t, other)
		l, err := b.AcquireLease(ctx, store.AcquireLeaseParams{Name: "Other", Holder: "holder-e", TTL: ttl, Now: other.ExpiresAt})
		require.NoError(t, err)
		require.Equal(t, other.Token+1, l.Token)
		_, err = b.AcquireLease(ctx, store.AcquireLeaseParams{Name: "app-db", Holder: "holder-e", TTL: ttl, Now: t0})
		require.ErrorIs(t, err, store.ErrLeaseHeld, "an imported lease is held until it expires")
	})

	t.Run("RefusesNonEmpty", func(t *testing.T) {
		t.Parallel()
		a := newStore(t)
		Fill(t, a)
		snap := export(t, a)
		for name, write := range map[string]func(s store.Store) error{
			"audit event": func(s store.Store) error {
				_, err := s.AppendAudit(t.Context(), store.AppendAuditParams{Event: "x", Now: t0})
				return err
			},
			"released lease": func(s store.Store) error {
				if _, err := s.AcquireLease(t.Context(), store.AcquireLeaseParams{Name: "n", Holder: "h", TTL: ttl, Now: t0}); err != nil {
					return err
				}
				return s.ReleaseLease(t.Context(), store.ReleaseLeaseParams{Name: "n", Holder: "h"})
			},
		} {
			b := newStore(t)
			require.NoError(t, write(b), name)
			before := export(t, b)
			err := b.Import(t.Context(), store.ImportParams{Snapshot: snap})
			require.ErrorIs(t, err, store.ErrNotEmpty, "a store holding one %s is not empty", name)
			require.Equal(t, before, export(t, b), "a refused import changes nothing")
		}
	})

	t.Run("AllOrNothing", func(t *testing.T) {
		t.Parallel()
		a, b := newStore(t), newStore(t)
		Fill(t, a)
		snap := export(t, a)
		before := export(t, b)
		// Two current versions of one credential break a rule of the store;
		// the rows before the offending one must not stay behind.
		broken := *snap
		broken.Versions = nil
		for _, v := range snap.Versions {
			cp := *v
			if cp.Credential == "app-db" {
				cp.Stage = store.StageCurrent
			}
			broken.Versions = append(broken.Versions, &cp)
		}
		err := b.Import(t.Context(), store.ImportParams{Snapshot: &broken})
		require.ErrorIs(t, err, store.ErrConflict)
		require.Equal(t, before, export(t, b), "a failed import leaves the store as it was, id included")

		require.Error(t, b.Import(t.Context(), store.ImportParams{Snapshot: &store.Snapshot{}}), "a snapshot without a store id")
		require.NoError(t, b.Import(t.Context(), store.ImportParams{Snapshot: snap}), "the store is still empty, so a good import succeeds")
	})
}
