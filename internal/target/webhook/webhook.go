// Package webhook is the webhook target: it POSTs a signed JSON event to
// a URL of the user's when a credential is published — by default only
// fingerprints of the values, the values themselves only with
// include_values: true — and, through Notify, when a rotation succeeds or
// fails.
//
// The contract is rotor's own (docs/targets/webhook.md): the body is
// signed with HMAC-SHA256 under a shared secret, over the timestamp and
// the body, like Stripe's and GitHub's webhooks, so a receiver can tell a
// genuine delivery from a forged or replayed one; see Sign and Verify.
// HTTP behaviour follows targets-api.md's rules for every sink (via
// webapi): 429 and 5xx are retryable with the receiver's Retry-After, and
// the Idempotency-Key is derived from the rotation ID, so a retried
// delivery is recognisable.
package webhook

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/rotorhq/rotor/internal/connstr"
	"github.com/rotorhq/rotor/internal/secret"
	"github.com/rotorhq/rotor/internal/target"
	"github.com/rotorhq/rotor/internal/target/webapi"
)

// Type is the registry name of this target.
const Type = "webhook"

// Event types. A Put delivers EventPublished; Notify delivers the others.
const (
	EventPublished  = "rotation.published"
	EventSucceeded  = "rotation.succeeded"
	EventOldInUse   = "rotation.published_old_in_use"
	EventRolledBack = "rotation.rolled_back"
	EventFailed     = "rotation.failed"
	EventPing       = "ping"
)

// notifyEvents are the types Notify may send, the default of notify:.
var notifyEvents = []string{EventSucceeded, EventOldInUse, EventRolledBack, EventFailed}

const (
	defaultTimeout = 10 * time.Second
	minSecretLen   = 16
	notifyAttempts = 3
	maxNotifyWait  = 30 * time.Second
	userAgent      = "rotor-webhook/1"
)

// Options are the target's own config keys.
type Options struct {
	// URL receives the POSTs. https, or http to a loopback address.
	URL string `yaml:"url"`
	// Secret is the HMAC key shared with the receiver, written as ${ENV}
	// (the config layer refuses a typed-in one); at least 16 bytes.
	Secret string `yaml:"secret"`
	// IncludeValues puts the values themselves in the event. Default
	// false: fingerprints only.
	IncludeValues bool `yaml:"include_values"`
	// Headers are sent with every delivery (Authorization: Bearer
	// ${HOOK_TOKEN}, …); rotor's own headers cannot be overridden.
	Headers map[string]string `yaml:"headers"`
	// Timeout bounds each request, e.g. "10s" (the default).
	Timeout string `yaml:"timeout"`
	// Notify lists the event types Notify delivers; default all of
	// rotation.succeeded, rotation.published_old_in_use,
	// rotation.rolled_back, rotation.failed. [] delivers none.
	Notify *[]string `yaml:"notify"`
	// ReloadWait is how long the reload phase waits after the receiver
	// answered 2xx before it reports the consumers moved, e.g. "30s", for
	// receivers that act on the event asynchronously (a queued job, a
	// redeploy of their own). Default 0: the 2xx is the acknowledgement.
	ReloadWait string `yaml:"reload_wait"`
}

// Target delivers events to one URL.
type Target struct {
	name          string
	desc          string
	client        *webapi.Client
	where         string // scheme://host, safe to show
	secret        secret.String
	includeValues bool
	headers       http.Header
	timeout       time.Duration
	notify        map[string]bool
	now           func() time.Time
	// settle is reload_wait, counted from the 2xx of each rotation's
	// delivery.
	settle *target.Settle
}

var headerNameRE = regexp.MustCompile("^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")

// reservedHeaders are set by the target; a user value would break the
// signature or the idempotency contract.
var reservedHeaders = []string{HeaderSignature, HeaderTimestamp, HeaderEvent, HeaderIdempotency, "Content-Type", "Content-Length", "Host"}

