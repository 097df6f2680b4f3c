// Package gitlabfake is a contract fake of GitLab's CI/CD variables REST
// API (/api/v4) for tests. It follows shared/reference/targets-api.md §6
// "GitLab CI/CD variables":
//
//   - PRIVATE-TOKEN or Authorization: Bearer; a bad token gets 401
//     {"message":"401 Unauthorized"}, a role below Maintainer 403 on
//     variables;
//   - :id is the numeric id or the URL-encoded path (acme%2Fapp);
//   - no upsert: GET /projects/:id/variables/:key (with
//     filter[environment_scope]) answers 200 or 404, PUT updates, POST
//     creates; a duplicate key and scope is 400 "has already been taken";
//     several scopes for one key without a filter is 409 "There are
//     multiple variables with provided parameters…";
//   - group variables under /groups/:id/variables with the same rules;
//   - values are returned in full, except for hidden variables
//     (masked_and_hidden, create only), whose value is null (unverified:
//     the reference could not confirm what GitLab returns);
//   - masking follows GitLab's Ci::Maskable: at least 8 characters without
//     whitespace for raw variables, the base64 alphabet plus @ : . ~ for
//     expanded ones; refusals are 400 {"message":{"value":["is invalid"]}};
//   - POST /projects/:id/pipeline {"ref"} answers 201 with the pipeline,
//     status created; GET /projects/:id/pipelines/:pipeline_id shows it
//     passing through the statuses docs.gitlab.com/api/pipelines lists —
//     created, waiting_for_resource, preparing, pending, running,
//     success, failed, canceled, skipped, manual, scheduled — as
//     SetPipelinePlan says: how many polls each status lasts, and where
//     the pipeline ends (a pipeline that waits for a manual job stays
//     manual);
//   - rate limits answer 429 with Retry-After and RateLimit-* headers
//     (or without them: GitLab sometimes omits them).
package gitlabfake

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rotorhq/rotor/internal/target/webapi/fakefaults"
)

// What the fake serves, and the tokens it accepts.
const (
	// Token belongs to a Maintainer of the project and Owner of the group.
	Token = "glpat-maintainer-test"
	// DeveloperToken belongs to a Developer: it sees the project and can
	// run pipelines, but gets 403 on CI/CD variables.
	DeveloperToken = "glpat-developer-test"

	ProjectID   = 42
	ProjectPath = "acme/app"
	GroupID     = 7
	GroupPath   = "acme"
	// Ref is the only branch of the project.
	Ref = "main"
)

// Kinds of variable owners.
const (
	Project = "projects"
	Group   = "groups"
)

// Variable is one stored CI/CD variable.
type Variable struct {
	Key              string `json:"key"`
	Value            string `json:"value"`
	EnvironmentScope string `json:"environment_scope"`
	VariableType     string `json:"variable_type"`
	Masked           bool   `json:"masked"`
	Hidden           bool   `json:"hidden"`
	Protected        bool   `json:"protected"`
	Raw              bool   `json:"raw"`
	Description      string `json:"description"`
}

// Call is one request the fake answered.
type Call struct {
	Method string
	// Path is the escaped path, e.g. /api/v4/projects/acme%2Fapp/variables.
	Path string
	// Query is the raw query string.
	Query  string
	Status int
}

// Pipeline is a pipeline the fake created.
type Pipeline struct {
	ID  int
	Ref string
	// Status is what the last poll showed ("created" before any).
	Status string
	// Polls is how many times the pipeline was fetched.
	Polls int
	plan  PipelinePlan
}

// PipelineStep is a status a pipeline shows for a number of polls (GETs
// of the pipeline); Polls < 0 keeps it there for good.
type PipelineStep struct {
	Status string
	Polls  int
}

// PipelinePlan is the life of the pipelines created after
// SetPipelinePlan.
type PipelinePlan struct {
	// Steps are the statuses before Final (pending, running, …). None:
	// the first poll already sees Final.
	Steps []PipelineStep
	// Final is where the pipeline rests: success (the default), failed,
	// canceled, skipped, or manual (it waits for a person).
	Final string
}

// state is what the pipeline shows at its polls-th fetch.
func (p *Pipeline) state(polls int) string {
	for _, s := range p.plan.Steps {
		if s.Polls < 0 || polls < s.Polls {
			return s.Status
		}
		polls -= s.Polls
	}
	if p.plan.Final == "" {
		return "success"
	}
	return p.plan.Final
}

