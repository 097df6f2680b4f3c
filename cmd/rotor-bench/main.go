// Command rotor-bench runs rotor's load scenario against a throwaway local
// PostgreSQL and prints one table: what consumers saw while the password
// was rotated (a) by hand, as the seed runbook describes, (b) by rotor with
// the single strategy, (c) by rotor with the dual strategy — each once with
// consumers connecting to PostgreSQL directly and once through a real
// PgBouncer in front of it (when pgbouncer is installed).
//
//	go run ./cmd/rotor-bench -rotations 20
//
// Every credential is published to a .env file and to a "deployment": an
// exec target whose command stages the value and whose reload takes
// seconds before it moves the staged file live, as a platform's new
// deployment does. Each kind of consumer is counted on its own line:
//
//   - re-readers re-read the .env before every new connection;
//   - deployment requests connect per request with the live file's value,
//     so they keep the old value until the reload has finished;
//   - serverless functions connect, run one query and close at irregular
//     intervals, reading the live file — nothing is connected most of the
//     time;
//   - a pgxpool whose connections live at most -pool-lifetime and whose new
//     connections read the .env; a session the server ends counts as
//     dropped.
//
// Then, in rotations of their own with no other consumer on the
// credential (whose sessions would keep the old role visibly in use), the
// deterministic race: a consumer that read the .env — and one that read the
// live file — at the last moment before it changed connects with that old
// value 150 ms later, once per rotation.
//
// After each rotation the old connection string is tried against the
// server: a dual rotation that never retired its old role would fail
// nothing and prove nothing, so the table says how often the old login
// was refused.
//
// With -neon it runs instead the Neon ways against the Neon fake (see
// neon.go): dual with method sql, dual with method api and single with
// method api, -rotations each, under the same load.
//
//	go run ./cmd/rotor-bench -neon -rotations 20
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
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
	o, err := parseFlags(os.Args[1:])
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "rotor-bench:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if o.neon {
		rows, err := runNeon(ctx, o)
		if err != nil {
			fmt.Fprintln(os.Stderr, "rotor-bench:", err)
			os.Exit(1)
		}
		printNeonTable(os.Stdout, rows, o)
		return
	}
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

// parseFlags reads the command line (without the program's name).
func parseFlags(args []string) (options, error) {
	var o options
	fs := flag.NewFlagSet("rotor-bench", flag.ContinueOnError)
	fs.IntVar(&o.rotations, "rotations", 20, "rotations per way (the dual claim needs at least 20)")
	fs.IntVar(&o.manualRotations, "manual-rotations", 3, "rotations for the by-hand way (each takes targets × delay), under load and for the race")
	fs.IntVar(&o.raceRotations, "race-rotations", 5, "rotations per rotor way for the race, with no other consumer")
	fs.IntVar(&o.workers, "workers", 8, "re-readers: consumers opening new connections continuously, re-reading .env each time")
	fs.IntVar(&o.deployments, "deployments", 4, "deployment request workers: a connection per request with the deployment's live value")
	fs.IntVar(&o.serverless, "serverless", 3, "serverless functions: connect, one query, close, at irregular intervals (mean 300 ms, at most 750 ms apart)")
	fs.IntVar(&o.pool, "pool", 8, "connections of the pgxpool (and workers keeping them busy)")
	fs.DurationVar(&o.poolLifetime, "pool-lifetime", 4*time.Second, "longest life of a pooled connection (each lives between half of it and all of it)")
	fs.DurationVar(&o.deployDelay, "deploy-delay", 2*time.Second, "how long a deployment's reload takes before the new value goes live")
	fs.IntVar(&o.targets, "manual-targets", 3, "places a person updates by hand, one after another (PgBouncer's userlist is the first, the deployment the second)")
	fs.DurationVar(&o.delay, "manual-delay", 2*time.Second, "time a person needs per place")
	fs.BoolVar(&o.direct, "direct", true, "run the ways with consumers connecting to PostgreSQL directly")
	fs.BoolVar(&o.bouncer, "pgbouncer", true, "run the ways with consumers connecting through PgBouncer (skipped, with a note, if it is not installed)")
	ways := fs.String("ways", "manual,single,dual", "the ways to run, comma-separated: manual (by hand), single, dual")
	fs.BoolVar(&o.verbose, "v", false, "show rotor's own output, with live progress of every rotation")
	fs.BoolVar(&o.neon, "neon", false, "run the Neon ways instead, against the Neon fake: dual with method sql, dual with method api, single with method api, -rotations each, consumers connecting directly (-ways, -direct, -pgbouncer and the by-hand and race flags do not apply)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected argument %q; rotor-bench takes flags only (-h lists them)", fs.Arg(0))
	}
	if o.neon {
		if o.rotations < 1 {
			return o, fmt.Errorf("-rotations %d: the Neon ways need at least one rotation each", o.rotations)
		}
		return o, nil
	}
	o.ways = map[string]bool{}
	for _, w := range strings.Split(*ways, ",") {
		switch w = strings.TrimSpace(w); w {
		case "manual", "single", "dual":
			o.ways[w] = true
		default:
			return o, fmt.Errorf("unknown way %q in -ways (known: manual, single, dual)", w)
		}
	}
	return o, nil
}

