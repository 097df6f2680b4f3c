package sqlite

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
)

// Group commit: writes of this process that wait for the write connection
// at the same moment (a batch's parallel rotations, a rotation's targets
// recording their deliveries, rotor serve's workers) are committed in one
// transaction, each inside a savepoint of its own, so that they share one
// BEGIN, one COMMIT and, for durable ones, one sync of the WAL.
//
// Each write keeps its own outcome: one whose function fails is rolled
// back to its savepoint and gets its error, and the others still commit;
// one whose context ended before or while it ran is rolled back the same
// way. What a write's caller is told is true of the file: nil only once
// the commit that holds it has returned, durable (synchronous=FULL) if
// any write of the group asked for that, deferred only if all did.
//
// A write alone in the queue — every write of a process that writes one
// at a time — runs as it always did, in a transaction of its own that
// ends with its context.

// pendingWrite is one write in the queue. err and done are set by the
// goroutine that commits it, with wmu held, and read by the one that
// queued it after it takes wmu in turn.
type pendingWrite struct {
	ctx      context.Context
	deferred bool
	fn       func(tx *wtx) error
	err      error
	done     bool
}

// enqueue adds w to the queue and waits for wmu. If another goroutine
// committed w in the meantime, that is the answer; otherwise this one
// commits everything queued so far, w included.
func (s *Store) enqueue(w *pendingWrite) error {
	s.qmu.Lock()
	s.queue = append(s.queue, w)
	s.qmu.Unlock()
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if w.done {
		return w.err
	}
	s.qmu.Lock()
	group := s.queue
	s.queue = nil
	s.qmu.Unlock()
	if len(group) == 1 {
		w.err, w.done = s.commitOne(w.ctx, w.deferred, w.fn), true
		return w.err
	}
	s.commitGroup(group)
	return w.err
}

// commitGroup commits writes in one transaction, each in a savepoint
// (the package comment above). The caller holds wmu.
func (s *Store) commitGroup(group []*pendingWrite) {
	deferred := true
	for _, w := range group {
		deferred = deferred && w.deferred
	}
	// No one caller's context may end the others' transaction; each
	// write's own is checked around its savepoint instead.
	ctx := context.WithoutCancel(group[0].ctx)
	ran := 0 // writes whose function succeeded
	err := func() (err error) {
		defer func() {
			if errors.Is(err, driver.ErrBadConn) || errors.Is(err, sql.ErrConnDone) {
				s.dropWriter()
			}
		}()
		conn, err := s.writer(ctx, deferred)
		if err != nil {
			return err
		}
		tx, err := conn.BeginTx(ctx, nil)
		if err != nil {
			return mapErr(err)
		}
		defer func() { _ = tx.Rollback() }()
		t := &wtx{Tx: tx, s: s}
		for _, w := range group {
			if err := w.ctx.Err(); err != nil {
				w.err, w.done = err, true
				continue
			}
			if _, err := t.ExecContext(ctx, "SAVEPOINT write"); err != nil {
				return mapErr(err)
			}
			werr := w.fn(t)
			if werr == nil {
				werr = w.ctx.Err()
			}
			if werr != nil {
				w.err, w.done = werr, true
				if _, err := t.ExecContext(ctx, "ROLLBACK TO write"); err != nil {
					return mapErr(err)
				}
			} else {
				ran++
			}
			if _, err := t.ExecContext(ctx, "RELEASE write"); err != nil {
				return mapErr(err)
			}
		}
		if ran == 0 {
			return nil
		}
		return mapErr(tx.Commit())
	}()
	for _, w := range group {
		if !w.done {
			// Committed with the group, or never run because the group
			// failed first: either way the group's result is this write's.
			w.err, w.done = err, true
		}
	}
}
