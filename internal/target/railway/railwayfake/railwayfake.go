// Package railwayfake is a contract fake of Railway's public GraphQL API
// (POST /graphql/v2) for tests. It follows shared/reference/targets-api.md
// §4 "Railway":
//
//   - project tokens arrive in Project-Access-Token and reach only their
//     own project and environment; account tokens arrive as
//     Authorization: Bearer;
//   - failures are GraphQL errors ({"errors":[…]}) with HTTP 200, a bad
//     token included ("Not Authorized", as the Railway CLI expects);
//   - variableUpsert and variableCollectionUpsert are native upserts
//     (replace: true deletes what is not listed) and deploy the service
//     unless skipDeploys is true;
//   - variables(projectId, environmentId, serviceId, unrendered) returns a
//     name→value map; sealed variables never come back;
//   - serviceInstanceRedeploy (Boolean) and serviceInstanceDeployV2
//     (String: "Returns a deployment ID") start a deployment of the
//     service's current commit (railwayapp/docs content/docs/integrations/
//     api/manage-services.md); deployment(id) returns it, and a GraphQL
//     "Deployment not found" error when there is none
//     (api/manage-deployments.md). Its status is one of the
//     DeploymentStatus enum of Railway's public schema (railwayapp/cli
//     src/gql/schema.json): QUEUED, WAITING, NEEDS_APPROVAL, INITIALIZING,
//     BUILDING, DEPLOYING, SUCCESS, FAILED, CRASHED, REMOVING, REMOVED,
//     SKIPPED, SLEEPING. A new deployment moves through the statuses of
//     the fake's Progress, one status per Progress.Polls reads of it, so a
//     test decides how long a deployment takes; when one succeeds, the
//     service's earlier successful one is REMOVED, as Railway replaces it;
//   - rate limits answer HTTP 429 with Retry-After and X-RateLimit-*.
//
// What the reference leaves open is marked "unverified" where the fake
// decides it.
package railwayfake

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/rotorhq/rotor/internal/target/webapi/fakefaults"
)

// The one project the fake serves, and the tokens it accepts.
const (
	ProjectID = "prj-rotor-test"
	// EnvironmentID is the environment ProjectToken is scoped to.
	EnvironmentID = "env-production"
	// OtherEnvironmentID exists, but ProjectToken cannot reach it.
	OtherEnvironmentID = "env-staging"
	ServiceID          = "svc-api"
	ProjectToken       = "railway-project-token-test"
	AccountToken       = "railway-account-token-test"
)

// Path is the endpoint path; URL ends with it.
const Path = "/graphql/v2"

// Call is one request the fake answered.
type Call struct {
	// Operation is the first field of the document, e.g. "variables".
	Operation string
	Mutation  bool
	// Auth is "project", "account" or "" (no valid token).
	Auth string
	// Variables are the GraphQL variables as sent (values included:
	// tests compare them, never print them).
	Variables map[string]any
	// Status is the HTTP status answered.
	Status int
}

// Deploy is a deployment the fake started.
type Deploy struct {
	ServiceID, EnvironmentID string
	// Reason is "redeploy" (serviceInstanceRedeploy or
	// serviceInstanceDeployV2, both of the current commit) or "variables"
	// (a variable write without skipDeploys).
	Reason string
	// ID is the deployment id; Status its status now; Reads counts the
	// deployment(id) queries answered for it.
	ID     string
	Status string
	Reads  int

	progress Progress
	finished bool
}

// Progress is how the deployments the fake starts move on. The zero value
// is a deployment that is QUEUED when started and SUCCESS at the first
// read.
type Progress struct {
	// Statuses the deployment passes through: the first is its status when
	// started, the last is final. Default [QUEUED, SUCCESS].
	Statuses []string
	// Polls is how many reads each status after the first lasts; the first
	// read already sees the second. Default 1.
	Polls int
}

func (p Progress) withDefaults() Progress {
	if len(p.Statuses) == 0 {
		p.Statuses = []string{"QUEUED", "SUCCESS"}
	}
	if p.Polls <= 0 {
		p.Polls = 1
	}
	p.Statuses = append([]string(nil), p.Statuses...)
	return p
}

