package api_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"
	"github.com/stretchr/testify/require"

	"github.com/rotorhq/rotor/internal/engine"
	"github.com/rotorhq/rotor/internal/pgtest"
	"github.com/rotorhq/rotor/internal/resolve"
	"github.com/rotorhq/rotor/internal/secret"
	"github.com/rotorhq/rotor/internal/serve"
	"github.com/rotorhq/rotor/internal/serve/api"
	"github.com/rotorhq/rotor/internal/serve/auth"
	"github.com/rotorhq/rotor/internal/serve/servetest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

const (
	readTok   = "read-token-0123456789abcdef"
	rotateTok = "rotate-token-0123456789abcdef"
	adminTok  = "admin-token-0123456789abcdef"
	hookKey   = "github-hook-secret-0123456789"
)

// world is the API over a real engine, a SQLite store and a real
// PostgreSQL role, with every response checked against the OpenAPI
// document and kept for the leak scan.
type world struct {
	t       *testing.T
	srv     *httptest.Server
	router  routers.Router
	envFile string
	secrets []secret.String
	bodies  [][]byte
	cfg     *resolve.Config
	logs    *syncBuffer
}

// syncBuffer is the API's log, written from the server's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) Bytes() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return bytes.Clone(s.b.Bytes())
}

func newWorld(t *testing.T) *world {
	sw := servetest.New(t, servetest.Options{})
	envFile, cfg := sw.EnvFile("app"), sw.Config
	pw, adminURL := sw.Passwords["app"], sw.AdminURL
	// The real service on the SQLite store: jobs run on River's workers,
	// and the tests wait for them through GET /api/v1/jobs/{id}.
	b := sw.Service(serve.Options{Workers: 2}, true)
	tokens, err := auth.Parse("viewer:read:" + readTok + ",ci:rotate:" + rotateTok + ",ops:admin:" + adminTok)
	require.NoError(t, err)
	logs := &syncBuffer{}
	srv := httptest.NewServer(api.New(api.Options{Backend: b, Tokens: tokens, GitHubWebhookSecret: secret.New(hookKey),
		Logger: slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))}))
	t.Cleanup(srv.Close)

	doc, err := openapi3.NewLoader().LoadFromData(api.OpenAPI)
	require.NoError(t, err)
	require.NoError(t, doc.Validate(context.Background()))
	doc.Servers = openapi3.Servers{{URL: srv.URL + "/api/v1"}}
	router, err := legacy.NewRouter(doc)
	require.NoError(t, err)
	return &world{t: t, srv: srv, router: router, envFile: envFile, cfg: cfg, logs: logs,
		secrets: []secret.String{pw, adminURL, secret.New(readTok), secret.New(rotateTok), secret.New(adminTok), secret.New(hookKey)}}
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) decode(t *testing.T, v any) {
	t.Helper()
	require.NoError(t, json.Unmarshal(r.body, v), string(r.body))
}

// call sends one request and checks the response against the OpenAPI
// document (paths under /api/v1).
// done waits, through the API, for River to finish the job.
func (w *world) done(j serve.Job) serve.Job {
	w.t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for j.FinishedAt == nil {
		require.True(w.t, time.Now().Before(deadline), "job %d still %s after 2 minutes", j.ID, j.State)
		time.Sleep(20 * time.Millisecond)
		r := w.call("GET", fmt.Sprintf("/api/v1/jobs/%d", j.ID), readTok, "", nil)
		require.Equal(w.t, http.StatusOK, r.status, string(r.body))
		j = serve.Job{}
		r.decode(w.t, &j)
	}
	return j
}

func (w *world) call(method, path, token string, body string, header map[string]string) response {
	t := w.t
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, w.srv.URL+path, rd)
	require.NoError(t, err)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	w.bodies = append(w.bodies, data)
	if strings.HasPrefix(path, "/api/v1/") {
		w.validate(req, body, resp, data)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: data}
}

func (w *world) validate(req *http.Request, body string, resp *http.Response, data []byte) {
	t := w.t
	t.Helper()
	u, _ := url.Parse(req.URL.String())
	vreq := (&http.Request{Method: req.Method, URL: u, Header: req.Header.Clone(), Host: u.Host}).WithContext(context.Background())
	vreq.Body = io.NopCloser(strings.NewReader(body))
	route, params, err := w.router.FindRoute(vreq)
	require.NoError(t, err, "%s %s is not in the OpenAPI document", req.Method, req.URL.Path)
	opts := &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc, MultiError: true, IncludeResponseStatus: true}
	in := &openapi3filter.RequestValidationInput{Request: vreq, PathParams: params, Route: route, Options: opts}
	out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: resp.StatusCode, Header: resp.Header, Options: opts}
	out.SetBodyBytes(data)
	require.NoError(t, openapi3filter.ValidateResponse(context.Background(), out), "%s %s → %d %s", req.Method, req.URL.Path, resp.StatusCode, data)
}

