//go:build unix

package e2e_test

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/rotorhq/rotor/internal/pgtest"
	"github.com/rotorhq/rotor/internal/store"
	"github.com/rotorhq/rotor/internal/store/storeurl"
)

// sharedStore gives w a PostgreSQL state store of its own (a database on
// the world's cluster) through ROTOR_STATE_URL, as a CI job or a
// Kubernetes CronJob would; it returns the store for the test to inspect.
func sharedStore(t *testing.T, w *world) store.Store {
	t.Helper()
	db := createDatabase(t, w.cl)
	u := w.cl.AdminURL(db)
	w.env = append(w.env, "ROTOR_STATE_URL="+u.Reveal())
	w.stateURL = u
	st, err := storeurl.Open(t.Context(), u.Reveal())
	require.NoError(t, err)
	t.Cleanup(func() { st.Close() })
	return st
}

// TestFencedHolderNeverWritesAgain: a rotation frozen (SIGSTOP) past its
// lease is taken over by another process, which finishes it; resumed
// (SIGCONT), the first must stop without writing anything.
func TestFencedHolderNeverWritesAgain(t *testing.T) {
	t.Parallel()
	w := newWorld(t, nil, credSpec{name: "app", strategy: "dual"})
	st := sharedStore(t, w)
	w.env = append(w.env, "ROTOR_LEASE_TTL=2s")
	w.mustRotor(t, "setup-roles", "app")
	w.mustRotor(t, "rotate", "app")

	gate := filepath.Join(t.TempDir(), "gate")
	a := w.start(t, []string{"ROTOR_TEST_PAUSE_AT=publish:" + gate}, "rotate", "app")
	defer a.kill()
	// A has tested the new password and waits before publishing: the
	// test step's done record is the last thing it journals before the
	// pause.
	var rot *store.Rotation
	require.Eventually(t, func() bool {
		active, err := st.ListRotations(t.Context(), store.ListRotationsParams{Credential: "app", Active: true, Limit: 1})
		if err != nil || len(active) == 0 || active[0].Step != "test" {
			return false
		}
		steps, err := st.ListSteps(t.Context(), store.ListStepsParams{RotationID: active[0].ID})
		if err != nil || len(steps) == 0 || steps[len(steps)-1].Status != store.StepDone {
			return false
		}
		rot = active[0]
		return true
	}, 60*time.Second, 20*time.Millisecond)
	// Frozen outside any store transaction: one left open (a lease
	// renewal caught mid-way) would hold its row lock until A runs again,
	// and B would wait on it for ever.
	admin := pgtest.Connect(t.Context(), t, w.stateURL)
	stopped := false
	defer func() {
		if stopped {
			_ = syscall.Kill(a.cmd.Process.Pid, syscall.SIGCONT)
		}
	}()
	for attempt := 0; ; attempt++ {
		require.Less(t, attempt, 200, "A never stopped outside a transaction")
		require.NoError(t, syscall.Kill(a.cmd.Process.Pid, syscall.SIGSTOP))
		stopped = true
		// What A sent before it stopped reaches the server meanwhile.
		time.Sleep(50 * time.Millisecond)
		var open int
		require.NoError(t, admin.QueryRow(t.Context(), `SELECT count(*) FROM pg_stat_activity
			WHERE datname = current_database() AND pid <> pg_backend_pid() AND state <> 'idle'`).Scan(&open))
		if open == 0 {
			break
		}
		require.NoError(t, syscall.Kill(a.cmd.Process.Pid, syscall.SIGCONT))
		stopped = false
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(3 * time.Second) // past A's 2 s lease: nobody renews it

	b := w.mustRotor(t, "resume")
	require.Contains(t, b.stdout, "resumed rotation")
	done, err := st.ListRotations(t.Context(), store.ListRotationsParams{Credential: "app", Limit: 1})
	require.NoError(t, err)
	require.Equal(t, rot.ID, done[0].ID)
	require.True(t, done[0].Status == store.StatusSucceeded || done[0].Status == store.StatusSwitched, "B finished A's rotation: %s", done[0].Status)
	steps, err := st.ListSteps(t.Context(), store.ListStepsParams{RotationID: rot.ID})
	require.NoError(t, err)
	deliveries, err := st.ListDeliveries(t.Context(), store.ListDeliveriesParams{RotationID: rot.ID})
	require.NoError(t, err)
	envAfterB, err := os.ReadFile(w.envPath("app"))
	require.NoError(t, err)

	require.NoError(t, os.WriteFile(gate, nil, 0o600))
	require.NoError(t, syscall.Kill(a.cmd.Process.Pid, syscall.SIGCONT))
	stopped = false
	ra := w.finish(a)
	require.NotEqual(t, exitOK, ra.code, "the fenced holder must fail:\n%s", w.scrub(ra.output()))
	require.True(t, strings.Contains(ra.output(), "fenced") || strings.Contains(ra.output(), "lease"), w.scrub(ra.output()))

	after, err := st.ListSteps(t.Context(), store.ListStepsParams{RotationID: rot.ID})
	require.NoError(t, err)
	require.Equal(t, len(steps), len(after), "A journaled nothing after it lost the lease")
	dAfter, err := st.ListDeliveries(t.Context(), store.ListDeliveriesParams{RotationID: rot.ID})
	require.NoError(t, err)
	require.Equal(t, deliveries, dAfter)
	envNow, err := os.ReadFile(w.envPath("app"))
	require.NoError(t, err)
	require.Equal(t, string(envAfterB), string(envNow), "A wrote no target")
	conn, _ := w.envConn(t, "app")
	require.NoError(t, w.login(t.Context(), conn.User, conn.Password))
	w.requireNoLeaks(t, nil)
}

// TestTwoMachinesOneStore: two rotor processes in different directories,
// sharing nothing but the PostgreSQL store, start one credential's
// rotation at once: exactly one proceeds, the other exits 3.
func TestTwoMachinesOneStore(t *testing.T) {
	t.Parallel()
	w := newWorld(t, nil, credSpec{name: "app", strategy: "single"})
	st := sharedStore(t, w)
	w.mustRotor(t, "rotate", "app")
	// A second "machine": its own directory with a copy of the config and
	// the key, nothing else.
	other := t.TempDir()
	cfg, err := os.ReadFile(w.cfgPath)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(other, "rotor.yaml"), cfg, 0o600))
	key, err := os.ReadFile(filepath.Join(w.dir, ".rotor", "key"))
	require.NoError(t, err)
	require.NoError(t, os.MkdirAll(filepath.Join(other, ".rotor"), 0o700))
	require.NoError(t, os.WriteFile(filepath.Join(other, ".rotor", "key"), key, 0o600))
	otherEnv := []string{"ROTOR_CONFIG=" + filepath.Join(other, "rotor.yaml"), "ROTOR_TEST_PAUSE_AT=publish:1s"}

	a := w.start(t, []string{"ROTOR_TEST_PAUSE_AT=publish:1s"}, "rotate", "app")
	b := w.start(t, otherEnv, "rotate", "app")
	ra, rb := w.finish(a), w.finish(b)
	codes := []int{ra.code, rb.code}
	require.ElementsMatch(t, []int{exitOK, exitInProgress}, codes, "a: %s\nb: %s", w.scrub(ra.output()), w.scrub(rb.output()))
	rots, err := st.ListRotations(t.Context(), store.ListRotationsParams{Credential: "app"})
	require.NoError(t, err)
	require.Len(t, rots, 2, "one rotation before, exactly one now")
	require.Equal(t, store.StatusSucceeded, rots[0].Status)
}
