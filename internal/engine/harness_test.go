package engine_test

import (
	"cmp"
	"context"
	"crypto/rand"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/joho/godotenv"
	"github.com/stretchr/testify/require"

	"github.com/rotorhq/rotor/internal/connstr"
	"github.com/rotorhq/rotor/internal/engine"
	"github.com/rotorhq/rotor/internal/pgcluster"
	"github.com/rotorhq/rotor/internal/pgtest"
	pbuiltin "github.com/rotorhq/rotor/internal/provider/builtin"
	"github.com/rotorhq/rotor/internal/resolve"
	"github.com/rotorhq/rotor/internal/secret"
	"github.com/rotorhq/rotor/internal/store"
	"github.com/rotorhq/rotor/internal/store/sqlite"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// bundle is one test's world: a database of its own on the shared
// cluster, a config directory, a store and an engine.
type bundle struct {
	t       *testing.T
	ctx     context.Context
	cl      *pgcluster.Cluster
	db      string
	dir     string
	cfg     *resolve.Config
	store   store.Store
	eng     *engine.Engine
	mu      sync.Mutex // guards events: the engine emits from parallel target goroutines
	events  []engine.Event
	envFile string
	mem     *memoryTarget
	// memGatekeeper makes the memory target a gatekeeper.
	memGatekeeper bool
	// loadConfig reads rotor.yaml again with fresh providers and targets,
	// as a new rotor process would, with the variables in env.
	loadConfig func()
	env        map[string]string
}

type setupOpts struct {
	memory bool // add a "memory" target (see memory_test.go)
	// gatekeeper makes the memory target a gatekeeper.
	gatekeeper bool
	strategy   string
	roles      []string // created with pgtest.NewRole (random passwords) unless skipCreate
	extra      string   // extra YAML lines under the credential (indented 4 spaces)
	urlDB      string   // database in connection.url (default: the test's)
	envPath    string   // dotenv target path (default .env in dir)
	drain      string   // drain timeout (default 2s)
	grace      string   // drain grace (default 200ms)
	quiet      string   // drain quiet (default 300ms)
	wait       string   // drain wait (default 1m)
	poll       string   // drain poll (default 50ms)
	// pg17 runs the test on a PostgreSQL 17 cluster (pgtest.Shared17).
	pg17 bool
	// targets is more target YAML (items indented six spaces) and env the
	// variables it names.
	targets string
	env     map[string]string
}

func setup(t *testing.T, o setupOpts) *bundle {
	t.Helper()
	cl := pgtest.Shared(t)
	if o.pg17 {
		cl = pgtest.Shared17(t)
	}
	db, _ := pgtest.NewDatabaseOn(t, cl)
	b := &bundle{t: t, ctx: t.Context(), cl: cl, db: db, dir: t.TempDir(), memGatekeeper: o.gatekeeper}
	for _, r := range o.roles {
		pgtest.NewRole(t, cl, r, mustPassword(t))
	}
	if o.strategy == "dual" {
		group := commonGroup(o.roles)
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			pgtest.DropRole(ctx, cl, group)
		})
	}
	b.envFile = filepath.Join(b.dir, ".env")
	if o.envPath != "" {
		b.envFile = o.envPath
	}
	require.NoError(t, os.WriteFile(filepath.Join(b.dir, ".env"), []byte("# app settings\nexport OTHER=keep-me\nDATABASE_URL=postgresql://stale@nowhere/db\n"), 0o600))
	drain := o.drain
	if drain == "" {
		drain = "2s"
	}
	urlDB := o.urlDB
	if urlDB == "" {
		urlDB = db
	}
	roleLine := fmt.Sprintf("    role: %q\n", o.roles[0])
	if o.strategy == "dual" {
		roleLine = fmt.Sprintf("    roles: [%q, %q]\n    group: %q\n", o.roles[0], o.roles[1], commonGroup(o.roles))
	}
	yaml := fmt.Sprintf(`version: 1
credentials:
  app:
    provider:
      type: postgres
      admin_url: ${ADMIN_URL}
    connection:
      url: postgresql://%s:%d/%s?sslmode=require&channel_binding=require
    strategy: %s
%s    drain:
      timeout: %s
      poll: %s
      grace: %s
      quiet: %s
      wait: %s
%s    targets:
      - name: env
        type: dotenv
        path: %q
        values:
          DATABASE_URL: "{{.URL}}"
          PGUSER: "{{.User}}"
%s%s`, cl.Host, cl.Port, urlDB, o.strategy, roleLine, drain, cmp.Or(o.poll, "50ms"), cmp.Or(o.grace, "200ms"), cmp.Or(o.quiet, "300ms"), cmp.Or(o.wait, "1m"), o.extra, b.envFile, memoryTargetYAML(o.memory), o.targets)
	b.env = map[string]string{"ADMIN_URL": cl.AdminURL(db).Reveal()}
	maps.Copy(b.env, o.env)
	cfgPath := filepath.Join(b.dir, "rotor.yaml")
	require.NoError(t, os.WriteFile(cfgPath, []byte(yaml), 0o600))
	b.loadConfig = func() {
		cfg, err := resolve.Load(cfgPath, func(k string) (string, bool) { v, ok := b.env[k]; return v, ok }, resolve.Registry{
			Provider: pbuiltin.Lookup, Target: lookupWithMemory(b), Now: time.Now, Getenv: func(string) string { return "" },
		})
		require.NoError(t, err)
		t.Cleanup(func() { cfg.Close() })
		b.cfg = cfg
	}
	b.loadConfig()
	st, err := sqlite.Open(b.ctx, filepath.Join(b.dir, "state.db"))
	require.NoError(t, err)
	t.Cleanup(func() { st.Close() })
	b.store = st
	b.eng = b.newEngine()
	if o.strategy == "dual" {
		_, err := b.cred().Provider.EnsureRoles(b.ctx, ensureReq(b, o.roles))
		require.NoError(t, err)
	}
	return b
}

