package postgres

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/rotorhq/rotor/internal/secret"
)

// maxIdentifierLength is NAMEDATALEN-1. PostgreSQL silently truncates
// longer names, which would make rotor alter a different role than named.
const maxIdentifierLength = 63

func checkRoleName(op, role string) error {
	switch {
	case role == "":
		return invalid(op, "the role name is empty; name the role in the credential's config")
	case len(role) > maxIdentifierLength:
		return invalid(op, "role name %q is %d bytes long and PostgreSQL would truncate it to %d; use a shorter name", role, len(role), maxIdentifierLength)
	case strings.ContainsRune(role, 0):
		return invalid(op, "role name %q contains a NUL byte, which PostgreSQL does not allow; fix the name", role)
	}
	return nil
}

func ident(name string) string { return pgx.Identifier{name}.Sanitize() }

// quoteLiteral quotes s as an SQL string literal whatever the server's
// standard_conforming_strings, as PostgreSQL's quote_literal does. Only
// for values that cannot be bind parameters (utility statements).
func quoteLiteral(s string) string {
	q := "'" + strings.ReplaceAll(s, "'", "''") + "'"
	if strings.Contains(s, `\`) {
		return "E" + strings.ReplaceAll(q, `\`, `\\`)
	}
	return q
}

func roleExists(ctx context.Context, q interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}, role string) (bool, error) {
	var ok bool
	err := q.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)`, role).Scan(&ok)
	return ok, err
}

// quietSQL keeps the rest of the transaction out of the server log and
// pg_stat_statements: the statements that follow carry a verifier, which is
// not the password but is enough to attack it offline. Only a superuser may
// change these settings, so for other admins it does nothing rather than
// fail (and log a permission error on every call).
const quietSQL = `
	SELECT set_config('log_statement', 'none', true),
	       set_config('log_min_duration_statement', '-1', true),
	       set_config('log_min_error_statement', 'panic', true),
	       set_config('pg_stat_statements.track_utility', 'off', true)
	FROM pg_roles WHERE rolname = current_user AND rolsuper`

// quietTx runs fn in a transaction in which statements are not logged,
// where the admin may arrange that, and commits when fn succeeds.
// The settings go with BEGIN, in one simple-protocol message.
func (p *Postgres) quietTx(ctx context.Context, fn func(pgx.Tx) error) error {
	return p.conns.with(ctx, func(conn *pgx.Conn) error {
		return pgx.BeginTxFunc(ctx, conn, pgx.TxOptions{BeginQuery: "BEGIN; " + quietSQL}, fn)
	})
}

// randomVerifier is a verifier for a password nobody ever sees: what new
// login roles start with and what scrambling a retired role sets.
func randomVerifier() (secret.String, error) {
	pw, err := randomPassword()
	if err != nil {
		return secret.String{}, err
	}
	return secret.SCRAMVerifier(nil, pw)
}

func randomPassword() (secret.String, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return secret.String{}, fmt.Errorf("generate a random password: %w", err)
	}
	return secret.New(base64.RawURLEncoding.EncodeToString(b)), nil
}

// withRole validates the name, makes sure the role exists, and runs fn on
// an admin connection, so that read-only calls on a mistyped role fail
// instead of reporting nothing.
func (p *Postgres) withRole(ctx context.Context, op, role string, fn func(*pgx.Conn) error) error {
	if err := checkRoleName(op, role); err != nil {
		return err
	}
	err := p.conns.with(ctx, func(conn *pgx.Conn) error {
		ok, err := roleExists(ctx, conn, role)
		if err != nil {
			return err
		}
		if !ok {
			return p.missingRole(op, role)
		}
		return fn(conn)
	})
	if err != nil {
		return p.fail(op, role, err)
	}
	return nil
}
