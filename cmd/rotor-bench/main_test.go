package main

import (
	"bytes"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/rotorhq/rotor/internal/pgbouncertest"
	"github.com/rotorhq/rotor/internal/pgcluster"
	"github.com/rotorhq/rotor/internal/pgtest"
)

// TestLoadScenarioShort is the load scenario's short version, run by
// `make test` and CI: two rotations per rotor way (one by hand) on both
// paths, under a lighter load. It checks the claims, not the speed: the
// dual strategy fails no connection and drops no session, directly and
// through PgBouncer; the by-hand flow does fail connections (or the
// scenario would not measure anything); every way saw traffic.
func TestLoadScenarioShort(t *testing.T) {
	if _, err := pgcluster.FindBinaries(); err != nil {
		pgtest.SkipOrFail(t, err) // fails under CI
	}
	if _, err := pgbouncertest.FindBinary(); err != nil {
		pgbouncertest.SkipOrFail(t, err) // fails under CI
	}
	o := options{rotations: 2, manualRotations: 1, workers: 4, pool: 4, recycle: time.Second,
		targets: 3, delay: 300 * time.Millisecond, direct: true, bouncer: true}
	rows, skipped, err := run(t.Context(), o)
	require.NoError(t, err)
	require.Empty(t, skipped, "PgBouncer must be installed where the tests run (apt-get install pgbouncer)")
	require.Len(t, rows, 6)

	paths := map[string]int{}
	for _, r := range rows {
		paths[r.path]++
		require.Positive(t, r.stats.OK, "%s (%s): no connection succeeded", r.way, r.path)
		require.Zero(t, r.stats.PoolDropped, "%s (%s) dropped long-lived sessions", r.way, r.path)
		switch r.way {
		case "rotor dual":
			require.Zero(t, r.stats.Failed, "dual (%s): connections failed: %s", r.path, r.stats.LastError)
			require.Zero(t, r.stats.Window)
		case "by hand (seed runbook)":
			require.Positive(t, r.stats.Failed, "by hand (%s): the manual flow should break connections", r.path)
			require.Positive(t, r.stats.Window)
		}
	}
	require.Equal(t, map[string]int{"direct": 3, "PgBouncer": 3}, paths)

	var out bytes.Buffer
	printTable(&out, rows, o)
	require.Contains(t, out.String(), "rotor dual")
	require.Contains(t, out.String(), "PgBouncer")
}
