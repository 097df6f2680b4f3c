package gcpsm_test

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/rotorhq/rotor/internal/secret"
	"github.com/rotorhq/rotor/internal/target"
	"github.com/rotorhq/rotor/internal/target/gcpsm"
	"github.com/rotorhq/rotor/internal/target/gcpsm/gcpsmfake"
	"github.com/rotorhq/rotor/internal/target/targettest"
)

const (
	project  = "rotor-test-1"
	secretID = "app-database"
	res      = "/v1/projects/" + project + "/secrets/" + secretID
)

func TestConformance(t *testing.T) {
	t.Parallel()
	var fakes sync.Map // target.Target → *gcpsmfake.Server
	fakeOf := func(t *testing.T, tg target.Target) *gcpsmfake.Server {
		f, ok := fakes.Load(tg)
		require.True(t, ok, "target not built by the harness")
		return f.(*gcpsmfake.Server)
	}
	for _, opts := range []string{"format: json", "format: json, disable_previous: true"} {
		t.Run(opts, func(t *testing.T) {
			t.Parallel()
			targettest.Exercise(t, targettest.Harness{
				New: func(t *testing.T) target.Target {
					fake := gcpsmfake.New(t)
					tg := newTarget(t, fake, opts)
					fakes.Store(tg, fake)
					return tg
				},
				Seed: func(t *testing.T, tg target.Target, values map[string]secret.String) {
					doc := map[string]string{}
					for k, v := range values {
						doc[k] = v.Reveal()
					}
					b, err := json.Marshal(doc)
					require.NoError(t, err)
					fakeOf(t, tg).Seed(project, secretID, string(b))
				},
				Break: func(t *testing.T, tg target.Target) {
					fakeOf(t, tg).FailNext(gcpsmfake.Fault{Status: http.StatusInternalServerError, Message: "Internal error encountered.", Times: 1000})
				},
			})
		})
	}
}

func TestNew(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		opts     string
		env      map[string]string
		wantDest string
		wantErr  string
	}{
		{name: "project from the environment", opts: "secret_id: db-url", env: map[string]string{"GOOGLE_CLOUD_PROJECT": "my-project"}, wantDest: "gcp secret manager projects/my-project/secrets/db-url"},
		{name: "all options", opts: "{project: '123456789', secret_id: db_url, format: json, disable_previous: true, locations: [europe-west1], endpoint: 'https://secretmanager.p.googleapis.com/'}", wantDest: "gcp secret manager projects/123456789/secrets/db_url via https://secretmanager.p.googleapis.com"},
		{name: "no project", opts: "secret_id: a", wantErr: "has no project; add project: my-project (or export GOOGLE_CLOUD_PROJECT)"},
		{name: "bad project", opts: "{project: My_Project, secret_id: a}", wantErr: `project "My_Project" is neither a project id`},
		{name: "project id too short", opts: "{project: abcde, secret_id: a}", wantErr: `project "abcde" is neither a project id`},
		{name: "project id too long", opts: "{project: a23456789012345678901234567890b, secret_id: a}", wantErr: `is neither a project id`},
		{name: "project id ends with a dash", opts: "{project: my-project-, secret_id: a}", wantErr: `is neither a project id`},
		{name: "project number too long", opts: "{project: '123456789012345678901', secret_id: a}", wantErr: `is neither a project id`},
		{name: "longest project id", opts: "{project: a23456789012345678901234567890, secret_id: a}", wantDest: "gcp secret manager projects/a23456789012345678901234567890/secrets/a"},
		{name: "no secret_id", opts: "project: my-project", wantErr: "has no secret_id"},
		{name: "resource name as secret_id", opts: "{project: my-project, secret_id: projects/my-project/secrets/a}", wantErr: "is a resource name; give the project as project: and the last part as secret_id"},
		{name: "bad secret_id", opts: "{project: my-project, secret_id: 'a.b'}", wantErr: `secret_id "a.b" may hold only letters, digits, '-' and '_'`},
		{name: "bad format", opts: "{project: my-project, secret_id: a, format: yaml}", wantErr: `format "yaml" is not one of plain, json`},
		{name: "bad location", opts: "{project: my-project, secret_id: a, locations: [EU]}", wantErr: `location "EU" is not a region name`},
		{name: "endpoint with a path", opts: "{project: my-project, secret_id: a, endpoint: 'https://x/v1'}", wantErr: `endpoint "https://x/v1" is not an http(s) URL without a path`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tg, err := gcpsm.New(target.Params{Name: "gsm", Decode: targettest.DecodeYAML(tt.opts), Getenv: targettest.MapEnv(tt.env)})
			if tt.wantErr != "" {
				require.ErrorIs(t, err, target.ErrInvalid)
				require.ErrorContains(t, err, tt.wantErr)
				require.Nil(t, tg)
				return
			}
			require.NoError(t, err)
			require.Equal(t, target.Info{Type: "gcp-secret-manager", Name: "gsm", Destination: tt.wantDest, Idempotent: true}, tg.Info())
		})
	}
}

