package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"github.com/rotorhq/rotor/internal/store"
)

// AppendAudit implements store.Store.
func (s *Store) AppendAudit(ctx context.Context, p store.AppendAuditParams) (*store.AuditEvent, error) {
	var e *store.AuditEvent
	err := s.writeAs(ctx, p.Deferred, func(tx *wtx) error {
		var err error
		e, err = appendAudit(ctx, tx, p)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("append audit event %q: %w", p.Event, err)
	}
	return e, nil
}

// appendAudit inserts one audit event. The event comes from what was
// inserted, not read back.
func appendAudit(ctx context.Context, q querier, p store.AppendAuditParams) (*store.AuditEvent, error) {
	res, err := q.ExecContext(ctx, `
		INSERT INTO audit (at, credential, rotation_id, event, actor, detail) VALUES (?, ?, ?, ?, ?, ?)`,
		timeArg(p.Now), p.Credential, p.RotationID, p.Event, p.Actor, p.Detail)
	if err != nil {
		return nil, mapErr(err)
	}
	id, err := res.LastInsertId()
	if err != nil {
		return nil, mapErr(err)
	}
	return &store.AuditEvent{ID: id, At: storedTime(p.Now), Credential: p.Credential, RotationID: p.RotationID,
		Event: p.Event, Actor: p.Actor, Detail: p.Detail}, nil
}

// ListAudit implements store.Store. An empty Credential lists every event.
func (s *Store) ListAudit(ctx context.Context, p store.ListAuditParams) ([]*store.AuditEvent, error) {
	var (
		where []string
		args  []any
	)
	if p.Credential != "" {
		where = append(where, "credential = ?")
		args = append(args, p.Credential)
	}
	if !p.Since.IsZero() {
		where = append(where, "at >= ?")
		args = append(args, timeArg(p.Since))
	}
	if len(p.Events) > 0 {
		where = append(where, "event IN ("+strings.Repeat(", ?", len(p.Events))[2:]+")")
		for _, e := range p.Events {
			args = append(args, e)
		}
	}
	rows, err := s.query(ctx, `SELECT id, at, credential, rotation_id, event, actor, detail FROM audit`+
		whereClause(where)+` ORDER BY id DESC`+limitClause(p.Limit), args...)
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
		at sql.NullInt64
	)
	if err := row.Scan(&e.ID, &at, &e.Credential, &e.RotationID, &e.Event, &e.Actor, &e.Detail); err != nil {
		return nil, mapErr(err)
	}
	e.At = timeVal(at)
	return &e, nil
}
