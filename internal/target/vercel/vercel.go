// Package vercel is the Vercel target: it keeps environment variables of
// one Vercel project up to date and, when asked, redeploys the current
// production deployment so running code sees them (targets-api.md §1),
// waiting until the new deployment serves production (rollout.go).
//
// Writes use the documented upsert (POST /v10/projects/{id}/env?upsert=true),
// so a retry cannot create a duplicate. Before writing, Put lists the
// project's variables: a key that already holds the value is not written
// again, and a key whose existing variable covers other environments than
// this target manages is refused rather than silently re-scoped.
package vercel

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
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
const Type = "vercel"

// DefaultAPIURL is Vercel's REST API.
const DefaultAPIURL = "https://api.vercel.com"

// Variable types this target writes. "plain" and "system" are left out on
// purpose: a connection string must not be stored unencrypted.
const (
	TypeEncrypted = "encrypted"
	TypeSensitive = "sensitive"
)

// Environments a variable can target.
const (
	EnvProduction  = "production"
	EnvPreview     = "preview"
	EnvDevelopment = "development"
)

// Options are the target's own config keys.
type Options struct {
	// Project is the project id (prj_…) or name.
	Project string `yaml:"project"`
	// TeamID is the team that owns the project (team_…); empty for a
	// personal account.
	TeamID string `yaml:"team_id"`
	// Environments the variables apply to. Default [production].
	Environments []string `yaml:"environments"`
	// Sensitive stores the variables as Vercel "sensitive" (write-only
	// once set) instead of "encrypted" (readable back through the API, so
	// rotor can verify them). The key is not called type because `type:`
	// already names the target type in rotor.yaml.
	Sensitive bool `yaml:"sensitive"`
	// Redeploy makes Reload redeploy the current production deployment
	// and wait until the new deployment serves production; without it the
	// values reach consumers at the next deployment.
	Redeploy bool `yaml:"redeploy"`
	// ReloadPoll is how often Reload reads the new deployment while it
	// builds, as a duration ("5s"). Default DefaultReloadPoll.
	ReloadPoll string `yaml:"reload_poll"`
	// Token is a Vercel access token, always given as ${VERCEL_TOKEN}.
	Token string `yaml:"token"`
	// APIURL overrides the API base URL (tests point it at a fake).
	APIURL string `yaml:"api_url"`
}

// Target keeps variables of one Vercel project.
type Target struct {
	name     string
	project  string
	teamID   string
	envs     []string // sorted
	typ      string
	api      *webapi.Client
	redeploy bool

	// poll is the pause between two reads of a building deployment.
	poll time.Duration
	now  func() time.Time

	mu sync.Mutex
	// rollouts remembers, per rotation, the deployment Reload created, so
	// an engine retry or a resume waits for it instead of building the
	// project twice.
	rollouts map[string]*rollout
}

// New builds a Vercel target from its options. It does no I/O.
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

// Enabled implements target.Switchable: with redeploy: false there is no
// reload, and the engine must not report one that did not happen.
func (t *Target) Enabled(c target.Capability) bool {
	return c != target.CanReload || t.redeploy
}