// Fake is a running fake. Its methods are safe for concurrent use.
type Fake struct {
	// URL is the API root, for the target's api_url (…/api/v4).
	URL string

	t   testing.TB
	srv *httptest.Server
	mu  sync.Mutex

	vars      map[string][]*Variable // by owner kind
	calls     []Call
	pipelines []*Pipeline
	plan      PipelinePlan

	faults        fakefaults.Faults
	forbidWrites  bool
	ignoreFilter  bool
	raceOnCreate  *Variable
	raceKind      string
	requestsTotal int
}

// New starts a fake that stops when the test ends.
func New(t testing.TB) *Fake {
	f := &Fake{t: t, vars: map[string][]*Variable{Project: nil, Group: nil}}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	f.URL = f.srv.URL + "/api/v4"
	return f
}

// Client is the HTTP client to reach the fake with.
func (f *Fake) Client() *http.Client { return f.srv.Client() }

// Variable returns the variable of kind (Project or Group) with key and
// environment scope.
func (f *Fake) Variable(kind, key, scope string) (Variable, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, v := range f.vars[kind] {
		if v.Key == key && v.EnvironmentScope == scope {
			return *v, true
		}
	}
	return Variable{}, false
}

// Variables returns all variables of kind.
func (f *Fake) Variables(kind string) []Variable {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]Variable, 0, len(f.vars[kind]))
	for _, v := range f.vars[kind] {
		out = append(out, *v)
	}
	return out
}

// Seed stores a variable directly, as the UI would. Empty fields get
// GitLab's defaults.
func (f *Fake) Seed(kind string, v Variable) {
	f.mu.Lock()
	defer f.mu.Unlock()
	v = withDefaults(v)
	f.vars[kind] = append(f.vars[kind], &v)
}

func withDefaults(v Variable) Variable {
	if v.EnvironmentScope == "" {
		v.EnvironmentScope = "*"
	}
	if v.VariableType == "" {
		v.VariableType = "env_var"
	}
	return v
}

// Calls returns the requests answered so far.
func (f *Fake) Calls() []Call {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

// Writes counts the answered requests that were not GETs.
func (f *Fake) Writes() int {
	n := 0
	for _, c := range f.Calls() {
		if c.Method != http.MethodGet {
			n++
		}
	}
	return n
}

// Pipelines returns the pipelines created so far.
func (f *Fake) Pipelines() []Pipeline {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]Pipeline, 0, len(f.pipelines))
	for _, p := range f.pipelines {
		out = append(out, *p)
	}
	return out
}

// SetPipelinePlan sets how later pipelines proceed.
func (f *Fake) SetPipelinePlan(p PipelinePlan) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.plan = p
	f.plan.Steps = slices.Clone(p.Steps)
}

// FinishPipeline ends pipeline id's plan: from its next poll on it shows
// final, as when a long pipeline finally ends or someone ran its manual
// job.
func (f *Fake) FinishPipeline(id int, final string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, p := range f.pipelines {
		if p.ID == id {
			p.plan.Steps, p.plan.Final = nil, final
		}
	}
}

// FailNext makes the next n requests answer status.
func (f *Fake) FailNext(n, status int) { f.faults.FailNext(n, status) }

// Limit lets n more requests through, then answers every request with
// 429 (n < 0: no limit); Retry-After is sent when retryAfter > 0, as
// GitLab sometimes omits it (and the RateLimit-* headers) on a 429.
func (f *Fake) Limit(n int, retryAfter time.Duration) { f.faults.Limit(n, retryAfter) }

// Delay makes every answer wait d (or until the request is cancelled).
func (f *Fake) Delay(d time.Duration) { f.faults.SetDelay(d) }

// ForbidWrites makes every later non-GET request fail the test.
func (f *Fake) ForbidWrites() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.forbidWrites = true
}

// IgnoreScopeFilter makes the fake behave like a GitLab without
// filter[environment_scope] (before 16.9, or a group on the Free tier).
func (f *Fake) IgnoreScopeFilter() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ignoreFilter = true
}

