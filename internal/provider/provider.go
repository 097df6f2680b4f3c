// Package provider defines the seam between rotor's engine and the place a
// role's password lives and is changed (a database provider, DESIGN.md).
//
// Implementations live in subpackages (postgres, neon); the registry that
// maps a config `type:` to a Factory is in provider/builtin. Every
// implementation must pass providertest.Exercise against a real PostgreSQL.
//
// Checklist for a new provider:
//  1. Implement Provider; end the file with `var _ provider.Provider = (*X)(nil)`.
//  2. Map backend errors to the sentinels below at the seam (wrap with %w at the end).
//  3. Never put a plaintext password in SQL text, an error, a log line or argv.
//  4. Add it to provider/builtin and run providertest.Exercise against it.
package provider

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/rotorhq/rotor/internal/secret"
)

// Sentinels every provider maps its backend errors to.
var (
	// ErrRoleNotFound: the role does not exist on the server.
	ErrRoleNotFound = errors.New("role not found")
	// ErrPermission: the admin identity may not do what was asked.
	ErrPermission = errors.New("permission denied")
	// ErrUnsupported: this provider (or this mode of it) cannot do this.
	ErrUnsupported = errors.New("not supported by this provider")
	// ErrUnavailable: the backend could not be reached; safe to retry later.
	ErrUnavailable = errors.New("backend unavailable")
	// ErrInvalid: the request itself is wrong (bad role name, bad option).
	ErrInvalid = errors.New("invalid request")
)

// Provider changes role passwords and observes role sessions.
//
// All methods take ctx first, must be safe for concurrent use, and must
// never include a plaintext password or SCRAM verifier in an error. An
// error says what was tried and on which role (list sessions of role
// "app_blue": …), so callers add only what the provider cannot know
// (the credential, the step) instead of saying it again.
type Provider interface {
	// Check verifies, without changing anything, that the admin connection
	// works and that each named role exists and can be altered. It returns
	// problems as human-readable notes in the response when they are not
	// fatal (e.g. "role app_green has no LOGIN"); it errors when the
	// provider cannot be used at all.
	Check(ctx context.Context, req CheckRequest) (CheckResponse, error)

	// SetPassword makes req.Role log in with the password whose SCRAM
	// verifier is req.Verifier, and gives the role LOGIN. It must be
	// idempotent: setting the same verifier twice succeeds and changes
	// nothing else. It must send only the verifier, never req.Password, to
	// the server, with two documented exceptions: where the backend itself
	// generates passwords (Neon API mode), it returns the generated
	// password in the response and the caller must store it at once; and
	// where the server refuses verifiers (Neon over SQL), the plaintext goes
	// in a statement of its own over TLS that verifies the server
	// (DESIGN.md, "Security rules"). A rollback passes both the previous
	// password and its verifier when rotor has both.
	// Returns ErrRoleNotFound when the role does not exist.
	SetPassword(ctx context.Context, req SetPasswordRequest) (SetPasswordResponse, error)

	// Snapshot returns the role's stored password verifier as the server
	// holds it, so a failed single-strategy rotation can put it back.
	// Returns ErrUnsupported when the admin identity cannot read it (not a
	// superuser, managed service); callers must cope.
	Snapshot(ctx context.Context, req SnapshotRequest) (SnapshotResponse, error)

	// Retire makes req.Role unusable for new logins: NOLOGIN, or a fresh
	// random verifier nobody knows. Existing sessions are untouched (see
	// Terminate). Idempotent; must not error if the role is already retired.
	Retire(ctx context.Context, req RetireRequest) (RetireResponse, error)

	// Sessions lists the client sessions currently logged in as req.Role
	// (excluding the provider's own admin session), optionally only those
	// that started before req.StartedBefore.
	Sessions(ctx context.Context, req SessionsRequest) (SessionsResponse, error)

	// Terminate ends the sessions Sessions would list for the same request.
	// Idempotent: zero sessions is not an error.
	Terminate(ctx context.Context, req TerminateRequest) (TerminateResponse, error)

	// EnsureRoles creates or repairs the dual-strategy layout: a NOLOGIN
	// owner group role, the login roles as its members, and
	// `ALTER ROLE <login> SET role = <group>` so objects they create belong
	// to the group. It never drops anything and never changes a password of
	// an existing role. New login roles get a random password nobody knows.
	EnsureRoles(ctx context.Context, req EnsureRolesRequest) (EnsureRolesResponse, error)

	// Parity compares the privileges of the given roles (memberships, role
	// attributes, per-role settings, and object privileges granted directly
	// to them) and returns every difference. An empty Differences slice
	// means the roles are interchangeable.
	Parity(ctx context.Context, req ParityRequest) (ParityResponse, error)

	// Close releases the provider's connections.
	Close() error
}

