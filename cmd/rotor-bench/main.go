// Command rotor-bench runs rotor's load scenario against a throwaway local
// PostgreSQL and prints one table: what consumers saw while the password
// was rotated (a) by hand, as the seed runbook describes, (b) by rotor with
// the single strategy, (c) by rotor with the dual strategy.
//
//	go run ./cmd/rotor-bench -rotations 20
//
// Consumers re-read their .env before every new connection and keep a pool
// of long-lived sessions, so the table counts exactly what a rotation
// breaks: failed connection attempts, the longest failure window, dropped
// sessions.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/rotorhq/rotor/internal/atomicfile"
	"github.com/rotorhq/rotor/internal/cli"
	"github.com/rotorhq/rotor/internal/loadsim"
	"github.com/rotorhq/rotor/internal/pgcluster"
	"github.com/rotorhq/rotor/internal/secret"
)

func main() {
	rotations := flag.Int("rotations", 20, "rotations per way (the dual claim needs at least 20)")
	manualRotations := flag.Int("manual-rotations", 3, "rotations for the by-hand way (each takes targets × delay)")
	workers := flag.Int("workers", 8, "consumers opening new connections continuously")
	pool := flag.Int("pool", 8, "long-lived sessions, recycled every -recycle")
	recycle := flag.Duration("recycle", time.Second, "lifetime of a pooled session before it reconnects with the current .env")
	targets := flag.Int("manual-targets", 3, "places a person updates by hand, one after another")
	delay := flag.Duration("manual-delay", 2*time.Second, "time a person needs per place")
	verbose := flag.Bool("v", false, "show rotor's own output")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, *rotations, *manualRotations, *workers, *pool, *recycle, *targets, *delay, *verbose); err != nil {
		fmt.Fprintln(os.Stderr, "rotor-bench:", err)
		os.Exit(1)
	}
}

type row struct {
	way        string
	rotations  int
	stats      loadsim.Stats
	rotateMean time.Duration
	rotateMax  time.Duration
}