// Fake is a running fake. Its methods are safe for concurrent use.
type Fake struct {
	// URL is the GraphQL endpoint, for the target's api_url.
	URL string

	t   testing.TB
	srv *httptest.Server
	mu  sync.Mutex
	// vars is keyed by environment, then service ("" for shared).
	vars    map[string]map[string]map[string]*variable
	calls   []Call
	deploys []Deploy

	faults        fakefaults.Faults // FailNext, the HTTP 429 limit, Delay
	errorOn       map[string][]string
	sealNew       bool
	gqlLimitNext  int
	gqlRetryAfter time.Duration
	forbidWrites  bool
	requestsTotal int
	progress      Progress
}

type variable struct {
	value  string
	sealed bool
}

// New starts a fake that stops when the test ends.
func New(t testing.TB) *Fake {
	f := &Fake{t: t, vars: map[string]map[string]map[string]*variable{}}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	f.URL = f.srv.URL + Path
	return f
}

// Client is the HTTP client to reach the fake with.
func (f *Fake) Client() *http.Client { return f.srv.Client() }

// Set stores a variable directly, as the dashboard would.
func (f *Fake) Set(environmentID, serviceID, name, value string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.scope(environmentID, serviceID)[name] = &variable{value: value}
}

// Seal seals an existing variable: from then on no query returns it.
// Unverified: a later upsert keeps it sealed.
func (f *Fake) Seal(environmentID, serviceID, name string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if v, ok := f.scope(environmentID, serviceID)[name]; ok {
		v.sealed = true
	}
}

// Get reads a variable, sealed or not, straight from the fake's state.
func (f *Fake) Get(environmentID, serviceID, name string) (string, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	v, ok := f.scope(environmentID, serviceID)[name]
	if !ok {
		return "", false
	}
	return v.value, true
}

// Calls returns the requests answered so far.
func (f *Fake) Calls() []Call {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Call(nil), f.calls...)
}

// Operations returns the operation of each call, in order.
func (f *Fake) Operations() []string {
	var ops []string
	for _, c := range f.Calls() {
		ops = append(ops, c.Operation)
	}
	return ops
}

// Deploys returns the deployments started so far.
func (f *Fake) Deploys() []Deploy {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Deploy(nil), f.deploys...)
}

// Mutations counts the mutations that were answered.
func (f *Fake) Mutations() int {
	n := 0
	for _, c := range f.Calls() {
		if c.Mutation {
			n++
		}
	}
	return n
}

// SetProgress sets how deployments started from now on move on.
func (f *Fake) SetProgress(p Progress) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.progress = p
}

// Finish moves a deployment to its final status at once, as if it had
// ended.
func (f *Fake) Finish(id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := range f.deploys {
		if f.deploys[i].ID == id {
			f.deploys[i].finished = true
			f.settle(i)
		}
	}
}

// startDeploy records a new deployment and returns its id; f.mu is held.
func (f *Fake) startDeploy(service, env, reason string) string {
	id := fmt.Sprintf("dep-%04d", len(f.deploys)+1)
	f.deploys = append(f.deploys, Deploy{ServiceID: service, EnvironmentID: env, Reason: reason, ID: id, progress: f.progress.withDefaults()})
	f.settle(len(f.deploys) - 1)
	return id
}

// settle puts f.deploys[i] in the status its progress has reached after
// its reads; a deployment that succeeds replaces (REMOVED) the one that
// succeeded before it. f.mu is held.
func (f *Fake) settle(i int) {
	d := &f.deploys[i]
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
	if d.Status == "SUCCESS" && was != "SUCCESS" {
		for j := range f.deploys {
			o := &f.deploys[j]
			if j != i && o.Status == "SUCCESS" && o.ServiceID == d.ServiceID && o.EnvironmentID == d.EnvironmentID {
				o.Status = "REMOVED"
			}
		}
	}
}

// FailNext makes the next n requests answer HTTP status with a GraphQL
// error body.
func (f *Fake) FailNext(n, status int) { f.faults.FailNext(n, status) }