type CheckRequest struct {
	Roles []string
}

type CheckResponse struct {
	// ServerVersion is informational, e.g. "PostgreSQL 15.18".
	ServerVersion string
	// Notes are non-fatal findings, one sentence each.
	Notes []string
}

type SetPasswordRequest struct {
	Role string
	// Password is the plaintext, for providers that must send it (none of
	// the SQL ones do) and for checks; never logged.
	Password secret.String
	// Verifier is the SCRAM-SHA-256 verifier (RFC 5803 form) of Password.
	Verifier secret.String
	// ValidUntil, when non-nil, is set as the role's VALID UNTIL.
	ValidUntil *time.Time
	// Mark, when set, is the label a Marker writes after the change
	// (WriteMark). A Marker that can write it with the password, in the
	// same transaction, does and says so in Marked; the caller writes it
	// with WriteMark otherwise.
	Mark string
}

type SetPasswordResponse struct {
	// Password is set only when the backend generated the password itself.
	Password secret.String
	// Detail is a secret-free summary, e.g. per-branch results.
	Detail string
	// Marked: the request's Mark was written with the password.
	Marked bool
}

type SnapshotRequest struct {
	Role string
}

type SnapshotResponse struct {
	// Verifier is the stored password verifier (may be empty when the role
	// has no password).
	Verifier secret.String
	// Login reports whether the role had LOGIN.
	Login bool
}

// RetireMethod says how an old role is made unusable.
type RetireMethod string

const (
	// RetireScramble sets a random verifier nobody knows; the role keeps
	// LOGIN so it can be reused by the next rotation without DDL.
	RetireScramble RetireMethod = "password"
	// RetireNoLogin sets NOLOGIN; the next SetPassword gives LOGIN back.
	RetireNoLogin RetireMethod = "nologin"
)

type RetireRequest struct {
	Role   string
	Method RetireMethod
}

type RetireResponse struct{}

type SessionsRequest struct {
	Role string
	// StartedBefore, when non-zero, limits the result to sessions whose
	// backend started before this instant.
	StartedBefore time.Time
}

// Session is one client connection seen on the server. Its JSON names
// are those of pg_stat_activity's columns, as in every --json output.
type Session struct {
	PID             int       `json:"pid"`
	Database        string    `json:"database"`
	ApplicationName string    `json:"application_name"`
	ClientAddr      string    `json:"client_addr"`
	BackendStart    time.Time `json:"backend_start"`
	State           string    `json:"state"`
}

type SessionsResponse struct {
	Sessions []Session
}

type TerminateRequest struct {
	Role          string
	StartedBefore time.Time
}

type TerminateResponse struct {
	Terminated int
}

type EnsureRolesRequest struct {
	// Group is the NOLOGIN owner role.
	Group string
	// Logins are the login roles that alternate (two for dual).
	Logins []string
	// Database, when set, receives CONNECT for the group.
	Database string
}

type EnsureRolesResponse struct {
	// Changes describes what was created or repaired, one sentence each;
	// empty when everything was already in place.
	Changes []string
}

// LoginRecorder is implemented by providers whose server can keep a
// record of when each role last logged in (PostgreSQL 17's login event
// triggers). Sampling Sessions misses a consumer that connects per request
// and is gone between two samples; the record does not, so a dual
// rotation's retirement counts a recorded login like a session seen then.
type LoginRecorder interface {
	// RecordLogins sets the record up for req.Roles, idempotently, where
	// the server and the admin allow it. When they do not, Recorded is
	// false and Reason says why; that is not an error.
	RecordLogins(ctx context.Context, req RecordLoginsRequest) (RecordLoginsResponse, error)
	// LastLogin reads the record of req.Role.
	LastLogin(ctx context.Context, req LastLoginRequest) (LastLoginResponse, error)
}

type RecordLoginsRequest struct {
	Roles []string
}

type RecordLoginsResponse struct {
	// Recorded: logins of the roles are now recorded; Where says how
	// (e.g. `login event trigger in database "app"`).
	Recorded bool
	Where    string
	// Reason, when not Recorded, says why, one sentence.
	Reason string
	// Changes describes what was created, one sentence each.
	Changes []string
}

type LastLoginRequest struct {
	Role string
}