func run(ctx context.Context, rotations, manualRotations, workers, pool int, recycle time.Duration, targets int, delay time.Duration, verbose bool) error {
	dir, err := os.MkdirTemp("", "rotor-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if err := os.Chmod(dir, 0o711); err != nil {
		return err
	}
	fmt.Fprintln(os.Stderr, "starting a throwaway PostgreSQL (SCRAM + TLS)…")
	cl, err := pgcluster.Start(ctx, pgcluster.Options{Dir: filepath.Join(dir, "pg")})
	if err != nil {
		return err
	}
	defer cl.Stop(context.WithoutCancel(ctx))

	admin, err := pgx.Connect(ctx, cl.AdminURL("postgres").Reveal())
	if err != nil {
		return secret.Scrub(err, cl.SuperPassword())
	}
	defer admin.Close(ctx)
	if _, err := admin.Exec(ctx, "CREATE DATABASE load"); err != nil {
		return err
	}
	manualPW, err := secret.Generate(nil, secret.DefaultPolicy())
	if err != nil {
		return err
	}
	for _, role := range []string{"app_manual", "app_single"} {
		v, err := secret.SCRAMVerifier(nil, manualPW)
		if err != nil {
			return err
		}
		if _, err := admin.Exec(ctx, "CREATE ROLE "+role+" LOGIN PASSWORD '"+v.Reveal()+"'"); err != nil {
			return secret.Scrub(err, v)
		}
	}
	base := fmt.Sprintf("postgresql://%s:%d/load?sslmode=require&channel_binding=require", cl.Host, cl.Port)
	cfgPath := filepath.Join(dir, "rotor.yaml")
	cfg := fmt.Sprintf(`version: 1
defaults:
  provider:
    type: postgres
    admin_url: ${ADMIN_URL}
  connection:
    url: %s
credentials:
  single:
    strategy: single
    role: app_single
    targets:
      - {name: env, type: dotenv, path: .env.single, values: {DATABASE_URL: "{{.URL}}"}}
  dual:
    strategy: dual
    roles: [app_blue, app_green]
    drain: {timeout: 30s, poll: 100ms}
    targets:
      - {name: env, type: dotenv, path: .env.dual, values: {DATABASE_URL: "{{.URL}}"}}
`, base)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		return err
	}
	env := map[string]string{"ADMIN_URL": cl.AdminURL("load").Reveal(), "ROTOR_CONFIG": cfgPath}
	rotor := func(args ...string) error {
		out := io.Discard
		if verbose {
			out = os.Stderr
		}
		streams, _, _, errBuf := cli.TestStreams()
		streams.Out = out
		f := cli.NewFactory()
		f.IO = streams
		f.LookupEnv = func(k string) (string, bool) {
			if v, ok := env[k]; ok {
				return v, true
			}
			return os.LookupEnv(k)
		}
		if code := cli.Run(ctx, f, args); code != 0 {
			return fmt.Errorf("rotor %s exited %d: %s", strings.Join(args, " "), code, errBuf.String())
		}
		return nil
	}
	if err := rotor("setup-roles", "dual"); err != nil {
		return err
	}
	if err := rotor("rotate", "single", "dual"); err != nil {
		return err
	}
	manualEnv := filepath.Join(dir, ".env.manual")
	writeManual := func(pw secret.String) error {
		u := strings.Replace(base, "postgresql://", "postgresql://app_manual:"+pw.Reveal()+"@", 1)
		_, err := atomicfile.WriteFile(manualEnv, []byte("DATABASE_URL='"+u+"'\n"), 0o600)
		return err
	}
	if err := writeManual(manualPW); err != nil {
		return err
	}

	measure := func(way, envFile string, n int, rotate func() error) (row, error) {
		app := &loadsim.App{Name: way, EnvFile: envFile, Workers: workers, Pool: pool, Recycle: recycle}
		actx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { app.Run(actx); close(done) }()
		defer func() { cancel(); <-done }()
		time.Sleep(2 * time.Second)
		app.Snapshot()
		fmt.Fprintf(os.Stderr, "%s: %d rotations under load…\n", way, n)
		r := row{way: way, rotations: n}
		var total time.Duration
		for i := 0; i < n; i++ {
			start := time.Now()
			if err := rotate(); err != nil {
				return r, err
			}
			d := time.Since(start)
			total += d
			r.rotateMax = max(r.rotateMax, d)
			time.Sleep(500 * time.Millisecond)
		}
		time.Sleep(time.Second)
		r.stats = app.Snapshot()
		r.rotateMean = total / time.Duration(n)
		return r, nil
	}

	var rows []row
	// (a) The seed's manual flow: reset the password, then update each
	// place by hand, one after another.
	r, err := measure("by hand (seed runbook)", manualEnv, manualRotations, func() error {
		pw, err := secret.Generate(nil, secret.DefaultPolicy())
		if err != nil {
			return err
		}
		v, err := secret.SCRAMVerifier(nil, pw)
		if err != nil {
			return err
		}
		if _, err := admin.Exec(ctx, "ALTER ROLE app_manual PASSWORD '"+v.Reveal()+"'"); err != nil {
			return secret.Scrub(err, v)
		}
		for i := 0; i < targets; i++ {
			time.Sleep(delay)
		}
		return writeManual(pw)
	})
	if err != nil {
		return err
	}
	rows = append(rows, r)
	for _, way := range []struct{ name, cred, env string }{
		{"rotor single", "single", ".env.single"},
		{"rotor dual", "dual", ".env.dual"},
	} {
		r, err := measure(way.name, filepath.Join(dir, way.env), rotations, func() error { return rotor("rotate", way.cred) })
		if err != nil {
			return err
		}
		rows = append(rows, r)
	}
	printTable(os.Stdout, rows, workers, pool, targets, delay)
	return nil
}

func printTable(w io.Writer, rows []row, workers, pool, targets int, delay time.Duration) {
	fmt.Fprintf(w, "load: %d consumers opening new connections continuously (re-reading .env each time), %d long-lived sessions\n\n", workers, pool)
	tw := tabwriter.NewWriter(w, 0, 0, 1, ' ', tabwriter.Debug)
	fmt.Fprintln(tw, "way\trotations\tconnections/s\tconnections ok\tfailed\tlongest failure window\tsessions dropped\trotation wall time (mean / max)")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%d\t%.0f\t%d\t%d\t%s\t%d\t%s / %s\n", r.way, r.rotations, r.stats.PerSecond, r.stats.OK, r.stats.Failed,
			r.stats.Window.Round(time.Millisecond), r.stats.PoolDropped, r.rotateMean.Round(time.Millisecond), r.rotateMax.Round(time.Millisecond))
	}
	tw.Flush()
	fmt.Fprintf(w, "\nby hand: ALTER ROLE, then %d places updated one after another, %s each.\n", targets, delay)
}
