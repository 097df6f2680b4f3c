// Package fly is the Fly.io target: it sets app secrets through the
// Machines API and then, like `fly secrets deploy`, updates every machine
// of the app so it restarts with them (targets-api.md §3).
//
// Setting secrets never restarts anything; they are only staged. Reload
// re-submits each machine's own config with min_secrets_version, the
// version the write returned, so no machine can start with older secrets.
// It is rolling: each machine is updated only after the one before it is
// started again and passing its health checks, so the app keeps serving
// from the others (see rolling.go).
// Fly.io never reveals secret values to the API, only a digest and
// timestamps: Check reports every key as unreadable with that metadata.
package fly

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rotorhq/rotor/internal/secret"
	"github.com/rotorhq/rotor/internal/target"
	"github.com/rotorhq/rotor/internal/target/webapi"
)

// Type is the registry name of this target.
const Type = "fly"

// DefaultAPIURL is the public Machines API (paths carry the /v1 prefix).
const DefaultAPIURL = "https://api.machines.dev"

// Options are the target's own config keys.
type Options struct {
	// App is the Fly.io app name.
	App string `yaml:"app"`
	// Deploy makes Reload update every machine so it picks the secrets up
	// (what `fly secrets deploy` does). Default true; false leaves them
	// staged for the next `fly deploy`.
	Deploy *bool `yaml:"deploy"`
	// Token is a Fly.io API token (`fly tokens create deploy`), always
	// given as ${FLY_API_TOKEN}.
	Token string `yaml:"token"`
	// APIURL overrides the API base URL (tests point it at a fake; inside
	// Fly's network http://_api.internal:4280 also works).
	APIURL string `yaml:"api_url"`
	// WaitTimeout bounds how long Reload waits for one updated machine to
	// be started again and pass its health checks before it gives up and
	// leaves the remaining machines alone, e.g. "2m". Default 5m, as
	// flyctl's --wait-timeout.
	WaitTimeout string `yaml:"wait_timeout"`
	// ReloadPoll is how often Reload reads an updated machine while it
	// waits for its health checks to pass, and how long it pauses after a
	// transient error while waiting, e.g. "2s". Default 1s.
	ReloadPoll string `yaml:"reload_poll"`
}

// DefaultWaitTimeout is how long Reload waits for each machine by default
// (flyctl's `fly machine wait --wait-timeout` default).
const DefaultWaitTimeout = 5 * time.Minute

// Target keeps the secrets of one Fly.io app.
type Target struct {
	name string
	app  string
	api  *webapi.Client
	// deploy is false with deploy: false, which switches Reload off.
	deploy bool

	mu sync.Mutex
	// version is the secrets version the last Put produced (0: none in
	// this process); Reload passes it as min_secrets_version and Check
	// lists secrets at it, so both see that write.
	version uint64
	// digests are what Fly.io reported for each key at the last Put, to
	// tell in Check whether someone else has set it since.
	digests map[string]string
	// updated remembers, per rotation, the machines Reload already
	// updated and whether they came back, so an engine retry neither
	// restarts a machine twice nor moves on before it is healthy.
	updated map[string]map[string]*progress

	// waitTimeout bounds the wait for each machine (wait_timeout).
	waitTimeout time.Duration
	// pollEvery is the pause between health-check polls (reload_poll).
	pollEvery time.Duration
	// waitChunk caps how long one wait request may block.
	waitChunk time.Duration
}

var appName = regexp.MustCompile(`^[a-z0-9][a-z0-9-]*$`)

