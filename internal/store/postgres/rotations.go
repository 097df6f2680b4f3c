package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/rotorhq/rotor/internal/store"
)

const rotationColumns = `id, credential, status, strategy, triggered_by, revoke, step, error,
	from_version_id, to_version_id, rollback_sealed, outcome, started_at, updated_at, finished_at, applied_at`

// InsertRotation implements store.Store.
func (s *Store) InsertRotation(ctx context.Context, p store.InsertRotationParams) (*store.Rotation, error) {
	var r *store.Rotation
	err := s.writeAs(ctx, p.Deferred, func(tx pgx.Tx) error {
		if err := s.checkFence(ctx, tx, p.Fence); err != nil {
			return err
		}
		var err error
		r, err = s.insertRotation(ctx, tx, p)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("insert rotation for %q: %w", p.Credential, err)
	}
	return r, nil
}

// StartRotation implements store.Store. The lease row, locked first, is
// what every writer of the credential's rotations holds, so the reads
// after it see every rotation started before.
func (s *Store) StartRotation(ctx context.Context, p store.StartRotationParams) (*store.Rotation, *store.Lease, error) {
	if err := checkAcquire(p.Lease); err != nil {
		return nil, nil, err
	}
	var (
		r *store.Rotation
		l *store.Lease
	)
	err := s.writeAs(ctx, p.Rotation.Deferred, func(tx pgx.Tx) error {
		var err error
		if l, err = s.acquireLease(ctx, tx, p.Lease); err != nil {
			return err
		}
		var latest, current int64
		if err := tx.QueryRow(ctx, s.sql(`SELECT COALESCE(MAX(id), 0) FROM {schema}.rotations WHERE credential = $1`), p.Rotation.Credential).Scan(&latest); err != nil {
			return mapErr(err)
		}
		err = tx.QueryRow(ctx, s.sql(`SELECT id FROM {schema}.versions WHERE credential = $1 AND stage = 'current'`), p.Rotation.Credential).Scan(&current)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return mapErr(err)
		}
		if latest != p.After || current != p.Rotation.FromVersionID {
			return fmt.Errorf("the credential's latest rotation is %d and current version %d, not %d and %d as read: %w",
				latest, current, p.After, p.Rotation.FromVersionID, store.ErrConflict)
		}
		r, err = s.insertRotation(ctx, tx, p.Rotation)
		return err
	})
	if errors.Is(err, store.ErrLeaseHeld) {
		l, err = acquired(p.Lease, l, err)
		return nil, l, err
	}
	if err != nil {
		return nil, nil, fmt.Errorf("start rotation for %q: %w", p.Rotation.Credential, err)
	}
	return r, l, nil
}

func (s *Store) insertRotation(ctx context.Context, tx pgx.Tx, p store.InsertRotationParams) (*store.Rotation, error) {
	r, err := scanRotation(tx.QueryRow(ctx, s.sql(`
		INSERT INTO {schema}.rotations (credential, status, strategy, triggered_by, revoke, from_version_id, started_at, updated_at)
		VALUES ($1, 'active', $2, $3, $4, $5, $6, $6)
		RETURNING `+rotationColumns),
		p.Credential, p.Strategy, p.Trigger, p.Revoke, idArg(p.FromVersionID), timeArg(p.Now)))
	if err != nil || p.Audit == nil {
		return r, err
	}
	_, err = s.appendAudit(ctx, tx, p.Audit.For(r, p.Now))
	return r, err
}

func (s *Store) getRotation(ctx context.Context, q querier, id int64) (*store.Rotation, error) {
	return scanRotation(q.QueryRow(ctx, s.sql(`SELECT `+rotationColumns+` FROM {schema}.rotations WHERE id = $1`), id))
}

// lockRotation reads a rotation and holds its row until the transaction
// ends, so two writers of one rotation take turns.
func (s *Store) lockRotation(ctx context.Context, tx pgx.Tx, id int64) (*store.Rotation, error) {
	return scanRotation(tx.QueryRow(ctx, s.sql(`SELECT `+rotationColumns+` FROM {schema}.rotations WHERE id = $1 FOR UPDATE`), id))
}

