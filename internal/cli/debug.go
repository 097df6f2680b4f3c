package cli

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"time"

	"github.com/rotorhq/rotor/internal/connstr"
	"github.com/rotorhq/rotor/internal/engine"
	"github.com/rotorhq/rotor/internal/secret"
	"github.com/rotorhq/rotor/internal/store"
	"github.com/rotorhq/rotor/internal/target/webapi"
)

// What --debug logs, each through the Factory's one slog.Logger: every
// HTTP request to a target or an API (debugTransport), every write to the
// state store and every lease operation (debugStore), each login test and
// each step and target event of the engine (debugEvents), and — through
// provider.Params.Logger — every SQL statement a provider sends. None of
// it holds a secret: no header, no body, no value, no password literal.

// debugTransport logs each request: method, URL without userinfo and with
// the values of secret-looking query parameters replaced, the status, how
// long it took, and whether the status is one rotor would retry an
// idempotent write after (and when the backend asked it to).
type debugTransport struct {
	base http.RoundTripper
	log  *slog.Logger
	now  func() time.Time
}

func (t *debugTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	start := t.now()
	resp, err := t.base.RoundTrip(req)
	attrs := []any{"method", req.Method, "url", RedactURL(req.URL), "duration", t.now().Sub(start).Round(time.Microsecond).String()}
	if err != nil {
		// A *url.Error repeats the whole URL; say only what failed.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		attrs = append(attrs, "error", err.Error(), "retryable", "only if the request never left (the engine decides)")
		t.log.Debug("http", attrs...)
		return resp, err
	}
	attrs = append(attrs, "status", resp.StatusCode, "retryable", webapi.Transient(resp.StatusCode))
	if ra := webapi.RetryAfter(resp.Header, t.now()); ra > 0 {
		attrs = append(attrs, "retry_after", ra.String())
	}
	t.log.Debug("http", attrs...)
	return resp, nil
}

// secretParam matches query parameter names whose values are credentials.
var secretParam = regexp.MustCompile(`(?i)token|key|secret|pass|sig|auth|code|credential|session`)

// RedactURL is u as --debug shows it: no userinfo, and REDACTED for the
// value of every query parameter whose name looks like a credential's.
func RedactURL(u *url.URL) string {
	c := *u
	c.User = nil
	if c.RawQuery != "" {
		q := c.Query()
		for k, vs := range q {
			if secretParam.MatchString(k) {
				for i := range vs {
					vs[i] = "REDACTED"
				}
			}
		}
		c.RawQuery = q.Encode()
	}
	c.Fragment, c.RawFragment = "", ""
	return c.String()
}

// debugClient is c with every request logged.
func debugClient(c *http.Client, log *slog.Logger, now func() time.Time) *http.Client {
	base := c.Transport
	if base == nil {
		base = http.DefaultTransport
	}
	d := *c
	d.Transport = &debugTransport{base: base, log: log, now: now}
	return &d
}

// debugStore logs every lease operation and every write to the store,
// with the identifiers and states involved, never a sealed secret.
type debugStore struct {
	store.Store
	log *slog.Logger
}

func (s debugStore) lease(op string, name string, l *store.Lease, err error, attrs ...any) {
	attrs = append([]any{"op", op, "lease", name}, attrs...)
	if l != nil {
		attrs = append(attrs, "holder", l.Holder, "token", l.Token, "expires", l.ExpiresAt.UTC().Format(time.RFC3339Nano))
	}
	s.log.Debug("lease", withErr(attrs, err)...)
}

func (s debugStore) journal(op string, err error, attrs ...any) {
	s.log.Debug("journal", withErr(append([]any{"op", op}, attrs...), err)...)
}

func withErr(attrs []any, err error) []any {
	if err != nil {
		attrs = append(attrs, "error", err.Error())
	}
	return attrs
}

func (s debugStore) AcquireLease(ctx context.Context, p store.AcquireLeaseParams) (*store.Lease, error) {
	l, err := s.Store.AcquireLease(ctx, p)
	s.lease("acquire", p.Name, l, err, "for", p.Holder, "ttl", p.TTL.String(), "take_over_from", p.TakeOverFrom)
	return l, err
}

