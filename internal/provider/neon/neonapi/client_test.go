package neonapi_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/rotorhq/rotor/internal/provider/neon/neonapi"
	"github.com/rotorhq/rotor/internal/secret"
)

const key = "napi_test_key_0123456789"

// script answers requests in turn from a list of handlers and records
// what it saw.
type script struct {
	mu       sync.Mutex
	steps    []http.HandlerFunc
	requests []*http.Request
}

func (s *script) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	i := len(s.requests)
	s.requests = append(s.requests, r)
	s.mu.Unlock()
	if i >= len(s.steps) {
		http.Error(w, "unexpected request", http.StatusTeapot)
		return
	}
	s.steps[i](w, r)
}

func (s *script) seen() []*http.Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*http.Request(nil), s.requests...)
}

func answer(status int, body string, header ...string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		for i := 0; i+1 < len(header); i += 2 {
			w.Header().Set(header[i], header[i+1])
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		fmt.Fprint(w, body)
	}
}

// client returns a client for srv whose sleeps are recorded, not slept.
func client(t *testing.T, srv *httptest.Server) (*neonapi.Client, *[]time.Duration) {
	t.Helper()
	var mu sync.Mutex
	sleeps := &[]time.Duration{}
	return &neonapi.Client{
		BaseURL: srv.URL, APIKey: secret.New(key), HTTP: srv.Client(),
		Sleep: func(ctx context.Context, d time.Duration) error {
			mu.Lock()
			defer mu.Unlock()
			*sleeps = append(*sleeps, d)
			return ctx.Err()
		},
		Jitter: func() float64 { return 0.5 },
	}, sleeps
}

const roleBody = `{"role":{"branch_id":"br-1","name":"app","password":"npg_AbCdEfGhIjKl","created_at":"2022-12-03T12:39:39Z","updated_at":"2022-12-03T12:58:18Z"},"operations":[]}`

func TestRequestHeaders(t *testing.T) {
	t.Parallel()
	s := &script{steps: []http.HandlerFunc{answer(423, `{"code":"","message":"locked"}`), answer(200, roleBody)}}
	srv := httptest.NewServer(s)
	defer srv.Close()
	c, _ := client(t, srv)
	role, _, err := c.ResetRolePassword(t.Context(), "proj-1", "br-1", "we/ird name?")
	require.NoError(t, err)
	require.Equal(t, "npg_AbCdEfGhIjKl", role.Password.Reveal())
	require.Equal(t, secret.Redacted, fmt.Sprint(role.Password), "the password travels in a redacting type")
	reqs := s.seen()
	require.Len(t, reqs, 2)
	for _, r := range reqs {
		require.Equal(t, "Bearer "+key, r.Header.Get("Authorization"))
		require.Equal(t, http.MethodPost, r.Method)
		require.Equal(t, "/projects/proj-1/branches/br-1/roles/we%2Fird%20name%3F/reset_password", r.URL.EscapedPath())
		require.Regexp(t, `^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`, r.Header.Get("X-Request-ID"))
	}
	require.NotEqual(t, reqs[0].Header.Get("X-Request-ID"), reqs[1].Header.Get("X-Request-ID"), "each attempt has its own request id")
}

