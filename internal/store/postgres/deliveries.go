package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/rotorhq/rotor/internal/store"
)

const deliveryColumns = `rotation_id, credential, target, state, fingerprint, attempts, error, detail, updated_at`

// UpsertDelivery implements store.Store. The delivery's credential is the
// rotation's: a blank p.Credential takes it, a different one is refused.
func (s *Store) UpsertDelivery(ctx context.Context, p store.UpsertDeliveryParams) (*store.Delivery, error) {
	var out *store.Delivery
	err := s.writeAs(ctx, p.Deferred, func(tx pgx.Tx) error {
		if err := s.checkFence(ctx, tx, p.Fence); err != nil {
			return err
		}
		var err error
		out, err = s.upsertDelivery(ctx, tx, p)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("upsert delivery %q: %w", p.Target, err)
	}
	return out, nil
}

// upsertDelivery is UpsertDelivery inside a write transaction, the fence
// checked already.
func (s *Store) upsertDelivery(ctx context.Context, tx pgx.Tx, p store.UpsertDeliveryParams) (*store.Delivery, error) {
	r, err := s.getRotation(ctx, tx, p.RotationID)
	if err != nil {
		return nil, fmt.Errorf("rotation %d: %w", p.RotationID, err)
	}
	if p.Credential != "" && p.Credential != r.Credential {
		return nil, fmt.Errorf("rotation %d belongs to %q, not %q", r.ID, r.Credential, p.Credential)
	}
	out, err := scanDelivery(tx.QueryRow(ctx, s.sql(`
		INSERT INTO {schema}.deliveries (`+deliveryColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
		ON CONFLICT (rotation_id, target) DO UPDATE SET
			state = excluded.state,
			fingerprint = excluded.fingerprint,
			attempts = excluded.attempts,
			error = excluded.error,
			detail = excluded.detail,
			updated_at = excluded.updated_at
		RETURNING `+deliveryColumns),
		r.ID, r.Credential, p.Target, string(p.State), p.Fingerprint, p.Attempts, p.Error, p.Detail, timeArg(p.Now)))
	if err != nil || p.Audit == nil {
		return out, err
	}
	_, err = s.appendAudit(ctx, tx, p.Audit.For(r, p.Now))
	return out, err
}

// ListDeliveries implements store.Store with the sqlite driver's rules:
// by rotation, or the latest delivery of each target of a credential.
func (s *Store) ListDeliveries(ctx context.Context, p store.ListDeliveriesParams) ([]*store.Delivery, error) {
	var (
		rows pgx.Rows
		err  error
	)
	switch {
	case p.RotationID != 0:
		where := []string{"rotation_id = $1"}
		args := []any{p.RotationID}
		if p.Credential != "" {
			where = append(where, "credential = $2")
			args = append(args, p.Credential)
		}
		rows, err = s.pool.Query(ctx, s.sql(`SELECT `+deliveryColumns+` FROM {schema}.deliveries`+whereClause(where)+` ORDER BY target COLLATE "C"`), args...)
	case p.Credential != "":
		rows, err = s.pool.Query(ctx, s.sql(`
			SELECT `+deliveryColumns+` FROM {schema}.deliveries d
			WHERE credential = $1 AND rotation_id = (
				SELECT MAX(rotation_id) FROM {schema}.deliveries
				WHERE credential = d.credential AND target = d.target)
			ORDER BY target COLLATE "C"`), p.Credential)
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
		d        store.Delivery
		state    string
		attempts int64
		updated  *int64
	)
	if err := row.Scan(&d.RotationID, &d.Credential, &d.Target, &state, &d.Fingerprint, &attempts, &d.Error,
		&d.Detail, &updated); err != nil {
		return nil, mapErr(err)
	}
	d.State = store.DeliveryState(state)
	d.Attempts = int(attempts)
	d.UpdatedAt = timeVal(updated)
	return &d, nil
}
