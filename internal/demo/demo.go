// Package demo is `rotor demo`: a first run for a newcomer on any machine
// with PostgreSQL's server binaries. It starts a throwaway cluster (SCRAM,
// TLS), creates a dual role pair and a single role, writes .env files, runs
// a small app that keeps connecting with whatever the files say, rotates
// both credentials through the real CLI, and reports what the app saw.
package demo

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/rotorhq/rotor/internal/loadsim"
	"github.com/rotorhq/rotor/internal/pgcluster"
	"github.com/rotorhq/rotor/internal/secret"
)

// Options configure a demo run.
type Options struct {
	Out io.Writer
	// Dir keeps the demo's files (cluster, config, .env) when set; by
	// default everything lives in a temporary directory removed at the end.
	Dir string
	// Keep leaves the cluster's files behind for inspection.
	Keep bool
	// Rotations per strategy.
	Rotations int
	// Run invokes the rotor CLI in-process with the given environment
	// additions and returns its exit code.
	Run func(ctx context.Context, env map[string]string, args ...string) int
}

// Row is one line of the demo's result table.
type Row struct {
	Strategy    string
	Rotations   int
	OK, Failed  int64
	Window      time.Duration
	PoolDropped int64
	Wall        time.Duration
	LastError   string
}

const adminEnv = "ROTOR_DEMO_ADMIN_URL"

// Run performs the demo and returns its table.
func Run(ctx context.Context, opts Options) ([]Row, error) {
	out := opts.Out
	if opts.Rotations <= 0 {
		opts.Rotations = 3
	}
	dir := opts.Dir
	if dir == "" {
		d, err := os.MkdirTemp("", "rotor-demo-")
		if err != nil {
			return nil, err
		}
		dir = d
		// The cluster runs as the postgres OS user when rotor runs as
		// root; it must be able to traverse this directory. Files inside
		// stay 0600.
		if err := os.Chmod(d, 0o711); err != nil {
			return nil, err
		}
		if !opts.Keep {
			defer os.RemoveAll(d)
		}
	}
	fmt.Fprintf(out, "▶ starting a throwaway PostgreSQL (SCRAM + TLS) in %s\n", dir)
	cl, err := pgcluster.Start(ctx, pgcluster.Options{Dir: filepath.Join(dir, "pg")})
	if err != nil {
		return nil, err
	}
	defer func() {
		if !opts.Keep {
			cl.Stop(context.WithoutCancel(ctx))
		}
	}()
	fmt.Fprintf(out, "  listening on %s:%d\n", cl.Host, cl.Port)

	if err := seed(ctx, cl); err != nil {
		return nil, err
	}
	cfgPath := filepath.Join(dir, "rotor.yaml")
	if err := os.WriteFile(cfgPath, []byte(configFor(cl)), 0o600); err != nil {
		return nil, err
	}
	env := map[string]string{adminEnv: cl.AdminURL("demo").Reveal(), "ROTOR_CONFIG": cfgPath}
	rotor := func(args ...string) error {
		fmt.Fprintf(out, "\n$ rotor %s\n", strings.Join(args, " "))
		if code := opts.Run(ctx, env, args...); code != 0 {
			return fmt.Errorf("rotor %s exited %d", strings.Join(args, " "), code)
		}
		return nil
	}
	fmt.Fprintf(out, "▶ config written to %s\n", cfgPath)
	if err := rotor("setup-roles", "demo-dual"); err != nil {
		return nil, err
	}
	// First rotations put working credentials into the .env files, so the
	// app has something to connect with.
	if err := rotor("rotate", "demo-dual", "demo-single"); err != nil {
		return nil, err
	}

	var rows []Row
	for _, c := range []struct{ name, strategy, env string }{
		{"demo-dual", "dual", ".env.dual"},
		{"demo-single", "single", ".env.single"},
	} {
		app := &loadsim.App{Name: c.name, EnvFile: filepath.Join(dir, c.env), Workers: 4, Pool: 4, Recycle: time.Second}
		actx, stop := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { app.Run(actx); close(done) }()
		// Let the app warm up, then reset the counters.
		time.Sleep(time.Second)
		app.Snapshot()
		fmt.Fprintf(out, "\n▶ %s: an app with %d workers opens new connections non-stop from %s while rotor rotates %d times\n", c.strategy, app.Workers, c.env, opts.Rotations)
		start := time.Now()
		var rerr error
		for i := 0; i < opts.Rotations && rerr == nil; i++ {
			rerr = rotor("rotate", c.name, "--progress")
			time.Sleep(300 * time.Millisecond)
		}
		wall := time.Since(start)
		stop()
		<-done
		s := app.Snapshot()
		if rerr != nil {
			return rows, rerr
		}
		rows = append(rows, Row{Strategy: c.strategy, Rotations: opts.Rotations, OK: s.OK, Failed: s.Failed, Window: s.Window, PoolDropped: s.PoolDropped, Wall: wall, LastError: s.LastError})
	}
	if err := rotor("status"); err != nil {
		return rows, err
	}
	printTable(out, rows)
	return rows, nil
}

