package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/rotorhq/rotor/internal/provider"
)

// Check connects and reads; it changes nothing. Whether the admin may alter
// a role is judged simply: a superuser may alter any role, a CREATEROLE
// role any non-superuser (PostgreSQL 16 also wants ADMIN OPTION on it,
// which SetPassword will report if missing).
func (p *Postgres) Check(ctx context.Context, req provider.CheckRequest) (provider.CheckResponse, error) {
	const op = "check the postgres provider"
	for _, r := range req.Roles {
		if err := checkRoleName(op, r); err != nil {
			return provider.CheckResponse{}, err
		}
	}
	var (
		resp                        provider.CheckResponse
		version, admin              string
		adminSuper, adminCreateRole bool
		readStats, signal           bool
		roles                       = make([]roleInfo, len(req.Roles))
		supers                      = make([]bool, len(req.Roles))
	)
	err := p.conns.with(ctx, func(conn *pgx.Conn) error {
		err := conn.QueryRow(ctx, `
			SELECT current_setting('server_version'), rolname, rolsuper, rolcreaterole,
			       pg_has_role(current_user, 'pg_read_all_stats', 'USAGE'),
			       pg_has_role(current_user, 'pg_signal_backend', 'USAGE')
			FROM pg_roles WHERE rolname = current_user`).Scan(&version, &admin, &adminSuper, &adminCreateRole, &readStats, &signal)
		if err != nil {
			return err
		}
		for i, r := range req.Roles {
			err := conn.QueryRow(ctx, `SELECT true, rolcanlogin, rolsuper FROM pg_roles WHERE rolname = $1`, r).
				Scan(&roles[i].exists, &roles[i].login, &supers[i])
			if err != nil && !errors.Is(err, pgx.ErrNoRows) {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return provider.CheckResponse{}, p.fail(op, "", err)
	}
	resp.ServerVersion = "PostgreSQL " + version
	if !adminSuper {
		resp.Notes = append(resp.Notes, fmt.Sprintf("admin role %q is not a superuser, so old passwords cannot be snapshotted for rollback and the server may log the SCRAM verifiers rotor sends", admin))
		if !adminCreateRole {
			resp.Notes = append(resp.Notes, fmt.Sprintf("admin role %q has neither SUPERUSER nor CREATEROLE, so it cannot change passwords; grant it CREATEROLE or use another admin_url", admin))
		}
		if !readStats {
			resp.Notes = append(resp.Notes, fmt.Sprintf("admin role %q cannot see when other roles' sessions started, so every session counts as old while draining; grant it pg_read_all_stats", admin))
		}
		if !signal {
			resp.Notes = append(resp.Notes, fmt.Sprintf("admin role %q cannot end other roles' sessions, which revoke mode needs; grant it pg_signal_backend", admin))
		}
	}
	for i, r := range req.Roles {
		switch {
		case !roles[i].exists:
			resp.Notes = append(resp.Notes, fmt.Sprintf("role %q does not exist; %s", r, p.hints.MissingRole))
			continue
		case supers[i] && !adminSuper:
			resp.Notes = append(resp.Notes, fmt.Sprintf("role %q is a superuser, which only a superuser admin may alter; use a superuser admin_url or a non-superuser role", r))
		case !adminSuper && !adminCreateRole:
			resp.Notes = append(resp.Notes, fmt.Sprintf("admin role %q cannot alter role %q", admin, r))
		}
		if !roles[i].login {
			resp.Notes = append(resp.Notes, fmt.Sprintf("role %q has no LOGIN; the next password change gives it back", r))
		}
	}
	return resp, nil
}
