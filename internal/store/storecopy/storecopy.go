// Package storecopy moves rotor's state from one store to another — an
// SQLite file into a shared PostgreSQL store, typically (`rotor state
// migrate`) — and proves the copy: every table's row count and digest
// read back from the target equal the source's, the sealed versions open
// with the key, and the source did not change while it was copied.
//
// It works through store.Store's Export and Import only, so any two
// drivers can be paired. The store id goes along, so the marks rotor left
// on the roles it manages stay valid, and the sealed blobs stay byte for
// byte what they were: the same key opens them.
package storecopy

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/rotorhq/rotor/internal/store"
)

// ErrBusy: the source store has a lease that is held (a rotation is
// running), so a copy taken now could miss what it writes next.
var ErrBusy = errors.New("the source store is in use")

// ErrMismatch: the copy read back differs from what was exported, or the
// source changed while it was copied.
var ErrMismatch = errors.New("the copy does not match the source")

// Options tune Copy.
type Options struct {
	// Now tells held leases from expired ones.
	Now time.Time
	// CheckSealed is called for every version of the copy that holds a
	// sealed secret, as read back from the target; it should open it with
	// the key. Its error fails the copy. Nil checks nothing.
	CheckSealed func(v *store.Version) error
}

// Table is one table's row count and digest: SHA-256 over its rows in
// the Snapshot's order, each row the JSON encoding of the store's type
// for it, one per line. Equal digests mean equal rows, to the byte of a
// sealed secret and the nanosecond of a time.
type Table struct {
	Name   string `json:"name"`
	Rows   int    `json:"rows"`
	SHA256 string `json:"sha256"`
}

// Report is what a finished copy verified.
type Report struct {
	// ID is the store id both stores now have.
	ID string `json:"store_id"`
	// Tables are the digests, equal on both sides.
	Tables []Table `json:"tables"`
	// Sealed is how many sealed versions CheckSealed opened.
	Sealed int `json:"sealed_versions_opened"`
}

// Copy exports from, refuses when one of its leases is held at opts.Now,
// imports into to (which must be empty: store.ErrNotEmpty otherwise),
// reads the copy back and verifies it. An error after the import leaves
// the target holding rows: the message says so.
func Copy(ctx context.Context, from, to store.Store, opts Options) (*Report, error) {
	snap, err := from.Export(ctx, store.ExportParams{})
	if err != nil {
		return nil, fmt.Errorf("read the source store: %w", err)
	}
	for _, l := range snap.Leases {
		if l.Holder != "" && opts.Now.Before(l.ExpiresAt) {
			return nil, fmt.Errorf("lease %s is held by %s until %s, so a rotation may be running: wait for it to end, and stop every scheduled rotor that uses this store before copying it: %w",
				l.Name, l.Holder, l.ExpiresAt.Format(time.RFC3339), ErrBusy)
		}
	}
	want, err := Digest(snap)
	if err != nil {
		return nil, err
	}
	if err := to.Import(ctx, store.ImportParams{Snapshot: snap}); err != nil {
		return nil, fmt.Errorf("write the target store: %w", err)
	}

	// From here on the target holds rows: a failure must say so, since a
	// second attempt will find it not empty.
	leftover := func(err error) error {
		return fmt.Errorf("%w; the target now holds this incomplete or unverified copy: empty it (PostgreSQL: DROP SCHEMA … CASCADE; SQLite: delete the file) before trying again", err)
	}
	back, err := to.Export(ctx, store.ExportParams{})
	if err != nil {
		return nil, leftover(fmt.Errorf("read the copy back: %w", err))
	}
	got, err := Digest(back)
	if err != nil {
		return nil, leftover(err)
	}
	if back.ID != snap.ID {
		return nil, leftover(fmt.Errorf("the copy has store id %s, the source %s: %w", back.ID, snap.ID, ErrMismatch))
	}
	if err := compare(want, got, snap, back, "the source", "the copy"); err != nil {
		return nil, leftover(err)
	}
	rep := &Report{ID: snap.ID, Tables: got}
	if opts.CheckSealed != nil {
		for _, v := range back.Versions {
			if v.Sealed == nil {
				continue
			}
			if err := opts.CheckSealed(v); err != nil {
				return nil, leftover(fmt.Errorf("version %d of %s in the copy: %w", v.Seq, v.Credential, err))
			}
			rep.Sealed++
		}
	}
	again, err := from.Export(ctx, store.ExportParams{})
	if err != nil {
		return nil, leftover(fmt.Errorf("read the source store again: %w", err))
	}
	now, err := Digest(again)
	if err != nil {
		return nil, leftover(err)
	}
	if err := compare(want, now, snap, again, "the copied source", "the source now"); err != nil {
		return nil, leftover(fmt.Errorf("the source store changed while it was copied (a rotor wrote to it), so the copy misses that write: %w", err))
	}
	return rep, nil
}

// Digest returns the row count and digest of each table of snap, in the
// order leases, versions, rotations, steps, deliveries, audit.
func Digest(snap *store.Snapshot) ([]Table, error) {
	lines, err := tableLines(snap)
	if err != nil {
		return nil, err
	}
	out := make([]Table, len(lines))
	for i, t := range lines {
		h := sha256.New()
		for _, l := range t.rows {
			h.Write(l)
			h.Write([]byte{'\n'})
		}
		out[i] = Table{Name: t.name, Rows: len(t.rows), SHA256: hex.EncodeToString(h.Sum(nil))}
	}
	return out, nil
}

type encodedTable struct {
	name string
	rows [][]byte
}

func tableLines(snap *store.Snapshot) ([]encodedTable, error) {
	tables := []encodedTable{
		{name: "leases"}, {name: "versions"}, {name: "rotations"}, {name: "steps"}, {name: "deliveries"}, {name: "audit"},
	}
	var firstErr error
	add := func(i int, row any) {
		b, err := json.Marshal(row)
		if err != nil && firstErr == nil {
			firstErr = fmt.Errorf("encode a row of %s: %w", tables[i].name, err)
		}
		tables[i].rows = append(tables[i].rows, b)
	}
	for _, r := range snap.Leases {
		add(0, r)
	}
	for _, r := range snap.Versions {
		add(1, r)
	}
	for _, r := range snap.Rotations {
		add(2, r)
	}
	for _, r := range snap.Steps {
		add(3, r)
	}
	for _, r := range snap.Deliveries {
		add(4, r)
	}
	for _, r := range snap.Audit {
		add(5, r)
	}
	return tables, firstErr
}

// compare names the first table whose digest differs and, in it, the
// first row that does (by position: the order is fixed).
func compare(want, got []Table, a, b *store.Snapshot, nameA, nameB string) error {
	for i := range want {
		if want[i] == got[i] {
			continue
		}
		if want[i].Rows != got[i].Rows {
			return fmt.Errorf("table %s: %d row(s) in %s, %d in %s: %w", want[i].Name, want[i].Rows, nameA, got[i].Rows, nameB, ErrMismatch)
		}
		la, _ := tableLines(a)
		lb, _ := tableLines(b)
		for j := range la[i].rows {
			if !bytes.Equal(la[i].rows[j], lb[i].rows[j]) {
				return fmt.Errorf("table %s: row %d of %d differs between %s and %s: %w", want[i].Name, j+1, want[i].Rows, nameA, nameB, ErrMismatch)
			}
		}
		return fmt.Errorf("table %s: digest differs: %w", want[i].Name, ErrMismatch)
	}
	return nil
}
