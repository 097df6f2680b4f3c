package engine_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/rotorhq/rotor/internal/engine"
	"github.com/rotorhq/rotor/internal/pgtest"
	"github.com/rotorhq/rotor/internal/store"
	"github.com/rotorhq/rotor/internal/target/vercel/vercelfake"
)

// TestConsumerThatReadTheOldURLJustBeforePublishConnects is the race of
// issue 11: a consumer reads DATABASE_URL right before rotor publishes and
// connects 150 ms later. pg_stat_activity cannot see it (it has not logged
// in yet), so only the grace period keeps the old role valid for it.
func TestConsumerThatReadTheOldURLJustBeforePublishConnects(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{strategy: "dual", roles: roleNames(t), grace: "1s", quiet: "300ms"})
	b.rotate(engine.Options{})
	oldRole, oldPW := b.current()

	late := make(chan error, 1)
	b.eng.Hooks = &engine.Hooks{BeforeStep: func(step string) error {
		if step == engine.StepPublish {
			u := b.envURL() // still the old string
			go func() {
				time.Sleep(150 * time.Millisecond)
				late <- pgtest.CanLogin(b.ctx, u)
			}()
		}
		return nil
	}}
	res := b.rotate(engine.Options{})
	require.NoError(t, <-late, "a consumer mid-connect with the old string must not fail")

	require.Equal(t, store.StatusSucceeded, res.Status, res.Outcome)
	ret := res.Retirement
	require.NotNil(t, ret)
	require.Equal(t, engine.RetirementRetired, ret.State)
	require.Equal(t, oldRole, ret.Role)
	require.Equal(t, time.Second, ret.Evidence.GraceUntil.Sub(ret.Evidence.SwitchedAt))
	require.GreaterOrEqual(t, ret.Evidence.Quiet, 300*time.Millisecond)
	require.Positive(t, ret.Evidence.Samples)
	require.Contains(t, res.Outcome, "every reload finished at", "the result names the evidence it retired on")
	b.requireNoLogin(oldRole, oldPW)
}

// TestRetirementWaitsForTheReloadToFinish: the evidence clock starts when
// the slowest reload returned (a deploy that is live), not when the
// values were written.
func TestRetirementWaitsForTheReloadToFinish(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{strategy: "dual", roles: roleNames(t), memory: true})
	b.rotate(engine.Options{})
	b.mem.mu.Lock()
	b.mem.reloadTakes = 700 * time.Millisecond
	b.mem.mu.Unlock()
	oldRole, oldPW := b.current()

	// While the deploy runs, the old deployment keeps connecting with the
	// old string: every attempt must succeed.
	stop := make(chan struct{})
	failures := make(chan error, 1000)
	go func() {
		u := b.loginURL(oldRole, oldPW)
		for {
			select {
			case <-stop:
				close(failures)
				return
			default:
			}
			b.mem.mu.Lock()
			reloaded := !b.mem.reloadedAt.IsZero()
			b.mem.mu.Unlock()
			if reloaded {
				close(failures)
				return
			}
			if err := pgtest.CanLogin(b.ctx, u); err != nil {
				failures <- err
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	res := b.rotate(engine.Options{})
	close(stop)
	for err := range failures {
		require.NoError(t, err, "the old deployment connected while the new one was not live yet")
	}
	b.mem.mu.Lock()
	reloadedAt := b.mem.reloadedAt
	b.mem.mu.Unlock()
	require.Equal(t, engine.RetirementRetired, res.Retirement.State, res.Outcome)
	require.False(t, res.Retirement.Evidence.SwitchedAt.Before(reloadedAt.Truncate(time.Millisecond)),
		"switched at %s, reload finished %s", res.Retirement.Evidence.SwitchedAt, reloadedAt)
	b.requireNoLogin(oldRole, oldPW)
}

// TestASessionRestartsTheQuietPeriod: a session on the old role that ends
// during the drain is seen, and the quiet period counts from its end.
func TestASessionRestartsTheQuietPeriod(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{strategy: "dual", roles: roleNames(t), grace: "100ms", quiet: "400ms"})
	b.rotate(engine.Options{})
	oldRole, oldPW := b.current()
	conn := b.session(oldRole, oldPW, "slow-worker")
	var closedAt time.Time
	b.eng.Hooks = &engine.Hooks{BeforeStep: func(step string) error {
		if step == engine.StepFinish {
			go func() {
				time.Sleep(600 * time.Millisecond)
				closedAt = time.Now()
				conn.Close(b.ctx)
			}()
		}
		return nil
	}}
	res := b.rotate(engine.Options{})
	ev := res.Retirement.Evidence
	require.Equal(t, engine.RetirementRetired, res.Retirement.State, res.Outcome)
	require.NotNil(t, ev.LastSeen, "the session was seen")
	require.False(t, ev.LastSeen.Before(ev.SwitchedAt))
	require.GreaterOrEqual(t, ev.Quiet, 400*time.Millisecond)
	require.False(t, closedAt.IsZero())
	b.requireNoLogin(oldRole, oldPW)
}

// TestDeferredRetirement: when the evidence cannot be complete within
// drain.wait, the rotation ends switched (not an error), status shows what
// is missing, and resume carries the retirement out once it is safe.
func TestDeferredRetirement(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{strategy: "dual", roles: roleNames(t), grace: "1500ms", quiet: "200ms", wait: "100ms", drain: "1m"})
	b.rotate(engine.Options{})
	oldRole, oldPW := b.current()

	res := b.rotate(engine.Options{})
	require.Equal(t, store.StatusSwitched, res.Status)
	require.Equal(t, engine.RetirementPending, res.Retirement.State)
	require.Contains(t, res.Retirement.RetiresWhen, "grace period ends")
	require.Contains(t, res.Outcome, "switched; old role "+oldRole+" still valid")
	newRole, newPW := b.current()
	require.NotEqual(t, oldRole, newRole)
	b.requireLogin(oldRole, oldPW)
	b.requireLogin(newRole, newPW)

	st, err := b.eng.Status(b.ctx, b.cred(), engine.StatusOptions{Live: true})
	require.NoError(t, err)
	require.NotNil(t, st.PendingRetirement)
	require.Equal(t, oldRole, st.PendingRetirement.Role)
	require.Equal(t, res.RotationID, st.PendingRetirement.RotationID)
	require.Contains(t, st.PendingRetirement.RetiresWhen, "grace period ends")
	require.Equal(t, newRole, st.Role, "consumers use the new version already")
	require.Nil(t, st.Active)

	// A resume before the grace has passed waits drain.wait, then leaves it.
	again, err := b.eng.Rotate(b.ctx, b.cred(), engine.Options{ResumeOnly: true})
	require.NoError(t, err)
	require.Equal(t, store.StatusSwitched, again.Status)
	b.requireLogin(oldRole, oldPW)

	// Grace over. The quiet period is watched by one process without a
	// break, so it needs a wait longer than itself: `rotor retire` with a
	// longer drain.wait.
	time.Sleep(time.Until(res.Retirement.Evidence.GraceUntil))
	cr := b.cred()
	cr.DrainWait = 2 * time.Second
	done, err := b.eng.Retire(b.ctx, cr, engine.RetireOptions{})
	require.NoError(t, err)
	require.Equal(t, store.StatusSucceeded, done.Status, done.Outcome)
	require.Equal(t, engine.RetirementRetired, done.Retirement.State)
	b.requireNoLogin(oldRole, oldPW)
	b.requireLogin(newRole, newPW)

	_, err = b.eng.Retire(b.ctx, b.cred(), engine.RetireOptions{})
	require.ErrorIs(t, err, engine.ErrNothingToRetire)
	st, err = b.eng.Status(b.ctx, b.cred(), engine.StatusOptions{})
	require.NoError(t, err)
	require.Nil(t, st.PendingRetirement)
}