func newTarget(p target.Params, opts Options) (*Target, error) {
	fail := func(format string, args ...any) error {
		return fmt.Errorf("vercel target %q: "+format+": %w", append([]any{p.Name}, append(args, target.ErrInvalid)...)...)
	}
	if strings.TrimSpace(opts.Project) == "" {
		return nil, fail("no project; add project: prj_… (the id from the project's settings page) or the project name")
	}
	if opts.Token == "" {
		return nil, fmt.Errorf("vercel target %q has no token; add token: ${VERCEL_TOKEN} and export VERCEL_TOKEN (an access token from vercel.com/account/tokens whose scope includes the project's team): %w", p.Name, target.ErrAuth)
	}
	envs := opts.Environments
	if len(envs) == 0 {
		envs = []string{EnvProduction}
	}
	seen := map[string]bool{}
	for _, e := range envs {
		switch e {
		case EnvProduction, EnvPreview, EnvDevelopment:
		default:
			return nil, fail("environment %q is not one of production, preview, development", e)
		}
		if seen[e] {
			return nil, fail("environment %q is listed twice", e)
		}
		seen[e] = true
	}
	envs = slices.Sorted(slices.Values(envs))
	typ := TypeEncrypted
	if opts.Sensitive {
		typ = TypeSensitive
		if seen[EnvDevelopment] {
			return nil, fail("sensitive variables cannot target development (Vercel keeps development values readable); drop development from environments or set sensitive: false")
		}
	}
	if opts.Redeploy && !seen[EnvProduction] {
		return nil, fail("redeploy: true redeploys production, but environments does not include production; add it or drop redeploy")
	}
	base, err := apiURL(opts.APIURL)
	if err != nil {
		return nil, fail("%v", err)
	}
	if opts.ReloadPoll != "" && !opts.Redeploy {
		return nil, fail("reload_poll is set but redeploy is off, so there is nothing to wait for; remove reload_poll or set redeploy: true")
	}
	poll, err := target.ParseReloadPoll(opts.ReloadPoll, DefaultReloadPoll)
	if err != nil {
		return nil, fail("%v", err)
	}
	hc := p.HTTP()
	now := p.Clock()
	return &Target{
		name:     p.Name,
		project:  opts.Project,
		teamID:   opts.TeamID,
		envs:     envs,
		typ:      typ,
		redeploy: opts.Redeploy,
		api: &webapi.Client{
			HTTP: hc, BaseURL: base, Auth: webapi.Bearer(opts.Token),
			Target: "vercel API", Now: now, UserAgent: "rotor",
		},
		poll:     poll,
		now:      now,
		rollouts: map[string]*rollout{},
	}, nil
}

func apiURL(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return "", fmt.Errorf("api_url %q is not an http(s) URL; leave it out to use %s", raw, DefaultAPIURL)
	}
	return strings.TrimSuffix(raw, "/"), nil
}

// Info implements target.Target.
func (t *Target) Info() target.Info {
	dest := "vercel project " + t.project
	if t.teamID != "" {
		dest += " in team " + t.teamID
	}
	dest += " (" + strings.Join(t.envs, ", ") + ")"
	return target.Info{Type: Type, Name: t.name, Destination: dest, Idempotent: true}
}

// Put implements target.Target. Keys that already hold their value in
// every managed environment are not written; the rest go in one upsert.
func (t *Target) Put(ctx context.Context, req target.PutRequest) (target.PutResponse, error) {
	keys := req.OrderedKeys()
	secrets := make([]secret.String, 0, len(keys))
	for _, k := range keys {
		secrets = append(secrets, req.Values[k])
	}
	envs, err := t.list(ctx)
	if err != nil {
		return target.PutResponse{}, t.fail("cannot list the project's variables before writing", err)
	}
	var writes []upsertEnv
	for _, k := range keys {
		same, err := t.holds(ctx, envs, k, req.Values[k])
		if err != nil {
			return target.PutResponse{}, err
		}
		if !same {
			writes = append(writes, upsertEnv{Key: k, Value: req.Values[k].Reveal(), Type: t.typ, Target: t.envs})
		}
	}
	if len(writes) == 0 {
		return target.PutResponse{Changed: false}, nil
	}
	resp, err := t.api.Do(ctx, webapi.Request{
		Method: http.MethodPost, Path: t.projectPath("/v10", "/env", url.Values{"upsert": {"true"}}),
		Body: writes, Secrets: secrets, Retryable: true,
	})
	if err != nil {
		return target.PutResponse{}, t.fail("cannot write "+keyList(writes), err)
	}
	var out upsertResponse
	if err := t.api.Decode(resp, &out); err != nil {
		return target.PutResponse{}, t.fail("cannot read the answer to the write", err)
	}
	if len(out.Failed) > 0 {
		return target.PutResponse{}, t.failed(out.Failed, secrets)
	}
	return target.PutResponse{Changed: true, Ref: strings.Join(out.createdIDs(), ",")}, nil
}

