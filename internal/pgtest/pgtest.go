// Package pgtest gives tests a real PostgreSQL: one throwaway cluster per
// test binary (started lazily, stopped by Main), and a fresh database and
// fresh roles per test so that tests can run in parallel.
//
//	func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/rotorhq/rotor/internal/pgcluster"
	"github.com/rotorhq/rotor/internal/secret"
	"github.com/rotorhq/rotor/internal/testdeps"
)

var (
	sharedOnce    sync.Once
	sharedCluster *pgcluster.Cluster
	sharedErr     error
)

// cleanupTimeout bounds the work done in t.Cleanup, where the test's own
// context is already cancelled.
const cleanupTimeout = 30 * time.Second

// Main runs the tests and then stops the shared cluster, if one was
// started. Use it from TestMain; without it the cluster outlives the test
// binary.
func Main(m *testing.M) int {
	code := m.Run()
	for _, c := range []*pgcluster.Cluster{sharedCluster, shared17Cluster} {
		if c == nil {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		if err := c.Stop(ctx); err != nil {
			fmt.Fprintf(os.Stderr, "pgtest: %v\n", err)
			if code == 0 {
				code = 1
			}
		}
		cancel()
	}
	return code
}

var (
	shared17Once    sync.Once
	shared17Cluster *pgcluster.Cluster
	shared17Err     error
)

// Shared17 is Shared for what only PostgreSQL 17 and later have (login
// event triggers): the package's cluster of such a server — the system's
// own when it is new enough, else the chroot scripts/deps.sh --pg17 makes
// (pgcluster.FindServer). Missing, it skips or fails as Shared does.
func Shared17(t testing.TB) *pgcluster.Cluster {
	t.Helper()
	testdeps.SkipUnderQuick(t, "PostgreSQL 17")
	shared17Once.Do(func() {
		var srv pgcluster.Server
		if srv, shared17Err = pgcluster.FindServer(17); shared17Err == nil {
			shared17Cluster, shared17Err = pgcluster.Start(context.Background(), pgcluster.Options{Server: &srv})
		}
	})
	if shared17Err != nil {
		if errors.Is(shared17Err, pgcluster.ErrBinariesNotFound) {
			testdeps.Missing(t, "start a PostgreSQL 17 cluster", shared17Err, "scripts/deps.sh --pg17 makes one (Debian); elsewhere install PostgreSQL 17")
		}
		t.Fatalf("start a PostgreSQL 17 cluster: %v", shared17Err)
	}
	return shared17Cluster
}

// Shared returns the package's cluster, starting it on first use. Without
// PostgreSQL binaries the test is skipped or fails, as SkipOrFail says;
// under ROTOR_TEST_DEPS=skip it is skipped before trying.
func Shared(t testing.TB) *pgcluster.Cluster {
	t.Helper()
	testdeps.SkipUnderQuick(t, "PostgreSQL")
	sharedOnce.Do(func() {
		// Not the test's context: the cluster outlives the first test.
		sharedCluster, sharedErr = pgcluster.Start(context.Background(), pgcluster.Options{})
	})
	if sharedErr != nil {
		SkipOrFail(t, sharedErr)
	}
	return sharedCluster
}

// SkipOrFail ends a test that cannot get a cluster: a skip with the install
// hint when the binaries are missing and skipping is allowed, a failure
// otherwise. `make test` and CI do not allow it: a green run that skipped
// the database tests would prove nothing.
func SkipOrFail(t testing.TB, err error) {
	t.Helper()
	if !errors.Is(err, pgcluster.ErrBinariesNotFound) {
		t.Fatalf("start a PostgreSQL cluster: %v", err)
	}
	testdeps.Missing(t, "start a PostgreSQL cluster", err, "")
}

// NewDatabase creates an empty database on the shared cluster, dropped
// (with its sessions) when the test ends.
func NewDatabase(t testing.TB) (name string, adminURL secret.String) {
	t.Helper()
	return NewDatabaseOn(t, Shared(t))
}

// NewDatabaseOn is NewDatabase on cluster c.
func NewDatabaseOn(t testing.TB, c *pgcluster.Cluster) (name string, adminURL secret.String) {
	t.Helper()
	name = UniqueName(t, "db")
	ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
	defer cancel()
	if err := execAdmin(ctx, c, "postgres", "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		t.Fatalf("create database %s: %v", name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
		defer cancel()
		if err := execAdmin(ctx, c, "postgres", "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
			t.Errorf("drop database %s: %v", name, err)
		}
	})
	return name, c.AdminURL(name)
}

