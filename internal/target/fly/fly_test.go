package fly_test

import (
	"bytes"
	"context"
	"encoding/json"
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
	"github.com/rotorhq/rotor/internal/target/fly"
	"github.com/rotorhq/rotor/internal/target/fly/flyfake"
	"github.com/rotorhq/rotor/internal/target/targettest"
)

// A machine config with fields rotor knows nothing about; they must come
// back untouched.
const webConfig = `{"image":"registry.fly.io/rotor-app:deployment-01","guest":{"cpu_kind":"shared","cpus":1,"memory_mb":256},"services":[{"internal_port":8080,"protocol":"tcp","autostop":"stop","autostart":true}],"metadata":{"fly_process_group":"app"}}`

func TestConformance(t *testing.T) {
	t.Parallel()
	for _, opts := range []string{"{}", "deploy: false"} {
		t.Run(opts, func(t *testing.T) {
			t.Parallel()
			var fakes sync.Map
			targettest.Exercise(t, targettest.Harness{
				New: func(t *testing.T) target.Target {
					f := newFake(t, flyfake.Options{})
					tg := newTarget(t, f, nil, opts)
					fakes.Store(tg, f)
					return tg
				},
				// Values are write-only on Fly.io; the fake knows them.
				Read: func(t *testing.T, tg target.Target, key string) (secret.String, bool) {
					s, ok := fakeOf(t, &fakes, tg).Secret(key)
					return secret.New(s.Value), ok
				},
				Seed: func(t *testing.T, tg target.Target, values map[string]secret.String) {
					f := fakeOf(t, &fakes, tg)
					for k, v := range values {
						f.SetSecret(k, v.Reveal())
					}
				},
				Break: func(t *testing.T, tg target.Target) {
					fakeOf(t, &fakes, tg).FailNext(1000, http.StatusInternalServerError)
				},
				NoChangeDetection: true,
			})
		})
	}
}

func TestNew(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name     string
		opts     string
		reloader bool
		wantErr  string
		sentinel error
	}{
		{name: "deploys by default", opts: "{app: my-app, token: t}", reloader: true},
		{name: "deploy off", opts: "{app: my-app, deploy: false, token: t}"},
		{name: "internal API", opts: "{app: my-app, token: t, api_url: 'http://_api.internal:4280'}", reloader: true},
		{name: "no app", opts: "{token: t}", wantErr: "no app; add app:", sentinel: target.ErrInvalid},
		{name: "bad app name", opts: "{app: My_App, token: t}", wantErr: `app "My_App" is not a Fly.io app name`, sentinel: target.ErrInvalid},
		{name: "no token", opts: "{app: my-app}", wantErr: "add token: ${FLY_API_TOKEN}", sentinel: target.ErrAuth},
		{name: "bad api_url", opts: "{app: my-app, token: t, api_url: ':'}", wantErr: "is not an http(s) URL", sentinel: target.ErrInvalid},
		{name: "unknown option", opts: "{app: my-app, token: t, stage: true}", wantErr: "field stage not found"},
		{name: "wait_timeout", opts: "{app: my-app, token: t, wait_timeout: 90s}", reloader: true},
		{name: "bad wait_timeout", opts: "{app: my-app, token: t, wait_timeout: soon}", wantErr: `wait_timeout "soon" is not a positive duration`, sentinel: target.ErrInvalid},
		{name: "negative wait_timeout", opts: "{app: my-app, token: t, wait_timeout: -1m}", wantErr: `wait_timeout "-1m" is not a positive duration`, sentinel: target.ErrInvalid},
		{name: "wait_timeout as a number", opts: "{app: my-app, token: t, wait_timeout: 300}", wantErr: `wait_timeout "300" is not a positive duration`, sentinel: target.ErrInvalid},
		{name: "reload_poll", opts: "{app: my-app, token: t, reload_poll: 2s}", reloader: true},
		{name: "bad reload_poll", opts: "{app: my-app, token: t, reload_poll: 0s}", wantErr: `reload_poll "0s" is not a positive duration`, sentinel: target.ErrInvalid},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tg, err := fly.New(target.Params{Name: "edge", Decode: targettest.DecodeYAML(tc.opts)})
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				require.ErrorContains(t, err, `fly target "edge"`)
				if tc.sentinel != nil {
					require.ErrorIs(t, err, tc.sentinel)
				}
				require.Nil(t, tg)
				return
			}
			require.NoError(t, err)
			require.Equal(t, target.Info{Type: "fly", Name: "edge", Destination: "fly app my-app", Idempotent: true}, tg.Info())
			ok := target.Discover(tg).Reloader != nil
			require.Equal(t, tc.reloader, ok)
		})
	}
}