// ErrorOn makes the next call of operation (e.g. "variableCollectionUpsert")
// answer HTTP 200 with a GraphQL error carrying message; several calls
// queue several errors.
func (f *Fake) ErrorOn(operation, message string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.errorOn == nil {
		f.errorOn = map[string][]string{}
	}
	f.errorOn[operation] = append(f.errorOn[operation], message)
}

// SealNewVariables seals every variable created from now on, as if the
// user sealed each one in the dashboard.
func (f *Fake) SealNewVariables() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sealNew = true
}

// RateLimitInGraphQLNext makes the next n requests answer HTTP 200 with
// a rate-limit GraphQL error and Retry-After: retryAfter. Unverified: the
// reference only says Railway can report errors this way; the message and
// code follow the HTTP 429 text.
func (f *Fake) RateLimitInGraphQLNext(n int, retryAfter time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.gqlLimitNext, f.gqlRetryAfter = n, retryAfter
}

// Limit lets n more requests through, then answers every request with
// HTTP 429 and Retry-After: retryAfter (n < 0: no limit).
func (f *Fake) Limit(n int, retryAfter time.Duration) { f.faults.Limit(n, retryAfter) }

// Delay makes every answer wait d (or until the request is cancelled).
func (f *Fake) Delay(d time.Duration) { f.faults.SetDelay(d) }

// ForbidWrites makes every later mutation fail the test and be refused.
func (f *Fake) ForbidWrites() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.forbidWrites = true
}

func (f *Fake) scope(env, service string) map[string]*variable {
	if f.vars[env] == nil {
		f.vars[env] = map[string]map[string]*variable{}
	}
	if f.vars[env][service] == nil {
		f.vars[env][service] = map[string]*variable{}
	}
	return f.vars[env][service]
}

// firstField finds the operation type and its first field in a document
// such as `mutation m($x: T!) { field(input: $x) }`.
var firstField = regexp.MustCompile(`^\s*(?:(query|mutation)\b[^{]*)?\{\s*([A-Za-z_][A-Za-z0-9_]*)`)

type gqlError struct {
	Message    string         `json:"message"`
	Extensions map[string]any `json:"extensions,omitempty"`
}

