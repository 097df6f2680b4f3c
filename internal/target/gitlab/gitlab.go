// Package gitlab is the GitLab CI/CD target: it keeps project or group
// CI/CD variables up to date (targets-api.md §6) through GitLab's REST API
// (api.go: about ten calls, on webapi).
//
// GitLab has no upsert. For each key Put reads the variable of the
// configured environment scope (GET with filter[environment_scope]) and
// then updates it (PUT) or creates it (POST); a create that loses a race
// ("has already been taken") becomes an update, so Put stays idempotent.
// Variables are raw by default: GitLab would otherwise expand every $ in a
// password when a job starts. Masking is checked before anything is
// written, because GitLab refuses to mask most connection strings.
//
// With pipeline:, Reload starts a pipeline on the ref and waits for it to
// succeed (reload.go).
package gitlab

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/rotorhq/rotor/internal/connstr"
	"github.com/rotorhq/rotor/internal/secret"
	"github.com/rotorhq/rotor/internal/target"
	"github.com/rotorhq/rotor/internal/target/webapi"
)

// Type is the registry name of this target.
const Type = "gitlab"

// DefaultAPIURL is GitLab.com's REST API.
const DefaultAPIURL = "https://gitlab.com/api/v4"

// Options are the target's own config keys.
type Options struct {
	// Token is a personal, project or group access token with the api
	// scope, given as ${GITLAB_TOKEN}.
	Token string `yaml:"token"`
	// Project is the project's numeric id or full path (group/app).
	Project string `yaml:"project"`
	// Group is the group's numeric id or full path; it excludes Project.
	Group string `yaml:"group"`
	// EnvironmentScope is the variables' environment scope. Default "*".
	EnvironmentScope string `yaml:"environment_scope"`
	// Masked hides the values in job logs; GitLab accepts it only for
	// values it can mask (see CanMask).
	Masked bool `yaml:"masked"`
	// Hidden creates variables masked and hidden (masked_and_hidden):
	// nobody can read them back, rotor included.
	Hidden bool `yaml:"hidden"`
	// Protected exposes the variables only to protected branches and tags.
	Protected bool `yaml:"protected"`
	// Raw stops GitLab from expanding $ references in the values.
	// Default true.
	Raw *bool `yaml:"raw"`
	// VariableType is env_var (default) or file.
	VariableType string `yaml:"variable_type"`
	// Pipeline starts a pipeline on Ref after every target was written.
	Pipeline *PipelineOptions `yaml:"pipeline"`
	// ReloadPoll is how often Reload asks GitLab about the pipeline, e.g.
	// "10s" (DefaultReloadPoll). Only with pipeline.
	ReloadPoll string `yaml:"reload_poll"`
	// APIURL is the REST API root (self-managed:
	// https://gitlab.example.com/api/v4); tests point it at a fake.
	APIURL string `yaml:"api_url"`
}

// PipelineOptions name the ref Reload runs a pipeline on.
type PipelineOptions struct {
	Ref string `yaml:"ref"`
}

// Target writes CI/CD variables of one project or group, and starts a
// pipeline on Reload when pipeline: is set.
type Target struct {
	name, desc string
	token      secret.String
	// ref is the project or group, a numeric id or a path, as the user
	// wrote it (ownerPath escapes it).
	ref          string
	group        bool
	scope        string
	masked       bool
	hidden       bool
	protected    bool
	raw          bool
	variableType string
	client       *webapi.Client
	now          func() time.Time
	// pipelineRef is the ref Reload runs a pipeline on; "" switches
	// Reload off.
	pipelineRef string
	// pollEvery is the pause between two looks at the pipeline.
	pollEvery time.Duration
	// sleep waits between polls; tests replace it.
	sleep func(ctx context.Context, d time.Duration) error

	// mu guards pipeline: the last rotation's pipeline, so that Reload
	// called again for it waits for that pipeline instead of starting
	// another.
	mu       sync.Mutex
	pipeline *pipelineState
}

