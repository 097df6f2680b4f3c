// Package railway is the Railway target: it keeps variables of one Railway
// environment (shared, or one service's) up to date through Railway's
// public GraphQL API (targets-api.md §4).
//
// Put writes every changed key in one variableCollectionUpsert with
// skipDeploys set, so writing never deploys: Railway otherwise redeploys
// the service on every variable change, before the other targets of the
// rotation are written. The redeploy is Reload's job
// (serviceInstanceDeployV2, deployment.go), which runs once every target
// holds the new values and waits until the new deployment succeeds. GraphQL reports failures as {"errors":[…]} with HTTP 200; those
// are failures here too, and rate-limit errors are retryable whichever way
// they arrive.
package railway

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/rotorhq/rotor/internal/connstr"
	"github.com/rotorhq/rotor/internal/secret"
	"github.com/rotorhq/rotor/internal/target"
	"github.com/rotorhq/rotor/internal/target/webapi"
)

// Type is the registry name of this target.
const Type = "railway"

// DefaultAPIURL is Railway's public GraphQL endpoint.
const DefaultAPIURL = "https://backboard.railway.com/graphql/v2"

// Token kinds: they travel in different headers.
const (
	// TokenProject is a project token, scoped to one environment of one
	// project, sent as Project-Access-Token.
	TokenProject = "project"
	// TokenAccount is an account, workspace or OAuth token, sent as
	// Authorization: Bearer.
	TokenAccount = "account"
)

// Options are the target's own config keys.
type Options struct {
	// Token is the API token, given as ${RAILWAY_TOKEN}.
	Token string `yaml:"token"`
	// TokenKind is "project" (default) or "account" (account, workspace
	// and OAuth tokens).
	TokenKind string `yaml:"token_kind"`
	// ProjectID and EnvironmentID locate the variables.
	ProjectID     string `yaml:"project_id"`
	EnvironmentID string `yaml:"environment_id"`
	// ServiceID selects one service's variables; empty means the
	// environment's shared variables.
	ServiceID string `yaml:"service_id"`
	// Redeploy makes Reload redeploy the service and wait until the new
	// deployment succeeds. Default: true when service_id is set.
	Redeploy *bool `yaml:"redeploy"`
	// ReloadPoll is how often Reload reads the new deployment while it
	// builds, as a duration ("15s"). Default DefaultReloadPoll.
	ReloadPoll string `yaml:"reload_poll"`
	// Sealed says the variables are sealed in Railway, so nothing can read
	// them back.
	Sealed bool `yaml:"sealed"`
	// APIURL is the GraphQL endpoint; tests point it at a fake.
	APIURL string `yaml:"api_url"`
}

// Target writes variables to one Railway environment, and redeploys its
// service when redeploy is on.
type Target struct {
	name          string
	desc          string
	token         secret.String
	kind          string
	projectID     string
	environmentID string
	serviceID     string
	sealed        bool
	path          string
	api           *webapi.Client
	redeploy      bool
	// poll is the pause between two reads of a building deployment.
	poll time.Duration
	now  func() time.Time

	mu sync.Mutex
	// deployed remembers, per rotation, the deployment Reload started, so
	// an engine retry or a resume waits for it instead of deploying again.
	deployed map[string]*deployWait
}

