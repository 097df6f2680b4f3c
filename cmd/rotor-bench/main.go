// Command rotor-bench runs rotor's load scenario against a throwaway local
// PostgreSQL and prints one table: what consumers saw while the password
// was rotated (a) by hand, as the seed runbook describes, (b) by rotor with
// the single strategy, (c) by rotor with the dual strategy — each once with
// consumers connecting to PostgreSQL directly and once through a real
// PgBouncer in front of it (when pgbouncer is installed).
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
	"maps"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/rotorhq/rotor/internal/atomicfile"
	"github.com/rotorhq/rotor/internal/cli"
	"github.com/rotorhq/rotor/internal/loadsim"
	"github.com/rotorhq/rotor/internal/pgbouncertest"
	"github.com/rotorhq/rotor/internal/pgcluster"
	"github.com/rotorhq/rotor/internal/secret"
)

func main() {
	var o options
	flag.IntVar(&o.rotations, "rotations", 20, "rotations per way (the dual claim needs at least 20)")
	flag.IntVar(&o.manualRotations, "manual-rotations", 3, "rotations for the by-hand way (each takes targets × delay)")
	flag.IntVar(&o.workers, "workers", 8, "consumers opening new connections continuously")
	flag.IntVar(&o.pool, "pool", 8, "long-lived sessions, recycled every -recycle")
	flag.DurationVar(&o.recycle, "recycle", time.Second, "lifetime of a pooled session before it reconnects with the current .env")
	flag.IntVar(&o.targets, "manual-targets", 3, "places a person updates by hand, one after another (PgBouncer's userlist is the first)")
	flag.DurationVar(&o.delay, "manual-delay", 2*time.Second, "time a person needs per place")
	flag.BoolVar(&o.direct, "direct", true, "run the ways with consumers connecting to PostgreSQL directly")
	flag.BoolVar(&o.bouncer, "pgbouncer", true, "run the ways with consumers connecting through PgBouncer (skipped, with a note, if it is not installed)")
	flag.BoolVar(&o.verbose, "v", false, "show rotor's own output")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	rows, skipped, err := run(ctx, o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "rotor-bench:", err)
		os.Exit(1)
	}
	printTable(os.Stdout, rows, o)
	if skipped != "" {
		fmt.Fprintln(os.Stdout, skipped)
	}
}

type options struct {
	rotations, manualRotations, workers, pool, targets int
	recycle, delay                                     time.Duration
	direct, bouncer, verbose                           bool
}

type row struct {
	way        string
	path       string
	rotations  int
	stats      loadsim.Stats
	rotateMean time.Duration
	rotateMax  time.Duration
}

// bench is the running scenario: one cluster, optionally one PgBouncer in
// front of it, one rotor.yaml with a credential per way and path.
type bench struct {
	ctx   context.Context
	o     options
	dir   string
	cl    *pgcluster.Cluster
	admin *pgx.Conn
	b     *pgbouncertest.Bouncer
	env   map[string]string
	// direct is the database's URL without credentials; pooled is the
	// same database through PgBouncer.
	direct, pooled string
}