// holds reports whether key already holds v in exactly the managed
// environments. It refuses keys whose existing variable would change
// scope or lose its write-only protection by being written.
func (t *Target) holds(ctx context.Context, envs []envVar, key string, v secret.String) (bool, error) {
	matches := t.matching(envs, key)
	if len(matches) == 0 {
		return false, nil
	}
	if len(matches) > 1 || !slices.Equal(matches[0].Target.sorted(), t.envs) {
		return false, fmt.Errorf("vercel target %q: %s already exists in project %s for %s, but this target manages %s; a write would change which environments see it. Set environments: [%s] to match, or split the variable in the Vercel dashboard: %w",
			t.name, key, t.project, describeScopes(matches), strings.Join(t.envs, ", "), strings.Join(unionTargets(matches), ", "), target.ErrInvalid)
	}
	m := matches[0]
	if m.Type == TypeSensitive && t.typ != TypeSensitive {
		return false, fmt.Errorf("vercel target %q: %s is a sensitive variable in project %s and this target writes it as %s, which would make it readable; set sensitive: true: %w",
			t.name, key, t.project, t.typ, target.ErrInvalid)
	}
	if m.Type != t.typ || m.Type == TypeSensitive {
		return false, nil
	}
	got, ok, err := t.read(ctx, m.ID)
	if err != nil {
		return false, t.fail("cannot read "+key+" to compare it", err)
	}
	return ok && got.Equal(v), nil
}

// matching returns the variables named key that apply to at least one of
// the managed environments. Branch-specific preview variables are someone
// else's: they override ours on their branch and are left alone.
func (t *Target) matching(envs []envVar, key string) []envVar {
	var out []envVar
	for _, e := range envs {
		if e.Key != key || e.GitBranch != "" {
			continue
		}
		if slices.ContainsFunc(e.Target, func(s string) bool { return slices.Contains(t.envs, s) }) {
			out = append(out, e)
		}
	}
	return out
}

// Check implements target.Checker: encrypted values are read back, and
// sensitive ones are reported unreadable with when they last changed.
func (t *Target) Check(ctx context.Context, req target.CheckRequest) (target.CheckResponse, error) {
	envs, err := t.list(ctx)
	if err != nil {
		return target.CheckResponse{}, t.fail("cannot list the project's variables", err)
	}
	resp := target.CheckResponse{Values: map[string]secret.String{}}
	for _, key := range req.Keys {
		matches := t.matching(envs, key)
		if len(matches) == 0 {
			continue
		}
		if missing := missingEnvs(t.envs, matches); len(missing) > 0 {
			resp.Notes = append(resp.Notes, fmt.Sprintf("%s is not set for %s", key, strings.Join(missing, ", ")))
			continue
		}
		var (
			value                     secret.String
			have, unreadable, differs bool
		)
		for _, m := range matches {
			if m.Type == TypeSensitive {
				unreadable = true
				resp.Notes = append(resp.Notes, fmt.Sprintf("%s (%s) is sensitive and cannot be read back; last updated %s", key, strings.Join(m.Target.sorted(), ", "), formatMillis(m.UpdatedAt)))
				continue
			}
			got, ok, err := t.read(ctx, m.ID)
			if err != nil {
				return target.CheckResponse{}, t.fail("cannot read "+key, err)
			}
			if !ok {
				unreadable = true
				resp.Notes = append(resp.Notes, fmt.Sprintf("%s (%s) was not decrypted by the API; last updated %s", key, strings.Join(m.Target.sorted(), ", "), formatMillis(m.UpdatedAt)))
				continue
			}
			if !have {
				value, have = got, true
			} else if !value.Equal(got) {
				differs = true
			}
		}
		switch {
		case differs:
			resp.Notes = append(resp.Notes, key+" holds different values in different environments")
		case unreadable:
			resp.Unreadable = append(resp.Unreadable, key)
		default:
			resp.Values[key] = value
		}
	}
	return resp, nil
}

