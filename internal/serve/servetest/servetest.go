// Package servetest builds what the tests of `rotor serve`'s parts (the
// service core, the API, the metrics, the console) run against: real
// roles on the shared test PostgreSQL, a config of single-strategy
// credentials that deliver to .env files, a real state store and an
// engine — and, on request, the real service on River over that store.
package servetest

import (
	"context"
	"crypto/rand"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/joho/godotenv"
	"github.com/stretchr/testify/require"

	"github.com/rotorhq/rotor/internal/engine"
	"github.com/rotorhq/rotor/internal/pgtest"
	pbuiltin "github.com/rotorhq/rotor/internal/provider/builtin"
	"github.com/rotorhq/rotor/internal/resolve"
	"github.com/rotorhq/rotor/internal/secret"
	"github.com/rotorhq/rotor/internal/serve"
	"github.com/rotorhq/rotor/internal/store"
	"github.com/rotorhq/rotor/internal/store/postgres"
	"github.com/rotorhq/rotor/internal/store/sqlite"
	tbuiltin "github.com/rotorhq/rotor/internal/target/builtin"
)

// Options shape a World.
type Options struct {
	// Store is "sqlite" (default) or "postgres".
	Store string
	// Names are the credentials (default one, "app"); each gets a login
	// role of its own and a .env target <name>.env in Dir.
	Names []string
	// Every is the credentials' schedule (default 30d).
	Every string
	// SSLMode of the consumers' URL (default disable).
	SSLMode string
}

// World is one test's installation.
type World struct {
	t       testing.TB
	Dir     string
	CfgPath string
	Env     map[string]string
	Store   store.Store
	Engine  *engine.Engine
	// Config is the config loaded at the start; the service, when there
	// is one, owns it (and closes it).
	Config *resolve.Config
	// Roles and Passwords are each credential's role and first password.
	Roles     map[string]string
	Passwords map[string]secret.String
	// AdminURL is the admin connection string the config reads from
	// ${ADMIN_URL}.
	AdminURL secret.String
	owned    bool
}

// New builds a World.
func New(t testing.TB, o Options) *World {
	t.Helper()
	cl := pgtest.Shared(t)
	db, adminURL := pgtest.NewDatabase(t)
	w := &World{t: t, Dir: t.TempDir(), Env: map[string]string{"ADMIN_URL": adminURL.Reveal()}, AdminURL: adminURL,
		Roles: map[string]string{}, Passwords: map[string]secret.String{}}
	names := o.Names
	if len(names) == 0 {
		names = []string{"app"}
	}
	var y strings.Builder
	y.WriteString("version: 1\ncredentials:\n")
	for _, name := range names {
		role := pgtest.UniqueName(t, name)
		pw, err := secret.Generate(nil, secret.DefaultPolicy())
		require.NoError(t, err)
		pgtest.NewRole(t, cl, role, pw)
		w.Roles[name], w.Passwords[name] = role, pw
		fmt.Fprintf(&y, `  %s:
    provider:
      type: postgres
      admin_url: ${ADMIN_URL}
    connection:
      url: postgresql://%s:%d/%s?sslmode=%s
    strategy: single
    role: %q
    schedule:
      every: %s
    targets:
      - name: env
        type: dotenv
        path: %q
        values:
          DATABASE_URL: "{{.URL}}"
`, name, cl.Host, cl.Port, db, or(o.SSLMode, "disable"), role, or(o.Every, "30d"), w.EnvFile(name))
	}
	w.CfgPath = filepath.Join(w.Dir, "rotor.yaml")
	require.NoError(t, os.WriteFile(w.CfgPath, []byte(y.String()), 0o600))
	w.Config = w.Load()
	t.Cleanup(func() {
		if !w.owned {
			w.Config.Close()
		}
	})

	var err error
	switch o.Store {
	case "postgres":
		_, stateURL := pgtest.NewDatabase(t)
		w.Store, err = postgres.Open(t.Context(), postgres.Options{URL: stateURL})
	case "", "sqlite":
		w.Store, err = sqlite.Open(t.Context(), filepath.Join(w.Dir, "state.db"))
	default:
		t.Fatalf("servetest: unknown store %q", o.Store)
	}
	require.NoError(t, err)
	t.Cleanup(func() { w.Store.Close() })
	key := make([]byte, 32)
	_, err = rand.Read(key)
	require.NoError(t, err)
	sealer, err := secret.NewSealer(key)
	require.NoError(t, err)
	w.Engine = &engine.Engine{Store: w.Store, Sealer: sealer}
	return w
}

// Load loads the World's config file as it is now.
func (w *World) Load() *resolve.Config {
	w.t.Helper()
	cfg, err := LoadConfig(w.CfgPath, w.Env)
	require.NoError(w.t, err)
	return cfg
}

// LoadConfig loads a config with the built-in providers and targets and
// env as the whole environment.
func LoadConfig(path string, env map[string]string) (*resolve.Config, error) {
	return resolve.Load(path, func(k string) (string, bool) { v, ok := env[k]; return v, ok }, resolve.Registry{
		Provider: pbuiltin.Lookup, Target: tbuiltin.Lookup, Now: time.Now, Getenv: func(string) string { return "" }})
}

// EnvFile is the .env file the credential's target writes.
func (w *World) EnvFile(name string) string { return filepath.Join(w.Dir, name+".env") }

// Service builds the real service over the World (opts' Config and
// Engine are the World's) and, unless start is false, starts it; it is
// stopped when the test ends.
func (w *World) Service(opts serve.Options, start bool) *serve.Service {
	w.t.Helper()
	opts.Config, opts.Engine = w.Config, w.Engine
	if opts.Tick == 0 {
		opts.Tick = time.Hour
	}
	svc, err := serve.New(w.t.Context(), opts)
	require.NoError(w.t, err)
	w.owned = true
	w.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		require.NoError(w.t, svc.Stop(ctx))
	})
	if start {
		require.NoError(w.t, svc.Start(context.Background()))
	}
	return svc
}

func or(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

// EnvURL is the DATABASE_URL the .env file at path holds now, and the
// secrets in it (the whole string and its password) for a leak scan.
func EnvURL(t testing.TB, path string) (string, []secret.String) {
	t.Helper()
	m, err := godotenv.Read(path)
	require.NoError(t, err)
	u := m["DATABASE_URL"]
	require.NotEmpty(t, u, "%s holds no DATABASE_URL", path)
	secrets := []secret.String{secret.New(u)}
	if p, err := url.Parse(u); err == nil {
		if pw, ok := p.User.Password(); ok {
			secrets = append(secrets, secret.New(pw))
		}
	}
	return u, secrets
}
