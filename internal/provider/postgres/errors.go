package postgres

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/rotorhq/rotor/internal/provider"
	"github.com/rotorhq/rotor/internal/secret"
)

// backendError is what a failed server call turns into at the seam. It
// unwraps to the provider sentinel and, when the caller gave up, to the
// context error, but never to the driver error: a driver error may quote
// the statement, and a statement may carry a verifier.
type backendError struct {
	msg  string
	errs []error
}

func (e *backendError) Error() string   { return e.msg }
func (e *backendError) Unwrap() []error { return e.errs }

// fail maps err to a provider sentinel and builds a message that says what
// failed (op), why, and what to do. role, when set, names the role the
// server complained about. Every secret given, and the admin password, is
// scrubbed from the server's wording.
func (p *Postgres) fail(op, role string, err error, secrets ...secret.String) error {
	if alreadyMapped(err) {
		return err
	}
	secrets = append(secrets, p.adminPassword)
	secrets = append(secrets, p.conns.passwordsInUse()...)
	var (
		sentinel error
		detail   string
	)
	var pgErr *pgconn.PgError
	switch {
	case errors.As(err, &pgErr):
		sentinel, detail = classifyPgError(pgErr, role, p.hints)
	case errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) || pgconn.Timeout(err):
		sentinel, detail = provider.ErrUnavailable, "gave up waiting for the server ("+err.Error()+"); retry, or raise connect_timeout or the caller's deadline"
	case isCertificateError(err):
		sentinel, detail = provider.ErrUnavailable, err.Error()+"; "+p.hints.AdminTLS
	case isConnectionError(err):
		sentinel, detail = provider.ErrUnavailable, err.Error()+"; "+p.hints.AdminReach
	default:
		detail = err.Error()
	}
	msg := op + ": " + scrub(detail, secrets...)
	var errs []error
	if sentinel != nil {
		msg += ": " + sentinel.Error()
		errs = append(errs, sentinel)
	}
	for _, ctxErr := range []error{context.Canceled, context.DeadlineExceeded} {
		if errors.Is(err, ctxErr) {
			errs = append(errs, ctxErr)
		}
	}
	return &backendError{msg: msg, errs: errs}
}

func classifyPgError(e *pgconn.PgError, role string, h Hints) (sentinel error, detail string) {
	server := fmt.Sprintf("%s (SQLSTATE %s)", e.Message, e.Code)
	switch {
	case e.Code == "42704" && role != "":
		return provider.ErrRoleNotFound, fmt.Sprintf("role %q does not exist; %s", role, h.MissingRole)
	case e.Code == "42704":
		return provider.ErrRoleNotFound, server
	case e.Code == "42501":
		return provider.ErrPermission, server + "; " + h.AdminPrivilege
	case strings.HasPrefix(e.Code, "28"):
		return provider.ErrPermission, server + "; " + h.AdminLogin
	case e.Code == "3D000":
		return provider.ErrInvalid, server + "; fix the database name"
	case e.Code == "42939", e.Code == "22023", e.Code == "42602", e.Code == "42622", e.Code == "0LP01":
		return provider.ErrInvalid, server
	case strings.HasPrefix(e.Code, "08"), strings.HasPrefix(e.Code, "53"),
		e.Code == "57P01", e.Code == "57P02", e.Code == "57P03", e.Code == "40001", e.Code == "40P01":
		return provider.ErrUnavailable, server + "; retry later"
	case e.Code == "57014":
		return provider.ErrUnavailable, server + "; the statement hit statement_timeout or was cancelled, retry or raise statement_timeout"
	}
	return nil, server
}

// alreadyMapped reports errors built by this package, which carry their
// own wording and sentinel.
func alreadyMapped(err error) bool {
	var be *backendError
	if errors.As(err, &be) || errors.Is(err, errClosed) {
		return true
	}
	for _, s := range []error{provider.ErrRoleNotFound, provider.ErrPermission, provider.ErrUnsupported, provider.ErrUnavailable, provider.ErrInvalid} {
		if errors.Is(err, s) {
			return true
		}
	}
	return false
}

func isCertificateError(err error) bool {
	var verifyErr *tls.CertificateVerificationError
	var unknown x509.UnknownAuthorityError
	var host x509.HostnameError
	var invalid x509.CertificateInvalidError
	return errors.As(err, &verifyErr) || errors.As(err, &unknown) || errors.As(err, &host) || errors.As(err, &invalid)
}

func isConnectionError(err error) bool {
	var connectErr *pgconn.ConnectError
	var netErr net.Error
	return errors.As(err, &connectErr) || errors.As(err, &netErr) || pgconn.SafeToRetry(err)
}

// scrub removes every spelling of the secrets (raw, percent-encoded,
// escaped as in SQL literals, …) from s.
func scrub(s string, secrets ...secret.String) string {
	return secret.ScrubString(s, secrets...)
}

func invalid(op, format string, args ...any) error {
	return fmt.Errorf("%s: %s: %w", op, fmt.Sprintf(format, args...), provider.ErrInvalid)
}

// roleNotFound is for the dual layout's roles (parity, setup-roles).
func roleNotFound(op, role string) error {
	return fmt.Errorf("%s: role %q does not exist; create it (rotor setup-roles) or fix the role name: %w", op, role, provider.ErrRoleNotFound)
}

// missingRole is for a role named alone, with the caller's advice.
func (p *Postgres) missingRole(op, role string) error {
	return fmt.Errorf("%s: role %q does not exist; %s: %w", op, role, p.hints.MissingRole, provider.ErrRoleNotFound)
}
