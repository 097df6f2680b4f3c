package pgbouncer_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/joho/godotenv"
	"github.com/stretchr/testify/require"

	"github.com/rotorhq/rotor/internal/connstr"
	"github.com/rotorhq/rotor/internal/engine"
	"github.com/rotorhq/rotor/internal/pgbouncertest"
	"github.com/rotorhq/rotor/internal/pgtest"
	"github.com/rotorhq/rotor/internal/provider"
	pbuiltin "github.com/rotorhq/rotor/internal/provider/builtin"
	"github.com/rotorhq/rotor/internal/resolve"
	"github.com/rotorhq/rotor/internal/secret"
	"github.com/rotorhq/rotor/internal/store"
	"github.com/rotorhq/rotor/internal/store/sqlite"
	"github.com/rotorhq/rotor/internal/target"
	tbuiltin "github.com/rotorhq/rotor/internal/target/builtin"
	"github.com/rotorhq/rotor/internal/target/pgbouncer"
)

// lookup is target/builtin plus this target, which builtin does not list
// yet.
func lookup(typ string) (target.Factory, error) {
	if typ == pgbouncer.Type {
		return pgbouncer.New, nil
	}
	return tbuiltin.Lookup(typ)
}

// TestDualRotationThroughPgBouncerDropsNoConnection runs whole dual
// rotations with the engine while consumers keep connecting through
// PgBouncer with whatever credential the .env file holds at that moment.
// Not one connection may fail: PgBouncer must accept each new password
// before any consumer can read it, and keep accepting the old one while
// consumers may still present it.
//
// The pgbouncer target is a gatekeeper: the engine writes and reloads it
// before the login test (which therefore goes through PgBouncer too, as
// consumers do) and before any other target, whatever the order and the
// publish concurrency. It also lists its clients (SHOW CLIENTS) to the
// drain, which PgBouncer's clients would otherwise slip past (they hold no
// server session while waiting, and RELOAD closes idle server
// connections), so the old role can be retired at once as well as kept
// until the next rotation.
func TestDualRotationThroughPgBouncerDropsNoConnection(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ retire, outcome string }{
		{"next-rotation", "stays valid until the next rotation"},
		{"immediately", " retired"},
	} {
		t.Run(tc.retire, func(t *testing.T) {
			t.Parallel()
			dualThroughPgBouncer(t, tc.retire, tc.outcome)
		})
	}
}

// pgbWorld is a dual credential whose consumers go through a real
// PgBouncer: the engine, the credential, the .env file they read.
type pgbWorld struct {
	eng     *engine.Engine
	cr      *engine.Credential
	envFile string
	roles   []string
	b       *pgbouncertest.Bouncer
}

// pgbOpts shape a pgbWorld: retire and drain for the dual strategy, or
// single; settings are extra PgBouncer settings; pooledDB, when set, is
// the database name consumers ask PgBouncer for (to break the pooled path).
type pgbOpts struct {
	retire, drain string
	single        bool
	settings      map[string]string
	pooledDB      string
}

