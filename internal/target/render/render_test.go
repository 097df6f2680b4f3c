package render_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/rotorhq/rotor/internal/secret"
	"github.com/rotorhq/rotor/internal/target"
	"github.com/rotorhq/rotor/internal/target/render"
	"github.com/rotorhq/rotor/internal/target/render/renderfake"
	"github.com/rotorhq/rotor/internal/target/targettest"
)

const (
	svc   = "srv-web"
	svc2  = "srv-worker"
	group = "evg-db"
)

func TestConformance(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		opts string
		// dest is the service or group the values land in.
		dest string
	}{
		{name: "service, deployed", opts: "service_id: " + svc, dest: svc},
		{name: "service, not deployed", opts: "{service_id: " + svc + ", deploy: false}", dest: svc},
		{name: "environment group, services deployed", opts: "{env_group_id: " + group + ", deploy_services: [" + svc + ", " + svc2 + "], deploy_mode: deploy_only}", dest: group},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var fakes sync.Map
			targettest.Exercise(t, targettest.Harness{
				New: func(t *testing.T) target.Target {
					f := newFake(t, renderfake.Options{})
					tg := newTarget(t, f, nil, tc.opts)
					fakes.Store(tg, f)
					return tg
				},
				Seed: func(t *testing.T, tg target.Target, values map[string]secret.String) {
					f := fakeOf(t, &fakes, tg)
					for k, v := range values {
						f.Seed(tc.dest, k, v.Reveal())
					}
				},
				Break: func(t *testing.T, tg target.Target) {
					fakeOf(t, &fakes, tg).FailNext(1000, http.StatusInternalServerError)
				},
			})
		})
	}
}

func TestNew(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name     string
		opts     string
		wantDest string
		reloader bool
		wantErr  string
		sentinel error
	}{
		{name: "service deploys by default", opts: "{service_id: srv-1, token: k}", wantDest: "render service srv-1", reloader: true},
		{name: "service without deploy", opts: "{service_id: srv-1, deploy: false, token: k}", wantDest: "render service srv-1"},
		{name: "group without deploy", opts: "{env_group_id: evg-1, token: k}", wantDest: "render environment group evg-1"},
		{name: "group with deploy_services", opts: "{env_group_id: evg-1, deploy_services: [srv-1], deploy_mode: build_and_deploy, token: k}", wantDest: "render environment group evg-1", reloader: true},
		{name: "neither id", opts: "{token: k}", wantErr: "no service_id or env_group_id", sentinel: target.ErrInvalid},
		{name: "both ids", opts: "{service_id: srv-1, env_group_id: evg-1, token: k}", wantErr: "service_id and env_group_id are both set", sentinel: target.ErrInvalid},
		{name: "deploy_services on a service", opts: "{service_id: srv-1, deploy_services: [srv-2], token: k}", wantErr: "deploy_services is for environment groups", sentinel: target.ErrInvalid},
		{name: "group deploy without services", opts: "{env_group_id: evg-1, deploy: true, token: k}", wantErr: "needs deploy_services", sentinel: target.ErrInvalid},
		{name: "group deploy false with services", opts: "{env_group_id: evg-1, deploy: false, deploy_services: [srv-1], token: k}", wantErr: "deploy: false contradicts deploy_services", sentinel: target.ErrInvalid},
		{name: "service listed twice", opts: "{env_group_id: evg-1, deploy_services: [srv-1, srv-1], token: k}", wantErr: "service srv-1 is listed twice", sentinel: target.ErrInvalid},
		{name: "unknown deploy mode", opts: "{service_id: srv-1, deploy_mode: restart, token: k}", wantErr: `deploy_mode "restart" is not one of deploy_only, build_and_deploy`, sentinel: target.ErrInvalid},
		{name: "deploy mode without deploy", opts: "{service_id: srv-1, deploy: false, deploy_mode: deploy_only, token: k}", wantErr: "deploy_mode is set but nothing is deployed", sentinel: target.ErrInvalid},
		{name: "no token", opts: "{service_id: srv-1}", wantErr: "add token: ${RENDER_API_KEY}", sentinel: target.ErrAuth},
		{name: "bad api_url", opts: "{service_id: srv-1, token: k, api_url: 'api.render.com'}", wantErr: "is not an http(s) URL", sentinel: target.ErrInvalid},
		{name: "unknown option", opts: "{service_id: srv-1, token: k, restart: true}", wantErr: "field restart not found"},
		{name: "reload_poll", opts: "{service_id: srv-1, token: k, reload_poll: 30s}", wantDest: "render service srv-1", reloader: true},
		{name: "reload_poll without deploy", opts: "{service_id: srv-1, deploy: false, reload_poll: 30s, token: k}", wantErr: "reload_poll is set but nothing is deployed", sentinel: target.ErrInvalid},
		{name: "reload_poll not a duration", opts: "{service_id: srv-1, reload_poll: 10, token: k}", wantErr: `reload_poll "10" is not a positive duration`, sentinel: target.ErrInvalid},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tg, err := render.New(target.Params{Name: "api", Decode: targettest.DecodeYAML(tc.opts)})
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				require.ErrorContains(t, err, `render target "api"`)
				if tc.sentinel != nil {
					require.ErrorIs(t, err, tc.sentinel)
				}
				require.Nil(t, tg)
				return
			}
			require.NoError(t, err)
			require.Equal(t, target.Info{Type: "render", Name: "api", Destination: tc.wantDest, Idempotent: true}, tg.Info())
			ok := target.Discover(tg).Reloader != nil
			require.Equal(t, tc.reloader, ok)
		})
	}
}