// NewRole creates a LOGIN role with password on c, sending only its SCRAM
// verifier. When the test ends the role's sessions are ended, what it owns
// or was granted is dropped, and the role is dropped.
func NewRole(t testing.TB, c *pgcluster.Cluster, name string, password secret.String) {
	t.Helper()
	verifier, err := secret.SCRAMVerifier(nil, password)
	if err != nil {
		t.Fatalf("compute SCRAM verifier for role %q: %v", name, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
	defer cancel()
	sql := "CREATE ROLE " + pgx.Identifier{name}.Sanitize() + " LOGIN PASSWORD " + quoteLiteral(verifier.Reveal())
	if err := execAdmin(ctx, c, "postgres", sql); err != nil {
		t.Fatalf("create role %q: %v", name, scrub(err, password, verifier))
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
		defer cancel()
		if err := DropRole(ctx, c, name); err != nil {
			t.Errorf("%v", err)
		}
	})
}

// RetryCatalogRace runs fn again (up to 10 times) while it fails with
// "tuple concurrently updated": tests running in parallel that grant,
// revoke and drop roles touch the same shared catalog rows (pg_authid,
// pg_auth_members), and PostgreSQL refuses the second of two concurrent
// updates of one row instead of waiting. Any other error is returned.
func RetryCatalogRace(ctx context.Context, fn func() error) error {
	var err error
	for i := 0; i < 10; i++ {
		if err = fn(); err == nil || !strings.Contains(err.Error(), "tuple concurrently updated") {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(time.Duration(i+1) * 20 * time.Millisecond):
		}
	}
	return err
}

// DropRole ends the role's sessions, drops what it owns and its grants in
// every database that records a dependency on it, then drops the role. A
// role that does not exist is not an error.
func DropRole(ctx context.Context, c *pgcluster.Cluster, name string) error {
	conn, err := pgx.Connect(ctx, c.AdminURL("postgres").Reveal())
	if err != nil {
		return fmt.Errorf("drop role %q: connect: %w", name, err)
	}
	defer conn.Close(ctx)
	var exists bool
	if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)`, name).Scan(&exists); err != nil {
		return fmt.Errorf("drop role %q: %w", name, err)
	}
	if !exists {
		return nil
	}
	ident := pgx.Identifier{name}.Sanitize()
	if _, err := conn.Exec(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1`, name); err != nil {
		return fmt.Errorf("drop role %q: end its sessions: %w", name, err)
	}
	rows, err := conn.Query(ctx, `
		SELECT DISTINCT d.datname FROM pg_shdepend s
		JOIN pg_roles r ON r.oid = s.refobjid AND s.refclassid = 'pg_authid'::regclass
		JOIN pg_database d ON d.oid = s.dbid
		WHERE r.rolname = $1 AND d.datname <> 'postgres' AND d.datallowconn`, name)
	if err != nil {
		return fmt.Errorf("drop role %q: find its databases: %w", name, err)
	}
	dbs, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return fmt.Errorf("drop role %q: find its databases: %w", name, err)
	}
	for _, db := range dbs {
		// Parallel tests clearing roles granted on the same object race on
		// its catalog row. The database may also be dropped by its own
		// test's cleanup meanwhile, which removes the dependencies too: a
		// failure only counts while the database is still there.
		err := RetryCatalogRace(ctx, func() error { return execAdmin(ctx, c, db, "DROP OWNED BY "+ident) })
		if err == nil {
			continue
		}
		var still bool
		if qerr := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)`, db).Scan(&still); qerr != nil {
			return fmt.Errorf("drop role %q: drop what it owns in %s: %w (and checking the database: %v)", name, db, err, qerr)
		}
		if still {
			return fmt.Errorf("drop role %q: drop what it owns in %s: %w", name, db, err)
		}
	}
	// DROP OWNED in any database also revokes grants on shared objects
	// (databases), and the loop above skipped "postgres" itself.
	if err := RetryCatalogRace(ctx, func() error { _, err := conn.Exec(ctx, "DROP OWNED BY "+ident); return err }); err != nil {
		return fmt.Errorf("drop role %q: drop what it owns: %w", name, err)
	}
	if err := RetryCatalogRace(ctx, func() error { _, err := conn.Exec(ctx, "DROP ROLE IF EXISTS "+ident); return err }); err != nil {
		return fmt.Errorf("drop role %q: %w", name, err)
	}
	return nil
}

var (
	nameCounter atomic.Uint64
	unsafeChars = regexp.MustCompile(`[^a-z0-9_]+`)
)

// UniqueName returns a lowercase identifier that starts with prefix (made
// identifier-safe) and is unique within the cluster's lifetime.
func UniqueName(t testing.TB, prefix string) string {
	t.Helper()
	prefix = unsafeChars.ReplaceAllString(strings.ToLower(prefix), "_")
	if prefix == "" || (prefix[0] >= '0' && prefix[0] <= '9') {
		prefix = "x" + prefix
	}
	var r [4]byte
	if _, err := rand.Read(r[:]); err != nil {
		t.Fatalf("unique name: %v", err)
	}
	suffix := fmt.Sprintf("_%d_%s", nameCounter.Add(1), hex.EncodeToString(r[:]))
	if max := 63 - len(suffix); len(prefix) > max {
		prefix = prefix[:max]
	}
	return prefix + suffix
}

// Connect opens a connection, closed when the test ends.
func Connect(ctx context.Context, t testing.TB, url secret.String) *pgx.Conn {
	t.Helper()
	conn, err := connect(ctx, url)
	if err != nil {
		t.Fatalf("%v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
		defer cancel()
		_ = conn.Close(ctx)
	})
	return conn
}

// CanLogin connects, runs SELECT 1 and disconnects. The error never
// contains the password.
func CanLogin(ctx context.Context, url secret.String) error {
	conn, err := connect(ctx, url)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var one int
	if err := conn.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil {
		return fmt.Errorf("SELECT 1 after login: %w", err)
	}
	return nil
}

func connect(ctx context.Context, url secret.String) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig(url.Reveal())
	if err != nil {
		// pgx's own message may quote the unparsable URL.
		return nil, errors.New("connect: the connection string does not parse")
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect as %q to %q: %w", cfg.User, cfg.Database, scrub(err, secret.New(cfg.Password)))
	}
	return conn, nil
}

func execAdmin(ctx context.Context, c *pgcluster.Cluster, database, sql string) error {
	conn, err := pgx.Connect(ctx, c.AdminURL(database).Reveal())
	if err != nil {
		return fmt.Errorf("connect as superuser to %q: %w", database, err)
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, sql)
	return err
}

// quoteLiteral quotes s as an SQL string literal whatever the server's
// standard_conforming_strings, the way PostgreSQL's quote_literal does.
func quoteLiteral(s string) string {
	q := "'" + strings.ReplaceAll(s, "'", "''") + "'"
	if strings.Contains(s, `\`) {
		return "E" + strings.ReplaceAll(q, `\`, `\\`)
	}
	return q
}

// scrub hides secrets that a driver error might echo.
func scrub(err error, secrets ...secret.String) error {
	msg := err.Error()
	changed := false
	for _, s := range secrets {
		if v := s.Reveal(); v != "" && strings.Contains(msg, v) {
			msg = strings.ReplaceAll(msg, v, secret.Redacted)
			changed = true
		}
	}
	if !changed {
		return err
	}
	return errors.New(msg)
}

// NewDualRoles creates the two login roles of a dual credential,
// prefix_b and prefix_g, each with a random password nobody needs (the
// first rotation sets its own). The group setup-roles makes of them,
// prefix_grp, is dropped when the test ends, as they are.
func NewDualRoles(t testing.TB, c *pgcluster.Cluster, prefix string) (roles []string, group string) {
	t.Helper()
	roles = []string{prefix + "_b", prefix + "_g"}
	for _, r := range roles {
		pw, err := secret.Generate(nil, secret.DefaultPolicy())
		if err != nil {
			t.Fatalf("password for role %q: %v", r, err)
		}
		NewRole(t, c, r, pw)
	}
	group = prefix + "_grp"
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
		defer cancel()
		if err := DropRole(ctx, c, group); err != nil {
			t.Errorf("%v", err)
		}
	})
	return roles, group
}
