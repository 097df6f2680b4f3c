package sqlite

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/rotorhq/rotor/internal/store"
)

// The durability and locking guarantees rest on settings no public method
// reveals, so check them on the pool's own connections.
func TestConnectionSettings(t *testing.T) {
	t.Parallel()
	s, err := Open(t.Context(), filepath.Join(t.TempDir(), "state.db"))
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, s.Close()) })

	// Two connections at once, so the second is a fresh one from the pool
	// and not the one Open configured.
	for range 2 {
		conn, err := s.db.Conn(t.Context())
		require.NoError(t, err)
		defer func() { require.NoError(t, conn.Close()) }()

		for pragma, want := range map[string]string{
			"journal_mode": "wal",
			"synchronous":  "2", // FULL
			"foreign_keys": "1",
			"busy_timeout": "10000",
			"cache_size":   "-512", // KiB
		} {
			var got string
			require.NoError(t, conn.QueryRowContext(t.Context(), "PRAGMA "+pragma).Scan(&got))
			require.Equal(t, want, got, pragma)
		}
	}
}

// A write transaction must hold the write lock from BEGIN on, or a
// read-then-write (a lease check) could interleave with another process's.
func TestWriteTransactionsBeginImmediate(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "state.db")
	s, err := Open(t.Context(), path)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, s.Close()) })

	tx, err := s.db.BeginTx(t.Context(), nil)
	require.NoError(t, err)
	defer func() { _ = tx.Rollback() }()

	// An impatient second process: no busy timeout, so it fails at once
	// if the lock is taken.
	other, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(0)&_txlock=immediate")
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, other.Close()) })
	_, err = other.BeginTx(t.Context(), nil)
	require.ErrorContains(t, err, "locked")
}

// A deferred write commits with synchronous=NORMAL, a durable one with
// FULL, on the one write connection; no connection the pool hands out is
// ever lowered, so a read-then-write elsewhere cannot commit undurably. A
// write connection that may be broken is dropped, not reused. Another
// process sees the deferred write at once.
func TestDeferredWritesLowerOnlyTheirOwnTransaction(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "state.db")
	s, err := Open(t.Context(), path)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, s.Close()) })
	// The write connection plus one more: the pool must hand out the
	// other, FULL, while the writer stays pinned and lowered.
	s.db.SetMaxOpenConns(2)
	requirePoolFull := func(msg string) {
		t.Helper()
		conn, err := s.db.Conn(t.Context())
		require.NoError(t, err)
		defer func() { require.NoError(t, conn.Close()) }()
		var got string
		require.NoError(t, conn.QueryRowContext(t.Context(), "PRAGMA synchronous").Scan(&got))
		require.Equal(t, "2", got, msg)
	}

	level := func(deferred bool) string {
		var got string
		require.NoError(t, s.writeAs(t.Context(), deferred, func(tx *wtx) error {
			return tx.QueryRowContext(t.Context(), "PRAGMA synchronous").Scan(&got)
		}))
		return got
	}
	require.Equal(t, "1", level(true), "NORMAL inside a deferred write")
	writer := s.wconn
	require.Equal(t, "2", level(false), "FULL inside a durable write, on the same connection")
	require.Same(t, writer, s.wconn, "one write connection")
	require.Equal(t, "1", level(true))
	require.Equal(t, "1", level(true), "a run of deferred writes")
	requirePoolFull("the pool's connection is never the lowered writer")
	require.Equal(t, "2", level(false), "FULL again for a durable write after a run of deferred ones")

	// A deferred write that fails leaves the writer in a known state: the
	// next durable write still runs FULL.
	boom := errors.New("boom")
	require.ErrorIs(t, s.writeAs(t.Context(), true, func(*wtx) error { return boom }), boom)
	require.Equal(t, "2", level(false), "FULL after a deferred write that failed")
	requirePoolFull("FULL in the pool after a deferred write that failed")

	// A write that reports a broken connection drops the writer: its
	// setting is unknown, so the next write takes a fresh one.
	require.Error(t, s.writeAs(t.Context(), true, func(*wtx) error { return driver.ErrBadConn }))
	require.Nil(t, s.wconn, "a possibly broken writer is not kept")
	require.Equal(t, "2", level(false), "a fresh writer starts FULL")
	requirePoolFull("the dropped writer did not go back to the pool lowered")

	_, err = s.AppendAudit(t.Context(), store.AppendAuditParams{Credential: "app-db", Event: "note", Detail: "{}", Now: time.Now(), Deferred: true})
	require.NoError(t, err)
	other, err := Open(t.Context(), path)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, other.Close()) })
	events, err := other.ListAudit(t.Context(), store.ListAuditParams{Credential: "app-db"})
	require.NoError(t, err)
	require.Len(t, events, 1, "another process reads a deferred write at once")
}