// New builds a GitLab target from its options. It does no I/O.
func New(p target.Params) (target.Target, error) {
	desc := p.Describe(Type)
	opts := Options{APIURL: DefaultAPIURL, EnvironmentScope: "*", VariableType: envVarType}
	if err := p.DecodeOptions(Type, &opts); err != nil {
		return nil, err
	}
	t := &Target{
		name: p.Name, desc: desc,
		scope:     opts.EnvironmentScope,
		masked:    opts.Masked || opts.Hidden,
		hidden:    opts.Hidden,
		protected: opts.Protected,
		raw:       opts.Raw == nil || *opts.Raw,
		now:       p.Clock(),
		pollEvery: DefaultReloadPoll,
		sleep:     target.Sleep,
	}
	if opts.Token == "" {
		return nil, fmt.Errorf("%s has no token; add token: ${GITLAB_TOKEN} and export an access token with the api scope: %w", desc, target.ErrAuth)
	}
	t.token = secret.New(opts.Token)
	switch {
	case opts.Project != "" && opts.Group != "":
		return nil, fmt.Errorf("%s sets both project and group; use one: %w", desc, target.ErrInvalid)
	case opts.Project == "" && opts.Group == "":
		return nil, fmt.Errorf("%s needs project: (numeric id or path like group/app) or group: %w", desc, target.ErrInvalid)
	case opts.Group != "":
		t.group, t.ref = true, opts.Group
	default:
		t.ref = opts.Project
	}
	if t.scope == "" {
		return nil, fmt.Errorf("%s: environment_scope is empty; use * (all environments) or an environment name: %w", desc, target.ErrInvalid)
	}
	switch opts.VariableType {
	case envVarType, fileType:
		t.variableType = opts.VariableType
	default:
		return nil, fmt.Errorf("%s: variable_type %q is not env_var or file: %w", desc, opts.VariableType, target.ErrInvalid)
	}
	u, err := url.Parse(opts.APIURL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("%s: api_url %q is not an http(s) URL; leave it out for GitLab.com or use https://HOST/api/v4: %w", desc, opts.APIURL, target.ErrInvalid)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("%s: api_url %q has a query or fragment; use the API root alone, like https://HOST/api/v4: %w", desc, opts.APIURL, target.ErrInvalid)
	}
	t.client = newClient(desc, u.String(), t.token, p.HTTPClient, t.now)
	if opts.Pipeline == nil {
		if opts.ReloadPoll != "" {
			return nil, fmt.Errorf("%s: reload_poll is how often Reload looks at the pipeline it started, but there is no pipeline; add pipeline: {ref: main} or drop reload_poll: %w", desc, target.ErrInvalid)
		}
		return t, nil
	}
	if opts.ReloadPoll != "" {
		d, err := time.ParseDuration(opts.ReloadPoll)
		if err != nil || d <= 0 {
			return nil, fmt.Errorf("%s: reload_poll %q is not a positive duration like 10s or 1m: %w", desc, opts.ReloadPoll, target.ErrInvalid)
		}
		t.pollEvery = d
	}
	if opts.Pipeline.Ref == "" {
		return nil, fmt.Errorf("%s: pipeline needs ref, e.g. pipeline: {ref: main}: %w", desc, target.ErrInvalid)
	}
	if t.group {
		return nil, fmt.Errorf("%s: pipeline runs in a project; groups have no pipelines, so drop pipeline or add a gitlab target for the project: %w", desc, target.ErrInvalid)
	}
	t.pipelineRef = opts.Pipeline.Ref
	return t, nil
}

// Enabled implements target.Switchable: only a target with pipeline: has
// a reload.
func (t *Target) Enabled(c target.Capability) bool {
	return c != target.CanReload || t.pipelineRef != ""
}