// New builds a webhook target from its options. It does no I/O.
func New(p target.Params) (target.Target, error) {
	desc := p.Describe(Type)
	var opts Options
	if err := p.DecodeOptions(Type, &opts); err != nil {
		return nil, err
	}
	if opts.URL == "" {
		return nil, fmt.Errorf("%s has no url; add url: https://hooks.example.com/rotor: %w", desc, target.ErrInvalid)
	}
	u, err := url.Parse(opts.URL)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return nil, fmt.Errorf("%s: url must be an absolute https:// URL: %w", desc, target.ErrInvalid)
	}
	if u.User != nil {
		return nil, fmt.Errorf("%s: url holds credentials; send them as a header instead (headers: {Authorization: \"Bearer ${HOOK_TOKEN}\"}): %w", desc, target.ErrInvalid)
	}
	if u.Scheme == "http" && !isLoopback(u.Hostname()) {
		if opts.IncludeValues {
			return nil, fmt.Errorf("%s: include_values: true would send passwords over plain http to %s; use https: %w", desc, u.Host, target.ErrInvalid)
		}
	}
	if len(opts.Secret) < minSecretLen {
		return nil, fmt.Errorf("%s: secret is missing or shorter than %d bytes; generate one (openssl rand -hex 32), share it with the receiver and write secret: ${WEBHOOK_SECRET}: %w", desc, minSecretLen, target.ErrInvalid)
	}
	timeout := defaultTimeout
	if opts.Timeout != "" {
		d, err := time.ParseDuration(opts.Timeout)
		if err != nil || d <= 0 {
			return nil, fmt.Errorf("%s: timeout %q is not a positive duration like 10s: %w", desc, opts.Timeout, target.ErrInvalid)
		}
		timeout = d
	}
	headers := http.Header{}
	for k, v := range opts.Headers {
		if !headerNameRE.MatchString(k) {
			return nil, fmt.Errorf("%s: header name %q is not a valid HTTP header name: %w", desc, k, target.ErrInvalid)
		}
		if slices.ContainsFunc(reservedHeaders, func(r string) bool { return strings.EqualFold(r, k) }) {
			return nil, fmt.Errorf("%s: header %s is set by rotor itself and cannot be overridden: %w", desc, k, target.ErrInvalid)
		}
		if strings.ContainsAny(v, "\r\n") {
			return nil, fmt.Errorf("%s: header %s holds a line break: %w", desc, k, target.ErrInvalid)
		}
		headers.Set(k, v)
	}
	notify := map[string]bool{}
	events := notifyEvents
	if opts.Notify != nil {
		events = *opts.Notify
	}
	for _, e := range events {
		if !slices.Contains(notifyEvents, e) {
			return nil, fmt.Errorf("%s: notify event %q is not one of %s: %w", desc, e, strings.Join(notifyEvents, ", "), target.ErrInvalid)
		}
		notify[e] = true
	}
	reloadWait, err := target.ParseSettle(opts.ReloadWait)
	if err != nil {
		return nil, fmt.Errorf("%s: %w: %w", desc, err, target.ErrInvalid)
	}
	now := p.Clock()
	hc := p.HTTP()
	// A redirect would resend the body, values included, to wherever the
	// receiver points; a 3xx is reported instead.
	noRedirect := *hc
	noRedirect.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	// Shown in Destination and errors: the scheme and host only, since
	// some receivers (Slack-style hooks) carry their token in the path.
	where := u.Scheme + "://" + u.Host
	if u.EscapedPath() != "" && u.EscapedPath() != "/" || u.RawQuery != "" {
		where += "/…"
	}
	t := &Target{
		name: p.Name, desc: desc,
		where:         where,
		secret:        secret.New(opts.Secret),
		includeValues: opts.IncludeValues,
		headers:       headers,
		timeout:       timeout,
		notify:        notify,
		now:           now,
		settle:        &target.Settle{Wait: reloadWait, Now: now},
	}
	t.client = &webapi.Client{
		HTTP: &noRedirect, BaseURL: u.String(), Target: desc + " (" + where + ")", Now: now, UserAgent: userAgent,
	}
	return t, nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Info implements target.Target. Deliveries carry an Idempotency-Key, so
// the engine may retry them.
func (t *Target) Info() target.Info {
	return target.Info{Type: Type, Name: t.name, Destination: t.where, Idempotent: true}
}

// Event is what Notify delivers: the outcome of a rotation. It never
// holds a value; Error must already be scrubbed by the caller (the engine
// scrubs its errors before recording them).
type Event = target.Notification