// run measures every way on every path; skipped says why a path was not
// run.
func run(ctx context.Context, o options) (rows []row, skipped string, err error) {
	dir, err := os.MkdirTemp("", "rotor-bench-")
	if err != nil {
		return nil, "", err
	}
	defer os.RemoveAll(dir)
	if err := os.Chmod(dir, 0o711); err != nil {
		return nil, "", err
	}
	fmt.Fprintln(os.Stderr, "starting a throwaway PostgreSQL (SCRAM + TLS)…")
	cl, err := pgcluster.Start(ctx, pgcluster.Options{Dir: filepath.Join(dir, "pg"),
		// Room for a pool of server connections per role through PgBouncer.
		Settings: map[string]string{"max_connections": "200"}})
	if err != nil {
		return nil, "", err
	}
	defer cl.Stop(context.WithoutCancel(ctx))
	admin, err := pgx.Connect(ctx, cl.AdminURL("postgres").Reveal())
	if err != nil {
		return nil, "", secret.Scrub(err, cl.SuperPassword())
	}
	defer admin.Close(ctx)
	if _, err := admin.Exec(ctx, "CREATE DATABASE load"); err != nil {
		return nil, "", err
	}
	bn := &bench{ctx: ctx, o: o, dir: dir, cl: cl, admin: admin,
		direct: fmt.Sprintf("postgresql://%s:%d/load?sslmode=require&channel_binding=require", cl.Host, cl.Port)}
	bn.env = map[string]string{"ADMIN_URL": cl.AdminURL("load").Reveal(), "ROTOR_CONFIG": filepath.Join(dir, "rotor.yaml")}

	if o.bouncer {
		if _, err := pgbouncertest.FindBinary(); err != nil {
			skipped = "PgBouncer rows not run: " + err.Error()
			o.bouncer = false
		} else {
			fmt.Fprintln(os.Stderr, "starting PgBouncer in front of it (client TLS, SCRAM passed through)…")
			b, err := pgbouncertest.Start(ctx, pgbouncertest.Options{ServerHost: cl.Host, ServerPort: cl.Port, ClientTLS: true,
				Dir:       filepath.Join(dir, "pgbouncer"),
				Databases: map[string]string{"load": fmt.Sprintf("host=%s port=%d dbname=load", cl.Host, cl.Port)},
				// Pooled server connections of a role nobody uses any more
				// close after a second, so a dual rotation's drain ends.
				// server_login_retry: how long a pool refuses every client
				// after one failed (or aborted) server login. PgBouncer's
				// default is 15 s; 1 s is what docs/targets/pgbouncer.md
				// advises for a PgBouncer that rotor rotates behind.
				Settings: map[string]string{"server_idle_timeout": "1", "max_client_conn": "500", "default_pool_size": "40", "server_login_retry": "1"}})
			if err != nil {
				return nil, "", err
			}
			defer b.Stop(context.WithoutCancel(ctx))
			bn.b = b
			bn.pooled = fmt.Sprintf("postgresql://%s:%d/load?sslmode=require", b.Host, b.Port)
			bn.env["PGBOUNCER_ADMIN_URL"] = b.AdminURL().Reveal()
		}
	}
	if err := bn.setup(); err != nil {
		return nil, "", err
	}

	for _, path := range []struct {
		name, suffix string
		on           bool
	}{{"direct", "", o.direct}, {"PgBouncer", "_pgb", o.bouncer}} {
		if !path.on {
			continue
		}
		r, err := bn.measure("by hand (seed runbook)", path.name, ".env.manual"+path.suffix, o.manualRotations, func() error {
			return bn.rotateByHand("app_manual"+path.suffix, path.suffix != "")
		})
		if err != nil {
			return nil, "", err
		}
		rows = append(rows, r)
		for _, way := range []struct{ name, cred string }{{"rotor single", "single"}, {"rotor dual", "dual"}} {
			cred := way.cred + path.suffix
			r, err := bn.measure(way.name, path.name, ".env."+cred, o.rotations, func() error { return bn.rotor("rotate", cred) })
			if err != nil {
				return nil, "", err
			}
			rows = append(rows, r)
		}
	}
	return rows, skipped, nil
}

