package postgres

import (
	"context"
	"fmt"

	"github.com/rotorhq/rotor/internal/store"
)

const auditColumns = `id, at, credential, rotation_id, event, actor, detail`

// AppendAudit implements store.Store.
func (s *Store) AppendAudit(ctx context.Context, p store.AppendAuditParams) (*store.AuditEvent, error) {
	var e *store.AuditEvent
	err := s.single(ctx, p.Deferred, func(q querier) error {
		var err error
		e, err = s.appendAudit(ctx, q, p)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("append audit event %q: %w", p.Event, err)
	}
	return e, nil
}

func (s *Store) appendAudit(ctx context.Context, q querier, p store.AppendAuditParams) (*store.AuditEvent, error) {
	return scanAudit(q.QueryRow(ctx, s.sql(`
		INSERT INTO {schema}.audit (at, credential, rotation_id, event, actor, detail) VALUES ($1, $2, $3, $4, $5, $6)
		RETURNING `+auditColumns),
		timeArg(p.Now), p.Credential, p.RotationID, p.Event, p.Actor, p.Detail))
}

// ListAudit implements store.Store. An empty Credential lists every event.
func (s *Store) ListAudit(ctx context.Context, p store.ListAuditParams) ([]*store.AuditEvent, error) {
	var (
		where []string
		args  []any
	)
	if p.Credential != "" {
		args = append(args, p.Credential)
		where = append(where, fmt.Sprintf("credential = $%d", len(args)))
	}
	if !p.Since.IsZero() {
		args = append(args, timeArg(p.Since))
		where = append(where, fmt.Sprintf("at >= $%d", len(args)))
	}
	if len(p.Events) > 0 {
		args = append(args, p.Events)
		where = append(where, fmt.Sprintf("event = ANY($%d)", len(args)))
	}
	rows, err := s.pool.Query(ctx, s.sql(`SELECT `+auditColumns+` FROM {schema}.audit`+
		whereClause(where)+` ORDER BY id DESC`+limitClause(p.Limit)), args...)
	if err != nil {
		return nil, fmt.Errorf("list audit: %w", mapErr(err))
	}
	es, err := collect(rows, scanAudit)
	if err != nil {
		return nil, fmt.Errorf("list audit: %w", err)
	}
	return es, nil
}

func scanAudit(row rowScanner) (*store.AuditEvent, error) {
	var (
		e  store.AuditEvent
		at *int64
	)
	if err := row.Scan(&e.ID, &at, &e.Credential, &e.RotationID, &e.Event, &e.Actor, &e.Detail); err != nil {
		return nil, mapErr(err)
	}
	e.At = timeVal(at)
	return &e, nil
}
