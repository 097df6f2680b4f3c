package vercel_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
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
	"github.com/rotorhq/rotor/internal/target/targettest"
	"github.com/rotorhq/rotor/internal/target/vercel"
	"github.com/rotorhq/rotor/internal/target/vercel/vercelfake"
)

func TestConformance(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name      string
		fake      vercelfake.Options
		opts      string
		sensitive bool
		redeploy  bool
		// fillers are unrelated variables seeded first, so that with a
		// small page size every list spans several pages.
		fillers int
	}{
		{name: "encrypted", opts: "environments: [production]"},
		{name: "encrypted, list over several pages", fake: vercelfake.Options{PageSize: 2}, opts: "environments: [production]", fillers: 5},
		{name: "encrypted in a team with redeploy", fake: vercelfake.Options{TeamID: "team_rotor"}, opts: "{team_id: team_rotor, environments: [production, preview, development], redeploy: true}", redeploy: true},
		{name: "sensitive", opts: "{sensitive: true, environments: [production, preview]}", sensitive: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var fakes sync.Map // target.Target → *vercelfake.Server
			h := targettest.Harness{
				New: func(t *testing.T) target.Target {
					f := vercelfake.New(t, tc.fake)
					for i := range tc.fillers {
						f.SeedEnv(vercelfake.Env{Key: fmt.Sprintf("FILLER_%02d", i), Value: "x", Target: []string{"production"}})
					}
					f.AddDeployment("dpl_live", "production", "READY")
					tg := newTarget(t, f, tc.opts)
					fakes.Store(tg, f)
					return tg
				},
				Seed: func(t *testing.T, tg target.Target, values map[string]secret.String) {
					f := fakeOf(t, &fakes, tg)
					for k, v := range values {
						f.SeedEnv(vercelfake.Env{Key: k, Value: v.Reveal(), Type: "encrypted", Target: []string{"production", "preview", "development"}})
					}
				},
				Break: func(t *testing.T, tg target.Target) {
					fakeOf(t, &fakes, tg).FailNext(1000, http.StatusInternalServerError)
				},
			}
			if tc.sensitive {
				// Check cannot reveal sensitive values; the fake can.
				h.Read = func(t *testing.T, tg target.Target, key string) (secret.String, bool) {
					e, ok := fakeOf(t, &fakes, tg).Env(key, "production")
					return secret.New(e.Value), ok
				}
				h.NoChangeDetection = true
			}
			targettest.Exercise(t, h)
		})
	}
}

