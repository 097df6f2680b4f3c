package vault_test

import (
	"encoding/json"
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
	"github.com/rotorhq/rotor/internal/target/targettest"
	"github.com/rotorhq/rotor/internal/target/vault"
	"github.com/rotorhq/rotor/internal/target/vault/vaultfake"
)

const path = "apps/web"

func TestConformance(t *testing.T) {
	t.Parallel()
	var fakes sync.Map // target.Target → *vaultfake.Server
	fakeOf := func(tg target.Target) *vaultfake.Server {
		f, ok := fakes.Load(tg)
		require.True(t, ok, "target not built by the harness")
		return f.(*vaultfake.Server)
	}
	for _, method := range []string{vault.MethodCAS, vault.MethodPatch} {
		t.Run(method, func(t *testing.T) {
			t.Parallel()
			targettest.Exercise(t, targettest.Harness{
				New: func(t *testing.T) target.Target {
					fake := vaultfake.New(t)
					tg := newTarget(t, fake, "method: "+method)
					fakes.Store(tg, fake)
					return tg
				},
				Seed: func(t *testing.T, tg target.Target, values map[string]secret.String) {
					data := map[string]any{}
					for k, v := range values {
						data[k] = v.Reveal()
					}
					fakeOf(tg).Seed("secret", path, data)
				},
				Break: func(t *testing.T, tg target.Target) {
					fakeOf(tg).FailNext(vaultfake.Fault{Status: http.StatusServiceUnavailable, Errors: []string{"Vault is sealed"}, Times: 1000})
				},
			})
		})
	}
}

func TestNew(t *testing.T) {
	t.Parallel()
	env := map[string]string{"VAULT_ADDR": "https://vault.env:8200", "VAULT_TOKEN": "hvs.env", "VAULT_NAMESPACE": "team/"}
	tests := []struct {
		name     string
		opts     string
		env      map[string]string
		wantDest string
		wantErr  string
	}{
		{name: "address and namespace from the environment", opts: "path: apps/web", env: env, wantDest: "vault secret/apps/web at https://vault.env:8200 (namespace team)"},
		{name: "options win over the environment", opts: "{address: 'http://127.0.0.1:8200/', namespace: ops, mount: /kv/team/, path: /db/}", env: env, wantDest: "vault kv/team/db at http://127.0.0.1:8200 (namespace ops)"},
		{name: "no namespace", opts: "{address: 'https://v:8200', path: a/b, method: patch}", wantDest: "vault secret/a/b at https://v:8200"},
		{name: "no address", opts: "path: a", wantErr: "has no address; add address: https://vault.example.com:8200 or export VAULT_ADDR"},
		{name: "address without scheme", opts: "{address: 'vault:8200', path: a}", wantErr: `address "vault:8200" is not an http(s) URL`},
		{name: "no path", opts: "address: 'https://v'", wantErr: "has no path; add the secret's path inside the mount"},
		{name: "path with the API's data segment", opts: "{address: 'https://v', path: data/apps/web}", wantErr: "starts with data/, which the API adds itself; drop it (path: apps/web)"},
		{name: "mount with the API's data segment", opts: "{address: 'https://v', mount: secret/data, path: a}", wantErr: "ends in the API's data/ segment"},
		{name: "dot-dot segment", opts: "{address: 'https://v', path: a/../b}", wantErr: "has an empty, . or .. segment"},
		{name: "empty mount", opts: "{address: 'https://v', mount: /, path: a}", wantErr: "mount is empty"},
		{name: "unknown method", opts: "{address: 'https://v', path: a, method: merge}", wantErr: `method "merge" is not one of cas, patch`},
		{name: "unknown option", opts: "{address: 'https://v', path: a, engine: kv2}", wantErr: "field engine not found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tg, err := vault.New(target.Params{Name: "kv", Decode: targettest.DecodeYAML(tt.opts), Getenv: targettest.MapEnv(tt.env)})
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				if !strings.Contains(tt.wantErr, "field") {
					// Decode errors are the config layer's, located there.
					require.ErrorIs(t, err, target.ErrInvalid)
				}
				require.Nil(t, tg)
				return
			}
			require.NoError(t, err)
			require.Equal(t, target.Info{Type: "vault", Name: "kv", Destination: tt.wantDest, Idempotent: true}, tg.Info())
		})
	}
}