func TestPutCreatesThenSkips(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		opts      string
		wantRepl  string
		wantQuery string
	}{
		{name: "automatic replication", wantRepl: "automatic"},
		{name: "user-managed replication", opts: "locations: [europe-west1, europe-west4]", wantRepl: "europe-west1,europe-west4"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			fake := gcpsmfake.New(t)
			tg := newTarget(t, fake, tt.opts)
			const url = "postgres://app:pä$$@h/db?sslmode=require"
			resp, err := tg.Put(t.Context(), targettest.PutRequest(map[string]string{"DATABASE_URL": url}))
			require.NoError(t, err)
			require.Equal(t, target.PutResponse{Changed: true, Ref: "version 1"}, resp)
			require.Equal(t, []gcpsmfake.Request{
				{Method: "GET", Path: res + "/versions/latest:access"},
				{Method: "POST", Path: res + ":addVersion", HasChecksum: true},
				{Method: "POST", Path: "/v1/projects/" + project + "/secrets", Query: "secretId=" + secretID, Replication: tt.wantRepl},
				{Method: "POST", Path: res + ":addVersion", HasChecksum: true},
			}, fake.Requests())
			payloads, states := fake.Versions(project, secretID)
			require.Equal(t, []string{url}, payloads, "format plain stores the value itself")
			require.Equal(t, []string{gcpsmfake.Enabled}, states)
			require.Equal(t, tt.wantRepl, fake.Replication(project, secretID))

			resp, err = tg.Put(t.Context(), targettest.PutRequest(map[string]string{"DATABASE_URL": url}))
			require.NoError(t, err)
			require.Equal(t, target.PutResponse{Changed: false, Ref: "version 1"}, resp)
			require.Len(t, fake.Requests(), 5, "a repeated Put only reads")
		})
	}
}