func TestNew(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name     string
		opts     string
		wantDest string
		wantErr  string
		sentinel error
		reloader bool
	}{
		{name: "defaults to production", opts: "{project: prj_1, token: tok}", wantDest: "vercel project prj_1 (production)"},
		{name: "team, environments sorted, redeploy", opts: "{project: web, team_id: team_9, environments: [preview, production], redeploy: true, token: tok}", wantDest: "vercel project web in team team_9 (preview, production)", reloader: true},
		{name: "sensitive without development", opts: "{project: p, sensitive: true, environments: [production, preview], token: tok}", wantDest: "vercel project p (preview, production)"},
		{name: "no project", opts: "{token: tok}", wantErr: "no project; add project: prj_", sentinel: target.ErrInvalid},
		{name: "no token", opts: "{project: p}", wantErr: "add token: ${VERCEL_TOKEN}", sentinel: target.ErrAuth},
		{name: "unknown environment", opts: "{project: p, token: tok, environments: [prod]}", wantErr: `environment "prod" is not one of production, preview, development`, sentinel: target.ErrInvalid},
		{name: "environment twice", opts: "{project: p, token: tok, environments: [preview, preview]}", wantErr: `environment "preview" is listed twice`, sentinel: target.ErrInvalid},
		{name: "sensitive development", opts: "{project: p, token: tok, sensitive: true, environments: [development]}", wantErr: "sensitive variables cannot target development", sentinel: target.ErrInvalid},
		{name: "type is the target type, not an option", opts: "{project: p, token: tok, type: sensitive}", wantErr: "field type not found"},
		{name: "redeploy without production", opts: "{project: p, token: tok, environments: [preview], redeploy: true}", wantErr: "redeploy: true redeploys production", sentinel: target.ErrInvalid},
		{name: "bad api_url", opts: "{project: p, token: tok, api_url: 'ftp://x'}", wantErr: `api_url "ftp://x" is not an http(s) URL`, sentinel: target.ErrInvalid},
		{name: "unknown option", opts: "{project: p, token: tok, branch: main}", wantErr: "field branch not found"},
		{name: "reload_poll", opts: "{project: p, token: tok, redeploy: true, reload_poll: 10s}", wantDest: "vercel project p (production)", reloader: true},
		{name: "reload_poll without redeploy", opts: "{project: p, token: tok, reload_poll: 10s}", wantErr: "reload_poll is set but redeploy is off", sentinel: target.ErrInvalid},
		{name: "reload_poll not a duration", opts: "{project: p, token: tok, redeploy: true, reload_poll: often}", wantErr: `reload_poll "often" is not a positive duration`, sentinel: target.ErrInvalid},
		{name: "reload_poll zero", opts: "{project: p, token: tok, redeploy: true, reload_poll: 0s}", wantErr: `reload_poll "0s" is not a positive duration`, sentinel: target.ErrInvalid},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tg, err := vercel.New(target.Params{Name: "web", Decode: targettest.DecodeYAML(tc.opts)})
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				require.ErrorContains(t, err, `vercel target "web"`)
				if tc.sentinel != nil {
					require.ErrorIs(t, err, tc.sentinel)
				}
				require.Nil(t, tg)
				return
			}
			require.NoError(t, err)
			info := tg.Info()
			require.Equal(t, target.Info{Type: "vercel", Name: "web", Destination: tc.wantDest, Idempotent: true}, info)
			isReloader := target.Discover(tg).Reloader != nil
			require.Equal(t, tc.reloader, isReloader, "only redeploy: true makes a Reloader")
		})
	}
}

// TestPutRequestShape checks the exact calls: a list, one upsert with
// every changed key as an array, and nothing at all when nothing changed.
func TestPutRequestShape(t *testing.T) {
	t.Parallel()
	f := vercelfake.New(t, vercelfake.Options{TeamID: "team_7"})
	rec := &recorder{}
	tg := newTargetWith(t, f, rec, "{team_id: team_7, environments: [production, preview]}")
	url := secret.New("postgres://app:s3cret@host/db")
	user := secret.New("app_blue")

	resp, err := tg.Put(t.Context(), putReq(map[string]secret.String{"DATABASE_URL": url, "PGUSER": user}, "DATABASE_URL", "PGUSER"))
	require.NoError(t, err)
	require.True(t, resp.Changed)
	require.NotEmpty(t, resp.Ref, "the created variable ids are the journal ref")

	calls := rec.all()
	require.Len(t, calls, 2)
	require.Equal(t, "GET /v10/projects/prj_rotor/env?teamId=team_7", calls[0].line())
	require.Equal(t, "POST /v10/projects/prj_rotor/env?teamId=team_7&upsert=true", calls[1].line())
	var body []map[string]any
	require.NoError(t, json.Unmarshal(calls[1].body, &body))
	require.Len(t, body, 2)
	for i, key := range []string{"DATABASE_URL", "PGUSER"} {
		require.Equal(t, key, body[i]["key"])
		require.Equal(t, "encrypted", body[i]["type"])
		require.Equal(t, []any{"preview", "production"}, body[i]["target"])
	}
	for _, env := range []string{"production", "preview"} {
		got, ok := f.Env("DATABASE_URL", env)
		require.True(t, ok)
		require.True(t, url.Equal(secret.New(got.Value)), "DATABASE_URL in %s does not hold the value written", env)
	}

	// Same values again: reads only.
	writes := len(f.Writes())
	resp, err = tg.Put(t.Context(), putReq(map[string]secret.String{"DATABASE_URL": url, "PGUSER": user}, "DATABASE_URL", "PGUSER"))
	require.NoError(t, err)
	require.False(t, resp.Changed)
	require.Len(t, f.Writes(), writes, "an unchanged Put must not write")

	// One key changed: only that key is sent.
	newURL := secret.New("postgres://app:n3w@host/db")
	_, err = tg.Put(t.Context(), putReq(map[string]secret.String{"DATABASE_URL": newURL, "PGUSER": user}, "DATABASE_URL", "PGUSER"))
	require.NoError(t, err)
	calls = rec.all()
	body = nil
	require.NoError(t, json.Unmarshal(calls[len(calls)-1].body, &body))
	require.Len(t, body, 1)
	require.Equal(t, "DATABASE_URL", body[0]["key"])
	require.Len(t, f.Envs(), 2, "upsert must update in place, not duplicate")
}

