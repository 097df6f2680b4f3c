package metrics_test

import (
	"context"
	"errors"
	"os"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/rotorhq/rotor/internal/engine"
	"github.com/rotorhq/rotor/internal/pgtest"
	"github.com/rotorhq/rotor/internal/resolve"
	"github.com/rotorhq/rotor/internal/secret"
	"github.com/rotorhq/rotor/internal/serve"
	"github.com/rotorhq/rotor/internal/serve/servetest"
	"github.com/rotorhq/rotor/internal/store"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// testBackend is serve.Backend over a real engine and a real SQLite store
// whose queue is a fixed map, or a queue that fails or hangs: the
// failures a scrape must survive, which the real service cannot be made
// to show on demand.
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
	sw := servetest.New(t, servetest.Options{Every: "720h", SSLMode: "require"})
	return &world{backend: &testBackend{cfg: sw.Config, eng: sw.Engine, st: sw.Store, depth: map[serve.Kind]int{serve.KindRotate: 2}},
		role: sw.Roles["app"], password: sw.Passwords["app"], envFile: sw.EnvFile("app")}
}

func (w *world) rotate(t *testing.T) *engine.Result {
	t.Helper()
	cr, err := w.backend.cfg.Credential("app")
	require.NoError(t, err)
	res, err := w.backend.eng.Rotate(t.Context(), cr, engine.Options{})
	require.NoError(t, err)
	return res
}
