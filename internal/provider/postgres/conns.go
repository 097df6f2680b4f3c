package postgres

import (
	"context"
	"errors"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/rotorhq/rotor/internal/secret"
)

// conns is a small pool of admin connections. (pgxpool would do, but its
// dependency puddle is not in go.mod yet.) A rotation makes a handful of
// calls, so the pool only has to bound concurrency and reuse connections
// between calls.
type conns struct {
	cfg *pgx.ConnConfig
	sem chan struct{}

	mu     sync.Mutex
	idle   []idleConn
	closed bool
	// passwords, when set, replace cfg's password: new connections try
	// them in order (a self-managed admin role, see selfmanage.go).
	passwords []secret.String
}

var errClosed = errors.New("postgres provider: used after Close; build a new provider")

// idleConn is a pooled connection and when it was last given back.
type idleConn struct {
	conn *pgx.Conn
	at   time.Time
}

// pingAfter is how long a connection may sit idle before acquire pings
// it. A batch reuses a connection within milliseconds; pinging it each
// time was a round trip per provider call for nothing, while a connection
// idle for longer may have been cut (a restart, an idle timeout). A cut
// that the ping would have caught in between is still handled: with runs
// the idempotent operation again on a fresh connection.
const pingAfter = time.Second

func newConns(cfg *pgx.ConnConfig, size int) *conns {
	return &conns{cfg: cfg, sem: make(chan struct{}, size)}
}

// with runs fn on a connection that is idle and alive, and returns it to
// the pool unless fn left it broken or inside a transaction.
//
// Every provider operation is idempotent, so fn is run again (up to
// transientAttempts times, on a fresh connection) when the server ended
// the session under it (an administrator's terminate, a Neon API reset
// dropping compute connections, a restart) or a concurrent catalog update
// made it fail: a rotation should not stop over either.
func (c *conns) with(ctx context.Context, fn func(*pgx.Conn) error) error {
	select {
	case c.sem <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-c.sem }()
	var err error
	for attempt := 0; attempt < transientAttempts; attempt++ {
		var conn *pgx.Conn
		conn, err = c.acquire(ctx)
		if err != nil {
			return err
		}
		err = fn(conn)
		c.release(conn)
		if err == nil || !transient(err) || ctx.Err() != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(time.Duration(attempt+1) * 50 * time.Millisecond):
		}
	}
	return err
}

const transientAttempts = 3

// transient reports whether err is worth running an idempotent operation
// again for: the session was ended by the server, or PostgreSQL reported a
// concurrent update of the same catalog row, a serialization failure or a
// deadlock.
func transient(err error) bool {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code {
		case "57P01", "57P02", "57P03", "40001", "40P01":
			return true
		case "XX000":
			return strings.Contains(pgErr.Message, "tuple concurrently updated")
		}
		return false
	}
	return pgconn.SafeToRetry(err) || errors.Is(err, io.ErrUnexpectedEOF)
}

// fresh runs fn once on a connection of its own, made for it and closed
// after it, so that nothing fn leaves in the session (settings, the last
// statement pg_stat_activity shows) outlives the call.
func (c *conns) fresh(ctx context.Context, fn func(*pgx.Conn) error) error {
	select {
	case c.sem <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-c.sem }()
	c.mu.Lock()
	closed, pws := c.closed, c.passwords
	c.mu.Unlock()
	if closed {
		return errClosed
	}
	conn, err := c.connect(ctx, pws)
	if err != nil {
		return err
	}
	defer closeConn(conn)
	return fn(conn)
}

func (c *conns) acquire(ctx context.Context) (*pgx.Conn, error) {
	for {
		c.mu.Lock()
		if c.closed {
			c.mu.Unlock()
			return nil, errClosed
		}
		if len(c.idle) == 0 {
			pws := c.passwords
			c.mu.Unlock()
			return c.connect(ctx, pws)
		}
		ic := c.idle[len(c.idle)-1]
		c.idle = c.idle[:len(c.idle)-1]
		c.mu.Unlock()
		conn := ic.conn
		// A server restart or an idle timeout may have cut the connection
		// since its last use (pingAfter).
		if time.Since(ic.at) < pingAfter || conn.Ping(ctx) == nil {
			return conn, nil
		}
		closeConn(conn)
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
	}
}

func (c *conns) release(conn *pgx.Conn) {
	if conn.IsClosed() || conn.PgConn().IsBusy() || conn.PgConn().TxStatus() != 'I' {
		closeConn(conn)
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		closeConn(conn)
		return
	}
	c.idle = append(c.idle, idleConn{conn: conn, at: time.Now()})
}

func (c *conns) close() {
	c.mu.Lock()
	idle := c.idle
	c.idle, c.closed = nil, true
	c.mu.Unlock()
	for _, ic := range idle {
		closeConn(ic.conn)
	}
}

func closeConn(conn *pgx.Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = conn.Close(ctx)
}