// RaceOnNextCreate stores v just before the next POST that creates a
// variable is handled, as if another writer had created it first.
func (f *Fake) RaceOnNextCreate(kind string, v Variable) {
	f.mu.Lock()
	defer f.mu.Unlock()
	v = withDefaults(v)
	f.raceOnCreate, f.raceKind = &v, kind
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(status int) {
	r.status = status
	r.ResponseWriter.WriteHeader(status)
}

func (f *Fake) serve(w http.ResponseWriter, r *http.Request) {
	if !f.faults.Delay(r) {
		return
	}
	rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.handle(rec, r)
	f.calls = append(f.calls, Call{Method: r.Method, Path: r.URL.EscapedPath(), Query: r.URL.RawQuery, Status: rec.status})
}

// handle answers one request; f.mu is held.
func (f *Fake) handle(w http.ResponseWriter, r *http.Request) {
	f.requestsTotal++
	v := f.faults.Next()
	if v.Limited {
		if v.Wait > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(int(v.Wait/time.Second)))
			w.Header().Set("RateLimit-Limit", "600")
			w.Header().Set("RateLimit-Remaining", "0")
		}
		writeJSON(w, http.StatusTooManyRequests, map[string]string{"message": "Retry later"})
		return
	}
	w.Header().Set("RateLimit-Limit", "2000")
	w.Header().Set("RateLimit-Observed", strconv.Itoa(f.requestsTotal))
	w.Header().Set("RateLimit-Remaining", strconv.Itoa(max(2000-f.requestsTotal, 0)))
	if v.Fail {
		writeJSON(w, v.Status, map[string]string{"message": fmt.Sprintf("%d %s", v.Status, http.StatusText(v.Status))})
		return
	}
	var role int
	token := r.Header.Get("PRIVATE-TOKEN")
	if token == "" {
		token = strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
	}
	switch token {
	case Token:
		role = 40
	case DeveloperToken:
		role = 30
	default:
		writeJSON(w, http.StatusUnauthorized, map[string]string{"message": "401 Unauthorized"})
		return
	}
	if r.Method != http.MethodGet && f.forbidWrites {
		f.t.Errorf("gitlabfake: %s %s after ForbidWrites", r.Method, r.URL.EscapedPath())
	}

	seg, ok := segments(r.URL.EscapedPath())
	if !ok || len(seg) < 2 || (seg[0] != Project && seg[0] != Group) {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "404 Not Found"})
		return
	}
	kind, id, rest := seg[0], seg[1], seg[2:]
	if !owns(kind, id) {
		name := "Project"
		if kind == Group {
			name = "Group"
		}
		writeJSON(w, http.StatusNotFound, map[string]string{"message": "404 " + name + " Not Found"})
		return
	}
	params, err := readParams(r)
	if err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "body is not valid JSON or form data"})
		return
	}
	switch {
	case len(rest) == 0 && r.Method == http.MethodGet:
		f.owner(w, kind, role)
	case len(rest) >= 1 && rest[0] == "variables":
		if role < 40 {
			writeJSON(w, http.StatusForbidden, map[string]string{"message": "403 Forbidden"})
			return
		}
		f.variables(w, r, kind, rest[1:], params)
	case kind == Project && len(rest) == 1 && rest[0] == "pipeline" && r.Method == http.MethodPost:
		f.createPipeline(w, params)
	case kind == Project && len(rest) == 2 && rest[0] == "pipelines" && r.Method == http.MethodGet:
		f.getPipeline(w, rest[1])
	case kind == Project && len(rest) == 3 && rest[0] == "repository" && rest[1] == "commits" && r.Method == http.MethodGet:
		if rest[2] != Ref {
			writeJSON(w, http.StatusNotFound, map[string]string{"message": "404 Commit Not Found"})
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"id": "6104942438c14ec7bd21c6cd5bd995272b3faff6", "short_id": "6104942", "title": "main"})
	default:
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "404 Not Found"})
	}
}

// segments splits an escaped /api/v4/… path and unescapes each segment,
// so that acme%2Fapp stays one segment.
func segments(escaped string) ([]string, bool) {
	rest, ok := strings.CutPrefix(escaped, "/api/v4/")
	if !ok {
		return nil, false
	}
	var out []string
	for _, s := range strings.Split(rest, "/") {
		u, err := url.PathUnescape(s)
		if err != nil {
			return nil, false
		}
		out = append(out, u)
	}
	return out, true
}

func owns(kind, id string) bool {
	if kind == Project {
		return id == strconv.Itoa(ProjectID) || id == ProjectPath
	}
	return id == strconv.Itoa(GroupID) || id == GroupPath
}

func (f *Fake) owner(w http.ResponseWriter, kind string, role int) {
	if kind == Group {
		writeJSON(w, http.StatusOK, map[string]any{"id": GroupID, "full_path": GroupPath, "name": GroupPath})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"id": ProjectID, "path_with_namespace": ProjectPath,
		"permissions": map[string]any{"project_access": map[string]int{"access_level": role, "notification_level": 3}, "group_access": nil},
	})
}

// params holds request parameters from the query and a JSON or form
// body, as GitLab's API accepts them all.
type params map[string]any

