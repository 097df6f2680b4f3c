package postgres

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/rotorhq/rotor/internal/provider"
	"github.com/rotorhq/rotor/internal/secret"
)

// A credential may rotate the very role admin_url logs in as (a small
// set-up where the application's role is also the one allowed to ALTER
// ROLE itself). The engine then tells the provider which passwords to use
// (provider.SelfManager): the current version's at the start of a
// rotation, the new one the moment the server has it. Until it does, the
// password in admin_url is used.

// AdminRole implements provider.SelfManager: admin_url's user.
func (p *Postgres) AdminRole(context.Context) (string, error) { return p.conns.cfg.User, nil }

// UseAdminPasswords implements provider.SelfManager. Connections already
// open stay as they are: a session outlives a password change.
func (p *Postgres) UseAdminPasswords(passwords []secret.String) {
	var keep []secret.String
	for _, pw := range passwords {
		if !pw.IsZero() {
			keep = append(keep, pw)
		}
	}
	p.conns.mu.Lock()
	defer p.conns.mu.Unlock()
	p.conns.passwords = keep
}

func (c *conns) passwordsInUse() []secret.String {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]secret.String(nil), c.passwords...)
}

// connect opens a connection with the first of passwords the server
// accepts (cfg's own when there are none), and remembers that one first.
func (c *conns) connect(ctx context.Context, passwords []secret.String) (*pgx.Conn, error) {
	if len(passwords) == 0 {
		return pgx.ConnectConfig(ctx, c.cfg)
	}
	var err error
	for i, pw := range passwords {
		cfg := c.cfg.Copy()
		cfg.Password = pw.Reveal()
		var conn *pgx.Conn
		conn, err = pgx.ConnectConfig(ctx, cfg)
		if err == nil {
			if i > 0 {
				c.mu.Lock()
				if len(c.passwords) > i && c.passwords[i].Equal(pw) {
					c.passwords[0], c.passwords[i] = c.passwords[i], c.passwords[0]
				}
				c.mu.Unlock()
			}
			return conn, nil
		}
		if !authFailed(err) {
			return nil, err
		}
	}
	return nil, err
}

func authFailed(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "28P01"
}

var _ provider.SelfManager = (*Postgres)(nil)
