package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/rotorhq/rotor/internal/store"
)

// groupOf queues writes while the write lock is held, so that they wait
// together, then lets them go: the first to take the lock commits them
// all. It returns each write's result, in order.
func groupOf(t *testing.T, s *Store, writes ...func(ctx context.Context) error) []error {
	t.Helper()
	s.wmu.Lock()
	errs := make([]error, len(writes))
	var wg sync.WaitGroup
	for i, w := range writes {
		wg.Go(func() { errs[i] = w(t.Context()) })
	}
	require.Eventually(t, func() bool {
		s.qmu.Lock()
		defer s.qmu.Unlock()
		return len(s.queue) == len(writes)
	}, 10*time.Second, time.Millisecond)
	s.wmu.Unlock()
	wg.Wait()
	return errs
}

// TestGroupCommit: writes that wait together commit in one transaction,
// and each still gets its own outcome — one that fails or whose context
// ended leaves nothing and does not fail the others.
func TestGroupCommit(t *testing.T) {
	t.Parallel()
	s, err := Open(t.Context(), filepath.Join(t.TempDir(), "state.db"))
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, s.Close()) })
	_, err = s.db.ExecContext(t.Context(), `CREATE TABLE t (k TEXT NOT NULL)`)
	require.NoError(t, err)
	count := func(k string) int {
		var n int
		require.NoError(t, s.db.QueryRowContext(t.Context(), `SELECT count(*) FROM t WHERE k = ?`, k).Scan(&n))
		return n
	}

	var (
		mu    sync.Mutex
		txs   = map[*sql.Tx]bool{}
		syncs = map[string]bool{}
	)
	insert := func(k string, deferred bool, then error) func(context.Context) error {
		return func(ctx context.Context) error {
			return s.writeAs(ctx, deferred, func(tx *wtx) error {
				var level string
				if err := tx.QueryRowContext(ctx, "PRAGMA synchronous").Scan(&level); err != nil {
					return err
				}
				mu.Lock()
				txs[tx.Tx], syncs[level] = true, true
				mu.Unlock()
				if _, err := tx.ExecContext(ctx, `INSERT INTO t (k) VALUES (?)`, k); err != nil {
					return err
				}
				return then
			})
		}
	}
	boom := errors.New("boom")
	cancelled, cancel := context.WithCancel(t.Context())
	cancel()
	errs := groupOf(t, s,
		insert("a", true, nil),
		insert("b", false, nil),
		insert("c", true, boom),
		func(context.Context) error { return insert("d", true, nil)(cancelled) },
		insert("e", true, nil),
	)
	require.NoError(t, errs[0])
	require.NoError(t, errs[1])
	require.ErrorIs(t, errs[2], boom)
	require.ErrorIs(t, errs[3], context.Canceled)
	require.NoError(t, errs[4])
	require.Len(t, txs, 1, "one transaction for the group")
	require.Equal(t, map[string]bool{"2": true}, syncs, "FULL: one write of the group asked to wait for the disk")
	for k, want := range map[string]int{"a": 1, "b": 1, "c": 0, "d": 0, "e": 1} {
		require.Equal(t, want, count(k), "rows of %s", k)
	}

	// All deferred: the group commits with synchronous=NORMAL, and the
	// next write alone runs FULL again.
	clear(txs)
	clear(syncs)
	errs = groupOf(t, s, insert("f", true, nil), insert("g", true, nil))
	require.NoError(t, errors.Join(errs...))
	require.Equal(t, map[string]bool{"1": true}, syncs)
	clear(syncs)
	require.NoError(t, insert("h", false, nil)(t.Context()))
	require.Equal(t, map[string]bool{"2": true}, syncs)

	// A write whose context ends while it runs is rolled back too.
	errs = groupOf(t, s,
		insert("i", true, nil),
		func(ctx context.Context) error {
			ctx, cancel := context.WithCancel(ctx)
			return s.writeAs(ctx, true, func(tx *wtx) error {
				_, err := tx.ExecContext(ctx, `INSERT INTO t (k) VALUES ('j')`)
				cancel()
				return err
			})
		},
		insert("k", true, nil),
	)
	require.NoError(t, errs[0])
	require.ErrorIs(t, errs[1], context.Canceled)
	require.NoError(t, errs[2])
	require.Equal(t, 0, count("j"))
	require.Equal(t, 1, count("k"))
}

// TestGroupCommitUnderLoad: many goroutines writing journal records at
// once (the engine's parallel rotations) all land, each exactly once.
func TestGroupCommitUnderLoad(t *testing.T) {
	t.Parallel()
	s, err := Open(t.Context(), filepath.Join(t.TempDir(), "state.db"))
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, s.Close()) })
	const writers, each = 16, 25
	var wg sync.WaitGroup
	errs := make(chan error, writers*each)
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				_, err := s.AppendAudit(t.Context(), store.AppendAuditParams{
					Credential: fmt.Sprintf("c%d", w), Event: "note", Detail: fmt.Sprintf(`{"i":%d}`, i),
					Now: time.Now(), Deferred: i%3 != 0,
				})
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	for w := range writers {
		events, err := s.ListAudit(t.Context(), store.ListAuditParams{Credential: fmt.Sprintf("c%d", w)})
		require.NoError(t, err)
		require.Len(t, events, each)
	}
}
