// Package target defines the seam between rotor's engine and the places
// that hold a copy of a credential (DESIGN.md "target").
//
// Implementations live in one subpackage each (dotenv, vercel, …); the
// registry mapping a config `type:` to a Factory is target/builtin. Every
// implementation must pass targettest.Exercise against a real backend or a
// contract fake that follows ../shared/reference/targets-api.md.
//
// Lifecycle: Factory (no I/O) → Validate (read-only I/O, for `rotor
// validate`) → Put for every target → Reload for every target → Check.
// The engine, not the target, does retries, parallelism and journaling.
//
// Checklist for a new target:
//  1. Implement Target, plus Reloader/Checker/Validator/KeyChecker where
//     the backend allows. When an option switches one off (deploy:
//     false), keep the method and implement Switchable; callers never
//     assert these interfaces themselves but ask Discover. A target
//     consumers authenticate through implements Gatekeeper (gatekeeper.go)
//     and passes gatekeepertest.Exercise too.
//  2. Build it from Params with its helpers: DecodeOptions, ResolvePath,
//     HTTP, Clock, Env.
//  3. End the file with `var _ target.Target = (*X)(nil)` and the optional guards.
//  4. Errors name the target (Params.Describe) and never contain a value
//     (use secret.Scrub); an HTTP API's refusal is a *webapi.StatusError.
//  5. Map HTTP 429/5xx to *RetryableError (with Retry-After) only when
//     the write is idempotent.
//  6. Add it to target/builtin and run targettest.Exercise against it.
package target

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/http"
	"slices"
	"time"

	"github.com/rotorhq/rotor/internal/secret"
)

// Sentinels targets map their backend errors to.
var (
	// ErrAuth: the token is missing, wrong or lacks a permission.
	ErrAuth = errors.New("target rejected the credentials")
	// ErrNotFound: the destination (project, repo, file's folder) does not exist.
	ErrNotFound = errors.New("target destination not found")
	// ErrInvalid: the target refused the value or the request.
	ErrInvalid = errors.New("target refused the request")
	// ErrUnreadable: the backend does not let values be read back.
	ErrUnreadable = errors.New("target does not allow reading values back")
)

// Target writes rendered values to one destination.
type Target interface {
	// Info describes the target. It must not do I/O.
	Info() Info

	// Put writes every value in req.Values under its key, leaving every
	// other key at the destination untouched. It must be idempotent when
	// Info().Idempotent is true: repeating the same request leaves the
	// destination as after the first. Errors must not contain any value.
	Put(ctx context.Context, req PutRequest) (PutResponse, error)
}

// Info is a target's static description.
type Info struct {
	// Type is the registry name, e.g. "dotenv".
	Type string
	// Name is the user's name for this target instance.
	Name string
	// Destination is a human-readable, secret-free description of where
	// values go, e.g. "/srv/app/.env" or "vercel project prj_123 (production)".
	Destination string
	// Idempotent reports whether Put may be retried safely.
	Idempotent bool
}

// Reloader is implemented by targets whose consumers must be told to pick
// up new values (a redeploy, a restart, PgBouncer RELOAD).
type Reloader interface {
	// Reload makes running consumers pick up the values last Put. It runs
	// only after every target's Put succeeded.
	Reload(ctx context.Context, req ReloadRequest) (ReloadResponse, error)
}

// Checker is implemented by targets that can read values back.
type Checker interface {
	// Check reads the current value of each key in req.Keys. Keys the
	// backend will not reveal are listed in Unreadable (with metadata in
	// Notes when there is some); a missing key is absent from Values.
	Check(ctx context.Context, req CheckRequest) (CheckResponse, error)
}

// Validator is implemented by targets that can check their credentials
// and permissions without writing (`rotor validate`).
type Validator interface {
	Validate(ctx context.Context, req ValidateRequest) (ValidateResponse, error)
}

// Notifier is implemented by targets that also want to hear how each
// rotation ended, successful or not (webhook). Notify must not block the
// rotation for long and its failure never fails the rotation.
type Notifier interface {
	Notify(ctx context.Context, n Notification) error
}

// Notification is how a rotation ended, secret-free.
type Notification struct {
	// Type is "rotation." + the final status ("rotation.succeeded",
	// "rotation.published_old_in_use", "rotation.rolled_back") or
	// "rotation.failed" when it stopped at a step.
	Type       string
	Credential string
	RotationID string
	Version    int64
	Role       string
	OldRole    string
	// Status is the rotation's store status.
	Status string
	// Step is where a failed rotation stopped.
	Step    string
	Error   string
	Outcome string
	Time    time.Time
}

