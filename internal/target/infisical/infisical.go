// Package infisical is the Infisical target: it keeps some shared secrets
// of one project environment and folder up to date and leaves the others
// alone (targets-api.md §10).
//
// It logs in as a machine identity with universal auth and calls the v3
// raw-secret API over net/http: the Go SDK would bring in the AWS, Google
// Cloud and Oracle SDKs for auth methods rotor does not use, and it drops
// empty values. The API has no upsert, so a write is PATCH and, when the
// secret does not exist yet, POST; both set the whole value, so repeating
// them is harmless. Reads ask for the raw value (expandSecretReferences=
// false): a connection string may contain "${", which Infisical would
// otherwise expand as a reference.
//
// Infisical has no reload: agents and operators poll on their own.
package infisical

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/rotorhq/rotor/internal/secret"
	"github.com/rotorhq/rotor/internal/target"
	"github.com/rotorhq/rotor/internal/target/webapi"
)

// Type is the registry name of this target.
const Type = "infisical"

// DefaultSiteURL is Infisical Cloud.
const DefaultSiteURL = "https://app.infisical.com"

// Environment variables Infisical's own CLI and SDKs read the universal
// auth credentials from; used when the options leave them out.
const (
	EnvClientID     = "INFISICAL_UNIVERSAL_AUTH_CLIENT_ID"
	EnvClientSecret = "INFISICAL_UNIVERSAL_AUTH_CLIENT_SECRET"
)

// Options are the target's own config keys.
type Options struct {
	// SiteURL is the Infisical instance; default https://app.infisical.com.
	SiteURL string `yaml:"site_url"`
	// ClientID and ClientSecret are a machine identity's universal auth
	// credentials; write client_secret: ${INFISICAL_CLIENT_SECRET}.
	ClientID     string `yaml:"client_id"`
	ClientSecret string `yaml:"client_secret"`
	// ProjectID is the project (the API's workspaceId).
	ProjectID string `yaml:"project_id"`
	// Environment is the environment slug, e.g. prod.
	Environment string `yaml:"environment"`
	// SecretPath is the folder; default "/".
	SecretPath string `yaml:"secret_path"`
}

// Target keeps values in one Infisical folder.
type Target struct {
	name         string
	site         string
	clientID     string
	clientSecret secret.String
	project      string
	env          string
	path         string
	api          *webapi.Client
	now          func() time.Time

	mu      sync.Mutex
	token   secret.String
	expires time.Time
}

// New builds an Infisical target from its options. It does no I/O.
func New(p target.Params) (target.Target, error) {
	opts := Options{SecretPath: "/"}
	if err := p.DecodeOptions(Type, &opts); err != nil {
		return nil, err
	}
	desc := p.Describe(Type)
	site := strings.TrimSuffix(strings.TrimRight(opts.SiteURL, "/"), "/api")
	if site == "" {
		site = DefaultSiteURL
	}
	if u, err := url.Parse(site); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("%s: site_url %q is not an http(s) URL; leave it out for Infisical Cloud or write https://infisical.example.com: %w", desc, opts.SiteURL, target.ErrInvalid)
	}
	if opts.ProjectID == "" {
		return nil, fmt.Errorf("%s has no project_id; copy the project ID from the project's settings page: %w", desc, target.ErrInvalid)
	}
	if opts.Environment == "" {
		return nil, fmt.Errorf("%s has no environment; add the environment slug, e.g. environment: prod: %w", desc, target.ErrInvalid)
	}
	if !strings.HasPrefix(opts.SecretPath, "/") {
		return nil, fmt.Errorf("%s: secret_path %q must start with /, e.g. / or /backend: %w", desc, opts.SecretPath, target.ErrInvalid)
	}
	getenv := p.Env()
	now := p.Clock()
	path := opts.SecretPath
	if len(path) > 1 {
		path = strings.TrimRight(path, "/")
	}
	return &Target{
		name:         p.Name,
		site:         site,
		clientID:     cmp.Or(opts.ClientID, getenv(EnvClientID)),
		clientSecret: secret.New(cmp.Or(opts.ClientSecret, getenv(EnvClientSecret))),
		project:      opts.ProjectID,
		env:          opts.Environment,
		path:         path,
		api:          &webapi.Client{HTTP: p.HTTP(), BaseURL: site + "/api", Target: "Infisical API", Now: now, UserAgent: "rotor"},
		now:          now,
	}, nil
}

// Info implements target.Target.
func (t *Target) Info() target.Info {
	dest := fmt.Sprintf("infisical project %s, %s %s", t.project, t.env, t.path)
	if t.site != DefaultSiteURL {
		dest += " at " + t.site
	}
	return target.Info{Type: Type, Name: t.name, Destination: dest, Idempotent: true}
}