func TestPutFormats(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		opts        string
		seed        string
		disable     bool
		values      map[string]string
		wantPayload string
		wantErr     string
	}{
		{name: "json keeps unmanaged fields", opts: "format: json", seed: `{"OTHER":"keep","DATABASE_URL":"old","N":1}`, values: map[string]string{"DATABASE_URL": "new<&>"}, wantPayload: `{"DATABASE_URL":"new<&>","N":1,"OTHER":"keep"}`},
		{name: "json refuses a payload that is not an object", opts: "format: json", seed: "hunter2-bare", values: map[string]string{"DATABASE_URL": "new"}, wantErr: "the latest payload is not a JSON object"},
		{name: "json refuses to guess past a disabled latest version", opts: "format: json", seed: `{"A":"1"}`, disable: true, values: map[string]string{"DATABASE_URL": "new"}, wantErr: "so rotor cannot read the fields to keep; enable it, or add a version by hand"},
		{name: "plain replaces a disabled latest version", seed: "old", disable: true, values: map[string]string{"DATABASE_URL": "new"}, wantPayload: "new"},
		{name: "plain takes one key", values: map[string]string{"DATABASE_URL": "a", "PGUSER": "b"}, wantErr: "format plain stores one value, but values has 2 keys (DATABASE_URL, PGUSER); use format: json, or one target per key"},
		{name: "empty payload", values: map[string]string{"DATABASE_URL": ""}, wantErr: "the payload would be 0 bytes; Secret Manager stores 1 to 65536"},
		{name: "json needs UTF-8", opts: "format: json", values: map[string]string{"DATABASE_URL": "a\xff"}, wantErr: "the value of DATABASE_URL is not valid UTF-8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			fake := gcpsmfake.New(t)
			if tt.seed != "" {
				fake.Seed(project, secretID, tt.seed)
			}
			if tt.disable {
				fake.SetState(project, secretID, 1, gcpsmfake.Disabled)
			}
			tg := newTarget(t, fake, tt.opts)
			_, err := tg.Put(t.Context(), targettest.PutRequest(tt.values))
			payloads, _ := fake.Versions(project, secretID)
			if tt.wantErr != "" {
				require.ErrorIs(t, err, target.ErrInvalid)
				require.ErrorContains(t, err, tt.wantErr)
				requireNoLeak(t, err, "hunter2-bare")
				require.LessOrEqual(t, len(payloads), 1, "nothing is added")
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.wantPayload, payloads[len(payloads)-1])
		})
	}
}

func TestDisablePrevious(t *testing.T) {
	t.Parallel()
	fake := gcpsmfake.New(t)
	for _, v := range []string{"v1", "v2", "v3"} {
		fake.Seed(project, secretID, v)
	}
	fake.SetState(project, secretID, 2, gcpsmfake.Destroyed)
	tg := newTarget(t, fake, "disable_previous: true")

	// The disable of version 1 fails once; the version is added anyway and
	// the engine's retry finishes the pruning without adding again.
	fake.FailNext(gcpsmfake.Fault{Status: http.StatusServiceUnavailable, Message: "The service is currently unavailable.", Suffix: ":disable"})
	_, err := tg.Put(t.Context(), targettest.PutRequest(map[string]string{"DATABASE_URL": "v4"}))
	var re *target.RetryableError
	require.ErrorAs(t, err, &re)
	require.ErrorContains(t, err, "disable version 1 of projects/"+project+"/secrets/"+secretID)
	_, states := fake.Versions(project, secretID)
	require.Equal(t, []string{gcpsmfake.Enabled, gcpsmfake.Destroyed, gcpsmfake.Enabled, gcpsmfake.Enabled}, states)

	resp, err := tg.Put(t.Context(), targettest.PutRequest(map[string]string{"DATABASE_URL": "v4"}))
	require.NoError(t, err)
	require.Equal(t, target.PutResponse{Changed: false, Ref: "version 4"}, resp)
	payloads, states := fake.Versions(project, secretID)
	require.Equal(t, []string{"v1", "v2", "v3", "v4"}, payloads)
	require.Equal(t, []string{gcpsmfake.Disabled, gcpsmfake.Destroyed, gcpsmfake.Enabled, gcpsmfake.Enabled}, states, "the newest two stay enabled")

	var disables []string
	for _, r := range fake.Requests() {
		if strings.HasSuffix(r.Path, ":disable") {
			disables = append(disables, r.Path)
		}
		if r.Method == "GET" && strings.HasSuffix(r.Path, "/versions") {
			require.Equal(t, "filter=state%3AENABLED&pageSize=100", r.Query)
		}
	}
	require.Equal(t, []string{res + "/versions/1:disable", res + "/versions/1:disable"}, disables)
}