// payload is the JSON body of every delivery.
type payload struct {
	Type         string            `json:"type"`
	Target       string            `json:"target"`
	Credential   string            `json:"credential,omitempty"`
	RotationID   string            `json:"rotation_id,omitempty"`
	Version      int64             `json:"version,omitempty"`
	Role         string            `json:"role,omitempty"`
	OldRole      string            `json:"old_role,omitempty"`
	Status       string            `json:"status,omitempty"`
	Step         string            `json:"step,omitempty"`
	Error        string            `json:"error,omitempty"`
	Outcome      string            `json:"outcome,omitempty"`
	Time         string            `json:"time,omitempty"`
	Keys         []string          `json:"keys,omitempty"`
	Fingerprints map[string]string `json:"fingerprints,omitempty"`
	Values       map[string]string `json:"values,omitempty"`
}

// Put implements target.Target: one signed rotation.published delivery
// with the fingerprints (and, with include_values, the values) of
// req.Values. The body does not depend on the time, so a retry sends the
// same body under the same Idempotency-Key; only the timestamp and
// signature headers change.
func (t *Target) Put(ctx context.Context, req target.PutRequest) (target.PutResponse, error) {
	if err := ctx.Err(); err != nil {
		return target.PutResponse{}, err
	}
	key := []byte(t.secret.Reveal())
	p := payload{
		Type: EventPublished, Target: t.name, RotationID: req.RotationID, Version: req.Version, Role: req.Role,
		Keys: req.OrderedKeys(), Fingerprints: map[string]string{},
	}
	if t.includeValues {
		p.Values = map[string]string{}
	}
	for k, v := range req.Values {
		p.Fingerprints[k] = Fingerprint(key, v.Reveal())
		if t.includeValues {
			p.Values[k] = v.Reveal()
		}
	}
	idem := req.RotationID + "-" + t.name
	if err := t.deliver(ctx, p, idem, scrubList(req)); err != nil {
		return target.PutResponse{}, err
	}
	t.settle.Ack(req.RotationID)
	return target.PutResponse{Changed: true, Ref: idem}, nil
}

// Enabled implements target.Switchable: without reload_wait there is no
// reload to report, the 2xx to the delivery being all there is.
func (t *Target) Enabled(c target.Capability) bool {
	return c != target.CanReload || t.settle.Wait > 0
}

// Reload implements target.Reloader. The receiver's 2xx to the delivery
// is its acknowledgement, so with no reload_wait the reload has finished
// once Put returned. With reload_wait it returns once that long has passed
// since the 2xx; when the delivery was made by an earlier process (a
// resume after a crash) the time of the 2xx is not known here, so it waits
// the whole reload_wait from now. When ctx ends (the target's
// reload_timeout) first, the error wraps ctx.Err().
func (t *Target) Reload(ctx context.Context, req target.ReloadRequest) (target.ReloadResponse, error) {
	if t.settle.Wait <= 0 {
		return target.ReloadResponse{Detail: "the receiver's 2xx is its acknowledgement"}, nil
	}
	if left, err := t.settle.Until(ctx, t.settle.Ack(req.RotationID)); err != nil {
		return target.ReloadResponse{}, fmt.Errorf("%s: the receiver answered 2xx, but the reload's time ran out with %s of reload_wait %s left, before it was expected to have acted; lower reload_wait or raise reload_timeout, then run `rotor resume`: %w",
			t.desc, left.Round(time.Millisecond), t.settle.Wait, err)
	}
	return target.ReloadResponse{Detail: fmt.Sprintf("receiver answered 2xx, then waited reload_wait %s", t.settle.Wait)}, nil
}

// Notify delivers ev, signed like Put's deliveries, when ev.Type is one of
// the target's notify: types (all by default); other types are skipped
// without a request. It retries a 429, a 5xx or a network error up to 3
// times in all, honouring Retry-After up to 30s, since the engine does not
// retry notifications. The Idempotency-Key is
// "<rotation id>-<target>-<type>".
func (t *Target) Notify(ctx context.Context, ev Event) error {
	if !t.notify[ev.Type] {
		return nil
	}
	p := payload{
		Type: ev.Type, Target: t.name, Credential: ev.Credential, RotationID: ev.RotationID, Version: ev.Version,
		Role: ev.Role, OldRole: ev.OldRole, Status: ev.Status, Step: ev.Step, Error: ev.Error, Outcome: ev.Outcome,
	}
	if !ev.Time.IsZero() {
		p.Time = ev.Time.UTC().Format(time.RFC3339Nano)
	}
	idem := ev.RotationID + "-" + t.name + "-" + ev.Type
	var err error
	for attempt := range notifyAttempts {
		if err = t.deliver(ctx, p, idem, nil); err == nil {
			return nil
		}
		var re *target.RetryableError
		if !errors.As(err, &re) || attempt == notifyAttempts-1 {
			break
		}
		wait := time.Duration(250<<attempt) * time.Millisecond
		if re.RetryAfter > 0 {
			wait = min(re.RetryAfter, maxNotifyWait)
		}
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return fmt.Errorf("%s: notify %s: %w", t.desc, ev.Type, ctx.Err())
		case <-timer.C:
		}
	}
	return fmt.Errorf("%s: notify %s: %w", t.desc, ev.Type, err)
}

