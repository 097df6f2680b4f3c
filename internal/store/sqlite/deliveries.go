package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/rotorhq/rotor/internal/store"
)

const deliveryColumns = `rotation_id, credential, target, state, fingerprint, attempts, error, detail, updated_at`

// UpsertDelivery implements store.Store. The delivery's credential is the
// rotation's: a blank p.Credential takes it, a different one is refused,
// since a row filed under the wrong credential would mislead `rotor status`.
func (s *Store) UpsertDelivery(ctx context.Context, p store.UpsertDeliveryParams) (*store.Delivery, error) {
	var out *store.Delivery
	err := s.writeAs(ctx, p.Deferred, func(tx *wtx) error {
		if err := checkFence(ctx, tx, p.Fence); err != nil {
			return err
		}
		var err error
		out, err = upsertDelivery(ctx, tx, p)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("upsert delivery %q: %w", p.Target, err)
	}
	return out, nil
}

// upsertDelivery is UpsertDelivery inside a write transaction, the fence
// checked already.
func upsertDelivery(ctx context.Context, tx *wtx, p store.UpsertDeliveryParams) (*store.Delivery, error) {
	r, err := getRotation(ctx, tx, p.RotationID)
	if err != nil {
		return nil, fmt.Errorf("rotation %d: %w", p.RotationID, err)
	}
	if p.Credential != "" && p.Credential != r.Credential {
		return nil, fmt.Errorf("rotation %d belongs to %q, not %q", r.ID, r.Credential, p.Credential)
	}
	out, err := scanDelivery(tx.QueryRowContext(ctx, `
		INSERT INTO deliveries (`+deliveryColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (rotation_id, target) DO UPDATE SET
			state = excluded.state,
			fingerprint = excluded.fingerprint,
			attempts = excluded.attempts,
			error = excluded.error,
			detail = excluded.detail,
			updated_at = excluded.updated_at
		RETURNING `+deliveryColumns,
		r.ID, r.Credential, p.Target, string(p.State), p.Fingerprint, p.Attempts, p.Error, p.Detail, timeArg(p.Now)))
	if err != nil || p.Audit == nil {
		return out, err
	}
	_, err = appendAudit(ctx, tx, p.Audit.For(r, p.Now))
	return out, err
}

// ListDeliveries implements store.Store, ordered by target.
//
// With RotationID: that rotation's deliveries (also filtered by Credential
// when both are set). With only Credential: the latest delivery of each
// target across the credential's rotations — the newest rotation that
// touched the target wins — so a target skipped by the last rotation still
// shows where it stands.
func (s *Store) ListDeliveries(ctx context.Context, p store.ListDeliveriesParams) ([]*store.Delivery, error) {
	var (
		rows *sql.Rows
		err  error
	)
	switch {
	case p.RotationID != 0:
		var (
			where = []string{"rotation_id = ?"}
			args  = []any{p.RotationID}
		)
		if p.Credential != "" {
			where = append(where, "credential = ?")
			args = append(args, p.Credential)
		}
		rows, err = s.query(ctx,
			`SELECT `+deliveryColumns+` FROM deliveries`+whereClause(where)+` ORDER BY target`, args...)
	case p.Credential != "":
		rows, err = s.query(ctx, `
			SELECT `+deliveryColumns+` FROM deliveries d
			WHERE credential = ? AND rotation_id = (
				SELECT MAX(rotation_id) FROM deliveries
				WHERE credential = d.credential AND target = d.target)
			ORDER BY target`, p.Credential)
	default:
		return nil, errors.New("list deliveries: a rotation id or a credential is required")
	}
	if err != nil {
		return nil, fmt.Errorf("list deliveries: %w", mapErr(err))
	}
	ds, err := collect(rows, scanDelivery)
	if err != nil {
		return nil, fmt.Errorf("list deliveries: %w", err)
	}
	return ds, nil
}

func scanDelivery(row rowScanner) (*store.Delivery, error) {
	var (
		d       store.Delivery
		state   string
		updated sql.NullInt64
	)
	if err := row.Scan(&d.RotationID, &d.Credential, &d.Target, &state, &d.Fingerprint, &d.Attempts, &d.Error,
		&d.Detail, &updated); err != nil {
		return nil, mapErr(err)
	}
	d.State = store.DeliveryState(state)
	d.UpdatedAt = timeVal(updated)
	return &d, nil
}
