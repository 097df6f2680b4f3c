// Package bench holds rotor's end-to-end benchmarks: the real binary against
// a real local PostgreSQL. They report figures (rotations per second, peak
// memory, start-up time); they assert nothing about speed. Run them with
// `make bench`; docs/benchmarks.md records the latest figures.
package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/rotorhq/rotor/internal/pgtest"
	"github.com/rotorhq/rotor/internal/secret"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

// rotorBinary builds cmd/rotor once per run, as users run it.
func rotorBinary(b testing.TB) string {
	b.Helper()
	binOnce.Do(func() {
		dir, err := os.MkdirTemp("", "rotor-bench-bin-")
		if err != nil {
			binErr = err
			return
		}
		binPath = filepath.Join(dir, "rotor")
		out, err := exec.Command("go", "build", "-o", binPath, "../../cmd/rotor").CombinedOutput()
		if err != nil {
			binErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	require.NoError(b, binErr)
	return binPath
}

// batchSet is n single-strategy roles in a fresh database and a config
// with one credential per role, each publishing to its own .env file.
type batchSet struct {
	dir      string
	env      []string
	roles    []string
	adminURL secret.String
	host     string
	port     int
	db       string
}

// roleURL is how a consumer of role connects (TLS + SCRAM).
func (s *batchSet) roleURL(role string, pw secret.String) secret.String {
	return secret.New(fmt.Sprintf("postgresql://%s:%s@%s:%d/%s?sslmode=require", role, pw.Reveal(), s.host, s.port, s.db))
}

// batch creates n single-strategy roles in a fresh database and a config
// with one credential per role, each publishing to its own .env file.
func batch(b *testing.B, n int) (dir string, env []string) {
	s := newBatch(b, n)
	return s.dir, s.env
}

func newBatch(b *testing.B, n int) *batchSet {
	b.Helper()
	cl := pgtest.Shared(b)
	db, adminURL := pgtest.NewDatabase(b)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, adminURL.Reveal())
	require.NoError(b, err)
	defer conn.Close(ctx)
	prefix := pgtest.UniqueName(b, "b")
	var cfg strings.Builder
	fmt.Fprintf(&cfg, "version: 1\ndefaults:\n  provider:\n    type: postgres\n    admin_url: ${ADMIN_URL}\n  connection: {url: \"postgresql://%s:%d/%s?sslmode=require\"}\n  strategy: single\ncredentials:\n", cl.Host, cl.Port, db)
	roles := make([]string, n)
	for i := range roles {
		roles[i] = fmt.Sprintf("%s_%04d", prefix, i)
		pw, err := secret.Generate(nil, secret.DefaultPolicy())
		require.NoError(b, err)
		v, err := secret.SCRAMVerifier(nil, pw)
		require.NoError(b, err)
		_, err = conn.Exec(ctx, "CREATE ROLE "+pgx.Identifier{roles[i]}.Sanitize()+" LOGIN PASSWORD '"+v.Reveal()+"'")
		require.NoError(b, err)
		fmt.Fprintf(&cfg, "  c%04d:\n    role: %s\n    targets:\n      - {name: env, type: dotenv, path: env/%04d.env, values: {DATABASE_URL: \"{{.URL}}\"}}\n", i, roles[i], i)
	}
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		for _, r := range roles {
			pgtest.DropRole(ctx, cl, r)
		}
	})
	dir := b.TempDir()
	require.NoError(b, os.MkdirAll(filepath.Join(dir, "env"), 0o700))
	require.NoError(b, os.WriteFile(filepath.Join(dir, "rotor.yaml"), []byte(cfg.String()), 0o600))
	return &batchSet{dir: dir, env: append(os.Environ(), "ADMIN_URL="+adminURL.Reveal(), "ROTOR_CONFIG="+filepath.Join(dir, "rotor.yaml")),
		roles: roles, adminURL: adminURL, host: cl.Host, port: cl.Port, db: db}
}

// usage is what one run of the binary cost.
type usage struct {
	wall time.Duration
	// cpu is rotor's own user + system time (the database's is not in it).
	cpu time.Duration
	// rssMiB is the peak resident set size.
	rssMiB float64
}

// run executes the binary and returns what it cost and its stdout.
func run(b *testing.B, env []string, args ...string) (usage, []byte) {
	b.Helper()
	cmd := exec.Command(rotorBinary(b), args...)
	cmd.Env = env
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	start := time.Now()
	err := cmd.Run()
	wall := time.Since(start)
	require.NoError(b, err, "rotor %s: %s", strings.Join(args, " "), errOut.String())
	ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	return usage{wall: wall, cpu: cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime(), rssMiB: float64(ru.Maxrss) / 1024}, out.Bytes()
}

// BenchmarkRotateBatch rotates 1,000 credentials (one role each) with
// `rotor rotate --all`, sequentially and 8 at a time.
func BenchmarkRotateBatch(b *testing.B) {
	n := 1000
	if s := os.Getenv("ROTOR_BENCH_CREDENTIALS"); s != "" {
		n, _ = strconv.Atoi(s)
	}
	for _, parallel := range []int{1, 8} {
		b.Run(fmt.Sprintf("credentials=%d/parallel=%d", n, parallel), func(b *testing.B) {
			_, env := batch(b, n)
			for i := 0; i < b.N; i++ {
				u, out := run(b, env, "rotate", "--all", "--json", "--parallel", strconv.Itoa(parallel))
				var results []struct{ Status string }
				require.NoError(b, json.Unmarshal(out, &results))
				require.Len(b, results, n)
				for _, r := range results {
					require.Equal(b, "succeeded", r.Status)
				}
				b.ReportMetric(float64(n)/u.wall.Seconds(), "rotations/s")
				b.ReportMetric(u.rssMiB, "peak-RSS-MiB")
				b.ReportMetric(u.wall.Seconds(), "wall-s")
				b.ReportMetric(float64(u.cpu.Microseconds())/1000/float64(n), "rotor-CPU-ms/rotation")
			}
		})
	}
}

// BenchmarkPlan1000 plans every credential of a 1,000-credential config
// without touching the database.
func BenchmarkPlan1000(b *testing.B) {
	_, env := batch(b, 1000)
	for i := 0; i < b.N; i++ {
		u, _ := run(b, env, "plan", "--offline", "--json")
		b.ReportMetric(u.wall.Seconds()*1000, "ms")
		b.ReportMetric(float64(u.cpu.Microseconds())/1000, "CPU-ms")
		b.ReportMetric(u.rssMiB, "peak-RSS-MiB")
	}
}

// BenchmarkStartup is `rotor --version`: what every cron invocation pays.
func BenchmarkStartup(b *testing.B) {
	bin := rotorBinary(b)
	var total time.Duration
	var peak float64
	const runs = 50
	for i := 0; i < b.N; i++ {
		for j := 0; j < runs; j++ {
			cmd := exec.Command(bin, "--version")
			start := time.Now()
			require.NoError(b, cmd.Run())
			total += time.Since(start)
			peak = max(peak, float64(cmd.ProcessState.SysUsage().(*syscall.Rusage).Maxrss)/1024)
		}
	}
	b.ReportMetric(float64(total.Microseconds())/float64(b.N*runs)/1000, "ms/start")
	b.ReportMetric(peak, "peak-RSS-MiB")
}