// ListRotations implements store.Store.
func (s *Store) ListRotations(ctx context.Context, p store.ListRotationsParams) ([]*store.Rotation, error) {
	var (
		where []string
		args  []any
	)
	if p.Credential != "" {
		where = append(where, "credential = $1")
		args = append(args, p.Credential)
	}
	if p.Active {
		where = append(where, "status = 'active'")
	}
	rows, err := s.pool.Query(ctx,
		s.sql(`SELECT `+rotationColumns+` FROM {schema}.rotations`+whereClause(where)+` ORDER BY id DESC`+limitClause(p.Limit)), args...)
	if err != nil {
		return nil, fmt.Errorf("list rotations: %w", mapErr(err))
	}
	rs, err := collect(rows, scanRotation)
	if err != nil {
		return nil, fmt.Errorf("list rotations: %w", err)
	}
	return rs, nil
}

// UpdateRotation implements store.Store. A finished rotation cannot be
// edited: ErrConflict. A non-nil ToVersionID of 0 clears it.
func (s *Store) UpdateRotation(ctx context.Context, p store.UpdateRotationParams) (*store.Rotation, error) {
	var out *store.Rotation
	err := s.writeAs(ctx, p.Deferred, func(tx pgx.Tx) error {
		if err := s.checkFence(ctx, tx, p.Fence); err != nil {
			return err
		}
		var err error
		out, err = s.updateRotation(ctx, tx, p)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("update rotation %d: %w", p.ID, err)
	}
	return out, nil
}

// updateRotation is UpdateRotation inside tx, fence already checked.
func (s *Store) updateRotation(ctx context.Context, tx pgx.Tx, p store.UpdateRotationParams) (*store.Rotation, error) {
	args := []any{p.ID, timeArg(p.Now)}
	sets := []string{"updated_at = $2"}
	add := func(col string, v any) {
		args = append(args, v)
		sets = append(sets, fmt.Sprintf("%s = $%d", col, len(args)))
	}
	if p.ToVersionID != nil {
		add("to_version_id", idArg(*p.ToVersionID))
	}
	if p.Rollback != nil {
		add("rollback_sealed", p.Rollback)
	}
	if p.AppliedAt != nil {
		add("applied_at", timeArg(*p.AppliedAt))
	}
	r, err := s.lockRotation(ctx, tx, p.ID)
	if err != nil {
		return nil, err
	}
	if r.Status != store.StatusActive {
		return nil, fmt.Errorf("rotation is %s: %w", r.Status, store.ErrConflict)
	}
	return scanRotation(tx.QueryRow(ctx,
		s.sql(`UPDATE {schema}.rotations SET `+strings.Join(sets, ", ")+` WHERE id = $1 RETURNING `+rotationColumns), args...))
}

// FinishRotation implements store.Store with the sqlite driver's rules
// (which version is promoted, which pending ones are wiped, audit
// defaults).
func (s *Store) FinishRotation(ctx context.Context, p store.FinishRotationParams) (*store.Rotation, error) {
	if !p.Status.Terminal() {
		return nil, fmt.Errorf("finish rotation %d: status %q is not terminal", p.ID, p.Status)
	}
	now := timeArg(p.Now)
	var out *store.Rotation
	err := s.write(ctx, func(tx pgx.Tx) error {
		if err := s.checkFence(ctx, tx, p.Fence); err != nil {
			return err
		}
		r, err := s.lockRotation(ctx, tx, p.ID)
		if err != nil {
			return err
		}
		if r.Status != store.StatusActive {
			return fmt.Errorf("rotation is already %s: %w", r.Status, store.ErrConflict)
		}
		if err := s.openStep(ctx, tx, r.ID, p.Open); err != nil {
			return err
		}

		toID := r.ToVersionID
		if p.Promote {
			v, err := s.versionToPromote(ctx, tx, r)
			if err != nil {
				return err
			}
			toID = v.ID
			// Oldest first: the one-version-per-stage indexes are checked
			// row by row.
			if err := s.retireAndWipe(ctx, tx, r.Credential, store.StagePrevious, now); err != nil {
				return err
			}
			if p.RetirePrevious {
				err = s.retireAndWipe(ctx, tx, r.Credential, store.StageCurrent, now)
			} else {
				_, err = tx.Exec(ctx, s.sql(`UPDATE {schema}.versions SET stage = 'previous' WHERE credential = $1 AND stage = 'current'`), r.Credential)
			}
			if err != nil {
				return mapErr(err)
			}
			if _, err := tx.Exec(ctx, s.sql(`UPDATE {schema}.versions SET stage = 'current', activated_at = $1 WHERE id = $2`), now, v.ID); err != nil {
				return mapErr(err)
			}
		} else {
			if _, err := tx.Exec(ctx, s.sql(`
				UPDATE {schema}.versions SET stage = 'retired', sealed = NULL, retired_at = COALESCE(retired_at, $1)
				WHERE credential = $2 AND stage = 'pending' AND (rotation_id = $3 OR id = $4)`),
				now, r.Credential, r.ID, r.ToVersionID); err != nil {
				return mapErr(err)
			}
		}

		if _, err := tx.Exec(ctx, s.sql(`
			UPDATE {schema}.rotations SET status = $1, outcome = $2, error = $3, to_version_id = $4, updated_at = $5, finished_at = $5,
				rollback_sealed = NULL
			WHERE id = $6`),
			string(p.Status), p.Outcome, p.Error, idArg(toID), now, r.ID); err != nil {
			return mapErr(err)
		}

		a := p.Audit.For(r, p.Now)
		if _, err := s.appendAudit(ctx, tx, a); err != nil {
			return err
		}
		if p.Release && p.Fence.Lease != "" {
			// The fence was checked above: the token is the holder's.
			if _, err := tx.Exec(ctx, s.sql(`UPDATE {schema}.leases SET holder = '' WHERE name = $1 AND token = $2`), p.Fence.Lease, p.Fence.Token); err != nil {
				return mapErr(err)
			}
		}
		out, err = s.getRotation(ctx, tx, r.ID)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("finish rotation %d: %w", p.ID, err)
	}
	return out, nil
}

// FinishRetirement implements store.Store.
func (s *Store) FinishRetirement(ctx context.Context, p store.FinishRetirementParams) (*store.Rotation, error) {
	if !p.Status.RetirementPending() && p.Status != store.StatusSucceeded {
		return nil, fmt.Errorf("finish retirement of rotation %d: status %q does not end a retirement", p.ID, p.Status)
	}
	now := timeArg(p.Now)
	var out *store.Rotation
	err := s.write(ctx, func(tx pgx.Tx) error {
		if err := s.checkFence(ctx, tx, p.Fence); err != nil {
			return err
		}
		r, err := s.lockRotation(ctx, tx, p.ID)
		if err != nil {
			return err
		}
		if !r.Status.RetirementPending() {
			return fmt.Errorf("rotation is %s, not awaiting retirement: %w", r.Status, store.ErrConflict)
		}
		if p.RetirePrevious && p.Status == store.StatusSucceeded && r.FromVersionID != 0 {
			if _, err := tx.Exec(ctx, s.sql(`
				UPDATE {schema}.versions SET stage = 'retired', sealed = NULL, retired_at = COALESCE(retired_at, $1)
				WHERE id = $2 AND stage = 'previous'`), now, r.FromVersionID); err != nil {
				return mapErr(err)
			}
		}
		if _, err := tx.Exec(ctx, s.sql(`UPDATE {schema}.rotations SET status = $1, outcome = $2, updated_at = $3 WHERE id = $4`),
			string(p.Status), p.Outcome, now, r.ID); err != nil {
			return mapErr(err)
		}
		a := p.Audit.For(r, p.Now)
		if _, err := s.appendAudit(ctx, tx, a); err != nil {
			return err
		}
		out, err = s.getRotation(ctx, tx, r.ID)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("finish retirement of rotation %d: %w", p.ID, err)
	}
	return out, nil
}

func (s *Store) versionToPromote(ctx context.Context, tx pgx.Tx, r *store.Rotation) (*store.Version, error) {
	var (
		v   *store.Version
		err error
	)
	if r.ToVersionID != 0 {
		v, err = s.getVersion(ctx, tx, r.ToVersionID)
	} else {
		v, err = scanVersion(tx.QueryRow(ctx, s.sql(`SELECT `+versionColumns+` FROM {schema}.versions WHERE rotation_id = $1`), r.ID))
	}
	if errors.Is(err, store.ErrNotFound) {
		// Not ErrNotFound: the rotation exists, and callers read that
		// sentinel as "no such rotation".
		return nil, errors.New("rotation has no pending version to promote")
	}
	if err != nil {
		return nil, err
	}
	if v.Credential != r.Credential {
		return nil, fmt.Errorf("version %d belongs to %q, not %q", v.ID, v.Credential, r.Credential)
	}
	if v.Stage != store.StagePending {
		return nil, fmt.Errorf("version %d is %s, not pending: %w", v.ID, v.Stage, store.ErrConflict)
	}
	return v, nil
}

func scanRotation(row rowScanner) (*store.Rotation, error) {
	var (
		r                          store.Rotation
		status                     string
		fromID, toID               *int64
		started, updated, finished *int64
		applied                    *int64
	)
	if err := row.Scan(&r.ID, &r.Credential, &status, &r.Strategy, &r.Trigger, &r.Revoke, &r.Step, &r.Error,
		&fromID, &toID, &r.Rollback, &r.Outcome, &started, &updated, &finished, &applied); err != nil {
		return nil, mapErr(err)
	}
	r.Status = store.Status(status)
	r.FromVersionID = idVal(fromID)
	r.ToVersionID = idVal(toID)
	r.StartedAt = timeVal(started)
	r.UpdatedAt = timeVal(updated)
	r.FinishedAt = timeVal(finished)
	r.AppliedAt = timeVal(applied)
	return &r, nil
}

// AppendStep implements store.Store. Steps may be appended to a finished
// rotation: the engine journals "finish done" after FinishRotation commits.
func (s *Store) AppendStep(ctx context.Context, p store.AppendStepParams) (*store.Step, error) {
	var st *store.Step
	err := s.writeAs(ctx, p.Deferred, func(tx pgx.Tx) error {
		if err := s.checkFence(ctx, tx, p.Fence); err != nil {
			return err
		}
		if err := s.openStep(ctx, tx, p.RotationID, p.Open); err != nil {
			return err
		}
		for _, d := range p.Deliveries {
			if d.RotationID != p.RotationID {
				return fmt.Errorf("delivery %q is for rotation %d, not %d", d.Target, d.RotationID, p.RotationID)
			}
			if _, err := s.upsertDelivery(ctx, tx, d); err != nil {
				return fmt.Errorf("upsert delivery %q: %w", d.Target, err)
			}
		}
		var err error
		st, err = s.appendStep(ctx, tx, p.RotationID, p.Name, p.Status, p.Detail, p.Now, p.AppliedAt)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("append step %q to rotation %d: %w", p.Name, p.RotationID, err)
	}
	return st, nil
}

// openStep appends o, a step's started record that rides with another
// write (store.OpenStep), when there is one.
func (s *Store) openStep(ctx context.Context, tx pgx.Tx, rotationID int64, o *store.OpenStep) error {
	if o == nil {
		return nil
	}
	_, err := s.appendStep(ctx, tx, rotationID, o.Name, store.StepStarted, "", o.At, time.Time{})
	return err
}

// appendStep inserts one journal record and mirrors it, and applied when
// it is not zero, on the rotation row.
func (s *Store) appendStep(ctx context.Context, tx pgx.Tx, rotationID int64, name string, status store.StepStatus, detail string, at, applied time.Time) (*store.Step, error) {
	st, err := scanStep(tx.QueryRow(ctx, s.sql(`
		INSERT INTO {schema}.steps (rotation_id, name, status, detail, at) VALUES ($1, $2, $3, $4, $5)
		RETURNING id, rotation_id, name, status, detail, at`),
		rotationID, name, string(status), detail, timeArg(at)))
	if err != nil {
		return nil, err
	}
	errText := ""
	if status == store.StepFailed {
		errText = detail
	}
	_, err = tx.Exec(ctx, s.sql(`
		UPDATE {schema}.rotations SET step = $1, error = $2, updated_at = $3, applied_at = COALESCE($4, applied_at) WHERE id = $5 AND status = 'active'`),
		name, errText, timeArg(at), timeArg(applied), rotationID)
	return st, mapErr(err)
}

// ListSteps implements store.Store. An unknown rotation has no steps.
func (s *Store) ListSteps(ctx context.Context, p store.ListStepsParams) ([]*store.Step, error) {
	rows, err := s.pool.Query(ctx, s.sql(`
		SELECT id, rotation_id, name, status, detail, at FROM {schema}.steps WHERE rotation_id = $1 ORDER BY id`), p.RotationID)
	if err != nil {
		return nil, fmt.Errorf("list steps of rotation %d: %w", p.RotationID, mapErr(err))
	}
	steps, err := collect(rows, scanStep)
	if err != nil {
		return nil, fmt.Errorf("list steps of rotation %d: %w", p.RotationID, err)
	}
	return steps, nil
}

func scanStep(row rowScanner) (*store.Step, error) {
	var (
		st     store.Step
		status string
		at     *int64
	)
	if err := row.Scan(&st.ID, &st.RotationID, &st.Name, &status, &st.Detail, &at); err != nil {
		return nil, mapErr(err)
	}
	st.Status = store.StepStatus(status)
	st.At = timeVal(at)
	return &st, nil
}
