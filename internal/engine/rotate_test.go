package engine_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/rotorhq/rotor/internal/engine"
	"github.com/rotorhq/rotor/internal/pgtest"
	"github.com/rotorhq/rotor/internal/provider"
	"github.com/rotorhq/rotor/internal/secret"
	"github.com/rotorhq/rotor/internal/store"
	"github.com/rotorhq/rotor/internal/target"
)

func ensureReq(b *bundle, roles []string) provider.EnsureRolesRequest {
	return provider.EnsureRolesRequest{Group: commonGroup(roles), Logins: roles, Database: b.db}
}

func TestSingleRotation(t *testing.T) {
	t.Parallel()
	role := pgtest.UniqueName(t, "app")
	b := setup(t, setupOpts{strategy: "single", roles: []string{role}})

	res := b.rotate(engine.Options{})
	require.Equal(t, store.StatusSucceeded, res.Status)
	_, first := b.current()
	b.requireLogin(role, first)

	res = b.rotate(engine.Options{})
	require.Equal(t, store.StatusSucceeded, res.Status)
	require.EqualValues(t, 2, res.Version)
	_, second := b.current()
	require.False(t, first.Equal(second))
	b.requireLogin(role, second)
	b.requireNoLogin(role, first)

	// The rest of the .env file is untouched.
	raw, err := os.ReadFile(b.envFile)
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(string(raw), "# app settings\nexport OTHER=keep-me\n"))

	// Every step was journaled before and after.
	require.Equal(t, everyStep, b.journal(t, res.RotationID))
	dels, err := b.store.ListDeliveries(b.ctx, store.ListDeliveriesParams{RotationID: res.RotationID})
	require.NoError(t, err)
	require.Len(t, dels, 1)
	require.Equal(t, store.DeliveryVerified, dels[0].State)
}

func TestDualRotationKeepsOldRoleUntilRetired(t *testing.T) {
	t.Parallel()
	roles := roleNames(t)
	b := setup(t, setupOpts{strategy: "dual", roles: roles})

	res := b.rotate(engine.Options{})
	require.Equal(t, roles[0], res.Role)
	role1, pw1 := b.current()
	b.requireLogin(role1, pw1)

	// A consumer is still on the first role while the second rotation
	// runs: the old password keeps working, and the rotation waits for it.
	conn := b.session(role1, pw1, "billing-worker")
	done := make(chan *engine.Result, 1)
	go func() {
		res, err := b.eng.Rotate(b.ctx, b.cred(), engine.Options{})
		if err != nil {
			t.Errorf("rotate: %v", err)
		}
		done <- res
	}()
	// The new credential is published while the old one still works.
	require.Eventually(t, func() bool { return b.envRole() == roles[1] }, 10*time.Second, 20*time.Millisecond)
	b.requireLogin(role1, pw1)
	_, err := conn.Exec(b.ctx, "SELECT 1")
	require.NoError(t, err)
	conn.Close(b.ctx)

	res = <-done
	require.Equal(t, store.StatusSucceeded, res.Status, res.Outcome)
	require.Equal(t, roles[1], res.Role)
	require.Equal(t, roles[0], res.OldRole)
	role2, pw2 := b.current()
	require.Equal(t, roles[1], role2)
	b.requireLogin(role2, pw2)
	b.requireNoLogin(role1, pw1)
}