func TestErrors(t *testing.T) {
	t.Parallel()
	canary := "canary-0b5e77"
	value := "postgres://app:" + canary + "@h/db"
	tests := []struct {
		name           string
		setup          func(f *gcpsmfake.Server)
		token          string
		wantRetryAfter time.Duration
		wantRetryable  bool
		wantIs         error
		wantErr        string
	}{
		{
			name: "throttled",
			setup: func(f *gcpsmfake.Server) {
				f.FailNext(gcpsmfake.Fault{Status: 429, Message: "Quota exceeded", Suffix: ":addVersion", Header: http.Header{"Retry-After": {"5"}}})
			},
			wantRetryable: true, wantRetryAfter: 5 * time.Second,
			wantErr: `gcp-secret-manager target "gsm": add a version to projects/rotor-test-1/secrets/app-database: Secret Manager: POST ` + res + `:addVersion answered 429`,
		},
		{
			name:          "unavailable",
			setup:         func(f *gcpsmfake.Server) { f.FailNext(gcpsmfake.Fault{Status: 503, Message: "unavailable"}) },
			wantRetryable: true,
			wantErr:       "read the latest version of",
		},
		{
			name:    "permission denied",
			setup:   func(f *gcpsmfake.Server) { f.Deny(gcpsmfake.PermAdd) },
			wantIs:  target.ErrAuth,
			wantErr: "add a version to projects/rotor-test-1/secrets/app-database; grant the credentials' principal roles/secretmanager.secretVersionManager on the secret",
		},
		{
			name:    "wrong token",
			token:   "ya29.expired",
			wantIs:  target.ErrAuth,
			wantErr: "read the latest version of projects/rotor-test-1/secrets/app-database; the access token was refused: renew the credentials",
		},
		{
			name: "an echoed payload is scrubbed",
			setup: func(f *gcpsmfake.Server) {
				f.FailNext(gcpsmfake.Fault{Status: 400, Suffix: ":addVersion", Message: "bad payload " + base64.StdEncoding.EncodeToString([]byte(value)) + " / " + value})
			},
			wantIs:  target.ErrInvalid,
			wantErr: "answered 400",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			fake := gcpsmfake.New(t)
			fake.Seed(project, secretID, "old")
			if tt.setup != nil {
				tt.setup(fake)
			}
			env := map[string]string{"GOOGLE_OAUTH_ACCESS_TOKEN": fake.Token}
			if tt.token != "" {
				env["GOOGLE_OAUTH_ACCESS_TOKEN"] = tt.token
			}
			tg := newTargetEnv(t, fake, "", env)
			_, err := tg.Put(t.Context(), targettest.PutRequest(map[string]string{"DATABASE_URL": value}))
			require.ErrorContains(t, err, tt.wantErr)
			if tt.wantIs != nil {
				require.ErrorIs(t, err, tt.wantIs)
			}
			requireNoLeak(t, err, canary)
			var re *target.RetryableError
			require.Equal(t, tt.wantRetryable, errors.As(err, &re))
			if tt.wantRetryable {
				require.Equal(t, tt.wantRetryAfter, re.RetryAfter)
			}
		})
	}
}