// Validate implements target.Validator: listing the project's variables
// proves the token, the team and the project; with redeploy it also finds
// the deployment Reload would redeploy. Nothing is written.
func (t *Target) Validate(ctx context.Context, _ target.ValidateRequest) (target.ValidateResponse, error) {
	if _, err := t.list(ctx); err != nil {
		return target.ValidateResponse{}, t.fail("cannot list the project's variables", err)
	}
	var resp target.ValidateResponse
	if t.redeploy {
		d, err := t.currentProduction(ctx)
		if err != nil {
			return target.ValidateResponse{}, err
		}
		if d == nil {
			resp.Notes = append(resp.Notes, "project "+t.project+" has no READY production deployment yet; redeploy will have nothing to redeploy")
		}
	}
	return resp, nil
}

func (t *Target) currentProduction(ctx context.Context) (*deployment, error) {
	q := url.Values{"projectId": {t.project}, "target": {EnvProduction}, "state": {"READY"}, "limit": {"1"}}
	resp, err := t.api.Do(ctx, webapi.Request{Method: http.MethodGet, Path: t.teamPath("/v7/deployments", q), Retryable: true})
	if err != nil {
		return nil, t.fail("cannot find the current production deployment", err)
	}
	var out struct {
		Deployments []deployment `json:"deployments"`
	}
	if err := t.api.Decode(resp, &out); err != nil {
		return nil, t.fail("cannot read the deployment list", err)
	}
	if len(out.Deployments) == 0 {
		return nil, nil
	}
	return &out.Deployments[0], nil
}

// maxListPages bounds how many pages of the variable list rotor reads. At
// Vercel's default page size (20) that is 2,000 variables, far more than a
// project holds; an API that keeps answering with a next cursor past it is
// misbehaving, and rotor stops with an error instead of looping.
const maxListPages = 100

// list returns every variable of the project, reading every page.
//
// Pagination follows Vercel's REST API reference
// (https://vercel.com/docs/rest-api/reference#pagination): a list that has
// more records than the page size (default 20, at most 100) carries
// "pagination": {"count", "next", "prev"}, where next is a timestamp in
// milliseconds; the next page is the same request with until=<next>, and
// the last page has next: null. The endpoint's own page
// (https://vercel.com/docs/rest-api/projects/retrieve-the-environment-variables-of-a-project-by-id-or-name)
// lists neither until nor limit among its query parameters but documents
// the pagination object in its answer, so rotor sends until only when
// Vercel hands it a next cursor and never sends limit: the first request is
// exactly the one that has always worked. A list without a pagination
// object is one page.
func (t *Target) list(ctx context.Context) ([]envVar, error) {
	var (
		all   []envVar
		ids   = map[string]bool{}
		used  = map[string]bool{}
		until string
	)
	for page := 1; ; page++ {
		q := url.Values{}
		if until != "" {
			q.Set("until", until)
		}
		resp, err := t.api.Do(ctx, webapi.Request{Method: http.MethodGet, Path: t.projectPath("/v10", "/env", q), Retryable: true})
		if err != nil {
			return nil, err
		}
		var out struct {
			Envs       []envVar `json:"envs"`
			Pagination *struct {
				Next *json.Number `json:"next"`
			} `json:"pagination"`
		}
		if err := t.api.Decode(resp, &out); err != nil {
			return nil, err
		}
		for _, e := range out.Envs {
			// A variable on the boundary of two timestamp pages may be
			// listed twice; counting it twice would look like a key split
			// over two variables.
			if e.ID != "" {
				if ids[e.ID] {
					continue
				}
				ids[e.ID] = true
			}
			all = append(all, e)
		}
		if out.Pagination == nil || out.Pagination.Next == nil {
			return all, nil
		}
		next := out.Pagination.Next.String()
		if used[next] || next == "" {
			return nil, fmt.Errorf("page %d of the variable list came back with pagination.next=%s, a cursor Vercel had already given, so the list would never end; rotor stops rather than loop. Run again later; if it persists, report it with this message", page, next)
		}
		if page >= maxListPages {
			return nil, fmt.Errorf("the variable list still had more pages after %d requests (pagination.next was never null); rotor stops rather than loop. Run again later; if it persists, report it with this message", maxListPages)
		}
		used[next] = true
		until = next
	}
}