// New builds a Railway target from its options. It does no I/O.
func New(p target.Params) (target.Target, error) {
	desc := p.Describe(Type)
	opts := Options{TokenKind: TokenProject, APIURL: DefaultAPIURL}
	if err := p.DecodeOptions(Type, &opts); err != nil {
		return nil, err
	}
	if opts.Token == "" {
		return nil, fmt.Errorf("%s has no token; add token: ${RAILWAY_TOKEN} and export a project token (or an account token with token_kind: account): %w", desc, target.ErrAuth)
	}
	if opts.ProjectID == "" || opts.EnvironmentID == "" {
		return nil, fmt.Errorf("%s needs project_id and environment_id (in the Railway dashboard press Cmd/Ctrl+K and choose \"Copy Project ID\" / \"Copy Environment ID\"): %w", desc, target.ErrInvalid)
	}
	var auth func(*http.Request)
	token := opts.Token
	switch opts.TokenKind {
	case TokenProject:
		auth = func(r *http.Request) { r.Header.Set("Project-Access-Token", token) }
	case TokenAccount:
		auth = webapi.Bearer(token)
	default:
		return nil, fmt.Errorf("%s: token_kind %q is not project or account; use project for a project token, account for an account, workspace or OAuth token: %w", desc, opts.TokenKind, target.ErrInvalid)
	}
	redeploy := opts.ServiceID != ""
	if opts.Redeploy != nil {
		redeploy = *opts.Redeploy
	}
	if redeploy && opts.ServiceID == "" {
		return nil, fmt.Errorf("%s: redeploy: true needs service_id; shared variables belong to no single service, so name the service to redeploy or drop redeploy: %w", desc, target.ErrInvalid)
	}
	if opts.ReloadPoll != "" && !redeploy {
		return nil, fmt.Errorf("%s: reload_poll is set but redeploy is off, so there is nothing to wait for; remove reload_poll or set service_id (and redeploy: true): %w", desc, target.ErrInvalid)
	}
	poll, err := target.ParseReloadPoll(opts.ReloadPoll, DefaultReloadPoll)
	if err != nil {
		return nil, fmt.Errorf("%s: %v: %w", desc, err, target.ErrInvalid)
	}
	u, err := url.Parse(opts.APIURL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("%s: api_url %q is not an http(s) URL; leave it out to use %s: %w", desc, opts.APIURL, DefaultAPIURL, target.ErrInvalid)
	}
	now := p.Clock()
	t := &Target{
		name:          p.Name,
		desc:          desc,
		token:         secret.New(opts.Token),
		kind:          opts.TokenKind,
		projectID:     opts.ProjectID,
		environmentID: opts.EnvironmentID,
		serviceID:     opts.ServiceID,
		sealed:        opts.Sealed,
		redeploy:      redeploy,
		poll:          poll,
		now:           now,
		deployed:      map[string]*deployWait{},
		path:          u.EscapedPath(),
		api: &webapi.Client{
			HTTP:      p.HTTP(),
			BaseURL:   u.Scheme + "://" + u.Host,
			Auth:      auth,
			Target:    desc,
			Now:       now,
			UserAgent: "rotor",
		},
	}
	return t, nil
}

// Enabled implements target.Switchable: without redeploy there is no
// reload, and the engine must not report one.
func (t *Target) Enabled(c target.Capability) bool {
	return c != target.CanReload || t.redeploy
}

// Info implements target.Target.
func (t *Target) Info() target.Info {
	where := "shared variables"
	if t.serviceID != "" {
		where = "service " + t.serviceID
	}
	return target.Info{
		Type:        Type,
		Name:        t.name,
		Destination: fmt.Sprintf("railway project %s environment %s, %s", t.projectID, t.environmentID, where),
		Idempotent:  true,
	}
}

// Put implements target.Target: it reads the current variables (unless
// sealed), then upserts the keys whose value differs, without deploying.
func (t *Target) Put(ctx context.Context, req target.PutRequest) (target.PutResponse, error) {
	keys := req.OrderedKeys()
	secrets := t.secrets(req.Values)
	for _, k := range keys {
		// Railway expands ${{ … }} as a reference to another variable when
		// it starts the service: the consumer would get something else.
		if strings.Contains(req.Values[k].Reveal(), "${{") {
			return target.PutResponse{}, fmt.Errorf("%s: the value for %s contains \"${{\", which Railway expands as a reference variable, so the service would not see the value rotor wrote; percent-encode the password in the URL (the {{.URL}} template does) or change the password policy: %w", t.desc, k, target.ErrInvalid)
		}
	}
	changed := keys
	if !t.sealed {
		current, err := t.variables(ctx, secrets)
		if err != nil {
			return target.PutResponse{}, err
		}
		changed = nil
		for _, k := range keys {
			if cur, ok := current[k]; !ok || !secret.New(cur).Equal(req.Values[k]) {
				changed = append(changed, k)
			}
		}
		if len(changed) == 0 {
			return target.PutResponse{}, nil
		}
	}
	vars := make(map[string]string, len(changed))
	for _, k := range changed {
		vars[k] = req.Values[k].Reveal()
	}
	input := map[string]any{
		"projectId":     t.projectID,
		"environmentId": t.environmentID,
		"variables":     vars,
		// Writing must not deploy: the deploy waits for Reload, after
		// every target holds the new values. replace stays unset, so
		// variables rotor does not manage are kept.
		"skipDeploys": true,
	}
	if t.serviceID != "" {
		input["serviceId"] = t.serviceID
	}
	var out struct {
		Upserted *bool `json:"variableCollectionUpsert"`
	}
	if err := t.graphql(ctx, "variableCollectionUpsert", upsertMutation, map[string]any{"input": input}, &out, secrets, true); err != nil {
		return target.PutResponse{}, err
	}
	if out.Upserted == nil || !*out.Upserted {
		return target.PutResponse{}, fmt.Errorf("%s: variableCollectionUpsert answered false; the variables may not be written, check the environment in the Railway dashboard: %w", t.desc, target.ErrInvalid)
	}
	return target.PutResponse{Changed: true}, nil
}

