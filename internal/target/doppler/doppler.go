// Package doppler is the Doppler target: it upserts some secrets of one
// Doppler config and leaves the others alone (targets-api.md §10).
//
// The write is Doppler's update-secrets call, an upsert by name that
// touches only the names it carries, so it is safe to retry. Values are
// read back raw: Doppler's computed value expands ${OTHER} references, and
// a connection string may well contain "${". Restricted secrets cannot be
// read back at all; Check reports them as unreadable and Put then writes
// without knowing whether anything changed.
//
// Doppler has no reload: its integrations sync on their own, and apps
// started with `doppler run` must be restarted.
package doppler

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/rotorhq/rotor/internal/secret"
	"github.com/rotorhq/rotor/internal/target"
	"github.com/rotorhq/rotor/internal/target/webapi"
)

// Type is the registry name of this target.
const Type = "doppler"

// DefaultAPIURL is Doppler's API.
const DefaultAPIURL = "https://api.doppler.com"

// Options are the target's own config keys.
type Options struct {
	// Project and Config name the config to write. Both may be left out
	// with a service token, which is scoped to one config.
	Project string `yaml:"project"`
	Config  string `yaml:"config"`
	// Token authenticates; write token: ${DOPPLER_TOKEN}. Default $DOPPLER_TOKEN.
	Token string `yaml:"token"`
	// APIURL is the API's base URL; default https://api.doppler.com.
	APIURL string `yaml:"api_url"`
}

// Target keeps values in one Doppler config.
type Target struct {
	name            string
	project, config string
	token           string
	api             *webapi.Client
}

// New builds a Doppler target from its options. It does no I/O.
func New(p target.Params) (target.Target, error) {
	var opts Options
	if err := p.DecodeOptions(Type, &opts); err != nil {
		return nil, err
	}
	desc := p.Describe(Type)
	if (opts.Project == "") != (opts.Config == "") {
		return nil, fmt.Errorf("%s: give both project and config, or neither (a service token knows its own config): %w", desc, target.ErrInvalid)
	}
	apiURL := strings.TrimRight(opts.APIURL, "/")
	if apiURL == "" {
		apiURL = DefaultAPIURL
	}
	if u, err := url.Parse(apiURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("%s: api_url %q is not an http(s) URL; leave it out to use %s: %w", desc, apiURL, DefaultAPIURL, target.ErrInvalid)
	}
	token := opts.Token
	if token == "" {
		token = p.Env()("DOPPLER_TOKEN")
	}
	now := p.Clock()
	return &Target{
		name:    p.Name,
		project: opts.Project,
		config:  opts.Config,
		token:   token,
		api: &webapi.Client{
			HTTP: p.HTTP(), BaseURL: apiURL, Auth: webapi.Bearer(token),
			Target: "Doppler API", Now: now, UserAgent: "rotor",
		},
	}, nil
}

// Info implements target.Target.
func (t *Target) Info() target.Info {
	dest := "doppler config " + t.project + "/" + t.config
	if t.project == "" {
		dest = "doppler config of the service token"
	}
	if t.api.BaseURL != DefaultAPIURL {
		dest += " at " + t.api.BaseURL
	}
	return target.Info{Type: Type, Name: t.name, Destination: dest, Idempotent: true}
}

// Put implements target.Target: it reads each managed secret and upserts,
// in one call, those that do not already hold their value.
func (t *Target) Put(ctx context.Context, req target.PutRequest) (target.PutResponse, error) {
	if err := t.ready(); err != nil {
		return target.PutResponse{}, err
	}
	secrets := slices.Collect(maps.Values(req.Values))
	changes := map[string]string{}
	for _, k := range sortedKeys(req.Values) {
		cur, err := t.get(ctx, k, secrets)
		if err != nil {
			return target.PutResponse{}, err
		}
		if cur.exists && cur.readable && secret.New(cur.raw).Equal(req.Values[k]) {
			continue
		}
		changes[k] = req.Values[k].Reveal()
	}
	if len(changes) == 0 {
		return target.PutResponse{Changed: false}, nil
	}
	body := map[string]any{"secrets": changes}
	if t.project != "" {
		body["project"], body["config"] = t.project, t.config
	}
	resp, err := t.api.Do(ctx, webapi.Request{
		Method:    http.MethodPost,
		Path:      "/v3/configs/config/secrets",
		Body:      body,
		Secrets:   secrets,
		Retryable: true,
	})
	if err != nil {
		return target.PutResponse{}, t.explain("write", err)
	}
	var out struct {
		Success  bool     `json:"success"`
		Messages []string `json:"messages"`
	}
	if err := t.api.Decode(resp, &out); err != nil {
		return target.PutResponse{}, fmt.Errorf("doppler target %q: the write may have happened, but its answer is unreadable: %w", t.name, err)
	}
	if !out.Success {
		msg := secret.ScrubString(strings.Join(out.Messages, "; "), secrets...)
		return target.PutResponse{}, fmt.Errorf("doppler target %q: Doppler did not confirm the write (%s); check the config in the dashboard: %w", t.name, msg, target.ErrInvalid)
	}
	return target.PutResponse{Changed: true, Ref: fmt.Sprintf("%d secret(s) written", len(changes))}, nil
}

