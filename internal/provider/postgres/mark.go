package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/rotorhq/rotor/internal/provider"
	"github.com/rotorhq/rotor/internal/secret"
)

// ReadMark implements provider.Marker: the role's comment, and with
// req.Snapshot its Snapshot in the same query when this admin may read
// pg_authid.
func (p *Postgres) ReadMark(ctx context.Context, req provider.ReadMarkRequest) (provider.ReadMarkResponse, error) {
	op := fmt.Sprintf("read the comment of role %q", req.Role)
	if err := checkRoleName(op, req.Role); err != nil {
		return provider.ReadMarkResponse{}, err
	}
	if req.Snapshot && !p.noAuthid.Load() {
		resp, err := p.readMarkAndSnapshot(ctx, op, req.Role)
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != "42501" {
			return resp, err
		}
		// Only a superuser reads pg_authid: the mark alone, from now on.
		p.noAuthid.Store(true)
	}
	// One query: no row is a missing role (withRole's separate check would
	// be a second round trip in every rotation's prepare).
	var mark *string
	err := p.conns.with(ctx, func(conn *pgx.Conn) error {
		return conn.QueryRow(ctx, `SELECT shobj_description(oid, 'pg_authid') FROM pg_roles WHERE rolname = $1`, req.Role).Scan(&mark)
	})
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return provider.ReadMarkResponse{}, p.missingRole(op, req.Role)
	case err != nil:
		return provider.ReadMarkResponse{}, p.fail(op, req.Role, err)
	}
	return provider.ReadMarkResponse{Mark: deref(mark)}, nil
}

// readMarkAndSnapshot reads the role's comment and its Snapshot in one
// query. A permission error comes back as the server's, for ReadMark to
// fall back on.
func (p *Postgres) readMarkAndSnapshot(ctx context.Context, op, role string) (provider.ReadMarkResponse, error) {
	var (
		mark, verifier *string
		login          bool
	)
	err := p.conns.with(ctx, func(conn *pgx.Conn) error {
		return conn.QueryRow(ctx, `SELECT shobj_description(oid, 'pg_authid'), rolpassword, rolcanlogin FROM pg_authid WHERE rolname = $1`, role).
			Scan(&mark, &verifier, &login)
	})
	var pgErr *pgconn.PgError
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return provider.ReadMarkResponse{}, p.missingRole(op, role)
	case errors.As(err, &pgErr) && pgErr.Code == "42501":
		return provider.ReadMarkResponse{}, err
	case err != nil:
		return provider.ReadMarkResponse{}, p.fail(op, role, err)
	}
	snap := &provider.SnapshotResponse{Login: login}
	if verifier != nil {
		snap.Verifier = secret.New(*verifier)
	}
	return provider.ReadMarkResponse{Mark: deref(mark), Snapshot: snap}, nil
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// WriteMark implements provider.Marker: COMMENT ON ROLE, which needs the
// same CREATEROLE the password change does.
func (p *Postgres) WriteMark(ctx context.Context, req provider.WriteMarkRequest) (provider.WriteMarkResponse, error) {
	op := fmt.Sprintf("comment on role %q", req.Role)
	err := p.withRole(ctx, op, req.Role, func(conn *pgx.Conn) error {
		_, err := conn.Exec(ctx, commentOnRole(req.Role, req.Mark))
		return err
	})
	return provider.WriteMarkResponse{}, err
}

var _ provider.Marker = (*Postgres)(nil)

func commentOnRole(role, mark string) string {
	return "COMMENT ON ROLE " + pgx.Identifier{role}.Sanitize() + " IS " + quoteLiteral(mark)
}