func TestPutChangesOnlyManagedKeys(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		opts string
		// wantWrite is the method of the write and the keys it carries.
		wantMethod string
		wantKeys   []string
	}{
		{name: "cas writes the whole map back", opts: "method: cas", wantMethod: http.MethodPut, wantKeys: []string{"DATABASE_URL", "FEATURE_FLAGS", "OTHER"}},
		{name: "patch sends only the managed key", opts: "method: patch", wantMethod: http.MethodPatch, wantKeys: []string{"DATABASE_URL"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			fake := vaultfake.New(t)
			fake.Seed("secret", path, map[string]any{"OTHER": "keep", "DATABASE_URL": "old", "FEATURE_FLAGS": json.Number("42")})
			tg := newTarget(t, fake, tt.opts)
			resp, err := tg.Put(t.Context(), targettest.PutRequest(map[string]string{"DATABASE_URL": "postgres://app:new@h/db"}))
			require.NoError(t, err)
			require.Equal(t, target.PutResponse{Changed: true, Ref: "version 2"}, resp)

			data, ver, ok := fake.Data("secret", path)
			require.True(t, ok)
			require.Equal(t, 2, ver)
			require.Equal(t, map[string]any{"OTHER": "keep", "DATABASE_URL": "postgres://app:new@h/db", "FEATURE_FLAGS": json.Number("42")}, data)

			reqs := fake.Requests()
			require.Len(t, reqs, 2)
			require.Equal(t, vaultfake.Request{Method: http.MethodGet, Path: "/v1/secret/data/apps/web"}, reqs[0])
			w := reqs[1]
			require.Equal(t, tt.wantMethod, w.Method)
			require.Equal(t, "/v1/secret/data/apps/web", w.Path)
			require.Equal(t, tt.wantKeys, w.Keys)
			require.NotNil(t, w.CAS, "every write is guarded by check-and-set")
			require.Equal(t, 1, *w.CAS)
			if tt.wantMethod == http.MethodPatch {
				require.Equal(t, "application/merge-patch+json", w.ContentType)
			}
		})
	}
}

func TestPutCreatesMissingPath(t *testing.T) {
	t.Parallel()
	for _, method := range []string{vault.MethodCAS, vault.MethodPatch} {
		t.Run(method, func(t *testing.T) {
			t.Parallel()
			fake := vaultfake.New(t)
			tg := newTarget(t, fake, "method: "+method)
			_, err := tg.Put(t.Context(), targettest.PutRequest(map[string]string{"DATABASE_URL": "u"}))
			require.NoError(t, err)
			reqs := fake.Requests()
			require.Len(t, reqs, 2)
			// cas=0: create only if nobody else created it meanwhile.
			require.Equal(t, http.MethodPut, reqs[1].Method)
			require.Equal(t, 0, *reqs[1].CAS)
		})
	}
}

func TestPutAfterDeletedVersion(t *testing.T) {
	t.Parallel()
	fake := vaultfake.New(t)
	fake.Seed("secret", path, map[string]any{"DATABASE_URL": "old", "GONE": "x"})
	fake.Seed("secret", path, map[string]any{"DATABASE_URL": "older", "GONE": "y"})
	fake.DeleteLatest("secret", path)
	tg := newTarget(t, fake, "method: patch")
	resp, err := tg.Put(t.Context(), targettest.PutRequest(map[string]string{"DATABASE_URL": "new"}))
	require.NoError(t, err)
	require.Equal(t, "version 3", resp.Ref)
	data, _, ok := fake.Data("secret", path)
	require.True(t, ok)
	require.Equal(t, map[string]any{"DATABASE_URL": "new"}, data, "a deleted version's keys are not resurrected")
	reqs := fake.Requests()
	require.Equal(t, 2, *reqs[len(reqs)-1].CAS, "cas is the deleted version's number")
}

