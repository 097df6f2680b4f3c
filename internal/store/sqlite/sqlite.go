// Package sqlite is rotor's embedded store: one SQLite file, pure Go
// (modernc.org/sqlite), shared safely by several rotor processes.
//
// Durability: the file runs in WAL mode with synchronous=FULL, so a write
// whose call has returned survives a SIGKILL or power loss; a deferred
// one (store.AppendStepParams.Deferred and the like) survives a SIGKILL,
// and a power loss once a durable write has followed it. Concurrency:
// every write transaction starts with BEGIN IMMEDIATE, so two processes that
// read-then-write (leases, version sequence numbers, finishing a rotation)
// are serialized by SQLite's write lock instead of interleaving, and they
// wait for each other up to busyTimeout instead of failing; within one
// process, writes that wait at the same time commit together (group
// commit, groupcommit.go).
package sqlite

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/rotorhq/rotor/internal/store"
)

// busyTimeout bounds how long a call waits for another process's write
// transaction. Rotor's transactions are a handful of rows, so 10s means
// something is stuck rather than busy.
const busyTimeout = 10 * time.Second

// Store is a store.Store backed by one SQLite file.
type Store struct {
	db   *sql.DB
	path string
	// wmu queues this process's writers in Go. Without it, goroutines
	// writing at once (targets recording deliveries in parallel) contend
	// through SQLite's busy handler, which sleeps and retries: 200
	// concurrent writes took seconds instead of milliseconds. Other
	// processes are still kept apart by SQLite's own locking.
	wmu sync.Mutex
	// queue holds the writes waiting for wmu; whoever takes wmu commits
	// all of them in one transaction (groupcommit.go). Guarded by qmu.
	qmu   sync.Mutex
	queue []*pendingWrite
	// wconn is the connection every write of this process runs on, taken
	// out of the pool at the first write (nil until then, or after an
	// error that may have broken it), and wlow says it is set to
	// synchronous=NORMAL, for deferred writes. One writer keeps its
	// page cache valid from one write to the next, and a run of deferred
	// writes changes the setting once instead of twice each. Guarded by
	// wmu; the connection never goes back to the pool, so no other use
	// can find it lowered.
	wconn *sql.Conn
	wlow  bool
	// wsync are wconn's two PRAGMA synchronous statements, FULL and
	// NORMAL, prepared once: a batch switches between them a few times per
	// rotation, and parsing the PRAGMA each time cost more than running it.
	wsync [2]*sql.Stmt
	// stmts caches prepared statements, reads and writes (stmtcache.go).
	stmts stmtCache
	// keep holds a scratch store's database in memory (OpenScratch): it
	// lives as long as one connection to it is open. Nil for a file; a
	// scratch store refuses every write.
	keep      *sql.Conn
	closeOnce sync.Once
	closeErr  error
}

// Open opens (creating if needed) the state file at path and brings its
// schema up to date. A new file and its directory are private (0600, 0700);
// an existing file that group or others can access is refused rather than
// fixed, because it may already have leaked and the operator should know.
func Open(ctx context.Context, path string) (*Store, error) {
	if err := prepareFile(path); err != nil {
		return nil, err
	}

	db, err := sql.Open("sqlite", dsn(path))
	if err != nil {
		return nil, fmt.Errorf("open state file %s: %w", path, err)
	}
	// Keep the connections a batch uses open between uses: database/sql
	// keeps two idle by default and closes the rest, and a new SQLite
	// connection reads the schema and prepares every statement again.
	db.SetMaxIdleConns(maxIdleConns)
	s := &Store{db: db, path: path}
	if err := s.init(ctx); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("open state file %s: %w", path, err)
	}
	return s, nil
}

func prepareFile(path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("create state directory: %w", err)
	}
	// O_EXCL so that a file created by a racing process is checked below
	// like any existing one.
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err == nil {
		return f.Close()
	}
	if !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("create state file: %w", err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("check state file: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("state file %s is not a regular file", path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return fmt.Errorf("state file %s is readable by others (mode %04o); chmod 600 %s", path, perm, path)
	}
	return nil
}

// maxIdleConns is how many connections stay open between uses: enough for
// a batch's parallel rotations and the reads beside them.
const maxIdleConns = 16

