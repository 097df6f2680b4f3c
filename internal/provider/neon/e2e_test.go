package neon_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/joho/godotenv"
	"github.com/stretchr/testify/require"

	"github.com/rotorhq/rotor/internal/connstr"
	"github.com/rotorhq/rotor/internal/engine"
	"github.com/rotorhq/rotor/internal/pgtest"
	"github.com/rotorhq/rotor/internal/provider"
	pbuiltin "github.com/rotorhq/rotor/internal/provider/builtin"
	"github.com/rotorhq/rotor/internal/provider/neon"
	"github.com/rotorhq/rotor/internal/provider/neon/neonapi"
	"github.com/rotorhq/rotor/internal/provider/neon/neonfake"
	"github.com/rotorhq/rotor/internal/resolve"
	"github.com/rotorhq/rotor/internal/secret"
	"github.com/rotorhq/rotor/internal/store"
	"github.com/rotorhq/rotor/internal/store/sqlite"
	tbuiltin "github.com/rotorhq/rotor/internal/target/builtin"
)

// rig is one engine-level test: a config that names a neon credential
// with a dotenv target, loaded through resolve.Parse with neon in the
// registry, a store, and an engine whose logins reach the fake's clusters.
type rig struct {
	*world
	dir     string
	envFile string
	cfg     *resolve.Config
	store   store.Store
	eng     *engine.Engine
	// doc, env and lookup load the config again (reload), as a new
	// process would.
	doc     string
	environ map[string]string
	lookup  func(string) (provider.Factory, error)

	// key seals the store's passwords; every engine of the rig (a new
	// process after a crash too) uses the same one, as rotor's key file.
	key []byte

	mu     sync.Mutex
	sleeps []time.Duration
}

type rigOpts struct {
	method   string
	strategy string
	roles    []string
	provider []string          // extra provider lines
	env      map[string]string // extra environment
	values   []string          // extra values of the dotenv target
}

func newRig(t *testing.T, w *world, o rigOpts) *rig {
	t.Helper()
	r := &rig{world: w, dir: t.TempDir()}
	r.envFile = filepath.Join(r.dir, ".env")
	require.NoError(t, os.WriteFile(r.envFile, []byte("# app settings\nOTHER=keep-me\n"), 0o600))
	roleLine := fmt.Sprintf("    role: %q\n", o.roles[0])
	if o.strategy == "dual" {
		roleLine = fmt.Sprintf("    roles: [%q, %q]\n", o.roles[0], o.roles[1])
	}
	var prov strings.Builder
	for _, l := range append([]string{"type: neon", "api_key: ${NEON_API_KEY}", "api_url: " + w.fake.URL,
		"project_id: " + w.fake.ProjectID, "database: " + w.db, "method: " + o.method, "sslrootcert: " + w.fake.CACertFile}, o.provider...) {
		prov.WriteString("      " + l + "\n")
	}
	doc := fmt.Sprintf(`version: 1
credentials:
  app:
    provider:
%s    strategy: %s
%s    drain:
      timeout: 2s
      poll: 50ms
      grace: 200ms
      quiet: 300ms
    targets:
      - name: env
        type: dotenv
        path: %q
        values:
          DATABASE_URL: "{{.PooledURL}}"
          DATABASE_URL_UNPOOLED: "{{.DirectURL}}"
`, prov.String(), o.strategy, roleLine, r.envFile)
	for _, v := range o.values {
		doc += "          " + v + "\n"
	}
	tune := func(c *neonapi.Client) {
		c.MaxAttempts = 50
		c.Sleep = func(ctx context.Context, d time.Duration) error {
			r.mu.Lock()
			defer r.mu.Unlock()
			r.sleeps = append(r.sleeps, d)
			return ctx.Err()
		}
	}
	lookup := func(typ string) (provider.Factory, error) {
		if typ == "neon" {
			return neon.FactoryForTest(w.fake.Route, nil, tune, w.logs), nil
		}
		return pbuiltin.Lookup(typ)
	}
	env := map[string]string{"NEON_API_KEY": w.fake.APIKey}
	for k, v := range o.env {
		env[k] = v
	}
	r.doc, r.environ, r.lookup = doc, env, lookup
	r.reload()
	var err error
	r.store, err = sqlite.Open(t.Context(), filepath.Join(r.dir, "state.db"))
	require.NoError(t, err)
	t.Cleanup(func() { r.store.Close() })
	r.eng = r.newEngine()
	return r
}