// New builds a Fly.io target from its options. It does no I/O.
func New(p target.Params) (target.Target, error) {
	opts := Options{APIURL: DefaultAPIURL}
	if err := p.DecodeOptions(Type, &opts); err != nil {
		return nil, err
	}
	fail := func(format string, args ...any) error {
		return fmt.Errorf("fly target %q: "+format+": %w", append([]any{p.Name}, append(args, target.ErrInvalid)...)...)
	}
	switch {
	case opts.App == "":
		return nil, fail("no app; add app: <name> (as in fly.toml or `fly apps list`)")
	case !appName.MatchString(opts.App):
		return nil, fail("app %q is not a Fly.io app name (lower-case letters, digits and dashes)", opts.App)
	}
	if opts.Token == "" {
		return nil, fmt.Errorf("fly target %q has no token; add token: ${FLY_API_TOKEN} and export FLY_API_TOKEN (from `fly tokens create deploy -a %s`): %w", p.Name, opts.App, target.ErrAuth)
	}
	pollEvery := defaultPollEvery
	if opts.ReloadPoll != "" {
		d, err := time.ParseDuration(opts.ReloadPoll)
		if err != nil || d <= 0 {
			return nil, fail("reload_poll %q is not a positive duration like 1s or 5s", opts.ReloadPoll)
		}
		pollEvery = d
	}
	waitTimeout := DefaultWaitTimeout
	if opts.WaitTimeout != "" {
		d, err := time.ParseDuration(opts.WaitTimeout)
		if err != nil || d <= 0 {
			return nil, fail("wait_timeout %q is not a positive duration like 90s or 5m", opts.WaitTimeout)
		}
		waitTimeout = d
	}
	u, err := url.Parse(opts.APIURL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fail("api_url %q is not an http(s) URL; leave it out to use %s", opts.APIURL, DefaultAPIURL)
	}
	hc := p.HTTP()
	now := p.Clock()
	t := &Target{
		name: p.Name,
		app:  opts.App,
		api: &webapi.Client{
			HTTP: hc, BaseURL: strings.TrimSuffix(opts.APIURL, "/"), Auth: auth(opts.Token),
			Target: "Fly.io Machines API", Now: now, UserAgent: "rotor",
		},
		digests:     map[string]string{},
		updated:     map[string]map[string]*progress{},
		waitTimeout: waitTimeout,
		pollEvery:   pollEvery,
		waitChunk:   maxWaitChunk,
		deploy:      opts.Deploy == nil || *opts.Deploy,
	}
	return t, nil
}

// Enabled implements target.Switchable: deploy: false leaves the secrets
// staged, so there is no reload to run or report.
func (t *Target) Enabled(c target.Capability) bool {
	return c != target.CanReload || t.deploy
}

// auth sends macaroon tokens (`FlyV1 fm2_…`, what `fly tokens create`
// prints) as they are, and anything else as a bearer token, as flyctl does.
func auth(token string) func(*http.Request) {
	if strings.HasPrefix(token, "FlyV1 ") {
		return func(r *http.Request) { r.Header.Set("Authorization", token) }
	}
	return webapi.Bearer(token)
}

// Info implements target.Target.
func (t *Target) Info() target.Info {
	return target.Info{Type: Type, Name: t.name, Destination: "fly app " + t.app, Idempotent: true}
}

// Put implements target.Target: every key in one call, which Fly.io
// applies as one new secrets version. Fly.io does not say whether a value
// changed, so Changed is always true.
func (t *Target) Put(ctx context.Context, req target.PutRequest) (target.PutResponse, error) {
	keys := req.OrderedKeys()
	values := make(map[string]string, len(keys))
	secrets := make([]secret.String, 0, len(keys))
	for _, k := range keys {
		values[k] = req.Values[k].Reveal()
		secrets = append(secrets, req.Values[k])
	}
	resp, err := t.api.Do(ctx, webapi.Request{
		Method: http.MethodPost, Path: t.appPath("/secrets"),
		Body: map[string]any{"values": values}, Secrets: secrets, Retryable: true,
	})
	if err != nil {
		return target.PutResponse{}, t.fail("cannot set "+strings.Join(keys, ", "), err)
	}
	var out struct {
		Secrets []appSecret `json:"secrets"`
		Version uint64      `json:"version"`
	}
	if err := t.api.Decode(resp, &out); err != nil {
		return target.PutResponse{}, t.fail("cannot read the answer to setting secrets", err)
	}
	t.mu.Lock()
	t.version = max(t.version, out.Version)
	for _, s := range out.Secrets {
		if _, ours := values[s.Name]; ours {
			t.digests[s.Name] = s.Digest
		}
	}
	t.mu.Unlock()
	return target.PutResponse{Changed: true, Ref: "secrets version " + strconv.FormatUint(out.Version, 10)}, nil
}

// Check implements target.Checker. Values never leave Fly.io; each key
// that exists is Unreadable, with its digest and update time in Notes.
func (t *Target) Check(ctx context.Context, req target.CheckRequest) (target.CheckResponse, error) {
	list, err := t.list(ctx)
	if err != nil {
		return target.CheckResponse{}, err
	}
	byName := make(map[string]appSecret, len(list))
	for _, s := range list {
		byName[s.Name] = s
	}
	t.mu.Lock()
	written := make(map[string]string, len(t.digests))
	for k, d := range t.digests {
		written[k] = d
	}
	t.mu.Unlock()
	resp := target.CheckResponse{Values: map[string]secret.String{}}
	for _, k := range req.Keys {
		s, ok := byName[k]
		if !ok {
			continue
		}
		resp.Unreadable = append(resp.Unreadable, k)
		note := k + " is write-only on Fly.io"
		if s.Digest != "" {
			note += "; digest " + s.Digest
		}
		if when := cmp.Or(s.UpdatedAt, s.CreatedAt); when != "" {
			note += ", set " + when
		}
		switch d, ours := written[k]; {
		case !ours || d == "" || s.Digest == "":
		case d == s.Digest:
			note += "; unchanged since rotor set it"
		default:
			note += "; the digest differs from the one Fly.io returned when rotor set it, so something else has set " + k + " since"
		}
		resp.Notes = append(resp.Notes, note)
	}
	return resp, nil
}