func newPgbWorld(t *testing.T, o pgbOpts) *pgbWorld {
	retire, drain, settings := o.retire, o.drain, o.settings
	cl := pgtest.Shared(t)
	db, _ := pgtest.NewDatabase(t)
	// An explicit [databases] entry without a user, so SCRAM passes
	// through. Pooled server connections of a role consumers left close
	// after a second, so the role can be rotated again soon.
	b := pgbouncertest.StartTB(t, pgbouncertest.Options{ServerHost: cl.Host, ServerPort: cl.Port,
		Databases: map[string]string{db: fmt.Sprintf("host=%s port=%d dbname=%s", cl.Host, cl.Port, db)},
		Settings:  settings})
	ctx := t.Context()

	roles, group := pgtest.NewDualRoles(t, cl, pgtest.UniqueName(t, "pgb"))

	dir := t.TempDir()
	envFile := filepath.Join(dir, ".env")
	require.NoError(t, os.WriteFile(envFile, []byte("# app\nOTHER=keep\n"), 0o600))
	strategy := fmt.Sprintf("strategy: dual\n    roles: [%q, %q]\n    group: %q\n    retire: %s\n    drain: {timeout: %s, poll: 50ms, grace: 200ms, quiet: 300ms}", roles[0], roles[1], group, retire, drain)
	if o.single {
		strategy = fmt.Sprintf("strategy: single\n    role: %q", roles[0])
	}
	pooledDB := db
	if o.pooledDB != "" {
		pooledDB = o.pooledDB
	}
	yaml := fmt.Sprintf(`version: 1
credentials:
  app:
    provider:
      type: postgres
      admin_url: ${ADMIN_URL}
    connection:
      url: postgresql://%s:%d/%s?sslmode=require&channel_binding=require
      pooled_url: postgresql://%s:%d/%s?sslmode=disable
    %s
    targets:
      - name: env
        type: dotenv
        path: %q
        values:
          DATABASE_URL: "{{.PooledURL}}"
      # Listed last on purpose: gatekeepers go first anyway.
      - name: bouncer
        type: pgbouncer
        auth_file: %q
        admin_url: ${PGBOUNCER_ADMIN_URL}
        values:
          DATABASE_URL: "{{.PooledURL}}"
`, cl.Host, cl.Port, db, b.Host, b.Port, pooledDB, strategy, envFile, b.AuthFile)
	env := map[string]string{"ADMIN_URL": cl.AdminURL(db).Reveal(), "PGBOUNCER_ADMIN_URL": b.AdminURL().Reveal()}
	cfgPath := filepath.Join(dir, "rotor.yaml")
	require.NoError(t, os.WriteFile(cfgPath, []byte(yaml), 0o600))
	cfg, err := resolve.Load(cfgPath, func(k string) (string, bool) { v, ok := env[k]; return v, ok }, resolve.Registry{
		Provider: pbuiltin.Lookup, Target: lookup, Now: time.Now, Getenv: func(string) string { return "" },
	})
	require.NoError(t, err)
	t.Cleanup(func() { cfg.Close() })
	cr, err := cfg.Credential("app")
	require.NoError(t, err)
	_, err = cr.Provider.EnsureRoles(ctx, provider.EnsureRolesRequest{Group: group, Logins: roles, Database: db})
	require.NoError(t, err)

	st, err := sqlite.Open(ctx, filepath.Join(dir, "state.db"))
	require.NoError(t, err)
	t.Cleanup(func() { st.Close() })
	key := make([]byte, 32)
	_, err = rand.Read(key)
	require.NoError(t, err)
	sealer, err := secret.NewSealer(key)
	require.NoError(t, err)
	eng := &engine.Engine{Store: st, Sealer: sealer}
	return &pgbWorld{eng: eng, cr: cr, envFile: envFile, roles: roles, b: b}
}