// Validate implements target.Validator with a signed "ping" delivery,
// which carries no value: it proves the receiver is reachable and accepts
// rotor's signature (a receiver should verify it, answer 2xx and do
// nothing else).
func (t *Target) Validate(ctx context.Context, _ target.ValidateRequest) (target.ValidateResponse, error) {
	if err := t.deliver(ctx, payload{Type: EventPing, Target: t.name}, "", nil); err != nil {
		return target.ValidateResponse{}, err
	}
	var notes []string
	if strings.HasPrefix(t.where, "http://") {
		notes = append(notes, "the url is plain http; deliveries can be read on the way (they carry fingerprints only)")
	}
	return target.ValidateResponse{Notes: append(notes, "the receiver accepted a signed ping")}, nil
}

// Check implements target.Checker: a webhook cannot be read back.
func (t *Target) Check(ctx context.Context, req target.CheckRequest) (target.CheckResponse, error) {
	if err := ctx.Err(); err != nil {
		return target.CheckResponse{}, err
	}
	return target.CheckResponse{
		Values: map[string]secret.String{}, Unreadable: req.Keys,
		Notes: []string{"a webhook cannot be read back; the receiver's 2xx answer is the only confirmation"},
	}, nil
}

// deliver POSTs p signed, mapping answers to target errors (webapi) and
// making a 401/403 say what a webhook receiver most likely objects to.
func (t *Target) deliver(ctx context.Context, p payload, idem string, secrets []secret.String) error {
	body, err := json.Marshal(p)
	if err != nil {
		return fmt.Errorf("%s: encode the event: %w", t.desc, err)
	}
	ctx, cancel := context.WithTimeout(ctx, t.timeout)
	defer cancel()
	h := t.headers.Clone()
	h.Set(HeaderEvent, p.Type)
	if idem != "" {
		h.Set(HeaderIdempotency, idem)
	}
	client := *t.client
	client.Auth = t.sign
	secrets = append(secrets, t.secret)
	for _, vs := range t.headers {
		for _, v := range vs {
			secrets = append(secrets, secret.New(v))
		}
	}
	_, err = client.Do(ctx, webapi.Request{
		Method: http.MethodPost, Body: json.RawMessage(body), Header: h,
		Secrets: secrets, Retryable: true,
	})
	switch {
	case err == nil:
		return nil
	case errors.Is(err, target.ErrAuth):
		return fmt.Errorf("%s: the receiver at %s refused the delivery; check that it verifies %s with the same secret rotor has, and any headers it requires: %w", t.desc, t.where, HeaderSignature, err)
	}
	return err
}

// sign sets the timestamp and signature over exactly the bytes being sent.
func (t *Target) sign(req *http.Request) {
	var body []byte
	if req.GetBody != nil {
		if rc, err := req.GetBody(); err == nil {
			body, _ = io.ReadAll(rc)
			rc.Close()
		}
	}
	ts := t.now().Unix()
	req.Header.Set(HeaderTimestamp, fmt.Sprint(ts))
	req.Header.Set(HeaderSignature, Sign([]byte(t.secret.Reveal()), ts, body))
}

// scrubList is every value and the password inside each connection
// string, for scrubbing receivers' echoes out of errors.
func scrubList(req target.PutRequest) []secret.String {
	var out []secret.String
	for _, v := range req.Values {
		out = append(out, v)
		if c, err := connstr.Parse(v.Reveal()); err == nil && !c.Password.IsZero() {
			out = append(out, c.Password)
		}
	}
	return out
}

var (
	_ target.Target    = (*Target)(nil)
	_ target.Checker   = (*Target)(nil)
	_ target.Validator = (*Target)(nil)
	_ target.Notifier  = (*Target)(nil)
)