// reload loads the config again: new providers, as in a new process.
func (r *rig) reload() {
	r.t.Helper()
	cfg, err := resolve.Parse(filepath.Join(r.dir, "rotor.yaml"), []byte(r.doc), func(k string) (string, bool) { v, ok := r.environ[k]; return v, ok },
		resolve.Registry{Provider: r.lookup, Target: tbuiltin.Lookup, HTTPClient: http.DefaultClient, Now: time.Now, Getenv: func(string) string { return "" }})
	require.NoError(r.t, err)
	r.t.Cleanup(func() { cfg.Close() })
	r.cfg = cfg
}

func (r *rig) newEngine() *engine.Engine {
	if r.key == nil {
		r.key = make([]byte, 32)
		_, _ = rand.Read(r.key)
	}
	sealer, err := secret.NewSealer(r.key)
	require.NoError(r.t, err)
	return &engine.Engine{Store: r.store, Sealer: sealer,
		Sleep: func(ctx context.Context, _ time.Duration) error { return ctx.Err() },
		Dial:  func(ctx context.Context, url secret.String) error { return engine.DialPostgres(ctx, r.routed(url)) },
		DialAfter: func(ctx context.Context, url secret.String, ready <-chan struct{}) error {
			return engine.DialPostgresAfter(ctx, r.routed(url), ready)
		}}
}

func (r *rig) cred() *engine.Credential {
	cr, err := r.cfg.Credential("app")
	require.NoError(r.t, err)
	return cr
}

// routed points a consumer's Neon connection string at the cluster that
// plays its branch, as Neon's DNS would.
func (w *world) routed(url secret.String) secret.String {
	w.t.Helper()
	c, err := connstr.Parse(url.Reveal())
	require.NoError(w.t, err)
	ip, port, ok := w.fake.Route(c.Host)
	require.True(w.t, ok, "host %s is no endpoint of the fake", c.Host)
	c = c.WithHost(ip)
	c.Port = strconv.Itoa(port)
	return c.URL()
}

// env returns the .env file's values.
func (r *rig) env() map[string]string {
	r.t.Helper()
	m, err := godotenv.Read(r.envFile)
	require.NoError(r.t, err)
	return m
}

// published returns the role and password the .env file holds, checking
// that both URLs are Neon's: the pooled host for DATABASE_URL, the direct
// one for DATABASE_URL_UNPOOLED, TLS with channel binding.
func (r *rig) published() (string, secret.String) {
	r.t.Helper()
	m := r.env()
	require.Equal(r.t, "keep-me", m["OTHER"])
	pooled, err := connstr.Parse(m["DATABASE_URL"])
	require.NoError(r.t, err)
	direct, err := connstr.Parse(m["DATABASE_URL_UNPOOLED"])
	require.NoError(r.t, err)
	wantPooled, err := connstr.PooledHost(r.main.Host)
	require.NoError(r.t, err)
	require.Equal(r.t, wantPooled, pooled.Host)
	require.Equal(r.t, r.main.Host, direct.Host)
	for _, c := range []*connstr.Conn{pooled, direct} {
		require.Equal(r.t, r.db, c.Database)
		for _, kv := range [][2]string{{"sslmode", "require"}, {"channel_binding", "require"}} {
			v, ok := c.Param(kv[0])
			require.True(r.t, ok)
			require.Equal(r.t, kv[1], v)
		}
	}
	require.Equal(r.t, pooled.User, direct.User)
	require.True(r.t, pooled.Password.Equal(direct.Password))
	return direct.User, direct.Password
}

func (w *world) login(role string, pw secret.String) error {
	return pgtest.CanLogin(w.t.Context(), w.main.Cluster.URL(role, pw, w.db, "channel_binding=require"))
}

