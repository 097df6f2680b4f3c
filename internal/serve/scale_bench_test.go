package serve_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/rotorhq/rotor/internal/engine"
	"github.com/rotorhq/rotor/internal/pgtest"
	"github.com/rotorhq/rotor/internal/resolve"
	"github.com/rotorhq/rotor/internal/secret"
	"github.com/rotorhq/rotor/internal/serve"
	"github.com/rotorhq/rotor/internal/serve/api"
	"github.com/rotorhq/rotor/internal/serve/auth"
	"github.com/rotorhq/rotor/internal/serve/servetest"
	"github.com/rotorhq/rotor/internal/store"
	"github.com/rotorhq/rotor/internal/store/postgres"
	"github.com/rotorhq/rotor/internal/store/sqlite"
)

// BenchmarkServe10k is `rotor serve` with 10,000 credentials configured,
// each rotated once a day ago (seeded through store.Import, so nothing is
// due): the memory the service holds, the CPU and wall time of one
// scheduling tick over every credential, and the latency of the API's
// credential list (p50/p99 of 20 calls). ROTOR_BENCH_CREDS changes the
// count. Run: go test -run '^$' -bench Serve10k -benchtime 1x ./internal/serve/
func BenchmarkServe10k(b *testing.B) {
	n := 10000
	if v := os.Getenv("ROTOR_BENCH_CREDS"); v != "" {
		_, err := fmt.Sscan(v, &n)
		require.NoError(b, err)
	}
	for _, kind := range []string{"sqlite", "postgres"} {
		b.Run(kind, func(b *testing.B) { benchServe(b, kind, n) })
	}
}

func benchServe(b *testing.B, kind string, n int) {
	cl := pgtest.Shared(b)
	db, adminURL := pgtest.NewDatabase(b)
	dir := b.TempDir()
	var y strings.Builder
	fmt.Fprintf(&y, "version: 1\ndefaults:\n  provider: {type: postgres, admin_url: \"${ADMIN_URL}\"}\n  connection: {url: \"postgresql://%s:%d/%s?sslmode=disable\"}\ncredentials:\n", cl.Host, cl.Port, db)
	for i := range n {
		fmt.Fprintf(&y, "  c%05d:\n    strategy: single\n    role: r%05d\n    schedule: {every: 30d}\n    targets:\n      - {name: env, type: dotenv, path: %q, values: {DATABASE_URL: \"{{.URL}}\"}}\n",
			i, i, filepath.Join(dir, fmt.Sprintf("c%05d.env", i)))
	}
	cfgPath := filepath.Join(dir, "rotor.yaml")
	require.NoError(b, os.WriteFile(cfgPath, []byte(y.String()), 0o600))

	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	loadStart := time.Now()
	cfg, err := servetest.LoadConfig(cfgPath, map[string]string{"ADMIN_URL": adminURL.Reveal()})
	require.NoError(b, err)
	loadTook := time.Since(loadStart)

	var st store.Store
	if kind == "postgres" {
		_, stateURL := pgtest.NewDatabase(b)
		st, err = postgres.Open(b.Context(), postgres.Options{URL: stateURL})
	} else {
		st, err = sqlite.Open(b.Context(), filepath.Join(dir, "state.db"))
	}
	require.NoError(b, err)
	b.Cleanup(func() { st.Close() })
	seed(b, st, cfg)

	key := make([]byte, 32)
	sealer, err := secret.NewSealer(key)
	require.NoError(b, err)
	svc, err := serve.New(b.Context(), serve.Options{Config: cfg, Engine: &engine.Engine{Store: st, Sealer: sealer}, Tick: time.Hour})
	require.NoError(b, err)
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		require.NoError(b, svc.Stop(ctx))
	})
	tok := strings.Repeat("t", 32)
	tokens, err := auth.Parse("bench:read:" + tok)
	require.NoError(b, err)
	srv := httptest.NewServer(api.New(api.Options{Backend: svc, Tokens: tokens}))
	b.Cleanup(srv.Close)

	var after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&after)

	// One tick over every credential; nothing is due, so this is the cost
	// the leader pays every --tick for looking.
	cpu0 := cpuTime()
	t0 := time.Now()
	require.NoError(b, svc.Tick(b.Context()))
	tickWall := time.Since(t0)
	tickCPU := cpuTime() - cpu0
	depth, err := svc.QueueDepth(b.Context())
	require.NoError(b, err)
	require.Zero(b, depth[serve.KindRotate], "nothing is due: the tick must queue nothing")

	var lat []time.Duration
	for range 20 {
		req, err := http.NewRequest("GET", srv.URL+"/api/v1/credentials", nil)
		require.NoError(b, err)
		req.Header.Set("Authorization", "Bearer "+tok)
		t0 := time.Now()
		resp, err := http.DefaultClient.Do(req)
		require.NoError(b, err)
		require.Equal(b, http.StatusOK, resp.StatusCode)
		require.NoError(b, drain(resp))
		lat = append(lat, time.Since(t0))
	}
	slices.Sort(lat)
	b.ReportMetric(float64(n), "credentials")
	b.ReportMetric(float64(loadTook.Milliseconds()), "config-load-ms")
	b.ReportMetric(float64(after.HeapInuse-min(before.HeapInuse, after.HeapInuse))/(1<<20), "heap-MiB")
	b.ReportMetric(float64(tickWall.Milliseconds()), "tick-wall-ms")
	b.ReportMetric(float64(tickCPU.Milliseconds()), "tick-cpu-ms")
	b.ReportMetric(float64(lat[len(lat)/2].Milliseconds()), "list-p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Milliseconds()), "list-p99-ms")
	b.ReportMetric(float64(peakRSS())/(1<<20), "peak-rss-MiB")
}

// seed writes one succeeded rotation and its current version per
// credential, a day old, in one import.
func seed(b *testing.B, st store.Store, cfg *resolve.Config) {
	in, err := st.Info(b.Context())
	require.NoError(b, err)
	day := time.Now().Add(-24 * time.Hour).UTC()
	snap := &store.Snapshot{ID: in.ID}
	for i, cr := range cfg.Credentials {
		id := int64(i + 1)
		snap.Rotations = append(snap.Rotations, &store.Rotation{ID: id, Credential: cr.Name, Status: store.StatusSucceeded, Strategy: "single",
			Trigger: "schedule", ToVersionID: id, Outcome: "seeded", StartedAt: day, UpdatedAt: day, FinishedAt: day, AppliedAt: day})
		snap.Versions = append(snap.Versions, &store.Version{ID: id, Credential: cr.Name, Seq: 1, Role: cr.Roles[0], Stage: store.StageCurrent,
			RotationID: id, Fingerprint: fmt.Sprintf("fp%05d", i), CreatedAt: day, ActivatedAt: day})
	}
	require.NoError(b, st.Import(b.Context(), store.ImportParams{Snapshot: snap}))
}

// drain reads the whole answer, as a client would before using it.
func drain(resp *http.Response) error {
	defer resp.Body.Close()
	_, err := io.Copy(io.Discard, resp.Body)
	return err
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// peakRSS is the process's peak resident set (VmHWM), the benchmark
// harness included.
func peakRSS() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			var kb int64
			if _, err := fmt.Sscan(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), &kb); err != nil {
				return 0
			}
			return kb << 10
		}
	}
	return 0
}
