// Package githubfake is a contract fake of GitHub's Actions secrets REST
// API for tests. It follows shared/reference/targets-api.md §5 "GitHub
// Actions secrets":
//
//   - Authorization: Bearer <token>, X-GitHub-Api-Version: 2022-11-28; a
//     bad token gets 401 {"message":"Bad credentials"};
//   - every destination (repository, environment, organization) has its
//     own Curve25519 key pair; GET …/secrets/public-key serves
//     {"key_id","key"}, and PUT …/secrets/{name} must carry a value sealed
//     for that key (libsodium sealed box, base64), which the fake opens
//     with box.OpenAnonymous so tests can assert the plaintext that landed;
//   - PUT answers 201 when it created the secret and 204 when it replaced
//     it; org secrets need visibility (and selected_repository_ids for
//     "selected");
//   - GET …/secrets/{name} returns metadata only: values are write-only;
//   - environment secrets are served under both /repos/{o}/{r}/environments
//     and the older /repositories/{id}/environments path;
//   - POST /repos/{o}/{r}/actions/workflows/{id}/dispatches {"ref"} → 204,
//     or with "return_run_details": true → 200 {"workflow_run_id",
//     "run_url","html_url"} (GitHub changelog 2026-02-19, "Workflow
//     dispatch API now returns run IDs"). GitHub Enterprise Server before
//     3.21 refuses the key ("\"return_run_details\" is not a permitted
//     key.", reported in benc-uk/workflow-dispatch#86 for 3.19; the
//     status, 422, is unverified) or ignores it and answers 204
//     (SetDispatchAPI);
//   - each dispatch creates a workflow run (event workflow_dispatch,
//     head_branch the ref) that GET /repos/{o}/{r}/actions/runs/{id} and
//     GET …/actions/workflows/{id}/runs?event=&branch=&created=>=… show
//     (newest first), passing through the statuses of
//     docs.github.com/rest/actions/workflow-runs — requested, queued,
//     pending, waiting, in_progress — to completed with a conclusion
//     (success, failure, cancelled, timed_out, action_required,
//     startup_failure, neutral, skipped, stale); RunPlan says how many
//     polls each status lasts, so a run takes time, and how many listings
//     a new run is missing from (GitHub creates it asynchronously);
//   - rate limits: primary (403, X-RateLimit-Remaining: 0 and
//     X-RateLimit-Reset) and secondary (429, Retry-After and a
//     documentation_url ending in secondary-rate-limits).
//
// Error texts GitHub does not document exactly are marked "unverified".
package githubfake

import (
	"cmp"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/nacl/box"

	"github.com/rotorhq/rotor/internal/target/webapi/fakefaults"
)

// What the fake serves, and the tokens it accepts.
const (
	// Token may read and write everything.
	Token = "github-token-test"
	// ReadOnlyToken may read but gets 403 on every write, like a
	// fine-grained token with Secrets: read-only.
	ReadOnlyToken = "github-readonly-token-test"

	Owner       = "acme"
	Repo        = "api"
	RepoID      = int64(4242)
	OtherRepo   = "web"
	OtherRepoID = int64(4343)
	Environment = "production"
	Org         = "acme"
	Workflow    = "deploy.yml"
	WorkflowID  = int64(161335)
	// Ref is the only branch the repository has.
	Ref = "main"

	APIVersion = "2022-11-28"
)

// Scopes name the fake's secret stores.
const (
	RepoScope = "repo"
	EnvScope  = "environment"
	OrgScope  = "org"
)

// Secret is one stored secret, as the fake decrypted it.
type Secret struct {
	// Plaintext is the value opened with the destination's private key.
	Plaintext string
	// Ciphertext is the encrypted_value as sent.
	Ciphertext string
	KeyID      string
	CreatedAt  time.Time
	UpdatedAt  time.Time
	// Visibility and SelectedRepositoryIDs are set for org secrets.
	Visibility            string
	SelectedRepositoryIDs []int64
}

