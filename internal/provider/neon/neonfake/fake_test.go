package neonfake_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/rotorhq/rotor/internal/pgtest"
	"github.com/rotorhq/rotor/internal/provider/neon/neonfake"
	"github.com/rotorhq/rotor/internal/secret"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// project is a fake with one branch on the shared cluster and one
// database owned by a Neon-made owner role.
type project struct {
	t       *testing.T
	s       *neonfake.Server
	branch  *neonfake.Branch
	db      string
	owner   string
	ownerPW secret.String
}

func newProject(t *testing.T, cfg neonfake.Config) *project {
	t.Helper()
	s := neonfake.Start(t, cfg)
	b, err := s.AddBranch(t.Context(), neonfake.BranchSpec{Name: "main", Cluster: pgtest.Shared(t)})
	require.NoError(t, err)
	db, owner := pgtest.UniqueName(t, "neondb"), pgtest.UniqueName(t, "owner")
	pw, err := s.AddDatabase(t.Context(), b.ID, db, owner)
	require.NoError(t, err)
	return &project{t: t, s: s, branch: b, db: db, owner: owner, ownerPW: pw}
}

type answer struct {
	status int
	header http.Header
	body   map[string]any
	raw    []byte
}

func (p *project) call(method, path string, body any) answer {
	p.t.Helper()
	return call(p.t, p.s, p.s.APIKey, method, "/projects/"+p.s.ProjectID+path, body)
}

func call(t *testing.T, s *neonfake.Server, key, method, path string, body any) answer {
	t.Helper()
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		require.NoError(t, err)
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, s.URL+path, r)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("X-Request-ID", "req-"+strings.ToLower(t.Name()))
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	a := answer{status: resp.StatusCode, header: resp.Header, raw: raw}
	if len(raw) > 0 {
		require.NoError(t, json.Unmarshal(raw, &a.body), "body: %s", raw)
	}
	return a
}

func (p *project) rolePath(role string) string {
	return "/branches/" + p.branch.ID + "/roles/" + url.PathEscape(role)
}

func (p *project) loginURL(role string, pw secret.String) secret.String {
	return p.branch.Cluster.URL(role, pw, p.db, "channel_binding=require")
}

func field(t *testing.T, m map[string]any, path ...string) any {
	t.Helper()
	var v any = m
	for _, k := range path {
		obj, ok := v.(map[string]any)
		require.True(t, ok, "no object at %q", k)
		v = obj[k]
	}
	return v
}

// pollUntilDone reads every operation until none is left unfinished and
// returns their final statuses.
func (p *project) pollUntilDone(ops []any) []string {
	p.t.Helper()
	statuses := make([]string, len(ops))
	for i, o := range ops {
		id := o.(map[string]any)["id"].(string)
		for n := 0; ; n++ {
			require.Less(p.t, n, 20, "operation %s never ended", id)
			a := p.call(http.MethodGet, "/operations/"+id, nil)
			require.Equal(p.t, http.StatusOK, a.status)
			st := field(p.t, a.body, "operation", "status").(string)
			if st != "scheduling" && st != "running" {
				statuses[i] = st
				break
			}
		}
	}
	return statuses
}