func printTable(out io.Writer, rows []Row) {
	fmt.Fprintln(out, "\n▶ what the app saw")
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "strategy\trotations\tconnections ok\tfailed\tfailure window\tpool sessions dropped\twall time")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%s\t%d\t%s\n", r.Strategy, r.Rotations, r.OK, r.Failed, r.Window.Round(time.Millisecond), r.PoolDropped, r.Wall.Round(10*time.Millisecond))
	}
	tw.Flush()
	for _, r := range rows {
		if r.Failed > 0 {
			fmt.Fprintf(out, "  %s: a failed attempt said: %s\n", r.Strategy, firstLine(r.LastError))
		}
	}
	fmt.Fprintln(out, `
dual   new password goes to the idle role; the old one keeps working until
       nobody uses it, so no connection fails.
single the password changes in place; connections opened between the change
       and the app re-reading .env fail. rotor keeps that window short.`)
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// seed creates the demo database, a table, and the single role. The dual
// roles come from `rotor setup-roles`.
func seed(ctx context.Context, cl *pgcluster.Cluster) error {
	conn, err := pgx.Connect(ctx, cl.AdminURL("postgres").Reveal())
	if err != nil {
		return fmt.Errorf("connect to the demo cluster: %w", secret.Scrub(err, cl.SuperPassword()))
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE demo"); err != nil {
		return err
	}
	app, err := pgx.Connect(ctx, cl.AdminURL("demo").Reveal())
	if err != nil {
		return secret.Scrub(err, cl.SuperPassword())
	}
	defer app.Close(ctx)
	pw, err := secret.Generate(nil, secret.DefaultPolicy())
	if err != nil {
		return err
	}
	ver, err := secret.SCRAMVerifier(nil, pw)
	if err != nil {
		return err
	}
	for _, q := range []string{
		"CREATE TABLE orders (id serial PRIMARY KEY, placed_at timestamptz DEFAULT now())",
		"CREATE ROLE app_single LOGIN PASSWORD '" + ver.Reveal() + "'",
		"GRANT SELECT ON orders TO app_single",
	} {
		if _, err := app.Exec(ctx, q); err != nil {
			return secret.Scrub(err, ver)
		}
	}
	return nil
}

func configFor(cl *pgcluster.Cluster) string {
	base := fmt.Sprintf("postgresql://%s:%d/demo?sslmode=require&channel_binding=require", cl.Host, cl.Port)
	return `version: 1
state: .rotor/state.db
key_file: .rotor/key
defaults:
  provider:
    type: postgres
    admin_url: ${` + adminEnv + `}
  connection:
    url: ` + base + `
credentials:
  demo-dual:
    strategy: dual
    roles: [app_blue, app_green]
    group: app
    drain:
      timeout: 10s
      poll: 100ms
      grace: 2s
      quiet: 1s
    targets:
      - name: env
        type: dotenv
        path: .env.dual
        values:
          DATABASE_URL: "{{.URL}}"
  demo-single:
    strategy: single
    role: app_single
    targets:
      - name: env
        type: dotenv
        path: .env.single
        values:
          DATABASE_URL: "{{.URL}}"
`
}