func TestServiceAccountCredentials(t *testing.T) {
	t.Parallel()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	keyPEM := string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}))
	serviceAccount := func(tokenURI string) map[string]string {
		return map[string]string{
			"type": "service_account", "project_id": project, "private_key_id": "k1", "private_key": keyPEM,
			"client_email": "rotor@" + project + ".iam.gserviceaccount.com", "token_uri": tokenURI,
		}
	}

	t.Run("key file", func(t *testing.T) {
		t.Parallel()
		fake := gcpsmfake.New(t)
		tg := newTargetEnv(t, fake, "", map[string]string{"GOOGLE_APPLICATION_CREDENTIALS": writeJSON(t, serviceAccount(fake.TokenURL()))})
		for range 2 {
			_, err := tg.Put(t.Context(), targettest.PutRequest(map[string]string{"DATABASE_URL": "postgres://a:b@h/d"}))
			require.NoError(t, err)
		}
		require.Equal(t, []gcpsmfake.Grant{{
			GrantType: "urn:ietf:params:oauth:grant-type:jwt-bearer", Issuer: "rotor@" + project + ".iam.gserviceaccount.com",
			Scope: "https://www.googleapis.com/auth/cloud-platform", Audience: fake.TokenURL(),
		}}, fake.Grants(), "one token, reused")
	})

	tests := []struct {
		name string
		// file returns the credentials file for a fake.
		file    func(t *testing.T, fake *gcpsmfake.Server) string
		wantErr string
	}{
		{
			name:    "missing file",
			file:    func(t *testing.T, _ *gcpsmfake.Server) string { return filepath.Join(t.TempDir(), "nope.json") },
			wantErr: "cannot read GOOGLE_APPLICATION_CREDENTIALS file ",
		},
		{
			name: "client secret file",
			file: func(t *testing.T, _ *gcpsmfake.Server) string {
				return writeJSON(t, map[string]any{"installed": map[string]any{"client_id": "x", "client_secret": "y"}})
			},
			wantErr: `is not a service account key, user or workload identity credential (type "")`,
		},
		{
			name: "refused grant",
			file: func(t *testing.T, fake *gcpsmfake.Server) string {
				return writeJSON(t, serviceAccount(fake.TokenURL()+"?audience-mismatch"))
			},
			wantErr: "Google refused the credentials (Invalid JWT: audience or scope); renew them",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			fake := gcpsmfake.New(t)
			tg := newTargetEnv(t, fake, "", map[string]string{"GOOGLE_APPLICATION_CREDENTIALS": tt.file(t, fake)})
			_, err := tg.Validate(t.Context(), target.ValidateRequest{})
			require.ErrorIs(t, err, target.ErrAuth)
			require.ErrorContains(t, err, tt.wantErr)
			require.NotContains(t, err.Error(), "PRIVATE KEY")
			require.Empty(t, fake.Requests(), "nothing reaches the API without a token")
		})
	}
}

func writeJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	p := filepath.Join(t.TempDir(), "credentials.json")
	require.NoError(t, os.WriteFile(p, b, 0o600))
	return p
}