// TestPutGivesUpWithTheContext uses the fake's delay: a call that outlives
// the engine's per-target timeout ends with the context's error, still
// without the value.
func TestPutGivesUpWithTheContext(t *testing.T) {
	t.Parallel()
	canary := secret.New("postgres://app:canary-sl0w@host/db")
	f := newFake(t, flyfake.Options{})
	tg := newTarget(t, f, nil, "{}")
	f.SetDelay(time.Hour)
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
	defer cancel()
	_, err := tg.Put(ctx, putReq(map[string]secret.String{"DATABASE_URL": canary}, "DATABASE_URL"))
	require.ErrorIs(t, err, context.DeadlineExceeded)
	var re *target.RetryableError
	require.ErrorAs(t, err, &re, "an idempotent write that timed out may be sent again")
	require.Empty(t, secret.Leaks([]byte(fmt.Sprintf("%v %+v", err, err)), canary))
}

func TestAuthorizationHeader(t *testing.T) {
	t.Parallel()
	cases := []struct {
		token, want string
	}{
		{token: "fo1_plain_token", want: "Bearer fo1_plain_token"},
		{token: "FlyV1 fm2_macaroon,fm2_discharge", want: "FlyV1 fm2_macaroon,fm2_discharge"},
	}
	for _, tc := range cases {
		t.Run(tc.want, func(t *testing.T) {
			t.Parallel()
			f := newFake(t, flyfake.Options{Token: tc.token})
			rec := &recorder{}
			tg := newTarget(t, f, rec, "{}")
			_, err := tg.Put(t.Context(), putReq(map[string]secret.String{"K": secret.New("v")}, "K"))
			require.NoError(t, err, "the fake accepts only the right header")
			require.Equal(t, tc.want, rec.all()[0].auth)
		})
	}
}

func TestPutRequestShape(t *testing.T) {
	t.Parallel()
	f := newFake(t, flyfake.Options{})
	rec := &recorder{}
	tg := newTarget(t, f, rec, "{}")
	url := secret.New("postgres://app:pw@host/db")
	resp, err := tg.Put(t.Context(), putReq(map[string]secret.String{"DATABASE_URL": url, "PGUSER": secret.New("app_blue")}, "DATABASE_URL", "PGUSER"))
	require.NoError(t, err)
	require.True(t, resp.Changed)
	require.Equal(t, "secrets version 1", resp.Ref)

	calls := rec.all()
	require.Len(t, calls, 1, "one call sets every key in one version")
	require.Equal(t, "POST /v1/apps/rotor-app/secrets", calls[0].line())
	require.JSONEq(t, `{"values":{"DATABASE_URL":"postgres://app:pw@host/db","PGUSER":"app_blue"}}`, string(calls[0].body))
	got, ok := f.Secret("DATABASE_URL")
	require.True(t, ok)
	require.True(t, url.Equal(secret.New(got.Value)))
	for _, m := range f.Machines() {
		require.Zero(t, m.Updates, "Put must never restart a machine")
	}
}

