package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/rotorhq/rotor/internal/provider"
	"github.com/rotorhq/rotor/internal/secret"
)

// EnsureRoles creates what is missing of the dual-strategy layout in one
// transaction, so that a failure leaves nothing half-made. It refuses,
// rather than silently changes, a role whose existing setup contradicts the
// layout.
func (p *Postgres) EnsureRoles(ctx context.Context, req provider.EnsureRolesRequest) (provider.EnsureRolesResponse, error) {
	op := fmt.Sprintf("set up group role %q with login roles %s", req.Group, quotedList(req.Logins))
	if err := checkLayout(op, req); err != nil {
		return provider.EnsureRolesResponse{}, err
	}
	var (
		changes []string
		// verifiers of new roles, scrubbed from any error
		verifiers []secret.String
	)
	err := p.quietTx(ctx, func(tx pgx.Tx) error {
		changes = changes[:0]
		group, err := lookupRole(ctx, tx, req.Group)
		if err != nil {
			return err
		}
		switch {
		case !group.exists:
			if _, err := tx.Exec(ctx, "CREATE ROLE "+ident(req.Group)+" NOLOGIN"); err != nil {
				return err
			}
			changes = append(changes, fmt.Sprintf("created group role %q (NOLOGIN)", req.Group))
		case group.login:
			return invalid(op, "role %q exists and has LOGIN, but the owner group must be NOLOGIN so that nobody logs in as it; run ALTER ROLE %s NOLOGIN or choose another group name", req.Group, ident(req.Group))
		}
		for _, login := range req.Logins {
			c, err := ensureLogin(ctx, tx, op, req.Group, login, &verifiers)
			if err != nil {
				return err
			}
			changes = append(changes, c...)
		}
		if req.Database != "" {
			c, err := ensureConnect(ctx, tx, op, req.Group, req.Database)
			if err != nil {
				return err
			}
			changes = append(changes, c...)
		}
		return nil
	})
	if err != nil {
		return provider.EnsureRolesResponse{}, p.fail(op, "", err, verifiers...)
	}
	return provider.EnsureRolesResponse{Changes: changes}, nil
}

func checkLayout(op string, req provider.EnsureRolesRequest) error {
	if err := checkRoleName(op, req.Group); err != nil {
		return err
	}
	if len(req.Logins) == 0 {
		return invalid(op, "no login roles given; name at least one (two for the dual strategy)")
	}
	seen := map[string]bool{req.Group: true}
	for _, l := range req.Logins {
		if err := checkRoleName(op, l); err != nil {
			return err
		}
		if seen[l] {
			return invalid(op, "role %q is named twice; the group and each login role need distinct names", l)
		}
		seen[l] = true
	}
	return nil
}

func ensureLogin(ctx context.Context, tx pgx.Tx, op, group, login string, verifiers *[]secret.String) ([]string, error) {
	var changes []string
	info, err := lookupRole(ctx, tx, login)
	if err != nil {
		return nil, err
	}
	if !info.exists {
		v, err := randomVerifier()
		if err != nil {
			return nil, err
		}
		*verifiers = append(*verifiers, v)
		if _, err := tx.Exec(ctx, "CREATE ROLE "+ident(login)+" LOGIN PASSWORD "+quoteLiteral(v.Reveal())); err != nil {
			return nil, err
		}
		changes = append(changes, fmt.Sprintf("created login role %q with a random password nobody knows", login))
	}
	var member bool
	err = tx.QueryRow(ctx, `
		SELECT EXISTS (
			SELECT 1 FROM pg_auth_members m
			JOIN pg_roles g ON g.oid = m.roleid
			JOIN pg_roles l ON l.oid = m.member
			WHERE g.rolname = $1 AND l.rolname = $2)`, group, login).Scan(&member)
	if err != nil {
		return nil, err
	}
	if !member {
		if _, err := tx.Exec(ctx, "GRANT "+ident(group)+" TO "+ident(login)); err != nil {
			return nil, err
		}
		changes = append(changes, fmt.Sprintf("made %q a member of %q", login, group))
	}
	var config []string
	err = tx.QueryRow(ctx, `
		SELECT coalesce(s.setconfig, '{}')
		FROM pg_roles r
		LEFT JOIN pg_db_role_setting s ON s.setrole = r.oid AND s.setdatabase = 0
		WHERE r.rolname = $1`, login).Scan(&config)
	if err != nil {
		return nil, err
	}
	current, hasSetting := "", false
	for _, kv := range config {
		if v, ok := strings.CutPrefix(kv, "role="); ok {
			current, hasSetting = v, true
		}
	}
	switch {
	case !hasSetting:
		if _, err := tx.Exec(ctx, "ALTER ROLE "+ident(login)+" SET role = "+quoteLiteral(group)); err != nil {
			return nil, err
		}
		changes = append(changes, fmt.Sprintf("set role = %q for %q, so that objects it creates belong to %q", group, login, group))
	case current != group:
		return nil, invalid(op, "login role %q already has `SET role = %s`, so its objects would belong to %q instead of %q; run ALTER ROLE %s RESET role, or use %q as the group", login, current, current, group, ident(login), current)
	}
	return changes, nil
}

func ensureConnect(ctx context.Context, tx pgx.Tx, op, group, database string) ([]string, error) {
	var exists, granted bool
	err := tx.QueryRow(ctx, `
		SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1),
		       EXISTS (
		           SELECT 1 FROM pg_database d
		           CROSS JOIN LATERAL aclexplode(d.datacl) a
		           JOIN pg_roles r ON r.oid = a.grantee
		           WHERE d.datname = $1 AND r.rolname = $2 AND a.privilege_type = 'CONNECT')`,
		database, group).Scan(&exists, &granted)
	if err != nil {
		return nil, err
	}
	if !exists {
		return nil, invalid(op, "database %q does not exist; create it or fix the database name", database)
	}
	if granted {
		return nil, nil
	}
	if _, err := tx.Exec(ctx, "GRANT CONNECT ON DATABASE "+ident(database)+" TO "+ident(group)); err != nil {
		return nil, err
	}
	return []string{fmt.Sprintf("granted CONNECT on database %q to %q", database, group)}, nil
}

type roleInfo struct {
	exists, login bool
}

func lookupRole(ctx context.Context, q interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}, name string) (roleInfo, error) {
	var info roleInfo
	err := q.QueryRow(ctx, `SELECT true, rolcanlogin FROM pg_roles WHERE rolname = $1`, name).Scan(&info.exists, &info.login)
	if errors.Is(err, pgx.ErrNoRows) {
		return roleInfo{}, nil
	}
	return info, err
}

func quotedList(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = fmt.Sprintf("%q", n)
	}
	return strings.Join(q, ", ")
}