// read fetches one variable's decrypted value; ok is false when the API
// does not hand it out (sensitive, or not decrypted).
func (t *Target) read(ctx context.Context, id string) (v secret.String, ok bool, err error) {
	resp, err := t.api.Do(ctx, webapi.Request{Method: http.MethodGet, Path: t.projectPath("/v1", "/env/"+url.PathEscape(id), nil), Retryable: true})
	if err != nil {
		return secret.String{}, false, err
	}
	var out envVar
	if err := t.api.Decode(resp, &out); err != nil {
		return secret.String{}, false, err
	}
	if out.Type == TypeSensitive || (out.Type != "plain" && !out.Decrypted) {
		return secret.String{}, false, nil
	}
	return secret.New(out.Value), true, nil
}

func (t *Target) projectPath(version, suffix string, q url.Values) string {
	return t.teamPath(version+"/projects/"+url.PathEscape(t.project)+suffix, q)
}

func (t *Target) teamPath(p string, q url.Values) string {
	if q == nil {
		q = url.Values{}
	}
	if t.teamID != "" {
		q.Set("teamId", t.teamID)
	}
	if len(q) == 0 {
		return p
	}
	return p + "?" + q.Encode()
}

// fail wraps an API error with what rotor was doing and how to fix the
// usual causes.
func (t *Target) fail(doing string, err error) error {
	hint := ""
	switch {
	case errors.Is(err, target.ErrAuth):
		team := "your personal account"
		if t.teamID != "" {
			team = "team " + t.teamID
		}
		hint = "; the token was refused: set token: ${VERCEL_TOKEN} to an access token whose scope includes " + team + " and that may read and write project environment variables"
		if t.redeploy {
			hint += " and create deployments"
		}
	case errors.Is(err, target.ErrNotFound):
		hint = fmt.Sprintf("; project %q was not found: check project (id or name) and team_id", t.project)
	}
	return fmt.Errorf("vercel target %q: %s%s: %w", t.name, doing, hint, err)
}

// failed turns the `failed` entries of a 201 into one error. Vercel echoes
// the value in these entries, so only codes, keys and scrubbed messages
// are kept.
func (t *Target) failed(entries []failure, secrets []secret.String) error {
	parts := make([]string, 0, len(entries))
	for _, f := range entries {
		key := f.Error.Key
		if key == "" {
			key = f.Error.EnvVarKey
		}
		msg := secret.ScrubString(f.Error.Message, secrets...)
		part := key
		if f.Error.Code != "" {
			part += " " + secret.ScrubString(f.Error.Code, secrets...)
		}
		if msg != "" {
			part += ": " + msg
		}
		parts = append(parts, strings.TrimSpace(part))
	}
	return fmt.Errorf("vercel target %q: Vercel accepted the request but did not store %d variable(s) (%s); fix the cause and run `rotor resume`: %w",
		t.name, len(entries), strings.Join(parts, "; "), target.ErrInvalid)
}

func keyList(ws []upsertEnv) string {
	keys := make([]string, len(ws))
	for i, w := range ws {
		keys[i] = w.Key
	}
	return strings.Join(keys, ", ")
}

func missingEnvs(want []string, matches []envVar) []string {
	have := unionTargets(matches)
	var missing []string
	for _, e := range want {
		if !slices.Contains(have, e) {
			missing = append(missing, e)
		}
	}
	return missing
}

