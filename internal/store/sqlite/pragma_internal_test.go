package sqlite

import (
	"database/sql"
	"errors"
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
// FULL, and the pool's connection is FULL again once the deferred write
// returns: a later durable write on it must wait for the disk. Another
// process sees the deferred write at once.
func TestDeferredWritesLowerOnlyTheirOwnTransaction(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "state.db")
	s, err := Open(t.Context(), path)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, s.Close()) })
	// Two connections, so both can be checked after: one of them ran the
	// deferred writes (the other prepares the statements meanwhile).
	s.db.SetMaxOpenConns(2)
	requireFull := func(msg string) {
		t.Helper()
		for range 2 {
			conn, err := s.db.Conn(t.Context())
			require.NoError(t, err)
			defer func() { require.NoError(t, conn.Close()) }()
			var got string
			require.NoError(t, conn.QueryRowContext(t.Context(), "PRAGMA synchronous").Scan(&got))
			require.Equal(t, "2", got, msg)
		}
	}

	level := func(deferred bool) string {
		var got string
		require.NoError(t, s.writeAs(t.Context(), deferred, func(tx *wtx) error {
			return tx.QueryRowContext(t.Context(), "PRAGMA synchronous").Scan(&got)
		}))
		return got
	}
	require.Equal(t, "1", level(true), "NORMAL inside a deferred write")
	require.Equal(t, "2", level(false), "FULL inside a durable write, on the same connection")
	require.Equal(t, "1", level(true))
	requireFull("FULL again once the deferred write returned")

	// A deferred write that fails leaves the connection FULL too.
	boom := errors.New("boom")
	require.ErrorIs(t, s.writeAs(t.Context(), true, func(*wtx) error { return boom }), boom)
	requireFull("FULL again after a deferred write that failed")

	_, err = s.AppendAudit(t.Context(), store.AppendAuditParams{Credential: "app-db", Event: "note", Detail: "{}", Now: time.Now(), Deferred: true})
	require.NoError(t, err)
	other, err := Open(t.Context(), path)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, other.Close()) })
	events, err := other.ListAudit(t.Context(), store.ListAuditParams{Credential: "app-db"})
	require.NoError(t, err)
	require.Len(t, events, 1, "another process reads a deferred write at once")
}
