// Package vercelfake is an httptest contract fake of the parts of Vercel's
// REST API the vercel target uses. It follows
// /work/shared/reference/targets-api.md §1 "Vercel":
//
//   - auth: Authorization: Bearer <token>; a wrong or missing token gets 401
//     and the documented error body {"error":{"code","message"}};
//   - GET /v10/projects/{idOrName}/env lists variables as
//     {"envs":[…],"pagination"} (targets-api.md §1 "Find an id") with
//     encrypted values left encrypted (decrypted: false). The list is
//     paged the way Vercel's REST API reference describes pagination
//     (https://vercel.com/docs/rest-api/reference#pagination): a page holds
//     at most `limit` records (default 20, at most 100; Options.PageSize
//     and SetPageSize change the default so tests can page small lists);
//     when the project has more records than that, every page carries
//     "pagination": {"count","next","prev"}, next being a timestamp in
//     milliseconds, and the next page is the same request with
//     until=<next>; the last page has next: null. A list that fits on one
//     page has no pagination object. Variables are listed newest first by
//     createdAt and until=T returns those created before T; the fake gives
//     every variable a distinct createdAt, so no page boundary is
//     ambiguous. A bad until or limit is a 400;
//   - POST /v10/projects/{idOrName}/env takes one object or an array; with
//     upsert=true an existing variable (same key, overlapping targets) is
//     updated, without it the clash is ENV_CONFLICT; success is 201
//     {"created","failed"} and failures can hide in `failed`;
//   - GET /v1/projects/{idOrName}/env/{id} decrypts encrypted and plain
//     values; sensitive ones are never handed out;
//   - GET /v7/deployments?projectId&target&state&limit and POST
//     /v13/deployments?forceNew=1 {name,project,deploymentId,target} (200);
//   - GET /v13/deployments/{idOrUrl} returns one deployment, 404 when
//     there is none. Its fields and their meaning follow Vercel's own SDK
//     (vercel/sdk src/models/getdeploymentresponsebody.ts): readyState is
//     QUEUED, BUILDING, INITIALIZING, READY, ERROR or CANCELED; a READY
//     deployment has readySubstate STAGED ("never seen production
//     traffic"), ROLLING or PROMOTED ("has seen production traffic");
//     aliasAssigned is true once its aliases are assigned, aliasError holds
//     {code,message} when assigning them failed; autoAssignCustomDomains
//     ("defaults to true") is false for a production deployment made
//     without assigning the production domains, which Vercel calls a
//     staged build that has to be promoted by hand
//     (vercel.com/docs/deployments/environments). A new deployment moves
//     through the states of the fake's Build, one state per Build.Polls
//     reads of this endpoint, so a test decides how long a build takes;
//   - team projects answer 404 unless ?teamId= names their team;
//   - 429 with Retry-After (seconds) when rate limited.
//
// The state (plaintext values included) is inspectable so tests can assert
// what landed; knobs inject rate limits, 5xx answers that echo the request
// body (as real APIs do, to test scrubbing), delays and per-key failures.
package vercelfake

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rotorhq/rotor/internal/target/webapi/fakefaults"
)

// Options configure a fake. Zero values get usable defaults.
type Options struct {
	// Token is the only token allowed to read and write. Default
	// "vercel-test-token".
	Token string
	// ReadOnlyToken, when set, may read but every write answers 403, like
	// a token whose scope lacks write access.
	ReadOnlyToken string
	// ProjectID and ProjectName name the one project. Defaults prj_rotor
	// and rotor-app.
	ProjectID   string
	ProjectName string
	// TeamID makes the project a team project: requests without
	// ?teamId=TeamID do not find it.
	TeamID string
	// Now is the fake's clock (createdAt, updatedAt). Default time.Now.
	Now func() time.Time
	// PageSize is how many variables a page of the env list holds when the
	// request has no limit. Default 20, Vercel's documented default.
	PageSize int
}

// DefaultPageSize is Vercel's documented default page size, and
// MaxPageSize the largest limit it accepts.
const (
	DefaultPageSize = 20
	MaxPageSize     = 100
)

// Env is one environment variable, with its plaintext value.
type Env struct {
	ID        string
	Key       string
	Value     string
	Type      string
	Target    []string
	GitBranch string
	// CreatedAt (ms) orders the env list and is what its pagination cursor
	// counts in. The fake sets it, distinct for every variable.
	CreatedAt int64
	UpdatedAt int64
}

