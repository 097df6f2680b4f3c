package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/rotorhq/rotor/internal/store"
)

// Export implements store.Store. REPEATABLE READ gives one snapshot for
// every table. Names and targets are ordered by COLLATE "C", byte-wise as
// SQLite orders them, so both drivers export the same rows in one order
// whatever the database's locale.
func (s *Store) Export(ctx context.Context, _ store.ExportParams) (*store.Snapshot, error) {
	tx, err := s.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, fmt.Errorf("export: %w", mapErr(err))
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	snap := &store.Snapshot{}
	if err := tx.QueryRow(ctx, s.sql(`SELECT value FROM {schema}.store_meta WHERE key = 'id'`)).Scan(&snap.ID); err != nil {
		return nil, fmt.Errorf("export: read the store's id: %w", mapErr(err))
	}
	if snap.Leases, err = exportRows(ctx, tx, s.sql(`SELECT `+leaseColumns+` FROM {schema}.leases ORDER BY name COLLATE "C"`), scanLease); err != nil {
		return nil, fmt.Errorf("export leases: %w", err)
	}
	if snap.Versions, err = exportRows(ctx, tx, s.sql(`SELECT `+versionColumns+` FROM {schema}.versions ORDER BY id`), scanVersion); err != nil {
		return nil, fmt.Errorf("export versions: %w", err)
	}
	if snap.Rotations, err = exportRows(ctx, tx, s.sql(`SELECT `+rotationColumns+` FROM {schema}.rotations ORDER BY id`), scanRotation); err != nil {
		return nil, fmt.Errorf("export rotations: %w", err)
	}
	if snap.Steps, err = exportRows(ctx, tx, s.sql(`SELECT id, rotation_id, name, status, detail, at FROM {schema}.steps ORDER BY id`), scanStep); err != nil {
		return nil, fmt.Errorf("export steps: %w", err)
	}
	if snap.Deliveries, err = exportRows(ctx, tx,
		s.sql(`SELECT `+deliveryColumns+` FROM {schema}.deliveries ORDER BY rotation_id, target COLLATE "C"`), scanDelivery); err != nil {
		return nil, fmt.Errorf("export deliveries: %w", err)
	}
	if snap.Audit, err = exportRows(ctx, tx, s.sql(`SELECT `+auditColumns+` FROM {schema}.audit ORDER BY id`), scanAudit); err != nil {
		return nil, fmt.Errorf("export audit: %w", err)
	}
	return snap, nil
}

func exportRows[T any](ctx context.Context, tx pgx.Tx, query string, scan func(rowScanner) (*T, error)) ([]*T, error) {
	rows, err := tx.Query(ctx, query)
	if err != nil {
		return nil, mapErr(err)
	}
	return collect(rows, scan)
}

// importTables are locked by Import and checked for rows; the ones with
// an identity column have their sequence moved past the imported ids.
var importTables = []struct {
	name     string
	identity bool
}{
	{"leases", false}, {"rotations", true}, {"versions", true}, {"steps", true}, {"deliveries", false}, {"audit", true},
}