func dualThroughPgBouncer(t *testing.T, retire, wantOutcome string) {
	w := newPgbWorld(t, pgbOpts{retire: retire, drain: "30s", settings: map[string]string{"server_idle_timeout": "1"}})
	ctx, eng, cr, envFile, roles, b := t.Context(), w.eng, w.cr, w.envFile, w.roles, w.b

	var passwords []secret.String
	rotate := func() *engine.Result {
		t.Helper()
		res, err := eng.Rotate(ctx, cr, engine.Options{})
		require.NoError(t, err)
		require.Equal(t, store.StatusSucceeded, res.Status, res.Outcome)
		env, err := godotenv.Read(envFile)
		require.NoError(t, err)
		cs, err := connstr.Parse(env["DATABASE_URL"])
		require.NoError(t, err)
		passwords = append(passwords, cs.Password)
		return res
	}

	// The first rotation gives the consumers something to use.
	res := rotate()
	require.Equal(t, roles[0], res.Role)

	c := startConsumers(t, envFile, 3)
	c.waitFor(t, roles[0], 20)

	// Two more rotations: to green, whose entry is added, then back to
	// blue, whose entry is rewritten in place while green's stays.
	res = rotate()
	require.Equal(t, roles[1], res.Role)
	require.Equal(t, roles[0], res.OldRole)
	require.Contains(t, res.Outcome, wantOutcome)
	c.waitFor(t, roles[1], 20)
	// The next rotation changes blue's password, which it refuses while
	// blue has sessions: wait for PgBouncer to close the pooled ones.
	require.Eventually(t, func() bool {
		s, err := cr.Provider.Sessions(ctx, provider.SessionsRequest{Role: roles[0]})
		return err == nil && len(s.Sessions) == 0
	}, time.Minute, 50*time.Millisecond, "PgBouncer keeps server connections of %s open", roles[0])

	res = rotate()
	require.Equal(t, roles[0], res.Role)
	require.Equal(t, roles[1], res.OldRole)
	c.waitFor(t, roles[0], 20)

	failures, errs := c.stop()
	require.Zero(t, failures, "connections through PgBouncer failed during the rotations: %v", errs)

	// Leak scan: PgBouncer saw every password go by (clients log in with
	// it), yet neither its log nor the auth_file holds one in any form.
	for _, f := range []string{b.LogFile, b.AuthFile} {
		data, err := os.ReadFile(f)
		require.NoError(t, err)
		require.NotEmpty(t, data)
		require.Empty(t, secret.Leaks(data, passwords...), "%s holds a password", filepath.Base(f))
	}

	// Both roles keep an entry in the auth_file, the current one holding
	// the verifier the server holds.
	content, err := os.ReadFile(b.AuthFile)
	require.NoError(t, err)
	entries, err := pgbouncer.ParseAuthFile(content)
	require.NoError(t, err)
	users := map[string]int{}
	for _, e := range entries {
		users[e.User]++
	}
	require.Equal(t, map[string]int{pgbouncertest.AdminUser: 1, roles[0]: 1, roles[1]: 1}, users)
}

// consumers connect through PgBouncer in a loop, each time with the
// DATABASE_URL the .env file holds, as an application re-reading its
// configuration would; they count failures and which roles succeeded.
type consumers struct {
	envFile  string
	stopped  chan struct{}
	wg       sync.WaitGroup
	failures atomic.Int64
	mu       sync.Mutex
	errs     []string
	success  map[string]int
}

func startConsumers(t *testing.T, envFile string, n int) *consumers {
	c := &consumers{envFile: envFile, stopped: make(chan struct{}), success: map[string]int{}}
	for range n {
		c.wg.Go(c.loop)
	}
	t.Cleanup(func() { c.stop() })
	return c
}

func (c *consumers) loop() {
	for {
		select {
		case <-c.stopped:
			return
		default:
		}
		role, err := c.once()
		c.mu.Lock()
		if err != nil {
			c.failures.Add(1)
			if len(c.errs) < 5 {
				c.errs = append(c.errs, err.Error())
			}
		} else {
			c.success[role]++
		}
		c.mu.Unlock()
	}
}

func (c *consumers) once() (string, error) {
	m, err := godotenv.Read(c.envFile)
	if err != nil {
		return "", fmt.Errorf("read .env: %w", err)
	}
	u := secret.New(m["DATABASE_URL"])
	cs, err := connstr.Parse(u.Reveal())
	if err != nil {
		return "", fmt.Errorf("parse DATABASE_URL: %w", secret.Scrub(err, u))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := pgtest.CanLogin(ctx, u); err != nil {
		return "", fmt.Errorf("as %s: %w", cs.User, secret.Scrub(err, u, cs.Password))
	}
	return cs.User, nil
}

// waitFor returns once role has had n more successful connections; a
// consumer that cannot connect shows up as failures, not as a hang.
func (c *consumers) waitFor(t *testing.T, role string, n int) {
	t.Helper()
	c.mu.Lock()
	want := c.success[role] + n
	c.mu.Unlock()
	require.Eventually(t, func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.success[role] >= want || c.failures.Load() > 0
	}, time.Minute, 10*time.Millisecond, "consumers did not connect as %s", role)
}