// Call is one request the fake answered.
type Call struct {
	Method, Path string
	// Query is the raw query string.
	Query  string
	Status int
}

// Dispatch is one workflow_dispatch the fake accepted.
type Dispatch struct {
	Repo, Workflow, Ref string
	// RunID is the run the dispatch created.
	RunID int64
}

// DispatchAPI is how the dispatch endpoint treats return_run_details.
type DispatchAPI int

const (
	// RunDetails is GitHub.com: 200 with the run's id when asked, else 204.
	RunDetails DispatchAPI = iota
	// IgnoresRunDetails answers 204 whatever the request asks.
	IgnoresRunDetails
	// RefusesRunDetails answers 422 "\"return_run_details\" is not a
	// permitted key." when the request carries it, like GitHub Enterprise
	// Server 3.19; without it, 204.
	RefusesRunDetails
)

// RunStep is a status a run shows for a number of polls (GETs of the
// run); Polls < 0 keeps it there for good.
type RunStep struct {
	Status string
	Polls  int
}

// RunPlan is the life of the runs dispatched after SetRunPlan.
type RunPlan struct {
	// Steps are the statuses before completed (queued, in_progress,
	// waiting, …). None: the first poll already sees it completed.
	Steps []RunStep
	// Conclusion is the completed run's; default success.
	Conclusion string
	// ListedAfter is how many listings of the workflow's runs miss the new
	// run before it shows up.
	ListedAfter int
}

// Run is a workflow run as the fake holds it.
type Run struct {
	ID                 int64
	Workflow, Ref      string
	Status, Conclusion string
	CreatedAt          time.Time
	// Polls is how many times the run was fetched.
	Polls int
	plan  RunPlan
	lists int
}

// state is what the run shows after polls fetches.
func (r *Run) state(polls int) (status, conclusion string) {
	for _, s := range r.plan.Steps {
		if s.Polls < 0 || polls < s.Polls {
			return s.Status, ""
		}
		polls -= s.Polls
	}
	return "completed", cmp.Or(r.plan.Conclusion, "success")
}

// runIDBase makes run ids look like GitHub's (large, unrelated to the
// workflow's id).
const runIDBase = 30433642000

type keyPair struct {
	id        string
	pub, priv *[32]byte
}

// Fake is a running fake. Its methods are safe for concurrent use.
type Fake struct {
	// URL is the API root, for the target's api_url.
	URL string

	t   testing.TB
	srv *httptest.Server
	mu  sync.Mutex

	keys       map[string]*keyPair
	secrets    map[string]map[string]*Secret
	calls      []Call
	dispatches []Dispatch
	runs       []*Run
	plan       RunPlan
	api        DispatchAPI
	now        func() time.Time
	keySerial  int

	faults       fakefaults.Faults // FailNext, the secondary limit, Delay
	primaryIn    int               // requests before the primary limit; <0: off
	primaryReset time.Duration
	forbidWrites bool
}