func TestRoleLifecycle(t *testing.T) {
	t.Parallel()
	// A clock that moves a second per reading, so timestamps differ.
	var mu sync.Mutex
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); now = now.Add(time.Second); return now }
	p := newProject(t, neonfake.Config{Now: clock})
	role := pgtest.UniqueName(t, "sally")

	created := p.call(http.MethodPost, "/branches/"+p.branch.ID+"/roles", map[string]any{"role": map[string]any{"name": role}})
	require.Equal(t, http.StatusCreated, created.status)
	first := secret.New(field(t, created.body, "role", "password").(string))
	require.Regexp(t, `^npg_[A-Za-z0-9]{12}$`, first.Reveal())
	require.Equal(t, []string{"finished", "finished"}, p.pollUntilDone(created.body["operations"].([]any)))
	require.NoError(t, pgtest.CanLogin(t.Context(), p.loginURL(role, first)))

	got := p.call(http.MethodGet, p.rolePath(role), nil)
	require.Equal(t, http.StatusOK, got.status)
	require.NotContains(t, field(t, got.body, "role"), "password", "get must not show the password")
	list := p.call(http.MethodGet, "/branches/"+p.branch.ID+"/roles", nil)
	require.Equal(t, http.StatusOK, list.status)
	require.NotContains(t, string(list.raw), "password")
	require.Contains(t, string(list.raw), role)

	revealed := p.call(http.MethodGet, p.rolePath(role)+"/reveal_password", nil)
	require.Equal(t, http.StatusOK, revealed.status)
	require.Equal(t, first.Reveal(), revealed.body["password"])

	reset := p.call(http.MethodPost, p.rolePath(role)+"/reset_password", nil)
	require.Equal(t, http.StatusOK, reset.status)
	second := secret.New(field(t, reset.body, "role", "password").(string))
	require.False(t, first.Equal(second))
	ops := reset.body["operations"].([]any)
	require.Len(t, ops, 2)
	require.Equal(t, "apply_config", ops[0].(map[string]any)["action"])
	require.Equal(t, "running", ops[0].(map[string]any)["status"])
	require.Equal(t, "suspend_compute", ops[1].(map[string]any)["action"])
	require.Equal(t, "scheduling", ops[1].(map[string]any)["status"])
	require.NotEqual(t, field(t, reset.body, "role", "created_at"), field(t, reset.body, "role", "updated_at"), "updated_at moves on reset, created_at stays")

	// The old password works until the last operation finishes.
	require.NoError(t, pgtest.CanLogin(t.Context(), p.loginURL(role, first)))
	require.Equal(t, []string{"finished", "finished"}, p.pollUntilDone(ops))
	require.Error(t, pgtest.CanLogin(t.Context(), p.loginURL(role, first)))
	require.NoError(t, pgtest.CanLogin(t.Context(), p.loginURL(role, second)))

	deleted := p.call(http.MethodDelete, p.rolePath(role), nil)
	require.Equal(t, http.StatusOK, deleted.status)
	require.NotContains(t, field(t, deleted.body, "role"), "password")
	p.pollUntilDone(deleted.body["operations"].([]any))
	again := p.call(http.MethodDelete, p.rolePath(role), nil)
	require.Equal(t, http.StatusNoContent, again.status)
	require.Empty(t, again.raw)
	missing := p.call(http.MethodGet, p.rolePath(role), nil)
	require.Equal(t, http.StatusNotFound, missing.status)
}

func TestErrorsCarryRequestID(t *testing.T) {
	t.Parallel()
	p := newProject(t, neonfake.Config{})
	a := p.call(http.MethodPost, p.rolePath("nobody_"+strings.ToLower(pgtest.UniqueName(t, "x")))+"/reset_password", nil)
	require.Equal(t, http.StatusNotFound, a.status)
	want := "req-" + strings.ToLower(t.Name())
	require.Equal(t, want, a.body["request_id"])
	require.Contains(t, a.body, "code")
	require.NotEmpty(t, a.body["message"])
	require.Equal(t, want, a.header.Get("X-Neon-Ret-Request-Id"))
}

func TestUnauthorized(t *testing.T) {
	t.Parallel()
	p := newProject(t, neonfake.Config{})
	for _, key := range []string{"", "napi_wrong"} {
		a := call(t, p.s, key, http.MethodGet, "/projects/"+p.s.ProjectID+"/branches", nil)
		require.Equal(t, http.StatusUnauthorized, a.status)
		require.NotEmpty(t, a.body["message"])
	}
}

// TestRevealWithoutStoredPasswords: a project that does not store
// passwords gives none out, from reveal_password nor from connection_uri
// (412, as Neon's SDK sees it: neon-api.md §6); a reset still answers
// with the new password, once.
func TestRevealWithoutStoredPasswords(t *testing.T) {
	t.Parallel()
	p := newProject(t, neonfake.Config{DisableStorePasswords: true})
	q := url.Values{"database_name": {p.db}, "role_name": {p.owner}}
	for _, path := range []string{p.rolePath(p.owner) + "/reveal_password", "/connection_uri?" + q.Encode()} {
		a := p.call(http.MethodGet, path, nil)
		require.Equal(t, http.StatusPreconditionFailed, a.status, path)
		require.Equal(t, "storing passwords is not enabled for the project", a.body["message"])
		require.NotContains(t, string(a.raw), p.ownerPW.Reveal())
	}
	reset := p.call(http.MethodPost, p.rolePath(p.owner)+"/reset_password", nil)
	require.Equal(t, http.StatusOK, reset.status)
	pw := field(t, reset.body, "role", "password").(string)
	p.pollUntilDone(reset.body["operations"].([]any))
	require.NoError(t, pgtest.CanLogin(t.Context(), p.viaProxy(p.owner, secret.New(pw))))
	a := p.call(http.MethodGet, "/connection_uri?"+q.Encode(), nil)
	require.Equal(t, http.StatusPreconditionFailed, a.status)
	require.NotContains(t, string(a.raw), pw)
}