type PutRequest struct {
	// Values are the rendered values, keyed by the name they are stored
	// under (e.g. DATABASE_URL). Keys are in Keys order.
	Values map[string]secret.String
	// Keys is the order in which keys were declared in the config.
	Keys []string
	// RotationID identifies the rotation; targets whose APIs take an
	// idempotency token derive it from this.
	RotationID string
	// Version is the credential version being published.
	Version int64
	// Role is the role the values log in as (informational).
	Role string
}

type PutResponse struct {
	// Changed is false when the destination already held these values and
	// nothing was written.
	Changed bool
	// Ref is a backend-side version, ETag or id, recorded in the journal.
	Ref string
}

type ReloadRequest struct {
	RotationID string
}

type ReloadResponse struct {
	// Detail is a human-readable, secret-free summary ("deployment dpl_1 created").
	Detail string
}

type CheckRequest struct {
	Keys []string
}

type CheckResponse struct {
	Values     map[string]secret.String
	Unreadable []string
	Notes      []string
}

type ValidateRequest struct{}

type ValidateResponse struct {
	Notes []string
}

// RetryableError marks a failure that may succeed if the same idempotent
// request is sent again, after RetryAfter when the backend said so.
type RetryableError struct {
	Err        error
	RetryAfter time.Duration
}

func (e *RetryableError) Error() string {
	if e.RetryAfter > 0 {
		return fmt.Sprintf("%v (retry after %s)", e.Err, e.RetryAfter)
	}
	return e.Err.Error()
}

func (e *RetryableError) Unwrap() error { return e.Err }

// NotSent reports whether err says a request never reached the backend:
// the connection was refused or reset while dialling, or the name did not
// resolve. Sending such a request again is safe even when it is not
// idempotent (a deploy, a restart), because the first one did nothing.
func NotSent(err error) bool {
	var dns *net.DNSError
	if errors.As(err, &dns) {
		return true
	}
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// OrderedKeys is the order to write the values in: Keys (the config's
// order) as far as they have a value, each once, then any other value
// keys, sorted — so what a target does never depends on map order.
func (r PutRequest) OrderedKeys() []string {
	keys := make([]string, 0, len(r.Values))
	seen := make(map[string]bool, len(r.Values))
	for _, k := range r.Keys {
		if _, ok := r.Values[k]; ok && !seen[k] {
			keys, seen[k] = append(keys, k), true
		}
	}
	for _, k := range slices.Sorted(maps.Keys(r.Values)) {
		if !seen[k] {
			keys = append(keys, k)
		}
	}
	return keys
}

// KeyChecker is implemented by targets whose destination constrains the
// keys of values (a variable name's syntax, the fields a format needs).
// The config loader calls it once with the keys, in config order, without
// I/O — so a key the target would refuse is reported with file:line by
// `rotor validate` and every command, not at the publish step of a
// rotation. Put still checks; both use the same rule.
type KeyChecker interface {
	CheckKeys(keys []string) error
}

// ValueChecker is implemented by targets whose destination refuses some
// values: a dotenv value no quoting reads back unchanged, a masked GitLab
// variable GitLab cannot mask, an RDS port that is not a number. The
// config loader renders every value with sample versions (generated
// passwords, the configured connection) and calls CheckValue for each,
// without I/O, so that a template that can never be written is reported
// with file:line by `rotor validate --offline`, `rotor plan` and the start
// of `rotor rotate` — not at the publish step, after the password has
// changed. Put still checks; both use the same rule. The error names the
// key and what is wrong, never the value.
type ValueChecker interface {
	CheckValue(key string, value secret.String) error
}

// Params is what a Factory gets to build a target.
type Params struct {
	// Name is the user's name for the target.
	Name string
	// Decode strictly decodes the target's own options (unknown keys are
	// errors with file:line).
	Decode func(v any) error
	// BaseDir is the directory relative paths in the target's options are
	// resolved against (the config file's directory).
	BaseDir string
	// HTTPClient is used for every HTTP call so tests can inject a client.
	HTTPClient *http.Client
	// Getenv looks up environment variables (tokens); injected for tests.
	Getenv func(string) string
	Now    func() time.Time
}

// Factory builds a target from its config. It must not do I/O.
type Factory func(p Params) (Target, error)