// Check implements target.Checker.
func (t *Target) Check(ctx context.Context, req target.CheckRequest) (target.CheckResponse, error) {
	if err := t.ready(); err != nil {
		return target.CheckResponse{}, err
	}
	resp := target.CheckResponse{Values: map[string]secret.String{}}
	for _, k := range req.Keys {
		cur, err := t.get(ctx, k, nil)
		if err != nil {
			return target.CheckResponse{}, err
		}
		switch {
		case !cur.exists:
		case !cur.readable:
			resp.Unreadable = append(resp.Unreadable, k)
			resp.Notes = append(resp.Notes, k+" is restricted: Doppler never returns its value")
		default:
			resp.Values[k] = secret.New(cur.raw)
		}
	}
	return resp, nil
}

// Validate implements target.Validator: the token is accepted and can
// list the config's secret names (names only, no values).
func (t *Target) Validate(ctx context.Context, _ target.ValidateRequest) (target.ValidateResponse, error) {
	if err := t.ready(); err != nil {
		return target.ValidateResponse{}, err
	}
	resp, err := t.api.Do(ctx, webapi.Request{Method: http.MethodGet, Path: "/v3/configs/config/secrets/names" + t.query(nil)})
	if err != nil {
		return target.ValidateResponse{}, t.explain("list the secret names of", err)
	}
	var out struct {
		Names []string `json:"names"`
	}
	if err := t.api.Decode(resp, &out); err != nil {
		return target.ValidateResponse{}, fmt.Errorf("doppler target %q: %w", t.name, err)
	}
	return target.ValidateResponse{Notes: []string{fmt.Sprintf("the config holds %d secret(s); the token's write access is proven by the first rotation", len(out.Names))}}, nil
}

type value struct {
	exists, readable bool
	raw              string
}

func (t *Target) get(ctx context.Context, name string, secrets []secret.String) (value, error) {
	resp, err := t.api.Do(ctx, webapi.Request{Method: http.MethodGet, Path: "/v3/configs/config/secret" + t.query(url.Values{"name": {name}}), Secrets: secrets, Retryable: true})
	var se *webapi.StatusError
	if errors.As(err, &se) && se.Status == http.StatusNotFound {
		return value{}, nil
	}
	if err != nil {
		return value{}, t.explain("read "+name+" from", err)
	}
	// Doppler answers {"name","value":{…}}; the value object has been
	// documented nested under "secret" too, so both are accepted.
	var out struct {
		Value  *rawValue `json:"value"`
		Secret *struct {
			Value *rawValue `json:"value"`
		} `json:"secret"`
	}
	if err := json.Unmarshal(resp.Body, &out); err != nil {
		return value{}, fmt.Errorf("doppler target %q: reading %s gave an answer that is not the documented JSON: %w", t.name, name, target.ErrInvalid)
	}
	v := out.Value
	if v == nil && out.Secret != nil {
		v = out.Secret.Value
	}
	if v == nil {
		return value{}, fmt.Errorf("doppler target %q: reading %s gave no value object: %w", t.name, name, target.ErrInvalid)
	}
	if v.Raw == nil || v.RawVisibility == "restricted" {
		return value{exists: true}, nil
	}
	return value{exists: true, readable: true, raw: *v.Raw}, nil
}

type rawValue struct {
	Raw           *string `json:"raw"`
	RawVisibility string  `json:"rawVisibility"`
}

func (t *Target) query(extra url.Values) string {
	q := url.Values{}
	if t.project != "" {
		q.Set("project", t.project)
		q.Set("config", t.config)
	}
	maps.Copy(q, extra)
	if len(q) == 0 {
		return ""
	}
	return "?" + q.Encode()
}

func (t *Target) ready() error {
	if t.token == "" {
		return fmt.Errorf("doppler target %q has no token; write token: ${DOPPLER_TOKEN} and export a service token with read/write access there: %w", t.name, target.ErrAuth)
	}
	return nil
}

// explain prefixes an API error with the target and what to do about it.
func (t *Target) explain(op string, err error) error {
	where := "config " + t.project + "/" + t.config
	if t.project == "" {
		where = "the service token's config"
	}
	switch {
	case errors.Is(err, target.ErrAuth):
		return fmt.Errorf("doppler target %q: cannot %s %s; use a service token with read/write access to it (export it as DOPPLER_TOKEN): %w", t.name, op, where, err)
	case errors.Is(err, target.ErrNotFound):
		return fmt.Errorf("doppler target %q: cannot %s %s; check the project and config names: %w", t.name, op, where, err)
	}
	return fmt.Errorf("doppler target %q: cannot %s %s: %w", t.name, op, where, err)
}

func sortedKeys(m map[string]secret.String) []string {
	return slices.Sorted(maps.Keys(m))
}

var (
	_ target.Target    = (*Target)(nil)
	_ target.Checker   = (*Target)(nil)
	_ target.Validator = (*Target)(nil)
)
