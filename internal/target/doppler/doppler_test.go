package doppler_test

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
	"github.com/rotorhq/rotor/internal/target/doppler"
	"github.com/rotorhq/rotor/internal/target/doppler/dopplerfake"
	"github.com/rotorhq/rotor/internal/target/targettest"
)

func TestConformance(t *testing.T) {
	t.Parallel()
	var fakes sync.Map // target.Target → *dopplerfake.Server
	fakeOf := func(tg target.Target) *dopplerfake.Server {
		f, ok := fakes.Load(tg)
		require.True(t, ok, "target not built by the harness")
		return f.(*dopplerfake.Server)
	}
	targettest.Exercise(t, targettest.Harness{
		New: func(t *testing.T) target.Target {
			fake := dopplerfake.New(t)
			tg := newTarget(t, fake, "")
			fakes.Store(tg, fake)
			return tg
		},
		Seed: func(t *testing.T, tg target.Target, values map[string]secret.String) {
			for k, v := range values {
				fakeOf(tg).Set(k, v.Reveal(), dopplerfake.Masked)
			}
		},
		Break: func(t *testing.T, tg target.Target) {
			fakeOf(tg).FailNext(dopplerfake.Fault{Status: http.StatusInternalServerError, Messages: []string{"Internal error"}, Times: 1000})
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
		{name: "project and config", opts: "{project: backend, config: prd}", wantDest: "doppler config backend/prd"},
		{name: "service token scope", opts: "{}", wantDest: "doppler config of the service token"},
		{name: "other API", opts: "{project: p, config: c, api_url: 'http://127.0.0.1:9/'}", wantDest: "doppler config p/c at http://127.0.0.1:9"},
		{name: "project without config", opts: "{project: backend}", wantErr: "give both project and config, or neither"},
		{name: "bad api_url", opts: "{api_url: 'api.doppler.com'}", wantErr: `api_url "api.doppler.com" is not an http(s) URL`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tg, err := doppler.New(target.Params{Name: "dp", Decode: targettest.DecodeYAML(tt.opts)})
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				require.ErrorIs(t, err, target.ErrInvalid)
				return
			}
			require.NoError(t, err)
			require.Equal(t, target.Info{Type: "doppler", Name: "dp", Destination: tt.wantDest, Idempotent: true}, tg.Info())
		})
	}
}

func TestPutRequestShape(t *testing.T) {
	t.Parallel()
	fake := dopplerfake.New(t)
	fake.Set("DATABASE_URL", "old", dopplerfake.Masked)
	fake.Set("PGUSER", "app_blue", dopplerfake.Masked)
	fake.Set("UNRELATED", "keep", dopplerfake.Masked)
	tg := newTarget(t, fake, "")
	resp, err := tg.Put(t.Context(), targettest.PutRequest(map[string]string{"DATABASE_URL": "postgres://app_green:pw@h/db", "PGUSER": "app_blue"}))
	require.NoError(t, err)
	require.Equal(t, target.PutResponse{Changed: true, Ref: "1 secret(s) written"}, resp)

	require.Equal(t, []dopplerfake.Request{
		{Method: http.MethodGet, Path: "/v3/configs/config/secret", Project: "backend", Config: "prd", Name: "DATABASE_URL"},
		{Method: http.MethodGet, Path: "/v3/configs/config/secret", Project: "backend", Config: "prd", Name: "PGUSER"},
		// Only what differs is written.
		{Method: http.MethodPost, Path: "/v3/configs/config/secrets", Project: "backend", Config: "prd", Keys: []string{"DATABASE_URL"}},
	}, fake.Requests())
	v, _ := fake.Value("DATABASE_URL")
	require.Equal(t, "postgres://app_green:pw@h/db", v)
	v, _ = fake.Value("UNRELATED")
	require.Equal(t, "keep", v)
}

func TestServiceTokenScope(t *testing.T) {
	t.Parallel()
	fake := dopplerfake.New(t)
	tg, err := doppler.New(target.Params{Name: "dp", Decode: targettest.DecodeYAML(fmt.Sprintf("{api_url: %q}", fake.URL)), Getenv: targettest.MapEnv(map[string]string{"DOPPLER_TOKEN": fake.Token}), HTTPClient: fake.Client()})
	require.NoError(t, err)
	_, err = tg.Put(t.Context(), targettest.PutRequest(map[string]string{"DATABASE_URL": "x"}))
	require.NoError(t, err)
	for _, r := range fake.Requests() {
		require.Empty(t, r.Project+r.Config, "a service token's requests name no project or config")
	}
}

func TestReadsRawNotComputed(t *testing.T) {
	t.Parallel()
	fake := dopplerfake.New(t)
	fake.Set("PATH", "/usr/bin", dopplerfake.Masked)
	tg := newTarget(t, fake, "")
	value := "postgres://app:a${PATH}b@h/db"
	_, err := tg.Put(t.Context(), targettest.PutRequest(map[string]string{"DATABASE_URL": value}))
	require.NoError(t, err)
	resp, err := tg.(target.Checker).Check(t.Context(), target.CheckRequest{Keys: []string{"DATABASE_URL"}})
	require.NoError(t, err)
	require.True(t, secret.New(value).Equal(resp.Values["DATABASE_URL"]), "the raw value, with its ${PATH}, is what was written")
	resp2, err := tg.Put(t.Context(), targettest.PutRequest(map[string]string{"DATABASE_URL": value}))
	require.NoError(t, err)
	require.False(t, resp2.Changed)
}