func TestDualOldRoleStillInUse(t *testing.T) {
	t.Parallel()
	roles := roleNames(t)
	b := setup(t, setupOpts{strategy: "dual", roles: roles})
	b.rotate(engine.Options{})
	role1, pw1 := b.current()

	// This consumer never moves: the drain deadline (2s) passes.
	conn := b.session(role1, pw1, "legacy-cron")
	res, err := b.eng.Rotate(b.ctx, b.cred(), engine.Options{})
	require.NoError(t, err)
	require.Equal(t, store.StatusOldInUse, res.Status)
	require.Len(t, res.OldSessions, 1)
	require.Equal(t, "legacy-cron", res.OldSessions[0].ApplicationName)
	require.Contains(t, res.Outcome, "legacy-cron")
	// Never break a consumer that has not moved yet.
	b.requireLogin(role1, pw1)
	_, err = conn.Exec(b.ctx, "SELECT 1")
	require.NoError(t, err)

	// The next rotation would give the new password to that role: it
	// looks again, finds the session past the deadline, and starts
	// nothing.
	again, err := b.eng.Rotate(b.ctx, b.cred(), engine.Options{})
	require.NoError(t, err)
	require.Equal(t, store.StatusOldInUse, again.Status)
	require.Equal(t, res.RotationID, again.RotationID)
	require.Equal(t, engine.RetirementInUse, again.Retirement.State)
	require.Contains(t, again.Outcome, "no new rotation was started")
	active, err := b.store.ListRotations(b.ctx, store.ListRotationsParams{Credential: "app", Active: true})
	require.NoError(t, err)
	require.Empty(t, active)

	// The login checked above has closed its connection, but its backend
	// can linger in pg_stat_activity for a moment.
	require.Eventually(t, func() bool {
		st, err := b.eng.Status(b.ctx, b.cred(), engine.StatusOptions{Live: true})
		require.NoError(t, err)
		return len(st.OldSessions) == 1 && st.OldSessions[0].ApplicationName == "legacy-cron"
	}, 10*time.Second, 50*time.Millisecond, "status lists the one consumer still on the old role")
}

func TestRevokeSingleTerminatesOldSessions(t *testing.T) {
	t.Parallel()
	role := pgtest.UniqueName(t, "app")
	b := setup(t, setupOpts{strategy: "single", roles: []string{role}})
	b.rotate(engine.Options{})
	_, leaked := b.current()
	attacker := b.session(role, leaked, "attacker")

	res := b.rotate(engine.Options{Revoke: true})
	require.Equal(t, store.StatusSucceeded, res.Status)
	require.GreaterOrEqual(t, res.Terminated, 1)
	_, err := attacker.Exec(b.ctx, "SELECT 1")
	require.Error(t, err, "the leaked credential's session must be gone")
	b.requireNoLogin(role, leaked)
	_, fresh := b.current()
	b.requireLogin(role, fresh)
}

func TestRevokeDualRetiresOldRoleAtOnce(t *testing.T) {
	t.Parallel()
	roles := roleNames(t)
	b := setup(t, setupOpts{strategy: "dual", roles: roles, drain: "1h"})
	b.rotate(engine.Options{})
	role1, leaked := b.current()
	attacker := b.session(role1, leaked, "attacker")

	start := time.Now()
	res := b.rotate(engine.Options{Revoke: true})
	require.Less(t, time.Since(start), time.Hour/2, "revoke must not wait for a drain")
	require.Equal(t, store.StatusSucceeded, res.Status)
	require.Equal(t, 1, res.Terminated)
	_, err := attacker.Exec(b.ctx, "SELECT 1")
	require.Error(t, err)
	b.requireNoLogin(role1, leaked)
}

func TestWeirdRoleName(t *testing.T) {
	t.Parallel()
	role := `we"ird; DROP TABLE x; --` + pgtest.UniqueName(t, "")
	b := setup(t, setupOpts{strategy: "single", roles: []string{role}})
	admin, err := pgx.Connect(b.ctx, b.cl.AdminURL(b.db).Reveal())
	require.NoError(t, err)
	defer admin.Close(b.ctx)
	_, err = admin.Exec(b.ctx, "CREATE TABLE x (id int)")
	require.NoError(t, err)

	b.rotate(engine.Options{})
	b.rotate(engine.Options{})
	got, pw := b.current()
	require.Equal(t, role, got)
	b.requireLogin(role, pw)
	var n int
	require.NoError(t, admin.QueryRow(b.ctx, "SELECT count(*) FROM x").Scan(&n), "table x must survive")
}

