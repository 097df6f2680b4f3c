// Package render is the Render target: it keeps environment variables of
// one Render service, or of one environment group, up to date and deploys
// the services that read them (targets-api.md §2), waiting until every
// deploy is live (deploys.go).
//
// Each key is written with its own add-or-update call (PUT
// …/env-vars/{key}), never with the endpoint that replaces a service's whole
// variable list: keys rotor does not manage must survive. Values are
// readable, so Put skips keys that already hold their value and Check
// reads every key back.
package render

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/rotorhq/rotor/internal/secret"
	"github.com/rotorhq/rotor/internal/target"
	"github.com/rotorhq/rotor/internal/target/webapi"
)

// Type is the registry name of this target.
const Type = "render"

// DefaultAPIURL is Render's REST API (paths carry the /v1 prefix).
const DefaultAPIURL = "https://api.render.com"

// Deploy modes Render accepts for a deploy.
const (
	// DeployOnly redeploys the last successful build: the quickest way to
	// hand running code new variables.
	DeployOnly = "deploy_only"
	// BuildAndDeploy rebuilds first, for builds that bake variables in.
	BuildAndDeploy = "build_and_deploy"
)

// Options are the target's own config keys.
type Options struct {
	// ServiceID is the service (srv-…) whose variables to keep.
	ServiceID string `yaml:"service_id"`
	// EnvGroupID is the environment group (evg-…) whose variables to keep,
	// instead of a service.
	EnvGroupID string `yaml:"env_group_id"`
	// Deploy makes Reload deploy. Default: true for a service; for an
	// environment group, true exactly when DeployServices is set.
	Deploy *bool `yaml:"deploy"`
	// DeployServices are the services (srv-…) linked to the environment
	// group that Reload deploys.
	DeployServices []string `yaml:"deploy_services"`
	// DeployMode is deploy_only or build_and_deploy; empty leaves Render's
	// default (build and deploy).
	DeployMode string `yaml:"deploy_mode"`
	// ReloadPoll is how often Reload reads each deploy until it is live,
	// as a duration ("10s"). Default DefaultReloadPoll.
	ReloadPoll string `yaml:"reload_poll"`
	// Token is a Render API key, always given as ${RENDER_API_KEY}.
	Token string `yaml:"token"`
	// APIURL overrides the API base URL (tests point it at a fake).
	APIURL string `yaml:"api_url"`
}

// Target keeps variables of one Render service or environment group.
type Target struct {
	name       string
	kind       string // "services" or "env-groups"
	id         string
	deployTo   []string
	deployMode string
	api        *webapi.Client
	// poll is the pause between two reads of the deploys Reload waits for.
	poll time.Duration
	now  func() time.Time

	mu sync.Mutex
	// deployed remembers, per rotation and service, the deploy Reload
	// started, so an engine retry or a resume waits for it instead of
	// deploying the service again.
	deployed map[string]map[string]*deployWait
}

// New builds a Render target from its options. It does no I/O.
func New(p target.Params) (target.Target, error) {
	opts := Options{APIURL: DefaultAPIURL}
	if err := p.DecodeOptions(Type, &opts); err != nil {
		return nil, err
	}
	t, err := newTarget(p, opts)
	if err != nil {
		return nil, err
	}
	return t, nil
}

// Enabled implements target.Switchable: with nothing to deploy there is
// no reload, and the engine must not report one.
func (t *Target) Enabled(c target.Capability) bool {
	return c != target.CanReload || len(t.deployTo) > 0
}