// dsn sets the per-connection pragmas: database/sql opens several
// connections and each must be durable and patient on its own.
func dsn(path string) string {
	q := url.Values{}
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", busyTimeout.Milliseconds()))
	q.Add("_pragma", "foreign_keys(1)")
	q.Add("_pragma", "synchronous(FULL)")
	// SQLite's default page cache is 2 MiB per connection, held in rotor's
	// own memory. The state file's reads are index lookups of a few pages
	// and the kernel's page cache holds the file anyway: 512 KiB per
	// connection took 2.7 MiB off a 1,000-credential batch's peak RSS and
	// cost no measurable time (docs/benchmarks.md, seventh round).
	q.Add("_pragma", "cache_size(-512)")
	// Read-only transactions (sql.TxOptions.ReadOnly) still use a plain,
	// deferred BEGIN.
	q.Set("_txlock", "immediate")
	return "file:" + (&url.URL{Path: path}).EscapedPath() + "?" + q.Encode()
}

// LimitReaders caps the connections this store opens at n for reads
// beside the one write connection. SQLite runs one writer at a time and a
// read takes microseconds, so past two readers each connection only adds
// memory: its own page cache, schema and prepared statements (a
// 1,000-credential batch at --parallel 8 peaked about 1 MiB lower with
// two; docs/benchmarks.md, tenth round).
//
// A cap is safe only where nothing holds a pool connection while it waits
// for another. In this package that holds: every read closes its rows
// before it returns, writes run on the write connection, and a statement
// is prepared without holding a connection. A process that hands the pool
// to other code (rotor serve's job queue, through DB) must not cap it.
func (s *Store) LimitReaders(n int) {
	s.db.SetMaxOpenConns(max(n, 1) + 1)
}

func (s *Store) init(ctx context.Context) error {
	// journal_mode is a property of the file, not the connection, so it is
	// set once here rather than in the DSN for every new connection.
	mode, err := enableWAL(ctx, s.db)
	if err != nil {
		return fmt.Errorf("enable WAL: %w", err)
	}
	if !strings.EqualFold(mode, "wal") {
		return fmt.Errorf("enable WAL: journal mode is %q (does the filesystem support shared memory?)", mode)
	}
	return migrate(ctx, s.db)
}

// enableWAL switches the file to WAL. Two processes opening a new file at
// once can both try to switch it; SQLite then answers SQLITE_BUSY at once
// instead of waiting out busy_timeout, so the switch is tried again, for
// as long as busy_timeout would have waited.
func enableWAL(ctx context.Context, db *sql.DB) (string, error) {
	deadline := time.Now().Add(busyTimeout)
	for {
		var mode string
		err := db.QueryRowContext(ctx, "PRAGMA journal_mode = WAL").Scan(&mode)
		var coded interface{ Code() int }
		if err == nil || !errors.As(err, &coded) || coded.Code()&0xff != sqliteBusy || time.Now().After(deadline) {
			return mode, err
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// sqliteBusy is SQLITE_BUSY, the primary result code a locked file gives.
const sqliteBusy = 5

// Close releases the store. Calling it again returns the first result.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.wmu.Lock()
		s.dropWriter()
		s.wmu.Unlock()
		s.closeStmts()
		if s.keep != nil {
			s.closeErr = s.keep.Close()
		}
		s.closeErr = errors.Join(s.closeErr, s.db.Close())
	})
	return s.closeErr
}

// write runs fn in one BEGIN IMMEDIATE transaction (see _txlock in dsn)
// on the write connection:
// the write lock is taken up front, so whatever fn reads cannot change
// before it writes. It returns once the commit is on disk.
func (s *Store) write(ctx context.Context, fn func(tx *wtx) error) error {
	return s.writeAs(ctx, false, fn)
}

// writeAs is write, deferred or not ("Deferred writes" in package store).
// A deferred transaction commits with synchronous=NORMAL: its WAL frames
// are written but not synced, and the next FULL commit's sync of the WAL
// covers them. Writes that wait for one another are committed together
// (groupcommit.go).
func (s *Store) writeAs(ctx context.Context, deferred bool, fn func(tx *wtx) error) error {
	if s.keep != nil {
		return errScratchWrite
	}
	return s.enqueue(&pendingWrite{ctx: ctx, deferred: deferred, fn: fn})
}

// commitOne runs one write in a transaction of its own. The caller holds
// wmu.
func (s *Store) commitOne(ctx context.Context, deferred bool, fn func(tx *wtx) error) (err error) {
	if err := ctx.Err(); err != nil {
		return err
	}
	// The transaction runs without ctx's cancellation and ends with it by
	// hand, before COMMIT (wtx).
	run := stmtCtx(ctx)
	conn, err := s.writer(run, deferred)
	if err != nil {
		return err
	}
	defer func() {
		if errors.Is(err, driver.ErrBadConn) || errors.Is(err, sql.ErrConnDone) {
			s.dropWriter()
		}
	}()
	tx, err := conn.BeginTx(run, nil)
	if err != nil {
		return mapErr(err)
	}
	defer func() { _ = tx.Rollback() }()
	if err := fn(&wtx{Tx: tx, s: s}); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err // rolled back above
	}
	return mapErr(tx.Commit())
}