func unionTargets(envs []envVar) []string {
	var all []string
	for _, e := range envs {
		all = append(all, e.Target...)
	}
	slices.Sort(all)
	return slices.Compact(all)
}

func describeScopes(envs []envVar) string {
	scopes := make([]string, len(envs))
	for i, e := range envs {
		scopes[i] = strings.Join(e.Target.sorted(), "+")
	}
	// The list's order is Vercel's (and spans pages); the message should
	// not depend on it.
	slices.Sort(scopes)
	if len(scopes) == 1 {
		return scopes[0]
	}
	return "separate variables " + strings.Join(scopes, " and ")
}

func formatMillis(ms int64) string {
	if ms <= 0 {
		return "at an unknown time"
	}
	return time.UnixMilli(ms).UTC().Format(time.RFC3339)
}

// upsertEnv is one variable in the body of the upsert.
type upsertEnv struct {
	Key    string   `json:"key"`
	Value  string   `json:"value"`
	Type   string   `json:"type"`
	Target []string `json:"target"`
}

// envVar is a variable as the list and get endpoints return it.
type envVar struct {
	ID        string  `json:"id"`
	Key       string  `json:"key"`
	Value     string  `json:"value"`
	Type      string  `json:"type"`
	Target    targets `json:"target"`
	GitBranch string  `json:"gitBranch"`
	Decrypted bool    `json:"decrypted"`
	UpdatedAt int64   `json:"updatedAt"`
}

// targets accepts both spellings Vercel uses for `target`: one string or a
// list.
type targets []string

func (ts *targets) UnmarshalJSON(b []byte) error {
	var one string
	if err := json.Unmarshal(b, &one); err == nil {
		*ts = targets{one}
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		return err
	}
	*ts = many
	return nil
}

func (ts targets) sorted() []string { return slices.Sorted(slices.Values(ts)) }

type upsertResponse struct {
	// Created is one object or a list, mirroring the request.
	Created json.RawMessage `json:"created"`
	Failed  []failure       `json:"failed"`
}

func (r upsertResponse) createdIDs() []string {
	var many []envVar
	if err := json.Unmarshal(r.Created, &many); err != nil {
		var one envVar
		if json.Unmarshal(r.Created, &one) != nil {
			return nil
		}
		many = []envVar{one}
	}
	ids := make([]string, 0, len(many))
	for _, e := range many {
		if e.ID != "" {
			ids = append(ids, e.ID)
		}
	}
	return ids
}

type failure struct {
	Error struct {
		Code      string `json:"code"`
		Message   string `json:"message"`
		Key       string `json:"key"`
		EnvVarKey string `json:"envVarKey"`
	} `json:"error"`
}

// deployment is a deployment as the list (uid), create and get (id)
// endpoints return it.
type deployment struct {
	UID        string `json:"uid"`
	ID         string `json:"id"`
	Name       string `json:"name"`
	URL        string `json:"url"`
	ReadyState string `json:"readyState"`
	// ReadySubstate, AliasAssigned, AliasError and
	// AutoAssignCustomDomains say whether a READY deployment serves
	// production (GET /v13/deployments/{id}).
	ReadySubstate           string `json:"readySubstate"`
	AliasAssigned           bool   `json:"aliasAssigned"`
	AutoAssignCustomDomains *bool  `json:"autoAssignCustomDomains"`
	AliasError              *struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"aliasError"`
	ErrorCode    string `json:"errorCode"`
	ErrorMessage string `json:"errorMessage"`
}

type redeployBody struct {
	Name         string `json:"name"`
	Project      string `json:"project"`
	DeploymentID string `json:"deploymentId"`
	Target       string `json:"target"`
}

var (
	_ target.Target     = (*Target)(nil)
	_ target.Checker    = (*Target)(nil)
	_ target.Validator  = (*Target)(nil)
	_ target.Reloader   = (*Target)(nil)
	_ target.Switchable = (*Target)(nil)
)