func readParams(r *http.Request) (params, error) {
	p := params{}
	for k, vs := range r.URL.Query() {
		p[k] = vs[0]
	}
	if r.Method == http.MethodGet {
		return p, nil
	}
	if strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
		var body map[string]any
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil && !errors.Is(err, io.EOF) {
			return nil, err
		}
		for k, v := range body {
			if k == "filter" {
				if m, ok := v.(map[string]any); ok {
					for fk, fv := range m {
						p["filter["+fk+"]"] = fv
					}
				}
				continue
			}
			p[k] = v
		}
		return p, nil
	}
	if err := r.ParseForm(); err != nil {
		return nil, err
	}
	for k, vs := range r.PostForm {
		p[k] = vs[0]
	}
	return p, nil
}

func (p params) str(k string) (string, bool) {
	v, ok := p[k]
	if !ok || v == nil {
		return "", false
	}
	if s, ok := v.(string); ok {
		return s, true
	}
	return fmt.Sprint(v), true
}

func (p params) boolean(k string) (bool, bool) {
	v, ok := p[k]
	if !ok {
		return false, false
	}
	switch x := v.(type) {
	case bool:
		return x, true
	case string:
		return x == "true", true
	}
	return false, true
}

var keyRule = regexp.MustCompile(`^[A-Za-z0-9_]{1,255}$`)

func (f *Fake) variables(w http.ResponseWriter, r *http.Request, kind string, rest []string, p params) {
	switch {
	case len(rest) == 0 && r.Method == http.MethodGet:
		out := make([]map[string]any, 0, len(f.vars[kind]))
		for _, v := range f.vars[kind] {
			out = append(out, render(v))
		}
		writeJSON(w, http.StatusOK, out)
	case len(rest) == 0 && r.Method == http.MethodPost:
		f.create(w, kind, p)
	case len(rest) == 1 && (r.Method == http.MethodGet || r.Method == http.MethodPut):
		v, status, msg := f.find(kind, rest[0], p)
		if v == nil {
			writeJSON(w, status, map[string]string{"message": msg})
			return
		}
		if r.Method == http.MethodGet {
			writeJSON(w, http.StatusOK, render(v))
			return
		}
		f.update(w, kind, v, p)
	default:
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "404 Not Found"})
	}
}

// find selects the variable a GET or PUT addresses.
func (f *Fake) find(kind, key string, p params) (*Variable, int, string) {
	scope, filtered := p.str("filter[environment_scope]")
	var matches []*Variable
	for _, v := range f.vars[kind] {
		if v.Key == key && (!filtered || f.ignoreFilter || v.EnvironmentScope == scope) {
			matches = append(matches, v)
		}
	}
	switch len(matches) {
	case 0:
		return nil, http.StatusNotFound, "404 Variable Not Found"
	case 1:
		return matches[0], 0, ""
	}
	return nil, http.StatusConflict, "There are multiple variables with provided parameters. Please use 'filter[environment_scope]'"
}

func (f *Fake) create(w http.ResponseWriter, kind string, p params) {
	if f.raceOnCreate != nil && f.raceKind == kind {
		f.vars[kind] = append(f.vars[kind], f.raceOnCreate)
		f.raceOnCreate = nil
	}
	key, _ := p.str("key")
	value, hasValue := p.str("value")
	switch {
	case !keyRule.MatchString(key):
		writeJSON(w, http.StatusBadRequest, map[string]any{"message": map[string][]string{"key": {"can contain only letters, digits and '_'."}}})
		return
	case !hasValue:
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "value is missing"})
		return
	}
	v := &Variable{Key: key, Value: value, EnvironmentScope: "*", VariableType: "env_var"}
	if s, ok := p.str("environment_scope"); ok && s != "" {
		v.EnvironmentScope = s
	}
	if s, ok := p.str("variable_type"); ok && s != "" {
		v.VariableType = s
	}
	v.Masked, _ = p.boolean("masked")
	v.Protected, _ = p.boolean("protected")
	v.Raw, _ = p.boolean("raw") // GitLab's default is false: values are expanded
	if hidden, _ := p.boolean("masked_and_hidden"); hidden {
		v.Masked, v.Hidden = true, true
	}
	v.Description, _ = p.str("description")
	for _, o := range f.vars[kind] {
		if o.Key == v.Key && o.EnvironmentScope == v.EnvironmentScope {
			writeJSON(w, http.StatusBadRequest, map[string]any{"message": map[string][]string{"key": {"(" + v.Key + ") has already been taken"}}})
			return
		}
	}
	if msg := invalid(v); msg != nil {
		writeJSON(w, http.StatusBadRequest, map[string]any{"message": msg})
		return
	}
	f.vars[kind] = append(f.vars[kind], v)
	writeJSON(w, http.StatusCreated, render(v))
}