func TestSingleRollsBackWhenTestFails(t *testing.T) {
	t.Parallel()
	role := pgtest.UniqueName(t, "app")
	// Consumers would connect to a database that does not exist: the
	// test step fails after the password changed.
	b := setup(t, setupOpts{strategy: "single", roles: []string{role}, urlDB: "no_such_db"})
	before, err := os.ReadFile(b.envFile)
	require.NoError(t, err)

	res, err := b.eng.Rotate(b.ctx, b.cred(), engine.Options{})
	var se *engine.StepError
	require.ErrorAs(t, err, &se)
	require.Equal(t, engine.StepTest, se.Step)
	require.Equal(t, store.StatusRolledBack, res.Status)
	require.Contains(t, se.Hint, "put back")

	// The old password works again: pgtest.NewRole's verifier was restored.
	snap, err := b.cred().Provider.Snapshot(b.ctx, provider.SnapshotRequest{Role: role})
	require.NoError(t, err)
	require.False(t, snap.Verifier.IsZero())
	after, err := os.ReadFile(b.envFile)
	require.NoError(t, err)
	require.Equal(t, before, after, "nothing is published after a failed test")
	vs, err := b.store.ListVersions(b.ctx, store.ListVersionsParams{Credential: "app"})
	require.NoError(t, err)
	require.Len(t, vs, 1)
	require.Equal(t, store.StageRetired, vs[0].Stage)
	require.Nil(t, vs[0].Sealed, "the unused password is wiped")
}

func TestResumeAfterTargetFailure(t *testing.T) {
	t.Parallel()
	roles := roleNames(t)
	dir := t.TempDir()
	missing := filepath.Join(dir, "not-yet", ".env")
	b := setup(t, setupOpts{strategy: "dual", roles: roles, envPath: missing})

	res, err := b.eng.Rotate(b.ctx, b.cred(), engine.Options{})
	var se *engine.StepError
	require.ErrorAs(t, err, &se)
	require.Equal(t, engine.StepPublish, se.Step)
	require.Equal(t, store.StatusActive, res.Status)
	require.Contains(t, se.Hint, "rotor resume")

	// Fix the cause; resume finishes with the same password.
	require.NoError(t, os.MkdirAll(filepath.Dir(missing), 0o700))
	res2, err := b.eng.Rotate(b.ctx, b.cred(), engine.Options{ResumeOnly: true})
	require.NoError(t, err)
	require.True(t, res2.Resumed)
	require.Equal(t, res.RotationID, res2.RotationID)
	require.Equal(t, store.StatusSucceeded, res2.Status)
	role, pw := b.current()
	b.requireLogin(role, pw)

	// Nothing left to resume.
	res3, err := b.eng.Rotate(b.ctx, b.cred(), engine.Options{ResumeOnly: true})
	require.NoError(t, err)
	require.Nil(t, res3)
}

// TestResumeFromEveryStep stops the engine before each step, as a crash
// would, and checks that a fresh engine finishes the rotation with the
// password the first one generated.
func TestResumeFromEveryStep(t *testing.T) {
	t.Parallel()
	for _, strategy := range []string{"single", "dual"} {
		for _, step := range []string{engine.StepApply, engine.StepTest, engine.StepPublish, engine.StepConfirm, engine.StepFinish} {
			t.Run(strategy+"/"+step, func(t *testing.T) {
				t.Parallel()
				roles := roleNames(t)
				if strategy == "single" {
					roles = roles[:1]
				}
				b := setup(t, setupOpts{strategy: strategy, roles: roles})
				b.rotate(engine.Options{})

				crash := errors.New("simulated crash")
				b.eng.Hooks = &engine.Hooks{BeforeStep: func(s string) error {
					if s == step {
						return crash
					}
					return nil
				}}
				_, err := b.eng.Rotate(b.ctx, b.cred(), engine.Options{})
				require.ErrorIs(t, err, crash)
				rots, err := b.store.ListRotations(b.ctx, store.ListRotationsParams{Credential: "app", Active: true})
				require.NoError(t, err)
				require.Len(t, rots, 1)
				pending, err := b.store.GetVersion(b.ctx, store.GetVersionParams{ID: rots[0].ToVersionID})
				require.NoError(t, err)

				fresh := b.newEngine()
				res, err := fresh.Rotate(b.ctx, b.cred(), engine.Options{ResumeOnly: true})
				require.NoError(t, err)
				require.Equal(t, store.StatusSucceeded, res.Status)
				require.Equal(t, pending.Seq, res.Version, "resume must finish with the version it had generated")
				role, pw := b.current()
				b.requireLogin(role, pw)
			})
		}
	}
}