func (r *rig) requestsTo(suffix string) []int {
	var codes []int
	for _, e := range r.fake.Requests() {
		if strings.HasSuffix(e.Path, suffix) {
			codes = append(codes, e.Status)
		}
	}
	return codes
}

func TestEngineSingleSQL(t *testing.T) {
	t.Parallel()
	w := newWorld(t, neonfake.Config{})
	role, oldPW := pgtest.UniqueName(t, "app"), secret.New("Old-pw-"+pgtest.UniqueName(t, "x"))
	pgtest.NewRole(t, w.main.Cluster, role, oldPW)
	r := newRig(t, w, rigOpts{method: neon.MethodSQL, strategy: "single", roles: []string{role}})

	res, err := r.eng.Rotate(t.Context(), r.cred(), engine.Options{})
	require.NoError(t, err)
	require.Equal(t, store.StatusSucceeded, res.Status)
	gotRole, first := r.published()
	require.Equal(t, role, gotRole)
	require.NoError(t, pgtest.CanLogin(t.Context(), r.routed(secret.New(r.env()["DATABASE_URL"]))), "the published pooled URL logs in")
	require.Error(t, w.login(role, oldPW), "the old password is gone")
	require.Empty(t, r.requestsTo("/reset_password"), "the sql method never resets through the API")

	res, err = r.eng.Rotate(t.Context(), r.cred(), engine.Options{})
	require.NoError(t, err)
	require.EqualValues(t, 2, res.Version)
	_, second := r.published()
	require.False(t, first.Equal(second))
	require.NoError(t, w.login(role, second))
	require.Error(t, w.login(role, first))
}

func TestEngineDualAPI(t *testing.T) {
	t.Parallel()
	w := newWorld(t, neonfake.Config{})
	blue, green := pgtest.UniqueName(t, "app_blue"), pgtest.UniqueName(t, "app_green")
	r := newRig(t, w, rigOpts{method: neon.MethodAPI, strategy: "dual", roles: []string{blue, green}})
	cr := r.cred()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		for _, role := range []string{blue, green, cr.Group} {
			_ = pgtest.DropRole(ctx, w.main.Cluster, role)
		}
	})
	// What `rotor setup-roles` does; no database in the request (the
	// config has no connection.url), so the provider's database gets CONNECT.
	setup, err := cr.Provider.EnsureRoles(t.Context(), provider.EnsureRolesRequest{Group: cr.Group, Logins: cr.Roles})
	require.NoError(t, err)
	require.Contains(t, strings.Join(setup.Changes, "\n"), fmt.Sprintf("created login role %q without a password", blue))
	require.Contains(t, strings.Join(setup.Changes, "\n"), "granted CONNECT on database")

	res, err := r.eng.Rotate(t.Context(), cr, engine.Options{})
	require.NoError(t, err)
	require.Equal(t, store.StatusSucceeded, res.Status)
	role1, pw1 := r.published()
	require.Equal(t, blue, role1)
	require.Regexp(t, `^npg_[A-Za-z0-9]{12}$`, pw1.Reveal(), "the password is the one Neon generated")
	require.NoError(t, w.login(blue, pw1))
	require.Contains(t, stepDetail(res, engine.StepApply), "reset through the Neon API")

	res, err = r.eng.Rotate(t.Context(), cr, engine.Options{})
	require.NoError(t, err)
	require.Equal(t, store.StatusSucceeded, res.Status)
	role2, pw2 := r.published()
	require.Equal(t, green, role2)
	require.NoError(t, w.login(green, pw2))
	require.Error(t, w.login(blue, pw1), "the old role is retired once drained")
	// Two rotations reset two passwords, and retiring blue reset it again.
	require.Equal(t, []int{200, 200, 200}, r.requestsTo("/reset_password"))
}

func stepDetail(res *engine.Result, step string) string {
	for _, s := range res.Steps {
		if s.Name == step {
			return s.Detail
		}
	}
	return ""
}