func newTarget(p target.Params, opts Options) (*Target, error) {
	fail := func(format string, args ...any) error {
		return fmt.Errorf("render target %q: "+format+": %w", append([]any{p.Name}, append(args, target.ErrInvalid)...)...)
	}
	t := &Target{name: p.Name, deployMode: opts.DeployMode, deployed: map[string]map[string]*deployWait{}}
	switch {
	case opts.ServiceID != "" && opts.EnvGroupID != "":
		return nil, fail("service_id and env_group_id are both set; a target writes to one of them, so split it into two targets")
	case opts.ServiceID != "":
		t.kind, t.id = "services", opts.ServiceID
		if len(opts.DeployServices) > 0 {
			return nil, fail("deploy_services is for environment groups; a service target deploys its own service (deploy: true, the default)")
		}
		if opts.Deploy == nil || *opts.Deploy {
			t.deployTo = []string{opts.ServiceID}
		}
	case opts.EnvGroupID != "":
		t.kind, t.id = "env-groups", opts.EnvGroupID
		deploy := len(opts.DeployServices) > 0
		if opts.Deploy != nil {
			switch {
			case *opts.Deploy && !deploy:
				return nil, fail("deploy: true on an environment group needs deploy_services: the services linked to %s that should pick up the new values", opts.EnvGroupID)
			case !*opts.Deploy && deploy:
				return nil, fail("deploy: false contradicts deploy_services; remove one of them")
			}
		}
		seen := map[string]bool{}
		for _, s := range opts.DeployServices {
			if strings.TrimSpace(s) == "" {
				return nil, fail("deploy_services holds an empty service id")
			}
			if seen[s] {
				return nil, fail("service %s is listed twice in deploy_services", s)
			}
			seen[s] = true
		}
		t.deployTo = opts.DeployServices
	default:
		return nil, fail("no service_id or env_group_id; add service_id: srv-… (from the service's dashboard URL) or env_group_id: evg-…")
	}
	switch opts.DeployMode {
	case "", DeployOnly, BuildAndDeploy:
	default:
		return nil, fail("deploy_mode %q is not one of deploy_only, build_and_deploy", opts.DeployMode)
	}
	if opts.DeployMode != "" && len(t.deployTo) == 0 {
		return nil, fail("deploy_mode is set but nothing is deployed; remove it or turn deploy on")
	}
	if opts.ReloadPoll != "" && len(t.deployTo) == 0 {
		return nil, fail("reload_poll is set but nothing is deployed, so there is nothing to wait for; remove it or turn deploy on")
	}
	poll, err := target.ParseReloadPoll(opts.ReloadPoll, DefaultReloadPoll)
	if err != nil {
		return nil, fail("%v", err)
	}
	t.poll = poll
	if opts.Token == "" {
		return nil, fmt.Errorf("render target %q has no token; add token: ${RENDER_API_KEY} and export RENDER_API_KEY (an API key from the Render dashboard's account settings): %w", p.Name, target.ErrAuth)
	}
	u, err := url.Parse(opts.APIURL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fail("api_url %q is not an http(s) URL; leave it out to use %s", opts.APIURL, DefaultAPIURL)
	}
	hc := p.HTTP()
	now := p.Clock()
	t.now = now
	t.api = &webapi.Client{
		HTTP: hc, BaseURL: strings.TrimSuffix(opts.APIURL, "/"), Auth: webapi.Bearer(opts.Token),
		Target: "Render API", Now: now, UserAgent: "rotor",
	}
	return t, nil
}

// Info implements target.Target.
func (t *Target) Info() target.Info {
	what := "service"
	if t.kind == "env-groups" {
		what = "environment group"
	}
	return target.Info{Type: Type, Name: t.name, Destination: "render " + what + " " + t.id, Idempotent: true}
}

// Put implements target.Target: one add-or-update per key whose value
// differs.
func (t *Target) Put(ctx context.Context, req target.PutRequest) (target.PutResponse, error) {
	keys := req.OrderedKeys()
	secrets := make([]secret.String, 0, len(keys))
	for _, k := range keys {
		secrets = append(secrets, req.Values[k])
	}
	written := 0
	for _, k := range keys {
		v := req.Values[k]
		got, ok, err := t.get(ctx, k)
		if err != nil {
			return target.PutResponse{Changed: written > 0}, t.fail("cannot read "+k+" before writing it", err)
		}
		if ok && got.Equal(v) {
			continue
		}
		_, err = t.api.Do(ctx, webapi.Request{
			Method: http.MethodPut, Path: t.varPath(k),
			Body: map[string]string{"value": v.Reveal()}, Secrets: secrets, Retryable: true,
		})
		if err != nil {
			return target.PutResponse{Changed: written > 0}, t.fail("cannot write "+k, err)
		}
		written++
	}
	resp := target.PutResponse{Changed: written > 0}
	if written > 0 {
		resp.Ref = fmt.Sprintf("%d of %d variable(s) written", written, len(keys))
	}
	return resp, nil
}