func (f *Fake) update(w http.ResponseWriter, kind string, cur *Variable, p params) {
	v := *cur
	if s, ok := p.str("value"); ok {
		v.Value = s
	}
	if s, ok := p.str("environment_scope"); ok && s != "" {
		v.EnvironmentScope = s
	}
	if s, ok := p.str("variable_type"); ok && s != "" {
		v.VariableType = s
	}
	if b, ok := p.boolean("masked"); ok {
		v.Masked = b
	}
	if b, ok := p.boolean("protected"); ok {
		v.Protected = b
	}
	if b, ok := p.boolean("raw"); ok {
		v.Raw = b
	}
	if s, ok := p.str("description"); ok {
		v.Description = s
	}
	if v.Hidden && !v.Masked {
		// Unverified wording; hidden variables cannot be unmasked.
		writeJSON(w, http.StatusBadRequest, map[string]any{"message": map[string][]string{"masked": {"cannot be disabled for a hidden variable"}}})
		return
	}
	for _, o := range f.vars[kind] {
		if o != cur && o.Key == v.Key && o.EnvironmentScope == v.EnvironmentScope {
			writeJSON(w, http.StatusBadRequest, map[string]any{"message": map[string][]string{"key": {"(" + v.Key + ") has already been taken"}}})
			return
		}
	}
	if msg := invalid(&v); msg != nil {
		writeJSON(w, http.StatusBadRequest, map[string]any{"message": msg})
		return
	}
	*cur = v
	writeJSON(w, http.StatusOK, render(cur))
}

var (
	maskExpanded = regexp.MustCompile(`^[a-zA-Z0-9_+=/@:.~-]{8,}$`)
	maskRaw      = regexp.MustCompile(`^[^ \t\r\n\f\v]{8,}$`)
)

// invalid applies GitLab's model validations to v.
func invalid(v *Variable) map[string][]string {
	if v.VariableType != "env_var" && v.VariableType != "file" {
		return map[string][]string{"variable_type": {"is not included in the list"}}
	}
	if v.Masked {
		rule := maskExpanded
		if v.Raw {
			rule = maskRaw
		}
		// GitLab counts characters, not bytes.
		if !rule.MatchString(v.Value) || len([]rune(v.Value)) < 8 {
			return map[string][]string{"value": {"is invalid"}}
		}
	}
	return nil
}

func render(v *Variable) map[string]any {
	out := map[string]any{
		"key": v.Key, "value": v.Value, "environment_scope": v.EnvironmentScope, "variable_type": v.VariableType,
		"masked": v.Masked, "hidden": v.Hidden, "protected": v.Protected, "raw": v.Raw, "description": v.Description,
	}
	if v.Hidden {
		out["value"] = nil
	}
	return out
}

func (f *Fake) createPipeline(w http.ResponseWriter, p params) {
	ref, _ := p.str("ref")
	if ref == "" {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "ref is missing"})
		return
	}
	if ref != Ref {
		writeJSON(w, http.StatusBadRequest, map[string]any{"message": map[string][]string{"base": {"Reference not found"}}})
		return
	}
	pl := &Pipeline{ID: 1000 + len(f.pipelines) + 1, Ref: ref, Status: "created", plan: f.plan}
	f.pipelines = append(f.pipelines, pl)
	writeJSON(w, http.StatusCreated, renderPipeline(pl))
}

// getPipeline answers one poll of a pipeline, which moves it along its
// plan.
func (f *Fake) getPipeline(w http.ResponseWriter, id string) {
	for _, p := range f.pipelines {
		if strconv.Itoa(p.ID) != id {
			continue
		}
		p.Status = p.state(p.Polls)
		p.Polls++
		writeJSON(w, http.StatusOK, renderPipeline(p))
		return
	}
	writeJSON(w, http.StatusNotFound, map[string]string{"message": "404 Not found"})
}

func renderPipeline(p *Pipeline) map[string]any {
	return map[string]any{
		"id": p.ID, "iid": p.ID - 1000, "project_id": ProjectID, "status": p.Status, "ref": p.Ref, "source": "api",
		"sha": "6104942438c14ec7bd21c6cd5bd995272b3faff6", "web_url": fmt.Sprintf("https://gitlab.example.com/%s/-/pipelines/%d", ProjectPath, p.ID),
	}
}

func writeJSON(w http.ResponseWriter, status int, body any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
}