// Deployment is one deployment of the project.
type Deployment struct {
	UID    string
	Name   string
	Target string
	// State is the readyState.
	State string
	// Substate is the readySubstate of a READY deployment: STAGED,
	// ROLLING or PROMOTED.
	Substate string
	// AliasAssigned reports whether the deployment's aliases (for
	// production: the production domains) are assigned to it.
	AliasAssigned bool
	// AutoAssign is autoAssignCustomDomains: false for a staged production
	// deployment.
	AutoAssign bool
	// RedeployOf is the deployment this one was created from, if any.
	RedeployOf string
	// Env is what a redeploy saw: the production values at the time it
	// was created, by key.
	Env map[string]string
	// Reads counts the GET /v13/deployments/{id} answered for it.
	Reads int

	build    Build
	finished bool
}

// Build is how the deployments POST /v13/deployments creates progress.
// The zero value is a deployment that answers QUEUED when created and is
// READY and serving production at the first read.
type Build struct {
	// States are the readyStates the deployment passes through: the first
	// is what the create call answers, the last is final (READY, ERROR or
	// CANCELED). Default [QUEUED, READY].
	States []string
	// Polls is how many reads of GET /v13/deployments/{id} each state
	// after the first lasts; the first read already sees the second state.
	// Default 1.
	Polls int
	// AliasPolls is how many reads of a READY production deployment still
	// show aliasAssigned: false and readySubstate STAGED while Vercel
	// assigns the production domains. Default 0.
	AliasPolls int
	// Staged makes a READY production deployment stay unassigned: the
	// project does not auto-assign its production domains, so
	// autoAssignCustomDomains is false and it waits to be promoted.
	Staged bool
	// AliasError, when set, is the aliasError code of a READY deployment
	// whose aliases could not be assigned.
	AliasError string
	// ErrorCode and ErrorMessage describe an ERROR ending, as Vercel's
	// errorCode and errorMessage do.
	ErrorCode, ErrorMessage string
}

func (b Build) withDefaults() Build {
	if len(b.States) == 0 {
		b.States = []string{"QUEUED", "READY"}
	}
	if b.Polls <= 0 {
		b.Polls = 1
	}
	b.States = slices.Clone(b.States)
	return b
}

// Request is one request the fake received.
type Request struct {
	Method string
	Path   string
	Query  url.Values
}

// Server is a running fake.
type Server struct {
	URL  string
	opts Options

	fakefaults.Faults

	mu          sync.Mutex
	pageSize    int
	lastCreated int64
	envs        []*Env
	deployments []*Deployment
	nextID      int
	requests    []Request
	failKeys    map[string][2]string
	build       Build
}

// New starts a fake that is closed when t ends.
func New(t testing.TB, opts Options) *Server {
	t.Helper()
	if opts.Token == "" {
		opts.Token = "vercel-test-token"
	}
	if opts.ProjectID == "" {
		opts.ProjectID = "prj_rotor"
	}
	if opts.ProjectName == "" {
		opts.ProjectName = "rotor-app"
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.PageSize <= 0 {
		opts.PageSize = DefaultPageSize
	}
	s := &Server{opts: opts, pageSize: opts.PageSize, failKeys: map[string][2]string{}, build: Build{}.withDefaults()}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v10/projects/{project}/env", s.listEnvs)
	mux.HandleFunc("POST /v10/projects/{project}/env", s.createEnvs)
	mux.HandleFunc("GET /v1/projects/{project}/env/{id}", s.getEnv)
	mux.HandleFunc("GET /v7/deployments", s.listDeployments)
	mux.HandleFunc("POST /v13/deployments", s.createDeployment)
	mux.HandleFunc("GET /v13/deployments/{idOrUrl}", s.getDeployment)
	srv := httptest.NewServer(s.middleware(mux))
	t.Cleanup(srv.Close)
	s.URL = srv.URL
	return s
}

// Token returns the token the fake accepts.
func (s *Server) Token() string { return s.opts.Token }

// ProjectID returns the project's id.
func (s *Server) ProjectID() string { return s.opts.ProjectID }

// FailKey makes every upsert of key land in the 201's `failed` list with
// code and message, the way Vercel reports per-variable failures.
func (s *Server) FailKey(key, code, message string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failKeys[key] = [2]string{code, message}
}

// SetPageSize changes how many variables a page of the env list holds
// when the request has no limit (1 to MaxPageSize).
func (s *Server) SetPageSize(n int) {
	if n < 1 || n > MaxPageSize {
		panic(fmt.Sprintf("vercelfake: page size %d is not between 1 and %d", n, MaxPageSize))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pageSize = n
}

// SeedEnv stores a variable as if someone had created it, and returns its
// id. Each seeded variable is newer than the ones before it, so it is
// listed before them: seed first what should sit on the last page.
func (s *Server) SeedEnv(e Env) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e.Type == "" {
		e.Type = "encrypted"
	}
	e.ID = s.newID("env")
	e.CreatedAt = s.newCreatedAt()
	e.UpdatedAt = s.opts.Now().UnixMilli()
	s.envs = append(s.envs, &e)
	return e.ID
}

// Env returns the variable named key that applies to environment, with
// its plaintext value.
func (s *Server) Env(key, environment string) (Env, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, e := range s.envs {
		if e.Key == key && e.GitBranch == "" && slices.Contains(e.Target, environment) {
			c := *e
			c.Target = slices.Clone(e.Target)
			return c, true
		}
	}
	return Env{}, false
}

// Envs returns every variable.
func (s *Server) Envs() []Env {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Env, len(s.envs))
	for i, e := range s.envs {
		out[i] = *e
		out[i].Target = slices.Clone(e.Target)
	}
	return out
}

