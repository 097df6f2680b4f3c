package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"sync/atomic"
)

// scratchSeq numbers this process's scratch stores, so that each is a
// database of its own.
var scratchSeq atomic.Int64

// errScratchWrite is what a scratch store answers every write with.
var errScratchWrite = errors.New("this command only reads and no state file exists yet, so there is nowhere to write (a bug in rotor: report it)")

// OpenScratch opens an empty store that lives in this process's memory
// and is gone when it is closed: what a command that changes nothing
// reads when no state file exists yet. It has the file's schema, so
// every read answers as a new file's would, without creating, syncing and
// removing a file (docs/benchmarks.md, nineteenth and twentieth rounds:
// 6–8 ms for a new file against about 1 ms here, both from the baseline).
//
// It refuses every write. That is the promise of the commands that use
// it, and also a need: the memdb VFS has no WAL, and without one a write
// transaction and the reads beside it lock each other out.
func OpenScratch(ctx context.Context) (*Store, error) {
	// SQLite's memdb VFS shares a database whose name starts with "/"
	// between this process's connections, as long as one stays open.
	name := fmt.Sprintf("/rotor-scratch-%d", scratchSeq.Add(1))
	q := url.Values{}
	q.Set("vfs", "memdb")
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", busyTimeout.Milliseconds()))
	q.Add("_pragma", "foreign_keys(1)")
	q.Set("_txlock", "immediate")
	db, err := sql.Open("sqlite", "file:"+name+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("open an empty in-memory state: %w", err)
	}
	db.SetMaxIdleConns(maxIdleConns)
	keep, err := db.Conn(ctx)
	if err != nil {
		return nil, errors.Join(fmt.Errorf("open an empty in-memory state: %w", err), db.Close())
	}
	if err := migrate(ctx, db); err != nil {
		return nil, errors.Join(fmt.Errorf("open an empty in-memory state: %w", err), keep.Close(), db.Close())
	}
	return &Store{db: db, path: "memdb:" + name, keep: keep}, nil
}
