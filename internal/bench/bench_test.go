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
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/rotorhq/rotor/internal/pgtest"
	"github.com/rotorhq/rotor/internal/secret"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// built is a program the benchmarks build once per run, or take from an
// environment variable naming one built beforehand.
type built struct {
	// buildEnv is added to the environment of `go build`.
	buildEnv []string
	once     sync.Once
	path     string
	err      error
}

// get builds pkg with flags into a temporary directory as name, the first
// time it is called, or uses the path in env when that is set.
func (bl *built) get(b testing.TB, env, pkg, name string, flags ...string) string {
	b.Helper()
	bl.once.Do(func() {
		if p := os.Getenv(env); p != "" {
			bl.path, bl.err = filepath.Abs(p)
			return
		}
		dir, err := os.MkdirTemp("", "rotor-bench-"+name+"-")
		if err != nil {
			bl.err = err
			return
		}
		bl.path = filepath.Join(dir, name)
		args := append(append([]string{"build"}, flags...), "-o", bl.path, pkg)
		cmd := exec.Command("go", args...)
		cmd.Env = append(os.Environ(), bl.buildEnv...)
		if out, err := cmd.CombinedOutput(); err != nil {
			bl.err = fmt.Errorf("go build %s: %v\n%s", pkg, err, out)
		}
	})
	require.NoError(b, bl.err)
	return bl.path
}

// rotorBuild is `make build`'s: the binary the figures describe is the
// one users run, static (CGO_ENABLED=0) and without symbols.
var (
	rotorBuild    = built{buildEnv: []string{"CGO_ENABLED=0"}}
	launcherBuild built
	releaseFlags  = []string{"-trimpath", "-ldflags=-s -w"}
)

// rotorBinary builds cmd/rotor once per run, as `make build` does, or
// uses ROTOR_BENCH_BINARY when set (a binary built beforehand, to compare
// two builds without rebuilding).
func rotorBinary(b testing.TB) string {
	return rotorBuild.get(b, "ROTOR_BENCH_BINARY", "../../cmd/rotor", "rotor", releaseFlags...)
}

// launcher builds ./peakrss once per run, or uses ROTOR_BENCH_LAUNCHER
// when set (as ROTOR_BENCH_BINARY, for a test binary run elsewhere). The
// benchmarks start rotor through it so that the peak RSS they report is
// rotor's alone (the command's comment says why a child of this process
// cannot report its own).
func launcher(b testing.TB) string {
	return launcherBuild.get(b, "ROTOR_BENCH_LAUNCHER", "./peakrss", "peakrss")
}

// measured runs the rotor binary with args through the launcher and
// returns what the run cost as the launcher saw it, and the command's
// error (an *exec.ExitError when rotor exited non-zero).
func measured(b testing.TB, cmd *exec.Cmd) (usage, error) {
	b.Helper()
	f, err := os.CreateTemp("", "rotor-bench-usage-")
	require.NoError(b, err)
	require.NoError(b, f.Close())
	defer os.Remove(f.Name())
	cmd.Args = append([]string{launcher(b), f.Name()}, cmd.Args...)
	cmd.Path = cmd.Args[0]
	runErr := cmd.Run()
	raw, err := os.ReadFile(f.Name())
	require.NoError(b, err)
	var rss, floor, user, sys, wall int64
	_, err = fmt.Sscanf(string(raw), "%d %d %d %d %d", &rss, &floor, &user, &sys, &wall)
	require.NoError(b, err, "peakrss wrote %q", raw)
	return usage{wall: time.Duration(wall) * time.Microsecond, cpu: time.Duration(user+sys) * time.Microsecond,
		rssMiB: float64(rss) / 1024, floorMiB: float64(floor) / 1024}, runErr
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

// envCount reads a count knob of the benchmarks, def when unset.
func envCount(b *testing.B, name string, def int) int {
	b.Helper()
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	require.NoError(b, err, "%s=%q: not a number", name, s)
	return n
}

// usage is what one run of the binary cost.
type usage struct {
	wall time.Duration
	// cpu is rotor's own user + system time (the database's is not in it).
	cpu time.Duration
	// rssMiB is the peak resident set size.
	rssMiB float64
	// floorMiB is the launcher's own peak RSS, which rssMiB cannot be
	// below.
	floorMiB float64
}

// run executes the binary and returns what it cost and its stdout.
func run(b *testing.B, env []string, args ...string) (usage, []byte) {
	b.Helper()
	cmd := exec.Command(rotorBinary(b), args...)
	cmd.Env = env
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	u, err := measured(b, cmd)
	require.NoError(b, err, "rotor %s: %s", strings.Join(args, " "), errOut.String())
	return u, out.Bytes()
}

// BenchmarkRotateBatch rotates 1,000 credentials (one role each) with
// `rotor rotate --all`, sequentially and 8 at a time.
func BenchmarkRotateBatch(b *testing.B) {
	n := envCount(b, "ROTOR_BENCH_CREDENTIALS", 1000)
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
// It reports the median and 90th percentile wall time of 100 starts (run
// directly, so the launcher's own start is not in them), the highest and
// the median peak RSS of 20 starts through the launcher, the binary's size and the package initialisation the Go
// runtime reports (GODEBUG=inittrace=1, summed over packages; median of
// 20 starts).
func BenchmarkStartup(b *testing.B) {
	bin := rotorBinary(b)
	const runs = 100
	var walls, inits []time.Duration
	var rss []float64
	for i := 0; i < b.N; i++ {
		for j := 0; j < runs; j++ {
			cmd := exec.Command(bin, "--version")
			start := time.Now()
			require.NoError(b, cmd.Run())
			walls = append(walls, time.Since(start))
		}
	}
	for range 20 {
		u, err := measured(b, exec.Command(bin, "--version"))
		require.NoError(b, err)
		rss = append(rss, u.rssMiB)
	}
	slices.Sort(rss)
	for range 20 {
		cmd := exec.Command(bin, "--version")
		cmd.Env = append(os.Environ(), "GODEBUG=inittrace=1")
		var trace bytes.Buffer
		cmd.Stderr = &trace
		require.NoError(b, cmd.Run())
		inits = append(inits, initTotal(b, trace.String()))
	}
	st, err := os.Stat(bin)
	require.NoError(b, err)
	b.ReportMetric(ms(quantile(walls, 0.5)), "ms/start-median")
	b.ReportMetric(ms(quantile(walls, 0.9)), "ms/start-p90")
	b.ReportMetric(rss[len(rss)-1], "peak-RSS-MiB")
	b.ReportMetric(rss[len(rss)/2], "peak-RSS-MiB-median")
	b.ReportMetric(ms(quantile(inits, 0.5)), "init-ms")
	b.ReportMetric(float64(st.Size())/1e6, "binary-MB")
}

// initTotal sums the clock times of an inittrace: lines like
// "init github.com/x/y @12 ms, 0.52 ms clock, 2880 bytes, 20 allocs".
func initTotal(b testing.TB, trace string) time.Duration {
	var total time.Duration
	for line := range strings.Lines(trace) {
		if !strings.HasPrefix(line, "init ") {
			continue
		}
		_, rest, ok := strings.Cut(line, ", ")
		clock, _, ok2 := strings.Cut(rest, " ms clock")
		if !ok || !ok2 {
			continue
		}
		v, err := strconv.ParseFloat(clock, 64)
		require.NoError(b, err, "inittrace line %q", line)
		total += time.Duration(v * float64(time.Millisecond))
	}
	return total
}

func quantile(ds []time.Duration, q float64) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[int(float64(len(s)-1)*q)]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