func TestRetries(t *testing.T) {
	t.Parallel()
	date := time.Now().Add(3 * time.Second).UTC().Format(http.TimeFormat)
	tests := []struct {
		name      string
		steps     []http.HandlerFunc
		wantErr   error
		wantSeen  int
		wantSleep []time.Duration
	}{
		{"423 then success, backoff with jitter", []http.HandlerFunc{answer(423, `{"code":"","message":"busy"}`), answer(423, `{"code":"","message":"busy"}`), answer(200, roleBody)},
			nil, 3, []time.Duration{125 * time.Millisecond, 250 * time.Millisecond}},
		{"429 honours Retry-After seconds", []http.HandlerFunc{answer(429, `{"code":"","message":"slow down"}`, "Retry-After", "7"), answer(200, roleBody)},
			nil, 2, []time.Duration{7 * time.Second}},
		{"503 honours Retry-After as a date", []http.HandlerFunc{answer(503, `{"code":"","message":"down"}`, "Retry-After", date), answer(200, roleBody)},
			nil, 2, nil},
		{"500 is not retried", []http.HandlerFunc{answer(500, `{"code":"","message":"boom"}`)}, neonapi.ErrUnavailable, 1, nil},
		{"404 is not retried", []http.HandlerFunc{answer(404, `{"code":"","message":"role not found"}`)}, neonapi.ErrNotFound, 1, nil},
		{"Retry-After too long gives up at once", []http.HandlerFunc{answer(429, `{"code":"","message":"slow down"}`, "Retry-After", "3600")}, neonapi.ErrRateLimited, 1, nil},
		{"attempts are bounded for 503", []http.HandlerFunc{
			answer(503, `{"code":"","message":"down"}`), answer(503, `{"code":"","message":"down"}`), answer(503, `{"code":"","message":"down"}`),
			answer(503, `{"code":"","message":"down"}`), answer(503, `{"code":"","message":"down"}`), answer(503, `{"code":"","message":"down"}`),
			answer(200, roleBody)}, neonapi.ErrUnavailable, 6, []time.Duration{125 * time.Millisecond, 250 * time.Millisecond, 500 * time.Millisecond, time.Second, 2 * time.Second}},
		{"423 is not bounded by attempts", []http.HandlerFunc{
			answer(423, `{"code":"","message":"busy"}`), answer(423, `{"code":"","message":"busy"}`), answer(423, `{"code":"","message":"busy"}`),
			answer(423, `{"code":"","message":"busy"}`), answer(423, `{"code":"","message":"busy"}`), answer(423, `{"code":"","message":"busy"}`),
			answer(200, roleBody)}, nil, 7, []time.Duration{125 * time.Millisecond, 250 * time.Millisecond, 500 * time.Millisecond, time.Second, 2 * time.Second, 4 * time.Second}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := &script{steps: tt.steps}
			srv := httptest.NewServer(s)
			defer srv.Close()
			c, sleeps := client(t, srv)
			_, _, err := c.ResetRolePassword(t.Context(), "proj-1", "br-1", "app")
			if tt.wantErr == nil {
				require.NoError(t, err)
			} else {
				require.ErrorIs(t, err, tt.wantErr)
			}
			require.Len(t, s.seen(), tt.wantSeen)
			if tt.wantSleep != nil {
				require.Equal(t, tt.wantSleep, *sleeps)
			}
			if strings.Contains(tt.name, "date") {
				require.Len(t, *sleeps, 1)
				require.Greater(t, (*sleeps)[0], time.Second)
				require.LessOrEqual(t, (*sleeps)[0], 3*time.Second)
			}
		})
	}
}

func TestErrorText(t *testing.T) {
	t.Parallel()
	s := &script{steps: []http.HandlerFunc{
		answer(404, `{"code":"ROLE_NOT_FOUND","message":"role not found","request_id":"neon-req-7"}`),
		answer(401, `{"code":"","message":"authentication required: `+key+`"}`, "X-Neon-Ret-Request-Id", "neon-req-8"),
	}}
	srv := httptest.NewServer(s)
	defer srv.Close()
	c, _ := client(t, srv)
	_, err := c.GetRole(t.Context(), "proj-1", "br-1", "app")
	var apiErr *neonapi.Error
	require.ErrorAs(t, err, &apiErr)
	require.Equal(t, "neon api: GET /projects/proj-1/branches/br-1/roles/app answered 404 Not Found: role not found (code ROLE_NOT_FOUND, request_id neon-req-7)", err.Error())
	_, err = c.ListBranches(t.Context(), "proj-1")
	require.ErrorIs(t, err, neonapi.ErrUnauthorized)
	require.Contains(t, err.Error(), "request_id neon-req-8")
	require.NotContains(t, err.Error(), key, "the API key never appears in an error")
}

