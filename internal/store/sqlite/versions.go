package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"github.com/rotorhq/rotor/internal/store"
)

const versionColumns = `id, credential, seq, role, stage, rotation_id, sealed, fingerprint, created_at, activated_at, retired_at`

// InsertVersion implements store.Store. A version inserted directly as
// current (importing an existing password) is activated at p.Now, and one
// inserted as retired is retired at p.Now, so the timestamps always agree
// with the stage.
func (s *Store) InsertVersion(ctx context.Context, p store.InsertVersionParams) (*store.Version, error) {
	if !knownStage(p.Stage) {
		return nil, fmt.Errorf("insert version for %q: unknown stage %q", p.Credential, p.Stage)
	}
	var activated, retired nanoTime
	switch p.Stage {
	case store.StageCurrent:
		activated = timeArg(p.Now)
	case store.StageRetired:
		retired = timeArg(p.Now)
	}
	var out *store.Version
	err := s.writeAs(ctx, p.Deferred, func(tx *wtx) error {
		if err := checkFence(ctx, tx, p.Fence); err != nil {
			return err
		}
		if err := openStep(ctx, tx, p.RotationID, p.Open); err != nil {
			return err
		}
		var err error
		// The seq read and the insert share the write lock taken by BEGIN
		// IMMEDIATE, so two processes cannot both pick the same number.
		out, err = scanVersion(tx.QueryRowContext(ctx, `
			INSERT INTO versions (credential, seq, role, stage, rotation_id, sealed, fingerprint, created_at, activated_at, retired_at)
			SELECT ?, COALESCE(MAX(seq), 0) + 1, ?, ?, ?, ?, ?, ?, ?, ?
			FROM versions WHERE credential = ?
			RETURNING `+versionColumns,
			p.Credential, p.Role, string(p.Stage), idArg(p.RotationID), p.Sealed, p.Fingerprint,
			timeArg(p.Now), activated, retired, p.Credential))
		if err != nil || p.Pending == nil {
			return err
		}
		u := *p.Pending
		u.ID, u.ToVersionID = p.RotationID, &out.ID
		_, err = updateRotation(ctx, tx, u)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("insert version for %q: %w", p.Credential, err)
	}
	return out, nil
}

// GetVersion implements store.Store.
func (s *Store) GetVersion(ctx context.Context, p store.GetVersionParams) (*store.Version, error) {
	id := p.ID
	v, err := getVersion(ctx, reads{s}, id)
	if err != nil {
		return nil, fmt.Errorf("get version %d: %w", id, err)
	}
	return v, nil
}

func getVersion(ctx context.Context, q querier, id int64) (*store.Version, error) {
	return scanVersion(q.QueryRowContext(ctx, `SELECT `+versionColumns+` FROM versions WHERE id = ?`, id))
}

// ListVersions implements store.Store. An empty Credential lists every
// credential's versions.
func (s *Store) ListVersions(ctx context.Context, p store.ListVersionsParams) ([]*store.Version, error) {
	var (
		where []string
		args  []any
	)
	if p.Credential != "" {
		where = append(where, "credential = ?")
		args = append(args, p.Credential)
	}
	if len(p.Stages) > 0 {
		marks := strings.Repeat(", ?", len(p.Stages))[2:]
		where = append(where, "stage IN ("+marks+")")
		for _, st := range p.Stages {
			args = append(args, string(st))
		}
	}
	query := `SELECT ` + versionColumns + ` FROM versions` + whereClause(where) + ` ORDER BY id DESC` + limitClause(p.Limit)
	rows, err := s.query(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("list versions of %q: %w", p.Credential, mapErr(err))
	}
	vs, err := collect(rows, scanVersion)
	if err != nil {
		return nil, fmt.Errorf("list versions of %q: %w", p.Credential, err)
	}
	return vs, nil
}

// ReplacePendingSecret implements store.Store.
func (s *Store) ReplacePendingSecret(ctx context.Context, p store.ReplacePendingSecretParams) error {
	return s.write(ctx, func(tx *wtx) error {
		if err := checkFence(ctx, tx, p.Fence); err != nil {
			return fmt.Errorf("replace secret of version %d: %w", p.ID, err)
		}
		var stage string
		err := tx.QueryRowContext(ctx, `SELECT stage FROM versions WHERE id = ?`, p.ID).Scan(&stage)
		if err != nil {
			return fmt.Errorf("replace secret of version %d: %w", p.ID, mapErr(err))
		}
		if stage != string(store.StagePending) {
			return fmt.Errorf("replace secret of version %d: it is %s, not pending: %w", p.ID, stage, store.ErrConflict)
		}
		_, err = tx.ExecContext(ctx, `UPDATE versions SET sealed = ?, fingerprint = ? WHERE id = ?`, p.Sealed, p.Fingerprint, p.ID)
		if err != nil {
			return fmt.Errorf("replace secret of version %d: %w", p.ID, mapErr(err))
		}
		return nil
	})
}

// retireAndWipe retires every version of credential in stage (current or
// previous), dropping its secret. Used by FinishRotation, where a retired
// secret has no further use.
//
// The stage is in the text, not a parameter: the planner weighs the
// partial indexes on versions (one per stage) by a bound stage's value,
// so SQLite prepared the statement again at every run (5 % of a
// rotation's journal CPU in BenchmarkFinishRotation).
func retireAndWipe(ctx context.Context, tx *wtx, credential string, stage store.Stage, now nanoTime) error {
	q := `UPDATE versions SET stage = 'retired', sealed = NULL, retired_at = COALESCE(retired_at, ?)
		WHERE credential = ? AND stage = `
	switch stage {
	case store.StageCurrent:
		q += `'current'`
	case store.StagePrevious:
		q += `'previous'`
	default:
		return fmt.Errorf("retire the %s versions of %s: only current and previous are retired at a finish", stage, credential)
	}
	_, err := tx.ExecContext(ctx, q, now, credential)
	return mapErr(err)
}

func knownStage(st store.Stage) bool {
	switch st {
	case store.StagePending, store.StageCurrent, store.StagePrevious, store.StageRetired:
		return true
	}
	return false
}

func scanVersion(row rowScanner) (*store.Version, error) {
	var (
		v                           store.Version
		stage                       string
		rotationID                  sql.NullInt64
		created, activated, retired sql.NullInt64
	)
	if err := row.Scan(&v.ID, &v.Credential, &v.Seq, &v.Role, &stage, &rotationID, &v.Sealed, &v.Fingerprint,
		&created, &activated, &retired); err != nil {
		return nil, mapErr(err)
	}
	v.Stage = store.Stage(stage)
	v.RotationID = rotationID.Int64
	v.CreatedAt = timeVal(created)
	v.ActivatedAt = timeVal(activated)
	v.RetiredAt = timeVal(retired)
	return &v, nil
}

func whereClause(conds []string) string {
	if len(conds) == 0 {
		return ""
	}
	return " WHERE " + strings.Join(conds, " AND ")
}

// collect scans every row with scan and closes rows.
func collect[T any](rows *sql.Rows, scan func(rowScanner) (*T, error)) ([]*T, error) {
	defer func() { _ = rows.Close() }()
	var out []*T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, mapErr(err)
	}
	return out, nil
}
