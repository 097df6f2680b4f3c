package fanout_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/rotorhq/rotor/internal/connstr"
	"github.com/rotorhq/rotor/internal/engine"
	"github.com/rotorhq/rotor/internal/secret"
	"github.com/rotorhq/rotor/internal/store"
	"github.com/rotorhq/rotor/internal/target"
)

// TestPlatformFaults injects each fault into one platform while the other
// five and the .env file behave, and checks what the rotation does about
// it.
func TestPlatformFaults(t *testing.T) {
	t.Parallel()
	eachPlatform(t, []faultCase{
		{"500 that clears within the attempts", transient500},
		{"500 that persists, then resume", persistent500},
		{"429 with Retry-After", rateLimited},
		{"timeout", timeout},
		{"bad token", badToken},
	})
}

// faultCase is one fault, run against one platform by name.
type faultCase struct {
	name string
	run  func(t *testing.T, platform string)
}

// eachPlatform runs every case against every HTTP target, in parallel.
func eachPlatform(t *testing.T, cases []faultCase) {
	for _, name := range httpTargets {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			for _, c := range cases {
				t.Run(c.name, func(t *testing.T) {
					t.Parallel()
					c.run(t, name)
				})
			}
		})
	}
}

// requireSucceeded checks a rotation that got over the fault: every copy
// holds the .env file's URL, it logs in, and every target reloaded once,
// after every write.
func (w *world) requireSucceeded(rot rotation) secret.String {
	t := w.t
	t.Helper()
	require.NoError(t, rot.err)
	require.Equal(t, store.StatusSucceeded, rot.res.Status, rot.res.Outcome)
	url := w.envURL()
	w.requireAllHold(url)
	w.requireLogin(url, "the new URL")
	for name, n := range w.reloadCounts() {
		require.Equal(t, 1, n, "%s reloads once", name)
	}
	w.requireReloadsAfterWrites(rot.requests, url)
	for _, tr := range rot.res.Targets {
		require.Equal(t, w.wantState(tr.Name), tr.State, "%s: %s", tr.Name, tr.Error)
	}
	return url
}

// requireStoppedAtPublish checks a rotation that a failing target stopped
// after the other writes: the hint says `rotor resume` and nothing was
// reloaded anywhere.
func (w *world) requireStoppedAtPublish(rot rotation, reloadsBefore int) *engine.StepError {
	t := w.t
	t.Helper()
	var se *engine.StepError
	require.ErrorAs(t, rot.err, &se)
	require.Equal(t, engine.StepPublish, se.Step)
	require.Contains(t, se.Hint, "rotor resume")
	require.Equal(t, store.StatusActive, rot.res.Status, "the rotation stays open for resume")
	for name, n := range w.reloadCounts() {
		require.Equal(t, reloadsBefore, n, "%s must not reload while a write failed", name)
	}
	for _, e := range rot.requests {
		require.NotEqual(t, kindReload, e.kind, "%s reloaded while a write failed", e.target)
	}
	return se
}

func transient500(t *testing.T, name string) {
	w := newWorld(t, worldOpts{})
	w.byName[name].failNext(2, http.StatusInternalServerError)

	rot := w.rotate(engine.Options{})
	w.requireSucceeded(rot)
	require.Equal(t, 3, targetResult(t, rot.res, name).Attempts, "two 500s, then success")
	sleeps := w.recordedSleeps()
	require.Len(t, sleeps, 2, "one backoff before each retry")
	for _, d := range sleeps {
		require.Positive(t, d)
		require.LessOrEqual(t, d, w.cred().MaxBackoff)
	}
}