func (c *consumers) stop() (int64, []string) {
	select {
	case <-c.stopped:
	default:
		close(c.stopped)
	}
	c.wg.Wait()
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.failures.Load(), c.errs
}

// TestDrainWaitsForPgBouncerClients: with transaction pooling, a client
// idle between transactions holds no server session, so the database sees
// nobody on the old role. The drain must ask PgBouncer (SHOW CLIENTS)
// and leave the old role working while that client is still there.
func TestDrainWaitsForPgBouncerClients(t *testing.T) {
	t.Parallel()
	w := newPgbWorld(t, pgbOpts{retire: "immediately", drain: "1s", settings: map[string]string{"pool_mode": "transaction", "server_idle_timeout": "1"}})
	ctx := t.Context()
	res, err := w.eng.Rotate(ctx, w.cr, engine.Options{})
	require.NoError(t, err)
	require.Equal(t, w.roles[0], res.Role)

	env, err := godotenv.Read(w.envFile)
	require.NoError(t, err)
	legacy, err := pgx.Connect(ctx, env["DATABASE_URL"]+"&application_name=legacy-worker")
	require.NoError(t, err)
	defer legacy.Close(context.Background())
	_, err = legacy.Exec(ctx, "SELECT 1")
	require.NoError(t, err)
	// Between transactions the client holds no server connection; wait
	// until PgBouncer has let the server connection go.
	require.Eventually(t, func() bool {
		s, err := w.cr.Provider.Sessions(ctx, provider.SessionsRequest{Role: w.roles[0]})
		return err == nil && len(s.Sessions) == 0
	}, time.Minute, 50*time.Millisecond)

	res, err = w.eng.Rotate(ctx, w.cr, engine.Options{})
	require.NoError(t, err)
	require.Equal(t, store.StatusOldInUse, res.Status, res.Outcome)
	require.Contains(t, res.Outcome, "via bouncer")
	_, err = legacy.Exec(ctx, "SELECT 1")
	require.NoError(t, err, "the client still on the old role keeps working")
}

// TestSingleRotationThroughPgBouncer: with the single strategy the engine
// gives PgBouncer the new verifier before the server (apply), so the login
// test goes through PgBouncer as consumers will, and the old password is
// refused by PgBouncer itself rather than by a server login.
func TestSingleRotationThroughPgBouncer(t *testing.T) {
	t.Parallel()
	w := newPgbWorld(t, pgbOpts{single: true})
	ctx := t.Context()
	var oldURL secret.String
	for i := range 2 {
		res, err := w.eng.Rotate(ctx, w.cr, engine.Options{})
		require.NoError(t, err, "rotation %d", i+1)
		require.Equal(t, store.StatusSucceeded, res.Status, res.Outcome)
		require.Equal(t, w.roles[0], res.Role)
		require.Equal(t, "logged in via direct and pooled", stepDetail(t, res, engine.StepTest))

		env, err := godotenv.Read(w.envFile)
		require.NoError(t, err)
		url := secret.New(env["DATABASE_URL"])
		require.Contains(t, url.Reveal(), fmt.Sprintf("127.0.0.1:%d", w.b.Port), "consumers use the pooled URL")
		require.NoError(t, pgtest.CanLogin(ctx, url), "the published URL logs in through PgBouncer")
		if !oldURL.IsZero() {
			require.Error(t, pgtest.CanLogin(ctx, oldURL), "the previous password no longer works")
		}
		oldURL = url
	}
}