func TestPutTransientErrors(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name       string
		arrange    func(*flyfake.Server)
		retryAfter time.Duration
	}{
		{name: "429 with Retry-After", arrange: func(f *flyfake.Server) { f.RateLimit(0, 9*time.Second) }, retryAfter: 9 * time.Second},
		{name: "429 without advice", arrange: func(f *flyfake.Server) { f.RateLimit(0, 0) }},
		{name: "500 that echoes the request body", arrange: func(f *flyfake.Server) { f.FailNext(1, http.StatusInternalServerError) }},
		{name: "502", arrange: func(f *flyfake.Server) { f.FailNext(1, http.StatusBadGateway) }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			canary := secret.New("postgres://app:canary-fly-9q8w@host/db")
			f := newFake(t, flyfake.Options{})
			tg := newTarget(t, f, nil, "{}")
			tc.arrange(f)
			_, err := tg.Put(t.Context(), putReq(map[string]secret.String{"DATABASE_URL": canary}, "DATABASE_URL"))
			var re *target.RetryableError
			require.ErrorAs(t, err, &re)
			require.Equal(t, tc.retryAfter, re.RetryAfter)
			require.ErrorContains(t, err, `fly target "edge"`)
			require.Empty(t, secret.Leaks([]byte(fmt.Sprintf("%v %+v", err, err)), canary))
			_, ok := f.Secret("DATABASE_URL")
			require.False(t, ok)
		})
	}
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
		{"Reload", func(t *testing.T, tg target.Target) error {
			_, err := tg.(target.Reloader).Reload(t.Context(), target.ReloadRequest{RotationID: "1"})
			return err
		}},
	}
	for _, c := range calls {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			f := newFake(t, flyfake.Options{})
			tg := build(t, f, nil, "fo1_wrong_token_55", "{}")
			err := c.call(t, tg)
			require.ErrorIs(t, err, target.ErrAuth)
			require.ErrorContains(t, err, "token: ${FLY_API_TOKEN}")
			require.ErrorContains(t, err, "fly tokens create deploy -a rotor-app")
			require.NotContains(t, err.Error(), "fo1_wrong_token_55")
			require.Zero(t, f.Version(), "nothing may be set with a refused token")
			for _, m := range f.Machines() {
				require.Zero(t, m.Updates)
			}
		})
	}
}

func TestCheck(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 8, 2, 10, 30, 0, 0, time.UTC)
	f := newFake(t, flyfake.Options{Now: func() time.Time { return now }})
	f.SetSecret("OTHER", "x") // version 1
	rec := &recorder{}
	tg := newTarget(t, f, rec, "{}")

	// Before this process wrote anything: metadata only, no version pin.
	resp, err := tg.(target.Checker).Check(t.Context(), target.CheckRequest{Keys: []string{"OTHER", "DATABASE_URL"}})
	require.NoError(t, err)
	require.Empty(t, resp.Values)
	require.Equal(t, []string{"OTHER"}, resp.Unreadable, "a missing key is absent, not unreadable")
	require.Equal(t, "GET /v1/apps/rotor-app/secrets", rec.all()[0].line())

	_, err = tg.Put(t.Context(), putReq(map[string]secret.String{"DATABASE_URL": secret.New("postgres://a")}, "DATABASE_URL")) // version 2
	require.NoError(t, err)
	resp, err = tg.(target.Checker).Check(t.Context(), target.CheckRequest{Keys: []string{"DATABASE_URL"}})
	require.NoError(t, err)
	require.Empty(t, resp.Values, "Fly.io never reveals values")
	require.Equal(t, []string{"DATABASE_URL"}, resp.Unreadable)
	s, _ := f.Secret("DATABASE_URL")
	require.Equal(t, []string{"DATABASE_URL is write-only on Fly.io; digest " + s.Digest + ", set 2026-08-02T10:30:00Z; unchanged since rotor set it"}, resp.Notes)
	calls := rec.all()
	require.Equal(t, "version=2", calls[len(calls)-1].query, "reads are pinned to the version this process wrote")

	f.SetSecret("DATABASE_URL", "postgres://someone-else")
	resp, err = tg.(target.Checker).Check(t.Context(), target.CheckRequest{Keys: []string{"DATABASE_URL"}})
	require.NoError(t, err)
	require.Contains(t, resp.Notes[0], "something else has set DATABASE_URL since")
	require.Empty(t, f.Writes()[1:], "Check must not write")
}