// CheckKeys implements target.KeyChecker: GitLab's variable-key rule.
func (t *Target) CheckKeys(keys []string) error {
	for _, k := range keys {
		if !validKey(k) {
			return fmt.Errorf("%q cannot be a GitLab variable key: use up to 255 letters, digits and '_'; rename the key under values: %w", k, target.ErrInvalid)
		}
	}
	return nil
}

// CheckValue implements target.ValueChecker: with masked: true, GitLab
// must be able to mask the value.
func (t *Target) CheckValue(key string, value secret.String) error {
	if !t.masked {
		return nil
	}
	if why := CanMask(value.Reveal(), t.raw); why != "" {
		return fmt.Errorf("GitLab cannot mask the value for %s: it %s. GitLab masks only values of at least 8 characters on one line without spaces (with raw: false, only letters, digits and _ + = / @ : . ~ -), which a connection URL rarely is. Set masked: false here and mask a separate key that holds only the password, e.g. another gitlab target with values {PGPASSWORD: \"{{.Password}}\"} and masked: true: %w", key, why, target.ErrInvalid)
	}
	return nil
}

// Info implements target.Target.
func (t *Target) Info() target.Info {
	kind := "project"
	if t.group {
		kind = "group"
	}
	return target.Info{
		Type:        Type,
		Name:        t.name,
		Destination: fmt.Sprintf("gitlab %s %s CI/CD variables (environment scope %s)", kind, t.ref, t.scope),
		Idempotent:  true,
	}
}

// variableKey is GitLab's rule for variable keys: up to 255 of these
// characters (validKey checks the length; {1,255} would compile to 255
// copies of the class at every start of rotor).
var variableKey = regexp.MustCompile(`^[A-Za-z0-9_]+$`)

func validKey(k string) bool { return len(k) <= 255 && variableKey.MatchString(k) }

// Put implements target.Target: for each key it reads the variable of the
// configured scope and updates it when the value or a flag differs, or
// creates it. Nothing is written if any key or value would be refused.
func (t *Target) Put(ctx context.Context, req target.PutRequest) (target.PutResponse, error) {
	keys := req.OrderedKeys()
	secrets := t.secrets(req.Values)
	if err := t.CheckKeys(keys); err != nil {
		return target.PutResponse{}, fmt.Errorf("%s: %w", t.desc, err)
	}
	for _, k := range keys {
		if err := t.CheckValue(k, req.Values[k]); err != nil {
			return target.PutResponse{}, fmt.Errorf("%s: %w", t.desc, err)
		}
	}
	changed := false
	for _, k := range keys {
		c, err := t.putOne(ctx, k, req.Values[k], secrets)
		if err != nil {
			return target.PutResponse{Changed: changed}, err
		}
		changed = changed || c
	}
	return target.PutResponse{Changed: changed}, nil
}

func (t *Target) putOne(ctx context.Context, key string, value secret.String, secrets []secret.String) (bool, error) {
	cur, err := t.variable(ctx, key, secrets)
	switch {
	case err == nil:
		if err := t.checkScope(key, cur); err != nil {
			return false, err
		}
		if cur.Hidden && !t.hidden {
			return false, fmt.Errorf("%s: %s (scope %s) is hidden in GitLab, and hidden variables stay masked; set hidden: true for this target: %w", t.desc, key, t.scope, target.ErrInvalid)
		}
		if t.hidden && !cur.Hidden {
			return false, fmt.Errorf("%s: %s (scope %s) exists but is not hidden, and GitLab hides variables only when creating them; delete it under Settings → CI/CD → Variables so rotor creates it hidden, or set hidden: false: %w", t.desc, key, t.scope, target.ErrInvalid)
		}
		// A hidden value cannot be read, so it cannot be compared.
		if !cur.Hidden && secret.New(cur.Value).Equal(value) && t.flagsMatch(cur) {
			return false, nil
		}
		return true, t.update(ctx, key, value, secrets)
	case notFound(err):
		err := t.create(ctx, key, value, secrets)
		var e *webapi.StatusError
		if errors.As(err, &e) && e.Status == 400 && strings.Contains(e.Message, "has already been taken") {
			// Another writer (a concurrent retry) created it between the
			// GET and the POST: update it instead.
			return true, t.update(ctx, key, value, secrets)
		}
		return true, err
	default:
		return false, err
	}
}