type LastLoginResponse struct {
	// Recorded: the server keeps a record of the role's logins.
	Recorded bool
	// Seen: a login was recorded; Ago is how long before the server's own
	// clock read it, so rotor's clock does not need to agree with it.
	Seen bool
	Ago  time.Duration
}

type ParityRequest struct {
	Roles []string
}

type ParityResponse struct {
	Differences []string
}

// Endpointer is implemented by providers that know how consumers reach
// the database (Neon discovers its endpoints through its API). The engine
// asks it when the credential's config has no connection.url.
type Endpointer interface {
	Endpoints(ctx context.Context, req EndpointsRequest) (EndpointsResponse, error)
}

type EndpointsRequest struct{}

type EndpointsResponse struct {
	// Direct is the consumer connection string without user and password
	// (e.g. postgresql://ep-x.region.aws.neon.tech/db?sslmode=require).
	Direct string
	// Pooled is the pooled variant, "" when there is none.
	Pooled string
	// Replica is a read-only replica's connection string, "" when there is
	// none.
	Replica string
}

// Reporter is implemented by providers with something to add to `rotor
// status --live`, e.g. Neon branches that still hold an old password.
type Reporter interface {
	Report(ctx context.Context, req ReportRequest) (ReportResponse, error)
}

type ReportRequest struct {
	Roles []string
}

type ReportResponse struct {
	// Facts describe where the credential lives, one short line each
	// ("neon project round-sound-123, branch main (br-…), endpoint ep-…").
	Facts []string
	// Warnings are one sentence each.
	Warnings []string
}

// Marker is implemented by providers that can label a role with who set
// its password (PostgreSQL: the role's comment). rotor writes its mark at
// every password change and reads it before the next, so a rotation made
// through another store, or by another tool that rewrites the label, is
// noticed instead of overwritten.
type Marker interface {
	ReadMark(ctx context.Context, req ReadMarkRequest) (ReadMarkResponse, error)
	WriteMark(ctx context.Context, req WriteMarkRequest) (WriteMarkResponse, error)
}

type ReadMarkRequest struct {
	Role string
	// Snapshot asks for the role's Snapshot in the same read, where the
	// provider can take both at once (PostgreSQL with a superuser: one
	// query instead of two). A provider may ignore it.
	Snapshot bool
}

type ReadMarkResponse struct {
	// Mark is the role's label as written, "" when it has none.
	Mark string
	// Snapshot is the role's Snapshot when it was asked for and taken in
	// the same read; nil otherwise, and the caller asks Snapshot.
	Snapshot *SnapshotResponse
}

type WriteMarkRequest struct {
	Role string
	// Mark is secret-free text.
	Mark string
}

type WriteMarkResponse struct{}

// ApplyDescriber is implemented by providers whose password change is not
// the generic one (a rotor-generated password set as a SCRAM verifier,
// put back on a failed test), so that `rotor plan` says what really
// happens. Each sentence may be "" to keep the generic one. No I/O.
type ApplyDescriber interface {
	DescribeApply(role string) (generate, apply, rollback string)
}

// PasswordChecker is implemented by providers whose database refuses some
// passwords (Neon: at least 60 bits of entropy, no character three times
// in a row). The engine generates passwords until one passes, so a
// rotation never fails at apply for a password rotor chose.
type PasswordChecker interface {
	CheckPassword(pw secret.String) error
}

// SelfManager is implemented by providers that log in as a role which a
// credential may rotate itself (the Neon owner role, a postgres admin_url
// user). The engine tells it the passwords to log in with as soon as it
// knows them: the current version's when a rotation starts (not a stale
// environment variable), the new one the moment the database has it.
type SelfManager interface {
	// AdminRole is the role the provider logs in as; "" when unknown.
	AdminRole(ctx context.Context) (string, error)
	// UseAdminPasswords makes later connections log in with the first of
	// passwords that works (the server may hold either while a rotation
	// is uncertain), instead of the configured one.
	UseAdminPasswords(passwords []secret.String)
}

// Params is what a Factory gets to build a provider. Decode strictly
// decodes the provider's own options from the config (unknown keys are
// errors with file:line). Env resolves ${VAR} references already; it is
// here for providers that take tokens from named variables.
type Params struct {
	Decode     func(v any) error
	HTTPClient *http.Client
	Now        func() time.Time
	// Logger, when set (rotor --debug), receives a debug line for each
	// statement sent to the database, with every secret in it replaced.
	Logger *slog.Logger
}

// Factory builds a provider from its config. It must not do I/O; the first
// I/O happens in Check or a later call.
type Factory func(p Params) (Provider, error)