func TestEngineAPIRetriesLockedAndRateLimited(t *testing.T) {
	t.Parallel()
	w := newWorld(t, neonfake.Config{})
	role := pgtest.UniqueName(t, "app")
	oldPW := secret.New("Old-pw-" + pgtest.UniqueName(t, "x"))
	pgtest.NewRole(t, w.main.Cluster, role, oldPW)
	r := newRig(t, w, rigOpts{method: neon.MethodAPI, strategy: "single", roles: []string{role}})
	w.fake.Inject(neonfake.Fault{Method: http.MethodPost, PathSuffix: "/reset_password", Status: http.StatusLocked,
		Message: "project already has running operations, scheduling of new ones is prohibited", Count: 2})
	w.fake.Inject(neonfake.Fault{Method: http.MethodPost, PathSuffix: "/reset_password", Status: http.StatusTooManyRequests,
		Message: "rate limit exceeded", RetryAfter: 3 * time.Second})

	res, err := r.eng.Rotate(t.Context(), r.cred(), engine.Options{})
	require.NoError(t, err)
	require.Equal(t, store.StatusSucceeded, res.Status)
	require.Equal(t, []int{423, 423, 429, 200}, r.requestsTo("/reset_password"))
	r.mu.Lock()
	require.Contains(t, r.sleeps, 3*time.Second, "the 429's Retry-After is honoured")
	r.mu.Unlock()
	_, pw := r.published()
	require.NoError(t, w.login(role, pw))
	require.Error(t, w.login(role, oldPW))
}

func TestEngineAPIOperationFailureThenResume(t *testing.T) {
	t.Parallel()
	w := newWorld(t, neonfake.Config{})
	role := pgtest.UniqueName(t, "app")
	oldPW := secret.New("Old-pw-" + pgtest.UniqueName(t, "x"))
	pgtest.NewRole(t, w.main.Cluster, role, oldPW)
	r := newRig(t, w, rigOpts{method: neon.MethodAPI, strategy: "single", roles: []string{role}})
	w.fake.FailOperations(1, "compute ep-x is not responding")

	res, err := r.eng.Rotate(t.Context(), r.cred(), engine.Options{})
	var se *engine.StepError
	require.ErrorAs(t, err, &se)
	require.Equal(t, engine.StepApply, se.Step)
	require.Contains(t, err.Error(), "apply_config")
	require.Contains(t, err.Error(), "ended failed: compute ep-x is not responding")
	require.Contains(t, err.Error(), "rotor resume")
	require.ErrorIs(t, err, provider.ErrUnavailable)
	require.Equal(t, store.StatusActive, res.Status)
	require.NotContains(t, err.Error(), oldPW.Reveal())
	require.NoError(t, w.login(role, oldPW), "a failed reset leaves the old password working")
	require.NotContains(t, r.env(), "DATABASE_URL", "nothing was published")

	res2, err := r.eng.Rotate(t.Context(), r.cred(), engine.Options{ResumeOnly: true})
	require.NoError(t, err)
	require.True(t, res2.Resumed)
	require.Equal(t, res.RotationID, res2.RotationID)
	require.Equal(t, store.StatusSucceeded, res2.Status)
	_, pw := r.published()
	require.NoError(t, w.login(role, pw))
	require.Error(t, w.login(role, oldPW))
}