func TestPutRetriesLostCheckAndSet(t *testing.T) {
	t.Parallel()
	for _, method := range []string{vault.MethodCAS, vault.MethodPatch} {
		t.Run(method, func(t *testing.T) {
			t.Parallel()
			fake := vaultfake.New(t)
			fake.Seed("secret", path, map[string]any{"DATABASE_URL": "old"})
			var once sync.Once
			fake.BeforeWrite(func(s *vaultfake.Server) {
				once.Do(func() {
					s.Seed("secret", path, map[string]any{"DATABASE_URL": "old", "ADDED_MEANWHILE": "keep"})
				})
			})
			tg := newTarget(t, fake, "method: "+method)
			resp, err := tg.Put(t.Context(), targettest.PutRequest(map[string]string{"DATABASE_URL": "new"}))
			require.NoError(t, err)
			require.Equal(t, "version 3", resp.Ref)
			data, _, _ := fake.Data("secret", path)
			require.Equal(t, map[string]any{"DATABASE_URL": "new", "ADDED_MEANWHILE": "keep"}, data, "the other writer's key survives")

			var cas []int
			for _, r := range fake.Requests() {
				if r.Method != http.MethodGet {
					cas = append(cas, *r.CAS)
				}
			}
			require.Equal(t, []int{1, 2}, cas, "the lost write is redone against the new version")
		})
	}
}

func TestPutGivesUpOnEndlessRace(t *testing.T) {
	t.Parallel()
	fake := vaultfake.New(t)
	fake.BeforeWrite(func(s *vaultfake.Server) { s.Seed("secret", path, map[string]any{"BUSY": "1"}) })
	tg := newTarget(t, fake, "")
	_, err := tg.Put(t.Context(), targettest.PutRequest(map[string]string{"DATABASE_URL": "new"}))
	require.ErrorContains(t, err, "changed under every one of 5 check-and-set attempts")
	var re *target.RetryableError
	require.ErrorAs(t, err, &re, "safe to retry: nothing was written")
	data, _, ok := fake.Data("secret", path)
	require.True(t, ok)
	require.NotContains(t, data, "DATABASE_URL")
}