// TestNextRotationRetiresThePendingRoleFirst: a rotation never gives a new
// password to a role whose retirement is pending; it completes that
// retirement on the same evidence first.
func TestNextRotationRetiresThePendingRoleFirst(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{strategy: "dual", roles: roleNames(t), grace: "800ms", quiet: "200ms", wait: "50ms", drain: "1m"})
	b.rotate(engine.Options{})
	role1, _ := b.current()
	first := b.rotate(engine.Options{})
	require.Equal(t, store.StatusSwitched, first.Status)

	// Within the grace: nothing new starts.
	blocked := b.rotate(engine.Options{})
	require.Equal(t, first.RotationID, blocked.RotationID)
	require.Contains(t, blocked.Outcome, "no new rotation was started")
	require.Contains(t, blocked.Outcome, role1)

	time.Sleep(time.Until(first.Retirement.Evidence.GraceUntil))
	cr := b.cred()
	cr.DrainWait = time.Second
	next, err := b.eng.Rotate(b.ctx, cr, engine.Options{})
	require.NoError(t, err)
	require.NotEqual(t, first.RotationID, next.RotationID)
	require.Equal(t, "retire", next.Steps[0].Name)
	require.Equal(t, engine.RetirementRetired, next.Steps[0].Status, next.Steps[0].Detail)
	role3, pw3 := b.current()
	require.Equal(t, role1, role3, "the retired role is the one the new password went to")
	b.requireLogin(role3, pw3)
}

