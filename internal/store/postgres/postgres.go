// Package postgres is rotor's shared store: its tables live in one schema
// (default "rotor") of a PostgreSQL database, so every machine that runs
// rotor with the same URL (CI jobs, CronJobs, teammates) sees one journal
// and one set of leases.
//
// Concurrency: every read-then-write runs in one transaction that first
// locks what it depends on (the lease row, the rotation row, or a
// transaction advisory lock for a credential's version numbers), so two
// processes are serialized by PostgreSQL rather than interleaving.
package postgres

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/rotorhq/rotor/internal/secret"
	"github.com/rotorhq/rotor/internal/store"
)

// DefaultSchema is where the tables go unless Options.Schema says otherwise.
const DefaultSchema = "rotor"

// Options say which database and schema to use.
type Options struct {
	// URL is a postgres:// or postgresql:// URL; TLS parameters (sslmode,
	// sslrootcert, ...) are honoured as libpq does. A password absent from
	// the URL is taken from PGPASSWORD or ~/.pgpass.
	URL secret.String
	// Schema holds rotor's tables; DefaultSchema when empty. It is created
	// on first use when missing.
	Schema string
}

// Store is a store.Store backed by a PostgreSQL schema.
type Store struct {
	pool *pgxpool.Pool
	// schema is the schema's name quoted as an identifier, for SQL text;
	// schemaName the name itself.
	schema     string
	schemaName string
	closeOnce  sync.Once
}

// Open connects, creates the schema when missing and brings it up to date.
// Errors never contain the URL's password.
func Open(ctx context.Context, opts Options) (*Store, error) {
	schema := opts.Schema
	if schema == "" {
		schema = DefaultSchema
	}
	cfg, err := pgxpool.ParseConfig(opts.URL.Reveal())
	if err != nil {
		// pgx's own message may quote the unparsable URL.
		return nil, errors.New("open PostgreSQL store: the state URL does not parse as a PostgreSQL connection string")
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open PostgreSQL store: %w", scrub(err, opts.URL, cfg.ConnConfig.Password))
	}
	s := &Store{pool: pool, schema: pgx.Identifier{schema}.Sanitize(), schemaName: schema}
	if err := migrate(ctx, pool, schema); err != nil {
		pool.Close()
		return nil, fmt.Errorf("open PostgreSQL store (%s@%s/%s, schema %s): %w",
			cfg.ConnConfig.User, cfg.ConnConfig.Host, cfg.ConnConfig.Database, schema, scrub(err, opts.URL, cfg.ConnConfig.Password))
	}
	return s, nil
}

func scrub(err error, url secret.String, password string) error {
	return secret.Scrub(err, url, secret.New(password))
}

// Close releases the pool. Calling it again does nothing.
func (s *Store) Close() error {
	s.closeOnce.Do(s.pool.Close)
	return nil
}

// sql qualifies the {schema} marker in q with the store's schema. Names
// are qualified rather than set through search_path so that the store
// works behind PgBouncer in transaction mode, which refuses search_path as
// a startup parameter.
func (s *Store) sql(q string) string { return strings.ReplaceAll(q, "{schema}", s.schema) }

// write runs fn in one transaction, committed when fn succeeds. It
// returns once the server has flushed the commit to its WAL.
func (s *Store) write(ctx context.Context, fn func(tx pgx.Tx) error) error {
	return s.writeAs(ctx, false, fn)
}

// deferredBegin opens a transaction whose commit does not wait for the WAL
// flush ("Deferred writes" in package store): the next synchronous commit
// flushes the WAL past it. It is one simple-protocol message, so it costs
// no round trip more than BEGIN, and SET LOCAL ends with the transaction,
// behind PgBouncer in transaction mode too.
const deferredBegin = "BEGIN; SET LOCAL synchronous_commit = off"

// single runs fn, a write of one statement, on the pool: as it is, in the
// statement's own implicit transaction, or, deferred, in a transaction of
// its own, which SET LOCAL needs.
func (s *Store) single(ctx context.Context, deferred bool, fn func(q querier) error) error {
	if !deferred {
		return fn(s.pool)
	}
	return s.writeAs(ctx, true, func(tx pgx.Tx) error { return fn(tx) })
}

// writeAs is write, deferred or not.
func (s *Store) writeAs(ctx context.Context, deferred bool, fn func(tx pgx.Tx) error) error {
	var opts pgx.TxOptions
	if deferred {
		opts.BeginQuery = deferredBegin
	}
	tx, err := s.pool.BeginTx(ctx, opts)
	if err != nil {
		return mapErr(err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	if err := fn(tx); err != nil {
		return err
	}
	return mapErr(tx.Commit(ctx))
}

// mapErr turns PostgreSQL's answers into the store's sentinels, keeping
// the original in the chain. Constraint errors name constraints and
// columns; their Detail (which quotes values) is not part of Error().
func mapErr(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return store.ErrNotFound
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch pe.Code {
		case "23505": // unique_violation
			return fmt.Errorf("%w: %w", err, store.ErrConflict)
		case "23503": // foreign_key_violation: the caller named an unknown id
			return fmt.Errorf("%w: %w", err, store.ErrNotFound)
		}
	}
	return err
}

// querier is what the pool and a transaction have in common.
type querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// rowScanner is what pgx.Row and pgx.Rows have in common.
type rowScanner interface {
	Scan(dest ...any) error
}

// nanoTime is a time argument stored as UTC unix nanoseconds, the zero
// time as NULL, as in the sqlite driver.
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

func timeVal(n *int64) time.Time {
	if n == nil {
		return time.Time{}
	}
	return time.Unix(0, *n).UTC()
}

// idArg stores the "none" id 0 as NULL.
func idArg(id int64) *int64 {
	if id == 0 {
		return nil
	}
	return &id
}

func idVal(n *int64) int64 {
	if n == nil {
		return 0
	}
	return *n
}

func limitClause(n int) string {
	if n <= 0 {
		return ""
	}
	return fmt.Sprintf(" LIMIT %d", n)
}

func whereClause(conds []string) string {
	if len(conds) == 0 {
		return ""
	}
	return " WHERE " + strings.Join(conds, " AND ")
}

// collect scans every row with scan and closes rows.
func collect[T any](rows pgx.Rows, scan func(rowScanner) (*T, error)) ([]*T, error) {
	defer rows.Close()
	var out []*T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, mapErr(err)
	}
	return out, nil
}

var _ store.Store = (*Store)(nil)
