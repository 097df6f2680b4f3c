package neon_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/rotorhq/rotor/internal/pgcluster"
	"github.com/rotorhq/rotor/internal/pgtest"
	"github.com/rotorhq/rotor/internal/provider"
	"github.com/rotorhq/rotor/internal/provider/neon"
	"github.com/rotorhq/rotor/internal/provider/neon/neonapi"
	"github.com/rotorhq/rotor/internal/provider/neon/neonfake"
	"github.com/rotorhq/rotor/internal/provider/providertest"
	"github.com/rotorhq/rotor/internal/secret"
)

func TestMain(m *testing.M) {
	code := pgtest.Main(m)
	if err := stopExtraClusters(); err != nil {
		fmt.Fprintf(os.Stderr, "neon tests: %v\n", err)
		if code == 0 {
			code = 1
		}
	}
	os.Exit(code)
}

// Child branches need clusters of their own, since a role's password is
// per branch; two are started on first use and shared by the tests.
var (
	extraOnce     sync.Once
	extraClusters []*pgcluster.Cluster
	extraErr      error
)

func twoMoreClusters(t *testing.T) []*pgcluster.Cluster {
	t.Helper()
	pgtest.Shared(t) // skips or fails the same way when PostgreSQL is missing
	extraOnce.Do(func() {
		for range 2 {
			c, err := pgcluster.Start(context.Background(), pgcluster.Options{})
			if err != nil {
				extraErr = err
				return
			}
			extraClusters = append(extraClusters, c)
		}
	})
	if extraErr != nil {
		pgtest.SkipOrFail(t, extraErr)
	}
	return extraClusters
}

func stopExtraClusters() error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var errs []string
	for _, c := range extraClusters {
		if err := c.Stop(ctx); err != nil {
			errs = append(errs, err.Error())
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("stop clusters: %s", strings.Join(errs, "; "))
	}
	return nil
}

// world is a fake Neon project with a main branch on the shared cluster
// and one database whose owner role is the provider's admin.
type world struct {
	t       *testing.T
	fake    *neonfake.Server
	main    *neonfake.Branch
	db      string
	owner   string
	ownerPW secret.String
	// logs collects what the providers log, for the leak scans.
	logs *syncBuffer
}

// syncBuffer is a bytes.Buffer several goroutines may write.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) Bytes() []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]byte(nil), b.buf.Bytes()...)
}

func newWorld(t *testing.T, cfg neonfake.Config) *world {
	t.Helper()
	fake := neonfake.Start(t, cfg)
	main, err := fake.AddBranch(t.Context(), neonfake.BranchSpec{Name: "main", Cluster: pgtest.Shared(t)})
	require.NoError(t, err)
	w := &world{t: t, fake: fake, main: main, db: pgtest.UniqueName(t, "neondb"), owner: pgtest.UniqueName(t, "neondb_owner"), logs: &syncBuffer{}}
	w.ownerPW, err = fake.AddDatabase(t.Context(), main.ID, w.db, w.owner)
	require.NoError(t, err)
	return w
}

// quick makes the API client retry generously and never sleep: the
// fake's operations advance with requests, not with time.
func quick(c *neonapi.Client) {
	c.Sleep = func(ctx context.Context, _ time.Duration) error { return ctx.Err() }
	c.MaxAttempts = 500
}

// providerYAML is the provider block for the world, plus extra lines.
func (w *world) providerYAML(method string, extra ...string) string {
	lines := []string{
		"api_key: " + w.fake.APIKey,
		"api_url: " + w.fake.URL,
		"project_id: " + w.fake.ProjectID,
		"method: " + method,
		// The fake's endpoints present a certificate of their own CA;
		// Neon's are signed by one the system trusts.
		"sslrootcert: " + w.fake.CACertFile,
	}
	return strings.Join(append(lines, extra...), "\n")
}

func strictDecode(doc string) func(any) error {
	return func(v any) error {
		dec := yaml.NewDecoder(strings.NewReader(doc))
		dec.KnownFields(true)
		return dec.Decode(v)
	}
}

func (w *world) newProvider(method string, extra ...string) provider.Provider {
	w.t.Helper()
	p, err := neon.FactoryForTest(w.fake.Route, nil, quick, w.logs)(provider.Params{Decode: strictDecode(w.providerYAML(method, extra...))})
	require.NoError(w.t, err)
	w.t.Cleanup(func() { _ = p.Close() })
	return p
}

// generated remembers, for the api method, which password Neon generated
// when the suite asked for another: consumers log in with what the
// provider returned, as the engine stores it.
type generated struct {
	provider.Provider
	mu  sync.Mutex
	gen map[string]secret.String
}

func (g *generated) SetPassword(ctx context.Context, req provider.SetPasswordRequest) (provider.SetPasswordResponse, error) {
	resp, err := g.Provider.SetPassword(ctx, req)
	if err == nil && !resp.Password.IsZero() {
		g.mu.Lock()
		g.gen[req.Role+"\x00"+req.Password.Reveal()] = resp.Password
		g.mu.Unlock()
	}
	return resp, err
}

func (g *generated) translate(role string, pw secret.String) secret.String {
	g.mu.Lock()
	defer g.mu.Unlock()
	if got, ok := g.gen[role+"\x00"+pw.Reveal()]; ok {
		return got
	}
	return pw
}

func conformanceEnv(t *testing.T, method string) providertest.Env {
	t.Helper()
	// The suite watches its own sessions across password changes, which
	// Neon's resets would cut; TestAPIResetDropsConnections covers that.
	w := newWorld(t, neonfake.Config{KeepConnectionsOnReset: true})
	p := &generated{Provider: w.newProvider(method, "database: "+w.db), gen: map[string]secret.String{}}
	c := w.main.Cluster
	return providertest.Env{
		Provider: p,
		Database: w.db,
		AdminURL: c.AdminURL(w.db),
		LoginURL: func(role string, pw secret.String) secret.String {
			return c.URL(role, p.translate(role, pw), w.db, "channel_binding=require")
		},
		CreateRole: func(t *testing.T, name string, pw secret.String) { pgtest.NewRole(t, c, name, pw) },
	}
}

func TestConformanceSQL(t *testing.T) {
	t.Parallel()
	providertest.Exercise(t, providertest.Harness{New: func(t *testing.T) providertest.Env { return conformanceEnv(t, neon.MethodSQL) }})
}

func TestConformanceAPI(t *testing.T) {
	t.Parallel()
	providertest.Exercise(t, providertest.Harness{New: func(t *testing.T) providertest.Env { return conformanceEnv(t, neon.MethodAPI) }})
}