// setup creates the roles, the config and each way's first .env.
func (bn *bench) setup() error {
	pw, err := secret.Generate(nil, secret.DefaultPolicy())
	if err != nil {
		return err
	}
	manual := []string{"app_manual", "app_single"}
	if bn.b != nil {
		manual = append(manual, "app_manual_pgb", "app_single_pgb")
	}
	for _, role := range manual {
		v, err := secret.SCRAMVerifier(nil, pw)
		if err != nil {
			return err
		}
		if _, err := bn.admin.Exec(bn.ctx, "CREATE ROLE "+role+" LOGIN PASSWORD '"+v.Reveal()+"'"); err != nil {
			return secret.Scrub(err, v)
		}
		if role == "app_manual_pgb" {
			if err := bn.setBouncerEntry(role, v); err != nil {
				return err
			}
		}
	}
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
    group: app_owner
    drain: {timeout: 30s, poll: 100ms}
    targets:
      - {name: env, type: dotenv, path: .env.dual, values: {DATABASE_URL: "{{.URL}}"}}
`, bn.direct)
	creds := []string{"single", "dual"}
	if bn.b != nil {
		cfg += fmt.Sprintf(`  single_pgb:
    strategy: single
    role: app_single_pgb
    connection: {url: %[1]q, pooled_url: %[2]q}
    targets:
      - &bouncer {name: pgbouncer, type: pgbouncer, auth_file: %[3]q, admin_url: "${PGBOUNCER_ADMIN_URL}", values: {DATABASE_URL: "{{.PooledURL}}"}}
      - {name: env, type: dotenv, path: .env.single_pgb, values: {DATABASE_URL: "{{.PooledURL}}"}}
  dual_pgb:
    strategy: dual
    roles: [app_pgb_blue, app_pgb_green]
    group: app_pgb_owner
    connection: {url: %[1]q, pooled_url: %[2]q}
    drain: {timeout: 30s, poll: 100ms}
    targets:
      - *bouncer
      - {name: env, type: dotenv, path: .env.dual_pgb, values: {DATABASE_URL: "{{.PooledURL}}"}}
`, bn.direct, bn.pooled, bn.b.AuthFile)
		creds = append(creds, "single_pgb", "dual_pgb")
	}
	if err := os.WriteFile(bn.env["ROTOR_CONFIG"], []byte(cfg), 0o600); err != nil {
		return err
	}
	if err := bn.rotor("setup-roles", "dual"); err != nil {
		return err
	}
	if bn.b != nil {
		if err := bn.rotor("setup-roles", "dual_pgb"); err != nil {
			return err
		}
	}
	if err := bn.rotor(append([]string{"rotate"}, creds...)...); err != nil {
		return err
	}
	if err := bn.writeManualEnv("app_manual", "", pw); err != nil {
		return err
	}
	if bn.b != nil {
		return bn.writeManualEnv("app_manual_pgb", "_pgb", pw)
	}
	return nil
}

// rotor runs one rotor command in-process, as the CLI would.
func (bn *bench) rotor(args ...string) error {
	out := io.Discard
	if bn.o.verbose {
		out = os.Stderr
	}
	streams, _, _, errBuf := cli.TestStreams()
	streams.Out = out
	f := cli.NewFactory()
	f.IO = streams
	f.LookupEnv = func(k string) (string, bool) {
		if v, ok := bn.env[k]; ok {
			return v, true
		}
		return os.LookupEnv(k)
	}
	if code := cli.Run(bn.ctx, f, args); code != 0 {
		return fmt.Errorf("rotor %s exited %d: %s", strings.Join(args, " "), code, errBuf.String())
	}
	return nil
}

// writeManualEnv is the by-hand way's .env file.
func (bn *bench) writeManualEnv(role, suffix string, pw secret.String) error {
	base := bn.direct
	if suffix != "" {
		base = bn.pooled
	}
	u := strings.Replace(base, "postgresql://", "postgresql://"+role+":"+pw.Reveal()+"@", 1)
	_, err := atomicfile.WriteFile(filepath.Join(bn.dir, ".env.manual"+suffix), []byte("DATABASE_URL='"+u+"'\n"), 0o600)
	return err
}

// setBouncerEntry is what a person does to PgBouncer by hand: put the
// role's verifier in userlist.txt and RELOAD.
func (bn *bench) setBouncerEntry(role string, verifier secret.String) error {
	data, err := os.ReadFile(bn.b.AuthFile)
	if err != nil {
		return err
	}
	var kept []string
	for _, line := range strings.SplitAfter(string(data), "\n") {
		if line != "" && !strings.HasPrefix(line, `"`+role+`" `) {
			kept = append(kept, line)
		}
	}
	kept = append(kept, pgbouncertest.Entry(role, verifier.Reveal()))
	// Rewritten in place: the file keeps the owner PgBouncer reads it as.
	if err := os.WriteFile(bn.b.AuthFile, []byte(strings.Join(kept, "")), 0o600); err != nil {
		return err
	}
	conn, err := pgconn.Connect(bn.ctx, bn.b.AdminURL().Reveal())
	if err != nil {
		return secret.Scrub(err, bn.b.AdminPassword())
	}
	defer conn.Close(context.WithoutCancel(bn.ctx))
	_, err = conn.Exec(bn.ctx, "RELOAD").ReadAll()
	return err
}

// rotateByHand is the seed's manual flow: reset the password, then update
// each place by hand, one after another — PgBouncer's userlist first when
// there is one, the application's .env last.
func (bn *bench) rotateByHand(role string, viaBouncer bool) error {
	pw, err := secret.Generate(nil, secret.DefaultPolicy())
	if err != nil {
		return err
	}
	v, err := secret.SCRAMVerifier(nil, pw)
	if err != nil {
		return err
	}
	if _, err := bn.admin.Exec(bn.ctx, "ALTER ROLE "+role+" PASSWORD '"+v.Reveal()+"'"); err != nil {
		return secret.Scrub(err, v)
	}
	for i := 0; i < bn.o.targets; i++ {
		time.Sleep(bn.o.delay)
		if i == 0 && viaBouncer {
			if err := bn.setBouncerEntry(role, v); err != nil {
				return err
			}
		}
	}
	suffix := ""
	if viaBouncer {
		suffix = "_pgb"
	}
	return bn.writeManualEnv(role, suffix, pw)
}

// measure runs consumers on envFile and rotates n times under their load.
func (bn *bench) measure(way, path, envFile string, n int, rotate func() error) (row, error) {
	o := bn.o
	app := &loadsim.App{Name: way, EnvFile: filepath.Join(bn.dir, envFile), Workers: o.workers, Pool: o.pool, Recycle: o.recycle}
	actx, cancel := context.WithCancel(bn.ctx)
	done := make(chan struct{})
	go func() { app.Run(actx); close(done) }()
	defer func() { cancel(); <-done }()
	time.Sleep(2 * time.Second)
	if s := app.Snapshot(); s.Failed > 0 {
		return row{}, fmt.Errorf("%s (%s): consumers failed before any rotation: %s", way, path, s.LastError)
	}
	fmt.Fprintf(os.Stderr, "%s, %s: %d rotations under load…\n", way, path, n)
	r := row{way: way, path: path, rotations: n}
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

func printTable(w io.Writer, rows []row, o options) {
	fmt.Fprintf(w, "load: %d consumers opening new connections continuously (re-reading .env each time), %d long-lived sessions\n\n", o.workers, o.pool)
	tw := tabwriter.NewWriter(w, 0, 0, 1, ' ', tabwriter.Debug)
	fmt.Fprintln(tw, "way\tconsumers connect\trotations\tconnections/s\tconnections ok\tfailed\tlongest failure window\tsessions dropped\trotation wall time (mean / max)")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%.0f\t%d\t%d\t%s\t%d\t%s / %s\n", r.way, r.path, r.rotations, r.stats.PerSecond, r.stats.OK, r.stats.Failed,
			r.stats.Window.Round(time.Millisecond), r.stats.PoolDropped, r.rotateMean.Round(time.Millisecond), r.rotateMax.Round(time.Millisecond))
	}
	tw.Flush()
	fmt.Fprintf(w, "\nby hand: ALTER ROLE, then %d places updated one after another, %s each (PgBouncer's userlist + RELOAD first, .env last).\n", o.targets, o.delay)
	for _, r := range rows {
		if len(r.stats.Kinds) == 0 {
			continue
		}
		var kinds []string
		for _, k := range slices.Sorted(maps.Keys(r.stats.Kinds)) {
			kinds = append(kinds, fmt.Sprintf("%d × %q", r.stats.Kinds[k], k))
		}
		fmt.Fprintf(w, "%s, %s: failures: %s\n", r.way, r.path, strings.Join(kinds, ", "))
	}
}