// TestEngineOwnerRole rotates the database owner, which is also the
// provider's admin role (the most common Neon set-up: the application
// connects as the owner), by either method, in a project that stores
// passwords and in one that does not (admin_password from the
// environment). The first rotation succeeds; a later process logs in
// with the password rotor stored (the engine passes it through
// SelfManager), since the environment variable is stale by then.
func TestEngineOwnerRole(t *testing.T) {
	t.Parallel()
	for _, method := range []string{neon.MethodSQL, neon.MethodAPI} {
		for _, stored := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s/stored_passwords=%v", method, stored), func(t *testing.T) {
				t.Parallel()
				w := newWorld(t, neonfake.Config{DisableStorePasswords: !stored})
				o := rigOpts{method: method, strategy: "single", roles: []string{w.owner}}
				if !stored {
					o.provider = []string{"admin_password: ${NEON_ADMIN_PASSWORD}"}
					o.env = map[string]string{"NEON_ADMIN_PASSWORD": w.ownerPW.Reveal()}
				}
				r := newRig(t, w, o)
				check, err := r.cred().Provider.Check(t.Context(), provider.CheckRequest{Roles: []string{w.owner}})
				require.NoError(t, err)
				require.Contains(t, strings.Join(check.Notes, "\n"), "is also the admin role rotor logs in as: rotor switches to each new password", "rotating its own admin is supported")

				res, err := r.eng.Rotate(t.Context(), r.cred(), engine.Options{})
				require.NoError(t, err, "the first rotation succeeds")
				require.Equal(t, store.StatusSucceeded, res.Status)
				user, pw1 := r.published()
				require.Equal(t, w.owner, user)
				for _, key := range []string{"DATABASE_URL", "DATABASE_URL_UNPOOLED"} {
					require.NoError(t, pgtest.CanLogin(t.Context(), r.routed(secret.New(r.env()[key]))), "the published %s logs in", key)
				}
				require.Error(t, w.login(w.owner, w.ownerPW), "the old password is gone")

				// A new process: the environment's admin password is stale,
				// and the engine hands the provider the one it stored.
				r.reload()
				res, err = r.eng.Rotate(t.Context(), r.cred(), engine.Options{})
				require.NoError(t, err, "the second rotation logs in with the stored password")
				require.EqualValues(t, 2, res.Version)
				_, pw2 := r.published()
				require.NoError(t, w.login(w.owner, pw2))
				require.Error(t, w.login(w.owner, pw1))
				w.requireNoLeak(t, []string{fmt.Sprintf("%+v", res)}, pw1, pw2, w.ownerPW)
			})
		}
	}
}

// TestEngineDualSQL is the zero-downtime set-up on Neon with the default
// method: two rotations of a dual pair, each new password sent over SQL,
// the old role retired once drained, and a session opened before the
// first rotation still running after the second (no reset, so nothing is
// dropped).
func TestEngineDualSQL(t *testing.T) {
	t.Parallel()
	w := newWorld(t, neonfake.Config{})
	blue, green, other := pgtest.UniqueName(t, "app_blue"), pgtest.UniqueName(t, "app_green"), pgtest.UniqueName(t, "other")
	otherPW, err := neon.StrongRandomPassword()
	require.NoError(t, err)
	pgtest.NewRole(t, w.main.Cluster, other, otherPW)
	r := newRig(t, w, rigOpts{method: neon.MethodSQL, strategy: "dual", roles: []string{blue, green}})
	cr := r.cred()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		for _, role := range []string{blue, green, cr.Group} {
			_ = pgtest.DropRole(ctx, w.main.Cluster, role)
		}
	})
	_, err = cr.Provider.EnsureRoles(t.Context(), provider.EnsureRolesRequest{Group: cr.Group, Logins: cr.Roles})
	require.NoError(t, err)
	session := pgtest.Connect(t.Context(), t, w.viaEndpoint(other, otherPW))

	res, err := r.eng.Rotate(t.Context(), cr, engine.Options{})
	require.NoError(t, err)
	require.Equal(t, store.StatusSucceeded, res.Status)
	require.Contains(t, stepDetail(res, engine.StepApply), "plaintext password set over verified TLS and proven by a login")
	role1, pw1 := r.published()
	require.Equal(t, blue, role1)

	res, err = r.eng.Rotate(t.Context(), cr, engine.Options{})
	require.NoError(t, err)
	require.Equal(t, store.StatusSucceeded, res.Status)
	role2, pw2 := r.published()
	require.Equal(t, green, role2)
	require.NoError(t, w.login(green, pw2))
	require.Error(t, w.login(blue, pw1), "the old role is retired once drained")
	var one int
	require.NoError(t, session.QueryRow(t.Context(), "SELECT 1").Scan(&one), "no session was dropped")
	require.Empty(t, r.requestsTo("/reset_password"))
	w.requireNoLeak(t, nil, pw1, pw2, otherPW)
}