func TestNetworkErrors(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	c, _ := client(t, srv)
	srv.Close() // nothing listens any more
	c.MaxAttempts = 3
	_, _, err := c.ResetRolePassword(t.Context(), "proj-1", "br-1", "app")
	var netErr *neonapi.NetworkError
	require.ErrorAs(t, err, &netErr)
	require.Equal(t, 1, netErr.Attempts, "a POST that got no answer is not sent again")
	require.Contains(t, err.Error(), "may or may not have been applied")
	require.ErrorIs(t, err, neonapi.ErrUnavailable)
	_, err = c.ListBranches(t.Context(), "proj-1")
	require.ErrorAs(t, err, &netErr)
	require.Equal(t, 3, netErr.Attempts, "a GET is retried")
}

func TestListBranchesFollowsCursor(t *testing.T) {
	t.Parallel()
	branch := func(id string) string {
		return `{"id":"` + id + `","name":"` + id + `","default":false}`
	}
	var cursors []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c := r.URL.Query().Get("cursor")
		cursors = append(cursors, c)
		switch c {
		case "":
			fmt.Fprint(w, `{"branches":[`+branch("br-a")+`],"annotations":{},"pagination":{"next":"c1"}}`)
		case "c1":
			fmt.Fprint(w, `{"branches":[`+branch("br-b")+`],"annotations":{},"pagination":{"next":""}}`)
		}
	}))
	defer srv.Close()
	c, _ := client(t, srv)
	bs, err := c.ListBranches(t.Context(), "proj-1")
	require.NoError(t, err)
	require.Len(t, bs, 2)
	require.Equal(t, []string{"", "c1"}, cursors)
}

func TestWaitOperations(t *testing.T) {
	t.Parallel()
	op := func(id, status, errText string) string {
		b, _ := json.Marshal(map[string]any{"operation": map[string]any{"id": id, "project_id": "proj-1", "action": "apply_config", "endpoint_id": "ep-x", "status": status, "error": errText}})
		return string(b)
	}
	tests := []struct {
		name    string
		start   []neonapi.Operation
		steps   []http.HandlerFunc
		wantErr string
		polls   int
	}{
		{"finishes", []neonapi.Operation{{ID: "o1", Action: "apply_config", Status: "running"}, {ID: "o2", Action: "suspend_compute", Status: "scheduling"}},
			[]http.HandlerFunc{answer(200, op("o1", "finished", "")), answer(200, op("o2", "running", "")), answer(200, op("o2", "skipped", ""))}, "", 3},
		{"already done needs no poll", []neonapi.Operation{{ID: "o1", Status: "finished"}}, nil, "", 0},
		{"fails", []neonapi.Operation{{ID: "o1", Action: "apply_config", Status: "running", EndpointID: "ep-x"}},
			[]http.HandlerFunc{answer(200, op("o1", "running", "")), answer(200, op("o1", "failed", "compute unreachable"))},
			"neon operation o1 (apply_config on endpoint ep-x) ended failed: compute unreachable", 2},
		{"cancelled is a failure", []neonapi.Operation{{ID: "o1", Status: "running"}}, []http.HandlerFunc{answer(200, op("o1", "cancelled", ""))}, "ended cancelled", 1},
		{"error is a failure", []neonapi.Operation{{ID: "o1", Status: "error"}}, nil, "ended error", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := &script{steps: tt.steps}
			srv := httptest.NewServer(s)
			defer srv.Close()
			c, _ := client(t, srv)
			err := c.WaitOperations(t.Context(), "proj-1", tt.start)
			if tt.wantErr == "" {
				require.NoError(t, err)
			} else {
				var opErr *neonapi.OperationError
				require.ErrorAs(t, err, &opErr)
				require.ErrorContains(t, err, tt.wantErr)
			}
			require.Len(t, s.seen(), tt.polls)
		})
	}
}

func TestWaitOperationsDeadline(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(answer(200, `{"operation":{"id":"o1","project_id":"proj-1","action":"apply_config","status":"running"}}`))
	defer srv.Close()
	c, _ := client(t, srv)
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	c.Now = func() time.Time { return now }
	c.Sleep = func(ctx context.Context, d time.Duration) error { now = now.Add(d); return nil }
	c.OperationTimeout, c.PollInterval = time.Minute, 10*time.Second
	err := c.WaitOperations(t.Context(), "proj-1", []neonapi.Operation{{ID: "o1", Action: "apply_config", Status: "running"}})
	var opErr *neonapi.OperationError
	require.ErrorAs(t, err, &opErr)
	require.Equal(t, "neon operation o1 (apply_config) is still running after 1m0s", err.Error())
}