// persistent500 is also the partial-failure case: one target fails for
// good, the others are written, and resume finishes without writing them
// again.
func persistent500(t *testing.T, name string) {
	w := newWorld(t, worldOpts{})
	f := w.byName[name]
	w.requireSucceeded(w.rotate(engine.Options{}))
	oldURL := w.envURL()

	f.failNext(1<<20, http.StatusInternalServerError)
	rot := w.rotate(engine.Options{})
	se := w.requireStoppedAtPublish(rot, 1)
	attempts := w.cred().Attempts
	tr := targetResult(t, rot.res, name)
	require.Equal(t, store.DeliveryFailed, tr.State)
	require.Equal(t, attempts, tr.Attempts, "a 500 is retried until the attempts run out")
	require.Len(t, w.recordedSleeps(), attempts-1)
	for _, other := range rot.res.Targets {
		if other.Name != name {
			require.Equal(t, store.DeliveryWritten, other.State, other.Name)
			require.Equal(t, 1, other.Attempts, other.Name)
		}
	}

	// Dual: the old role still logs in, and every copy holds a URL the
	// database accepts — the old one where the write failed, the new one
	// everywhere else.
	newURL := w.envURL()
	require.False(t, newURL.Equal(oldURL))
	newPW := mustParse(t, newURL).Password
	requireNoSecret(t, se.Error(), newPW, "the publish error")
	requireNoSecret(t, tr.Error, newPW, "the target's error")
	w.requireLogin(oldURL, "the old role")
	w.requireLogin(newURL, "the new role")
	for n, v := range w.values() {
		want := newURL
		if n == name {
			want = oldURL
		}
		require.True(t, v.Equal(want), "%s holds an unexpected DATABASE_URL", n)
		w.requireLogin(v, n+"'s DATABASE_URL")
	}

	// Fix the fault; resume writes only the failed target and reloads
	// every target once.
	f.failNext(0, 0)
	before := w.writeCounts()
	resumed := w.rotate(engine.Options{ResumeOnly: true})
	require.NoError(t, resumed.err)
	require.True(t, resumed.res.Resumed)
	require.Equal(t, rot.res.RotationID, resumed.res.RotationID)
	require.Equal(t, store.StatusSucceeded, resumed.res.Status, resumed.res.Outcome)
	require.True(t, w.envURL().Equal(newURL), "resume publishes the password the rotation had generated")
	after := w.writeCounts()
	for n := range before {
		if n == name {
			require.Greater(t, after[n], before[n], "%s is written on resume", n)
		} else {
			require.Equal(t, before[n], after[n], "%s was already written; resume must not write it again", n)
		}
	}
	for n, c := range w.reloadCounts() {
		require.Equal(t, 2, c, "%s reloads once per rotation", n)
	}
	w.requireReloadsAfterWrites(resumed.requests, newURL)
	w.requireAllHold(newURL)
	w.requireLogin(newURL, "the new role")
	w.requireNoLogin(oldURL, "the old role, retired once the rollout finished")
}

func rateLimited(t *testing.T, name string) {
	w := newWorld(t, worldOpts{})
	const retryAfter = 7 * time.Second
	w.setOnSleep(w.byName[name].rateLimit(retryAfter))

	rot := w.rotate(engine.Options{})
	w.requireSucceeded(rot)
	require.Equal(t, []time.Duration{retryAfter}, w.recordedSleeps(), "the engine waits exactly what the platform asked for")
	require.Equal(t, 2, targetResult(t, rot.res, name).Attempts)
}

func timeout(t *testing.T, name string) {
	w := newWorld(t, worldOpts{timeout: "2s"})
	f := w.byName[name]
	// Longer than publish.timeout, but not by much: a fake that has not
	// read a request's body cannot tell that the client gave up, and holds
	// the connection for the whole delay.
	f.delay(4 * time.Second)
	w.setOnSleep(func() { f.delay(0) })

	rot := w.rotate(engine.Options{})
	w.requireSucceeded(rot)
	require.Equal(t, 2, targetResult(t, rot.res, name).Attempts, "the write is idempotent, so a timeout is retried")
	sleeps := w.recordedSleeps()
	require.NotEmpty(t, sleeps)
	require.LessOrEqual(t, sleeps[0], w.cred().MaxBackoff, "a timeout carries no Retry-After: capped backoff")
}

func badToken(t *testing.T, name string) {
	w := newWorld(t, worldOpts{badToken: name})
	f := w.byName[name]

	rot := w.rotate(engine.Options{})
	w.requireStoppedAtPublish(rot, 0)
	tr := targetResult(t, rot.res, name)
	require.Equal(t, store.DeliveryFailed, tr.State)
	require.Equal(t, 1, tr.Attempts, "a refused token is not retried")
	n := 0
	for _, e := range rot.requests {
		if e.target == name {
			n++
		}
	}
	require.Equal(t, 1, n, "exactly one request reached %s", name)
	require.Empty(t, w.recordedSleeps())
	require.Contains(t, tr.Error, f.tokenEnv, "the message names the variable the token comes from")
	require.Contains(t, rot.err.Error(), f.tokenEnv)
	require.NotContains(t, tr.Error, "rotor-test-wrong-token")
	newURL := w.envURL()
	requireNoSecret(t, rot.err.Error(), mustParse(t, newURL).Password, "the publish error")

	// The target itself says ErrAuth.
	for _, tg := range w.cred().Targets {
		if tg.Name != name {
			continue
		}
		_, err := tg.Impl.Put(w.ctx, target.PutRequest{
			Values: map[string]secret.String{"DATABASE_URL": newURL}, Keys: []string{"DATABASE_URL"}, RotationID: "1",
		})
		require.ErrorIs(t, err, target.ErrAuth)
	}
}

func mustParse(t *testing.T, url secret.String) *connstr.Conn {
	t.Helper()
	c, err := connstr.Parse(url.Reveal())
	// Not require.NoError: a parse error may quote the URL.
	require.True(t, err == nil, "a published URL does not parse")
	return c
}