func TestPutErrors(t *testing.T) {
	t.Parallel()
	canary := "canary-vault-7d1e"
	tests := []struct {
		name           string
		setup          func(f *vaultfake.Server)
		token          string
		wantIs         error
		wantRetryAfter time.Duration
		wantRetryable  bool
		wantErr        string
	}{
		{
			name: "rate-limit quota",
			setup: func(f *vaultfake.Server) {
				f.FailNext(vaultfake.Fault{Status: 429, Header: http.Header{"Retry-After": {"7"}}, Errors: []string{`request path "secret/data/apps/web": rate limit quota exceeded`}})
			},
			wantRetryable: true, wantRetryAfter: 7 * time.Second,
			wantErr: "rate limit quota exceeded",
		},
		{
			name: "sealed",
			setup: func(f *vaultfake.Server) {
				f.FailNext(vaultfake.Fault{Status: 503, Errors: []string{"Vault is sealed"}})
			},
			wantRetryable: true,
			wantErr:       "read secret/apps/web answered 503 (Vault is sealed)",
		},
		{
			name:    "wrong token",
			token:   "hvs.wrong",
			wantIs:  target.ErrAuth,
			wantErr: "check that the token is valid (vault token lookup) and that its policy grants create, read, update on secret/data/apps/web",
		},
		{
			name:    "policy without update",
			setup:   func(f *vaultfake.Server) { f.SetCapabilities(vaultfake.CapRead, vaultfake.CapCreate) },
			wantIs:  target.ErrAuth,
			wantErr: "write secret/apps/web answered 403",
		},
		{
			name: "an error that echoes the value",
			setup: func(f *vaultfake.Server) {
				f.FailNext(vaultfake.Fault{Method: http.MethodPut, Status: 400, Errors: []string{"invalid value postgres://app:" + canary + "@h/db"}})
			},
			wantIs:  target.ErrInvalid,
			wantErr: "write secret/apps/web answered 400",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			fake := vaultfake.New(t)
			fake.Seed("secret", path, map[string]any{"DATABASE_URL": "old"})
			if tt.setup != nil {
				tt.setup(fake)
			}
			token := fake.Token
			if tt.token != "" {
				token = tt.token
			}
			tg, err := vault.New(target.Params{Name: "kv", Decode: targettest.DecodeYAML(fmt.Sprintf("{address: %q, token: %q, path: %s}", fake.URL, token, path)), HTTPClient: fake.Client()})
			require.NoError(t, err)
			value := "postgres://app:" + canary + "@h/db"
			_, err = tg.Put(t.Context(), targettest.PutRequest(map[string]string{"DATABASE_URL": value}))
			require.Error(t, err)
			require.Empty(t, secret.Leaks([]byte(fmt.Sprintf("%v %+v", err, err)), secret.New(value), secret.New(canary), secret.New(token)))
			require.ErrorContains(t, err, `vault target "kv"`)
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
	fake := vaultfake.New(t)
	tg, err := vault.New(target.Params{Name: "kv", Decode: targettest.DecodeYAML(fmt.Sprintf("{address: %q, path: a}", fake.URL)), Getenv: targettest.MapEnv(nil)})
	require.NoError(t, err, "a missing token is reported when it is needed, not when the config loads")
	_, err = tg.Put(t.Context(), targettest.PutRequest(map[string]string{"DATABASE_URL": "x"}))
	require.ErrorIs(t, err, target.ErrAuth)
	require.ErrorContains(t, err, "write token: ${VAULT_TOKEN} and export VAULT_TOKEN")
	require.Empty(t, fake.Requests())
}

func TestNamespace(t *testing.T) {
	t.Parallel()
	fake := vaultfake.New(t)
	fake.Namespace = "team"
	fake.AddMount("kv/apps")
	tg, err := vault.New(target.Params{
		Name:       "kv",
		Decode:     targettest.DecodeYAML(fmt.Sprintf("{address: %q, mount: kv/apps, path: web}", fake.URL)),
		Getenv:     targettest.MapEnv(map[string]string{"VAULT_TOKEN": fake.Token, "VAULT_NAMESPACE": "team"}),
		HTTPClient: fake.Client(),
	})
	require.NoError(t, err)
	_, err = tg.Put(t.Context(), targettest.PutRequest(map[string]string{"DATABASE_URL": "x"}))
	require.NoError(t, err)
	for _, r := range fake.Requests() {
		require.Equal(t, "team", r.Namespace, "%s %s", r.Method, r.Path)
		require.True(t, strings.HasPrefix(r.Path, "/v1/kv/apps/data/web"), r.Path)
	}
}

func TestCASRequiredPath(t *testing.T) {
	t.Parallel()
	fake := vaultfake.New(t)
	fake.Seed("secret", path, map[string]any{"A": "1"})
	fake.SetCASRequired("secret", path, true)
	tg := newTarget(t, fake, "")
	_, err := tg.Put(t.Context(), targettest.PutRequest(map[string]string{"DATABASE_URL": "x"}))
	require.NoError(t, err, "rotor always sends cas, so cas_required paths work")
}

func TestCheck(t *testing.T) {
	t.Parallel()
	fake := vaultfake.New(t)
	fake.Seed("secret", path, map[string]any{"DATABASE_URL": "u", "PORT": json.Number("5432"), "OTHER": "o"})
	c := newTarget(t, fake, "").(target.Checker)
	resp, err := c.Check(t.Context(), target.CheckRequest{Keys: []string{"DATABASE_URL", "PORT", "MISSING"}})
	require.NoError(t, err)
	require.Len(t, resp.Values, 1)
	require.True(t, secret.New("u").Equal(resp.Values["DATABASE_URL"]))
	require.Equal(t, []string{"PORT holds a number, not a string"}, resp.Notes)
	require.Empty(t, resp.Unreadable)

	fake.DeleteLatest("secret", path)
	resp, err = c.Check(t.Context(), target.CheckRequest{Keys: []string{"DATABASE_URL"}})
	require.NoError(t, err)
	require.Empty(t, resp.Values)
	require.Equal(t, []string{"secret/apps/web holds no live version"}, resp.Notes)
}

func TestValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		opts      string
		setup     func(f *vaultfake.Server)
		token     string
		wantNotes []string
		wantIs    error
		wantErr   string
	}{
		{
			name:      "existing path",
			setup:     func(f *vaultfake.Server) { f.Seed("secret", path, map[string]any{"A": "1"}) },
			wantNotes: []string{"the token expires in 1h0m0s; rotations after that fail until it is renewed", "secret/apps/web is at version 1"},
		},
		{
			name:      "path not created yet",
			wantNotes: []string{"the token expires in 1h0m0s; rotations after that fail until it is renewed", "secret/apps/web does not exist yet; the first rotation creates it"},
		},
		{
			name:    "wrong token",
			token:   "hvs.nope",
			wantIs:  target.ErrAuth,
			wantErr: "rejected the token (expired, revoked, or from another namespace)",
		},
		{
			name:    "policy lacks update",
			setup:   func(f *vaultfake.Server) { f.SetCapabilities(vaultfake.CapRead, vaultfake.CapCreate) },
			wantIs:  target.ErrAuth,
			wantErr: "the token's policy lacks update on secret/data/apps/web (it has: read, create)",
		},
		{
			name: "patch method needs patch",
			opts: "method: patch",
			setup: func(f *vaultfake.Server) {
				f.SetCapabilities(vaultfake.CapRead, vaultfake.CapCreate, vaultfake.CapUpdate)
			},
			wantIs:  target.ErrAuth,
			wantErr: "lacks patch on secret/data/apps/web",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			fake := vaultfake.New(t)
			if tt.setup != nil {
				tt.setup(fake)
			}
			token := fake.Token
			if tt.token != "" {
				token = tt.token
			}
			opts := fmt.Sprintf("{address: %q, token: %q, path: %s}", fake.URL, token, path)
			if tt.opts != "" {
				opts = fmt.Sprintf("{address: %q, token: %q, path: %s, %s}", fake.URL, token, path, tt.opts)
			}
			tg, err := vault.New(target.Params{Name: "kv", Decode: targettest.DecodeYAML(opts), HTTPClient: fake.Client()})
			require.NoError(t, err)
			resp, err := tg.(target.Validator).Validate(t.Context(), target.ValidateRequest{})
			for _, r := range fake.Requests() {
				require.Contains(t, []string{http.MethodGet, http.MethodPost}, r.Method, "Validate must not write")
			}
			if tt.wantErr != "" {
				require.ErrorIs(t, err, tt.wantIs)
				require.ErrorContains(t, err, tt.wantErr)
				require.Empty(t, secret.Leaks([]byte(err.Error()), secret.New(token)))
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.wantNotes, resp.Notes)
		})
	}
}

func newTarget(t *testing.T, fake *vaultfake.Server, extra string) target.Target {
	t.Helper()
	opts := fmt.Sprintf("{address: %q, token: %q, path: %s}", fake.URL, fake.Token, path)
	if extra != "" {
		opts = fmt.Sprintf("{address: %q, token: %q, path: %s, %s}", fake.URL, fake.Token, path, extra)
	}
	tg, err := vault.New(target.Params{Name: "kv", Decode: targettest.DecodeYAML(opts), HTTPClient: fake.Client(), Getenv: targettest.MapEnv(nil)})
	require.NoError(t, err)
	return tg
}