type options struct {
	rotations, manualRotations, targets    int
	raceRotations                          int
	workers, deployments, serverless, pool int
	poolLifetime, deployDelay, delay       time.Duration
	direct, bouncer, verbose               bool
	// neon runs the Neon ways (neon.go) instead of the others.
	neon bool
	// ways are the ways to run (manual, single, dual); nil runs all.
	ways map[string]bool
}

func (o options) runs(way string) bool { return o.ways == nil || o.ways[way] }

// The consumer kinds, in the order the table lists them.
const (
	kindReread     = "re-reads .env"
	kindDeployment = "deployment requests"
	kindServerless = "serverless"
	kindPool       = "pool, max lifetime"
	kindRaceEnv    = "race on .env"
	kindRaceLive   = "race on deployment"
)

// loadKinds run together under load; raceKinds alone, in rotations of
// their own.
var (
	loadKinds = []string{kindReread, kindDeployment, kindServerless, kindPool}
	raceKinds = []string{kindRaceEnv, kindRaceLive}
)

// Timings of the simulated consumers (the flags set the others).
const (
	serverlessMeanGap = 300 * time.Millisecond
	serverlessMaxGap  = 750 * time.Millisecond
	// deploymentPause is the time between two requests of one deployment
	// worker.
	deploymentPause = 20 * time.Millisecond
	// raceDelay is how long the racing consumer waits between reading the
	// old value and connecting with it.
	raceDelay = 150 * time.Millisecond
)

type consumerStats struct {
	kind  string
	stats loadsim.Stats
}

// row is one way on one path, either under load or (race) the race's
// own rotations.
type row struct {
	way       string
	path      string
	race      bool
	rotations int
	consumers []consumerStats
	// oldRefused counts rotations after which the connection string
	// consumers had before it no longer logged in; attention those rotor
	// ended with the old role still in use (exit 4).
	oldRefused, attention int
	// stopped counts rotations that stopped and were resumed; stopReason
	// is the first one's error.
	stopped               int
	stopReason            string
	rotateMean, rotateMax time.Duration
}

