package fanout_test

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/rotorhq/rotor/internal/cli"
	"github.com/rotorhq/rotor/internal/engine"
	"github.com/rotorhq/rotor/internal/secret"
	"github.com/rotorhq/rotor/internal/store"
)

// wantState is the state each target ends a successful rotation in:
// verified where the value can be read back, unverified where the
// platform keeps it write-only (GitHub, Fly.io).
func (w *world) wantState(name string) store.DeliveryState {
	if f := w.byName[name]; f != nil && !f.readable {
		return store.DeliveryUnverified
	}
	return store.DeliveryVerified
}

// TestDualRotationFansOutToEveryPlatform rotates a dual credential twice
// with engine.Rotate and a third time through the CLI, publishing to all
// six platform fakes and a .env file with every reload on.
func TestDualRotationFansOutToEveryPlatform(t *testing.T) {
	t.Parallel()
	w := newWorld(t, worldOpts{})

	var previous secret.String
	for i, wantRole := range []string{w.roles[0], w.roles[1]} {
		rot := w.rotate(engine.Options{})
		require.NoError(t, rot.err, "rotation %d", i+1)
		res := rot.res
		require.Equal(t, store.StatusSucceeded, res.Status, "rotation %d: %s", i+1, res.Outcome)
		require.Equal(t, wantRole, res.Role, "the second rotation switches roles")

		url := w.envURL()
		c := mustParse(t, url)
		require.Equal(t, wantRole, c.User, "the .env file names the new role")
		w.requireAllHold(url)
		for name, v := range w.values() {
			w.requireLogin(v, name+"'s DATABASE_URL")
		}
		if i == 1 {
			require.Equal(t, w.roles[0], res.OldRole)
			require.False(t, url.Equal(previous))
			w.requireNoLogin(previous, "the first rotation's URL (its role was retired)")
		}
		previous = url

		// Reloads: once per rotation, after every write.
		for name, n := range w.reloadCounts() {
			require.Equal(t, i+1, n, "%s reloads after %d rotation(s)", name, i+1)
		}
		w.requireReloadsAfterWrites(rot.requests, url)
		for _, name := range httpTargets {
			require.GreaterOrEqual(t, count(rot.requests, name, kindWrite), 1, "%s must be written", name)
		}
		for _, f := range w.fakes {
			if f.seenByReload == nil {
				continue
			}
			v, ok := f.seenByReload()
			require.True(t, ok && secret.New(v).Equal(url), "%s's reload did not run with the new DATABASE_URL", f.name)
		}
		for _, d := range w.railway.Deploys() {
			require.Equal(t, "redeploy", d.Reason, "writing Railway variables must not deploy by itself (skipDeploys)")
		}

		// The result lists every target with its state.
		require.Len(t, res.Targets, 1+len(httpTargets))
		for _, name := range append([]string{"env"}, httpTargets...) {
			tr := targetResult(t, res, name)
			require.Equal(t, w.wantState(name), tr.State, "%s: %s", name, tr.Detail)
			require.Empty(t, tr.Error, name)
			require.Equal(t, 1, tr.Attempts, name)
			require.True(t, tr.Changed, "%s was written", name)
		}
		pub, ok := stepResult(res, engine.StepPublish)
		require.True(t, ok)
		require.Equal(t, "done", pub.Status)
		if i == 0 {
			// (The second rotation may poll for the old role's sessions.)
			require.Empty(t, w.recordedSleeps(), "nothing failed, so nothing waited")
		}
	}

	// The CLI's report: a third rotation, run as `rotor rotate`, in
	// process, against the same config, store and fakes.
	ios, _, stdout, stderr := cli.TestStreams()
	f := &cli.Factory{IO: ios, LookupEnv: w.lookupEnv, Now: time.Now, HTTPClient: w.rec.client()}
	from := w.rec.mark()
	code := cli.Run(w.ctx, f, []string{"rotate", "app", "--progress", "--config", w.cfgPath})
	require.Equal(t, cli.ExitOK, code, "rotor rotate failed; stderr has the reason")

	url := w.envURL()
	c := mustParse(t, url)
	require.Equal(t, w.roles[0], c.User, "the third rotation switches back")
	w.requireAllHold(url)
	w.requireLogin(url, "the third rotation's URL")
	w.requireNoLogin(previous, "the second rotation's URL")
	w.requireReloadsAfterWrites(w.rec.since(from), url)
	for name, n := range w.reloadCounts() {
		require.Equal(t, 3, n, "%s reloads after 3 rotations", name)
	}

	out := stdout.String()
	require.Contains(t, out, "app: rotated")
	require.Contains(t, out, "  targets:")
	report := map[string][]string{}
	for _, line := range strings.Split(out[strings.Index(out, "  targets:"):], "\n")[1:] {
		if fields := strings.Fields(line); len(fields) >= 3 {
			report[fields[0]] = fields
		}
	}
	for _, name := range append([]string{"env"}, httpTargets...) {
		fields, ok := report[name]
		require.True(t, ok, "the report has no line for target %s", name)
		require.Equal(t, string(w.wantState(name)), fields[2], "the report's state for %s", name)
	}
	require.Equal(t, "github-actions", report["github"][1])
	for _, name := range append([]string{"env"}, httpTargets...) {
		require.Contains(t, stderr.String(), "target "+name, "live progress names target %s", name)
	}
	for _, s := range []secret.String{c.Password, secret.New(w.env["ADMIN_URL"]), secret.New(w.vercel.Token()), secret.New(w.render.Token())} {
		requireNoSecret(t, out, s, "the report")
		requireNoSecret(t, stderr.String(), s, "the progress")
	}
}
