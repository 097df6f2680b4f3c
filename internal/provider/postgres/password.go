package postgres

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/rotorhq/rotor/internal/provider"
	"github.com/rotorhq/rotor/internal/secret"
)

// md5Verifier is the other form the server takes as an already-hashed
// password; Snapshot can return one from a role set up before SCRAM.
var md5Verifier = regexp.MustCompile(`^md5[0-9a-f]{32}$`)

// checkVerifier refuses anything the server would not recognise as a
// verifier, because the server hashes an unrecognised value as a
// plaintext password: the plaintext would then be in the SQL text.
func checkVerifier(op string, v secret.String) error {
	if v.IsZero() {
		return invalid(op, "the request has no password verifier; the postgres provider sends only SCRAM verifiers, compute one with secret.SCRAMVerifier")
	}
	if _, err := secret.ParseSCRAMVerifier(v); err == nil {
		return nil
	}
	if md5Verifier.MatchString(v.Reveal()) {
		return nil
	}
	return invalid(op, "the verifier is neither a SCRAM-SHA-256 nor an md5 verifier, and the server would store it as a plaintext password; pass the output of secret.SCRAMVerifier")
}

// SetPassword sets the verifier, gives LOGIN, and sets VALID UNTIL to
// req.ValidUntil or, without one, to infinity, so that an expiry left by an
// earlier call cannot keep the new password from working.
func (p *Postgres) SetPassword(ctx context.Context, req provider.SetPasswordRequest) (provider.SetPasswordResponse, error) {
	op := fmt.Sprintf("set password for role %q", req.Role)
	if err := checkRoleName(op, req.Role); err != nil {
		return provider.SetPasswordResponse{}, err
	}
	if err := checkVerifier(op, req.Verifier); err != nil {
		return provider.SetPasswordResponse{}, err
	}
	validUntil := "infinity"
	if req.ValidUntil != nil {
		validUntil = req.ValidUntil.UTC().Format("2006-01-02T15:04:05.999999Z07:00")
	}
	sql := "ALTER ROLE " + ident(req.Role) + " WITH LOGIN PASSWORD " + quoteLiteral(req.Verifier.Reveal()) +
		" VALID UNTIL " + quoteLiteral(validUntil)
	if req.Mark != "" {
		// The label in the same transaction, after the ALTER ROLE, in a
		// statement of its own (an error logged with its text shows the
		// label, never the verifier): one commit on the server, and the
		// round trips of a separate WriteMark saved. If the label is what
		// fails, the password is set alone, as if no mark was asked for:
		// a label must not fail a password change.
		err := p.alterRole(ctx, op, req.Role, []string{sql, commentOnRole(req.Role, req.Mark)}, req.Verifier, req.Password)
		if err == nil {
			return provider.SetPasswordResponse{Marked: true}, nil
		}
		if ctx.Err() != nil || errors.Is(err, provider.ErrRoleNotFound) {
			return provider.SetPasswordResponse{}, err
		}
	}
	if err := p.alterRole(ctx, op, req.Role, []string{sql}, req.Verifier, req.Password); err != nil {
		return provider.SetPasswordResponse{}, err
	}
	return provider.SetPasswordResponse{}, nil
}

// alterRole runs one ALTER ROLE (and the statements after it) in a
// quiet transaction, after checking that the role exists so that a
// missing role never gets the verifier sent.
//
// It takes two round trips where the admin is a superuser. The first
// message is BEGIN, the quiet settings and the existence check; the
// second the statements and COMMIT. The statements never share a message
// with the settings: a message is logged as a whole, under the settings
// in force when it arrives. Where the settings did not apply, each
// statement goes on its own, so that an error logged with the text of a
// later statement (a label) cannot show the verifier.
func (p *Postgres) alterRole(ctx context.Context, op, role string, stmts []string, secrets ...secret.String) error {
	err := p.conns.with(ctx, func(conn *pgx.Conn) error {
		return p.alterOn(ctx, conn, op, role, stmts)
	})
	if err != nil {
		return p.fail(op, role, err, secrets...)
	}
	return nil
}