// stats is the consumer kind's line of the row.
func (r row) stats(kind string) loadsim.Stats {
	for _, c := range r.consumers {
		if c.kind == kind {
			return c.stats
		}
	}
	return loadsim.Stats{}
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

// way is one way of rotating on one path, with the files its consumers
// read.
type way struct {
	name, path string
	// cred names the credential (and its files): .env.<cred> and
	// deploy-<cred>/live.env.
	cred   string
	pooled bool
}

func (w way) envFile(dir string) string  { return filepath.Join(dir, ".env."+w.cred) }
func (w way) liveFile(dir string) string { return filepath.Join(dir, "deploy-"+w.cred, "live.env") }

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
		// What consumers of the direct path get: TLS required, and SCRAM
		// with channel binding required — pgx refuses to log in any other
		// way (checkURLs verifies the rendered copies say so).
		direct: fmt.Sprintf("postgresql://%s:%d/load?sslmode=require&channel_binding=require", cl.Host, cl.Port)}
	bn.env = map[string]string{"ADMIN_URL": cl.AdminURL("load").Reveal(), "ROTOR_CONFIG": filepath.Join(dir, "rotor.yaml")}

	if o.bouncer {
		if _, err := pgbouncertest.FindBinary(); err != nil {
			skipped = "PgBouncer rows not run: " + err.Error()
			o.bouncer = false
			bn.o.bouncer = false
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
				// query_wait_timeout: a client whose role can no longer
				// log in to the server waits for a server connection, and
				// counts as a session of that role, until this ends it
				// (default 120 s); the consumers here give up after 5 s
				// anyway, so 4 s changes no outcome and lets a stopped
				// rotation resume soon.
				Settings: map[string]string{"server_idle_timeout": "1", "max_client_conn": "500", "default_pool_size": "40", "server_login_retry": "1", "query_wait_timeout": "4"}})
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
		pooled := path.suffix != ""
		manual := way{name: "by hand (seed runbook)", path: path.name, cred: "manual" + path.suffix, pooled: pooled}
		byHand := func() error { return bn.rotateByHand(manual, "app_manual"+path.suffix) }
		for _, race := range []bool{false, true} {
			if !o.runs("manual") {
				break
			}
			r, err := bn.measure(manual, race, o.manualRotations, byHand)
			if err != nil {
				return nil, "", err
			}
			rows = append(rows, r)
		}
		for _, w := range []struct{ name, cred string }{{"rotor single", "single"}, {"rotor dual", "dual"}} {
			if !o.runs(w.cred) {
				continue
			}
			wy := way{name: w.name, path: path.name, cred: w.cred + path.suffix, pooled: pooled}
			rotate := func() error { return bn.rotor("rotate", wy.cred) }
			for _, p := range []struct {
				race bool
				n    int
			}{{false, o.rotations}, {true, o.raceRotations}} {
				r, err := bn.measure(wy, p.race, p.n, rotate)
				if err != nil {
					return nil, "", err
				}
				rows = append(rows, r)
			}
		}
	}
	return rows, skipped, nil
}

// The deployment: stage.sh is the exec target's command, go-live.sh its
// reload_command. The values reach stage.sh on stdin (dotenv), never in
// argv; both files are written to a temporary name and renamed, so a
// consumer reads the old file or the new one, never half of one.
const (
	stageScript = `#!/bin/sh
# A platform storing a new deployment's configuration: the values arrive
# on stdin (dotenv) and are staged; consumers do not see them yet.
# $1: the deployment's directory.
set -eu
umask 077
cat >"$1/staged.env.tmp"
mv -f "$1/staged.env.tmp" "$1/staged.env"
`
	goLiveScript = `#!/bin/sh
# The new deployment takes $2 seconds to start, then goes live at once:
# rename(2) replaces live.env atomically. rotor's reload finishes when
# this script exits, i.e. when the new value is live.
set -eu
umask 077
sleep "$2"
cp "$1/staged.env" "$1/live.env.tmp"
mv -f "$1/live.env.tmp" "$1/live.env"
`
)

// deployTarget is the exec target of credential cred's deployment.
func (bn *bench) deployTarget(cred, value string) string {
	return fmt.Sprintf(`{name: deploy, type: exec, command: [./stage.sh, deploy-%[1]s], stdin: dotenv, idempotent: true, reload_command: [./go-live.sh, deploy-%[1]s, %[2]s], values: {DATABASE_URL: "%[3]s"}}`,
		cred, strconv.FormatFloat(bn.o.deployDelay.Seconds(), 'f', -1, 64), value)
}

// drain is the dual credentials' retirement evidence, short enough for
// 20 rotations in a row and still honest for these consumers:
// docs/benchmarks.md ("Why these drain settings") says why.
const drain = `{grace: 3s, quiet: 1s, poll: 50ms, timeout: 30s}`

