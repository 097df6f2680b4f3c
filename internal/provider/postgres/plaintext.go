package postgres

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/rotorhq/rotor/internal/provider"
	"github.com/rotorhq/rotor/internal/secret"
)

// ErrUnverifiedTLS: the admin connection does not verify the server's
// certificate, so a plaintext password must not be sent over it.
var ErrUnverifiedTLS = errors.New("the admin connection does not verify the server's TLS certificate")

// quietSettings are the session settings that keep one statement out of
// the server's log, its statistics and pg_stat_activity, with the value
// that does it. Every one of them is superuser-only unless granted (SET
// privilege on the parameter, PostgreSQL 15+).
var quietSettings = []struct{ name, value string }{
	{"log_statement", "none"},
	{"log_min_duration_statement", "-1"},
	// A failing statement is logged with its text at ERROR by default.
	{"log_min_error_statement", "panic"},
	// Utility statements keep their literals in pg_stat_statements.
	{"pg_stat_statements.track_utility", "off"},
	// Others with pg_read_all_stats see a running statement's text.
	{"track_activities", "off"},
}

// QuietReport says which of the quiet settings the admin role could
// switch off for the statement that carries a plaintext password.
type QuietReport struct {
	// Off are the settings switched off; Left those the admin may not
	// change (they keep the server's values). A setting the server does
	// not have (pg_stat_statements not loaded) is in neither.
	Off, Left []string
}

// Complete reports whether nothing was left on.
func (q QuietReport) Complete() bool { return len(q.Left) == 0 }

// VerifiesTLS reports whether every way the admin connection may be made
// verifies the server's certificate: sslmode verify-full or verify-ca
// (or require with sslrootcert, which libpq treats as verify-ca).
func (p *Postgres) VerifiesTLS() bool {
	verifies := func(c *tls.Config) bool {
		return c != nil && (!c.InsecureSkipVerify || c.VerifyPeerCertificate != nil)
	}
	cfg := p.conns.cfg
	if !verifies(cfg.TLSConfig) {
		return false
	}
	for _, fb := range cfg.Fallbacks {
		if !verifies(fb.TLSConfig) {
			return false
		}
	}
	return true
}

// SetPlaintextPassword sets req.Password (the plaintext, never the
// verifier), LOGIN and VALID UNTIL in one ALTER ROLE statement of its own,
// outside any transaction, for a server that refuses verifiers (Neon,
// whose compute forwards role passwords to its control plane). It is the
// one call of this package that puts a plaintext password in SQL text, so:
//
//   - it refuses to run unless the connection verifies the server's
//     certificate (ErrUnverifiedTLS) and is encrypted;
//   - it checks first that the role exists, so a mistyped role never gets
//     the password sent;
//   - it switches off, for its session, every quiet setting the admin may
//     change (see QuietReport), and runs the statement alone over the simple
//     query protocol on a connection of its own that is closed afterwards;
//   - every error is scrubbed of the password.
//
// It is idempotent: sending the same password again changes nothing.
func (p *Postgres) SetPlaintextPassword(ctx context.Context, req provider.SetPasswordRequest) (QuietReport, error) {
	op := fmt.Sprintf("set password for role %q", req.Role)
	if err := checkRoleName(op, req.Role); err != nil {
		return QuietReport{}, err
	}
	if req.Password.IsZero() {
		return QuietReport{}, invalid(op, "the request has no plaintext password to send")
	}
	if !p.VerifiesTLS() {
		return QuietReport{}, fmt.Errorf("%s: refusing to send the plaintext password: %w; use sslmode=verify-full (or verify-ca): %w", op, ErrUnverifiedTLS, provider.ErrInvalid)
	}
	validUntil := "infinity"
	if req.ValidUntil != nil {
		validUntil = req.ValidUntil.UTC().Format("2006-01-02T15:04:05.999999Z07:00")
	}
	var report QuietReport
	err := p.conns.fresh(ctx, func(conn *pgx.Conn) error {
		if _, ok := conn.PgConn().Conn().(*tls.Conn); !ok {
			return fmt.Errorf("%w: the server did not encrypt the connection", ErrUnverifiedTLS)
		}
		ok, err := roleExists(ctx, conn, req.Role)
		if err != nil {
			return err
		}
		if !ok {
			return p.missingRole(op, req.Role)
		}
		if report, err = quiet(ctx, conn); err != nil {
			return err
		}
		sql := "ALTER ROLE " + ident(req.Role) + " WITH LOGIN PASSWORD " + quoteLiteral(req.Password.Reveal()) +
			" VALID UNTIL " + quoteLiteral(validUntil)
		_, err = conn.PgConn().Exec(ctx, sql).ReadAll()
		if err != nil {
			return err
		}
		// Not needed for secrecy (the connection is closed next), but the
		// settings are put back as they were, and the statement the session
		// shows last in pg_stat_activity is this one, not the ALTER ROLE.
		_, err = conn.PgConn().Exec(ctx, resetSQL(report.Off)).ReadAll()
		return err
	})
	if err != nil {
		if errors.Is(err, ErrUnverifiedTLS) {
			return report, fmt.Errorf("%s: refusing to send the plaintext password: %w: %w", op, err, provider.ErrInvalid)
		}
		return report, p.fail(op, req.Role, secret.Scrub(err, req.Password, req.Verifier), req.Password, req.Verifier)
	}
	return report, nil
}