var testKey = func() []byte {
	k := make([]byte, 32)
	rand.Read(k)
	return k
}()

func (b *bundle) newEngine() *engine.Engine {
	sealer, err := secret.NewSealer(testKey)
	require.NoError(b.t, err)
	return &engine.Engine{Store: b.store, Sealer: sealer, Events: func(ev engine.Event) {
		b.mu.Lock()
		defer b.mu.Unlock()
		b.events = append(b.events, ev)
	}}
}

func (b *bundle) cred() *engine.Credential {
	cr, err := b.cfg.Credential("app")
	require.NoError(b.t, err)
	return cr
}

func (b *bundle) rotate(opts engine.Options) *engine.Result {
	b.t.Helper()
	res, err := b.eng.Rotate(b.ctx, b.cred(), opts)
	require.NoError(b.t, err)
	return res
}

// envURL returns DATABASE_URL as the .env file holds it now.
func (b *bundle) envURL() secret.String {
	b.t.Helper()
	m, err := godotenv.Read(b.envFile)
	require.NoError(b.t, err)
	return secret.New(m["DATABASE_URL"])
}

// current returns the password of the store's current version.
func (b *bundle) current() (role string, pw secret.String) {
	b.t.Helper()
	vs, err := b.store.ListVersions(b.ctx, store.ListVersionsParams{Credential: "app", Stages: []store.Stage{store.StageCurrent}})
	require.NoError(b.t, err)
	require.Len(b.t, vs, 1)
	c, err := connstr.Parse(b.envURL().Reveal())
	require.NoError(b.t, err)
	require.Equal(b.t, vs[0].Role, c.User, "the .env file must name the current role")
	return vs[0].Role, c.Password
}

// envRole returns the user DATABASE_URL names now, without asserting.
func (b *bundle) envRole() string {
	m, err := godotenv.Read(b.envFile)
	if err != nil {
		return ""
	}
	c, err := connstr.Parse(m["DATABASE_URL"])
	if err != nil {
		return ""
	}
	return c.User
}

// loginURL is how a consumer connects: TLS with channel binding.
func (b *bundle) loginURL(role string, pw secret.String) secret.String {
	return b.cl.URL(role, pw, b.db, "sslmode=require", "channel_binding=require")
}

func (b *bundle) requireLogin(role string, pw secret.String) {
	b.t.Helper()
	require.NoError(b.t, pgtest.CanLogin(b.ctx, b.loginURL(role, pw)), "role %s must log in", role)
}

func (b *bundle) requireNoLogin(role string, pw secret.String) {
	b.t.Helper()
	err := pgtest.CanLogin(b.ctx, b.loginURL(role, pw))
	require.Error(b.t, err, "role %s must not log in", role)
	require.Contains(b.t, err.Error(), "password authentication failed")
}

// session opens a long-lived consumer session.
func (b *bundle) session(role string, pw secret.String, app string) *pgx.Conn {
	b.t.Helper()
	u := b.loginURL(role, pw).Reveal() + "&application_name=" + app
	conn, err := pgx.Connect(b.ctx, u)
	require.NoError(b.t, err)
	b.t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func mustPassword(t *testing.T) secret.String {
	pw, err := secret.Generate(nil, secret.DefaultPolicy())
	require.NoError(t, err)
	return pw
}

// rolesFor are the login roles a credential of strategy needs: one for
// single, a pair for dual.
func rolesFor(t *testing.T, strategy string) []string {
	if strategy == "single" {
		return []string{pgtest.UniqueName(t, "app")}
	}
	return roleNames(t)
}

func commonGroup(roles []string) string {
	return strings.TrimSuffix(roles[0], "_b") + "_grp"
}

func roleNames(t *testing.T) []string {
	base := pgtest.UniqueName(t, "app")
	return []string{base + "_b", base + "_g"}
}
