package infisical_test

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/rotorhq/rotor/internal/secret"
	"github.com/rotorhq/rotor/internal/target"
	"github.com/rotorhq/rotor/internal/target/infisical"
	"github.com/rotorhq/rotor/internal/target/infisical/infisicalfake"
	"github.com/rotorhq/rotor/internal/target/targettest"
)

func TestConformance(t *testing.T) {
	t.Parallel()
	var fakes sync.Map // target.Target → *infisicalfake.Server
	fakeOf := func(tg target.Target) *infisicalfake.Server {
		f, ok := fakes.Load(tg)
		require.True(t, ok, "target not built by the harness")
		return f.(*infisicalfake.Server)
	}
	targettest.Exercise(t, targettest.Harness{
		New: func(t *testing.T) target.Target {
			fake := infisicalfake.New(t)
			fake.AddFolder("prod", "/backend")
			tg := newTarget(t, fake, "secret_path: /backend")
			fakes.Store(tg, fake)
			return tg
		},
		Seed: func(t *testing.T, tg target.Target, values map[string]secret.String) {
			for k, v := range values {
				fakeOf(tg).Set("prod", "/backend", k, v.Reveal())
			}
		},
		Break: func(t *testing.T, tg target.Target) {
			fakeOf(tg).FailNext(infisicalfake.Fault{Status: http.StatusInternalServerError, Message: "Something went wrong", Times: 1000})
		},
	})
}

func TestNew(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		opts     string
		wantDest string
		wantErr  string
	}{
		{name: "cloud", opts: "{project_id: p1, environment: prod}", wantDest: "infisical project p1, prod /"},
		{name: "self-hosted with /api and a trailing slash in the folder", opts: "{site_url: 'https://inf.example.com/api/', project_id: p1, environment: dev, secret_path: /backend/}", wantDest: "infisical project p1, dev /backend at https://inf.example.com"},
		{name: "no project", opts: "{environment: prod}", wantErr: "has no project_id"},
		{name: "no environment", opts: "{project_id: p1}", wantErr: "has no environment; add the environment slug"},
		{name: "relative folder", opts: "{project_id: p1, environment: prod, secret_path: backend}", wantErr: `secret_path "backend" must start with /`},
		{name: "bad site", opts: "{site_url: 'inf.example.com', project_id: p1, environment: prod}", wantErr: `site_url "inf.example.com" is not an http(s) URL`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tg, err := infisical.New(target.Params{Name: "inf", Decode: targettest.DecodeYAML(tt.opts)})
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				require.ErrorIs(t, err, target.ErrInvalid)
				return
			}
			require.NoError(t, err)
			require.Equal(t, target.Info{Type: "infisical", Name: "inf", Destination: tt.wantDest, Idempotent: true}, tg.Info())
		})
	}
}

func TestPutRequestShape(t *testing.T) {
	t.Parallel()
	fake := infisicalfake.New(t)
	fake.Set("prod", "/", "DATABASE_URL", "old")
	fake.Set("prod", "/", "PGUSER", "app_blue")
	tg := newTarget(t, fake, "")
	resp, err := tg.Put(t.Context(), targettest.PutRequest(map[string]string{"DATABASE_URL": "postgres://new@h/db", "PGUSER": "app_blue", "PGHOST": "h"}))
	require.NoError(t, err)
	require.Equal(t, target.PutResponse{Changed: true, Ref: "2 secret(s) written"}, resp)

	read := func(name string) infisicalfake.Request {
		return infisicalfake.Request{Method: http.MethodGet, Path: "/api/v3/secrets/raw/" + name, WorkspaceID: "proj-1", Environment: "prod", SecretPath: "/", Type: "shared", Expand: "false", Authorized: true}
	}
	write := func(method, name string) infisicalfake.Request {
		return infisicalfake.Request{Method: method, Path: "/api/v3/secrets/raw/" + name, WorkspaceID: "proj-1", Environment: "prod", SecretPath: "/", Type: "shared", Authorized: true}
	}
	require.Equal(t, []infisicalfake.Request{
		{Method: http.MethodPost, Path: "/api/v1/auth/universal-auth/login"},
		read("DATABASE_URL"), write(http.MethodPatch, "DATABASE_URL"),
		read("PGHOST"), write(http.MethodPost, "PGHOST"),
		read("PGUSER"),
	}, fake.Requests())
	v, _ := fake.Value("prod", "/", "PGHOST")
	require.Equal(t, "h", v)
}