func (p *Postgres) alterOn(ctx context.Context, conn *pgx.Conn, op, role string, stmts []string) (err error) {
	pc := conn.PgConn()
	defer func() {
		if err != nil && !pc.IsClosed() && pc.TxStatus() != 'I' {
			// Left inside the transaction: roll it back so the connection
			// can be reused. If that fails, release closes it instead.
			_ = pc.Exec(context.WithoutCancel(ctx), "ROLLBACK").Close()
		}
	}()
	results, err := p.execMessage(ctx, conn, "BEGIN; "+quietSQL+"; SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = "+quoteLiteral(role)+")")
	if err != nil {
		return err
	}
	if len(results) != 3 || len(results[2].Rows) != 1 || len(results[2].Rows[0]) != 1 {
		return fmt.Errorf("unexpected answer to BEGIN and the role check: %d results", len(results))
	}
	if string(results[2].Rows[0][0]) != "t" {
		return p.missingRole(op, role)
	}
	if quiet := len(results[1].Rows) == 1; quiet {
		_, err = p.execMessage(ctx, conn, strings.Join(stmts, "; ")+"; COMMIT")
		if err == nil && pc.TxStatus() != 'I' {
			return errors.New("the transaction did not end after COMMIT")
		}
		return err
	}
	for _, sql := range append(stmts, "COMMIT") {
		if _, err := p.execMessage(ctx, conn, sql); err != nil {
			return err
		}
	}
	return nil
}

// execMessage sends sql, one or more statements, as one simple-protocol
// message and returns each statement's result. pgx has no call that
// returns them all, so the connection's tracer (rotor --debug) is called
// here, with the statements' results joined.
func (p *Postgres) execMessage(ctx context.Context, conn *pgx.Conn, sql string) ([]*pgconn.Result, error) {
	// The pool's config, not conn.Config(), which copies it each call.
	tracer, _ := p.conns.cfg.Tracer.(pgx.QueryTracer)
	if tracer != nil {
		ctx = tracer.TraceQueryStart(ctx, conn, pgx.TraceQueryStartData{SQL: sql})
	}
	results, err := conn.PgConn().Exec(ctx, sql).ReadAll()
	if tracer != nil {
		tags := make([]string, 0, len(results))
		for _, r := range results {
			tags = append(tags, r.CommandTag.String())
		}
		tracer.TraceQueryEnd(ctx, conn, pgx.TraceQueryEndData{CommandTag: pgconn.NewCommandTag(strings.Join(tags, "; ")), Err: err})
	}
	return results, err
}

// Snapshot reads the stored verifier from pg_authid, which only superusers
// may read.
func (p *Postgres) Snapshot(ctx context.Context, req provider.SnapshotRequest) (provider.SnapshotResponse, error) {
	op := fmt.Sprintf("snapshot the password of role %q", req.Role)
	if err := checkRoleName(op, req.Role); err != nil {
		return provider.SnapshotResponse{}, err
	}
	var (
		verifier *string
		login    bool
	)
	err := p.conns.with(ctx, func(conn *pgx.Conn) error {
		return conn.QueryRow(ctx, `SELECT rolpassword, rolcanlogin FROM pg_authid WHERE rolname = $1`, req.Role).Scan(&verifier, &login)
	})
	var pgErr *pgconn.PgError
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return provider.SnapshotResponse{}, p.missingRole(op, req.Role)
	case errors.As(err, &pgErr) && pgErr.Code == "42501":
		return provider.SnapshotResponse{}, fmt.Errorf("%s: only a superuser may read pg_authid, so a failed single-strategy rotation cannot put the old password back; use the dual strategy or a superuser admin_url: %w", op, provider.ErrUnsupported)
	case err != nil:
		return provider.SnapshotResponse{}, p.fail(op, req.Role, err)
	}
	resp := provider.SnapshotResponse{Login: login}
	if verifier != nil {
		resp.Verifier = secret.New(*verifier)
	}
	return resp, nil
}

// Retire makes the role unusable for new logins, by a random verifier or
// by NOLOGIN. Both are idempotent: repeating them leaves the role retired.
func (p *Postgres) Retire(ctx context.Context, req provider.RetireRequest) (provider.RetireResponse, error) {
	op := fmt.Sprintf("retire role %q", req.Role)
	if err := checkRoleName(op, req.Role); err != nil {
		return provider.RetireResponse{}, err
	}
	var (
		sql      string
		verifier secret.String
	)
	switch req.Method {
	case provider.RetireScramble:
		v, err := randomVerifier()
		if err != nil {
			return provider.RetireResponse{}, fmt.Errorf("%s: %w", op, err)
		}
		verifier = v
		sql = "ALTER ROLE " + ident(req.Role) + " WITH PASSWORD " + quoteLiteral(v.Reveal())
	case provider.RetireNoLogin:
		sql = "ALTER ROLE " + ident(req.Role) + " WITH NOLOGIN"
	default:
		return provider.RetireResponse{}, invalid(op, "unknown retire method %q; use %q or %q", req.Method, provider.RetireScramble, provider.RetireNoLogin)
	}
	if err := p.alterRole(ctx, op, req.Role, []string{sql}, verifier); err != nil {
		return provider.RetireResponse{}, err
	}
	return provider.RetireResponse{}, nil
}

// timeOrNil makes a zero time an SQL NULL, which the queries read as "no
// filter".
func timeOrNil(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}