func (s debugStore) RenewLease(ctx context.Context, p store.RenewLeaseParams) (*store.Lease, error) {
	l, err := s.Store.RenewLease(ctx, p)
	s.lease("renew", p.Name, l, err)
	return l, err
}

func (s debugStore) ReleaseLease(ctx context.Context, p store.ReleaseLeaseParams) error {
	err := s.Store.ReleaseLease(ctx, p)
	s.lease("release", p.Name, nil, err, "for", p.Holder)
	return err
}

func (s debugStore) InsertVersion(ctx context.Context, p store.InsertVersionParams) (*store.Version, error) {
	v, err := s.Store.InsertVersion(ctx, p)
	attrs := []any{"credential", p.Credential, "role", p.Role, "stage", string(p.Stage), "rotation", p.RotationID, "fingerprint", p.Fingerprint}
	if v != nil {
		attrs = append(attrs, "version", v.Seq)
	}
	s.opened(p.Open, p.RotationID, err, "insert_version")
	s.journal("insert_version", err, attrs...)
	return v, err
}

// opened logs the started record a write carried (store.OpenStep) as the
// line an append of its own would have logged.
func (s debugStore) opened(o *store.OpenStep, rotationID int64, err error, carrier string) {
	if o != nil {
		s.journal("append_step", err, "rotation", rotationID, "step", o.Name, "status", string(store.StepStarted), "detail", "", "with", carrier)
	}
}

func (s debugStore) delivery(p store.UpsertDeliveryParams, err error, attrs ...any) {
	s.journal("upsert_delivery", err, append([]any{"rotation", p.RotationID, "target", p.Target, "state", string(p.State), "attempts", p.Attempts, "fingerprint", p.Fingerprint, "delivery_error", p.Error}, attrs...)...)
}

func (s debugStore) ReplacePendingSecret(ctx context.Context, p store.ReplacePendingSecretParams) error {
	err := s.Store.ReplacePendingSecret(ctx, p)
	s.journal("replace_pending_secret", err, "version_id", p.ID, "fingerprint", p.Fingerprint)
	return err
}

func (s debugStore) InsertRotation(ctx context.Context, p store.InsertRotationParams) (*store.Rotation, error) {
	r, err := s.Store.InsertRotation(ctx, p)
	s.inserted(p, r, err)
	return r, err
}

func (s debugStore) inserted(p store.InsertRotationParams, r *store.Rotation, err error, attrs ...any) {
	attrs = append([]any{"credential", p.Credential, "strategy", p.Strategy, "trigger", p.Trigger, "revoke", p.Revoke}, attrs...)
	if r != nil {
		attrs = append(attrs, "rotation", r.ID)
	}
	s.journal("insert_rotation", err, attrs...)
}

// StartRotation logs the lease and the rotation it takes in one write as
// the lines AcquireLease and InsertRotation would have logged.
func (s debugStore) StartRotation(ctx context.Context, p store.StartRotationParams) (*store.Rotation, *store.Lease, error) {
	r, l, err := s.Store.StartRotation(ctx, p)
	s.lease("acquire", p.Lease.Name, l, err, "for", p.Lease.Holder, "ttl", p.Lease.TTL.String(), "with", "insert_rotation")
	s.inserted(p.Rotation, r, err, "after", p.After)
	return r, l, err
}

func (s debugStore) UpdateRotation(ctx context.Context, p store.UpdateRotationParams) (*store.Rotation, error) {
	r, err := s.Store.UpdateRotation(ctx, p)
	attrs := []any{"rotation", p.ID, "rollback_snapshot", p.Rollback != nil}
	if p.ToVersionID != nil {
		attrs = append(attrs, "to_version_id", *p.ToVersionID)
	}
	if p.AppliedAt != nil {
		attrs = append(attrs, "applied_at", p.AppliedAt.UTC().Format(time.RFC3339Nano))
	}
	s.journal("update_rotation", err, attrs...)
	return r, err
}

