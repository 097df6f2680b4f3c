package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/rotorhq/rotor/internal/store"
)

const versionColumns = `id, credential, seq, role, stage, rotation_id, sealed, fingerprint, created_at, activated_at, retired_at`

// InsertVersion implements store.Store; timestamps agree with the stage as
// in the sqlite driver.
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
	err := s.writeAs(ctx, p.Deferred, func(tx pgx.Tx) error {
		if err := s.checkFence(ctx, tx, p.Fence); err != nil {
			return err
		}
		// Under READ COMMITTED two inserts would both read the same
		// MAX(seq); the lock makes the second wait for the first's commit.
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, migrateLockKey(s.schema+" versions "+p.Credential)); err != nil {
			return mapErr(err)
		}
		if err := s.openStep(ctx, tx, p.RotationID, p.Open); err != nil {
			return err
		}
		var err error
		out, err = scanVersion(tx.QueryRow(ctx, s.sql(`
			INSERT INTO {schema}.versions (credential, seq, role, stage, rotation_id, sealed, fingerprint, created_at, activated_at, retired_at)
			SELECT $1, COALESCE(MAX(seq), 0) + 1, $2, $3, $4, $5, $6, $7, $8, $9
			FROM {schema}.versions WHERE credential = $1
			RETURNING `+versionColumns),
			p.Credential, p.Role, string(p.Stage), idArg(p.RotationID), p.Sealed, p.Fingerprint,
			timeArg(p.Now), activated, retired))
		if err != nil || p.Pending == nil {
			return err
		}
		u := *p.Pending
		u.ID, u.ToVersionID = p.RotationID, &out.ID
		_, err = s.updateRotation(ctx, tx, u)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("insert version for %q: %w", p.Credential, err)
	}
	return out, nil
}

// GetVersion implements store.Store.
func (s *Store) GetVersion(ctx context.Context, p store.GetVersionParams) (*store.Version, error) {
	v, err := s.getVersion(ctx, s.pool, p.ID)
	if err != nil {
		return nil, fmt.Errorf("get version %d: %w", p.ID, err)
	}
	return v, nil
}

func (s *Store) getVersion(ctx context.Context, q querier, id int64) (*store.Version, error) {
	return scanVersion(q.QueryRow(ctx, s.sql(`SELECT `+versionColumns+` FROM {schema}.versions WHERE id = $1`), id))
}

// ListVersions implements store.Store. An empty Credential lists every
// credential's versions.
func (s *Store) ListVersions(ctx context.Context, p store.ListVersionsParams) ([]*store.Version, error) {
	var (
		where []string
		args  []any
	)
	if p.Credential != "" {
		args = append(args, p.Credential)
		where = append(where, fmt.Sprintf("credential = $%d", len(args)))
	}
	if len(p.Stages) > 0 {
		stages := make([]string, len(p.Stages))
		for i, st := range p.Stages {
			stages[i] = string(st)
		}
		args = append(args, stages)
		where = append(where, fmt.Sprintf("stage = ANY($%d)", len(args)))
	}
	rows, err := s.pool.Query(ctx, s.sql(`SELECT `+versionColumns+` FROM {schema}.versions`+whereClause(where)+
		` ORDER BY id DESC`+limitClause(p.Limit)), args...)
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
	err := s.write(ctx, func(tx pgx.Tx) error {
		if err := s.checkFence(ctx, tx, p.Fence); err != nil {
			return err
		}
		var stage string
		if err := tx.QueryRow(ctx, s.sql(`SELECT stage FROM {schema}.versions WHERE id = $1 FOR UPDATE`), p.ID).Scan(&stage); err != nil {
			return mapErr(err)
		}
		if stage != string(store.StagePending) {
			return fmt.Errorf("it is %s, not pending: %w", stage, store.ErrConflict)
		}
		_, err := tx.Exec(ctx, s.sql(`UPDATE {schema}.versions SET sealed = $1, fingerprint = $2 WHERE id = $3`), p.Sealed, p.Fingerprint, p.ID)
		return mapErr(err)
	})
	if err != nil {
		return fmt.Errorf("replace secret of version %d: %w", p.ID, err)
	}
	return nil
}

// retireAndWipe retires every version of credential in stage, dropping its
// secret.
func (s *Store) retireAndWipe(ctx context.Context, tx pgx.Tx, credential string, stage store.Stage, now nanoTime) error {
	_, err := tx.Exec(ctx, s.sql(`
		UPDATE {schema}.versions SET stage = 'retired', sealed = NULL, retired_at = COALESCE(retired_at, $1)
		WHERE credential = $2 AND stage = $3`),
		now, credential, string(stage))
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
		rotationID                  *int64
		created, activated, retired *int64
	)
	if err := row.Scan(&v.ID, &v.Credential, &v.Seq, &v.Role, &stage, &rotationID, &v.Sealed, &v.Fingerprint,
		&created, &activated, &retired); err != nil {
		return nil, mapErr(err)
	}
	v.Stage = store.Stage(stage)
	v.RotationID = idVal(rotationID)
	v.CreatedAt = timeVal(created)
	v.ActivatedAt = timeVal(activated)
	v.RetiredAt = timeVal(retired)
	return &v, nil
}