// Validate implements target.Validator: listing the app's secrets proves
// the token and the app; with deploy, listing its machines proves the
// token may see them. Nothing is written.
func (t *Target) Validate(ctx context.Context, _ target.ValidateRequest) (target.ValidateResponse, error) {
	var resp target.ValidateResponse
	if _, err := t.list(ctx); err != nil {
		return resp, err
	}
	if !t.deploy {
		return resp, nil
	}
	ms, err := t.machines(ctx)
	if err != nil {
		return target.ValidateResponse{}, err
	}
	if len(ms) == 0 {
		resp.Notes = append(resp.Notes, "app "+t.app+" has no machines; the secrets will apply at its first deploy")
	}
	return resp, nil
}

func (t *Target) machines(ctx context.Context) ([]machine, error) {
	resp, err := t.api.Do(ctx, webapi.Request{Method: http.MethodGet, Path: t.appPath("/machines"), Retryable: true})
	if err != nil {
		return nil, t.fail("cannot list the app's machines", err)
	}
	var ms []machine
	if err := t.api.Decode(resp, &ms); err != nil {
		return nil, t.fail("cannot read the machine list", err)
	}
	return ms, nil
}

func (t *Target) list(ctx context.Context) ([]appSecret, error) {
	path := t.appPath("/secrets")
	t.mu.Lock()
	if t.version > 0 {
		// Reads may lag writes; asking for at least our version makes the
		// list include what this process just set.
		path += "?version=" + strconv.FormatUint(t.version, 10)
	}
	t.mu.Unlock()
	resp, err := t.api.Do(ctx, webapi.Request{Method: http.MethodGet, Path: path, Retryable: true})
	if err != nil {
		return nil, t.fail("cannot list the app's secrets", err)
	}
	var out struct {
		Secrets []appSecret `json:"secrets"`
	}
	if err := t.api.Decode(resp, &out); err != nil {
		return nil, t.fail("cannot read the secrets list", err)
	}
	return out.Secrets, nil
}

func (t *Target) appPath(suffix string) string {
	return "/v1/apps/" + url.PathEscape(t.app) + suffix
}

// fail wraps an API error with what rotor was doing and how to fix the
// usual causes.
func (t *Target) fail(doing string, err error) error {
	hint := ""
	switch {
	case errors.Is(err, target.ErrAuth):
		hint = fmt.Sprintf("; the token was refused: set token: ${FLY_API_TOKEN} to a token that may manage app %s's secrets and machines (`fly tokens create deploy -a %s`)", t.app, t.app)
	case errors.Is(err, target.ErrNotFound):
		hint = fmt.Sprintf("; check that app %q exists (`fly apps list`) and that the token's organization owns it", t.app)
	}
	return fmt.Errorf("fly target %q: %s%s: %w", t.name, doing, hint, err)
}

type appSecret struct {
	Name      string `json:"name"`
	Digest    string `json:"digest"`
	CreatedAt string `json:"created_at"`
	UpdatedAt string `json:"updated_at"`
}

type machine struct {
	ID     string `json:"id"`
	State  string `json:"state"`
	Region string `json:"region"`
	// InstanceID names the machine's current version; every update
	// changes it.
	InstanceID string `json:"instance_id"`
	// Config is passed back untouched: fields rotor does not know about
	// must survive the update.
	Config json.RawMessage `json:"config"`
	// Checks are the health checks' current results.
	Checks []checkStatus `json:"checks"`
}

// checkStatus is one health check's result: "passing", "warning" or
// "critical" (fly-go's ConsulCheckStatus).
type checkStatus struct {
	Name   string `json:"name"`
	Status string `json:"status"`
}

type updateBody struct {
	Config            json.RawMessage `json:"config"`
	Region            string          `json:"region,omitempty"`
	MinSecretsVersion *uint64         `json:"min_secrets_version,omitempty"`
	SkipLaunch        bool            `json:"skip_launch,omitempty"`
}

var (
	_ target.Target     = (*Target)(nil)
	_ target.Checker    = (*Target)(nil)
	_ target.Validator  = (*Target)(nil)
	_ target.Reloader   = (*Target)(nil)
	_ target.Switchable = (*Target)(nil)
)