// currentURL is the connection string the target holds now; its password
// joins the leak scan.
func (w *world) currentURL() string {
	w.t.Helper()
	u, secrets := servetest.EnvURL(w.t, w.envFile)
	w.secrets = append(w.secrets, secrets...)
	return u
}

// scan fails the test if any response, or the API's log, ever carried a
// secret.
func (w *world) scan() {
	w.t.Helper()
	require.Empty(w.t, secret.Leaks(w.logs.Bytes(), w.secrets...), "the API's log leaks a secret")
	for _, b := range w.bodies {
		require.Empty(w.t, secret.Leaks(b, w.secrets...), "a response leaks a secret")
	}
}

func TestAuthFailures(t *testing.T) {
	w := newWorld(t)
	defer w.scan()
	type ep struct {
		method, path string
		need         auth.Scope
	}
	eps := []ep{
		{"GET", "/api/v1/credentials", auth.ScopeRead},
		{"GET", "/api/v1/credentials/app", auth.ScopeRead},
		{"GET", "/api/v1/credentials/app/plan", auth.ScopeRead},
		{"POST", "/api/v1/credentials/app/rotations", auth.ScopeRotate},
		{"POST", "/api/v1/credentials/app/revoke", auth.ScopeAdmin},
		{"POST", "/api/v1/credentials/app/retire", auth.ScopeAdmin},
		{"GET", "/api/v1/jobs/1", auth.ScopeRead},
		{"GET", "/api/v1/rotations", auth.ScopeRead},
		{"GET", "/api/v1/rotations/1", auth.ScopeRead},
		{"GET", "/api/v1/history", auth.ScopeRead},
		{"POST", "/api/v1/leaks", auth.ScopeRotate},
	}
	for _, e := range eps {
		r := w.call(e.method, e.path, "", "", nil)
		require.Equal(t, http.StatusUnauthorized, r.status, e.path)
		require.Contains(t, r.header.Get("WWW-Authenticate"), "Bearer", e.path)
		var ae struct{ Error struct{ Code string } }
		r.decode(t, &ae)
		require.Equal(t, "unauthenticated", ae.Error.Code)

		r = w.call(e.method, e.path, "wrong-token-0123456789abcdefgh", "", nil)
		require.Equal(t, http.StatusUnauthorized, r.status, e.path)
		r.decode(t, &ae)
		require.Equal(t, "invalid_token", ae.Error.Code)

		if e.need > auth.ScopeRead {
			low := readTok
			if e.need == auth.ScopeAdmin {
				low = rotateTok
			}
			r = w.call(e.method, e.path, low, `{"secret":"x"}`, nil)
			require.Equal(t, http.StatusForbidden, r.status, e.path)
			r.decode(t, &ae)
			require.Equal(t, "insufficient_scope", ae.Error.Code)
		}
	}
	// Nothing ran: no token could change anything.
	r := w.call("GET", "/api/v1/rotations", readTok, "", nil)
	require.JSONEq(t, `{"rotations": []}`, string(r.body))
}