func TestCancelledContextStopsRetries(t *testing.T) {
	t.Parallel()
	s := &script{steps: []http.HandlerFunc{answer(503, `{"code":"","message":"down"}`), answer(200, roleBody)}}
	srv := httptest.NewServer(s)
	defer srv.Close()
	c, _ := client(t, srv)
	ctx, cancel := context.WithCancel(t.Context())
	c.Sleep = func(context.Context, time.Duration) error { cancel(); return context.Canceled }
	_, _, err := c.ResetRolePassword(ctx, "proj-1", "br-1", "app")
	require.ErrorIs(t, err, neonapi.ErrUnavailable)
	require.True(t, errors.Is(err, context.Canceled))
	require.Len(t, s.seen(), 1)
}

// lockedFor answers 423 until the clock passes until, then 200.
func lockedFor(now func() time.Time, until time.Time) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if now().Before(until) {
			answer(423, `{"code":"","message":"project already has running operations, scheduling of new ones is prohibited"}`)(w, r)
			return
		}
		answer(200, roleBody)(w, r)
	}
}

// TestLockedRetriedWithinOperationTimeout holds a branch locked for 40 s of
// a clock that moves only when the client sleeps: far longer than six
// attempts would wait, well within the operation timeout.
func TestLockedRetriedWithinOperationTimeout(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	srv := httptest.NewServer(lockedFor(clock, now.Add(40*time.Second)))
	defer srv.Close()
	c, _ := client(t, srv)
	c.Now = clock
	c.Sleep = func(ctx context.Context, d time.Duration) error {
		mu.Lock()
		defer mu.Unlock()
		now = now.Add(d)
		return ctx.Err()
	}
	c.OperationTimeout = 2 * time.Minute
	var events []neonapi.RetryEvent
	c.OnRetry = func(ev neonapi.RetryEvent) { events = append(events, ev) }

	role, _, err := c.ResetRolePassword(t.Context(), "proj-1", "br-1", "app")
	require.NoError(t, err)
	require.Equal(t, "npg_AbCdEfGhIjKl", role.Password.Reveal())
	require.Greater(t, len(events), neonapi.DefaultMaxAttempts, "more waits than the attempt limit allows")
	var waited time.Duration
	for i, ev := range events {
		require.Equal(t, http.StatusLocked, ev.Status)
		require.Equal(t, i+1, ev.Attempt)
		require.Equal(t, 2*time.Minute, ev.Limit)
		require.Equal(t, waited, ev.Elapsed)
		require.Contains(t, ev.Message, "running operations")
		require.LessOrEqual(t, ev.Wait, neonapi.DefaultMaxBackoff)
		waited += ev.Wait
	}
	require.GreaterOrEqual(t, waited, 40*time.Second)
	require.Less(t, waited, 2*time.Minute)
}

func TestLockedPastOperationTimeout(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	srv := httptest.NewServer(lockedFor(clock, now.Add(time.Hour)))
	defer srv.Close()
	c, _ := client(t, srv)
	c.Now = clock
	c.Sleep = func(ctx context.Context, d time.Duration) error { now = now.Add(d); return nil }
	c.OperationTimeout = 30 * time.Second

	_, _, err := c.ResetRolePassword(t.Context(), "proj-1", "br-1", "app")
	var locked *neonapi.LockedError
	require.ErrorAs(t, err, &locked)
	require.ErrorIs(t, err, neonapi.ErrLocked)
	require.LessOrEqual(t, locked.Waited, 30*time.Second)
	require.Equal(t, 30*time.Second, locked.Limit)
	require.ErrorContains(t, err, "423 Locked")
	require.ErrorContains(t, err, "raise operation_timeout")
	require.NotContains(t, err.Error(), key)
}