func TestParityDifferenceStopsBeforeAnyChange(t *testing.T) {
	t.Parallel()
	roles := roleNames(t)
	b := setup(t, setupOpts{strategy: "dual", roles: roles})
	admin, err := pgx.Connect(b.ctx, b.cl.AdminURL(b.db).Reveal())
	require.NoError(t, err)
	defer admin.Close(b.ctx)
	_, err = admin.Exec(b.ctx, "CREATE TABLE orders (id int)")
	require.NoError(t, err)
	_, err = admin.Exec(b.ctx, "GRANT SELECT ON orders TO "+pgx.Identifier{roles[0]}.Sanitize())
	require.NoError(t, err)
	before, err := os.ReadFile(b.envFile)
	require.NoError(t, err)

	_, err = b.eng.Rotate(b.ctx, b.cred(), engine.Options{})
	var se *engine.StepError
	require.ErrorAs(t, err, &se)
	require.Equal(t, engine.StepPrepare, se.Step)
	require.Contains(t, err.Error(), "orders")
	after, err := os.ReadFile(b.envFile)
	require.NoError(t, err)
	require.Equal(t, before, after)
}

func TestConcurrentRotateIsRefused(t *testing.T) {
	t.Parallel()
	role := pgtest.UniqueName(t, "app")
	b := setup(t, setupOpts{strategy: "single", roles: []string{role}})
	entered, release := make(chan struct{}), make(chan struct{})
	b.eng.Hooks = &engine.Hooks{BeforeStep: func(s string) error {
		if s == engine.StepPublish {
			close(entered)
			<-release
		}
		return nil
	}}
	done := make(chan error, 1)
	go func() {
		_, err := b.eng.Rotate(b.ctx, b.cred(), engine.Options{})
		done <- err
	}()
	<-entered
	other := b.newEngine()
	_, err := other.Rotate(b.ctx, b.cred(), engine.Options{})
	require.ErrorIs(t, err, engine.ErrInProgress)
	close(release)
	require.NoError(t, <-done)
}

func TestPlanAndStatus(t *testing.T) {
	t.Parallel()
	roles := roleNames(t)
	b := setup(t, setupOpts{strategy: "dual", roles: roles, extra: "    schedule:\n      every: 30d\n"})
	p, err := b.eng.Plan(b.ctx, b.cred(), engine.PlanOptions{})
	require.NoError(t, err)
	require.Equal(t, roles[0], p.ToRole)
	require.Equal(t, "{{.URL}}", p.Targets[0].Values["DATABASE_URL"])
	due, err := b.eng.Due(b.ctx, b.cred())
	require.NoError(t, err)
	require.True(t, due, "never rotated means due")

	b.rotate(engine.Options{Trigger: "schedule"})
	due, err = b.eng.Due(b.ctx, b.cred())
	require.NoError(t, err)
	require.False(t, due)
	st, err := b.eng.Status(b.ctx, b.cred(), engine.StatusOptions{})
	require.NoError(t, err)
	require.Equal(t, roles[0], st.Role)
	require.NotNil(t, st.NextDue)
	require.WithinDuration(t, time.Now().Add(30*24*time.Hour), *st.NextDue, time.Minute)
	require.Equal(t, store.DeliveryVerified, st.Targets[0].State)

	p, err = b.eng.Plan(b.ctx, b.cred(), engine.PlanOptions{})
	require.NoError(t, err)
	require.Equal(t, roles[0], p.FromRole)
	require.Equal(t, roles[1], p.ToRole)
	_ = context.Background
}