// setup creates the roles, the config and each way's first .env and
// deployment.
func (bn *bench) setup() error {
	for name, text := range map[string]string{"stage.sh": stageScript, "go-live.sh": goLiveScript} {
		if err := os.WriteFile(filepath.Join(bn.dir, name), []byte(text), 0o700); err != nil {
			return err
		}
	}
	creds := []string{"manual", "single", "dual"}
	if bn.b != nil {
		creds = append(creds, "manual_pgb", "single_pgb", "dual_pgb")
	}
	for _, c := range creds {
		if err := os.Mkdir(filepath.Join(bn.dir, "deploy-"+c), 0o700); err != nil {
			return err
		}
	}
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
      - %s
  dual:
    strategy: dual
    roles: [app_blue, app_green]
    group: app_owner
    drain: %s
    targets:
      - {name: env, type: dotenv, path: .env.dual, values: {DATABASE_URL: "{{.URL}}"}}
      - %s
`, bn.direct, bn.deployTarget("single", "{{.URL}}"), drain, bn.deployTarget("dual", "{{.URL}}"))
	rotated := []string{"single", "dual"}
	if bn.b != nil {
		cfg += fmt.Sprintf(`  single_pgb:
    strategy: single
    role: app_single_pgb
    connection: {url: %[1]q, pooled_url: %[2]q}
    targets:
      - &bouncer {name: pgbouncer, type: pgbouncer, auth_file: %[3]q, admin_url: "${PGBOUNCER_ADMIN_URL}", values: {DATABASE_URL: "{{.PooledURL}}"}}
      - {name: env, type: dotenv, path: .env.single_pgb, values: {DATABASE_URL: "{{.PooledURL}}"}}
      - %[4]s
  dual_pgb:
    strategy: dual
    roles: [app_pgb_blue, app_pgb_green]
    group: app_pgb_owner
    connection: {url: %[1]q, pooled_url: %[2]q}
    drain: %[6]s
    targets:
      - *bouncer
      - {name: env, type: dotenv, path: .env.dual_pgb, values: {DATABASE_URL: "{{.PooledURL}}"}}
      - %[5]s
`, bn.direct, bn.pooled, bn.b.AuthFile, bn.deployTarget("single_pgb", "{{.PooledURL}}"), bn.deployTarget("dual_pgb", "{{.PooledURL}}"), drain)
		rotated = append(rotated, "single_pgb", "dual_pgb")
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
	if err := bn.rotor(append([]string{"rotate"}, rotated...)...); err != nil {
		return err
	}
	if err := bn.writeManual(way{cred: "manual"}, "app_manual", pw, true, true); err != nil {
		return err
	}
	if bn.b != nil {
		if err := bn.writeManual(way{cred: "manual_pgb", pooled: true}, "app_manual_pgb", pw, true, true); err != nil {
			return err
		}
	}
	return bn.checkURLs(creds)
}

// checkURLs makes sure every copy consumers read says how they must
// connect: TLS required without a plaintext fallback, and on the direct
// path SCRAM with channel binding required; a direct login with each
// copy must run over TLS (pg_hba.conf would accept a plaintext one).
func (bn *bench) checkURLs(creds []string) error {
	for _, c := range creds {
		w := way{cred: c, pooled: strings.HasSuffix(c, "_pgb")}
		for _, file := range []string{w.envFile(bn.dir), w.liveFile(bn.dir)} {
			url := loadsim.DotenvFile(file, "DATABASE_URL")()
			cfg, err := pgx.ParseConfig(url)
			if err != nil {
				return fmt.Errorf("%s: the connection string does not parse: %w", file, secret.Scrub(err, secret.New(url)))
			}
			if cfg.TLSConfig == nil || len(cfg.Fallbacks) > 0 {
				return fmt.Errorf("%s: consumers would not be required to use TLS (sslmode=require)", file)
			}
			if w.pooled {
				continue
			}
			if cfg.ChannelBinding != "require" {
				return fmt.Errorf("%s: consumers would not be required to use SCRAM with channel binding (channel_binding=require)", file)
			}
			conn, err := pgx.ConnectConfig(bn.ctx, cfg)
			if err != nil {
				return fmt.Errorf("%s: %w", file, secret.Scrub(err, secret.New(url), secret.New(cfg.Password)))
			}
			// Seen from the client: pg_stat_ssl hides the session from a
			// dual role, whose current user is the group (SET role).
			_, isTLS := conn.PgConn().Conn().(*tls.Conn)
			conn.Close(context.WithoutCancel(bn.ctx))
			if !isTLS {
				return fmt.Errorf("%s: the login did not use TLS", file)
			}
		}
	}
	return nil
}

// exitError is a rotor command that did not exit 0.
type exitError struct {
	args []string
	code int
	msg  string
}

func (e *exitError) Error() string {
	return fmt.Sprintf("rotor %s exited %d: %s", strings.Join(e.args, " "), e.code, e.msg)
}

// rotor runs one rotor command in-process, as the CLI would.
func (bn *bench) rotor(args ...string) error {
	streams, _, _, errBuf := cli.TestStreams()
	streams.Out = io.Discard
	if bn.o.verbose {
		fmt.Fprintf(os.Stderr, "$ rotor %s\n", strings.Join(args, " "))
		streams.Out = os.Stderr
		streams.ErrOut = io.MultiWriter(os.Stderr, errBuf)
		if args[0] == "rotate" {
			args = append(args, "--progress")
		}
	}
	f := cli.NewFactory()
	f.IO = streams
	f.LookupEnv = func(k string) (string, bool) {
		if v, ok := bn.env[k]; ok {
			return v, true
		}
		return os.LookupEnv(k)
	}
	if code := cli.Run(bn.ctx, f, args); code != 0 {
		return &exitError{args: args, code: code, msg: errBuf.String()}
	}
	return nil
}

// writeManual is the by-hand way's copies: the .env file and the
// deployment's live file.
func (bn *bench) writeManual(w way, role string, pw secret.String, env, live bool) error {
	base := bn.direct
	if w.pooled {
		base = bn.pooled
	}
	u := strings.Replace(base, "postgresql://", "postgresql://"+role+":"+pw.Reveal()+"@", 1)
	content := []byte("DATABASE_URL='" + u + "'\n")
	for _, f := range []struct {
		on   bool
		path string
	}{{env, w.envFile(bn.dir)}, {live, w.liveFile(bn.dir)}} {
		if !f.on {
			continue
		}
		if _, err := atomicfile.WriteFile(f.path, content, 0o600); err != nil {
			return err
		}
	}
	return nil
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
// there is one, then the deployment (its new value live at once: the
// person waits for the redeploy), the application's .env last.
func (bn *bench) rotateByHand(w way, role string) error {
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
	liveDone := false
	for i := 0; i < bn.o.targets; i++ {
		time.Sleep(bn.o.delay)
		if i == 0 && w.pooled {
			if err := bn.setBouncerEntry(role, v); err != nil {
				return err
			}
		}
		if i == 1 {
			if err := bn.writeManual(w, role, pw, false, true); err != nil {
				return err
			}
			liveDone = true
		}
	}
	return bn.writeManual(w, role, pw, true, !liveDone)
}

// oldLoginRefused tries the login of url — the copy consumers had before
// a rotation — directly against the server: true when the server refuses
// it (invalid authorization, SQLSTATE class 28).
func (bn *bench) oldLoginRefused(url string) (bool, error) {
	old, err := pgx.ParseConfig(url)
	if err != nil {
		return false, fmt.Errorf("the old connection string does not parse: %w", secret.Scrub(err, secret.New(url)))
	}
	cfg, err := pgx.ParseConfig(bn.direct)
	if err != nil {
		return false, err
	}
	cfg.User, cfg.Password = old.User, old.Password
	conn, err := pgx.ConnectConfig(bn.ctx, cfg)
	if err == nil {
		conn.Close(context.WithoutCancel(bn.ctx))
		return false, nil
	}
	if pgErr, ok := errors.AsType[*pgconn.PgError](err); ok && strings.HasPrefix(pgErr.Code, "28") {
		return true, nil
	}
	return false, fmt.Errorf("try the old login: %w", secret.Scrub(err, secret.New(old.Password), secret.New(url)))
}

// consumers are way w's consumers under load (loadKinds) or for the
// race (raceKinds), in table order.
func (bn *bench) consumers(w way, race bool) ([]string, []loadsim.Consumer) {
	o := bn.o
	env := loadsim.DotenvFile(w.envFile(bn.dir), "DATABASE_URL")
	live := loadsim.DotenvFile(w.liveFile(bn.dir), "DATABASE_URL")
	if race {
		return raceKinds, []loadsim.Consumer{
			&loadsim.Race{Source: env, Delay: raceDelay},
			&loadsim.Race{Source: live, Delay: raceDelay},
		}
	}
	return loadKinds, []loadsim.Consumer{
		&loadsim.Requests{Source: env, Workers: o.workers},
		&loadsim.Requests{Source: live, Workers: o.deployments, Pause: deploymentPause},
		&loadsim.Serverless{Source: live, Functions: o.serverless, MeanGap: serverlessMeanGap, MaxGap: serverlessMaxGap},
		&loadsim.Pool{Source: env, Size: o.pool, Lifetime: o.poolLifetime},
	}
}

// measure runs w's consumers (race: the racing ones alone) and rotates n
// times meanwhile.
func (bn *bench) measure(w way, race bool, n int, rotate func() error) (row, error) {
	kinds, cs := bn.consumers(w, race)
	actx, cancel := context.WithCancel(bn.ctx)
	var wg sync.WaitGroup
	for _, c := range cs {
		wg.Go(func() { c.Run(actx) })
	}
	defer func() { cancel(); wg.Wait() }()
	// Consumers under load warm up (TLS, the pool filling); the racing
	// ones only need their first read.
	warmUp := 2 * time.Second
	if race {
		warmUp = 200 * time.Millisecond
	}
	time.Sleep(warmUp)
	for i, c := range cs {
		if s := c.Snapshot(); s.Failed+s.PoolDropped > 0 {
			return row{}, fmt.Errorf("%s (%s): %s consumers failed before any rotation: %s", w.name, w.path, kinds[i], s.LastError)
		}
	}
	what := "under load"
	if race {
		what = "for the race"
	}
	fmt.Fprintf(os.Stderr, "%s, %s: %d rotations %s…\n", w.name, w.path, n, what)
	r := row{way: w.name, path: w.path, race: race, rotations: n}
	var total time.Duration
	for i := 0; i < n; i++ {
		if bn.o.verbose {
			fmt.Fprintf(os.Stderr, "— %s, %s: rotation %d of %d %s\n", w.name, w.path, i+1, n, what)
		}
		old := loadsim.DotenvFile(w.envFile(bn.dir), "DATABASE_URL")()
		start := time.Now()
		err := rotate()
		for try := 1; err != nil && try <= resumeTries; try++ {
			ee, ok := errors.AsType[*exitError](err)
			if !ok || ee.code != cli.ExitError {
				break
			}
			// A rotation that stopped (e.g. at prepare, because the role
			// it would change still has a session) is resumed, as the
			// operator would: a later `rotor rotate` continues it.
			if try == 1 {
				r.stopped++
				r.stopReason = firstLine(ee.msg)
			}
			time.Sleep(time.Second)
			err = rotate()
		}
		d := time.Since(start)
		if ee, ok := errors.AsType[*exitError](err); ok && ee.code == cli.ExitAttention {
			// The rotation switched but found the old role still in use
			// and did not retire it: counted, and the next one goes on.
			r.attention++
			err = nil
		}
		if err != nil {
			return r, err
		}
		total += d
		r.rotateMax = max(r.rotateMax, d)
		refused, err := bn.oldLoginRefused(old)
		if err != nil {
			return r, fmt.Errorf("%s (%s): %w", w.name, w.path, err)
		}
		if refused {
			r.oldRefused++
		}
		if race {
			// The race's connection comes 150 ms after the change; the
			// next rotation starts once it has finished, so that each
			// rotation has its own race and none finds the last one's
			// consumer still logging in.
			if err := awaitRaces(cs, int64(i+1)); err != nil {
				return r, fmt.Errorf("%s (%s): %w", w.name, w.path, err)
			}
		}
		time.Sleep(500 * time.Millisecond)
	}
	if !race {
		// Long enough for the consumers' requests in flight (the races
		// were awaited).
		time.Sleep(time.Second)
	}
	for i, c := range cs {
		r.consumers = append(r.consumers, consumerStats{kind: kinds[i], stats: c.Snapshot()})
	}
	r.rotateMean = total / time.Duration(n)
	return r, nil
}

// resumeTries is how often a stopped rotation is resumed, a second
// apart, before the scenario gives up.
const resumeTries = 30

func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	return s
}

// awaitRaces waits until every race consumer in cs has made n attempts.
func awaitRaces(cs []loadsim.Consumer, n int64) error {
	deadline := time.Now().Add(raceDelay + 10*time.Second)
	for _, c := range cs {
		race, ok := c.(*loadsim.Race)
		if !ok {
			continue
		}
		for race.Attempts() < n {
			if time.Now().After(deadline) {
				return fmt.Errorf("the race made %d attempts in %d rotations: its source did not change once per rotation", race.Attempts(), n)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	return nil
}

func printTable(w io.Writer, rows []row, o options) {
	fmt.Fprintf(w, "load, per way: %d re-readers of .env, %d deployment request workers and %d serverless functions (reading the deployment's live file; its reload takes %s), a pgxpool of %d connections living at most %s (reading .env); then the races alone: a read at the last moment before the change, a connect %s later\n\n",
		o.workers, o.deployments, o.serverless, o.deployDelay, o.pool, o.poolLifetime, raceDelay)
	tw := tabwriter.NewWriter(w, 0, 0, 1, ' ', tabwriter.Debug)
	fmt.Fprintln(tw, "way\tconsumers connect\tconsumer\tattempts/s\tok\tfailed\tlongest failure window\tsessions dropped\tlongest read→login\trotations\told login refused after\trotation wall time (mean / max)")
	for _, r := range rows {
		for i, c := range r.consumers {
			s := c.stats
			perWay := "\t\t\t"
			if i == 0 {
				perWay = fmt.Sprintf("%d\t%d/%d\t%s / %s", r.rotations, r.oldRefused, r.rotations, r.rotateMean.Round(time.Millisecond), r.rotateMax.Round(time.Millisecond))
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%.0f\t%d\t%d\t%s\t%d\t%s\t%s\n", r.way, r.path, c.kind, s.PerSecond, s.OK, s.Failed,
				s.Window.Round(time.Millisecond), s.PoolDropped, s.ReadToLogin.Round(time.Millisecond), perWay)
		}
	}
	tw.Flush()
	fmt.Fprintf(w, "\nby hand: ALTER ROLE, then %d places updated one after another, %s each (PgBouncer's userlist + RELOAD first, the deployment second, .env last).\n", o.targets, o.delay)
	for _, r := range rows {
		if r.stopped > 0 {
			fmt.Fprintf(w, "%s, %s: %d of %d rotations stopped and were resumed; the first said: %s\n", r.way, r.path, r.stopped, r.rotations, r.stopReason)
		}
		if r.attention > 0 {
			fmt.Fprintf(w, "%s, %s: %d of %d rotations ended with the old role still in use (exit 4)\n", r.way, r.path, r.attention, r.rotations)
		}
		for _, c := range r.consumers {
			if len(c.stats.Kinds) == 0 {
				continue
			}
			var ks []string
			for _, k := range slices.Sorted(maps.Keys(c.stats.Kinds)) {
				ks = append(ks, fmt.Sprintf("%d × %q", c.stats.Kinds[k], k))
			}
			fmt.Fprintf(w, "%s, %s, %s: %s\n", r.way, r.path, c.kind, strings.Join(ks, ", "))
		}
	}
}