func TestPutFailedEntriesIn201(t *testing.T) {
	t.Parallel()
	canary := secret.New("postgres://app:canary-201-f41l3d@host/db")
	f := vercelfake.New(t, vercelfake.Options{})
	// Vercel echoes the value in `failed`; the message here does too.
	f.FailKey("DATABASE_URL", "ENV_UPDATE_FAILED", "could not store "+canary.Reveal())
	tg := newTarget(t, f, "")
	_, err := tg.Put(t.Context(), putReq(map[string]secret.String{"DATABASE_URL": canary}, "DATABASE_URL"))
	require.Error(t, err)
	require.ErrorIs(t, err, target.ErrInvalid)
	require.ErrorContains(t, err, `vercel target "web"`)
	require.ErrorContains(t, err, "DATABASE_URL ENV_UPDATE_FAILED")
	require.Empty(t, secret.Leaks([]byte(err.Error()), canary), "the error must not carry the value")
	var re *target.RetryableError
	require.False(t, errors.As(err, &re), "a refused variable is not worth retrying")
	_, ok := f.Env("DATABASE_URL", "production")
	require.False(t, ok)
}

func TestPutTransientErrors(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name       string
		onPost     int // status the upsert answers, the list before it succeeds
		onList     int // status the list answers
		retryAfter time.Duration
	}{
		{name: "429 with Retry-After on the upsert", onPost: http.StatusTooManyRequests, retryAfter: 3 * time.Second},
		{name: "500 that echoes the request body", onPost: http.StatusInternalServerError},
		{name: "503 on the upsert", onPost: http.StatusServiceUnavailable},
		{name: "502 on the list", onList: http.StatusBadGateway},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			canary := secret.New("postgres://app:canary-tr4ns13nt@host/db")
			f := vercelfake.New(t, vercelfake.Options{})
			var tg target.Target
			if tc.onPost != 0 {
				tg = newTargetWith(t, f, &armOnPost{f: f, status: tc.onPost}, "")
			} else {
				tg = newTarget(t, f, "")
				f.FailNext(1, tc.onList)
			}
			_, err := tg.Put(t.Context(), putReq(map[string]secret.String{"DATABASE_URL": canary}, "DATABASE_URL"))
			var re *target.RetryableError
			require.ErrorAs(t, err, &re)
			require.Equal(t, tc.retryAfter, re.RetryAfter)
			require.ErrorContains(t, err, `vercel target "web"`)
			require.Empty(t, secret.Leaks([]byte(err.Error()), canary))
			require.Empty(t, secret.Leaks([]byte(fmt.Sprintf("%+v", err)), canary))
		})
	}
}