func (f *Fake) serve(w http.ResponseWriter, r *http.Request) {
	if !f.faults.Delay(r) {
		return
	}
	if r.URL.Path != Path {
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeJSON(w, http.StatusMethodNotAllowed, map[string]any{"errors": []gqlError{{Message: "Method not allowed"}}})
		return
	}
	var req struct {
		Query     string         `json:"query"`
		Variables map[string]any `json:"variables"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]any{"errors": []gqlError{{Message: "POST body must be JSON {query, variables}"}}})
		return
	}
	m := firstField.FindStringSubmatch(req.Query)
	call := Call{Variables: req.Variables}
	if m != nil {
		call.Mutation, call.Operation = m[1] == "mutation", m[2]
	}
	switch {
	case r.Header.Get("Project-Access-Token") == ProjectToken:
		call.Auth = "project"
	case r.Header.Get("Authorization") == "Bearer "+AccountToken:
		call.Auth = "account"
	}

	f.mu.Lock()
	defer f.mu.Unlock()
	status, body := f.answer(w, &call, req.Variables)
	call.Status = status
	f.calls = append(f.calls, call)
	f.requestsTotal++
	w.Header().Set("X-RateLimit-Limit", "1000")
	remaining := 1000 - f.requestsTotal
	if status == http.StatusTooManyRequests {
		remaining = 0
	}
	w.Header().Set("X-RateLimit-Remaining", strconv.Itoa(max(remaining, 0)))
	w.Header().Set("X-RateLimit-Reset", strconv.FormatInt(time.Now().Add(time.Hour).Unix(), 10))
	writeJSON(w, status, body)
}

// answer decides the reply; f.mu is held.
func (f *Fake) answer(w http.ResponseWriter, call *Call, vars map[string]any) (int, any) {
	v := f.faults.Next()
	if v.Limited {
		w.Header().Set("Retry-After", strconv.Itoa(int(v.Wait/time.Second)))
		return http.StatusTooManyRequests, map[string]any{"errors": []gqlError{{Message: "Rate limit exceeded. Please try again later."}}}
	}
	if v.Fail {
		return v.Status, map[string]any{"errors": []gqlError{{Message: "Internal Server Error"}}}
	}
	if f.gqlLimitNext > 0 {
		f.gqlLimitNext--
		w.Header().Set("Retry-After", strconv.Itoa(int(f.gqlRetryAfter/time.Second)))
		return http.StatusOK, map[string]any{"data": nil, "errors": []gqlError{{
			Message:    "Rate limit exceeded. Please try again later.",
			Extensions: map[string]any{"code": "RATE_LIMITED"},
		}}}
	}
	if q := f.errorOn[call.Operation]; len(q) > 0 {
		f.errorOn[call.Operation] = q[1:]
		return http.StatusOK, errorsOnly(q[0])
	}
	if call.Operation == "" {
		return http.StatusOK, errorsOnly("Syntax Error: could not find an operation")
	}
	if call.Auth == "" {
		// Railway answers a bad or missing token inside GraphQL, not with 401.
		return http.StatusOK, errorsOnly("Not Authorized")
	}
	if call.Mutation && f.forbidWrites {
		f.t.Errorf("railwayfake: mutation %s after ForbidWrites", call.Operation)
		return http.StatusOK, errorsOnly("Not Authorized")
	}
	switch call.Operation {
	case "variables":
		return f.variables(call, vars)
	case "variableUpsert":
		input, _ := vars["input"].(map[string]any)
		name, _ := input["name"].(string)
		value, ok := input["value"].(string)
		if name == "" || !ok {
			return http.StatusOK, errorsOnly("Variable input requires name and value")
		}
		return f.upsert(call, "variableUpsert", input, map[string]string{name: value})
	case "variableCollectionUpsert":
		input, _ := vars["input"].(map[string]any)
		raw, _ := input["variables"].(map[string]any)
		if raw == nil {
			return http.StatusOK, errorsOnly(`Variable "$input" got invalid value; Field "variables" of required type "EnvironmentVariables!" was not provided.`)
		}
		values := map[string]string{}
		for k, v := range raw {
			s, ok := v.(string)
			if !ok {
				return http.StatusOK, errorsOnly("EnvironmentVariables values must be strings")
			}
			values[k] = s
		}
		return f.upsert(call, "variableCollectionUpsert", input, values)
	case "serviceInstanceRedeploy":
		env, _ := vars["environmentId"].(string)
		svc, _ := vars["serviceId"].(string)
		if msg := f.access(call.Auth, ProjectID, env, svc); msg != "" {
			return http.StatusOK, errorsOnly(msg)
		}
		if svc == "" {
			return http.StatusOK, errorsOnly("Service not found")
		}
		f.startDeploy(svc, env, "redeploy")
		return http.StatusOK, data("serviceInstanceRedeploy", true)
	case "serviceInstanceDeployV2":
		env, _ := vars["environmentId"].(string)
		svc, _ := vars["serviceId"].(string)
		if !call.Mutation {
			return http.StatusOK, errorsOnly(`Cannot query field "serviceInstanceDeployV2" on type "Query".`)
		}
		if msg := f.access(call.Auth, ProjectID, env, svc); msg != "" {
			return http.StatusOK, errorsOnly(msg)
		}
		if svc == "" {
			return http.StatusOK, errorsOnly("Service not found")
		}
		return http.StatusOK, data("serviceInstanceDeployV2", f.startDeploy(svc, env, "redeploy"))
	case "deployment":
		id, _ := vars["id"].(string)
		if call.Mutation {
			return http.StatusOK, errorsOnly(`Cannot query field "deployment" on type "Mutation".`)
		}
		for i := range f.deploys {
			d := &f.deploys[i]
			if d.ID != id {
				continue
			}
			if msg := f.access(call.Auth, ProjectID, d.EnvironmentID, d.ServiceID); msg != "" {
				return http.StatusOK, errorsOnly(msg)
			}
			d.Reads++
			f.settle(i)
			return http.StatusOK, data("deployment", map[string]any{
				"id": d.ID, "status": d.Status, "serviceId": d.ServiceID, "environmentId": d.EnvironmentID, "projectId": ProjectID,
			})
		}
		return http.StatusOK, errorsOnly("Deployment not found")
	case "projectToken":
		if call.Auth != "project" {
			return http.StatusOK, errorsOnly("Not Authorized")
		}
		return http.StatusOK, data("projectToken", map[string]string{"projectId": ProjectID, "environmentId": EnvironmentID})
	}
	return http.StatusOK, errorsOnly(fmt.Sprintf("Cannot query field %q on type %q.", call.Operation, map[bool]string{true: "Mutation", false: "Query"}[call.Mutation]))
}

func (f *Fake) variables(call *Call, vars map[string]any) (int, any) {
	if call.Mutation {
		return http.StatusOK, errorsOnly(`Cannot query field "variables" on type "Mutation".`)
	}
	project, _ := vars["projectId"].(string)
	env, _ := vars["environmentId"].(string)
	svc, _ := vars["serviceId"].(string)
	unrendered, _ := vars["unrendered"].(bool)
	if msg := f.access(call.Auth, project, env, svc); msg != "" {
		return http.StatusOK, errorsOnly(msg)
	}
	scope := f.scope(env, svc)
	out := map[string]string{}
	for k, v := range scope {
		if v.sealed {
			continue
		}
		if unrendered {
			out[k] = v.value
		} else {
			out[k] = f.render(env, svc, v.value)
		}
	}
	return http.StatusOK, data("variables", out)
}

// reference matches Railway's ${{NAME}} and ${{shared.NAME}} templates.
var reference = regexp.MustCompile(`\$\{\{\s*(?:(shared)\.)?([A-Za-z_][A-Za-z0-9_]*)\s*\}\}`)

func (f *Fake) render(env, svc, value string) string {
	return reference.ReplaceAllStringFunc(value, func(m string) string {
		sub := reference.FindStringSubmatch(m)
		from := svc
		if sub[1] == "shared" {
			from = ""
		}
		if v, ok := f.scope(env, from)[sub[2]]; ok {
			return v.value
		}
		return ""
	})
}

func (f *Fake) upsert(call *Call, op string, input map[string]any, values map[string]string) (int, any) {
	if !call.Mutation {
		return http.StatusOK, errorsOnly(fmt.Sprintf("Cannot query field %q on type \"Query\".", op))
	}
	project, _ := input["projectId"].(string)
	env, _ := input["environmentId"].(string)
	svc, _ := input["serviceId"].(string)
	if msg := f.access(call.Auth, project, env, svc); msg != "" {
		return http.StatusOK, errorsOnly(msg)
	}
	scope := f.scope(env, svc)
	if replace, _ := input["replace"].(bool); replace {
		for k := range scope {
			if _, keep := values[k]; !keep {
				delete(scope, k)
			}
		}
	}
	for k, v := range values {
		if cur, ok := scope[k]; ok {
			cur.value = v
			continue
		}
		scope[k] = &variable{value: v, sealed: f.sealNew}
	}
	if skip, _ := input["skipDeploys"].(bool); !skip {
		// Shared variables reach every service of the environment.
		f.startDeploy(ServiceID, env, "variables")
	}
	return http.StatusOK, data(op, true)
}

// access returns the GraphQL error message for a principal that may not
// reach (project, env, svc), or "".
func (f *Fake) access(auth, project, env, svc string) string {
	if auth == "project" && (project != ProjectID || env != EnvironmentID) {
		return "Not Authorized"
	}
	switch {
	case project != ProjectID:
		return "Project not found"
	case env != EnvironmentID && env != OtherEnvironmentID:
		return "Environment not found"
	case svc != "" && svc != ServiceID:
		return "Service not found"
	}
	return ""
}

func errorsOnly(msg string) map[string]any {
	return map[string]any{"data": nil, "errors": []gqlError{{Message: msg}}}
}

func data(field string, v any) map[string]any {
	return map[string]any{"data": map[string]any{field: v}}
}

func writeJSON(w http.ResponseWriter, status int, body any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
}