func TestTransientTargetFailureIsRetried(t *testing.T) {
	t.Parallel()
	roles := roleNames(t)
	b := setup(t, setupOpts{strategy: "dual", roles: roles, memory: true})
	b.mem.failPuts = 2
	res := b.rotate(engine.Options{})
	require.Equal(t, store.StatusSucceeded, res.Status)
	require.Equal(t, 3, b.mem.puts, "two 503s, then success")
	require.Equal(t, 1, b.mem.reloads)
	require.True(t, b.mem.get("DATABASE_URL").Equal(b.envURL()), "every target holds the same new URL")
	for _, tr := range res.Targets {
		if tr.Name == "mem" {
			require.Equal(t, 3, tr.Attempts)
			require.Equal(t, store.DeliveryVerified, tr.State)
		}
	}
}

func TestPermanentTargetFailureStopsBeforeReloads(t *testing.T) {
	t.Parallel()
	roles := roleNames(t)
	b := setup(t, setupOpts{strategy: "dual", roles: roles, memory: true})
	b.mem.failPuts = 1
	b.mem.failErr = target.ErrAuth
	_, err := b.eng.Rotate(b.ctx, b.cred(), engine.Options{})
	var se *engine.StepError
	require.ErrorAs(t, err, &se)
	require.Equal(t, engine.StepPublish, se.Step)
	require.Equal(t, 1, b.mem.puts, "a non-retryable error is not retried")
	require.Equal(t, 0, b.mem.reloads, "no reload while any write failed")

	res, err := b.eng.Rotate(b.ctx, b.cred(), engine.Options{ResumeOnly: true})
	require.NoError(t, err)
	require.Equal(t, store.StatusSucceeded, res.Status)
	require.Equal(t, 1, b.mem.reloads)

	// Notifier targets hear about the failure and the success.
	require.Len(t, b.mem.notified, 2)
	require.Equal(t, "rotation.failed", b.mem.notified[0].Type)
	require.Equal(t, engine.StepPublish, b.mem.notified[0].Step)
	require.Contains(t, b.mem.notified[0].Error, "target rejected the credentials")
	require.Equal(t, "rotation.succeeded", b.mem.notified[1].Type)
	require.Equal(t, res.Role, b.mem.notified[1].Role)
}

func TestReadBackFindsMissingKey(t *testing.T) {
	t.Parallel()
	roles := roleNames(t)
	b := setup(t, setupOpts{strategy: "dual", roles: roles, memory: true})
	b.mem.dropOnRead = "DATABASE_URL"
	_, err := b.eng.Rotate(b.ctx, b.cred(), engine.Options{})
	var se *engine.StepError
	require.ErrorAs(t, err, &se)
	require.Equal(t, engine.StepConfirm, se.Step)
	require.Contains(t, err.Error(), "is missing DATABASE_URL")
}

func TestWriteOnlyTargetIsUnverifiable(t *testing.T) {
	t.Parallel()
	roles := roleNames(t)
	b := setup(t, setupOpts{strategy: "dual", roles: roles, memory: true})
	b.mem.writeOnly = true
	res := b.rotate(engine.Options{})
	for _, tr := range res.Targets {
		if tr.Name == "mem" {
			require.Equal(t, store.DeliveryUnverified, tr.State)
			require.Contains(t, tr.Detail, "write-only")
		}
	}
}

func TestGatekeeperGoesFirstAndStopsPublishOnFailure(t *testing.T) {
	t.Parallel()
	roles := roleNames(t)
	b := setup(t, setupOpts{strategy: "dual", roles: roles, memory: true, gatekeeper: true})
	b.mem.failPuts = 1
	b.mem.failErr = target.ErrAuth
	before, err := os.ReadFile(b.envFile)
	require.NoError(t, err)

	_, err = b.eng.Rotate(b.ctx, b.cred(), engine.Options{})
	var se *engine.StepError
	require.ErrorAs(t, err, &se)
	require.Equal(t, engine.StepTest, se.Step, "dual: gatekeepers are written before the login test")
	require.Contains(t, err.Error(), "gatekeeper target mem failed")
	after, err := os.ReadFile(b.envFile)
	require.NoError(t, err)
	require.Equal(t, before, after, "no other target is written while a gatekeeper fails")

	res, err := b.eng.Rotate(b.ctx, b.cred(), engine.Options{ResumeOnly: true})
	require.NoError(t, err)
	require.Equal(t, store.StatusSucceeded, res.Status)
	require.Equal(t, 2, b.mem.puts, "written once more on resume, then skipped by fingerprint in publish")
	require.Equal(t, 1, b.mem.reloads)
	require.True(t, b.mem.get("DATABASE_URL").Equal(b.envURL()))
}