// TestRetireNow skips the evidence: the old role is retired at once and
// whoever is still on it is cut off.
func TestRetireNow(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{strategy: "dual", roles: roleNames(t), grace: "10m", wait: "50ms", drain: "1h"})
	b.rotate(engine.Options{})
	oldRole, oldPW := b.current()
	holdout := b.session(oldRole, oldPW, "holdout")
	res := b.rotate(engine.Options{})
	require.Equal(t, store.StatusSwitched, res.Status)

	done, err := b.eng.Retire(b.ctx, b.cred(), engine.RetireOptions{Now: true, Reason: "retire --now"})
	require.NoError(t, err)
	require.Equal(t, store.StatusSucceeded, done.Status)
	require.Equal(t, engine.RetirementTerminated, done.Retirement.State)
	require.Equal(t, 1, done.Terminated)
	require.Contains(t, done.Outcome, "without waiting for evidence (retire --now)")
	b.requireNoLogin(oldRole, oldPW)
	_, err = holdout.Exec(b.ctx, "SELECT 1")
	require.Error(t, err)
	audit, err := b.store.ListAudit(b.ctx, store.ListAuditParams{Credential: "app", Limit: 1})
	require.NoError(t, err)
	require.Equal(t, "rotation.retired", audit[0].Event)
}

// TestSingleReportsItsFailureWindow: single strategy cannot avoid failed
// logins between the password change and the last reload; it says how
// long that was.
func TestSingleReportsItsFailureWindow(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{strategy: "single", roles: []string{pgtest.UniqueName(t, "app")}, memory: true})
	b.rotate(engine.Options{})
	b.mem.mu.Lock()
	b.mem.reloadTakes = 300 * time.Millisecond
	b.mem.mu.Unlock()
	res := b.rotate(engine.Options{})
	w := res.FailureWindow
	require.NotNil(t, w)
	require.GreaterOrEqual(t, w.Duration, 300*time.Millisecond, "the reload is inside the window")
	require.Equal(t, w.To.Sub(w.From), w.Duration)
	require.Contains(t, res.Outcome, "could fail for")
	require.Nil(t, res.Retirement)
	_, pw := b.current()
	require.False(t, strings.Contains(res.Outcome, pw.Reveal()))
}

// TestVercelDeployThatTakes20sKeepsTheOldRole is issue 11's "done means":
// a dual rotation publishing to a Vercel project whose redeploy builds for
// about 20 s keeps the old role valid while the old deployment serves (and
// connects with the old string), until the new deployment is READY and
// serving production plus the grace period; the result says so.
func TestVercelDeployThatTakes20sKeepsTheOldRole(t *testing.T) {
	t.Parallel()
	vf := vercelfake.New(t, vercelfake.Options{})
	vf.AddDeployment("dpl_live", "production", "READY")
	// Read every second: QUEUED when created, BUILDING for 20 reads, READY.
	vf.SetBuild(vercelfake.Build{States: []string{"QUEUED", "BUILDING", "READY"}, Polls: 20})
	vercel := fmt.Sprintf(`      - name: web
        type: vercel
        project: %s
        token: ${VERCEL_TOKEN}
        api_url: %s
        redeploy: true
        reload_poll: 1s
        values:
          DATABASE_URL: "{{.URL}}"
`, vf.ProjectID(), vf.URL)
	b := setup(t, setupOpts{strategy: "dual", roles: roleNames(t), grace: "2s", quiet: "300ms", drain: "1m",
		targets: vercel, env: map[string]string{"VERCEL_TOKEN": vf.Token()}})
	b.rotate(engine.Options{})
	oldRole, oldPW := b.current()
	oldURL := b.loginURL(oldRole, oldPW)

	// The live deployment is the old one until the redeploy is READY: it
	// keeps opening connections with the old string, per request.
	var readyAt time.Time
	type attempt struct {
		at  time.Time
		err error
	}
	var attempts []attempt
	done := make(chan struct{})
	stop := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
			if readyAt.IsZero() {
				for _, d := range vf.Deployments() {
					if d.RedeployOf != "" && d.State == "READY" {
						readyAt = time.Now()
					}
				}
			}
			if !readyAt.IsZero() && time.Since(readyAt) > 2*time.Second {
				continue // the old deployment is gone: nobody uses the old string
			}
			attempts = append(attempts, attempt{time.Now(), pgtest.CanLogin(b.ctx, oldURL)})
		}
	}()
	res := b.rotate(engine.Options{})
	close(stop)
	<-done

	require.Equal(t, store.StatusSucceeded, res.Status, res.Outcome)
	require.False(t, readyAt.IsZero(), "the redeploy became READY")
	require.NotEmpty(t, attempts)
	for _, a := range attempts {
		require.NoError(t, a.err, "the old deployment connected at %s (READY at %s)", a.at.Format(time.RFC3339Nano), readyAt.Format(time.RFC3339Nano))
	}
	ev := res.Retirement.Evidence
	require.False(t, ev.SwitchedAt.Before(readyAt.Add(-time.Second)), "the evidence counts from the finished deploy (switched %s, READY seen %s)", ev.SwitchedAt, readyAt)
	require.Equal(t, 2*time.Second, ev.GraceUntil.Sub(ev.SwitchedAt))
	var web engine.TargetResult
	for _, tr := range res.Targets {
		if tr.Name == "web" {
			web = tr
		}
	}
	require.Contains(t, web.Detail+res.Steps[len(res.Steps)-1].Detail, "READY")
	require.Contains(t, res.Outcome, "every reload finished at")
	b.requireNoLogin(oldRole, oldPW)
}