func TestLockedWhileOperationRuns(t *testing.T) {
	t.Parallel()
	p := newProject(t, neonfake.Config{OpTicks: 3})
	first := p.call(http.MethodPost, p.rolePath(p.owner)+"/reset_password", nil)
	require.Equal(t, http.StatusOK, first.status)
	second := p.call(http.MethodPost, p.rolePath(p.owner)+"/reset_password", nil)
	require.Equal(t, http.StatusLocked, second.status)
	require.Contains(t, second.body["message"], "running conflicting operations")
	p.pollUntilDone(first.body["operations"].([]any))
	third := p.call(http.MethodPost, p.rolePath(p.owner)+"/reset_password", nil)
	require.Equal(t, http.StatusOK, third.status)
}

func TestRateLimit(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	p := newProject(t, neonfake.Config{RateLimit: 2, RateWindow: time.Minute, Now: clock})
	require.Equal(t, http.StatusOK, p.call(http.MethodGet, "/branches", nil).status)
	require.Equal(t, http.StatusOK, p.call(http.MethodGet, "/branches", nil).status)
	limited := p.call(http.MethodGet, "/branches", nil)
	require.Equal(t, http.StatusTooManyRequests, limited.status)
	require.Equal(t, "60", limited.header.Get("Retry-After"))
	mu.Lock()
	now = now.Add(time.Minute)
	mu.Unlock()
	require.Equal(t, http.StatusOK, p.call(http.MethodGet, "/branches", nil).status)
}

func TestInjectedFaults(t *testing.T) {
	t.Parallel()
	p := newProject(t, neonfake.Config{})
	p.s.Inject(neonfake.Fault{Method: http.MethodGet, PathSuffix: "/branches", Status: http.StatusServiceUnavailable, RetryAfter: 2 * time.Second, Count: 2})
	for range 2 {
		a := p.call(http.MethodGet, "/branches", nil)
		require.Equal(t, http.StatusServiceUnavailable, a.status)
		require.Equal(t, "2", a.header.Get("Retry-After"))
	}
	require.Equal(t, http.StatusOK, p.call(http.MethodGet, "/branches", nil).status)
}

func TestFailedOperationKeepsOldPassword(t *testing.T) {
	t.Parallel()
	p := newProject(t, neonfake.Config{})
	p.s.FailOperations(1, "compute is not responding")
	reset := p.call(http.MethodPost, p.rolePath(p.owner)+"/reset_password", nil)
	require.Equal(t, http.StatusOK, reset.status)
	require.Equal(t, []string{"failed", "cancelled"}, p.pollUntilDone(reset.body["operations"].([]any)))
	id := reset.body["operations"].([]any)[0].(map[string]any)["id"].(string)
	op := p.call(http.MethodGet, "/operations/"+id, nil)
	require.Equal(t, "compute is not responding", field(t, op.body, "operation", "error"))
	require.NoError(t, pgtest.CanLogin(t.Context(), p.loginURL(p.owner, p.ownerPW)), "a failed reset must not change the password")
}

func TestResetDropsConnections(t *testing.T) {
	t.Parallel()
	p := newProject(t, neonfake.Config{})
	conn := pgtest.Connect(t.Context(), t, p.loginURL(p.owner, p.ownerPW))
	reset := p.call(http.MethodPost, p.rolePath(p.owner)+"/reset_password", nil)
	_, err := conn.Exec(t.Context(), "SELECT 1")
	require.NoError(t, err, "connections survive until the operations finish")
	p.pollUntilDone(reset.body["operations"].([]any))
	_, err = conn.Exec(t.Context(), "SELECT 1")
	require.Error(t, err, "Neon drops the compute's connections on reset")
}