// TestPutRequestShape checks that each key gets its own add-or-update, the
// replace-all endpoint is never used, and unchanged keys are not written.
func TestPutRequestShape(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, opts, dest, prefix string
	}{
		{name: "service", opts: "service_id: " + svc, dest: svc, prefix: "/v1/services/" + svc},
		{name: "environment group", opts: "env_group_id: " + group, dest: group, prefix: "/v1/env-groups/" + group},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFake(t, renderfake.Options{})
			f.Seed(tc.dest, "OTHER", "keep me")
			f.Seed(tc.dest, "PGUSER", "app_blue")
			rec := &recorder{}
			tg := newTarget(t, f, rec, tc.opts)
			url := secret.New("postgres://app:pw@host/db")
			values := map[string]secret.String{"DATABASE_URL": url, "PGUSER": secret.New("app_blue")}

			resp, err := tg.Put(t.Context(), putReq(values, "DATABASE_URL", "PGUSER"))
			require.NoError(t, err)
			require.True(t, resp.Changed)
			require.Equal(t, "1 of 2 variable(s) written", resp.Ref)
			var lines []string
			for _, c := range rec.all() {
				lines = append(lines, c.line())
			}
			require.Equal(t, []string{
				"GET " + tc.prefix + "/env-vars/DATABASE_URL",
				"PUT " + tc.prefix + "/env-vars/DATABASE_URL",
				"GET " + tc.prefix + "/env-vars/PGUSER",
			}, lines, "PGUSER already holds its value and is not written")
			require.JSONEq(t, `{"value":"postgres://app:pw@host/db"}`, string(rec.all()[1].body))

			got, ok := f.Var(tc.dest, "DATABASE_URL")
			require.True(t, ok)
			require.True(t, url.Equal(secret.New(got)))
			other, _ := f.Var(tc.dest, "OTHER")
			require.Equal(t, "keep me", other)

			resp, err = tg.Put(t.Context(), putReq(values, "DATABASE_URL", "PGUSER"))
			require.NoError(t, err)
			require.False(t, resp.Changed)
			require.Len(t, f.Writes(), 1, "a repeated Put must only read")
			for _, w := range f.Writes() {
				require.NotEqual(t, tc.prefix+"/env-vars", w.Path, "the replace-all endpoint must never be used")
			}
		})
	}
}

func TestPutTransientErrors(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 8, 1, 9, 0, 0, 0, time.UTC)
	cases := []struct {
		name       string
		arrange    func(*renderfake.Server)
		retryAfter time.Duration
	}{
		{name: "429 with Ratelimit-Reset", arrange: func(f *renderfake.Server) { f.RateLimit(1, 42*time.Second) }, retryAfter: 42 * time.Second},
		{name: "429 on the first request", arrange: func(f *renderfake.Server) { f.RateLimit(0, 5*time.Second) }, retryAfter: 5 * time.Second},
		{name: "500 that echoes the request body"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			canary := secret.New("postgres://app:canary-r3nd3r@host/db")
			f := newFake(t, renderfake.Options{Now: func() time.Time { return now }})
			var rt http.RoundTripper
			if tc.retryAfter == 0 {
				// Fail the write, not the read before it, so the echo holds the value.
				rt = &armOnWrite{arm: func() { f.FailNext(1, http.StatusInternalServerError) }}
			}
			tg := build(t, f, rt, f.Token(), "service_id: "+svc, func() time.Time { return now })
			if tc.arrange != nil {
				tc.arrange(f)
			}
			_, err := tg.Put(t.Context(), putReq(map[string]secret.String{"DATABASE_URL": canary}, "DATABASE_URL"))
			var re *target.RetryableError
			require.ErrorAs(t, err, &re)
			require.Equal(t, tc.retryAfter, re.RetryAfter)
			require.ErrorContains(t, err, `render target "api"`)
			require.Empty(t, secret.Leaks([]byte(fmt.Sprintf("%v %+v", err, err)), canary))
		})
	}
}