// A write's statements run without the caller's cancellation (wtx), but
// the write as a whole still ends with it: cancelled between two of its
// statements, it commits neither, and the next write works. A write or a
// read whose context has ended does not start.
func TestCancelledWriteCommitsNothing(t *testing.T) {
	t.Parallel()
	s, err := Open(t.Context(), filepath.Join(t.TempDir(), "state.db"))
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, s.Close()) })

	count := func() int {
		var n int
		require.NoError(t, s.db.QueryRowContext(t.Context(), `SELECT count(*) FROM store_meta WHERE key LIKE 'cancel-test-%'`).Scan(&n))
		return n
	}
	ctx, cancel := context.WithCancel(t.Context())
	err = s.write(ctx, func(tx *wtx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO store_meta (key, value) VALUES ('cancel-test-1', 'x')`); err != nil {
			return err
		}
		cancel()
		_, err := tx.ExecContext(ctx, `INSERT INTO store_meta (key, value) VALUES ('cancel-test-2', 'x')`)
		return err
	})
	// The second statement still runs (its context is not the caller's);
	// the check before COMMIT rolls both back.
	require.ErrorIs(t, err, context.Canceled)
	require.Zero(t, count(), "a cancelled write must commit nothing")

	// Nor does a write, or a read, whose context ended before it started.
	err = s.write(ctx, func(tx *wtx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO store_meta (key, value) VALUES ('cancel-test-4', 'x')`)
		return err
	})
	require.ErrorIs(t, err, context.Canceled)
	require.Zero(t, count())
	_, err = s.ListAudit(ctx, store.ListAuditParams{Limit: 1})
	require.ErrorIs(t, err, context.Canceled, "a read with an ended context does not run")
	_, err = s.GetLease(ctx, store.GetLeaseParams{Name: "x"})
	require.ErrorIs(t, err, context.Canceled, "nor does a one-row read")

	require.NoError(t, s.write(t.Context(), func(tx *wtx) error {
		_, err := tx.ExecContext(t.Context(), `INSERT INTO store_meta (key, value) VALUES ('cancel-test-3', 'x')`)
		return err
	}))
	require.Equal(t, 1, count())
}

// With the pool capped (LimitReaders), many goroutines reading and
// writing at once all finish: nothing waits for a connection while it
// holds one. A deadlock would hang until the context's deadline.
func TestLimitedReadersUnderLoad(t *testing.T) {
	t.Parallel()
	s, err := Open(t.Context(), filepath.Join(t.TempDir(), "state.db"))
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, s.Close()) })
	s.LimitReaders(1)
	require.Equal(t, 2, s.db.Stats().MaxOpenConnections)

	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	errs := make(chan error, 16)
	for g := range 16 {
		go func() {
			cred := fmt.Sprintf("c%d", g)
			for i := range 40 {
				if _, err := s.AppendAudit(ctx, store.AppendAuditParams{Credential: cred, Event: "test", Actor: "t", Detail: "{}", Now: time.Now(), Deferred: i%2 == 0}); err != nil {
					errs <- err
					return
				}
				if _, err := s.ListAudit(ctx, store.ListAuditParams{Credential: cred, Limit: 5}); err != nil {
					errs <- err
					return
				}
				if _, err := s.GetLease(ctx, store.GetLeaseParams{Name: cred}); err != nil && !errors.Is(err, store.ErrNotFound) {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for range 16 {
		require.NoError(t, <-errs)
	}
	events, err := s.ListAudit(ctx, store.ListAuditParams{Credential: "c7"})
	require.NoError(t, err)
	require.Len(t, events, 40)
}
