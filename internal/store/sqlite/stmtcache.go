package sqlite

import (
	"context"
	"database/sql"
	"sync"
)

// maxStmts bounds the statement cache. The read queries are built from a
// few optional filters and a LIMIT, so there are a few dozen distinct
// texts; anything past the bound is simply not cached.
const maxStmts = 256

// stmtCache holds the statements prepared once per Store: the reads, and
// the writes of every transaction (wtx).
//
// Why: database/sql hands every QueryContext with a query text to the
// driver, and modernc.org/sqlite parses and plans it anew each time. On
// the per-credential reads (`rotor plan` and `rotor status` over 1,000
// credentials read the versions of each, twice) the SQL parser was about
// half the cost of a read; in `rotor rotate --all` parsing the journal's
// writes was a quarter of rotor's CPU. A *sql.Stmt prepared on the DB is prepared
// again lazily on each pooled connection it runs on, and SQLite
// re-prepares a statement by itself after a schema change, so caching
// changes no result.
type stmtCache struct {
	mu    sync.Mutex
	stmts map[string]*sql.Stmt
}

// query runs a read through a cached prepared statement.
//
// A read that starts runs to its end: a context that has ended stops it
// before it starts (and a loop of reads at the next one), but not the
// statement itself. Handing the context down would cost every read two
// goroutines, database/sql's to close the rows and the SQLite driver's
// to interrupt the statement, for statements that take microseconds:
// about 3 % of a batch's CPU.
func (s *Store) query(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	st, err := s.prepared(ctx, q)
	if err != nil {
		return nil, err
	}
	if st == nil {
		return s.db.QueryContext(stmtCtx(ctx), q, args...)
	}
	return st.QueryContext(stmtCtx(ctx), args...)
}

// reads is the pool seen through the statement cache, for the helpers a
// read shares with write transactions (getLease, getVersion): the engine
// checks its lease before every action, and parsing that one SELECT anew
// each time was a tenth of a batch's CPU in the engine.
type reads struct{ s *Store }

func (r reads) ExecContext(ctx context.Context, q string, args ...any) (sql.Result, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	st, err := r.s.prepared(ctx, q)
	if err != nil {
		return nil, err
	}
	if st == nil {
		return r.s.db.ExecContext(stmtCtx(ctx), q, args...)
	}
	return st.ExecContext(stmtCtx(ctx), args...)
}

func (r reads) QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	return r.s.query(ctx, q, args...)
}

// QueryRowContext is QueryContext for one row; an error preparing the
// statement surfaces from Scan, as sql.DB's own does.
func (r reads) QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row {
	if ctx.Err() != nil {
		// database/sql's own row, which carries the context's error.
		return r.s.db.QueryRowContext(ctx, q, args...)
	}
	st, err := r.s.prepared(ctx, q)
	if err != nil || st == nil {
		return r.s.db.QueryRowContext(stmtCtx(ctx), q, args...)
	}
	return st.QueryRowContext(stmtCtx(ctx), args...)
}

// wtx is a write transaction whose statements come from the cache:
// sql.Tx.StmtContext reuses a statement already prepared on the
// transaction's connection, so each text is parsed once per connection.
//
// Its statements, and the transaction's BEGIN and COMMIT, run without
// the caller's cancellation (stmtCtx). The write still ends with the
// context: commitOne checks it before BEGIN and again before COMMIT, and
// rolls back a write whose context ended in between. What is left out is
// the SQLite driver's own interruption of each statement, which costs a
// goroutine and a progress handler per statement of every journal write
// to stop statements that take microseconds. (database/sql still watches
// each transaction with a goroutine of its own, whatever the context;
// doing without sql.Tx measured no faster, docs/benchmarks.md, fifteenth
// round.) BEGIN IMMEDIATE's wait for another process's write lock is
// bounded by the busy timeout (10 s), not by the context.
type wtx struct {
	*sql.Tx
	s *Store
}

// stmtCtx is ctx for one statement of a write: its values, not its
// cancellation (see wtx).
func stmtCtx(ctx context.Context) context.Context { return context.WithoutCancel(ctx) }

func (tx *wtx) ExecContext(ctx context.Context, q string, args ...any) (sql.Result, error) {
	st, err := tx.s.prepared(ctx, q)
	if err != nil {
		return nil, err
	}
	if st == nil {
		return tx.Tx.ExecContext(stmtCtx(ctx), q, args...)
	}
	return tx.StmtContext(ctx, st).ExecContext(stmtCtx(ctx), args...)
}

func (tx *wtx) QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	st, err := tx.s.prepared(ctx, q)
	if err != nil {
		return nil, err
	}
	if st == nil {
		return tx.Tx.QueryContext(stmtCtx(ctx), q, args...)
	}
	return tx.StmtContext(ctx, st).QueryContext(stmtCtx(ctx), args...)
}

// QueryRowContext is QueryContext for one row; an error preparing the
// statement surfaces from Scan, as sql.Tx's own does.
func (tx *wtx) QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row {
	st, err := tx.s.prepared(ctx, q)
	if err != nil || st == nil {
		return tx.Tx.QueryRowContext(stmtCtx(ctx), q, args...)
	}
	return tx.StmtContext(ctx, st).QueryRowContext(stmtCtx(ctx), args...)
}

// prepared returns q's cached statement, preparing it on first use; nil
// when the cache is full.
func (s *Store) prepared(ctx context.Context, q string) (*sql.Stmt, error) {
	c := &s.stmts
	c.mu.Lock()
	defer c.mu.Unlock()
	if st, ok := c.stmts[q]; ok {
		return st, nil
	}
	if len(c.stmts) >= maxStmts {
		return nil, nil
	}
	st, err := s.db.PrepareContext(ctx, q)
	if err != nil {
		return nil, err
	}
	if c.stmts == nil {
		c.stmts = map[string]*sql.Stmt{}
	}
	c.stmts[q] = st
	return st, nil
}

// closeStmts closes every cached statement (before the DB is closed).
func (s *Store) closeStmts() {
	c := &s.stmts
	c.mu.Lock()
	defer c.mu.Unlock()
	for q, st := range c.stmts {
		_ = st.Close()
		delete(c.stmts, q)
	}
}