// TestPutGivesUpWithTheContext uses the fake's delay: a call that outlives
// the engine's per-target timeout ends with the context's error, still
// without the value.
func TestPutGivesUpWithTheContext(t *testing.T) {
	t.Parallel()
	canary := secret.New("postgres://app:canary-sl0w@host/db")
	f := newFake(t, renderfake.Options{})
	tg := newTarget(t, f, nil, "service_id: "+svc)
	f.SetDelay(time.Hour)
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
	defer cancel()
	_, err := tg.Put(ctx, putReq(map[string]secret.String{"DATABASE_URL": canary}, "DATABASE_URL"))
	require.ErrorIs(t, err, context.DeadlineExceeded)
	var re *target.RetryableError
	require.ErrorAs(t, err, &re, "an idempotent write that timed out may be sent again")
	require.Empty(t, secret.Leaks([]byte(fmt.Sprintf("%v %+v", err, err)), canary))
}

func TestAuthError(t *testing.T) {
	t.Parallel()
	calls := []struct {
		name string
		call func(*testing.T, target.Target) error
	}{
		{"Put", func(t *testing.T, tg target.Target) error {
			_, err := tg.Put(t.Context(), putReq(map[string]secret.String{"K": secret.New("v")}, "K"))
			return err
		}},
		{"Check", func(t *testing.T, tg target.Target) error {
			_, err := tg.(target.Checker).Check(t.Context(), target.CheckRequest{Keys: []string{"K"}})
			return err
		}},
		{"Validate", func(t *testing.T, tg target.Target) error {
			_, err := tg.(target.Validator).Validate(t.Context(), target.ValidateRequest{})
			return err
		}},
	}
	for _, c := range calls {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			f := newFake(t, renderfake.Options{})
			tg := build(t, f, nil, "rnd_wrong_key_77", "service_id: "+svc, nil)
			err := c.call(t, tg)
			require.ErrorIs(t, err, target.ErrAuth)
			require.ErrorContains(t, err, "token: ${RENDER_API_KEY}")
			require.ErrorContains(t, err, "401")
			require.NotContains(t, err.Error(), "rnd_wrong_key_77")
			require.Empty(t, f.Writes())
		})
	}
}

func TestCheck(t *testing.T) {
	t.Parallel()
	f := newFake(t, renderfake.Options{})
	f.Seed(svc, "DATABASE_URL", "postgres://a")
	tg := newTarget(t, f, nil, "service_id: "+svc).(target.Checker)
	resp, err := tg.Check(t.Context(), target.CheckRequest{Keys: []string{"DATABASE_URL", "MISSING"}})
	require.NoError(t, err)
	require.True(t, secret.New("postgres://a").Equal(resp.Values["DATABASE_URL"]))
	_, ok := resp.Values["MISSING"]
	require.False(t, ok)
	require.Empty(t, resp.Unreadable)

	gone := newTarget(t, f, nil, "service_id: srv-gone").(target.Checker)
	_, err = gone.Check(t.Context(), target.CheckRequest{Keys: []string{"DATABASE_URL"}})
	require.ErrorIs(t, err, target.ErrNotFound, "a missing service is an error, not an empty service")
	require.ErrorContains(t, err, "cannot find service srv-gone")
}

