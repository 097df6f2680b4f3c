package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/rotorhq/rotor/internal/provider"
)

// ReadMark implements provider.Marker: the role's comment.
func (p *Postgres) ReadMark(ctx context.Context, req provider.ReadMarkRequest) (provider.ReadMarkResponse, error) {
	op := fmt.Sprintf("read the comment of role %q", req.Role)
	if err := checkRoleName(op, req.Role); err != nil {
		return provider.ReadMarkResponse{}, err
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
	if mark == nil {
		return provider.ReadMarkResponse{}, nil
	}
	return provider.ReadMarkResponse{Mark: *mark}, nil
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