// Import implements store.Store. The tables are locked EXCLUSIVE (reads
// go on, writes wait) from the emptiness check to the commit, so neither a
// second import nor a rotor using the store meanwhile can interleave.
func (s *Store) Import(ctx context.Context, p store.ImportParams) error {
	snap := p.Snapshot
	if snap == nil || snap.ID == "" {
		return errors.New("import: the snapshot has no store id")
	}
	err := s.write(ctx, func(tx pgx.Tx) error {
		var rows int64
		for _, t := range importTables {
			if _, err := tx.Exec(ctx, s.sql(`LOCK TABLE {schema}.`+t.name+` IN EXCLUSIVE MODE`)); err != nil {
				return mapErr(err)
			}
			var n int64
			if err := tx.QueryRow(ctx, s.sql(`SELECT count(*) FROM {schema}.`+t.name)).Scan(&n); err != nil {
				return mapErr(err)
			}
			rows += n
		}
		if rows > 0 {
			return fmt.Errorf("it holds %d row(s): %w", rows, store.ErrNotEmpty)
		}
		if err := s.importRows(ctx, tx, snap); err != nil {
			return err
		}
		for _, t := range importTables {
			if !t.identity {
				continue
			}
			// The next id is one past the largest imported (1 for an
			// empty table): setval(…, n, false) hands out n next.
			if _, err := tx.Exec(ctx, s.sql(`SELECT setval(pg_get_serial_sequence($1, 'id'), COALESCE(MAX(id), 0) + 1, false) FROM {schema}.`+t.name),
				s.schema+"."+t.name); err != nil {
				return fmt.Errorf("move the id sequence of %s: %w", t.name, mapErr(err))
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("import: %w", err)
	}
	return nil
}

// importRows copies each table with COPY, which writes the given ids into
// GENERATED ALWAYS identity columns. Rotations and versions point at each
// other, so rotations go in without their version ids, which one UPDATE
// sets once the versions exist.
func (s *Store) importRows(ctx context.Context, tx pgx.Tx, snap *store.Snapshot) error {
	if _, err := tx.Exec(ctx, s.sql(`UPDATE {schema}.store_meta SET value = $1 WHERE key = 'id'`), snap.ID); err != nil {
		return mapErr(err)
	}
	var conv nanos
	copyRows := func(table string, cols []string, n int, row func(i int) []any) error {
		if n == 0 {
			return nil
		}
		rows := make([][]any, n)
		for i := range n {
			rows[i] = row(i)
		}
		if conv.err != nil {
			return fmt.Errorf("%s: %w", table, conv.err)
		}
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{s.schemaName, table}, cols, pgx.CopyFromRows(rows)); err != nil {
			return fmt.Errorf("%s: %w", table, mapErr(err))
		}
		return nil
	}
	if err := copyRows("leases", []string{"name", "holder", "expires_at", "token"}, len(snap.Leases), func(i int) []any {
		l := snap.Leases[i]
		return []any{l.Name, l.Holder, conv.at(l.ExpiresAt), l.Token}
	}); err != nil {
		return err
	}
	if err := copyRows("rotations", []string{"id", "credential", "status", "strategy", "triggered_by", "revoke", "step", "error",
		"rollback_sealed", "outcome", "started_at", "updated_at", "finished_at", "applied_at"}, len(snap.Rotations), func(i int) []any {
		r := snap.Rotations[i]
		return []any{r.ID, r.Credential, string(r.Status), r.Strategy, r.Trigger, r.Revoke, r.Step, r.Error,
			r.Rollback, r.Outcome, conv.at(r.StartedAt), conv.at(r.UpdatedAt), conv.at(r.FinishedAt), conv.at(r.AppliedAt)}
	}); err != nil {
		return err
	}
	for _, v := range snap.Versions {
		if !knownStage(v.Stage) {
			return fmt.Errorf("version %d: unknown stage %q", v.ID, v.Stage)
		}
	}
	if err := copyRows("versions", []string{"id", "credential", "seq", "role", "stage", "rotation_id", "sealed", "fingerprint",
		"created_at", "activated_at", "retired_at"}, len(snap.Versions), func(i int) []any {
		v := snap.Versions[i]
		return []any{v.ID, v.Credential, v.Seq, v.Role, string(v.Stage), idArg(v.RotationID), v.Sealed, v.Fingerprint,
			conv.at(v.CreatedAt), conv.at(v.ActivatedAt), conv.at(v.RetiredAt)}
	}); err != nil {
		return err
	}
	var ids, from, to []*int64
	for _, r := range snap.Rotations {
		if r.FromVersionID != 0 || r.ToVersionID != 0 {
			ids, from, to = append(ids, idArg(r.ID)), append(from, idArg(r.FromVersionID)), append(to, idArg(r.ToVersionID))
		}
	}
	if len(ids) > 0 {
		if _, err := tx.Exec(ctx, s.sql(`UPDATE {schema}.rotations r SET from_version_id = v.f, to_version_id = v.t
			FROM unnest($1::bigint[], $2::bigint[], $3::bigint[]) AS v(id, f, t) WHERE r.id = v.id`), ids, from, to); err != nil {
			return fmt.Errorf("rotations: link their versions: %w", mapErr(err))
		}
	}
	if err := copyRows("steps", []string{"id", "rotation_id", "name", "status", "detail", "at"}, len(snap.Steps), func(i int) []any {
		st := snap.Steps[i]
		return []any{st.ID, st.RotationID, st.Name, string(st.Status), st.Detail, conv.at(st.At)}
	}); err != nil {
		return err
	}
	if err := copyRows("deliveries", []string{"rotation_id", "credential", "target", "state", "fingerprint", "attempts", "error", "detail", "updated_at"},
		len(snap.Deliveries), func(i int) []any {
			d := snap.Deliveries[i]
			return []any{d.RotationID, d.Credential, d.Target, string(d.State), d.Fingerprint, int64(d.Attempts), d.Error, d.Detail, conv.at(d.UpdatedAt)}
		}); err != nil {
		return err
	}
	return copyRows("audit", []string{"id", "at", "credential", "rotation_id", "event", "actor", "detail"}, len(snap.Audit), func(i int) []any {
		e := snap.Audit[i]
		return []any{e.ID, conv.at(e.At), e.Credential, e.RotationID, e.Event, e.Actor, e.Detail}
	})
}

// nanos converts times for COPY, which takes plain values: UTC unix
// nanoseconds, nil for the zero time, as nanoTime stores them. The first
// time out of range is kept in err.
type nanos struct{ err error }

func (n *nanos) at(t time.Time) *int64 {
	v, err := timeArg(t).Value()
	if err != nil {
		if n.err == nil {
			n.err = err
		}
		return nil
	}
	if v == nil {
		return nil
	}
	ns := v.(int64)
	return &ns
}