// TestSingleRotationKeepsPgBouncerPoolOpen: a consumer still presenting
// the old password during a single rotation must not make PgBouncer lock
// the pool. Were the server changed first, PgBouncer would accept that
// client against its old entry, try a server login with it, fail, and
// then refuse every client of the pool for server_login_retry (30 s here)
// — new password or not. Because PgBouncer gets the new verifier first,
// it refuses the old password itself, and the new one works at once.
func TestSingleRotationKeepsPgBouncerPoolOpen(t *testing.T) {
	t.Parallel()
	w := newPgbWorld(t, pgbOpts{single: true, settings: map[string]string{"server_login_retry": "30", "server_idle_timeout": "1"}})
	ctx := t.Context()
	oldURL := w.rotatedURL(t)
	// No pooled server connection may be left to reuse: the old-password
	// client below must need a fresh server login.
	require.Eventually(t, func() bool {
		s, err := w.cr.Provider.Sessions(ctx, provider.SessionsRequest{Role: w.roles[0]})
		return err == nil && len(s.Sessions) == 0
	}, time.Minute, 50*time.Millisecond)

	var oldErr error
	w.eng.Hooks = &engine.Hooks{BeforeStep: func(step string) error {
		if step == engine.StepTest {
			// Between apply and the first consumer reading the new .env.
			oldErr = pgtest.CanLogin(ctx, oldURL)
		}
		return nil
	}}
	newURL := w.rotatedURL(t)
	require.Error(t, oldErr, "the old password must be refused once apply ran")
	// PgBouncer's own refusal (it checks SCRAM against its auth_file),
	// not a server's "password authentication failed" passed on.
	require.Contains(t, oldErr.Error(), "SASL authentication failed")
	require.NotContains(t, oldErr.Error(), "server login")

	require.NoError(t, pgtest.CanLogin(ctx, newURL),
		"the new password must log in through PgBouncer at once, not after server_login_retry")
	log, err := os.ReadFile(w.b.LogFile)
	require.NoError(t, err)
	// Client lines are "C-0x…", server connections' "S-0x…": no server
	// login may have failed.
	for _, line := range strings.Split(string(log), "\n") {
		require.False(t, strings.Contains(line, " S-0x") && strings.Contains(strings.ToLower(line), "fail"),
			"PgBouncer tried a server login that failed: %s", line)
	}
}

// TestSingleRotationRollsBackPgBouncer: the pooled login fails (here:
// PgBouncer serves no such database), so the single rotation is rolled
// back — the server gets its previous password again, and so does
// PgBouncer's auth_file, which apply had already given the new one.
func TestSingleRotationRollsBackPgBouncer(t *testing.T) {
	t.Parallel()
	w := newPgbWorld(t, pgbOpts{single: true, pooledDB: "no_such_db"})
	before, err := os.ReadFile(w.envFile)
	require.NoError(t, err)

	res, err := w.eng.Rotate(t.Context(), w.cr, engine.Options{})
	var se *engine.StepError
	require.ErrorAs(t, err, &se)
	require.Equal(t, engine.StepTest, se.Step)
	require.Contains(t, se.Error(), "pooled connection")
	require.Contains(t, se.Hint, "previous password was put back")
	require.Equal(t, store.StatusRolledBack, res.Status)
	after, err := os.ReadFile(w.envFile)
	require.NoError(t, err)
	require.Equal(t, string(before), string(after), "the .env file was not written")

	// The auth_file entry holds what the server holds again.
	snap, err := w.cr.Provider.Snapshot(t.Context(), provider.SnapshotRequest{Role: w.roles[0]})
	require.NoError(t, err)
	content, err := os.ReadFile(w.b.AuthFile)
	require.NoError(t, err)
	entries, err := pgbouncer.ParseAuthFile(content)
	require.NoError(t, err)
	found := false
	for _, e := range entries {
		if e.User == w.roles[0] {
			found = true
			require.True(t, snap.Verifier.Equal(e.Secret), "the auth_file must hold the server's (previous) verifier again")
		}
	}
	require.True(t, found, "apply wrote an entry for the role")
}