func TestConnectionURI(t *testing.T) {
	t.Parallel()
	p := newProject(t, neonfake.Config{})
	for _, pooled := range []bool{false, true} {
		q := url.Values{"database_name": {p.db}, "role_name": {p.owner}, "branch_id": {p.branch.ID}}
		if pooled {
			q.Set("pooled", "true")
		}
		a := p.call(http.MethodGet, "/connection_uri?"+q.Encode(), nil)
		require.Equal(t, http.StatusOK, a.status)
		u, err := url.Parse(a.body["uri"].(string))
		require.NoError(t, err)
		host := p.branch.Host
		if pooled {
			host = p.branch.EndpointID + "-pooler" + strings.TrimPrefix(p.branch.Host, p.branch.EndpointID)
		}
		require.Equal(t, host, u.Host)
		require.Equal(t, "/"+p.db, u.Path)
		require.Equal(t, "sslmode=require&channel_binding=require", u.RawQuery)
		pw, _ := u.User.Password()
		require.Equal(t, p.ownerPW.Reveal(), pw)
		// The URI logs in where Route sends it, as Neon's does.
		require.NoError(t, pgtest.CanLogin(t.Context(), p.endpointURL(u.Host, u.User.Username(), secret.New(pw), p.db)))
	}
}

func TestEndpointsAndBranches(t *testing.T) {
	t.Parallel()
	s := neonfake.Start(t, neonfake.Config{})
	_, err := s.AddBranch(t.Context(), neonfake.BranchSpec{Name: "main", Cluster: pgtest.Shared(t), ReadReplica: true})
	require.NoError(t, err)
	b := s.Branch("main")
	a := call(t, s, s.APIKey, http.MethodGet, "/projects/"+s.ProjectID+"/branches/"+b.ID+"/endpoints", nil)
	require.Equal(t, http.StatusOK, a.status)
	eps := a.body["endpoints"].([]any)
	require.Len(t, eps, 2)
	require.Equal(t, "read_only", eps[0].(map[string]any)["type"])
	require.Equal(t, b.Host, eps[1].(map[string]any)["host"])
	require.Regexp(t, `^ep-[a-z]+-[a-z]+-[a-z0-9]{8}\.us-east-2\.aws\.neon\.tech$`, b.Host)
	br := call(t, s, s.APIKey, http.MethodGet, "/projects/"+s.ProjectID+"/branches", nil)
	require.Equal(t, true, br.body["branches"].([]any)[0].(map[string]any)["default"])
	one := call(t, s, s.APIKey, http.MethodGet, "/projects/"+s.ProjectID+"/branches/"+b.ID, nil)
	require.Equal(t, http.StatusOK, one.status)
}

// TestValidatorCatchesBreaks proves the spec check can fail: answers that
// break the contract in the ways a fake could drift are refused.
func TestValidatorCatchesBreaks(t *testing.T) {
	t.Parallel()
	v, err := neonfake.LoadValidator()
	if err != nil && os.Getenv("CI") == "" {
		t.Skipf("skipping outside CI: %v", err)
	}
	require.NoError(t, err, "CI keeps the Neon OpenAPI spec in ../shared/reference beside the repository")
	h := http.Header{"Content-Type": {"application/json"}}
	tests := []struct {
		name, method, path, query string
		status                    int
		body                      string
		wantErr                   string
	}{
		{"valid role", "GET", "/projects/p-1/branches/br-1/roles/sally", "", 200,
			`{"role":{"branch_id":"br-1","name":"sally","created_at":"2022-12-03T12:58:18Z","updated_at":"2022-12-03T12:58:18Z"}}`, ""},
		{"role without created_at", "GET", "/projects/p-1/branches/br-1/roles/sally", "", 200,
			`{"role":{"branch_id":"br-1","name":"sally","updated_at":"2022-12-03T12:58:18Z"}}`, "created_at"},
		{"error without message", "GET", "/projects/p-1/branches/br-1/roles/sally", "", 404, `{"code":""}`, "message"},
		{"unknown status enum", "GET", "/projects/p-1/operations/6bef07a0-ebca-40cd-9100-7324036cfff2", "", 200,
			`{"operation":{"id":"6bef07a0-ebca-40cd-9100-7324036cfff2","project_id":"p-1","action":"apply_config","status":"done","failures_count":0,"created_at":"2022-12-03T12:58:18Z","updated_at":"2022-12-03T12:58:18Z","total_duration_ms":1}}`, "status"},
		{"connection_uri without role_name", "GET", "/projects/p-1/connection_uri", "database_name=neondb", 200, `{"uri":"postgresql://x"}`, "role_name"},
		{"path not in the spec", "GET", "/projects/p-1/secrets", "", 200, `{}`, "not in the Neon API spec"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := v.Check(tt.method, tt.path, tt.query, http.Header{}, nil, tt.status, h, []byte(tt.body))
			if tt.wantErr == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tt.wantErr)
		})
	}
}