func TestWriteRaces(t *testing.T) {
	t.Parallel()
	t.Run("deleted between read and update", func(t *testing.T) {
		t.Parallel()
		fake := infisicalfake.New(t)
		fake.Set("prod", "/", "DATABASE_URL", "old")
		fake.FailNext(infisicalfake.Fault{Method: http.MethodPatch, Status: 404, Message: "Secret not found"})
		tg := newTarget(t, fake, "")
		_, err := tg.Put(t.Context(), targettest.PutRequest(map[string]string{"DATABASE_URL": "new"}))
		// The fake still holds the secret, so the POST that follows the 404
		// meets "already exist" and the last PATCH lands.
		require.NoError(t, err)
		require.Equal(t, []string{"POST", "GET", "PATCH", "POST", "PATCH"}, methods(fake.Requests()))
		v, _ := fake.Value("prod", "/", "DATABASE_URL")
		require.Equal(t, "new", v)
	})
	t.Run("missing folder is not a missing secret", func(t *testing.T) {
		t.Parallel()
		fake := infisicalfake.New(t)
		tg := newTarget(t, fake, "secret_path: /nope")
		_, err := tg.Put(t.Context(), targettest.PutRequest(map[string]string{"DATABASE_URL": "new"}))
		require.ErrorIs(t, err, target.ErrNotFound)
		require.ErrorContains(t, err, "check project_id, environment and that the folder /nope exists")
		require.Equal(t, []string{"POST", "GET"}, methods(fake.Requests()))
	})
}

func TestReadsRawNotExpanded(t *testing.T) {
	t.Parallel()
	fake := infisicalfake.New(t)
	fake.Set("prod", "/", "HOME", "/root")
	tg := newTarget(t, fake, "")
	value := "postgres://app:${HOME}@h/db"
	_, err := tg.Put(t.Context(), targettest.PutRequest(map[string]string{"DATABASE_URL": value}))
	require.NoError(t, err)
	resp, err := tg.Put(t.Context(), targettest.PutRequest(map[string]string{"DATABASE_URL": value}))
	require.NoError(t, err)
	require.False(t, resp.Changed, "the stored raw value is compared, not its expansion")
}

func TestTokenRefresh(t *testing.T) {
	t.Parallel()
	fake := infisicalfake.New(t)
	tg := newTarget(t, fake, "")
	_, err := tg.Put(t.Context(), targettest.PutRequest(map[string]string{"DATABASE_URL": "a"}))
	require.NoError(t, err)
	fake.ExpireTokens()
	_, err = tg.Put(t.Context(), targettest.PutRequest(map[string]string{"DATABASE_URL": "b"}))
	require.NoError(t, err, "an expired token is replaced by a new login")
	logins := 0
	for _, r := range fake.Requests() {
		if strings.HasSuffix(r.Path, "/login") {
			logins++
		}
	}
	require.Equal(t, 2, logins)
}

func TestErrors(t *testing.T) {
	t.Parallel()
	canary := "canary-infisical-0b7a"
	tests := []struct {
		name           string
		setup          func(f *infisicalfake.Server)
		clientSecret   string
		opts           string
		wantIs         error
		wantRetryable  bool
		wantRetryAfter time.Duration
		wantErr        string
	}{
		{
			name: "rate limited",
			setup: func(f *infisicalfake.Server) {
				f.FailNext(infisicalfake.Fault{Method: http.MethodPost, PathPrefix: "/api/v3/", Status: 429, Header: http.Header{"Retry-After": {"30"}}, Message: "Rate limit exceeded"})
			},
			wantRetryable: true, wantRetryAfter: 30 * time.Second,
			wantErr: "cannot write DATABASE_URL to prod /: Infisical API: POST /v3/secrets/raw/DATABASE_URL answered 429",
		},
		{
			name:         "wrong client secret",
			clientSecret: "cs-wrong",
			wantIs:       target.ErrAuth,
			wantErr:      `infisical target "inf": universal auth login refused client_id client-1; check the client secret`,
		},
		{
			name:    "read-only role",
			setup:   func(f *infisicalfake.Server) { f.SetReadOnly(true) },
			wantIs:  target.ErrAuth,
			wantErr: "cannot write DATABASE_URL to prod /; give the machine identity a project role that can read and edit secrets there",
		},
		{
			name:    "unknown environment",
			opts:    "environment: staging",
			wantIs:  target.ErrNotFound,
			wantErr: "Environment with slug 'staging'",
		},
		{
			name: "error echoing the value",
			setup: func(f *infisicalfake.Server) {
				f.FailNext(infisicalfake.Fault{Method: http.MethodPost, PathPrefix: "/api/v3/", Status: 422, Message: "secretValue postgres://u:" + canary + "@h/db is invalid"})
			},
			wantIs:  target.ErrInvalid,
			wantErr: "answered 422",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			fake := infisicalfake.New(t)
			if tt.setup != nil {
				tt.setup(fake)
			}
			cs := fake.ClientSecret
			if tt.clientSecret != "" {
				cs = tt.clientSecret
			}
			env := "prod"
			if tt.opts != "" {
				env = strings.TrimPrefix(tt.opts, "environment: ")
			}
			tg, err := infisical.New(target.Params{
				Name:       "inf",
				Decode:     targettest.DecodeYAML(fmt.Sprintf("{site_url: %q, client_id: %s, client_secret: %q, project_id: %s, environment: %s}", fake.URL, fake.ClientID, cs, fake.ProjectID, env)),
				HTTPClient: fake.Client(),
			})
			require.NoError(t, err)
			value := "postgres://u:" + canary + "@h/db"
			_, err = tg.Put(t.Context(), targettest.PutRequest(map[string]string{"DATABASE_URL": value}))
			require.Error(t, err)
			require.Empty(t, secret.Leaks([]byte(fmt.Sprintf("%v %+v", err, err)), secret.New(value), secret.New(canary), secret.New(cs)))
			require.ErrorContains(t, err, tt.wantErr)
			var re *target.RetryableError
			require.Equal(t, tt.wantRetryable, errors.As(err, &re))
			if tt.wantRetryable {
				require.Equal(t, tt.wantRetryAfter, re.RetryAfter)
			}
			if tt.wantIs != nil {
				require.ErrorIs(t, err, tt.wantIs)
			}
		})
	}
}

