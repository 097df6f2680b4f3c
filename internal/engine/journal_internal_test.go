package engine

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/rotorhq/rotor/internal/store"
	"github.com/rotorhq/rotor/internal/store/sqlite"
)

// TestAppliedTimeFromAnOldJournal: a rotation journaled by a rotor that
// kept the apply time only in the apply step's detail still resumes with
// that time (revoke in single ends the sessions opened before it).
func TestAppliedTimeFromAnOldJournal(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "state.db"))
	require.NoError(t, err)
	t.Cleanup(func() { st.Close() })
	now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	rot, err := st.InsertRotation(ctx, store.InsertRotationParams{Credential: "app", Strategy: "single", Trigger: "manual", Revoke: true, Now: now})
	require.NoError(t, err)
	r := &run{e: &Engine{Store: st}, cr: &Credential{Name: "app"}, rot: rot}

	got, err := r.appliedByOldJournal(ctx)
	require.NoError(t, err)
	require.True(t, got.IsZero(), "apply never finished")

	applied := now.Add(1234567891 * time.Nanosecond)
	for _, s := range []store.AppendStepParams{
		{Name: StepApply, Status: store.StepStarted},
		{Name: StepApply, Status: store.StepDone, Detail: "password set on role app (SCRAM verifier) at " + applied.Format(time.RFC3339Nano)},
		{Name: StepTest, Status: store.StepStarted},
	} {
		s.RotationID, s.Now = rot.ID, now
		_, err := st.AppendStep(ctx, s)
		require.NoError(t, err)
	}
	got, err = r.appliedByOldJournal(ctx)
	require.NoError(t, err)
	require.True(t, applied.Equal(got), "want %s, got %s", applied, got)
}
