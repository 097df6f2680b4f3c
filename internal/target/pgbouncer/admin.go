package pgbouncer

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/rotorhq/rotor/internal/secret"
	"github.com/rotorhq/rotor/internal/target"
)

// adminConnectTimeout bounds a connection attempt when the caller's
// context has no deadline of its own.
const adminConnectTimeout = 10 * time.Second

// admin talks to PgBouncer's admin console, which understands only the
// simple query protocol (targets-api.md §11): every command goes through
// PgConn().Exec, and the connection is configured for simple protocol so
// nothing pgx does on its own sends a Parse message.
type admin struct {
	desc string // `pgbouncer target "x"`, for errors
	url  secret.String
	// where is the console's host:port, safe to show.
	where string
}

func newAdmin(desc string, url secret.String) (*admin, error) {
	cfg, err := pgx.ParseConfig(url.Reveal())
	if err != nil {
		// pgx's message may quote the URL, password included.
		return nil, fmt.Errorf("%s: admin_url does not parse as a PostgreSQL connection string; write it as postgresql://user:password@host:6432/pgbouncer: %w", desc, target.ErrInvalid)
	}
	if cfg.Database != "pgbouncer" {
		return nil, fmt.Errorf("%s: admin_url names database %q, but the admin console is the database \"pgbouncer\"; write …@host:port/pgbouncer: %w", desc, cfg.Database, target.ErrInvalid)
	}
	return &admin{desc: desc, url: url, where: fmt.Sprintf("%s:%d", cfg.Host, cfg.Port)}, nil
}

func (a *admin) connect(ctx context.Context) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig(a.url.Reveal())
	if err != nil {
		return nil, fmt.Errorf("%s: admin_url does not parse: %w", a.desc, target.ErrInvalid)
	}
	cfg.DefaultQueryExecMode = pgx.QueryExecModeSimpleProtocol
	cfg.StatementCacheCapacity = 0
	cfg.DescriptionCacheCapacity = 0
	if _, ok := ctx.Deadline(); !ok && cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = adminConnectTimeout
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err == nil {
		return conn, nil
	}
	err = secret.Scrub(err, a.url, secret.New(cfg.Password))
	var pgErr *pgconn.PgError
	var netErr net.Error
	switch {
	case errors.As(err, &pgErr) && isAuthFailure(pgErr):
		return nil, fmt.Errorf("%s: the PgBouncer admin console at %s refused admin_url's user %q (%s); the user must be listed in admin_users (or stats_users cannot RELOAD) and have its password in PgBouncer's auth_file: %w",
			a.desc, a.where, cfg.User, pgErr.Message, target.ErrAuth)
	case errors.As(err, &netErr) || errors.Is(err, context.DeadlineExceeded):
		// PgBouncer restarting or briefly unreachable: worth another try.
		return nil, &target.RetryableError{Err: fmt.Errorf("%s: cannot reach the PgBouncer admin console at %s; check that PgBouncer runs and listens there: %w", a.desc, a.where, err)}
	}
	return nil, fmt.Errorf("%s: cannot log in to the PgBouncer admin console at %s: %w", a.desc, a.where, err)
}

// isAuthFailure recognises PgBouncer's refusals: SQLSTATE class 28
// (invalid authorization) from newer versions, and the 08P01 "SASL
// authentication failed" / "not allowed" messages older ones (1.18) send.
func isAuthFailure(e *pgconn.PgError) bool {
	return strings.HasPrefix(e.Code, "28") ||
		strings.Contains(e.Message, "authentication failed") ||
		strings.Contains(e.Message, "not allowed") ||
		strings.Contains(e.Message, "no such user")
}

// exec runs one admin command on a connection of its own and returns its
// results.
func (a *admin) exec(ctx context.Context, command string) ([]*pgconn.Result, error) {
	conn, err := a.connect(ctx)
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	return a.run(ctx, conn, command)
}

// run runs one admin command on conn.
func (a *admin) run(ctx context.Context, conn *pgx.Conn, command string) ([]*pgconn.Result, error) {
	results, err := conn.PgConn().Exec(ctx, command).ReadAll()
	if err != nil {
		err = secret.Scrub(err, a.url)
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && strings.Contains(pgErr.Message, "admin access needed") {
			return nil, fmt.Errorf("%s: %s on the admin console at %s was refused (%s); list admin_url's user in PgBouncer's admin_users: %w", a.desc, command, a.where, pgErr.Message, target.ErrAuth)
		}
		return nil, fmt.Errorf("%s: %s on the admin console at %s failed: %w", a.desc, command, a.where, err)
	}
	return results, nil
}

// config returns SHOW CONFIG as key → value.
func (a *admin) config(ctx context.Context) (map[string]string, error) {
	results, err := a.exec(ctx, "SHOW CONFIG")
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, r := range results {
		key, value := -1, -1
		for i, fd := range r.FieldDescriptions {
			switch fd.Name {
			case "key":
				key = i
			case "value":
				value = i
			}
		}
		if key < 0 || value < 0 {
			return nil, fmt.Errorf("%s: SHOW CONFIG on %s answered without key and value columns; is admin_url really a PgBouncer admin console?", a.desc, a.where)
		}
		for _, row := range r.Rows {
			out[string(row[key])] = string(row[value])
		}
	}
	return out, nil
}
