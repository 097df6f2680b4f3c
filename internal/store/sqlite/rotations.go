package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/rotorhq/rotor/internal/store"
)

const rotationColumns = `id, credential, status, strategy, triggered_by, revoke, step, error,
	from_version_id, to_version_id, rollback_sealed, outcome, started_at, updated_at, finished_at, applied_at`

// InsertRotation implements store.Store.
func (s *Store) InsertRotation(ctx context.Context, p store.InsertRotationParams) (*store.Rotation, error) {
	var r *store.Rotation
	err := s.writeAs(ctx, p.Deferred, func(tx *wtx) error {
		if err := checkFence(ctx, tx, p.Fence); err != nil {
			return err
		}
		var err error
		r, err = insertRotation(ctx, tx, p)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("insert rotation for %q: %w", p.Credential, err)
	}
	return r, nil
}

// StartRotation implements store.Store.
func (s *Store) StartRotation(ctx context.Context, p store.StartRotationParams) (*store.Rotation, *store.Lease, error) {
	if err := checkAcquire(p.Lease); err != nil {
		return nil, nil, err
	}
	var (
		r *store.Rotation
		l *store.Lease
	)
	err := s.writeAs(ctx, p.Rotation.Deferred, func(tx *wtx) error {
		var err error
		if l, err = acquireLease(ctx, tx, p.Lease); err != nil {
			return err
		}
		var latest, current int64
		if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(id), 0) FROM rotations WHERE credential = ?`, p.Rotation.Credential).Scan(&latest); err != nil {
			return mapErr(err)
		}
		err = tx.QueryRowContext(ctx, `SELECT id FROM versions WHERE credential = ? AND stage = 'current'`, p.Rotation.Credential).Scan(&current)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return mapErr(err)
		}
		if latest != p.After || current != p.Rotation.FromVersionID {
			return fmt.Errorf("the credential's latest rotation is %d and current version %d, not %d and %d as read: %w",
				latest, current, p.After, p.Rotation.FromVersionID, store.ErrConflict)
		}
		r, err = insertRotation(ctx, tx, p.Rotation)
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

func insertRotation(ctx context.Context, tx *wtx, p store.InsertRotationParams) (*store.Rotation, error) {
	r, err := scanRotation(tx.QueryRowContext(ctx, `
		INSERT INTO rotations (credential, status, strategy, triggered_by, revoke, from_version_id, started_at, updated_at)
		VALUES (?, 'active', ?, ?, ?, ?, ?, ?)
		RETURNING `+rotationColumns,
		p.Credential, p.Strategy, p.Trigger, p.Revoke, idArg(p.FromVersionID), timeArg(p.Now), timeArg(p.Now)))
	if err != nil || p.Audit == nil {
		return r, err
	}
	_, err = appendAudit(ctx, tx, p.Audit.For(r, p.Now))
	return r, err
}

func getRotation(ctx context.Context, q querier, id int64) (*store.Rotation, error) {
	return scanRotation(q.QueryRowContext(ctx, `SELECT `+rotationColumns+` FROM rotations WHERE id = ?`, id))
}

// ListRotations implements store.Store. An empty Credential lists every
// credential's rotations.
func (s *Store) ListRotations(ctx context.Context, p store.ListRotationsParams) ([]*store.Rotation, error) {
	var (
		where []string
		args  []any
	)
	if p.Credential != "" {
		where = append(where, "credential = ?")
		args = append(args, p.Credential)
	}
	if p.Active {
		where = append(where, "status = 'active'")
	}
	rows, err := s.query(ctx,
		`SELECT `+rotationColumns+` FROM rotations`+whereClause(where)+` ORDER BY id DESC`+limitClause(p.Limit), args...)
	if err != nil {
		return nil, fmt.Errorf("list rotations: %w", mapErr(err))
	}
	rs, err := collect(rows, scanRotation)
	if err != nil {
		return nil, fmt.Errorf("list rotations: %w", err)
	}
	return rs, nil
}

// UpdateRotation implements store.Store. A finished rotation is history and
// cannot be edited: ErrConflict. A non-nil ToVersionID of 0 clears it.
func (s *Store) UpdateRotation(ctx context.Context, p store.UpdateRotationParams) (*store.Rotation, error) {
	var out *store.Rotation
	err := s.writeAs(ctx, p.Deferred, func(tx *wtx) error {
		if err := checkFence(ctx, tx, p.Fence); err != nil {
			return err
		}
		var err error
		out, err = updateRotation(ctx, tx, p)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("update rotation %d: %w", p.ID, err)
	}
	return out, nil
}

// updateRotation is UpdateRotation inside tx, fence already checked.
func updateRotation(ctx context.Context, tx *wtx, p store.UpdateRotationParams) (*store.Rotation, error) {
	sets := []string{"updated_at = ?"}
	args := []any{timeArg(p.Now)}
	if p.ToVersionID != nil {
		sets = append(sets, "to_version_id = ?")
		args = append(args, idArg(*p.ToVersionID))
	}
	if p.Rollback != nil {
		sets = append(sets, "rollback_sealed = ?")
		args = append(args, p.Rollback)
	}
	if p.AppliedAt != nil {
		sets = append(sets, "applied_at = ?")
		args = append(args, timeArg(*p.AppliedAt))
	}
	args = append(args, p.ID)
	if err := requireActive(ctx, tx, p.ID); err != nil {
		return nil, err
	}
	return scanRotation(tx.QueryRowContext(ctx,
		`UPDATE rotations SET `+strings.Join(sets, ", ")+` WHERE id = ? RETURNING `+rotationColumns, args...))
}

func requireActive(ctx context.Context, q querier, id int64) error {
	r, err := getRotation(ctx, q, id)
	if err != nil {
		return err
	}
	if r.Status != store.StatusActive {
		return fmt.Errorf("rotation is %s: %w", r.Status, store.ErrConflict)
	}
	return nil
}

// FinishRotation implements store.Store.
//
// With Promote, the version to promote is ToVersionID, or, when that was
// never recorded, the pending version the rotation inserted. Without
// Promote, every pending version of the rotation is retired and wiped, found
// by ToVersionID or by its RotationID: a crash between InsertVersion and
// UpdateRotation must not leave a pending version that blocks every later
// rotation of the credential.
//
// Audit fields left blank default to the rotation's credential, its id and
// p.Now.
func (s *Store) FinishRotation(ctx context.Context, p store.FinishRotationParams) (*store.Rotation, error) {
	if !p.Status.Terminal() {
		return nil, fmt.Errorf("finish rotation %d: status %q is not terminal", p.ID, p.Status)
	}
	now := timeArg(p.Now)
	var out *store.Rotation
	err := s.write(ctx, func(tx *wtx) error {
		if err := checkFence(ctx, tx, p.Fence); err != nil {
			return err
		}
		r, err := getRotation(ctx, tx, p.ID)
		if err != nil {
			return err
		}
		if r.Status != store.StatusActive {
			return fmt.Errorf("rotation is already %s: %w", r.Status, store.ErrConflict)
		}
		if err := openStep(ctx, tx, r.ID, p.Open); err != nil {
			return err
		}

		toID := r.ToVersionID
		if p.Promote {
			v, err := versionToPromote(ctx, tx, r)
			if err != nil {
				return err
			}
			toID = v.ID
			// Oldest first: each partial unique index (one version per live
			// stage) is checked after every statement, not at commit.
			if err := retireAndWipe(ctx, tx, r.Credential, store.StagePrevious, now); err != nil {
				return err
			}
			if p.RetirePrevious {
				err = retireAndWipe(ctx, tx, r.Credential, store.StageCurrent, now)
			} else {
				_, err = tx.ExecContext(ctx, `UPDATE versions SET stage = 'previous' WHERE credential = ? AND stage = 'current'`, r.Credential)
			}
			if err != nil {
				return mapErr(err)
			}
			if _, err := tx.ExecContext(ctx, `UPDATE versions SET stage = 'current', activated_at = ? WHERE id = ?`, now, v.ID); err != nil {
				return mapErr(err)
			}
		} else {
			if _, err := tx.ExecContext(ctx, `
				UPDATE versions SET stage = 'retired', sealed = NULL, retired_at = COALESCE(retired_at, ?)
				WHERE credential = ? AND stage = 'pending' AND (rotation_id = ? OR id = ?)`,
				now, r.Credential, r.ID, r.ToVersionID); err != nil {
				return mapErr(err)
			}
		}

		// The finished row as the update leaves it; nothing after it in
		// this transaction changes the row.
		out, err = scanRotation(tx.QueryRowContext(ctx, `
			UPDATE rotations SET status = ?, outcome = ?, error = ?, to_version_id = ?, updated_at = ?, finished_at = ?,
				rollback_sealed = NULL
			WHERE id = ?
			RETURNING `+rotationColumns,
			string(p.Status), p.Outcome, p.Error, idArg(toID), now, now, r.ID))
		if err != nil {
			return err
		}

		a := p.Audit.For(r, p.Now)
		if _, err := appendAudit(ctx, tx, a); err != nil {
			return err
		}
		if p.Release && p.Fence.Lease != "" {
			// The fence was checked above: the token is the holder's.
			if _, err := tx.ExecContext(ctx, `UPDATE leases SET holder = '' WHERE name = ? AND token = ?`, p.Fence.Lease, p.Fence.Token); err != nil {
				return mapErr(err)
			}
		}
		return nil
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
	err := s.write(ctx, func(tx *wtx) error {
		if err := checkFence(ctx, tx, p.Fence); err != nil {
			return err
		}
		r, err := getRotation(ctx, tx, p.ID)
		if err != nil {
			return err
		}
		if !r.Status.RetirementPending() {
			return fmt.Errorf("rotation is %s, not awaiting retirement: %w", r.Status, store.ErrConflict)
		}
		if p.RetirePrevious && p.Status == store.StatusSucceeded && r.FromVersionID != 0 {
			if _, err := tx.ExecContext(ctx, `
				UPDATE versions SET stage = 'retired', sealed = NULL, retired_at = COALESCE(retired_at, ?)
				WHERE id = ? AND stage = 'previous'`, now, r.FromVersionID); err != nil {
				return mapErr(err)
			}
		}
		if _, err := tx.ExecContext(ctx, `UPDATE rotations SET status = ?, outcome = ?, updated_at = ? WHERE id = ?`,
			string(p.Status), p.Outcome, now, r.ID); err != nil {
			return mapErr(err)
		}
		a := p.Audit.For(r, p.Now)
		if _, err := appendAudit(ctx, tx, a); err != nil {
			return err
		}
		out, err = getRotation(ctx, tx, r.ID)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("finish retirement of rotation %d: %w", p.ID, err)
	}
	return out, nil
}

func versionToPromote(ctx context.Context, tx *wtx, r *store.Rotation) (*store.Version, error) {
	var (
		v   *store.Version
		err error
	)
	if r.ToVersionID != 0 {
		v, err = getVersion(ctx, tx, r.ToVersionID)
	} else {
		v, err = scanVersion(tx.QueryRowContext(ctx, `SELECT `+versionColumns+` FROM versions WHERE rotation_id = ?`, r.ID))
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
		fromID, toID               sql.NullInt64
		started, updated, finished sql.NullInt64
		applied                    sql.NullInt64
	)
	if err := row.Scan(&r.ID, &r.Credential, &status, &r.Strategy, &r.Trigger, &r.Revoke, &r.Step, &r.Error,
		&fromID, &toID, &r.Rollback, &r.Outcome, &started, &updated, &finished, &applied); err != nil {
		return nil, mapErr(err)
	}
	r.Status = store.Status(status)
	r.FromVersionID = fromID.Int64
	r.ToVersionID = toID.Int64
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
	err := s.writeAs(ctx, p.Deferred, func(tx *wtx) error {
		// The fence is checked by the first record's insert; the
		// deliveries follow the records (other tables, one transaction).
		fence := p.Fence
		if p.Open != nil {
			// The record after it mirrors itself on the rotation row.
			if _, err := insertStep(ctx, tx, fence, p.RotationID, p.Open.Name, store.StepStarted, "", p.Open.At); err != nil {
				return err
			}
			fence = store.Fence{}
		}
		var err error
		if st, err = insertStep(ctx, tx, fence, p.RotationID, p.Name, p.Status, p.Detail, p.Now); err != nil {
			return err
		}
		if err := mirrorStep(ctx, tx, p.RotationID, p.Name, p.Status, p.Detail, p.Now, p.AppliedAt); err != nil {
			return err
		}
		for _, d := range p.Deliveries {
			if d.RotationID != p.RotationID {
				return fmt.Errorf("delivery %q is for rotation %d, not %d", d.Target, d.RotationID, p.RotationID)
			}
			if _, err := upsertDelivery(ctx, tx, d); err != nil {
				return fmt.Errorf("upsert delivery %q: %w", d.Target, err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("append step %q to rotation %d: %w", p.Name, p.RotationID, err)
	}
	return st, nil
}

// openStep appends o, a step's started record that rides with another
// write (store.OpenStep), when there is one. The write has checked its
// fence.
func openStep(ctx context.Context, tx *wtx, rotationID int64, o *store.OpenStep) error {
	if o == nil {
		return nil
	}
	if _, err := insertStep(ctx, tx, store.Fence{}, rotationID, o.Name, store.StepStarted, "", o.At); err != nil {
		return err
	}
	return mirrorStep(ctx, tx, rotationID, o.Name, store.StepStarted, "", o.At, time.Time{})
}

// insertStep inserts one journal record. With a fence, the insert is the
// write's fence check: it inserts only while the fence's lease still has
// its token, which saves the write a query of its own (every journal
// write has one), and when it inserted nothing checkFence says why.
// The record comes from what was inserted, not read back.
func insertStep(ctx context.Context, tx *wtx, f store.Fence, rotationID int64, name string, status store.StepStatus, detail string, at time.Time) (*store.Step, error) {
	q := `INSERT INTO steps (rotation_id, name, status, detail, at) VALUES (?, ?, ?, ?, ?)`
	args := []any{rotationID, name, string(status), detail, timeArg(at)}
	if f != (store.Fence{}) {
		q = `INSERT INTO steps (rotation_id, name, status, detail, at) SELECT ?, ?, ?, ?, ?
			WHERE EXISTS (SELECT 1 FROM leases WHERE name = ? AND token = ?)`
		args = append(args, f.Lease, f.Token)
	}
	res, err := tx.ExecContext(ctx, q, args...)
	if err != nil {
		return nil, mapErr(err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return nil, mapErr(err)
	}
	if n == 0 {
		if err := checkFence(ctx, tx, f); err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("the step record was not inserted although lease %q has token %d", f.Lease, f.Token)
	}
	id, err := res.LastInsertId()
	if err != nil {
		return nil, mapErr(err)
	}
	return &store.Step{ID: id, RotationID: rotationID, Name: name, Status: status, Detail: detail, At: storedTime(at)}, nil
}

// mirrorStep puts a journal record, and applied when it is not zero, on
// the rotation row in the same transaction, so status never disagrees
// with the journal.
func mirrorStep(ctx context.Context, tx *wtx, rotationID int64, name string, status store.StepStatus, detail string, at, applied time.Time) error {
	errText := ""
	if status == store.StepFailed {
		errText = detail
	}
	_, err := tx.ExecContext(ctx, `
		UPDATE rotations SET step = ?, error = ?, updated_at = ?, applied_at = COALESCE(?, applied_at) WHERE id = ? AND status = ?`,
		name, errText, timeArg(at), timeArg(applied), rotationID, string(store.StatusActive))
	return mapErr(err)
}

// ListSteps implements store.Store. An unknown rotation has no steps.
func (s *Store) ListSteps(ctx context.Context, p store.ListStepsParams) ([]*store.Step, error) {
	rotationID := p.RotationID
	rows, err := s.query(ctx, `
		SELECT id, rotation_id, name, status, detail, at FROM steps WHERE rotation_id = ? ORDER BY id`, rotationID)
	if err != nil {
		return nil, fmt.Errorf("list steps of rotation %d: %w", rotationID, mapErr(err))
	}
	steps, err := collect(rows, scanStep)
	if err != nil {
		return nil, fmt.Errorf("list steps of rotation %d: %w", rotationID, err)
	}
	return steps, nil
}

func scanStep(row rowScanner) (*store.Step, error) {
	var (
		st     store.Step
		status string
		at     sql.NullInt64
	)
	if err := row.Scan(&st.ID, &st.RotationID, &st.Name, &status, &st.Detail, &at); err != nil {
		return nil, mapErr(err)
	}
	st.Status = store.StepStatus(status)
	st.At = timeVal(at)
	return &st, nil
}