// TestPlanChoosesTheRoleRotateUses: plan and rotate share one role choice,
// so what plan shows is what rotate does — on a first dual rotation whose
// first role is busy, and once the current role is no longer in roles.
func TestPlanChoosesTheRoleRotateUses(t *testing.T) {
	t.Parallel()
	roles := roleNames(t)
	b := setup(t, setupOpts{strategy: "dual", roles: roles})
	pw := mustPassword(t)
	v, err := secret.SCRAMVerifier(nil, pw)
	require.NoError(t, err)
	admin := pgtest.Connect(b.ctx, t, b.cl.AdminURL(b.db))
	_, err = admin.Exec(b.ctx, "ALTER ROLE "+pgx.Identifier{roles[0]}.Sanitize()+" PASSWORD '"+v.Reveal()+"'")
	require.NoError(t, err)
	b.session(roles[0], pw, "early-consumer")

	p, err := b.eng.Plan(b.ctx, b.cred(), engine.PlanOptions{})
	require.NoError(t, err)
	require.Equal(t, roles[1], p.ToRole, "the first role is busy: the idle one gets the password")
	res := b.rotate(engine.Options{})
	require.Equal(t, p.ToRole, res.Role)

	moved := *b.cred()
	moved.Roles = []string{roles[0] + "_x", roles[1] + "_x"}
	p, err = b.eng.Plan(b.ctx, &moved, engine.PlanOptions{})
	require.NoError(t, err)
	require.Empty(t, p.ToRole)
	_, err = b.eng.Rotate(b.ctx, &moved, engine.Options{})
	var se *engine.StepError
	require.ErrorAs(t, err, &se)
	require.Equal(t, engine.StepPrepare, se.Step)
	require.Contains(t, se.Err.Error(), "which is not in roles")
	require.Contains(t, strings.Join(p.Warnings, "\n"), se.Err.Error(), "plan warns of the very stop rotate makes")
}

// failingStore fails every UpsertDelivery while fail is set.
type failingStore struct {
	store.Store
	fail atomic.Bool
}

func (s *failingStore) UpsertDelivery(ctx context.Context, p store.UpsertDeliveryParams) (*store.Delivery, error) {
	if s.fail.Load() {
		return nil, errors.New("disk I/O error")
	}
	return s.Store.UpsertDelivery(ctx, p)
}

// TestUnjournaledDeliveryStopsPublish: a delivery the store did not
// record stops the publish step with ErrJournal, before any reload; once
// the store works again, resume finishes.
func TestUnjournaledDeliveryStopsPublish(t *testing.T) {
	t.Parallel()
	roles := roleNames(t)
	b := setup(t, setupOpts{strategy: "dual", roles: roles, memory: true})
	fs := &failingStore{Store: b.store}
	fs.fail.Store(true)
	b.eng.Store = fs

	_, err := b.eng.Rotate(b.ctx, b.cred(), engine.Options{})
	require.ErrorIs(t, err, engine.ErrJournal)
	require.ErrorContains(t, err, "the journal could not be written")
	require.ErrorContains(t, err, "disk I/O error")
	var se *engine.StepError
	require.ErrorAs(t, err, &se)
	require.Equal(t, engine.StepPublish, se.Step)
	require.Equal(t, 0, b.mem.reloads, "no reload after a write the journal does not know of")

	fs.fail.Store(false)
	res, err := b.eng.Rotate(b.ctx, b.cred(), engine.Options{ResumeOnly: true})
	require.NoError(t, err)
	require.Equal(t, store.StatusSucceeded, res.Status)
	require.True(t, b.mem.get("DATABASE_URL").Equal(b.envURL()))
}