// New starts a fake that stops when the test ends.
func New(t testing.TB) *Fake {
	f := &Fake{
		t:         t,
		keys:      map[string]*keyPair{},
		secrets:   map[string]map[string]*Secret{RepoScope: {}, EnvScope: {}, OrgScope: {}},
		now:       time.Now,
		primaryIn: -1,
	}
	for _, s := range []string{RepoScope, EnvScope, OrgScope} {
		f.keys[s] = f.newKey()
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /repos/{owner}/{repo}", f.getRepo)
	for _, prefix := range []string{"/repos/{owner}/{repo}/actions", "/repos/{owner}/{repo}/environments/{env}", "/repositories/{id}/environments/{env}", "/orgs/{org}/actions"} {
		mux.HandleFunc("GET "+prefix+"/secrets/public-key", f.getPublicKey)
		mux.HandleFunc("GET "+prefix+"/secrets/{name}", f.getSecret)
		mux.HandleFunc("PUT "+prefix+"/secrets/{name}", f.putSecret)
	}
	mux.HandleFunc("GET /repos/{owner}/{repo}/actions/workflows/{workflow}", f.getWorkflow)
	mux.HandleFunc("POST /repos/{owner}/{repo}/actions/workflows/{workflow}/dispatches", f.dispatch)
	mux.HandleFunc("GET /repos/{owner}/{repo}/actions/workflows/{workflow}/runs", f.listRuns)
	mux.HandleFunc("GET /repos/{owner}/{repo}/actions/runs/{id}", f.getRun)
	f.srv = httptest.NewServer(f.middleware(mux))
	t.Cleanup(f.srv.Close)
	f.URL = f.srv.URL + "/"
	return f
}

func (f *Fake) newKey() *keyPair {
	pub, priv, err := box.GenerateKey(rand.Reader)
	if err != nil {
		f.t.Fatalf("githubfake: generate key: %v", err)
	}
	f.keySerial++
	return &keyPair{id: strconv.Itoa(568250167242549743 + f.keySerial), pub: pub, priv: priv}
}

// Client is the HTTP client to reach the fake with.
func (f *Fake) Client() *http.Client { return f.srv.Client() }

// SetNow sets the fake's clock (timestamps and rate-limit resets).
func (f *Fake) SetNow(now func() time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.now = now
}

// Secret returns a stored secret of scope (RepoScope, EnvScope, OrgScope).
func (f *Fake) Secret(scope, name string) (Secret, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, ok := f.secrets[scope][name]
	if !ok {
		return Secret{}, false
	}
	return *s, true
}

// Seed stores a secret directly, as another tool would have.
func (f *Fake) Seed(scope, name, plaintext string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	now := f.now()
	f.secrets[scope][name] = &Secret{Plaintext: plaintext, CreatedAt: now, UpdatedAt: now}
}

// RotateKey gives scope a new key pair; values sealed for the old key
// are refused from then on.
func (f *Fake) RotateKey(scope string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.keys[scope] = f.newKey()
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

// Dispatches returns the workflow dispatches accepted so far.
func (f *Fake) Dispatches() []Dispatch {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.dispatches)
}

// SetRunPlan sets how the runs of later dispatches proceed.
func (f *Fake) SetRunPlan(p RunPlan) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.plan = p
	f.plan.Steps = slices.Clone(p.Steps)
}

// SetDispatchAPI sets how the dispatch endpoint treats
// return_run_details.
func (f *Fake) SetDispatchAPI(a DispatchAPI) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.api = a
}

// CompleteRun ends run id's plan: from its next poll on it is completed
// with conclusion, as when a long deploy finally ends.
func (f *Fake) CompleteRun(id int64, conclusion string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, r := range f.runs {
		if r.ID == id {
			r.plan.Steps, r.plan.Conclusion = nil, conclusion
		}
	}
}

// Runs returns the workflow runs, oldest first, as last shown.
func (f *Fake) Runs() []Run {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]Run, 0, len(f.runs))
	for _, r := range f.runs {
		out = append(out, *r)
	}
	return out
}

// FailNext makes the next n requests answer status.
func (f *Fake) FailNext(n, status int) { f.faults.FailNext(n, status) }

// Limit lets n more requests through, then answers every request with
// GitHub's secondary rate limit: 429, Retry-After: retryAfter (n < 0: no
// limit).
func (f *Fake) Limit(n int, retryAfter time.Duration) { f.faults.Limit(n, retryAfter) }

// PrimaryLimit lets n more requests through, then answers every request
// with the primary rate limit: 403, X-RateLimit-Remaining: 0 and a reset
// time reset from the fake's clock.
func (f *Fake) PrimaryLimit(n int, reset time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.primaryIn, f.primaryReset = n, reset
}

// Delay makes every answer wait d (or until the request is cancelled).
func (f *Fake) Delay(d time.Duration) { f.faults.SetDelay(d) }

// ForbidWrites makes every later non-GET request fail the test.
func (f *Fake) ForbidWrites() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.forbidWrites = true
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(status int) {
	r.status = status
	r.ResponseWriter.WriteHeader(status)
}

