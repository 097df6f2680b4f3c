package neonfake

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/rotorhq/rotor/internal/pgcluster"
	"github.com/rotorhq/rotor/internal/pgtest"
	"github.com/rotorhq/rotor/internal/secret"
)

// What plays Neon's compute: the cluster's superuser stands in for Neon's
// cloud_admin, and neon_superuser is the group Neon puts the roles it
// creates in (neon.com/docs/manage/roles, "The neon_superuser role").

func connect(ctx context.Context, c *pgcluster.Cluster, db string) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig(c.AdminURL(db).Reveal())
	if err != nil {
		return nil, errors.New("neonfake: the cluster's admin URL does not parse")
	}
	cfg.RuntimeParams["application_name"] = "neonfake"
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("neonfake: connect to %s:%d/%s: %w", c.Host, c.Port, db, secret.Scrub(err, c.SuperPassword()))
	}
	return conn, nil
}

func exec(ctx context.Context, c *pgcluster.Cluster, db, sql string, args ...any) error {
	conn, err := connect(ctx, c, db)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	_, err = conn.Exec(ctx, sql, args...)
	return err
}

func ident(s string) string { return pgx.Identifier{s}.Sanitize() }

func literal(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// duplicate reports the errors two concurrent CREATEs of one name give.
func duplicate(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && (pgErr.Code == "42710" || pgErr.Code == "23505" || pgErr.Code == "42P04")
}

func ensureNeonSuperuser(ctx context.Context, c *pgcluster.Cluster) error {
	err := exec(ctx, c, "postgres", `CREATE ROLE neon_superuser NOLOGIN CREATEDB CREATEROLE BYPASSRLS
		IN ROLE pg_read_all_data, pg_write_all_data, pg_signal_backend, pg_read_all_stats`)
	if err != nil && !duplicate(err) {
		return fmt.Errorf("neonfake: create neon_superuser: %w", err)
	}
	return nil
}

// createNeonRole creates a role the way Neon's API does: LOGIN, member of
// neon_superuser, with a password only its verifier of which reaches SQL.
func createNeonRole(ctx context.Context, c *pgcluster.Cluster, name string, pw secret.String) (bool, error) {
	v, err := secret.SCRAMVerifier(nil, pw)
	if err != nil {
		return false, err
	}
	err = exec(ctx, c, "postgres", "CREATE ROLE "+ident(name)+" LOGIN CREATEROLE CREATEDB BYPASSRLS IN ROLE neon_superuser PASSWORD "+literal(v.Reveal()))
	switch {
	case duplicate(err):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("neonfake: create role %q: %w", name, secret.Scrub(err, v))
	}
	return true, nil
}

func createDatabase(ctx context.Context, c *pgcluster.Cluster, name, owner string) (bool, error) {
	err := exec(ctx, c, "postgres", "CREATE DATABASE "+ident(name)+" OWNER "+ident(owner))
	switch {
	case duplicate(err):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("neonfake: create database %q: %w", name, err)
	}
	return true, nil
}

func dropDatabase(ctx context.Context, c *pgcluster.Cluster, name string) error {
	if err := exec(ctx, c, "postgres", "DROP DATABASE IF EXISTS "+ident(name)+" WITH (FORCE)"); err != nil {
		return fmt.Errorf("drop database %q: %w", name, err)
	}
	return nil
}

func dropRole(ctx context.Context, c *pgcluster.Cluster, name string) error {
	return pgtest.DropRole(ctx, c, name)
}

// systemRole reports roles Neon never shows: PostgreSQL's own, Neon's
// internal ones, and the superuser that stands in for cloud_admin.
func systemRoleFilter(c *pgcluster.Cluster) (string, []any) {
	return `rolname NOT LIKE 'pg\_%' AND rolname <> ALL($1::text[])`,
		[]any{[]string{c.SuperUser, "neon_superuser", "cloud_admin", "zenith_admin"}}
}

func listRoles(ctx context.Context, c *pgcluster.Cluster) ([]string, error) {
	conn, err := connect(ctx, c, "postgres")
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	where, args := systemRoleFilter(c)
	rows, err := conn.Query(ctx, "SELECT rolname FROM pg_roles WHERE "+where+" ORDER BY rolname", args...)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

func roleExists(ctx context.Context, c *pgcluster.Cluster, name string) (bool, error) {
	conn, err := connect(ctx, c, "postgres")
	if err != nil {
		return false, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	where, args := systemRoleFilter(c)
	var ok bool
	err = conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $2 AND "+where+")", append(args, name)...).Scan(&ok)
	return ok, err
}

// setPassword gives role pw's verifier, as Neon's apply_config does.
func setPassword(ctx context.Context, c *pgcluster.Cluster, role string, pw secret.String) error {
	v, err := secret.SCRAMVerifier(nil, pw)
	if err != nil {
		return err
	}
	if err := exec(ctx, c, "postgres", "ALTER ROLE "+ident(role)+" PASSWORD "+literal(v.Reveal())); err != nil {
		return secret.Scrub(err, v)
	}
	return nil
}

// dropConnections ends every client session of the branch's read_write
// compute, of every role: each session through its endpoint, whatever
// database it is on, and every other session on the branch's databases
// (tests that reach the cluster directly), but the superuser's, which
// stands in for Neon's own machinery, and those through the branch's
// read_only endpoint, a compute of its own on Neon. Only the branch's
// databases: a Neon compute serves nothing else, and a cluster shared by
// parallel tests serves other tests' databases too. A login under way
// through the endpoint completes: it is a connection made after the drop.
// When the server process ends, the proxy passes on its FATAL message and
// closes the client's connection.
func dropConnections(ctx context.Context, b *Branch, dbs []string) error {
	through := b.rw.backendPIDs()
	replica := []int32{}
	if b.ro != nil {
		replica = b.ro.backendPIDs()
	}
	c := b.Cluster
	return exec(ctx, c, "postgres", `
		SELECT pg_terminate_backend(pid) FROM pg_stat_activity
		WHERE backend_type = 'client backend' AND pid <> pg_backend_pid() AND usename <> $1
		  AND (datname = ANY($2) OR pid = ANY($3)) AND pid <> ALL($4)`, c.SuperUser, dbs, through, replica)
}

// roleVerifier reads a role's password verifier, as Neon's proxy gets it
// from the control plane; ok is false when the role does not exist or
// has no password.
func (s *Server) roleVerifier(ctx context.Context, c *pgcluster.Cluster, role string) (string, bool, error) {
	pool, err := s.adminPool(c)
	if err != nil {
		return "", false, err
	}
	var v *string
	err = pool.QueryRow(ctx, "SELECT rolpassword FROM pg_authid WHERE rolname = $1", role).Scan(&v)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return "", false, nil
	case err != nil:
		return "", false, fmt.Errorf("read the verifier of role %q: %w", role, secret.Scrub(err, c.SuperPassword()))
	case v == nil:
		return "", false, nil
	}
	return *v, true, nil
}

// adminPool is a few superuser connections to the cluster, shared by its
// proxies' logins.
func (s *Server) adminPool(c *pgcluster.Cluster) (*pgxpool.Pool, error) {
	s.poolMu.Lock()
	defer s.poolMu.Unlock()
	if p := s.pools[c]; p != nil {
		return p, nil
	}
	cfg, err := pgxpool.ParseConfig(c.AdminURL("postgres").Reveal())
	if err != nil {
		return nil, errors.New("neonfake: the cluster's admin URL does not parse")
	}
	cfg.MaxConns = 4
	cfg.ConnConfig.RuntimeParams["application_name"] = "neonfake-proxy"
	p, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		return nil, fmt.Errorf("neonfake: connect to the cluster: %w", secret.Scrub(err, c.SuperPassword()))
	}
	s.pools[c] = p
	return p, nil
}