func TestEndpoints(t *testing.T) {
	w := newWorld(t)
	defer w.scan()

	r := w.call("GET", "/api/v1/credentials", readTok, "", nil)
	require.Equal(t, http.StatusOK, r.status, string(r.body))
	var list struct{ Credentials []engine.CredentialStatus }
	r.decode(t, &list)
	require.Len(t, list.Credentials, 1)
	require.Equal(t, "app", list.Credentials[0].Name)
	require.Zero(t, list.Credentials[0].Version)

	r = w.call("GET", "/api/v1/credentials/nope", readTok, "", nil)
	require.Equal(t, http.StatusNotFound, r.status)
	require.Contains(t, string(r.body), "unknown_credential")

	r = w.call("GET", "/api/v1/credentials/app/plan", readTok, "", nil)
	require.Equal(t, http.StatusOK, r.status, string(r.body))
	var plan engine.Plan
	r.decode(t, &plan)
	require.Equal(t, "single", plan.Strategy)
	require.Len(t, plan.Targets, 1)

	// A rotation, asked for twice with one Idempotency-Key: one job.
	key := map[string]string{"Idempotency-Key": "k-1"}
	r = w.call("POST", "/api/v1/credentials/app/rotations", rotateTok, `{"reason":"test"}`, key)
	require.Equal(t, http.StatusAccepted, r.status, string(r.body))
	var job serve.Job
	r.decode(t, &job)
	job = w.done(job)
	require.Equal(t, "completed", job.State, job.Errors)
	require.Equal(t, serve.KindRotate, job.Kind)
	require.Equal(t, "ci", job.Actor)
	require.NotZero(t, job.RotationID)
	first := w.currentURL()
	r = w.call("POST", "/api/v1/credentials/app/rotations", rotateTok, "", key)
	require.Equal(t, http.StatusAccepted, r.status)
	var again serve.Job
	r.decode(t, &again)
	require.Equal(t, job.ID, again.ID)
	require.True(t, again.Duplicate)
	require.Equal(t, first, w.currentURL(), "the repeated request rotated again")

	r = w.call("POST", "/api/v1/credentials/app/rotations", rotateTok, `{"now":true}`, nil)
	require.Equal(t, http.StatusBadRequest, r.status)

	r = w.call("GET", fmt.Sprintf("/api/v1/jobs/%d", job.ID), readTok, "", nil)
	require.Equal(t, http.StatusOK, r.status)
	r = w.call("GET", "/api/v1/jobs/999", readTok, "", nil)
	require.Equal(t, http.StatusNotFound, r.status)
	r = w.call("GET", "/api/v1/jobs/x", readTok, "", nil)
	require.Equal(t, http.StatusBadRequest, r.status)

	r = w.call("GET", "/api/v1/credentials/app", readTok, "", nil)
	require.Equal(t, http.StatusOK, r.status)
	var st engine.CredentialStatus
	r.decode(t, &st)
	require.EqualValues(t, 1, st.Version)
	require.NotNil(t, st.NextDue)
	require.Equal(t, "verified", string(st.Targets[0].State))

	r = w.call("GET", "/api/v1/rotations?credential=app", readTok, "", nil)
	require.Equal(t, http.StatusOK, r.status)
	var rots struct{ Rotations []api.Rotation }
	r.decode(t, &rots)
	require.Len(t, rots.Rotations, 1)
	require.Equal(t, "succeeded", string(rots.Rotations[0].Status))
	r = w.call("GET", "/api/v1/rotations?limit=0", readTok, "", nil)
	require.Equal(t, http.StatusBadRequest, r.status)

	r = w.call("GET", fmt.Sprintf("/api/v1/rotations/%d", job.RotationID), readTok, "", nil)
	require.Equal(t, http.StatusOK, r.status)
	var rot api.Rotation
	r.decode(t, &rot)
	require.NotEmpty(t, rot.Steps)
	require.Len(t, rot.Targets, 1)
	require.Equal(t, "env", rot.Targets[0].Target)
	require.GreaterOrEqual(t, rot.Targets[0].Attempts, 1)
	r = w.call("GET", "/api/v1/rotations/12345", readTok, "", nil)
	require.Equal(t, http.StatusNotFound, r.status)

	// Retire on a single credential: nothing to retire, the job says so.
	r = w.call("POST", "/api/v1/credentials/app/retire", adminTok, `{"now":true}`, nil)
	require.Equal(t, http.StatusAccepted, r.status)
	var ret serve.Job
	r.decode(t, &ret)
	ret = w.done(ret)
	require.Equal(t, "cancelled", ret.State)
	require.Contains(t, strings.Join(ret.Errors, " "), "no old role is awaiting retirement")

	r = w.call("POST", "/api/v1/credentials/app/revoke", adminTok, "", nil)
	require.Equal(t, http.StatusAccepted, r.status)
	var rev serve.Job
	r.decode(t, &rev)
	rev = w.done(rev)
	require.Equal(t, "completed", rev.State, rev.Errors)
	require.NotEqual(t, first, w.currentURL())

	// History: the audit trail names the tokens that asked.
	r = w.call("GET", "/api/v1/history?credential=app&since=1h", readTok, "", nil)
	require.Equal(t, http.StatusOK, r.status)
	var hist struct{ Events []api.HistoryEvent }
	r.decode(t, &hist)
	actors := map[string]string{}
	for _, ev := range hist.Events {
		actors[ev.Event] = ev.Actor
	}
	require.Equal(t, "ci", actors["api.rotate_requested"])
	require.Equal(t, "ops", actors["api.revoke_requested"])
	require.Equal(t, "ops", actors["api.retire_requested"])
	r = w.call("GET", "/api/v1/history?result=succeeded", readTok, "", nil)
	require.Equal(t, http.StatusOK, r.status)
	r.decode(t, &hist)
	require.NotEmpty(t, hist.Events)
	for _, ev := range hist.Events {
		require.Equal(t, "succeeded", ev.Result)
	}
	for _, q := range []string{"result=maybe", "since=yesterday", "credential=nope"} {
		r = w.call("GET", "/api/v1/history?"+q, readTok, "", nil)
		require.Contains(t, []int{400, 404}, r.status, q)
	}

	r = w.call("GET", "/api/v1/openapi.json", "", "", nil)
	require.Equal(t, http.StatusOK, r.status)
	require.True(t, bytes.Equal(api.OpenAPI, r.body))
}