func (f *Fake) middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !f.faults.Delay(r) {
			return
		}
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		f.gate(rec, r, next)
		f.mu.Lock()
		f.calls = append(f.calls, Call{Method: r.Method, Path: r.URL.EscapedPath(), Query: r.URL.RawQuery, Status: rec.status})
		f.mu.Unlock()
	})
}

// gate applies the knobs, authentication and rate-limit headers, then
// hands the request to the API.
func (f *Fake) gate(w http.ResponseWriter, r *http.Request, next http.Handler) {
	f.mu.Lock()
	now := f.now()
	// The fake's clock, not the machine's: clients may read GitHub's time
	// from Date (rotor does, to list runs created after a dispatch).
	w.Header().Set("Date", now.UTC().Format(http.TimeFormat))
	w.Header().Set("X-RateLimit-Limit", "5000")
	w.Header().Set("X-RateLimit-Used", strconv.Itoa(len(f.calls)+1))
	w.Header().Set("X-RateLimit-Resource", "core")
	if f.primaryIn == 0 {
		reset := now.Add(f.primaryReset)
		f.mu.Unlock()
		w.Header().Set("X-RateLimit-Remaining", "0")
		w.Header().Set("X-RateLimit-Reset", strconv.FormatInt(reset.Unix(), 10))
		writeError(w, http.StatusForbidden, "API rate limit exceeded for user ID 1. If you reach out to GitHub Support for help, please include the request ID.", "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api")
		return
	}
	if f.primaryIn > 0 {
		f.primaryIn--
	}
	w.Header().Set("X-RateLimit-Remaining", strconv.Itoa(max(4999-len(f.calls), 1)))
	w.Header().Set("X-RateLimit-Reset", strconv.FormatInt(now.Add(time.Hour).Unix(), 10))
	v := f.faults.Next()
	if v.Limited {
		f.mu.Unlock()
		w.Header().Set("Retry-After", strconv.Itoa(int(v.Wait/time.Second)))
		writeError(w, http.StatusTooManyRequests, "You have exceeded a secondary rate limit. Please wait a few minutes before you try again.", "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api#about-secondary-rate-limits")
		return
	}
	if v.Fail {
		f.mu.Unlock()
		writeError(w, v.Status, "Server Error", "")
		return
	}
	forbid := f.forbidWrites
	f.mu.Unlock()

	var readOnly bool
	switch strings.TrimPrefix(strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer "), "token ") {
	case Token:
	case ReadOnlyToken:
		readOnly = true
	default:
		writeError(w, http.StatusUnauthorized, "Bad credentials", "https://docs.github.com/rest")
		return
	}
	if v := r.Header.Get("X-GitHub-Api-Version"); v != "" && v != APIVersion {
		writeError(w, http.StatusBadRequest, "Unsupported 'api-version': "+v, "https://docs.github.com/rest/overview/api-versions")
		return
	}
	if r.Method != http.MethodGet {
		if forbid {
			f.t.Errorf("githubfake: %s %s after ForbidWrites", r.Method, r.URL.Path)
		}
		if readOnly {
			perm := "secrets=write"
			if strings.HasSuffix(r.URL.Path, "/dispatches") {
				perm = "actions=write"
			}
			w.Header().Set("X-Accepted-GitHub-Permissions", perm)
			writeError(w, http.StatusForbidden, "Resource not accessible by personal access token", "https://docs.github.com/rest/actions/secrets")
			return
		}
	}
	next.ServeHTTP(w, r)
}

var repos = map[string]int64{Owner + "/" + Repo: RepoID, Owner + "/" + OtherRepo: OtherRepoID}

func (f *Fake) getRepo(w http.ResponseWriter, r *http.Request) {
	full := r.PathValue("owner") + "/" + r.PathValue("repo")
	id, ok := repos[full]
	if !ok {
		notFound(w)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"id": id, "name": r.PathValue("repo"), "full_name": full,
		"owner": map[string]any{"login": r.PathValue("owner")}, "private": true,
	})
}