func TestReload(t *testing.T) {
	t.Parallel()
	t.Run("updates every machine with its own config and the new version", func(t *testing.T) {
		t.Parallel()
		f := newFake(t, flyfake.Options{})
		f.AddMachine("m-stopped", "ams", "stopped", json.RawMessage(webConfig))
		rec := &recorder{}
		tg := newTarget(t, f, rec, "{}")
		f.SetSecret("UNRELATED", "u") // someone else's version 1
		v := secret.New("postgres://app:fresh@host/db")
		_, err := tg.Put(t.Context(), putReq(map[string]secret.String{"DATABASE_URL": v}, "DATABASE_URL"))
		require.NoError(t, err)
		before := len(rec.all())

		resp, err := tg.(target.Reloader).Reload(t.Context(), target.ReloadRequest{RotationID: "5"})
		require.NoError(t, err)
		require.Equal(t, "updated 3 machine(s) to secrets version 2, rolling: 2 restarted, each started again before the next was updated; 1 stopped machine(s) left stopped", resp.Detail)

		var lines []string
		for _, c := range rec.all()[before:] {
			lines = append(lines, c.line())
		}
		require.Equal(t, []string{
			"GET /v1/apps/rotor-app/machines",
			"GET /v1/apps/rotor-app/machines/m-web-1", "POST /v1/apps/rotor-app/machines/m-web-1", "GET /v1/apps/rotor-app/machines/m-web-1/wait",
			"GET /v1/apps/rotor-app/machines/m-web-2", "POST /v1/apps/rotor-app/machines/m-web-2", "GET /v1/apps/rotor-app/machines/m-web-2/wait",
			"GET /v1/apps/rotor-app/machines/m-stopped", "POST /v1/apps/rotor-app/machines/m-stopped",
		}, lines, "each started machine is waited for; the stopped one is not")
		wait := rec.all()[before+3]
		require.Equal(t, "instance_id=m-web-1-1&state=started&timeout=60", wait.query, "the wait names the instance the update created")
		post := rec.all()[before+2]
		require.JSONEq(t, `{"config":`+webConfig+`,"region":"fra","min_secrets_version":2}`, string(post.body))

		for _, m := range f.Machines() {
			require.Equal(t, 1, m.Updates, m.ID)
			require.Equal(t, uint64(2), m.MinSecretsVersion, m.ID)
			require.JSONEq(t, webConfig, string(m.Config), "%s: config must survive untouched", m.ID)
			require.True(t, v.Equal(secret.New(m.Env["DATABASE_URL"])), "%s runs with the new value", m.ID)
			if m.ID == "m-stopped" {
				require.True(t, m.SkipLaunch)
				require.Equal(t, "stopped", m.State)
			} else {
				require.False(t, m.SkipLaunch)
				require.Equal(t, "started", m.State)
			}
		}
	})

	t.Run("a retry in the same rotation restarts only the rest", func(t *testing.T) {
		t.Parallel()
		f := newFake(t, flyfake.Options{})
		rt := &failNthPost{f: f, n: 3} // the Put, m-web-1, then m-web-2 fails
		tg := newTarget(t, f, rt, "{}")
		_, err := tg.Put(t.Context(), putReq(map[string]secret.String{"DATABASE_URL": secret.New("v")}, "DATABASE_URL"))
		require.NoError(t, err)
		_, err = tg.(target.Reloader).Reload(t.Context(), target.ReloadRequest{RotationID: "8"})
		require.ErrorContains(t, err, "cannot update machine m-web-2")
		var re *target.RetryableError
		require.ErrorAs(t, err, &re, "re-submitting the same config is safe to retry")

		_, err = tg.(target.Reloader).Reload(t.Context(), target.ReloadRequest{RotationID: "8"})
		require.NoError(t, err)
		ms := f.Machines()
		require.Equal(t, 1, ms[0].Updates, "m-web-1 was already updated")
		require.Equal(t, 1, ms[1].Updates)
	})

	t.Run("no machines", func(t *testing.T) {
		t.Parallel()
		f := flyfake.New(t, flyfake.Options{})
		tg := newTarget(t, f, nil, "{}")
		resp, err := tg.(target.Reloader).Reload(t.Context(), target.ReloadRequest{RotationID: "1"})
		require.NoError(t, err)
		require.Contains(t, resp.Detail, "has no machines")
		require.Empty(t, f.Writes())
	})

	t.Run("without a Put in this process", func(t *testing.T) {
		t.Parallel()
		f := newFake(t, flyfake.Options{})
		rec := &recorder{}
		tg := newTarget(t, f, rec, "{}")
		resp, err := tg.(target.Reloader).Reload(t.Context(), target.ReloadRequest{RotationID: "1"})
		require.NoError(t, err)
		require.Contains(t, resp.Detail, "secrets version unknown")
		require.NotContains(t, string(rec.all()[2].body), "min_secrets_version")
	})
}

