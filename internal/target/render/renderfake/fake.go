// Package renderfake is an httptest contract fake of the parts of Render's
// REST API the render target uses. It follows
// /work/shared/reference/targets-api.md §2 "Render":
//
//   - auth: Authorization: Bearer <apiKey>; anything else gets 401 with the
//     documented error body {"id","message"};
//   - PUT /v1/services/{id}/env-vars/{key} {"value"} (or
//     {"generateValue":true}) adds or updates one variable and answers 200
//     {"key","value"}; the same for /v1/env-groups/{id}/env-vars/{key};
//   - PUT /v1/services/{id}/env-vars (no key) REPLACES every variable of the
//     service, as documented; it is implemented so that a test can prove
//     it is never called;
//   - GET …/env-vars/{key} returns {"key","value"}; GET
//     /v1/services/{id}/env-vars?limit&cursor returns
//     [{"envVar":{key,value},"cursor"}];
//   - POST /v1/services/{id}/deploys {"clearCache","deployMode"?} answers
//     201 with a deploy, or 202 with no body when queued;
//   - GET /v1/services/{id}/deploys/{deployId} returns one deploy (404 when
//     there is none) and GET /v1/services/{id}/deploys?status&limit&cursor
//     lists them, newest first, as [{"deploy","cursor"}], status being
//     repeated for several (form style, explode, as Render's OpenAPI
//     client sends it). A deploy's status is one of Render's deployStatus
//     values (render-oss/cli pkg/client/types_gen.go): queued, created,
//     build_in_progress, update_in_progress, pre_deploy_in_progress, live,
//     deactivated, build_failed, update_failed, pre_deploy_failed,
//     canceled. A new deploy moves through the statuses of the fake's
//     Progress, one status per Progress.Polls reads of it, so a test
//     decides how long a deploy takes; a deploy answered 202 waits queued
//     first. When a deploy goes live, the service's earlier live deploy
//     becomes deactivated;
//   - 429 carries Ratelimit-Limit, Ratelimit-Remaining and Ratelimit-Reset
//     (UTC epoch seconds).
//
// GET /v1/services/{id} and GET /v1/env-groups/{id} (retrieve a service or
// a group) answer what the target's Validate needs.
//
// The state (plaintext values, deploys and what each deploy saw) is
// inspectable; knobs inject rate limits, 5xx answers that echo the request
// body, delays and queued deploys.
package renderfake

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
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
	// Token is the accepted API key. Default "render-test-key".
	Token string
	// Now is the fake's clock, used for Ratelimit-Reset. Default time.Now.
	Now func() time.Time
}

// Deploy is one deploy of a service.
type Deploy struct {
	ID         string
	ClearCache string
	DeployMode string
	Queued     bool
	// Env is what the deploy saw: the service's variables merged over
	// those of its linked environment groups.
	Env map[string]string
	// Status is the deploy's status now.
	Status string
	// Reads counts the GET …/deploys/{deployId} answered for it.
	Reads int

	progress Progress
	created  time.Time
	finished bool
}

// Progress is how the deploys POST …/deploys creates move on. The zero
// value is a deploy that is created when triggered and live at the first
// read.
type Progress struct {
	// Statuses the deploy passes through: the first is what the trigger
	// answers, the last is final (live, or a failure). Default [created,
	// live]. A deploy answered 202 is queued before the first.
	Statuses []string
	// Polls is how many reads of the deploy each status after the first
	// lasts; the first read already sees the second. Default 1.
	Polls int
}

func (p Progress) withDefaults(queued bool) Progress {
	if len(p.Statuses) == 0 {
		p.Statuses = []string{"created", "live"}
	}
	if p.Polls <= 0 {
		p.Polls = 1
	}
	p.Statuses = slices.Clone(p.Statuses)
	if queued {
		p.Statuses = append([]string{"queued"}, p.Statuses...)
	}
	return p
}

// Request is one request the fake received.
type Request struct {
	Method string
	Path   string
}

type vars struct {
	keys   []string
	values map[string]string
}

func (v *vars) set(key, value string) {
	if _, ok := v.values[key]; !ok {
		v.keys = append(v.keys, key)
	}
	v.values[key] = value
}

type service struct {
	id, name string
	vars     vars
	groups   []string
	deploys  []Deploy
}

type group struct {
	id, name string
	vars     vars
}

// Server is a running fake.
type Server struct {
	URL  string
	opts Options

	fakefaults.Faults

	mu           sync.Mutex
	services     map[string]*service
	groups       map[string]*group
	requests     []Request
	nextID       int
	queueDeploys bool
	progress     Progress
	progressOf   map[string]Progress
}