func TestRestricted(t *testing.T) {
	t.Parallel()
	fake := dopplerfake.New(t)
	fake.Set("DATABASE_URL", "postgres://u:p@h/db", dopplerfake.Restricted)
	tg := newTarget(t, fake, "")

	resp, err := tg.(target.Checker).Check(t.Context(), target.CheckRequest{Keys: []string{"DATABASE_URL", "ABSENT"}})
	require.NoError(t, err)
	require.Empty(t, resp.Values)
	require.Equal(t, []string{"DATABASE_URL"}, resp.Unreadable)
	require.Equal(t, []string{"DATABASE_URL is restricted: Doppler never returns its value"}, resp.Notes)

	// Nothing to compare with, so every Put writes.
	for range 2 {
		put, err := tg.Put(t.Context(), targettest.PutRequest(map[string]string{"DATABASE_URL": "postgres://u:p@h/db"}))
		require.NoError(t, err)
		require.True(t, put.Changed)
	}
}

func TestErrors(t *testing.T) {
	t.Parallel()
	canary := "canary-doppler-51c2"
	tests := []struct {
		name           string
		setup          func(f *dopplerfake.Server)
		token          string
		opts           string
		wantIs         error
		wantRetryable  bool
		wantRetryAfter time.Duration
		wantErr        string
	}{
		{
			name: "rate limited",
			setup: func(f *dopplerfake.Server) {
				f.FailNext(dopplerfake.Fault{Method: http.MethodPost, Status: 429, Header: http.Header{"Retry-After": {"12"}}, Messages: []string{"Too many requests"}})
			},
			wantRetryable: true, wantRetryAfter: 12 * time.Second,
			wantErr: "cannot write config backend/prd: Doppler API: POST /v3/configs/config/secrets answered 429: Too many requests",
		},
		{
			name:    "wrong token",
			token:   "dp.st.wrong",
			wantIs:  target.ErrAuth,
			wantErr: "use a service token with read/write access to it (export it as DOPPLER_TOKEN)",
		},
		{
			name:    "read-only token",
			setup:   func(f *dopplerfake.Server) { f.SetReadOnly(true) },
			wantIs:  target.ErrAuth,
			wantErr: `doppler target "dp": cannot write config backend/prd; use a service token with read/write access`,
		},
		{
			name:    "another config",
			opts:    "{project: backend, config: dev}",
			wantIs:  target.ErrAuth,
			wantErr: "This token does not have access to requested config",
		},
		{
			name: "error echoing the value",
			setup: func(f *dopplerfake.Server) {
				f.FailNext(dopplerfake.Fault{Method: http.MethodPost, Status: 400, Messages: []string{"Invalid value postgres://u:" + canary + "@h/db"}})
			},
			wantIs:  target.ErrInvalid,
			wantErr: "answered 400",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			fake := dopplerfake.New(t)
			if tt.setup != nil {
				tt.setup(fake)
			}
			token := fake.Token
			if tt.token != "" {
				token = tt.token
			}
			opts := tt.opts
			if opts == "" {
				opts = "{project: backend, config: prd}"
			}
			tg := newTargetWith(t, fake, opts, token)
			value := "postgres://u:" + canary + "@h/db"
			_, err := tg.Put(t.Context(), targettest.PutRequest(map[string]string{"DATABASE_URL": value}))
			require.Error(t, err)
			require.Empty(t, secret.Leaks([]byte(fmt.Sprintf("%v %+v", err, err)), secret.New(value), secret.New(canary), secret.New(token)))
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

func TestMissingToken(t *testing.T) {
	t.Parallel()
	fake := dopplerfake.New(t)
	tg := newTargetWith(t, fake, "{project: backend, config: prd}", "")
	_, err := tg.Put(t.Context(), targettest.PutRequest(map[string]string{"DATABASE_URL": "x"}))
	require.ErrorIs(t, err, target.ErrAuth)
	require.ErrorContains(t, err, "write token: ${DOPPLER_TOKEN}")
	require.Empty(t, fake.Requests())
}

func TestValidate(t *testing.T) {
	t.Parallel()
	fake := dopplerfake.New(t)
	fake.Set("A", "1", dopplerfake.Masked)
	resp, err := newTarget(t, fake, "").(target.Validator).Validate(t.Context(), target.ValidateRequest{})
	require.NoError(t, err)
	require.Equal(t, []string{"the config holds 1 secret(s); the token's write access is proven by the first rotation"}, resp.Notes)
	require.Equal(t, []dopplerfake.Request{{Method: http.MethodGet, Path: "/v3/configs/config/secrets/names", Project: "backend", Config: "prd"}}, fake.Requests())

	_, err = newTargetWith(t, fake, "{project: backend, config: prd}", "dp.st.bad").(target.Validator).Validate(t.Context(), target.ValidateRequest{})
	require.ErrorIs(t, err, target.ErrAuth)
	require.ErrorContains(t, err, "cannot list the secret names of config backend/prd; use a service token with read/write access")
}

func newTarget(t *testing.T, fake *dopplerfake.Server, opts string) target.Target {
	t.Helper()
	if opts == "" {
		opts = "{project: backend, config: prd}"
	}
	return newTargetWith(t, fake, opts, fake.Token)
}

func newTargetWith(t *testing.T, fake *dopplerfake.Server, opts, token string) target.Target {
	t.Helper()
	opts = strings.TrimSuffix(opts, "}") + fmt.Sprintf(", api_url: %q}", fake.URL)
	tg, err := doppler.New(target.Params{Name: "dp", Decode: targettest.DecodeYAML(opts), Getenv: targettest.MapEnv(map[string]string{"DOPPLER_TOKEN": token}), HTTPClient: fake.Client()})
	require.NoError(t, err)
	return tg
}