// Put implements target.Target: each managed secret that does not hold its
// value yet is updated, or created when it does not exist.
func (t *Target) Put(ctx context.Context, req target.PutRequest) (target.PutResponse, error) {
	secrets := append(slices.Collect(maps.Values(req.Values)), t.clientSecret)
	written := 0
	for _, k := range slices.Sorted(maps.Keys(req.Values)) {
		cur, found, err := t.get(ctx, k, secrets)
		if err != nil {
			return target.PutResponse{}, err
		}
		if found && cur.Equal(req.Values[k]) {
			continue
		}
		if err := t.write(ctx, k, req.Values[k], found, secrets); err != nil {
			return target.PutResponse{}, err
		}
		written++
	}
	if written == 0 {
		return target.PutResponse{Changed: false}, nil
	}
	return target.PutResponse{Changed: true, Ref: fmt.Sprintf("%d secret(s) written", written)}, nil
}

// write updates key, or creates it when it is missing. found only picks
// the first attempt: another writer may create or delete the secret in
// between, and the other call then follows.
func (t *Target) write(ctx context.Context, key string, v secret.String, found bool, secrets []secret.String) error {
	body := map[string]any{
		"workspaceId": t.project, "environment": t.env, "secretPath": t.path, "type": "shared", "secretValue": v.Reveal(),
	}
	methods := []string{http.MethodPatch, http.MethodPost, http.MethodPatch}
	if !found {
		methods = []string{http.MethodPost, http.MethodPatch, http.MethodPost}
	}
	var err error
	for _, m := range methods {
		_, err = t.call(ctx, webapi.Request{Method: m, Path: "/v3/secrets/raw/" + url.PathEscape(key), Body: body, Secrets: secrets, Retryable: true})
		if err == nil {
			return nil
		}
		var se *webapi.StatusError
		if !errors.As(err, &se) {
			break
		}
		missing := m == http.MethodPatch && se.Status == http.StatusNotFound && !t.scopeMissing(se)
		exists := m == http.MethodPost && se.Status == http.StatusBadRequest && strings.Contains(strings.ToLower(se.Message), "already exist")
		if !missing && !exists {
			break
		}
	}
	return t.explain("write "+key+" to", err)
}

// scopeMissing tells a missing project, environment or folder (which no
// POST fixes) from a missing secret. Both are 404s told apart only by the
// message; in doubt it is a missing secret, so the worst case is a POST
// that fails with the API's own explanation.
func (t *Target) scopeMissing(se *webapi.StatusError) bool {
	m := strings.ToLower(se.Message)
	if strings.Contains(m, "secret") {
		return false
	}
	return strings.Contains(m, "folder") || strings.Contains(m, "environment") || strings.Contains(m, "project")
}

// Check implements target.Checker.
func (t *Target) Check(ctx context.Context, req target.CheckRequest) (target.CheckResponse, error) {
	resp := target.CheckResponse{Values: map[string]secret.String{}}
	for _, k := range req.Keys {
		v, found, err := t.get(ctx, k, []secret.String{t.clientSecret})
		if err != nil {
			return target.CheckResponse{}, err
		}
		if found {
			resp.Values[k] = v
		}
	}
	return resp, nil
}

// Validate implements target.Validator: the identity can log in, is a
// member of the project, and the environment exists. It writes nothing.
func (t *Target) Validate(ctx context.Context, _ target.ValidateRequest) (target.ValidateResponse, error) {
	resp, err := t.call(ctx, webapi.Request{Method: http.MethodGet, Path: "/v1/workspace/" + url.PathEscape(t.project), Secrets: []secret.String{t.clientSecret}})
	if err != nil {
		return target.ValidateResponse{}, t.explain("read project "+t.project+" for", err)
	}
	var out struct {
		Workspace struct {
			Environments []struct {
				Slug string `json:"slug"`
			} `json:"environments"`
		} `json:"workspace"`
	}
	if err := t.api.Decode(resp, &out); err != nil {
		return target.ValidateResponse{}, fmt.Errorf("infisical target %q: %w", t.name, err)
	}
	var slugs []string
	for _, e := range out.Workspace.Environments {
		slugs = append(slugs, e.Slug)
	}
	if !slices.Contains(slugs, t.env) {
		return target.ValidateResponse{}, fmt.Errorf("infisical target %q: project %s has no environment %q (it has: %s); use one of those slugs: %w",
			t.name, t.project, t.env, strings.Join(slugs, ", "), target.ErrNotFound)
	}
	return target.ValidateResponse{Notes: []string{"the identity's write access to " + t.env + " " + t.path + " is proven by the first rotation"}}, nil
}