func (s debugStore) AppendStep(ctx context.Context, p store.AppendStepParams) (*store.Step, error) {
	st, err := s.Store.AppendStep(ctx, p)
	s.opened(p.Open, p.RotationID, err, "append_step")
	for _, d := range p.Deliveries {
		s.delivery(d, err, "with", "append_step")
	}
	attrs := []any{"rotation", p.RotationID, "step", p.Name, "status", string(p.Status), "detail", p.Detail}
	if !p.AppliedAt.IsZero() {
		attrs = append(attrs, "applied_at", p.AppliedAt)
	}
	s.journal("append_step", err, attrs...)
	return st, err
}

func (s debugStore) UpsertDelivery(ctx context.Context, p store.UpsertDeliveryParams) (*store.Delivery, error) {
	d, err := s.Store.UpsertDelivery(ctx, p)
	s.delivery(p, err)
	return d, err
}

func (s debugStore) FinishRotation(ctx context.Context, p store.FinishRotationParams) (*store.Rotation, error) {
	r, err := s.Store.FinishRotation(ctx, p)
	s.opened(p.Open, p.ID, err, "finish_rotation")
	s.journal("finish_rotation", err, "rotation", p.ID, "status", string(p.Status), "promote", p.Promote, "retire_previous", p.RetirePrevious, "audit", p.Audit.Event)
	if p.Release {
		s.lease("release", p.Fence.Lease, nil, err, "with", "finish_rotation")
	}
	return r, err
}

func (s debugStore) FinishRetirement(ctx context.Context, p store.FinishRetirementParams) (*store.Rotation, error) {
	r, err := s.Store.FinishRetirement(ctx, p)
	s.journal("finish_retirement", err, "rotation", p.ID, "status", string(p.Status), "audit", p.Audit.Event)
	return r, err
}

func (s debugStore) AppendAudit(ctx context.Context, p store.AppendAuditParams) (*store.AuditEvent, error) {
	e, err := s.Store.AppendAudit(ctx, p)
	s.journal("append_audit", err, "credential", p.Credential, "rotation", p.RotationID, "event", p.Event)
	return e, err
}

// debugDial is engine.DialPostgresAfter with each login test logged: the
// connection string with its password replaced, how long it took (for a
// login connected early, counted from the connect, before apply
// finished), how it ended.
func debugDial(log *slog.Logger, now func() time.Time) func(context.Context, secret.String, <-chan struct{}) error {
	return func(ctx context.Context, u secret.String, ready <-chan struct{}) error {
		start := now()
		err := engine.DialPostgresAfter(ctx, u, ready)
		shown := "(not a connection string)"
		var pw secret.String
		if c, perr := connstr.Parse(u.Reveal()); perr == nil {
			shown, pw = c.Redacted(), c.Password
		}
		attrs := []any{"url", shown, "duration", now().Sub(start).Round(time.Microsecond).String()}
		if ready != nil {
			attrs = append(attrs, "connected_early", true)
		}
		if err != nil {
			attrs = append(attrs, "error", secret.ScrubString(err.Error(), u, pw))
		}
		log.Debug("login test", attrs...)
		return err
	}
}

// debugEvents passes every engine event on to next and logs it: each step
// and target as it starts, finishes or fails, and each retry decision.
func debugEvents(log *slog.Logger, next func(engine.Event)) func(engine.Event) {
	return func(ev engine.Event) {
		attrs := []any{"credential", ev.Credential, "rotation", ev.RotationID, "step", ev.Step, "status", ev.Status}
		if ev.Target != "" {
			attrs = append(attrs, "target", ev.Target)
		}
		if ev.Detail != "" {
			attrs = append(attrs, "detail", ev.Detail)
		}
		if ev.Elapsed > 0 {
			attrs = append(attrs, "elapsed", ev.Elapsed.String())
		}
		log.Debug("engine", attrs...)
		next(ev)
	}
}