// AddDeployment records a deployment of the project. A READY production
// deployment is the one serving production (PROMOTED, aliases assigned).
func (s *Server) AddDeployment(uid, target, state string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := &Deployment{UID: uid, Name: s.opts.ProjectName, Target: target, AutoAssign: true, build: Build{States: []string{state}}.withDefaults()}
	s.settle(d)
	s.deployments = append(s.deployments, d)
}

// SetBuild sets how deployments created from now on progress.
func (s *Server) SetBuild(b Build) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.build = b.withDefaults()
}

// Finish moves a deployment to its build's final state at once, as if
// the build had ended.
func (s *Server) Finish(uid string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, d := range s.deployments {
		if d.UID == uid {
			d.finished = true
			s.settle(d)
		}
	}
}

// Deployments returns every deployment, oldest first.
func (s *Server) Deployments() []Deployment {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Deployment, len(s.deployments))
	for i, d := range s.deployments {
		out[i] = *d
	}
	return out
}

// Requests returns every request received, in order.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.requests)
}

// Writes returns the requests that were not reads.
func (s *Server) Writes() []Request {
	var out []Request
	for _, r := range s.Requests() {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			out = append(out, r)
		}
	}
	return out
}

func (s *Server) middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(strings.NewReader(string(body)))
		s.mu.Lock()
		s.requests = append(s.requests, Request{Method: r.Method, Path: r.URL.Path, Query: r.URL.Query()})
		s.mu.Unlock()
		if !s.Delay(r) {
			return
		}

		auth := r.Header.Get("Authorization")
		readOnly := s.opts.ReadOnlyToken != "" && auth == "Bearer "+s.opts.ReadOnlyToken
		if auth != "Bearer "+s.opts.Token && !readOnly {
			writeError(w, http.StatusUnauthorized, "unauthorized", "The request is not authorized.")
			return
		}

		v := s.Next()
		limited, failing, status := v.Limited, v.Fail, v.Status
		retryAfter := v.Wait
		if limited {
			w.Header().Set("Retry-After", strconv.Itoa(int(retryAfter/time.Second)))
			writeError(w, http.StatusTooManyRequests, "rate_limited", "Rate limit exceeded")
			return
		}
		if failing {
			writeError(w, status, "internal_server_error", "An unexpected error occurred while handling "+string(body))
			return
		}
		if readOnly && r.Method != http.MethodGet {
			writeError(w, http.StatusForbidden, "forbidden", "You don't have permission to perform this action. The token's scope is read-only.")
			return
		}
		if s.opts.TeamID != "" && r.URL.Query().Get("teamId") != s.opts.TeamID {
			writeError(w, http.StatusNotFound, "not_found", "Project not found")
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (s *Server) project(w http.ResponseWriter, idOrName string) bool {
	if idOrName == s.opts.ProjectID || idOrName == s.opts.ProjectName {
		return true
	}
	writeError(w, http.StatusNotFound, "not_found", "Project not found")
	return false
}

type envJSON struct {
	ID        string   `json:"id"`
	Key       string   `json:"key"`
	Value     string   `json:"value,omitempty"`
	Type      string   `json:"type"`
	Target    []string `json:"target"`
	GitBranch string   `json:"gitBranch,omitempty"`
	Decrypted bool     `json:"decrypted"`
	CreatedAt int64    `json:"createdAt"`
	UpdatedAt int64    `json:"updatedAt"`
}

// listed is how a variable appears in a list: encrypted values stay
// encrypted, sensitive ones are absent.
func listed(e *Env) envJSON {
	j := envJSON{ID: e.ID, Key: e.Key, Type: e.Type, Target: e.Target, GitBranch: e.GitBranch, CreatedAt: e.CreatedAt, UpdatedAt: e.UpdatedAt}
	switch e.Type {
	case "plain":
		j.Value, j.Decrypted = e.Value, true
	case "sensitive":
	default:
		sum := sha256.Sum256([]byte(e.ID + strconv.FormatInt(e.UpdatedAt, 10)))
		j.Value = "enc:" + hex.EncodeToString(sum[:12])
	}
	return j
}

func (s *Server) listEnvs(w http.ResponseWriter, r *http.Request) {
	if !s.project(w, r.PathValue("project")) {
		return
	}
	q := r.URL.Query()
	s.mu.Lock()
	limit := s.pageSize
	s.mu.Unlock()
	if q.Has("limit") {
		n, err := strconv.Atoi(q.Get("limit"))
		if err != nil || n < 1 || n > MaxPageSize {
			writeError(w, http.StatusBadRequest, "bad_request", fmt.Sprintf("Invalid request: query.limit should be an integer from 1 to %d", MaxPageSize))
			return
		}
		limit = n
	}
	var until int64
	if q.Has("until") {
		n, err := strconv.ParseInt(q.Get("until"), 10, 64)
		if err != nil || n <= 0 {
			writeError(w, http.StatusBadRequest, "bad_request", "Invalid request: query.until should be a timestamp in milliseconds")
			return
		}
		until = n
	}

	s.mu.Lock()
	all := make([]envJSON, len(s.envs))
	for i, e := range s.envs {
		all[i] = listed(e)
	}
	s.mu.Unlock()
	slices.SortFunc(all, func(a, b envJSON) int { return cmp.Compare(b.CreatedAt, a.CreatedAt) })
	total := len(all)
	rest := all
	if until != 0 {
		rest = slices.DeleteFunc(slices.Clone(all), func(e envJSON) bool { return e.CreatedAt >= until })
	}
	page := rest[:min(limit, len(rest))]
	body := map[string]any{"envs": page}
	if total > limit {
		var next, prev any
		if len(rest) > len(page) {
			next = page[len(page)-1].CreatedAt
		}
		if until != 0 && len(page) > 0 {
			prev = page[0].CreatedAt
		}
		body["pagination"] = map[string]any{"count": len(page), "next": next, "prev": prev}
	}
	writeJSON(w, http.StatusOK, body)
}

func (s *Server) getEnv(w http.ResponseWriter, r *http.Request) {
	if !s.project(w, r.PathValue("project")) {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, e := range s.envs {
		if e.ID != r.PathValue("id") {
			continue
		}
		j := listed(e)
		if e.Type != "sensitive" {
			j.Value, j.Decrypted = e.Value, true
		}
		writeJSON(w, http.StatusOK, j)
		return
	}
	writeError(w, http.StatusNotFound, "not_found", "Environment Variable not found")
}

type createItem struct {
	Key       string   `json:"key"`
	Value     *string  `json:"value"`
	Type      string   `json:"type"`
	Target    []string `json:"target"`
	GitBranch string   `json:"gitBranch"`
}

func (s *Server) createEnvs(w http.ResponseWriter, r *http.Request) {
	if !s.project(w, r.PathValue("project")) {
		return
	}
	raw, _ := io.ReadAll(r.Body)
	var items []createItem
	isList := strings.HasPrefix(strings.TrimSpace(string(raw)), "[")
	var err error
	if isList {
		err = json.Unmarshal(raw, &items)
	} else {
		var one createItem
		err = json.Unmarshal(raw, &one)
		items = []createItem{one}
	}
	if err != nil || len(items) == 0 {
		writeError(w, http.StatusBadRequest, "bad_request", "Invalid request: the body must be an environment variable or a list of them")
		return
	}
	for _, it := range items {
		if msg := invalid(it); msg != "" {
			writeError(w, http.StatusBadRequest, "bad_request", "Invalid request: "+msg)
			return
		}
	}
	upsert := r.URL.Query().Get("upsert") == "true"

	s.mu.Lock()
	defer s.mu.Unlock()
	created := []envJSON{}
	failed := []map[string]any{}
	for _, it := range items {
		fail := func(code, msg string) {
			failed = append(failed, map[string]any{"error": map[string]any{
				"code": code, "message": msg, "key": it.Key, "envVarKey": it.Key,
				"value": *it.Value, "target": it.Target, "action": "create",
			}})
		}
		if f, ok := s.failKeys[it.Key]; ok {
			fail(f[0], f[1])
			continue
		}
		if it.Type == "sensitive" && slices.Contains(it.Target, "development") {
			fail("bad_request", "Sensitive Environment Variables cannot be created in the Development environment")
			continue
		}
		var clash []*Env
		for _, e := range s.envs {
			if e.Key == it.Key && e.GitBranch == it.GitBranch && overlaps(e.Target, it.Target) {
				clash = append(clash, e)
			}
		}
		switch {
		case len(clash) > 0 && !upsert:
			writeError(w, http.StatusBadRequest, "ENV_CONFLICT", fmt.Sprintf("A variable with the name `%s` already exists for the target %s", it.Key, strings.Join(clash[0].Target, ",")))
			return
		case len(clash) > 1:
			fail("ENV_CONFLICT", fmt.Sprintf("More than one variable named `%s` overlaps the given targets", it.Key))
			continue
		case len(clash) == 1:
			e := clash[0]
			e.Value, e.Type, e.Target, e.UpdatedAt = *it.Value, it.Type, slices.Clone(it.Target), s.opts.Now().UnixMilli()
			created = append(created, listed(e))
		default:
			e := &Env{ID: s.newID("env"), Key: it.Key, Value: *it.Value, Type: it.Type, Target: slices.Clone(it.Target), GitBranch: it.GitBranch, CreatedAt: s.newCreatedAt(), UpdatedAt: s.opts.Now().UnixMilli()}
			s.envs = append(s.envs, e)
			created = append(created, listed(e))
		}
	}
	var c any = created
	if !isList && len(created) == 1 {
		c = created[0]
	}
	writeJSON(w, http.StatusCreated, map[string]any{"created": c, "failed": failed})
}

func invalid(it createItem) string {
	switch {
	case it.Key == "":
		return "`key` is required"
	case it.Value == nil:
		return "`value` is required"
	case len(it.Target) == 0:
		return "`target` must list at least one environment"
	}
	switch it.Type {
	case "encrypted", "sensitive", "plain", "system":
	default:
		return "`type` must be one of encrypted, sensitive, plain, system"
	}
	for _, t := range it.Target {
		if t != "production" && t != "preview" && t != "development" {
			return "`target` holds an unknown environment"
		}
	}
	if it.GitBranch != "" && !slices.Equal(it.Target, []string{"preview"}) {
		return "`gitBranch` is only allowed for preview"
	}
	return ""
}

func overlaps(a, b []string) bool {
	return slices.ContainsFunc(a, func(x string) bool { return slices.Contains(b, x) })
}

type deploymentJSON struct {
	UID        string `json:"uid"`
	ID         string `json:"id"`
	Name       string `json:"name"`
	URL        string `json:"url"`
	State      string `json:"state"`
	ReadyState string `json:"readyState"`
	Target     string `json:"target"`
}

func (s *Server) deploymentJSON(d *Deployment) deploymentJSON {
	return deploymentJSON{UID: d.UID, ID: d.UID, Name: d.Name, URL: s.deploymentURL(d), State: d.State, ReadyState: d.State, Target: d.Target}
}

func (s *Server) deploymentURL(d *Deployment) string {
	return d.UID + "-" + s.opts.ProjectName + ".vercel.app"
}

// settle puts d in the state its build has reached after d.Reads reads:
// the first state when created, one state on per build.Polls reads, and
// for a production deployment that ends READY, the alias assignment
// build.AliasPolls reads later. s.mu must be held.
func (s *Server) settle(d *Deployment) {
	b := d.build
	last := len(b.States) - 1
	index, aliasReads := 0, 0
	if d.Reads > 0 {
		index = 1 + (d.Reads-1)/b.Polls
		aliasReads = d.Reads - 1 - (last-1)*b.Polls
	}
	if d.finished {
		index, aliasReads = last, b.AliasPolls
	}
	d.State = b.States[min(index, last)]
	d.Substate, d.AliasAssigned = "", false
	if d.State != "READY" {
		return
	}
	switch {
	case d.Target != "production":
		d.AliasAssigned = true
	case b.Staged:
		d.Substate, d.AutoAssign = "STAGED", false
	case b.AliasError != "" || aliasReads < b.AliasPolls:
		d.Substate = "STAGED"
	default:
		d.Substate, d.AliasAssigned = "PROMOTED", true
	}
}

// getDeployment answers GET /v13/deployments/{idOrUrl}; each read moves
// a deployment on along its build.
func (s *Server) getDeployment(w http.ResponseWriter, r *http.Request) {
	key := r.PathValue("idOrUrl")
	s.mu.Lock()
	defer s.mu.Unlock()
	var d *Deployment
	for _, c := range s.deployments {
		if c.UID == key || s.deploymentURL(c) == key {
			d = c
		}
	}
	if d == nil {
		writeError(w, http.StatusNotFound, "not_found", "The deployment could not be found.")
		return
	}
	d.Reads++
	s.settle(d)
	body := map[string]any{
		"id": d.UID, "name": d.Name, "url": s.deploymentURL(d), "projectId": s.opts.ProjectID,
		"readyState": d.State, "status": d.State, "target": d.Target,
		"aliasAssigned": d.AliasAssigned, "aliasError": nil,
		"autoAssignCustomDomains": d.AutoAssign, "createdAt": s.opts.Now().UnixMilli(),
	}
	if d.State == "READY" {
		body["readySubstate"] = d.Substate
		if d.build.AliasError != "" && d.Target == "production" {
			body["aliasError"] = map[string]any{"code": d.build.AliasError, "message": "The production domains could not be assigned to this deployment."}
		}
	}
	if d.State == "ERROR" {
		body["errorCode"], body["errorMessage"] = d.build.ErrorCode, d.build.ErrorMessage
	}
	writeJSON(w, http.StatusOK, body)
}

func (s *Server) listDeployments(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if p := q.Get("projectId"); p != "" && p != s.opts.ProjectID && p != s.opts.ProjectName {
		writeError(w, http.StatusNotFound, "not_found", "Project not found")
		return
	}
	limit := 20
	if l, err := strconv.Atoi(q.Get("limit")); err == nil && l > 0 {
		limit = l
	}
	s.mu.Lock()
	out := []deploymentJSON{}
	for i := len(s.deployments) - 1; i >= 0 && len(out) < limit; i-- {
		d := s.deployments[i]
		if (q.Get("target") == "" || q.Get("target") == d.Target) && (q.Get("state") == "" || q.Get("state") == d.State) {
			out = append(out, s.deploymentJSON(d))
		}
	}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"deployments": out, "pagination": map[string]any{"count": len(out), "next": nil, "prev": nil}})
}