func TestValidate(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name      string
		opts      string
		wantErr   string
		wantCalls []string
	}{
		{name: "service", opts: "service_id: " + svc, wantCalls: []string{"GET /v1/services/" + svc}},
		{name: "group and its services", opts: "{env_group_id: " + group + ", deploy_services: [" + svc + ", " + svc2 + "]}", wantCalls: []string{"GET /v1/env-groups/" + group, "GET /v1/services/" + svc, "GET /v1/services/" + svc2}},
		{name: "missing service", opts: "service_id: srv-nope", wantErr: "cannot find service srv-nope"},
		{name: "missing group", opts: "env_group_id: evg-nope", wantErr: "cannot find environment group evg-nope"},
		{name: "missing deploy service", opts: "{env_group_id: " + group + ", deploy_services: [srv-nope]}", wantErr: "cannot find service srv-nope"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFake(t, renderfake.Options{})
			rec := &recorder{}
			tg := newTarget(t, f, rec, tc.opts)
			_, err := tg.(target.Validator).Validate(t.Context(), target.ValidateRequest{})
			require.Empty(t, f.Writes(), "Validate must not write")
			if tc.wantErr != "" {
				require.ErrorIs(t, err, target.ErrNotFound)
				require.ErrorContains(t, err, tc.wantErr)
				require.ErrorContains(t, err, "check service_id/env_group_id")
				return
			}
			require.NoError(t, err)
			var lines []string
			for _, c := range rec.all() {
				lines = append(lines, c.line())
			}
			require.Equal(t, tc.wantCalls, lines)
		})
	}
}

func newFake(t *testing.T, opts renderfake.Options) *renderfake.Server {
	t.Helper()
	f := renderfake.New(t, opts)
	f.AddService(svc, "web")
	f.AddService(svc2, "worker")
	f.AddEnvGroup(group, "database", svc, svc2)
	return f
}

func putReq(values map[string]secret.String, keys ...string) target.PutRequest {
	return target.PutRequest{Values: values, Keys: keys, RotationID: "1", Version: 1}
}

func newTarget(t *testing.T, f *renderfake.Server, rt http.RoundTripper, opts string) target.Target {
	t.Helper()
	return build(t, f, rt, f.Token(), opts, nil)
}

// build merges the test's options (a YAML mapping) with the ones every
// test needs.
func build(t *testing.T, f *renderfake.Server, rt http.RoundTripper, token, opts string, now func() time.Time) target.Target {
	t.Helper()
	merged := map[string]any{"token": token, "api_url": f.URL}
	var extra map[string]any
	require.NoError(t, yaml.Unmarshal([]byte(opts), &extra))
	for k, v := range extra {
		merged[k] = v
	}
	src, err := yaml.Marshal(merged)
	require.NoError(t, err)
	if rt == nil {
		rt = http.DefaultTransport
	}
	tg, err := render.New(target.Params{Name: "api", Decode: targettest.DecodeYAML(string(src)), HTTPClient: &http.Client{Transport: rt}, Now: now})
	require.NoError(t, err)
	return tg
}

func fakeOf(t *testing.T, fakes *sync.Map, tg target.Target) *renderfake.Server {
	t.Helper()
	f, ok := fakes.Load(tg)
	require.True(t, ok, "target not built by the harness")
	return f.(*renderfake.Server)
}

// recorder is a RoundTripper that keeps every request with its body.
type recorder struct {
	mu    sync.Mutex
	calls []call
}

type call struct {
	method, path, query string
	body                []byte
}

func (c call) line() string { return c.method + " " + c.path }

func (c call) lineQuery() string { return c.line() + "?" + c.query }

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	var body []byte
	if req.Body != nil {
		body, _ = io.ReadAll(req.Body)
		req.Body = io.NopCloser(bytes.NewReader(body))
	}
	r.mu.Lock()
	r.calls = append(r.calls, call{method: req.Method, path: req.URL.Path, query: req.URL.Query().Encode(), body: body})
	r.mu.Unlock()
	return http.DefaultTransport.RoundTrip(req)
}

func (r *recorder) all() []call {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]call(nil), r.calls...)
}

// armOnWrite runs arm before the first write goes out.
type armOnWrite struct {
	arm  func()
	once sync.Once
}

func (a *armOnWrite) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method != http.MethodGet {
		a.once.Do(a.arm)
	}
	return http.DefaultTransport.RoundTrip(req)
}

// failNthDeploy makes the n-th deploy request (counting from 1) answer 500.
type failNthDeploy struct {
	f     *renderfake.Server
	mu    sync.Mutex
	count int
	n     int
}

func (d *failNthDeploy) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method == http.MethodPost && strings.HasSuffix(req.URL.Path, "/deploys") {
		d.mu.Lock()
		d.count++
		if d.count == d.n {
			d.f.FailNext(1, http.StatusInternalServerError)
		}
		d.mu.Unlock()
	}
	return http.DefaultTransport.RoundTrip(req)
}