// Quiet reports, without changing anything, which quiet settings the
// admin role may switch off (for `rotor validate`).
func (p *Postgres) Quiet(ctx context.Context) (QuietReport, error) {
	var report QuietReport
	err := p.conns.with(ctx, func(conn *pgx.Conn) error {
		var err error
		report, err = quietPrivileges(ctx, conn)
		return err
	})
	if err != nil {
		return QuietReport{}, p.fail("check which log settings the admin role may change", "", err)
	}
	return report, nil
}

// quietPrivileges sorts the quiet settings the server has into those the
// session may set and those it may not.
func quietPrivileges(ctx context.Context, conn *pgx.Conn) (QuietReport, error) {
	var version int
	var super bool
	err := conn.QueryRow(ctx, `SELECT current_setting('server_version_num')::int, rolsuper FROM pg_roles WHERE rolname = current_user`).Scan(&version, &super)
	if err != nil {
		return QuietReport{}, err
	}
	var report QuietReport
	for _, s := range quietSettings {
		var known bool
		if err := conn.QueryRow(ctx, `SELECT current_setting($1, true) IS NOT NULL`, s.name).Scan(&known); err != nil {
			return QuietReport{}, err
		}
		if !known {
			continue
		}
		may := super
		if !may && version >= 150000 {
			if err := conn.QueryRow(ctx, `SELECT has_parameter_privilege($1, 'SET')`, s.name).Scan(&may); err != nil {
				return QuietReport{}, err
			}
		}
		if may {
			report.Off = append(report.Off, s.name)
		} else {
			report.Left = append(report.Left, s.name)
		}
	}
	return report, nil
}

// quiet switches off, for the session, every quiet setting it may.
func quiet(ctx context.Context, conn *pgx.Conn) (QuietReport, error) {
	report, err := quietPrivileges(ctx, conn)
	if err != nil || len(report.Off) == 0 {
		return report, err
	}
	var stmts []string
	for _, s := range quietSettings {
		for _, name := range report.Off {
			if name == s.name {
				stmts = append(stmts, "SET "+name+" = "+quoteLiteral(s.value))
			}
		}
	}
	// One simple-protocol message, so that the settings are in force before
	// the next message is even parsed.
	if _, err := conn.PgConn().Exec(ctx, strings.Join(stmts, "; ")).ReadAll(); err != nil {
		return QuietReport{}, err
	}
	return report, nil
}

func resetSQL(names []string) string {
	if len(names) == 0 {
		return "SELECT 1"
	}
	stmts := make([]string, len(names))
	for i, n := range names {
		stmts[i] = "RESET " + n
	}
	return strings.Join(stmts, "; ")
}

// LogIn proves that role logs in with pw through the admin connection's
// host, port, database and TLS settings, and closes the session at once
// (waiting until the server shows it no more).
// A server that authenticates the role and then refuses it the database
// (no CONNECT privilege) counts as a success: the password is in effect.
func (p *Postgres) LogIn(ctx context.Context, role string, pw secret.String) error {
	op := fmt.Sprintf("log in as role %q with its new password", role)
	cfg := p.conns.cfg.Copy()
	cfg.User, cfg.Password = role, pw.Reveal()
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err == nil {
		pid := int32(conn.PgConn().PID())
		closeConn(conn)
		// The backend exits a moment after the client leaves; wait, so that
		// the proof is not counted among the role's sessions (a drain, a
		// revoke) by whoever looks next. Best effort: the login is proven.
		_ = p.conns.with(ctx, func(admin *pgx.Conn) error {
			_, err := waitGone(ctx, admin, []int32{pid})
			return err
		})
		return nil
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "42501" {
		return nil
	}
	err = secret.Scrub(err, pw)
	if errors.As(err, &pgErr) && strings.HasPrefix(pgErr.Code, "28") {
		return fmt.Errorf("%s: %s: %w", op, scrub(fmt.Sprintf("%s (SQLSTATE %s)", pgErr.Message, pgErr.Code), pw, p.adminPassword), provider.ErrPermission)
	}
	return p.fail(op, role, err, pw)
}
