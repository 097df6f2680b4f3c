package main

import (
	"bytes"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/rotorhq/rotor/internal/pgbouncertest"
	"github.com/rotorhq/rotor/internal/pgcluster"
	"github.com/rotorhq/rotor/internal/pgtest"
	"github.com/rotorhq/rotor/internal/testdeps"
)

// TestLoadScenarioShort is the load scenario's short version, run by
// `make test` and CI: two rotations per rotor way (one by hand) on both
// paths, under a lighter load. It checks the claims, not the speed: the
// dual strategy fails no connection and drops no session for any kind of
// consumer — re-readers, deployments that move only when their reload has
// finished, serverless functions, a pool with a maximum lifetime, and the
// consumer that read the old value just before the switch — directly and
// through PgBouncer, and it did retire the old role every time; the
// by-hand flow does fail connections (or the scenario would not measure
// anything); every kind did traffic during the rotations.
func TestLoadScenarioShort(t *testing.T) {
	testdeps.SkipUnderQuick(t, "PostgreSQL and PgBouncer")
	if _, err := pgcluster.FindBinaries(); err != nil {
		pgtest.SkipOrFail(t, err) // fails under CI
	}
	if _, err := pgbouncertest.FindBinary(); err != nil {
		pgbouncertest.SkipOrFail(t, err) // fails under CI
	}
	o := options{rotations: 2, manualRotations: 1, raceRotations: 1, workers: 3, deployments: 2, serverless: 2, pool: 3,
		poolLifetime: 2 * time.Second, deployDelay: time.Second,
		targets: 3, delay: 300 * time.Millisecond, direct: true, bouncer: true}
	rows, skipped, err := run(t.Context(), o)
	require.NoError(t, err)
	require.Empty(t, skipped, "PgBouncer must be installed where the tests run (apt-get install pgbouncer)")
	require.Len(t, rows, 12)

	paths := map[string]int{}
	for _, r := range rows {
		paths[r.path]++
		want := loadKinds
		if r.race {
			want = raceKinds
		}
		require.Len(t, r.consumers, len(want), "%s (%s)", r.way, r.path)
		// Every way changes the password for good: the login consumers
		// had before a rotation is refused after it.
		require.Equal(t, r.rotations, r.oldRefused, "%s (%s): the old login still worked after a rotation", r.way, r.path)
		require.Zero(t, r.attention, "%s (%s): rotations ended with the old role in use", r.way, r.path)
		require.Zero(t, r.stopped, "%s (%s): rotations stopped: %s", r.way, r.path, r.stopReason)
		for _, c := range r.consumers {
			s := c.stats
			require.Zero(t, s.PoolDropped, "%s (%s), %s: sessions dropped: %s", r.way, r.path, c.kind, s.LastError)
			if r.race {
				// One read just before each change of the file, one
				// connection 150 ms later.
				require.EqualValues(t, r.rotations, s.OK+s.Failed, "%s (%s), %s: one attempt per rotation", r.way, r.path, c.kind)
			}
		}
		switch {
		case r.way == "rotor dual":
			for _, c := range r.consumers {
				s := c.stats
				require.Zero(t, s.Failed, "dual (%s), %s: connections failed: %s", r.path, c.kind, s.LastError)
				require.Zero(t, s.Window, "dual (%s), %s", r.path, c.kind)
				require.Positive(t, s.OK, "dual (%s), %s: no traffic during the rotations", r.path, c.kind)
			}
		case r.way == "rotor single" && r.race:
			// single has changed the password before it publishes.
			require.EqualValues(t, r.rotations, r.stats(kindRaceEnv).Failed, "single (%s): the old value is refused at once", r.path)
			require.EqualValues(t, r.rotations, r.stats(kindRaceLive).Failed, "single (%s): the old value is refused at once", r.path)
		case r.way == "rotor single":
			// The deployment keeps the old value until its reload has
			// finished.
			require.Positive(t, r.stats(kindDeployment).Failed, "single (%s): deployment requests should fail until the new deployment is live", r.path)
			require.Positive(t, r.stats(kindReread).OK, "single (%s): no connection succeeded", r.path)
		case !r.race:
			s := r.stats(kindReread)
			require.Positive(t, s.Failed, "by hand (%s): the manual flow should break connections", r.path)
			require.Positive(t, s.Window)
		}
	}
	require.Equal(t, map[string]int{"direct": 6, "PgBouncer": 6}, paths)

	var out bytes.Buffer
	printTable(&out, rows, o)
	for _, want := range append(append([]string{"rotor dual", "PgBouncer"}, loadKinds...), raceKinds...) {
		require.Contains(t, out.String(), want)
	}
}