func (s *Server) createDeployment(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Name         string `json:"name"`
		Project      string `json:"project"`
		DeploymentID string `json:"deploymentId"`
		Target       string `json:"target"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil || body.Name == "" {
		writeError(w, http.StatusBadRequest, "bad_request", "Invalid request: `name` is required")
		return
	}
	if body.Project != "" && body.Project != s.opts.ProjectID && body.Project != s.opts.ProjectName {
		writeError(w, http.StatusNotFound, "not_found", "Project not found")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var from *Deployment
	for _, d := range s.deployments {
		if d.UID == body.DeploymentID {
			from = d
		}
	}
	if body.DeploymentID != "" && from == nil {
		writeError(w, http.StatusNotFound, "not_found", "Deployment not found")
		return
	}
	d := &Deployment{UID: s.newID("dpl"), Name: body.Name, Target: body.Target, RedeployOf: body.DeploymentID, Env: map[string]string{}, AutoAssign: true, build: s.build}
	if d.Target == "" {
		d.Target = "preview"
	}
	s.settle(d)
	for _, e := range s.envs {
		if e.GitBranch == "" && slices.Contains(e.Target, d.Target) {
			d.Env[e.Key] = e.Value
		}
	}
	s.deployments = append(s.deployments, d)
	writeJSON(w, http.StatusOK, s.deploymentJSON(d))
}

// newCreatedAt is the clock in milliseconds, moved on past the previous
// variable's so that every createdAt, and so every page cursor, is
// distinct even with a frozen clock. s.mu must be held.
func (s *Server) newCreatedAt() int64 {
	ms := s.opts.Now().UnixMilli()
	if ms <= s.lastCreated {
		ms = s.lastCreated + 1
	}
	s.lastCreated = ms
	return ms
}

func (s *Server) newID(prefix string) string {
	s.nextID++
	return fmt.Sprintf("%s_%04d", prefix, s.nextID)
}

func writeError(w http.ResponseWriter, status int, code, message string) {
	writeJSON(w, status, map[string]any{"error": map[string]any{"code": code, "message": message}})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