// renewFailingStore fails every RenewLease.
type renewFailingStore struct{ store.Store }

func (s renewFailingStore) RenewLease(ctx context.Context, p store.RenewLeaseParams) (*store.Lease, error) {
	return nil, errors.New("database is locked")
}

// TestLeaseRenewalFailure: a renewal that fails is tried again while the
// lease is still valid, and cancels the rotation once the lease would
// expire before the next attempt. The ticker and the clock are the
// engine's injected ones, so the test decides when renewals happen.
func TestLeaseRenewalFailure(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		advance time.Duration // how far the clock moves before the tick
		stops   bool
	}{
		{"lease still valid: carry on", 0, false},
		{"lease about to expire: stop", 25 * time.Second, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, setupOpts{strategy: "dual", roles: roleNames(t)})
			var offset atomic.Int64
			tick := make(chan time.Time)
			stopped := make(chan struct{})
			b.eng.Store = renewFailingStore{b.store}
			b.eng.LeaseTTL = 30 * time.Second
			b.eng.Now = func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }
			b.eng.Tick = func(time.Duration) (<-chan time.Time, func()) { return tick, func() { close(stopped) } }
			b.eng.Hooks = &engine.Hooks{BeforeStep: func(step string) error {
				if step == engine.StepTest {
					offset.Add(int64(tc.advance))
					tick <- time.Now()
					if tc.stops {
						<-stopped // the renewer gave up and cancelled the run
					}
				}
				return nil
			}}
			res, err := b.eng.Rotate(b.ctx, b.cred(), engine.Options{})
			if !tc.stops {
				require.NoError(t, err)
				require.Equal(t, store.StatusSucceeded, res.Status)
				return
			}
			require.ErrorContains(t, err, "stopped before test")
			require.ErrorContains(t, err, "could not be renewed before it expires: database is locked")
		})
	}
}

// TestPlanWarnsOfTheBusyRoleRotateRefuses: on a first dual rotation with
// both roles in use, plan warns of the refusal rotate then makes.
func TestPlanWarnsOfTheBusyRoleRotateRefuses(t *testing.T) {
	t.Parallel()
	roles := roleNames(t)
	b := setup(t, setupOpts{strategy: "dual", roles: roles})
	admin := pgtest.Connect(b.ctx, t, b.cl.AdminURL(b.db))
	for _, role := range roles {
		pw := mustPassword(t)
		v, err := secret.SCRAMVerifier(nil, pw)
		require.NoError(t, err)
		_, err = admin.Exec(b.ctx, "ALTER ROLE "+pgx.Identifier{role}.Sanitize()+" PASSWORD '"+v.Reveal()+"'")
		require.NoError(t, err)
		b.session(role, pw, "early-"+role)
	}

	p, err := b.eng.Plan(b.ctx, b.cred(), engine.PlanOptions{})
	require.NoError(t, err)
	require.Equal(t, roles[0], p.ToRole)
	require.Contains(t, strings.Join(p.Warnings, "\n"), "refuse to reuse it without --force")
	_, err = b.eng.Rotate(b.ctx, b.cred(), engine.Options{})
	var se *engine.StepError
	require.ErrorAs(t, err, &se)
	require.Equal(t, engine.StepPrepare, se.Step)
	require.Contains(t, se.Err.Error(), "role "+roles[0]+", which this rotation would give a new password, still has 1 session(s)")
}

// everyStep is the journal of a rotation that ran each step once: the
// finish ends the rotation, so it has no done record.
var everyStep = []string{"prepare:started", "prepare:done", "apply:started", "apply:done", "test:started", "test:done",
	"publish:started", "publish:done", "confirm:started", "confirm:done", "finish:started"}

// journal lists rotation id's step records as "step:status".
func (b *bundle) journal(t *testing.T, id int64) []string {
	t.Helper()
	steps, err := b.store.ListSteps(b.ctx, store.ListStepsParams{RotationID: id})
	require.NoError(t, err)
	var out []string
	for _, s := range steps {
		out = append(out, s.Name+":"+string(s.Status))
	}
	return out
}