func TestValidate(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name      string
		opts      string
		machines  bool
		app       string
		wantErr   error
		wantNote  string
		wantCalls []string
	}{
		{name: "deploying", opts: "{}", machines: true, wantCalls: []string{"GET /v1/apps/rotor-app/secrets", "GET /v1/apps/rotor-app/machines"}},
		{name: "not deploying", opts: "deploy: false", machines: true, wantCalls: []string{"GET /v1/apps/rotor-app/secrets"}},
		{name: "no machines yet", opts: "{}", wantNote: "has no machines"},
		{name: "unknown app", opts: "{}", app: "other-app", wantErr: target.ErrNotFound},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := flyfake.New(t, flyfake.Options{})
			if tc.machines {
				f.AddMachine("m1", "fra", "started", json.RawMessage(webConfig))
			}
			rec := &recorder{}
			opts := tc.opts
			if tc.app != "" {
				opts = "app: " + tc.app
			}
			tg := newTarget(t, f, rec, opts)
			resp, err := tg.(target.Validator).Validate(t.Context(), target.ValidateRequest{})
			require.Empty(t, f.Writes(), "Validate must not write")
			if tc.wantErr != nil {
				require.ErrorIs(t, err, tc.wantErr)
				require.ErrorContains(t, err, `check that app "other-app" exists`)
				return
			}
			require.NoError(t, err)
			if tc.wantNote != "" {
				require.Contains(t, strings.Join(resp.Notes, "\n"), tc.wantNote)
			}
			if tc.wantCalls != nil {
				var lines []string
				for _, c := range rec.all() {
					lines = append(lines, c.line())
				}
				require.Equal(t, tc.wantCalls, lines)
			}
		})
	}
}

func newFake(t *testing.T, opts flyfake.Options) *flyfake.Server {
	t.Helper()
	f := flyfake.New(t, opts)
	f.AddMachine("m-web-1", "fra", "started", json.RawMessage(webConfig))
	f.AddMachine("m-web-2", "fra", "started", json.RawMessage(webConfig))
	return f
}

func putReq(values map[string]secret.String, keys ...string) target.PutRequest {
	return target.PutRequest{Values: values, Keys: keys, RotationID: "1", Version: 1}
}

func newTarget(t *testing.T, f *flyfake.Server, rt http.RoundTripper, opts string) target.Target {
	t.Helper()
	return build(t, f, rt, f.Token(), opts)
}

// build merges the test's options (a YAML mapping) with the ones every
// test needs.
func build(t *testing.T, f *flyfake.Server, rt http.RoundTripper, token, opts string) target.Target {
	t.Helper()
	merged := map[string]any{"app": f.App(), "token": token, "api_url": f.URL}
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
	tg, err := fly.New(target.Params{Name: "edge", Decode: targettest.DecodeYAML(string(src)), HTTPClient: &http.Client{Transport: rt}})
	require.NoError(t, err)
	return tg
}

func fakeOf(t *testing.T, fakes *sync.Map, tg target.Target) *flyfake.Server {
	t.Helper()
	f, ok := fakes.Load(tg)
	require.True(t, ok, "target not built by the harness")
	return f.(*flyfake.Server)
}

// recorder is a RoundTripper that keeps every request with its body.
type recorder struct {
	mu    sync.Mutex
	calls []call
}

type call struct {
	method, path, query, auth string
	body                      []byte
}

func (c call) line() string { return c.method + " " + c.path }

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	var body []byte
	if req.Body != nil {
		body, _ = io.ReadAll(req.Body)
		req.Body = io.NopCloser(bytes.NewReader(body))
	}
	r.mu.Lock()
	r.calls = append(r.calls, call{method: req.Method, path: req.URL.Path, query: req.URL.RawQuery, auth: req.Header.Get("Authorization"), body: body})
	r.mu.Unlock()
	return http.DefaultTransport.RoundTrip(req)
}

func (r *recorder) all() []call {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]call(nil), r.calls...)
}

// failNthPost makes the n-th POST (counting from 1) answer 503.
type failNthPost struct {
	f     *flyfake.Server
	mu    sync.Mutex
	count int
	n     int
}

func (p *failNthPost) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method == http.MethodPost {
		p.mu.Lock()
		p.count++
		if p.count == p.n {
			p.f.FailNext(1, http.StatusServiceUnavailable)
		}
		p.mu.Unlock()
	}
	return http.DefaultTransport.RoundTrip(req)
}