// Check implements target.Checker.
func (t *Target) Check(ctx context.Context, req target.CheckRequest) (target.CheckResponse, error) {
	resp := target.CheckResponse{Values: map[string]secret.String{}}
	for _, k := range req.Keys {
		v, ok, err := t.get(ctx, k)
		if err != nil {
			return target.CheckResponse{}, t.fail("cannot read "+k, err)
		}
		if ok {
			resp.Values[k] = v
		}
	}
	if len(resp.Values) == 0 && len(req.Keys) > 0 {
		// Render answers 404 both for a missing key and for a missing
		// service; only the latter is an error.
		if err := t.exists(ctx, t.kind, t.id); err != nil {
			return target.CheckResponse{}, err
		}
	}
	return resp, nil
}

// Validate implements target.Validator: the service or group and every
// service to deploy exist and the API key can see them. Nothing is written.
func (t *Target) Validate(ctx context.Context, _ target.ValidateRequest) (target.ValidateResponse, error) {
	if err := t.exists(ctx, t.kind, t.id); err != nil {
		return target.ValidateResponse{}, err
	}
	for _, s := range t.deployTo {
		if t.kind == "services" && s == t.id {
			continue
		}
		if err := t.exists(ctx, "services", s); err != nil {
			return target.ValidateResponse{}, err
		}
	}
	return target.ValidateResponse{}, nil
}

// get reads one key; ok is false when the key is not set.
func (t *Target) get(ctx context.Context, key string) (v secret.String, ok bool, err error) {
	resp, err := t.api.Do(ctx, webapi.Request{Method: http.MethodGet, Path: t.varPath(key), Retryable: true})
	if errors.Is(err, target.ErrNotFound) {
		return secret.String{}, false, nil
	}
	if err != nil {
		return secret.String{}, false, err
	}
	var out struct {
		Key   string  `json:"key"`
		Value *string `json:"value"`
	}
	if err := t.api.Decode(resp, &out); err != nil {
		return secret.String{}, false, err
	}
	if out.Value == nil {
		return secret.String{}, false, nil
	}
	return secret.New(*out.Value), true, nil
}

func (t *Target) exists(ctx context.Context, kind, id string) error {
	_, err := t.api.Do(ctx, webapi.Request{Method: http.MethodGet, Path: "/v1/" + kind + "/" + url.PathEscape(id), Retryable: true})
	if err == nil {
		return nil
	}
	what := "service " + id
	if kind == "env-groups" {
		what = "environment group " + id
	}
	return t.fail("cannot find "+what, err)
}

func (t *Target) varPath(key string) string {
	return "/v1/" + t.kind + "/" + url.PathEscape(t.id) + "/env-vars/" + url.PathEscape(key)
}

// fail wraps an API error with what rotor was doing and how to fix the
// usual causes.
func (t *Target) fail(doing string, err error) error {
	hint := ""
	switch {
	case errors.Is(err, target.ErrAuth):
		hint = "; the API key was refused: set token: ${RENDER_API_KEY} to an API key of a workspace member who can manage this service or environment group"
	case errors.Is(err, target.ErrNotFound):
		hint = "; check service_id/env_group_id (and deploy_services), and that the API key belongs to the service's workspace"
	}
	return fmt.Errorf("render target %q: %s%s: %w", t.name, doing, hint, err)
}

var (
	_ target.Target     = (*Target)(nil)
	_ target.Checker    = (*Target)(nil)
	_ target.Validator  = (*Target)(nil)
	_ target.Reloader   = (*Target)(nil)
	_ target.Switchable = (*Target)(nil)
)