// rotatedURL runs one rotation that must succeed and returns the URL the
// .env file holds afterwards.
func (w *pgbWorld) rotatedURL(t *testing.T) secret.String {
	t.Helper()
	res, err := w.eng.Rotate(t.Context(), w.cr, engine.Options{})
	require.NoError(t, err)
	require.Equal(t, store.StatusSucceeded, res.Status, res.Outcome)
	env, err := godotenv.Read(w.envFile)
	require.NoError(t, err)
	return secret.New(env["DATABASE_URL"])
}

func stepDetail(t *testing.T, res *engine.Result, step string) string {
	t.Helper()
	for _, s := range res.Steps {
		if s.Name == step {
			return s.Detail
		}
	}
	require.FailNow(t, "step missing from the result", "step %s", step)
	return ""
}

// TestSingleAbandonRestoresPgBouncer: a single rotation stopped after
// apply (which gave PgBouncer the new verifier first) and abandoned puts
// the previous password back on the server and in the auth_file, so the
// consumers' old URL works through PgBouncer again.
func TestSingleAbandonRestoresPgBouncer(t *testing.T) {
	t.Parallel()
	w := newPgbWorld(t, pgbOpts{single: true})
	ctx := t.Context()
	oldURL := w.rotatedURL(t)

	w.eng.Hooks = &engine.Hooks{BeforeStep: func(step string) error {
		if step == engine.StepTest {
			return fmt.Errorf("stopped for the test")
		}
		return nil
	}}
	_, err := w.eng.Rotate(ctx, w.cr, engine.Options{})
	require.Error(t, err)
	require.Error(t, pgtest.CanLogin(ctx, oldURL), "after apply the old password is refused")
	w.eng.Hooks = nil

	rot, err := w.eng.Abandon(ctx, w.cr)
	require.NoError(t, err)
	require.Equal(t, store.StatusAbandoned, rot.Status)
	require.NoError(t, pgtest.CanLogin(ctx, oldURL), "the old URL works through PgBouncer again")
}

// TestSingleResumeThroughPgBouncerFromEveryStep stops a single rotation
// before each step (as a crash would) and resumes it: PgBouncer and the
// server end up with the same new verifier, the .env URL logs in through
// PgBouncer, and the previous password is refused.
func TestSingleResumeThroughPgBouncerFromEveryStep(t *testing.T) {
	t.Parallel()
	w := newPgbWorld(t, pgbOpts{single: true})
	ctx := t.Context()
	_, err := w.eng.Rotate(ctx, w.cr, engine.Options{})
	require.NoError(t, err)
	for _, step := range engine.Steps[1:] {
		env, err := godotenv.Read(w.envFile)
		require.NoError(t, err)
		before := secret.New(env["DATABASE_URL"])

		stop := true
		w.eng.Hooks = &engine.Hooks{BeforeStep: func(s string) error {
			if s == step && stop {
				stop = false
				return fmt.Errorf("stopped before %s", s)
			}
			return nil
		}}
		_, err = w.eng.Rotate(ctx, w.cr, engine.Options{})
		require.ErrorContains(t, err, "stopped before "+step)
		res, err := w.eng.Rotate(ctx, w.cr, engine.Options{ResumeOnly: true})
		require.NoError(t, err, "resume after a stop before %s", step)
		require.Equal(t, store.StatusSucceeded, res.Status, "%s: %s", step, res.Outcome)

		env, err = godotenv.Read(w.envFile)
		require.NoError(t, err)
		after := secret.New(env["DATABASE_URL"])
		require.False(t, after.Equal(before), "%s: a new password was published", step)
		require.NoError(t, pgtest.CanLogin(ctx, after), "%s: the new URL logs in through PgBouncer", step)
		require.Error(t, pgtest.CanLogin(ctx, before), "%s: the previous password is refused", step)
	}
}
