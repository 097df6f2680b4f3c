package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/rotorhq/rotor/internal/provider"
)

// ReadMark implements provider.Marker: the role's comment.
func (p *Postgres) ReadMark(ctx context.Context, req provider.ReadMarkRequest) (provider.ReadMarkResponse, error) {
	op := fmt.Sprintf("read the comment of role %q", req.Role)
	var mark *string
	err := p.withRole(ctx, op, req.Role, func(conn *pgx.Conn) error {
		return conn.QueryRow(ctx, `SELECT shobj_description(oid, 'pg_authid') FROM pg_roles WHERE rolname = $1`, req.Role).Scan(&mark)
	})
	if err != nil {
		return provider.ReadMarkResponse{}, err
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