// New starts a fake that is closed when t ends.
func New(t testing.TB, opts Options) *Server {
	t.Helper()
	if opts.Token == "" {
		opts.Token = "render-test-key"
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	s := &Server{opts: opts, services: map[string]*service{}, groups: map[string]*group{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/services/{id}", s.getService)
	mux.HandleFunc("GET /v1/services/{id}/env-vars", s.listServiceVars)
	mux.HandleFunc("PUT /v1/services/{id}/env-vars", s.replaceServiceVars)
	mux.HandleFunc("GET /v1/services/{id}/env-vars/{key}", s.getVar)
	mux.HandleFunc("PUT /v1/services/{id}/env-vars/{key}", s.putVar)
	mux.HandleFunc("POST /v1/services/{id}/deploys", s.deploy)
	mux.HandleFunc("GET /v1/services/{id}/deploys", s.listDeploys)
	mux.HandleFunc("GET /v1/services/{id}/deploys/{deployId}", s.getDeploy)
	mux.HandleFunc("GET /v1/env-groups/{id}", s.getGroup)
	mux.HandleFunc("GET /v1/env-groups/{id}/env-vars/{key}", s.getVar)
	mux.HandleFunc("PUT /v1/env-groups/{id}/env-vars/{key}", s.putVar)
	srv := httptest.NewServer(s.middleware(mux))
	t.Cleanup(srv.Close)
	s.URL = srv.URL
	return s
}

// Token returns the API key the fake accepts.
func (s *Server) Token() string { return s.opts.Token }

// AddService creates a service.
func (s *Server) AddService(id, name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.services[id] = &service{id: id, name: name, vars: vars{values: map[string]string{}}}
}

// AddEnvGroup creates an environment group linked to services.
func (s *Server) AddEnvGroup(id, name string, linked ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.groups[id] = &group{id: id, name: name, vars: vars{values: map[string]string{}}}
	for _, l := range linked {
		if svc, ok := s.services[l]; ok {
			svc.groups = append(svc.groups, id)
		}
	}
}

// Seed sets a variable directly on a service or group (by id).
func (s *Server) Seed(id, key, value string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if v := s.varsOf(id); v != nil {
		v.set(key, value)
	}
}

// Var returns a variable's plaintext value on a service or group (by id).
func (s *Server) Var(id, key string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v := s.varsOf(id)
	if v == nil {
		return "", false
	}
	val, ok := v.values[key]
	return val, ok
}

// Keys returns the variable names of a service or group, in creation order.
func (s *Server) Keys(id string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if v := s.varsOf(id); v != nil {
		return slices.Clone(v.keys)
	}
	return nil
}

// Deploys returns a service's deploys, oldest first.
func (s *Server) Deploys(serviceID string) []Deploy {
	s.mu.Lock()
	defer s.mu.Unlock()
	if svc, ok := s.services[serviceID]; ok {
		return slices.Clone(svc.deploys)
	}
	return nil
}

// QueueDeploys makes deploys answer 202 (queued, no deploy yet).
func (s *Server) QueueDeploys(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.queueDeploys = on
}

// SetProgress sets how deploys triggered from now on move on.
func (s *Server) SetProgress(p Progress) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.progress = p
}

// SetServiceProgress sets how one service's deploys triggered from now on
// move on, overriding SetProgress for it.
func (s *Server) SetServiceProgress(serviceID string, p Progress) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.progressOf == nil {
		s.progressOf = map[string]Progress{}
	}
	s.progressOf[serviceID] = p
}

// Finish moves a deploy to its final status at once, as if it had ended.
func (s *Server) Finish(serviceID, deployID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if svc, ok := s.services[serviceID]; ok {
		for i := range svc.deploys {
			if svc.deploys[i].ID == deployID {
				svc.deploys[i].finished = true
				s.settle(svc, i)
			}
		}
	}
}

// settle puts svc.deploys[i] in the status its progress has reached after
// its reads; a deploy that goes live deactivates the one live before it.
// s.mu must be held.
func (s *Server) settle(svc *service, i int) {
	d := &svc.deploys[i]
	p := d.progress
	last := len(p.Statuses) - 1
	index := 0
	if d.Reads > 0 {
		index = 1 + (d.Reads-1)/p.Polls
	}
	if d.finished {
		index = last
	}
	was := d.Status
	d.Status = p.Statuses[min(index, last)]
	if d.Status == "live" && was != "live" {
		for j := range svc.deploys {
			if j != i && svc.deploys[j].Status == "live" {
				svc.deploys[j].Status = "deactivated"
			}
		}
	}
}

func (s *Server) deployJSON(d Deploy) map[string]any {
	at := d.created.UTC().Format(time.RFC3339)
	out := map[string]any{"id": d.ID, "status": d.Status, "trigger": "api", "createdAt": at, "updatedAt": s.opts.Now().UTC().Format(time.RFC3339)}
	switch d.Status {
	case "live", "deactivated", "build_failed", "update_failed", "pre_deploy_failed", "canceled":
		out["finishedAt"] = out["updatedAt"]
	}
	return out
}

// getDeploy answers GET /v1/services/{id}/deploys/{deployId}; each read
// moves the deploy on along its progress.
func (s *Server) getDeploy(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	svc, ok := s.services[r.PathValue("id")]
	if !ok {
		writeError(w, http.StatusNotFound, "service not found")
		return
	}
	for i := range svc.deploys {
		if svc.deploys[i].ID == r.PathValue("deployId") {
			svc.deploys[i].Reads++
			s.settle(svc, i)
			writeJSON(w, http.StatusOK, s.deployJSON(svc.deploys[i]))
			return
		}
	}
	writeError(w, http.StatusNotFound, "deploy not found")
}

// listDeploys answers GET /v1/services/{id}/deploys: newest first,
// filtered by status (repeated, or comma-separated), limit 20 by default.
func (s *Server) listDeploys(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	var want []string
	for _, v := range q["status"] {
		want = append(want, strings.Split(v, ",")...)
	}
	limit := 20
	if q.Has("limit") {
		n, err := strconv.Atoi(q.Get("limit"))
		if err != nil || n < 1 || n > 100 {
			writeError(w, http.StatusBadRequest, "limit must be an integer from 1 to 100")
			return
		}
		limit = n
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	svc, ok := s.services[r.PathValue("id")]
	if !ok {
		writeError(w, http.StatusNotFound, "service not found")
		return
	}
	out := []map[string]any{}
	for i := len(svc.deploys) - 1; i >= 0 && len(out) < limit; i-- {
		d := svc.deploys[i]
		if len(want) == 0 || slices.Contains(want, d.Status) {
			out = append(out, map[string]any{"deploy": s.deployJSON(d), "cursor": d.ID})
		}
	}
	writeJSON(w, http.StatusOK, out)
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
		if r.Method != http.MethodGet {
			out = append(out, r)
		}
	}
	return out
}

func (s *Server) varsOf(id string) *vars {
	if svc, ok := s.services[id]; ok {
		return &svc.vars
	}
	if g, ok := s.groups[id]; ok {
		return &g.vars
	}
	return nil
}

func (s *Server) middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(strings.NewReader(string(body)))
		s.mu.Lock()
		s.requests = append(s.requests, Request{Method: r.Method, Path: r.URL.Path})
		s.mu.Unlock()
		if !s.Delay(r) {
			return
		}
		if r.Header.Get("Authorization") != "Bearer "+s.opts.Token {
			writeError(w, http.StatusUnauthorized, "unauthorized")
			return
		}
		v := s.Next()
		limited, failing, status := v.Limited, v.Fail, v.Status
		reset := s.opts.Now().Add(v.Wait).Unix()
		w.Header().Set("Ratelimit-Limit", "30")
		if limited {
			w.Header().Set("Ratelimit-Remaining", "0")
			w.Header().Set("Ratelimit-Reset", strconv.FormatInt(reset, 10))
			writeError(w, http.StatusTooManyRequests, "rate limit exceeded")
			return
		}
		if failing {
			writeError(w, status, "internal error while processing "+string(body))
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (s *Server) getService(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	svc, ok := s.services[r.PathValue("id")]
	if !ok {
		writeError(w, http.StatusNotFound, "service not found")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"id": svc.id, "name": svc.name, "type": "web_service"})
}

func (s *Server) getGroup(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	g, ok := s.groups[r.PathValue("id")]
	if !ok {
		writeError(w, http.StatusNotFound, "environment group not found")
		return
	}
	envVars := []map[string]string{}
	for _, k := range g.vars.keys {
		envVars = append(envVars, map[string]string{"key": k, "value": g.vars.values[k]})
	}
	links := []map[string]string{}
	for _, svc := range s.services {
		if slices.Contains(svc.groups, g.id) {
			links = append(links, map[string]string{"id": svc.id, "name": svc.name})
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"id": g.id, "name": g.name, "envVars": envVars, "serviceLinks": links})
}

// owner finds the service or group the path names, answering 404 if none.
func (s *Server) owner(w http.ResponseWriter, r *http.Request) *vars {
	id := r.PathValue("id")
	if strings.HasPrefix(r.URL.Path, "/v1/services/") {
		if svc, ok := s.services[id]; ok {
			return &svc.vars
		}
		writeError(w, http.StatusNotFound, "service not found")
		return nil
	}
	if g, ok := s.groups[id]; ok {
		return &g.vars
	}
	writeError(w, http.StatusNotFound, "environment group not found")
	return nil
}

func (s *Server) listServiceVars(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v := s.owner(w, r)
	if v == nil {
		return
	}
	limit := 20
	if l, err := strconv.Atoi(r.URL.Query().Get("limit")); err == nil && l > 0 && l <= 100 {
		limit = l
	}
	start := 0
	if c := r.URL.Query().Get("cursor"); c != "" {
		start = slices.Index(v.keys, c) + 1
	}
	out := []map[string]any{}
	for _, k := range v.keys[start:min(start+limit, len(v.keys))] {
		out = append(out, map[string]any{"envVar": map[string]string{"key": k, "value": v.values[k]}, "cursor": k})
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) replaceServiceVars(w http.ResponseWriter, r *http.Request) {
	var body []struct {
		Key   string `json:"key"`
		Value string `json:"value"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		writeError(w, http.StatusBadRequest, "the body must be a list of {key, value}")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	v := s.owner(w, r)
	if v == nil {
		return
	}
	*v = vars{values: map[string]string{}}
	out := []map[string]any{}
	for _, e := range body {
		v.set(e.Key, e.Value)
		out = append(out, map[string]any{"envVar": map[string]string{"key": e.Key, "value": e.Value}, "cursor": e.Key})
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) getVar(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v := s.owner(w, r)
	if v == nil {
		return
	}
	key := r.PathValue("key")
	val, ok := v.values[key]
	if !ok {
		writeError(w, http.StatusNotFound, "environment variable not found")
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"key": key, "value": val})
}

func (s *Server) putVar(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Value         *string `json:"value"`
		GenerateValue bool    `json:"generateValue"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil || (body.Value == nil && !body.GenerateValue) {
		writeError(w, http.StatusBadRequest, "one of value or generateValue is required")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	v := s.owner(w, r)
	if v == nil {
		return
	}
	key := r.PathValue("key")
	value := ""
	if body.Value != nil {
		value = *body.Value
	} else {
		s.nextID++
		value = fmt.Sprintf("generated-%08d", s.nextID)
	}
	v.set(key, value)
	writeJSON(w, http.StatusOK, map[string]string{"key": key, "value": value})
}

func (s *Server) deploy(w http.ResponseWriter, r *http.Request) {
	var body struct {
		ClearCache string `json:"clearCache"`
		DeployMode string `json:"deployMode"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil && err != io.EOF {
		writeError(w, http.StatusBadRequest, "invalid JSON body")
		return
	}
	switch body.ClearCache {
	case "", "clear", "do_not_clear":
	default:
		writeError(w, http.StatusBadRequest, "clearCache must be clear or do_not_clear")
		return
	}
	switch body.DeployMode {
	case "", "deploy_only", "build_and_deploy":
	default:
		writeError(w, http.StatusBadRequest, "deployMode must be deploy_only or build_and_deploy")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	svc, ok := s.services[r.PathValue("id")]
	if !ok {
		writeError(w, http.StatusNotFound, "service not found")
		return
	}
	env := map[string]string{}
	for _, gid := range svc.groups {
		if g, ok := s.groups[gid]; ok {
			for k, v := range g.vars.values {
				env[k] = v
			}
		}
	}
	for k, v := range svc.vars.values {
		env[k] = v
	}
	s.nextID++
	d := Deploy{ID: fmt.Sprintf("dep-%08d", s.nextID), ClearCache: body.ClearCache, DeployMode: body.DeployMode, Queued: s.queueDeploys, Env: env,
		progress: s.progressFor(svc.id).withDefaults(s.queueDeploys), created: s.opts.Now()}
	svc.deploys = append(svc.deploys, d)
	s.settle(svc, len(svc.deploys)-1)
	if s.queueDeploys {
		w.WriteHeader(http.StatusAccepted)
		return
	}
	writeJSON(w, http.StatusCreated, s.deployJSON(svc.deploys[len(svc.deploys)-1]))
}

func (s *Server) progressFor(serviceID string) Progress {
	if p, ok := s.progressOf[serviceID]; ok {
		return p
	}
	return s.progress
}

func writeError(w http.ResponseWriter, status int, message string) {
	writeJSON(w, status, map[string]string{"id": fmt.Sprintf("err-%d", status), "message": message})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