// Check implements target.Checker. Sealed variables cannot be read back,
// so they are all reported Unreadable.
func (t *Target) Check(ctx context.Context, req target.CheckRequest) (target.CheckResponse, error) {
	resp := target.CheckResponse{Values: map[string]secret.String{}}
	if t.sealed {
		resp.Unreadable = slices.Clone(req.Keys)
		resp.Notes = append(resp.Notes, "the variables are sealed (sealed: true); Railway never returns sealed values")
		return resp, nil
	}
	current, err := t.variables(ctx, []secret.String{t.token})
	if err != nil {
		return target.CheckResponse{}, err
	}
	for _, k := range req.Keys {
		v, ok := current[k]
		if !ok {
			resp.Notes = append(resp.Notes, k+" is not set (if it is sealed in Railway, set sealed: true)")
			continue
		}
		resp.Values[k] = secret.New(v)
	}
	return resp, nil
}

// Validate implements target.Validator: it checks that a project token
// belongs to the configured project and environment, and that the
// variables can be listed. It writes nothing.
func (t *Target) Validate(ctx context.Context, _ target.ValidateRequest) (target.ValidateResponse, error) {
	var resp target.ValidateResponse
	if t.kind == TokenProject {
		var out struct {
			ProjectToken *struct {
				ProjectID     string `json:"projectId"`
				EnvironmentID string `json:"environmentId"`
			} `json:"projectToken"`
		}
		if err := t.graphql(ctx, "projectToken", projectTokenQuery, nil, &out, []secret.String{t.token}, true); err != nil {
			return resp, err
		}
		pt := out.ProjectToken
		if pt == nil {
			return resp, fmt.Errorf("%s: Railway did not describe the project token; if it is an account or workspace token, set token_kind: account: %w", t.desc, target.ErrAuth)
		}
		if pt.ProjectID != t.projectID || pt.EnvironmentID != t.environmentID {
			return resp, fmt.Errorf("%s: the project token belongs to project %s environment %s, but the target names project %s environment %s; create a project token for that environment or fix project_id/environment_id: %w",
				t.desc, pt.ProjectID, pt.EnvironmentID, t.projectID, t.environmentID, target.ErrAuth)
		}
	}
	// Listing the variables proves read access to exactly the place Put
	// writes; Railway has no read-only way to test write permission.
	if _, err := t.variables(ctx, []secret.String{t.token}); err != nil {
		return resp, err
	}
	resp.Notes = append(resp.Notes, "write access cannot be tested without writing; project tokens and account tokens with access to the project can write variables")
	if t.sealed {
		resp.Notes = append(resp.Notes, "sealed: true; values will not be read back")
	}
	return resp, nil
}

// variables lists the raw (unrendered) variables at the destination:
// rendering would replace references and hide what was written.
func (t *Target) variables(ctx context.Context, secrets []secret.String) (map[string]string, error) {
	vars := map[string]any{"projectId": t.projectID, "environmentId": t.environmentID, "unrendered": true}
	if t.serviceID != "" {
		vars["serviceId"] = t.serviceID
	}
	var out struct {
		Variables map[string]string `json:"variables"`
	}
	if err := t.graphql(ctx, "variables", variablesQuery, vars, &out, secrets, true); err != nil {
		return nil, err
	}
	if out.Variables == nil {
		return map[string]string{}, nil
	}
	return out.Variables, nil
}

// secrets lists what must never appear in an error: each value, the
// password inside a connection-string value (APIs echo fragments of what
// they refuse), and the token.
func (t *Target) secrets(values map[string]secret.String) []secret.String {
	s := make([]secret.String, 0, 2*len(values)+1)
	for _, v := range values {
		s = append(s, v)
		if c, err := connstr.Parse(v.Reveal()); err == nil && !c.Password.IsZero() {
			s = append(s, c.Password)
		}
	}
	return append(s, t.token)
}

func (t *Target) authHint() string {
	if t.kind == TokenProject {
		return "check the token in ${RAILWAY_TOKEN}: it must be a project token of project " + t.projectID + " for environment " + t.environmentID + " (Project Settings → Tokens); if it is an account or workspace token set token_kind: account"
	}
	return "check the token in ${RAILWAY_TOKEN}: an account or workspace token must have access to project " + t.projectID + "; if it is a project token set token_kind: project"
}

var (
	_ target.Target     = (*Target)(nil)
	_ target.Checker    = (*Target)(nil)
	_ target.Validator  = (*Target)(nil)
	_ target.Reloader   = (*Target)(nil)
	_ target.Switchable = (*Target)(nil)
)