// writer is the write connection, set to synchronous=NORMAL for a
// deferred write and FULL for any other (SQLite refuses to change that
// inside a transaction). The caller holds wmu.
func (s *Store) writer(ctx context.Context, deferred bool) (*sql.Conn, error) {
	if s.wconn == nil {
		conn, err := s.db.Conn(ctx)
		if err != nil {
			return nil, mapErr(err)
		}
		s.wconn, s.wlow = conn, false // the dsn sets FULL
	}
	if s.wlow == deferred {
		return s.wconn, nil
	}
	i := 0
	if deferred {
		i = 1
	}
	if s.wsync[i] == nil {
		st, err := s.wconn.PrepareContext(ctx, [...]string{"PRAGMA synchronous = FULL", "PRAGMA synchronous = NORMAL"}[i])
		if err != nil {
			s.dropWriter()
			return nil, mapErr(err)
		}
		s.wsync[i] = st
	}
	if _, err := s.wsync[i].ExecContext(ctx); err != nil {
		// Its setting is now unknown: a durable write must not find it.
		s.dropWriter()
		return nil, mapErr(err)
	}
	s.wlow = deferred
	return s.wconn, nil
}

// dropWriter closes the write connection instead of returning it to the
// pool, where a write meant to be durable could find it lowered:
// ErrBadConn is how database/sql is told to close it. The caller holds
// wmu.
func (s *Store) dropWriter() {
	if s.wconn == nil {
		return
	}
	for i, st := range s.wsync {
		if st != nil {
			// Closing a statement of a connection about to close fails
			// only if it was closed already.
			_ = st.Close()
			s.wsync[i] = nil
		}
	}
	_ = s.wconn.Raw(func(any) error { return driver.ErrBadConn })
	// Close's one error is a second Close.
	_ = s.wconn.Close()
	s.wconn, s.wlow = nil, false
}

// mapErr turns SQLite's answers into the store's sentinels, keeping the
// original error in the chain for diagnostics. Constraint messages name
// tables and columns only, never values, so they are safe to surface.
func mapErr(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, sql.ErrNoRows) {
		return store.ErrNotFound
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch se.Code() {
		case sqlite3.SQLITE_CONSTRAINT_UNIQUE, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY:
			return fmt.Errorf("%w: %w", err, store.ErrConflict)
		case sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY:
			// The only references are to rotations and versions that the
			// caller named: a dangling one means the caller's id is unknown.
			return fmt.Errorf("%w: %w", err, store.ErrNotFound)
		}
	}
	return err
}

// querier is what *sql.DB and *sql.Tx have in common, so reads can run
// inside or outside a write transaction.
type querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// rowScanner is what *sql.Row and *sql.Rows have in common.
type rowScanner interface {
	Scan(dest ...any) error
}

// nanoTime is a time argument stored as UTC unix nanoseconds, the zero
// time as NULL, so NOT NULL columns reject a missing clock instead of
// storing year 1. Times int64 nanoseconds cannot hold are refused rather
// than wrapped around.
type nanoTime time.Time

var (
	minNanoTime = time.Unix(0, math.MinInt64)
	maxNanoTime = time.Unix(0, math.MaxInt64)
)

func (t nanoTime) Value() (driver.Value, error) {
	tt := time.Time(t)
	if tt.IsZero() {
		return nil, nil
	}
	if tt.Before(minNanoTime) || tt.After(maxNanoTime) {
		return nil, fmt.Errorf("time %s is outside the range the store holds (%d to %d)", tt, minNanoTime.Year(), maxNanoTime.Year())
	}
	return tt.UnixNano(), nil
}

func timeArg(t time.Time) nanoTime { return nanoTime(t) }

// storedTime is t as the store gives it back: to the nanosecond, in UTC.
func storedTime(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return time.Unix(0, t.UnixNano()).UTC()
}

func timeVal(n sql.NullInt64) time.Time {
	if !n.Valid {
		return time.Time{}
	}
	return time.Unix(0, n.Int64).UTC()
}

// idArg stores the "none" id 0 as NULL so foreign keys ignore it.
func idArg(id int64) sql.NullInt64 {
	return sql.NullInt64{Int64: id, Valid: id != 0}
}

// limitClause renders a LIMIT for n > 0; 0 (or less) means no limit.
func limitClause(n int) string {
	if n <= 0 {
		return ""
	}
	return fmt.Sprintf(" LIMIT %d", n)
}

var _ store.Store = (*Store)(nil)
