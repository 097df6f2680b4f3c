//go:build unix

package e2e_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestDeferredRetirementFromTheCommandLine: a dual rotation whose evidence
// cannot be complete within drain.wait exits 0 as "switched", leaves the
// old role working, shows the pending retirement in `status --json`, and
// `rotor resume` / `rotor retire` carry it out once it is safe.
func TestDeferredRetirementFromTheCommandLine(t *testing.T) {
	t.Parallel()
	w := newWorld(t, nil, credSpec{name: "app", strategy: "dual",
		extra: "    drain:\n      timeout: 1m\n      poll: 20ms\n      grace: 2500ms\n      quiet: 100ms\n      wait: 1s\n"})
	w.mustRotor(t, "setup-roles", "app")
	w.mustRotor(t, "rotate", "app")
	oldConn, _ := w.envConn(t, "app")

	r := w.mustRotor(t, "rotate", "app")
	require.Contains(t, r.stdout, "switched (old role retires later)")
	require.Contains(t, r.stdout, "old role "+oldConn.User+": still valid; it retires when the grace period ends")
	require.NoError(t, w.login(t.Context(), oldConn.User, oldConn.Password), "the old role keeps working while its retirement is pending")
	newConn, _ := w.envConn(t, "app")
	require.NotEqual(t, oldConn.User, newConn.User)

	r = w.mustRotor(t, "status", "app", "--json")
	var st []struct {
		Role    string `json:"role"`
		Pending *struct {
			Role        string    `json:"role"`
			Status      string    `json:"status"`
			GraceUntil  time.Time `json:"grace_until"`
			RetiresWhen string    `json:"retires_when"`
		} `json:"pending_retirement"`
	}
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &st), r.stdout)
	require.Len(t, st, 1)
	require.Equal(t, newConn.User, st[0].Role)
	require.NotNil(t, st[0].Pending, r.stdout)
	require.Equal(t, oldConn.User, st[0].Pending.Role)
	require.Equal(t, "switched", st[0].Pending.Status)
	require.Contains(t, st[0].Pending.RetiresWhen, "grace period ends")

	r = w.mustRotor(t, "status", "app")
	require.Contains(t, r.stdout, "retiring      old role "+oldConn.User)

	time.Sleep(time.Until(st[0].Pending.GraceUntil))
	r = w.mustRotor(t, "resume")
	require.Contains(t, r.stdout, "old role "+oldConn.User+": retired every reload finished at")
	require.Error(t, w.login(t.Context(), oldConn.User, oldConn.Password), "retired once the evidence was complete")
	require.NoError(t, w.login(t.Context(), newConn.User, newConn.Password))

	r = w.mustRotor(t, "retire", "app")
	require.Contains(t, r.stdout, "no old role is awaiting retirement")
	r = w.rotor(t, nil, "retire")
	require.Equal(t, exitUsage, r.code)
	w.requireNoLeaks(t, nil)
}