func TestCredentialsFromEnvironment(t *testing.T) {
	t.Parallel()
	fake := infisicalfake.New(t)
	env := map[string]string{infisical.EnvClientID: fake.ClientID, infisical.EnvClientSecret: fake.ClientSecret}
	tg, err := infisical.New(target.Params{Name: "inf", Decode: targettest.DecodeYAML(fmt.Sprintf("{site_url: %q, project_id: proj-1, environment: prod}", fake.URL)), Getenv: targettest.MapEnv(env), HTTPClient: fake.Client()})
	require.NoError(t, err)
	_, err = tg.Put(t.Context(), targettest.PutRequest(map[string]string{"DATABASE_URL": "x"}))
	require.NoError(t, err)

	tg, err = infisical.New(target.Params{Name: "inf", Decode: targettest.DecodeYAML(fmt.Sprintf("{site_url: %q, project_id: proj-1, environment: prod}", fake.URL)), Getenv: targettest.MapEnv(nil), HTTPClient: fake.Client()})
	require.NoError(t, err)
	_, err = tg.Put(t.Context(), targettest.PutRequest(map[string]string{"DATABASE_URL": "x"}))
	require.ErrorIs(t, err, target.ErrAuth)
	require.ErrorContains(t, err, "add client_id and client_secret: ${INFISICAL_CLIENT_SECRET}")
}

func TestValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		opts    string
		wantIs  error
		wantErr string
	}{
		{name: "ok", opts: "{project_id: proj-1, environment: prod}"},
		{name: "unknown environment", opts: "{project_id: proj-1, environment: staging}", wantIs: target.ErrNotFound, wantErr: `project proj-1 has no environment "staging" (it has: dev, prod)`},
		{name: "unknown project", opts: "{project_id: proj-2, environment: prod}", wantIs: target.ErrNotFound, wantErr: "cannot read project proj-2 for prod /; check project_id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			fake := infisicalfake.New(t)
			opts := strings.TrimSuffix(tt.opts, "}") + fmt.Sprintf(", site_url: %q, client_id: %s, client_secret: %q}", fake.URL, fake.ClientID, fake.ClientSecret)
			tg, err := infisical.New(target.Params{Name: "inf", Decode: targettest.DecodeYAML(opts), HTTPClient: fake.Client()})
			require.NoError(t, err)
			resp, err := tg.(target.Validator).Validate(t.Context(), target.ValidateRequest{})
			for _, r := range fake.Requests() {
				require.True(t, r.Method == http.MethodGet || strings.HasSuffix(r.Path, "/login"), "Validate must not write: %s %s", r.Method, r.Path)
			}
			if tt.wantErr != "" {
				require.ErrorIs(t, err, tt.wantIs)
				require.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, []string{"the identity's write access to prod / is proven by the first rotation"}, resp.Notes)
		})
	}
}

func newTarget(t *testing.T, fake *infisicalfake.Server, extra string) target.Target {
	t.Helper()
	opts := fmt.Sprintf("site_url: %q, client_id: %s, client_secret: %q, project_id: %s, environment: prod", fake.URL, fake.ClientID, fake.ClientSecret, fake.ProjectID)
	if extra != "" {
		opts += ", " + extra
	}
	tg, err := infisical.New(target.Params{Name: "inf", Decode: targettest.DecodeYAML("{" + opts + "}"), HTTPClient: fake.Client()})
	require.NoError(t, err)
	return tg
}

func methods(reqs []infisicalfake.Request) []string {
	var out []string
	for _, r := range reqs {
		out = append(out, r.Method)
	}
	return out
}