// TestPutGivesUpWithTheContext uses the fake's delay: a call that outlives
// the engine's per-target timeout ends with the context's error, still
// without the value.
func TestPutGivesUpWithTheContext(t *testing.T) {
	t.Parallel()
	canary := secret.New("postgres://app:canary-sl0w@host/db")
	f := vercelfake.New(t, vercelfake.Options{})
	tg := newTarget(t, f, "")
	f.SetDelay(time.Hour)
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
	defer cancel()
	_, err := tg.Put(ctx, putReq(map[string]secret.String{"DATABASE_URL": canary}, "DATABASE_URL"))
	require.ErrorIs(t, err, context.DeadlineExceeded)
	var re *target.RetryableError
	require.ErrorAs(t, err, &re, "an idempotent write that timed out may be sent again")
	require.Empty(t, secret.Leaks([]byte(fmt.Sprintf("%v %+v", err, err)), canary))
}

func TestAuthErrors(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name     string
		token    string
		opts     string
		call     func(*testing.T, target.Target) error
		contains []string
	}{
		{name: "wrong token on Put", token: "tok-wrong-123", call: put, contains: []string{"token: ${VERCEL_TOKEN}", "your personal account", "401"}},
		{name: "wrong token on Validate", token: "tok-wrong-123", opts: "{team_id: team_x, redeploy: true}", call: validate, contains: []string{"team team_x", "create deployments"}},
		{name: "read-only token on Put", token: "tok-readonly-456", call: put, contains: []string{"read and write project environment variables", "403"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := vercelfake.New(t, vercelfake.Options{ReadOnlyToken: "tok-readonly-456", TeamID: teamOf(tc.opts)})
			tg := newTargetToken(t, f, tc.token, tc.opts)
			err := tc.call(t, tg)
			require.ErrorIs(t, err, target.ErrAuth)
			for _, s := range tc.contains {
				require.ErrorContains(t, err, s)
			}
			require.NotContains(t, err.Error(), tc.token, "the token must not be quoted back")
			require.Empty(t, f.Envs())
		})
	}
}

func TestPutRefusesToRescope(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		opts    string
		seed    []vercelfake.Env
		wantErr string
	}{
		{
			name:    "existing variable covers more environments",
			opts:    "environments: [production]",
			seed:    []vercelfake.Env{{Key: "DATABASE_URL", Value: "old", Target: []string{"production", "preview"}}},
			wantErr: "already exists in project prj_rotor for preview+production, but this target manages production",
		},
		{
			name: "environments split over two variables",
			opts: "environments: [production, preview]",
			seed: []vercelfake.Env{
				{Key: "DATABASE_URL", Value: "a", Target: []string{"production"}},
				{Key: "DATABASE_URL", Value: "b", Target: []string{"preview"}},
			},
			wantErr: "separate variables preview and production",
		},
		{
			name:    "sensitive would become readable",
			opts:    "environments: [production]",
			seed:    []vercelfake.Env{{Key: "DATABASE_URL", Value: "old", Type: "sensitive", Target: []string{"production"}}},
			wantErr: "set sensitive: true",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := vercelfake.New(t, vercelfake.Options{})
			for _, e := range tc.seed {
				f.SeedEnv(e)
			}
			tg := newTarget(t, f, tc.opts)
			_, err := tg.Put(t.Context(), putReq(map[string]secret.String{"DATABASE_URL": secret.New("postgres://new")}, "DATABASE_URL"))
			require.ErrorIs(t, err, target.ErrInvalid)
			require.ErrorContains(t, err, tc.wantErr)
			require.Empty(t, f.Writes(), "nothing may be written")
		})
	}
}

func TestPutIgnoresBranchVariables(t *testing.T) {
	t.Parallel()
	f := vercelfake.New(t, vercelfake.Options{})
	f.SeedEnv(vercelfake.Env{Key: "DATABASE_URL", Value: "branch db", Target: []string{"preview"}, GitBranch: "feature-x"})
	tg := newTarget(t, f, "environments: [preview]")
	v := secret.New("postgres://app:pw@host/db")
	_, err := tg.Put(t.Context(), putReq(map[string]secret.String{"DATABASE_URL": v}, "DATABASE_URL"))
	require.NoError(t, err)
	envs := f.Envs()
	require.Len(t, envs, 2)
	require.Equal(t, "branch db", envs[0].Value, "the branch override must stay")
	require.True(t, v.Equal(secret.New(envs[1].Value)))
}