func (t *Target) get(ctx context.Context, key string, secrets []secret.String) (secret.String, bool, error) {
	q := url.Values{
		"workspaceId": {t.project}, "environment": {t.env}, "secretPath": {t.path}, "type": {"shared"},
		"expandSecretReferences": {"false"}, "include_imports": {"false"},
	}
	resp, err := t.call(ctx, webapi.Request{Method: http.MethodGet, Path: "/v3/secrets/raw/" + url.PathEscape(key) + "?" + q.Encode(), Secrets: secrets, Retryable: true})
	var se *webapi.StatusError
	if errors.As(err, &se) && se.Status == http.StatusNotFound && !t.scopeMissing(se) {
		return secret.String{}, false, nil
	}
	if err != nil {
		return secret.String{}, false, t.explain("read "+key+" from", err)
	}
	var out struct {
		Secret *struct {
			SecretValue *string `json:"secretValue"`
		} `json:"secret"`
	}
	if err := json.Unmarshal(resp.Body, &out); err != nil || out.Secret == nil || out.Secret.SecretValue == nil {
		return secret.String{}, false, fmt.Errorf("infisical target %q: reading %s gave an answer without secret.secretValue; is site_url an Infisical instance?: %w", t.name, key, target.ErrInvalid)
	}
	return secret.New(*out.Secret.SecretValue), true, nil
}

// call sends r with a valid access token, logging in first when there is
// none and once more when the API says the token expired.
func (t *Target) call(ctx context.Context, r webapi.Request) (*webapi.Response, error) {
	for attempt := 0; ; attempt++ {
		tok, err := t.accessToken(ctx)
		if err != nil {
			return nil, err
		}
		r.Header = http.Header{"Authorization": {"Bearer " + tok.Reveal()}}
		resp, err := t.api.Do(ctx, r)
		var se *webapi.StatusError
		if attempt == 0 && errors.As(err, &se) && se.Status == http.StatusUnauthorized {
			t.forget(tok)
			continue
		}
		return resp, err
	}
}

func (t *Target) accessToken(ctx context.Context) (secret.String, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	// A minute of slack so a token does not expire between here and the
	// call.
	if !t.token.IsZero() && t.now().Add(time.Minute).Before(t.expires) {
		return t.token, nil
	}
	if t.clientID == "" || t.clientSecret.IsZero() {
		return secret.String{}, &loginError{fmt.Errorf("infisical target %q has no universal auth credentials; add client_id and client_secret: ${INFISICAL_CLIENT_SECRET} (or export %s and %s): %w",
			t.name, EnvClientID, EnvClientSecret, target.ErrAuth)}
	}
	resp, err := t.api.Do(ctx, webapi.Request{
		Method: http.MethodPost, Path: "/v1/auth/universal-auth/login",
		Body:    map[string]string{"clientId": t.clientID, "clientSecret": t.clientSecret.Reveal()},
		Secrets: []secret.String{t.clientSecret}, Retryable: true,
	})
	if err != nil {
		if errors.Is(err, target.ErrAuth) {
			return secret.String{}, &loginError{fmt.Errorf("infisical target %q: universal auth login refused client_id %s; check the client secret (and that it has not expired or hit its use limit) in the identity's settings: %w", t.name, t.clientID, err)}
		}
		return secret.String{}, &loginError{fmt.Errorf("infisical target %q: universal auth login: %w", t.name, err)}
	}
	var out struct {
		AccessToken string `json:"accessToken"`
		ExpiresIn   int64  `json:"expiresIn"`
	}
	if err := json.Unmarshal(resp.Body, &out); err != nil || out.AccessToken == "" {
		return secret.String{}, fmt.Errorf("infisical target %q: the login answer holds no accessToken; is site_url an Infisical instance?: %w", t.name, target.ErrInvalid)
	}
	t.token = secret.New(out.AccessToken)
	t.expires = t.now().Add(time.Duration(out.ExpiresIn) * time.Second)
	return t.token, nil
}

// loginError is an error of the login itself, already explained.
type loginError struct{ err error }

func (e *loginError) Error() string { return e.err.Error() }
func (e *loginError) Unwrap() error { return e.err }

func (t *Target) forget(tok secret.String) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.token.Equal(tok) {
		t.token = secret.String{}
	}
}

// explain names the target and says what to do about an API error.
func (t *Target) explain(op string, err error) error {
	where := fmt.Sprintf("%s %s", t.env, t.path)
	switch {
	case errors.As(err, new(*loginError)):
		return err // accessToken explained it already
	case errors.Is(err, target.ErrAuth):
		return fmt.Errorf("infisical target %q: cannot %s %s; give the machine identity a project role that can read and edit secrets there: %w", t.name, op, where, err)
	case errors.Is(err, target.ErrNotFound):
		return fmt.Errorf("infisical target %q: cannot %s %s; check project_id, environment and that the folder %s exists: %w", t.name, op, where, t.path, err)
	}
	return fmt.Errorf("infisical target %q: cannot %s %s: %w", t.name, op, where, err)
}

var (
	_ target.Target    = (*Target)(nil)
	_ target.Checker   = (*Target)(nil)
	_ target.Validator = (*Target)(nil)
)
