package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/rotorhq/rotor/internal/store"
)

// Export implements store.Store. One read transaction: in WAL mode it sees
// the file as of its first read, whatever other processes commit meanwhile.
func (s *Store) Export(ctx context.Context, _ store.ExportParams) (*store.Snapshot, error) {
	tx, err := s.db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, fmt.Errorf("export: %w", mapErr(err))
	}
	defer func() { _ = tx.Rollback() }()
	snap := &store.Snapshot{}
	if err := tx.QueryRowContext(ctx, `SELECT value FROM store_meta WHERE key = 'id'`).Scan(&snap.ID); err != nil {
		return nil, fmt.Errorf("export: read the store's id: %w", mapErr(err))
	}
	if snap.Leases, err = exportRows(ctx, tx, `SELECT `+leaseColumns+` FROM leases ORDER BY name`, scanLease); err != nil {
		return nil, fmt.Errorf("export leases: %w", err)
	}
	if snap.Versions, err = exportRows(ctx, tx, `SELECT `+versionColumns+` FROM versions ORDER BY id`, scanVersion); err != nil {
		return nil, fmt.Errorf("export versions: %w", err)
	}
	if snap.Rotations, err = exportRows(ctx, tx, `SELECT `+rotationColumns+` FROM rotations ORDER BY id`, scanRotation); err != nil {
		return nil, fmt.Errorf("export rotations: %w", err)
	}
	if snap.Steps, err = exportRows(ctx, tx, `SELECT id, rotation_id, name, status, detail, at FROM steps ORDER BY id`, scanStep); err != nil {
		return nil, fmt.Errorf("export steps: %w", err)
	}
	if snap.Deliveries, err = exportRows(ctx, tx, `SELECT `+deliveryColumns+` FROM deliveries ORDER BY rotation_id, target`, scanDelivery); err != nil {
		return nil, fmt.Errorf("export deliveries: %w", err)
	}
	if snap.Audit, err = exportRows(ctx, tx, `SELECT id, at, credential, rotation_id, event, actor, detail FROM audit ORDER BY id`, scanAudit); err != nil {
		return nil, fmt.Errorf("export audit: %w", err)
	}
	return snap, nil
}

func exportRows[T any](ctx context.Context, tx querier, query string, scan func(rowScanner) (*T, error)) ([]*T, error) {
	rows, err := tx.QueryContext(ctx, query)
	if err != nil {
		return nil, mapErr(err)
	}
	return collect(rows, scan)
}

// Import implements store.Store. BEGIN IMMEDIATE (see write) holds the
// file's write lock from the emptiness check to the commit, so no other
// process can slip a row in between.
func (s *Store) Import(ctx context.Context, p store.ImportParams) error {
	snap := p.Snapshot
	if snap == nil || snap.ID == "" {
		return errors.New("import: the snapshot has no store id")
	}
	err := s.write(ctx, func(tx *wtx) error {
		var rows int64
		if err := tx.QueryRowContext(ctx, `SELECT
			(SELECT count(*) FROM leases) + (SELECT count(*) FROM versions) + (SELECT count(*) FROM rotations) +
			(SELECT count(*) FROM steps) + (SELECT count(*) FROM deliveries) + (SELECT count(*) FROM audit)`).Scan(&rows); err != nil {
			return mapErr(err)
		}
		if rows > 0 {
			return fmt.Errorf("it holds %d row(s): %w", rows, store.ErrNotEmpty)
		}
		return importRows(ctx, tx, snap)
	})
	if err != nil {
		return fmt.Errorf("import: %w", err)
	}
	return nil
}

// importRows inserts in an order the foreign keys accept: rotations and
// versions point at each other, so rotations go in without their version
// ids, which are set once the versions exist. Ids are kept as they were,
// and later inserts number on from the largest.
func importRows(ctx context.Context, tx *wtx, snap *store.Snapshot) error {
	if _, err := tx.ExecContext(ctx, `UPDATE store_meta SET value = ? WHERE key = 'id'`, snap.ID); err != nil {
		return mapErr(err)
	}
	for _, l := range snap.Leases {
		if _, err := tx.ExecContext(ctx, `INSERT INTO leases (name, holder, expires_at, token) VALUES (?, ?, ?, ?)`,
			l.Name, l.Holder, timeArg(l.ExpiresAt), l.Token); err != nil {
			return fmt.Errorf("lease %q: %w", l.Name, mapErr(err))
		}
	}
	for _, r := range snap.Rotations {
		if _, err := tx.ExecContext(ctx, `
			INSERT INTO rotations (id, credential, status, strategy, triggered_by, revoke, step, error,
				rollback_sealed, outcome, started_at, updated_at, finished_at, applied_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			r.ID, r.Credential, string(r.Status), r.Strategy, r.Trigger, r.Revoke, r.Step, r.Error,
			r.Rollback, r.Outcome, timeArg(r.StartedAt), timeArg(r.UpdatedAt), timeArg(r.FinishedAt), timeArg(r.AppliedAt)); err != nil {
			return fmt.Errorf("rotation %d: %w", r.ID, mapErr(err))
		}
	}
	for _, v := range snap.Versions {
		if !knownStage(v.Stage) {
			return fmt.Errorf("version %d: unknown stage %q", v.ID, v.Stage)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO versions (`+versionColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			v.ID, v.Credential, v.Seq, v.Role, string(v.Stage), idArg(v.RotationID), v.Sealed, v.Fingerprint,
			timeArg(v.CreatedAt), timeArg(v.ActivatedAt), timeArg(v.RetiredAt)); err != nil {
			return fmt.Errorf("version %d: %w", v.ID, mapErr(err))
		}
	}
	for _, r := range snap.Rotations {
		if r.FromVersionID == 0 && r.ToVersionID == 0 {
			continue
		}
		if _, err := tx.ExecContext(ctx, `UPDATE rotations SET from_version_id = ?, to_version_id = ? WHERE id = ?`,
			idArg(r.FromVersionID), idArg(r.ToVersionID), r.ID); err != nil {
			return fmt.Errorf("rotation %d: %w", r.ID, mapErr(err))
		}
	}
	for _, st := range snap.Steps {
		if _, err := tx.ExecContext(ctx, `INSERT INTO steps (id, rotation_id, name, status, detail, at) VALUES (?, ?, ?, ?, ?, ?)`,
			st.ID, st.RotationID, st.Name, string(st.Status), st.Detail, timeArg(st.At)); err != nil {
			return fmt.Errorf("step %d: %w", st.ID, mapErr(err))
		}
	}
	for _, d := range snap.Deliveries {
		if _, err := tx.ExecContext(ctx, `INSERT INTO deliveries (`+deliveryColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			d.RotationID, d.Credential, d.Target, string(d.State), d.Fingerprint, d.Attempts, d.Error, d.Detail, timeArg(d.UpdatedAt)); err != nil {
			return fmt.Errorf("delivery %q of rotation %d: %w", d.Target, d.RotationID, mapErr(err))
		}
	}
	for _, e := range snap.Audit {
		if _, err := tx.ExecContext(ctx, `INSERT INTO audit (id, at, credential, rotation_id, event, actor, detail) VALUES (?, ?, ?, ?, ?, ?, ?)`,
			e.ID, timeArg(e.At), e.Credential, e.RotationID, e.Event, e.Actor, e.Detail); err != nil {
			return fmt.Errorf("audit event %d: %w", e.ID, mapErr(err))
		}
	}
	return nil
}