// copyRoles gives child the parent's roles as a new branch gets them:
// same names, attributes and password verifiers. It returns the roles it
// created.
func copyRoles(ctx context.Context, parent, child *pgcluster.Cluster) ([]string, error) {
	src, err := connect(ctx, parent, "postgres")
	if err != nil {
		return nil, err
	}
	defer src.Close(context.WithoutCancel(ctx))
	where, args := systemRoleFilter(parent)
	rows, err := src.Query(ctx, `
		SELECT a.rolname, a.rolcanlogin, a.rolcreaterole, a.rolcreatedb, a.rolbypassrls, a.rolpassword,
		       pg_has_role(a.oid, 'neon_superuser', 'MEMBER')
		FROM pg_authid a WHERE `+strings.ReplaceAll(where, "rolname", "a.rolname")+` ORDER BY a.rolname`, args...)
	if err != nil {
		return nil, fmt.Errorf("neonfake: read the parent's roles: %w", err)
	}
	type role struct {
		name                             string
		login, createRole, createDB, rls bool
		verifier                         *string
		neon                             bool
	}
	var roles []role
	for rows.Next() {
		var r role
		if err := rows.Scan(&r.name, &r.login, &r.createRole, &r.createDB, &r.rls, &r.verifier, &r.neon); err != nil {
			rows.Close()
			return nil, err
		}
		roles = append(roles, r)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	dst, err := connect(ctx, child, "postgres")
	if err != nil {
		return nil, err
	}
	defer dst.Close(context.WithoutCancel(ctx))
	var created []string
	for _, r := range roles {
		sql := "CREATE ROLE " + ident(r.name)
		for _, a := range []struct {
			on      bool
			yes, no string
		}{{r.login, " LOGIN", " NOLOGIN"}, {r.createRole, " CREATEROLE", ""}, {r.createDB, " CREATEDB", ""}, {r.rls, " BYPASSRLS", ""}} {
			if a.on {
				sql += a.yes
			} else {
				sql += a.no
			}
		}
		if r.neon {
			sql += " IN ROLE neon_superuser"
		}
		if r.verifier != nil {
			sql += " PASSWORD " + literal(*r.verifier)
		}
		_, err := dst.Exec(ctx, sql)
		switch {
		case duplicate(err):
		case err != nil:
			return nil, fmt.Errorf("neonfake: copy role %q to the child branch: %w", r.name, scrubVerifier(err, r.verifier))
		default:
			created = append(created, r.name)
		}
	}
	return created, nil
}

func scrubVerifier(err error, v *string) error {
	if v == nil {
		return err
	}
	return secret.Scrub(err, secret.New(*v))
}