// scopeOf maps a request to a secret store, or "" when the repository,
// environment or organization does not exist.
func scopeOf(r *http.Request) string {
	switch {
	case r.PathValue("org") != "":
		if r.PathValue("org") == Org {
			return OrgScope
		}
	case r.PathValue("id") != "":
		if r.PathValue("id") == strconv.FormatInt(RepoID, 10) && r.PathValue("env") == Environment {
			return EnvScope
		}
	case r.PathValue("env") != "":
		if r.PathValue("owner") == Owner && r.PathValue("repo") == Repo && r.PathValue("env") == Environment {
			return EnvScope
		}
	default:
		if r.PathValue("owner") == Owner && r.PathValue("repo") == Repo {
			return RepoScope
		}
	}
	return ""
}

func (f *Fake) getPublicKey(w http.ResponseWriter, r *http.Request) {
	scope := scopeOf(r)
	if scope == "" {
		notFound(w)
		return
	}
	f.mu.Lock()
	k := f.keys[scope]
	f.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]string{"key_id": k.id, "key": base64.StdEncoding.EncodeToString(k.pub[:])})
}

func (f *Fake) getSecret(w http.ResponseWriter, r *http.Request) {
	scope := scopeOf(r)
	if scope == "" {
		notFound(w)
		return
	}
	f.mu.Lock()
	s, ok := f.secrets[scope][r.PathValue("name")]
	var out map[string]any
	if ok {
		// Metadata only: GitHub never returns a secret's value.
		out = map[string]any{"name": r.PathValue("name"), "created_at": s.CreatedAt.UTC().Format(time.RFC3339), "updated_at": s.UpdatedAt.UTC().Format(time.RFC3339)}
		if scope == OrgScope {
			out["visibility"] = s.Visibility
			if s.Visibility == "selected" {
				out["selected_repositories_url"] = fmt.Sprintf("%sorgs/%s/actions/secrets/%s/repositories", f.URL, Org, r.PathValue("name"))
			}
		}
	}
	f.mu.Unlock()
	if !ok {
		notFound(w)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

// secretName is GitHub's rule for secret names.
var secretName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

func (f *Fake) putSecret(w http.ResponseWriter, r *http.Request) {
	scope := scopeOf(r)
	if scope == "" {
		notFound(w)
		return
	}
	name := r.PathValue("name")
	if !secretName.MatchString(name) || strings.HasPrefix(strings.ToUpper(name), "GITHUB_") {
		// Unverified wording; the rule is GitHub's documented one.
		writeError(w, http.StatusUnprocessableEntity, "Invalid request.\n\nSecret names can only contain alphanumeric characters or underscores, must not start with a number and must not start with GITHUB_.", "https://docs.github.com/rest/actions/secrets")
		return
	}
	var body struct {
		EncryptedValue        *string `json:"encrypted_value"`
		KeyID                 *string `json:"key_id"`
		Visibility            string  `json:"visibility"`
		SelectedRepositoryIDs []int64 `json:"selected_repository_ids"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		writeError(w, http.StatusBadRequest, "Problems parsing JSON", "https://docs.github.com/rest/actions/secrets")
		return
	}
	if body.EncryptedValue == nil || body.KeyID == nil {
		writeError(w, http.StatusUnprocessableEntity, "Invalid request.\n\n\"encrypted_value\" and \"key_id\" are required.", "https://docs.github.com/rest/actions/secrets")
		return
	}
	if scope == OrgScope {
		switch body.Visibility {
		case "all", "private":
		case "selected":
			for _, id := range body.SelectedRepositoryIDs {
				if id != RepoID && id != OtherRepoID {
					writeError(w, http.StatusUnprocessableEntity, fmt.Sprintf("Invalid request.\n\nRepository %d is not in the organization.", id), "https://docs.github.com/rest/actions/secrets")
					return
				}
			}
		default:
			writeError(w, http.StatusUnprocessableEntity, "Invalid request.\n\n\"visibility\" must be one of all, private, selected.", "https://docs.github.com/rest/actions/secrets")
			return
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	k := f.keys[scope]
	if *body.KeyID != k.id {
		writeError(w, http.StatusUnprocessableEntity, "Bad request - key_id does not match the current public key", "https://docs.github.com/rest/actions/secrets")
		return
	}
	sealed, err := base64.StdEncoding.DecodeString(*body.EncryptedValue)
	if err != nil {
		writeError(w, http.StatusUnprocessableEntity, "Bad request - encrypted_value is not base64", "https://docs.github.com/rest/actions/secrets")
		return
	}
	plain, ok := box.OpenAnonymous(nil, sealed, k.pub, k.priv)
	if !ok {
		writeError(w, http.StatusUnprocessableEntity, "Bad request - encrypted_value is not a sealed box for key_id", "https://docs.github.com/rest/actions/secrets")
		return
	}
	if len(plain) > 48*1024 {
		writeError(w, http.StatusUnprocessableEntity, "Bad request - secret values are limited to 48 KB", "https://docs.github.com/rest/actions/secrets")
		return
	}
	now := f.now()
	s := &Secret{Plaintext: string(plain), Ciphertext: *body.EncryptedValue, KeyID: k.id, CreatedAt: now, UpdatedAt: now}
	if scope == OrgScope {
		s.Visibility, s.SelectedRepositoryIDs = body.Visibility, body.SelectedRepositoryIDs
	}
	status := http.StatusCreated
	if old, ok := f.secrets[scope][name]; ok {
		s.CreatedAt, status = old.CreatedAt, http.StatusNoContent
	}
	f.secrets[scope][name] = s
	w.WriteHeader(status)
}

func workflowMatches(r *http.Request) bool {
	wf := r.PathValue("workflow")
	return r.PathValue("owner") == Owner && r.PathValue("repo") == Repo && (wf == Workflow || wf == strconv.FormatInt(WorkflowID, 10))
}

func (f *Fake) getWorkflow(w http.ResponseWriter, r *http.Request) {
	if !workflowMatches(r) {
		notFound(w)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"id": WorkflowID, "name": "Deploy", "path": ".github/workflows/" + Workflow, "state": "active"})
}

func (f *Fake) dispatch(w http.ResponseWriter, r *http.Request) {
	if !workflowMatches(r) {
		notFound(w)
		return
	}
	var body struct {
		Ref              string         `json:"ref"`
		Inputs           map[string]any `json:"inputs"`
		ReturnRunDetails *bool          `json:"return_run_details"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil || body.Ref == "" {
		writeError(w, http.StatusUnprocessableEntity, "Invalid request.\n\n\"ref\" wasn't supplied.", "https://docs.github.com/rest/actions/workflows#create-a-workflow-dispatch-event")
		return
	}
	f.mu.Lock()
	api := f.api
	f.mu.Unlock()
	if api == RefusesRunDetails && body.ReturnRunDetails != nil {
		writeError(w, http.StatusUnprocessableEntity, "Invalid request.\n\n\"return_run_details\" is not a permitted key.", "https://docs.github.com/enterprise-server@3.19/rest/actions/workflows#create-a-workflow-dispatch-event")
		return
	}
	if body.Ref != Ref && body.Ref != "refs/heads/"+Ref {
		writeError(w, http.StatusUnprocessableEntity, "No ref found for: "+body.Ref, "https://docs.github.com/rest/actions/workflows#create-a-workflow-dispatch-event")
		return
	}
	f.mu.Lock()
	run := &Run{
		ID: runIDBase + int64(len(f.runs)) + 1, Workflow: r.PathValue("workflow"), Ref: strings.TrimPrefix(body.Ref, "refs/heads/"),
		CreatedAt: f.now().UTC().Truncate(time.Second), plan: f.plan,
	}
	run.Status, run.Conclusion = run.state(0)
	f.runs = append(f.runs, run)
	f.dispatches = append(f.dispatches, Dispatch{Repo: Owner + "/" + Repo, Workflow: r.PathValue("workflow"), Ref: body.Ref, RunID: run.ID})
	f.mu.Unlock()
	if api == RunDetails && body.ReturnRunDetails != nil && *body.ReturnRunDetails {
		writeJSON(w, http.StatusOK, map[string]any{"workflow_run_id": run.ID, "run_url": f.runURL(run), "html_url": runHTMLURL(run)})
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (f *Fake) runURL(run *Run) string {
	return fmt.Sprintf("%srepos/%s/%s/actions/runs/%d", f.URL, Owner, Repo, run.ID)
}

func runHTMLURL(run *Run) string {
	return fmt.Sprintf("https://github.com/%s/%s/actions/runs/%d", Owner, Repo, run.ID)
}

// renderRun is a workflow run as the REST API shows it; f.mu is held.
func (f *Fake) renderRun(run *Run) map[string]any {
	out := map[string]any{
		"id": run.ID, "name": "Deploy", "head_branch": run.Ref, "head_sha": "6104942438c14ec7bd21c6cd5bd995272b3faff6",
		"path": ".github/workflows/" + Workflow, "event": "workflow_dispatch", "status": run.Status, "conclusion": nil,
		"workflow_id": WorkflowID, "run_attempt": 1, "url": f.runURL(run), "html_url": runHTMLURL(run),
		"created_at": run.CreatedAt.Format(time.RFC3339), "updated_at": f.now().UTC().Format(time.RFC3339),
	}
	if run.Conclusion != "" {
		out["conclusion"] = run.Conclusion
	}
	return out
}

// getRun answers one poll of a run, which moves it along its plan.
func (f *Fake) getRun(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, run := range f.runs {
		if r.PathValue("owner") != Owner || r.PathValue("repo") != Repo || strconv.FormatInt(run.ID, 10) != r.PathValue("id") {
			continue
		}
		run.Status, run.Conclusion = run.state(run.Polls)
		run.Polls++
		writeJSON(w, http.StatusOK, f.renderRun(run))
		return
	}
	notFound(w)
}

// listRuns lists the workflow's runs, newest first, with the filters
// rotor uses: event, branch and created (only the ">=TIME" form).
func (f *Fake) listRuns(w http.ResponseWriter, r *http.Request) {
	if !workflowMatches(r) {
		notFound(w)
		return
	}
	q := r.URL.Query()
	var since time.Time
	if c := q.Get("created"); c != "" {
		ts, ok := strings.CutPrefix(c, ">=")
		t, err := time.Parse(time.RFC3339, ts)
		if !ok || err != nil {
			// The fake knows only the form rotor sends; GitHub knows more.
			writeError(w, http.StatusUnprocessableEntity, "Validation Failed: created "+c, "https://docs.github.com/search-github/getting-started-with-searching-on-github/understanding-the-search-syntax#query-for-dates")
			return
		}
		since = t
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	runs := []map[string]any{}
	for i := len(f.runs) - 1; i >= 0; i-- {
		run := f.runs[i]
		run.lists++
		switch {
		case run.lists <= run.plan.ListedAfter:
		case q.Get("event") != "" && q.Get("event") != "workflow_dispatch":
		case q.Get("branch") != "" && q.Get("branch") != run.Ref:
		case run.CreatedAt.Before(since):
		default:
			runs = append(runs, f.renderRun(run))
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"total_count": len(runs), "workflow_runs": runs})
}

func notFound(w http.ResponseWriter) {
	writeError(w, http.StatusNotFound, "Not Found", "https://docs.github.com/rest")
}

func writeError(w http.ResponseWriter, status int, msg, doc string) {
	body := map[string]string{"message": msg, "status": strconv.Itoa(status)}
	if doc != "" {
		body["documentation_url"] = doc
	}
	writeJSON(w, status, body)
}

func writeJSON(w http.ResponseWriter, status int, body any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
}