func TestCheck(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 8, 1, 12, 0, 0, 0, time.UTC)
	cases := []struct {
		name           string
		opts           string
		seed           []vercelfake.Env
		wantValue      string
		wantUnreadable bool
		wantNote       string
	}{
		{name: "encrypted is read back", opts: "environments: [production]", seed: []vercelfake.Env{{Key: "K", Value: "v1", Target: []string{"production"}}}, wantValue: "v1"},
		{name: "sensitive is unreadable with its update time", opts: "{sensitive: true, environments: [production]}", seed: []vercelfake.Env{{Key: "K", Value: "v1", Type: "sensitive", Target: []string{"production"}}}, wantUnreadable: true, wantNote: "K (production) is sensitive and cannot be read back; last updated 2026-08-01T12:00:00Z"},
		{name: "missing environment", opts: "environments: [production, preview]", seed: []vercelfake.Env{{Key: "K", Value: "v1", Target: []string{"production"}}}, wantNote: "K is not set for preview"},
		{name: "values differ between environments", opts: "environments: [production, preview]", seed: []vercelfake.Env{{Key: "K", Value: "v1", Target: []string{"production"}}, {Key: "K", Value: "v2", Target: []string{"preview"}}}, wantNote: "K holds different values"},
		{name: "never written", opts: "environments: [production]"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := vercelfake.New(t, vercelfake.Options{Now: func() time.Time { return now }})
			for _, e := range tc.seed {
				f.SeedEnv(e)
			}
			tg := newTarget(t, f, tc.opts).(target.Checker)
			resp, err := tg.Check(t.Context(), target.CheckRequest{Keys: []string{"K"}})
			require.NoError(t, err)
			got, ok := resp.Values["K"]
			require.Equal(t, tc.wantValue != "", ok, "K present in Values")
			if ok {
				require.True(t, secret.New(tc.wantValue).Equal(got))
			}
			require.Equal(t, tc.wantUnreadable, len(resp.Unreadable) == 1 && resp.Unreadable[0] == "K")
			if tc.wantNote != "" {
				require.Contains(t, strings.Join(resp.Notes, "\n"), tc.wantNote)
			}
			require.Empty(t, f.Writes())
		})
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name      string
		fake      vercelfake.Options
		opts      string
		deployed  bool
		wantErr   error
		wantNote  string
		wantCalls []string
	}{
		{name: "project exists", opts: "", wantCalls: []string{"GET /v10/projects/prj_rotor/env"}},
		{name: "with redeploy", opts: "redeploy: true", deployed: true, wantCalls: []string{"GET /v10/projects/prj_rotor/env", "GET /v7/deployments?limit=1&projectId=prj_rotor&state=READY&target=production"}},
		{name: "with redeploy and nothing deployed", opts: "redeploy: true", wantNote: "has no READY production deployment"},
		{name: "team project without team_id", fake: vercelfake.Options{TeamID: "team_1"}, wantErr: target.ErrNotFound},
		{name: "unknown project", opts: "{project: nope}", wantErr: target.ErrNotFound},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := vercelfake.New(t, tc.fake)
			if tc.deployed {
				f.AddDeployment("dpl_1", "production", "READY")
			}
			rec := &recorder{}
			tg := newTargetWith(t, f, rec, tc.opts)
			resp, err := tg.(target.Validator).Validate(t.Context(), target.ValidateRequest{})
			require.Empty(t, f.Writes(), "Validate must not write")
			if tc.wantErr != nil {
				require.ErrorIs(t, err, tc.wantErr)
				require.ErrorContains(t, err, "check project (id or name) and team_id")
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

func put(t *testing.T, tg target.Target) error {
	_, err := tg.Put(t.Context(), putReq(map[string]secret.String{"DATABASE_URL": secret.New("postgres://x")}, "DATABASE_URL"))
	return err
}

func validate(t *testing.T, tg target.Target) error {
	_, err := tg.(target.Validator).Validate(t.Context(), target.ValidateRequest{})
	return err
}

func putReq(values map[string]secret.String, keys ...string) target.PutRequest {
	return target.PutRequest{Values: values, Keys: keys, RotationID: "1", Version: 1}
}

func newTarget(t *testing.T, f *vercelfake.Server, opts string) target.Target {
	t.Helper()
	return newTargetWith(t, f, nil, opts)
}

func newTargetToken(t *testing.T, f *vercelfake.Server, token, opts string) target.Target {
	t.Helper()
	return build(t, f, http.DefaultTransport, token, opts)
}

func newTargetWith(t *testing.T, f *vercelfake.Server, rt http.RoundTripper, opts string) target.Target {
	t.Helper()
	return build(t, f, rt, f.Token(), opts)
}

// build merges the test's options (a YAML mapping, flow or block) with the
// ones every test needs.
func build(t *testing.T, f *vercelfake.Server, rt http.RoundTripper, token, opts string) target.Target {
	t.Helper()
	merged := map[string]any{"project": f.ProjectID(), "token": token, "api_url": f.URL}
	if opts != "" {
		var extra map[string]any
		require.NoError(t, yaml.Unmarshal([]byte(opts), &extra))
		for k, v := range extra {
			merged[k] = v
		}
	}
	src, err := yaml.Marshal(merged)
	require.NoError(t, err)
	if rt == nil {
		rt = http.DefaultTransport
	}
	if r, ok := rt.(*recorder); ok {
		r.next = http.DefaultTransport
	}
	tg, err := vercel.New(target.Params{Name: "web", Decode: targettest.DecodeYAML(string(src)), HTTPClient: &http.Client{Transport: rt}})
	require.NoError(t, err)
	return tg
}

func fakeOf(t *testing.T, fakes *sync.Map, tg target.Target) *vercelfake.Server {
	t.Helper()
	f, ok := fakes.Load(tg)
	require.True(t, ok, "target not built by the harness")
	return f.(*vercelfake.Server)
}

func teamOf(opts string) string {
	if strings.Contains(opts, "team_x") {
		return "team_x"
	}
	return ""
}

// recorder is a RoundTripper that keeps every request with its body.
type recorder struct {
	next  http.RoundTripper
	mu    sync.Mutex
	calls []call
}

type call struct {
	method, path, query string
	body                []byte
}

func (c call) line() string {
	if c.query == "" {
		return c.method + " " + c.path
	}
	return c.method + " " + c.path + "?" + c.query
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	var body []byte
	if req.Body != nil {
		body, _ = io.ReadAll(req.Body)
		req.Body = io.NopCloser(bytes.NewReader(body))
	}
	r.mu.Lock()
	r.calls = append(r.calls, call{method: req.Method, path: req.URL.Path, query: req.URL.Query().Encode(), body: body})
	r.mu.Unlock()
	next := r.next
	if next == nil {
		next = http.DefaultTransport
	}
	return next.RoundTrip(req)
}

func (r *recorder) all() []call {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]call(nil), r.calls...)
}

// armOnPost makes the fake fail starting with the first POST, so a
// preceding lookup succeeds.
type armOnPost struct {
	f      *vercelfake.Server
	status int
	once   sync.Once
}

func (a *armOnPost) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method == http.MethodPost {
		a.once.Do(func() {
			if a.status == http.StatusTooManyRequests {
				a.f.RateLimit(0, 3*time.Second)
			} else {
				a.f.FailNext(1, a.status)
			}
		})
	}
	return http.DefaultTransport.RoundTrip(req)
}