func TestCheck(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		opts       string
		seed       string
		disable    bool
		keys       []string
		wantValues map[string]string
		wantNotes  []string
	}{
		{name: "plain", seed: "postgres://x", keys: []string{"DATABASE_URL"}, wantValues: map[string]string{"DATABASE_URL": "postgres://x"}},
		{name: "plain asked for two keys", seed: "postgres://x", keys: []string{"A", "B"}, wantValues: map[string]string{}, wantNotes: []string{"format plain holds one value; it cannot be read back as 2 keys"}},
		{name: "json", opts: "format: json", seed: `{"A":"1","B":2}`, keys: []string{"A", "B", "C"}, wantValues: map[string]string{"A": "1"}, wantNotes: []string{"field B is not a string"}},
		{name: "json not an object", opts: "format: json", seed: "hunter2-bare", keys: []string{"A"}, wantValues: map[string]string{}, wantNotes: []string{"projects/rotor-test-1/secrets/app-database: the latest payload is not a JSON object, and format json only writes fields of one (it does not replace a value it cannot read)"}},
		{name: "disabled latest", seed: "x", disable: true, keys: []string{"A"}, wantValues: map[string]string{}, wantNotes: []string{"the latest version of projects/rotor-test-1/secrets/app-database is not readable (Secret Version [projects/rotor-test-1/secrets/app-database/versions/1] is in DISABLED state.)"}},
		{name: "missing", keys: []string{"A"}, wantValues: map[string]string{}, wantNotes: []string{"projects/rotor-test-1/secrets/app-database has no version (or does not exist)"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			fake := gcpsmfake.New(t)
			if tt.seed != "" {
				fake.Seed(project, secretID, tt.seed)
			}
			if tt.disable {
				fake.SetState(project, secretID, 1, gcpsmfake.Disabled)
			}
			tg := newTarget(t, fake, tt.opts)
			resp, err := tg.Check(t.Context(), target.CheckRequest{Keys: tt.keys})
			require.NoError(t, err)
			require.Len(t, resp.Values, len(tt.wantValues))
			for k, v := range tt.wantValues {
				require.True(t, secret.New(v).Equal(resp.Values[k]), k)
			}
			require.Equal(t, tt.wantNotes, resp.Notes)
		})
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		opts      string
		setup     func(f *gcpsmfake.Server)
		wantNotes []string
		wantIs    error
		wantErr   string
	}{
		{name: "existing", setup: func(f *gcpsmfake.Server) { f.Seed(project, secretID, "x") }},
		{name: "missing", wantNotes: []string{"projects/rotor-test-1/secrets/app-database does not exist yet; the first rotation creates it (this needs secretmanager.secrets.create on the project)"}},
		{name: "no version", setup: func(f *gcpsmfake.Server) {
			f.Seed(project, secretID, "x")
			f.SetState(project, secretID, 1, gcpsmfake.Destroyed)
		}, wantNotes: []string{"the latest version of projects/rotor-test-1/secrets/app-database is not readable (Secret Version [projects/rotor-test-1/secrets/app-database/versions/1] is in DESTROYED state.); the next rotation adds an enabled one"}},
		{name: "json over a bare value", opts: "format: json", setup: func(f *gcpsmfake.Server) { f.Seed(project, secretID, "hunter2-bare") }, wantIs: target.ErrInvalid, wantErr: "the latest payload is not a JSON object"},
		{name: "access denied", setup: func(f *gcpsmfake.Server) { f.Seed(project, secretID, "x"); f.Deny(gcpsmfake.PermAccess) }, wantIs: target.ErrAuth, wantErr: "read the latest version of projects/rotor-test-1/secrets/app-database; grant the credentials' principal"},
		{name: "list denied with disable_previous", opts: "disable_previous: true", setup: func(f *gcpsmfake.Server) { f.Seed(project, secretID, "x"); f.Deny(gcpsmfake.PermList) }, wantIs: target.ErrAuth, wantErr: "list the versions of projects/rotor-test-1/secrets/app-database; grant the credentials' principal roles/secretmanager.secretVersionManager on the secret (or secretAccessor plus secretVersionAdder, and versions.list/versions.disable)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			fake := gcpsmfake.New(t)
			if tt.setup != nil {
				tt.setup(fake)
			}
			tg := newTarget(t, fake, tt.opts)
			resp, err := tg.Validate(t.Context(), target.ValidateRequest{})
			for _, r := range fake.Requests() {
				require.Equal(t, "GET", r.Method, "Validate writes nothing")
			}
			if tt.wantErr != "" {
				require.ErrorIs(t, err, tt.wantIs)
				require.ErrorContains(t, err, tt.wantErr)
				requireNoLeak(t, err, "hunter2-bare")
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.wantNotes, resp.Notes)
		})
	}
}

func newTarget(t *testing.T, fake *gcpsmfake.Server, opts string) *gcpsm.Target {
	t.Helper()
	return newTargetEnv(t, fake, opts, map[string]string{"GOOGLE_OAUTH_ACCESS_TOKEN": fake.Token})
}

func newTargetEnv(t *testing.T, fake *gcpsmfake.Server, opts string, env map[string]string) *gcpsm.Target {
	t.Helper()
	src := fmt.Sprintf("{project: %s, secret_id: %s, endpoint: %q", project, secretID, fake.URL)
	if opts != "" {
		src += ", " + opts
	}
	tg, err := gcpsm.New(target.Params{Name: "gsm", Decode: targettest.DecodeYAML(src + "}"), HTTPClient: fake.Client(), Getenv: targettest.MapEnv(env)})
	require.NoError(t, err)
	return tg.(*gcpsm.Target)
}

func requireNoLeak(t *testing.T, err error, value string) {
	t.Helper()
	require.Empty(t, secret.Leaks([]byte(fmt.Sprintf("%v %+v", err, err)), secret.New(value)), "the error holds the value")
}
