package metrics_test

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/rotorhq/rotor/internal/engine"
	"github.com/rotorhq/rotor/internal/pgtest"
	pbuiltin "github.com/rotorhq/rotor/internal/provider/builtin"
	"github.com/rotorhq/rotor/internal/resolve"
	"github.com/rotorhq/rotor/internal/secret"
	"github.com/rotorhq/rotor/internal/serve"
	"github.com/rotorhq/rotor/internal/store"
	"github.com/rotorhq/rotor/internal/store/sqlite"
	tbuiltin "github.com/rotorhq/rotor/internal/target/builtin"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// testBackend is serve.Backend over a real engine and a real SQLite store;
// the job queue is a fixed map (River is the service core's, not ours).
type testBackend struct {
	cfg      *resolve.Config
	eng      *engine.Engine
	st       store.Store
	depth    map[serve.Kind]int
	depthErr error
	// hang makes QueueDepth wait until its context ends (a store that
	// does not answer).
	hang bool
}

func (b *testBackend) Config() *resolve.Config { return b.cfg }
func (b *testBackend) Engine() *engine.Engine  { return b.eng }
func (b *testBackend) Store() store.Store      { return b.st }
func (b *testBackend) Enqueue(context.Context, serve.Request) (*serve.Job, error) {
	return nil, errors.New("not in the metrics tests")
}
func (b *testBackend) Job(context.Context, int64) (*serve.Job, error) { return nil, serve.ErrNoJob }
func (b *testBackend) Jobs(context.Context, string, int) ([]*serve.Job, error) {
	return nil, nil
}
func (b *testBackend) QueueDepth(ctx context.Context) (map[serve.Kind]int, error) {
	if b.hang {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	return b.depth, b.depthErr
}
func (b *testBackend) Ready(context.Context) error { return nil }
func (b *testBackend) Subscribe(ctx context.Context) <-chan engine.Event {
	ch := make(chan engine.Event)
	go func() { <-ctx.Done(); close(ch) }()
	return ch
}

// world is one test's setup: a database and role of its own on the shared
// cluster, a config with one single-strategy credential "app" delivering
// to a dotenv file, a SQLite store and an engine.
type world struct {
	backend  *testBackend
	role     string
	password secret.String // the role's first password
	envFile  string
}

func setup(t *testing.T) *world {
	t.Helper()
	cl := pgtest.Shared(t)
	db, _ := pgtest.NewDatabase(t)
	role := pgtest.UniqueName(t, "app")
	pw, err := secret.Generate(nil, secret.DefaultPolicy())
	require.NoError(t, err)
	pgtest.NewRole(t, cl, role, pw)
	dir := t.TempDir()
	envFile := filepath.Join(dir, ".env")
	yaml := fmt.Sprintf(`version: 1
credentials:
  app:
    provider:
      type: postgres
      admin_url: ${ADMIN_URL}
    connection:
      url: postgresql://%s:%d/%s?sslmode=require
    strategy: single
    role: %q
    schedule:
      every: 720h
    targets:
      - name: env
        type: dotenv
        path: %q
        values:
          DATABASE_URL: "{{.URL}}"
`, cl.Host, cl.Port, db, role, envFile)
	cfgPath := filepath.Join(dir, "rotor.yaml")
	require.NoError(t, os.WriteFile(cfgPath, []byte(yaml), 0o600))
	env := map[string]string{"ADMIN_URL": cl.AdminURL(db).Reveal()}
	cfg, err := resolve.Load(cfgPath, func(k string) (string, bool) { v, ok := env[k]; return v, ok }, resolve.Registry{
		Provider: pbuiltin.Lookup, Target: tbuiltin.Lookup, Now: time.Now, Getenv: func(string) string { return "" },
	})
	require.NoError(t, err)
	t.Cleanup(func() { cfg.Close() })
	st, err := sqlite.Open(t.Context(), filepath.Join(dir, "state.db"))
	require.NoError(t, err)
	t.Cleanup(func() { st.Close() })
	key := make([]byte, 32)
	rand.Read(key)
	sealer, err := secret.NewSealer(key)
	require.NoError(t, err)
	eng := &engine.Engine{Store: st, Sealer: sealer}
	return &world{backend: &testBackend{cfg: cfg, eng: eng, st: st, depth: map[serve.Kind]int{serve.KindRotate: 2}},
		role: role, password: pw, envFile: envFile}
}

func (w *world) rotate(t *testing.T) *engine.Result {
	t.Helper()
	cr, err := w.backend.cfg.Credential("app")
	require.NoError(t, err)
	res, err := w.backend.eng.Rotate(t.Context(), cr, engine.Options{})
	require.NoError(t, err)
	return res
}