func (t *Target) flagsMatch(v variable) bool {
	return v.Protected == t.protected && v.Masked == t.masked && v.Raw == t.raw &&
		v.VariableType == t.variableType && v.Scope == t.scope
}

// variable reads the variable of the configured scope (GET
// /projects/:id/variables/:key?filter[environment_scope]=…).
// secrets are scrubbed from any error.
func (t *Target) variable(ctx context.Context, key string, secrets []secret.String) (variable, error) {
	var v variable
	err := t.call(ctx, http.MethodGet, t.variablePath(key)+t.filterQuery(), nil, &v, "read variable "+key, true, secrets)
	return v, err
}

// checkScope refuses a variable of another environment scope: a GitLab
// that ignores filter[environment_scope] answers with whichever variable
// has the key, and updating that one would move it to rotor's scope.
func (t *Target) checkScope(key string, v variable) error {
	if v.Scope == t.scope {
		return nil
	}
	return fmt.Errorf("%s: asked for %s in environment scope %s, GitLab answered with the one of scope %s: this GitLab ignores filter[environment_scope] (it needs GitLab 16.9+, Premium for groups); keep one scope per key, or set environment_scope: %s if that is the variable to rotate: %w",
		t.desc, key, t.scope, v.Scope, v.Scope, target.ErrInvalid)
}

// update writes the variable of the configured scope (PUT with the same
// filter, in the body), flags included.
func (t *Target) update(ctx context.Context, key string, value secret.String, secrets []secret.String) error {
	b := t.body("", value)
	b.Filter = &scopeFilter{EnvironmentScope: t.scope}
	return t.call(ctx, http.MethodPut, t.variablePath(key), b, nil, "update variable "+key, true, secrets)
}

// create adds the variable (POST /projects/:id/variables); hidden only
// here, as GitLab hides variables only when creating them.
func (t *Target) create(ctx context.Context, key string, value secret.String, secrets []secret.String) error {
	b := t.body(key, value)
	b.MaskedAndHidden = t.hidden
	return t.call(ctx, http.MethodPost, t.ownerPath()+"/variables", b, nil, "create variable "+key, true, secrets)
}

func (t *Target) body(key string, value secret.String) variableWrite {
	return variableWrite{
		Key: key, Value: value.Reveal(), VariableType: t.variableType, EnvironmentScope: t.scope,
		Protected: t.protected, Masked: t.masked, Raw: t.raw,
	}
}

// Check implements target.Checker: values are read back, except those of
// hidden variables, which GitLab never shows again.
func (t *Target) Check(ctx context.Context, req target.CheckRequest) (target.CheckResponse, error) {
	resp := target.CheckResponse{Values: map[string]secret.String{}}
	for _, k := range req.Keys {
		if !validKey(k) {
			continue // no such variable can exist
		}
		v, err := t.variable(ctx, k, []secret.String{t.token})
		switch {
		case notFound(err):
			continue
		case err != nil:
			return target.CheckResponse{}, err
		case t.checkScope(k, v) != nil:
			return target.CheckResponse{}, t.checkScope(k, v)
		case v.Hidden:
			resp.Unreadable = append(resp.Unreadable, k)
			resp.Notes = append(resp.Notes, k+" is hidden in GitLab; hidden values cannot be read back")
		default:
			resp.Values[k] = secret.New(v.Value)
		}
	}
	return resp, nil
}

