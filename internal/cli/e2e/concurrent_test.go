//go:build unix

package e2e_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/rotorhq/rotor/internal/store"
	"github.com/rotorhq/rotor/internal/store/sqlite"
)

// TestConcurrentRotate runs two rotor processes against one store: while
// the first holds the credential's lease (stopped before publish until the
// test lets it go), a second `rotor rotate` exits 3 naming the holder and
// changes nothing, and the first then finishes normally.
func TestConcurrentRotate(t *testing.T) {
	t.Parallel()
	w := newWorld(t, nil, credSpec{name: "app", strategy: "single"})
	gate := filepath.Join(w.dir, "release-publish")
	first := w.start(t, []string{"ROTOR_TEST_PAUSE_AT=publish:" + gate}, "rotate", "app")
	t.Cleanup(first.kill) // only matters when an assertion below fails

	holder := w.waitForLeaseHolder(t, first, "app")
	require.Contains(t, holder, "/"+strconv.Itoa(first.cmd.Process.Pid)+"/", "the lease holder names the first process")

	second := w.rotor(t, nil, "rotate", "app")
	require.Equal(t, 3, second.code, "a second rotate must exit 3 (in progress):\n%s", w.scrub(second.output()))
	require.Contains(t, second.stderr, holder, "the message names the process holding the lease")
	require.Contains(t, second.stderr, "in progress")
	require.False(t, first.exited(), "the first rotate is still held before publish")

	require.NoError(t, os.WriteFile(gate, nil, 0o600))
	r := w.finish(first)
	require.Equal(t, 0, r.code, "the first rotate:\n%s", w.scrub(r.output()))
	w.requireSettled(t, "app", nil)
	require.False(t, w.unfinishedShown(t, "app"))

	// The second process started nothing.
	st, err := sqlite.Open(t.Context(), filepath.Join(w.dir, ".rotor", "state.db"))
	require.NoError(t, err)
	defer st.Close()
	rots, err := st.ListRotations(t.Context(), store.ListRotationsParams{Credential: "app"})
	require.NoError(t, err)
	require.Len(t, rots, 1, "only the first process rotated")
	require.Equal(t, store.StatusSucceeded, rots[0].Status)
}

// waitForLeaseHolder polls `rotor status --json` until it reports a lease
// holder for cred, failing if p ends first. No deadline: p is stopped at a
// gate until the test opens it, so the lease cannot go away meanwhile.
func (w *world) waitForLeaseHolder(t *testing.T, p *proc, cred string) string {
	t.Helper()
	for {
		if p.exited() {
			t.Fatalf("rotate ended before it was seen holding the lease:\n%s", w.scrub(w.finish(p).output()))
		}
		r := w.mustRotor(t, "status", "--json", cred)
		var sts []struct {
			Name        string `json:"name"`
			LeaseHolder string `json:"lease_holder"`
		}
		require.NoError(t, json.Unmarshal([]byte(r.stdout), &sts), "status --json:\n%s", w.scrub(r.stdout))
		require.Len(t, sts, 1)
		if sts[0].LeaseHolder != "" {
			return sts[0].LeaseHolder
		}
		time.Sleep(50 * time.Millisecond)
	}
}