func TestLeaks(t *testing.T) {
	w := newWorld(t)
	defer w.scan()
	r := w.call("POST", "/api/v1/credentials/app/rotations", rotateTok, "", nil)
	require.Equal(t, http.StatusAccepted, r.status, string(r.body))
	var first serve.Job
	r.decode(t, &first)
	w.done(first)
	leaked := w.currentURL()

	// One that matches nothing.
	r = w.call("POST", "/api/v1/leaks", rotateTok, `{"secret":"postgresql://app:not-a-rotor-password@db/x"}`, nil)
	require.Equal(t, http.StatusOK, r.status, string(r.body))
	var res api.LeakResult
	r.decode(t, &res)
	require.False(t, res.Matched)
	require.NotContains(t, string(r.body), "not-a-rotor-password")

	r = w.call("POST", "/api/v1/leaks", rotateTok, `{}`, nil)
	require.Equal(t, http.StatusBadRequest, r.status)

	// The current connection string: revoked at once.
	body, _ := json.Marshal(map[string]string{"secret": leaked})
	r = w.call("POST", "/api/v1/leaks", rotateTok, string(body), nil)
	require.Equal(t, http.StatusAccepted, r.status, string(r.body))
	r.decode(t, &res)
	require.True(t, res.Matched)
	require.Equal(t, "app", res.Credential)
	require.Equal(t, "current", res.Stage)
	require.Equal(t, serve.KindRevoke, res.Job.Kind)
	require.Equal(t, serve.TriggerLeak, res.Job.Trigger)
	job := w.done(*res.Job)
	require.Equal(t, "completed", job.State, job.Errors)
	second := w.currentURL()
	require.NotEqual(t, leaked, second)

	// GitHub: a bad signature is refused, a good one feeds the same path.
	alert, _ := json.Marshal(map[string]any{"action": "created", "alert": map[string]any{"number": 1, "secret_type": "postgres_uri", "secret": second}})
	r = w.call("POST", "/hooks/github", "", string(alert), map[string]string{"X-GitHub-Event": "secret_scanning_alert", "X-Hub-Signature-256": "sha256=" + strings.Repeat("0", 64)})
	require.Equal(t, http.StatusUnauthorized, r.status)
	require.Equal(t, second, w.currentURL(), "an unsigned alert revoked")
	mac := hmac.New(sha256.New, []byte(hookKey))
	mac.Write(alert)
	sig := "sha256=" + hex.EncodeToString(mac.Sum(nil))
	r = w.call("POST", "/hooks/github", "", string(alert), map[string]string{"X-GitHub-Event": "secret_scanning_alert", "X-Hub-Signature-256": sig})
	require.Equal(t, http.StatusAccepted, r.status, string(r.body))
	r.decode(t, &res)
	require.True(t, res.Matched)
	require.Equal(t, "github-secret-scanning", res.Job.Actor)
	w.done(*res.Job)
	require.NotEqual(t, second, w.currentURL())

	// A ping, another event and another action are acknowledged, not acted on.
	for _, tc := range []struct{ event, body string }{
		{"ping", `{"zen":"x"}`},
		{"push", `{}`},
		{"secret_scanning_alert", `{"action":"resolved","alert":{"secret":"x"}}`},
	} {
		mac := hmac.New(sha256.New, []byte(hookKey))
		mac.Write([]byte(tc.body))
		r = w.call("POST", "/hooks/github", "", tc.body, map[string]string{"X-GitHub-Event": tc.event, "X-Hub-Signature-256": "sha256=" + hex.EncodeToString(mac.Sum(nil))})
		require.Equal(t, http.StatusOK, r.status, tc.event)
	}

	// The scheme is case-insensitive.
	r = w.call("GET", "/api/v1/credentials", "", "", map[string]string{"Authorization": "bearer " + readTok})
	require.Equal(t, http.StatusOK, r.status)

	r = w.call("GET", "/api/v1/history?credential=app", readTok, "", nil)
	var hist struct{ Events []api.HistoryEvent }
	r.decode(t, &hist)
	var matched []string
	for _, ev := range hist.Events {
		if ev.Event == "leak.matched" {
			matched = append(matched, ev.Actor)
		}
	}
	require.ElementsMatch(t, []string{"ci", "github-secret-scanning"}, matched)
}