// validateVariables checks that the project or group exists, the token's
// role can manage CI/CD variables, and the variables can be listed. It
// writes nothing.
func (t *Target) validateVariables(ctx context.Context) (target.ValidateResponse, error) {
	var resp target.ValidateResponse
	list := t.ownerPath() + "/variables?per_page=1"
	if t.group {
		// with_projects=false: the group alone, not its projects' list.
		if err := t.get(ctx, t.ownerPath()+"?with_projects=false", nil, "look up group "+t.ref); err != nil {
			return resp, err
		}
		if err := t.get(ctx, list, nil, "list variables"); err != nil {
			return resp, err
		}
		resp.Notes = append(resp.Notes, "group variables need the Owner role on the group")
		return resp, nil
	}
	var p project
	if err := t.get(ctx, t.ownerPath(), &p, "look up project "+t.ref); err != nil {
		return resp, err
	}
	if level, known := p.accessLevel(); known && level < maintainer {
		return resp, fmt.Errorf("%s: the token's user has access level %d on project %s, but managing CI/CD variables needs Maintainer (40); raise the role or use a project access token with the Maintainer role: %w", t.desc, level, t.ref, target.ErrAuth)
	} else if !known {
		resp.Notes = append(resp.Notes, "GitLab did not report the token's role on the project; managing CI/CD variables needs Maintainer")
	}
	if err := t.get(ctx, list, nil, "list variables"); err != nil {
		return resp, err
	}
	return resp, nil
}

// accessLevel is the higher of the token user's project and group
// access, and whether GitLab reported either.
func (p project) accessLevel() (int, bool) {
	if p.Permissions == nil {
		return 0, false
	}
	level, known := 0, false
	if pa := p.Permissions.ProjectAccess; pa != nil {
		level, known = max(level, pa.AccessLevel), true
	}
	if ga := p.Permissions.GroupAccess; ga != nil {
		level, known = max(level, ga.AccessLevel), true
	}
	return level, known
}

// Validate implements target.Validator: the variables can be managed
// (as far as that can be told without writing) and, with pipeline:, the
// pipeline's ref exists.
func (t *Target) Validate(ctx context.Context, _ target.ValidateRequest) (target.ValidateResponse, error) {
	resp, err := t.validateVariables(ctx)
	if err != nil || t.pipelineRef == "" {
		return resp, err
	}
	if err := t.get(ctx, t.ownerPath()+"/repository/commits/"+url.PathEscape(t.pipelineRef), nil, "look up ref "+t.pipelineRef); err != nil {
		return resp, err
	}
	resp.Notes = append(resp.Notes, fmt.Sprintf("Reload starts a pipeline on %s in project %s", t.pipelineRef, t.ref))
	return resp, nil
}

// CanMask returns "" when GitLab can mask value, else why not (to finish
// "it …"). The rules are GitLab's Ci::Maskable: at least 8 characters
// and no whitespace for raw variables; for expanded ones, only the base64
// alphabet plus @ : . ~ (and - _ + = /).
func CanMask(value string, raw bool) string {
	if len(value) < 8 {
		return "is shorter than 8 characters"
	}
	if strings.ContainsAny(value, "\n\r") {
		return "spans several lines"
	}
	if strings.ContainsAny(value, " \t\f\v") {
		return "contains spaces"
	}
	if !raw && strings.IndexFunc(value, notMaskableExpanded) >= 0 {
		return "contains characters other than letters, digits and _ + = / @ : . ~ - (raw: false)"
	}
	return ""
}

func notMaskableExpanded(r rune) bool {
	switch {
	case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
		return false
	}
	return !strings.ContainsRune("_+=/@:.~-", r)
}

// secrets lists what must never appear in an error: each value, the
// password inside a connection-string value, and the token.
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

var (
	_ target.Target       = (*Target)(nil)
	_ target.KeyChecker   = (*Target)(nil)
	_ target.ValueChecker = (*Target)(nil)
	_ target.Checker      = (*Target)(nil)
	_ target.Validator    = (*Target)(nil)
	_ target.Reloader     = (*Target)(nil)
	_ target.Switchable   = (*Target)(nil)
)
