package railway_test

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/rotorhq/rotor/internal/secret"
	"github.com/rotorhq/rotor/internal/target"
	"github.com/rotorhq/rotor/internal/target/railway"
	"github.com/rotorhq/rotor/internal/target/railway/railwayfake"
	"github.com/rotorhq/rotor/internal/target/targettest"
	"github.com/rotorhq/rotor/internal/target/webapi"
)

const (
	projectOpts = "token: " + railwayfake.ProjectToken + "\nproject_id: " + railwayfake.ProjectID + "\nenvironment_id: " + railwayfake.EnvironmentID + "\n"
	accountOpts = "token: " + railwayfake.AccountToken + "\ntoken_kind: account\nproject_id: " + railwayfake.ProjectID + "\nenvironment_id: " + railwayfake.EnvironmentID + "\n"
	serviceOpt  = "service_id: " + railwayfake.ServiceID + "\n"
)

// fakes finds the fake behind a target built by a harness.
var fakes sync.Map // target.Target → *railwayfake.Fake

func fakeOf(tg target.Target) *railwayfake.Fake {
	f, _ := fakes.Load(tg)
	return f.(*railwayfake.Fake)
}

func TestConformance(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		opts    string
		service string
		sealed  bool
	}{
		{name: "service variables with a project token", opts: projectOpts + serviceOpt, service: railwayfake.ServiceID},
		{name: "shared variables with an account token", opts: accountOpts},
		{name: "sealed service variables", opts: projectOpts + serviceOpt + "sealed: true\n", service: railwayfake.ServiceID, sealed: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := targettest.Harness{
				New: func(t *testing.T) target.Target {
					f := railwayfake.New(t)
					if tc.sealed {
						f.SealNewVariables()
					}
					tg := newTarget(t, f, tc.opts)
					fakes.Store(tg, f)
					return tg
				},
				Seed: func(t *testing.T, tg target.Target, values map[string]secret.String) {
					for k, v := range values {
						fakeOf(tg).Set(railwayfake.EnvironmentID, tc.service, k, v.Reveal())
					}
				},
				Break: func(t *testing.T, tg target.Target) {
					fakeOf(tg).FailNext(1000, 500)
				},
			}
			if tc.sealed {
				// Sealed values cannot be compared, so every Put writes.
				h.NoChangeDetection = true
				h.Read = func(t *testing.T, tg target.Target, key string) (secret.String, bool) {
					v, ok := fakeOf(tg).Get(railwayfake.EnvironmentID, tc.service, key)
					return secret.New(v), ok
				}
			}
			targettest.Exercise(t, h)
		})
	}
}

func TestNew(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		opts       string
		wantDest   string
		wantReload bool
		wantErrIs  error
		wantErr    string
	}{
		{name: "service: redeploys by default", opts: projectOpts + serviceOpt, wantDest: "railway project prj-rotor-test environment env-production, service svc-api", wantReload: true},
		{name: "service with redeploy off", opts: projectOpts + serviceOpt + "redeploy: false\n", wantDest: "railway project prj-rotor-test environment env-production, service svc-api"},
		{name: "shared variables", opts: accountOpts, wantDest: "railway project prj-rotor-test environment env-production, shared variables"},
		{name: "no token", opts: "project_id: p\nenvironment_id: e\n", wantErrIs: target.ErrAuth, wantErr: "has no token; add token: ${RAILWAY_TOKEN}"},
		{name: "no project", opts: "token: x\nenvironment_id: e\n", wantErrIs: target.ErrInvalid, wantErr: "needs project_id and environment_id"},
		{name: "no environment", opts: "token: x\nproject_id: p\n", wantErrIs: target.ErrInvalid, wantErr: "needs project_id and environment_id"},
		{name: "unknown token kind", opts: projectOpts + "token_kind: team\n", wantErrIs: target.ErrInvalid, wantErr: `token_kind "team" is not project or account`},
		{name: "redeploy without a service", opts: projectOpts + "redeploy: true\n", wantErrIs: target.ErrInvalid, wantErr: "redeploy: true needs service_id"},
		{name: "api_url not http", opts: projectOpts + "api_url: ftp://x/graphql\n", wantErrIs: target.ErrInvalid, wantErr: `api_url "ftp://x/graphql" is not an http(s) URL`},
		{name: "unknown option", opts: projectOpts + "deploy: true\n", wantErr: "field deploy not found"},
		{name: "reload_poll", opts: projectOpts + serviceOpt + "reload_poll: 30s\n", wantDest: "railway project prj-rotor-test environment env-production, service svc-api", wantReload: true},
		{name: "reload_poll without redeploy", opts: projectOpts + serviceOpt + "redeploy: false\nreload_poll: 30s\n", wantErrIs: target.ErrInvalid, wantErr: "reload_poll is set but redeploy is off"},
		{name: "reload_poll not a duration", opts: projectOpts + serviceOpt + "reload_poll: soon\n", wantErrIs: target.ErrInvalid, wantErr: `reload_poll "soon" is not a positive duration`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tg, err := railway.New(target.Params{Name: "prod", Decode: targettest.DecodeYAML(tt.opts)})
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				require.ErrorContains(t, err, `railway target "prod"`)
				if tt.wantErrIs != nil {
					require.ErrorIs(t, err, tt.wantErrIs)
				}
				return
			}
			require.NoError(t, err)
			require.Equal(t, target.Info{Type: "railway", Name: "prod", Destination: tt.wantDest, Idempotent: true}, tg.Info())
			isReloader := target.Discover(tg).Reloader != nil
			require.Equal(t, tt.wantReload, isReloader)
		})
	}
}

func TestPutRequestShape(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		opts       string
		service    string
		wantAuth   string
		wantHasSvc bool
	}{
		{name: "project token, service variables", opts: projectOpts + serviceOpt, service: railwayfake.ServiceID, wantAuth: "project", wantHasSvc: true},
		{name: "account token, shared variables", opts: accountOpts, wantAuth: "account"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := railwayfake.New(t)
			f.Set(railwayfake.EnvironmentID, tt.service, "KEEP", "other")
			tg := newTarget(t, f, tt.opts)

			resp, err := tg.Put(t.Context(), targettest.PutRequest(map[string]string{"DATABASE_URL": "postgres://a:b@h/db", "PGPASSWORD": "b"}))
			require.NoError(t, err)
			require.True(t, resp.Changed)
			calls := f.Calls()
			require.Equal(t, []string{"variables", "variableCollectionUpsert"}, f.Operations())
			require.Equal(t, true, calls[0].Variables["unrendered"], "read back raw values, not rendered references")
			for _, c := range calls {
				require.Equal(t, tt.wantAuth, c.Auth)
			}
			input := calls[1].Variables["input"].(map[string]any)
			require.Equal(t, true, input["skipDeploys"], "Put must not deploy")
			require.NotContains(t, input, "replace", "replace would delete unmanaged variables")
			_, hasSvc := input["serviceId"]
			require.Equal(t, tt.wantHasSvc, hasSvc)
			require.Equal(t, map[string]any{"DATABASE_URL": "postgres://a:b@h/db", "PGPASSWORD": "b"}, input["variables"])
			require.Empty(t, f.Deploys(), "Put must not start a deployment")
			v, ok := f.Get(railwayfake.EnvironmentID, tt.service, "KEEP")
			require.True(t, ok)
			require.Equal(t, "other", v)

			// Only the key whose value changed is sent again.
			_, err = tg.Put(t.Context(), targettest.PutRequest(map[string]string{"DATABASE_URL": "postgres://a:c@h/db", "PGPASSWORD": "b"}))
			require.NoError(t, err)
			calls = f.Calls()
			require.Len(t, calls, 4)
			require.Equal(t, map[string]any{"DATABASE_URL": "postgres://a:c@h/db"}, calls[3].Variables["input"].(map[string]any)["variables"])

			// Nothing changed: nothing written.
			resp, err = tg.Put(t.Context(), targettest.PutRequest(map[string]string{"DATABASE_URL": "postgres://a:c@h/db", "PGPASSWORD": "b"}))
			require.NoError(t, err)
			require.False(t, resp.Changed)
			require.Equal(t, "variables", f.Operations()[len(f.Calls())-1])
			require.Equal(t, 2, f.Mutations())
		})
	}
}

func TestSealedPutWritesWithoutReading(t *testing.T) {
	t.Parallel()
	f := railwayfake.New(t)
	tg := newTarget(t, f, projectOpts+serviceOpt+"sealed: true\n")
	_, err := tg.Put(t.Context(), targettest.PutRequest(map[string]string{"DATABASE_URL": "postgres://a:b@h/db"}))
	require.NoError(t, err)
	require.Equal(t, []string{"variableCollectionUpsert"}, f.Operations())

	resp, err := tg.(target.Checker).Check(t.Context(), target.CheckRequest{Keys: []string{"DATABASE_URL", "PGPASSWORD"}})
	require.NoError(t, err)
	require.Equal(t, []string{"DATABASE_URL", "PGPASSWORD"}, resp.Unreadable)
	require.Empty(t, resp.Values)
	require.NotEmpty(t, resp.Notes)
	require.Len(t, f.Calls(), 1, "Check of sealed variables must not ask Railway")
}

func TestCheckReadsRawValues(t *testing.T) {
	t.Parallel()
	f := railwayfake.New(t)
	f.Set(railwayfake.EnvironmentID, "", "HOST", "db.internal")
	f.Set(railwayfake.EnvironmentID, railwayfake.ServiceID, "DATABASE_URL", "postgres://u:p@${{shared.HOST}}/db")
	tg := newTarget(t, f, projectOpts+serviceOpt)
	resp, err := tg.(target.Checker).Check(t.Context(), target.CheckRequest{Keys: []string{"DATABASE_URL", "MISSING"}})
	require.NoError(t, err)
	require.True(t, secret.New("postgres://u:p@${{shared.HOST}}/db").Equal(resp.Values["DATABASE_URL"]), "Check must return what was written, not the rendered value")
	require.NotContains(t, resp.Values, "MISSING")
	require.Contains(t, strings.Join(resp.Notes, "\n"), "MISSING is not set")
}

func TestPutRefusesReferenceSyntax(t *testing.T) {
	t.Parallel()
	f := railwayfake.New(t)
	tg := newTarget(t, f, projectOpts+serviceOpt)
	canary := "pw${{canary7f3e}}"
	_, err := tg.Put(t.Context(), targettest.PutRequest(map[string]string{"PGPASSWORD": canary}))
	require.ErrorIs(t, err, target.ErrInvalid)
	require.ErrorContains(t, err, "reference variable")
	require.Empty(t, secret.Leaks([]byte(err.Error()), secret.New(canary)))
	require.Empty(t, f.Calls(), "nothing may be sent for a value Railway would expand")
}

func TestErrors(t *testing.T) {
	t.Parallel()
	const canary = "canary-5d1c9a"
	tests := []struct {
		name  string
		opts  string
		setup func(f *railwayfake.Fake)
		// wantIs is the sentinel; nil means a *target.RetryableError.
		wantIs         error
		wantRetryAfter time.Duration
		wantStatus     int
		wantErr        string
	}{
		{
			name:       "GraphQL error with HTTP 200 is a failure",
			opts:       projectOpts + serviceOpt,
			setup:      func(f *railwayfake.Fake) { f.ErrorOn("variableCollectionUpsert", "Invalid variable value "+canary) },
			wantIs:     target.ErrInvalid,
			wantStatus: 200,
			wantErr:    "Railway variableCollectionUpsert failed (HTTP 200): Invalid variable value",
		},
		{
			name:       "bad project token",
			opts:       strings.Replace(projectOpts, railwayfake.ProjectToken, "wrong-token", 1) + serviceOpt,
			wantIs:     target.ErrAuth,
			wantStatus: 200,
			wantErr:    "Not Authorized; check the token in ${RAILWAY_TOKEN}: it must be a project token of project prj-rotor-test for environment env-production",
		},
		{
			name:       "account token sent as a project token",
			opts:       strings.Replace(accountOpts, "token_kind: account\n", "", 1),
			wantIs:     target.ErrAuth,
			wantStatus: 200,
			wantErr:    "if it is an account or workspace token set token_kind: account",
		},
		{
			name:       "project token outside its environment",
			opts:       strings.Replace(projectOpts, railwayfake.EnvironmentID, railwayfake.OtherEnvironmentID, 1),
			wantIs:     target.ErrAuth,
			wantStatus: 200,
			wantErr:    "Not Authorized",
		},
		{
			name:       "unknown service",
			opts:       accountOpts + "service_id: svc-nope\n",
			wantIs:     target.ErrNotFound,
			wantStatus: 200,
			wantErr:    "Service not found; check project_id, environment_id and service_id",
		},
		{
			name:           "HTTP 429 with Retry-After",
			opts:           projectOpts + serviceOpt,
			setup:          func(f *railwayfake.Fake) { f.Limit(0, 7*time.Second) },
			wantRetryAfter: 7 * time.Second,
			wantStatus:     429,
			wantErr:        "Rate limit exceeded",
		},
		{
			name:           "rate limit reported in GraphQL with HTTP 200",
			opts:           projectOpts + serviceOpt,
			setup:          func(f *railwayfake.Fake) { f.RateLimitInGraphQLNext(1, 12*time.Second) },
			wantRetryAfter: 12 * time.Second,
			wantStatus:     200,
			wantErr:        "Rate limit exceeded",
		},
		{
			name:       "HTTP 500",
			opts:       projectOpts + serviceOpt,
			setup:      func(f *railwayfake.Fake) { f.FailNext(1, 500) },
			wantStatus: 500,
			wantErr:    "failed (HTTP 500)",
		},
		{
			name:       "HTTP 503",
			opts:       projectOpts + serviceOpt,
			setup:      func(f *railwayfake.Fake) { f.FailNext(1, 503) },
			wantStatus: 503,
			wantErr:    "failed (HTTP 503)",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := railwayfake.New(t)
			if tt.setup != nil {
				tt.setup(f)
			}
			tg := newTarget(t, f, tt.opts)
			value := secret.New("postgres://app:" + canary + "@h/db")
			_, err := tg.Put(t.Context(), target.PutRequest{Values: map[string]secret.String{"DATABASE_URL": value}, Keys: []string{"DATABASE_URL"}})
			require.Error(t, err)
			require.ErrorContains(t, err, `railway target "prod"`)
			require.ErrorContains(t, err, tt.wantErr)
			require.Empty(t, secret.Leaks([]byte(fmt.Sprintf("%v %+v", err, err)), value, secret.New(canary)), "the error must not carry the value")
			var re *target.RetryableError
			if tt.wantIs != nil {
				require.ErrorIs(t, err, tt.wantIs)
				require.False(t, errors.As(err, &re), "a refusal is not retryable")
			} else {
				require.ErrorAs(t, err, &re)
				require.Equal(t, tt.wantRetryAfter, re.RetryAfter)
			}
			var re2 *webapi.StatusError
			require.ErrorAs(t, err, &re2)
			require.Equal(t, tt.wantStatus, re2.Status)
		})
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		opts      string
		wantOps   []string
		wantIs    error
		wantErr   string
		wantNotes string
	}{
		{name: "project token", opts: projectOpts + serviceOpt, wantOps: []string{"projectToken", "variables"}, wantNotes: "write access cannot be tested"},
		{name: "account token", opts: accountOpts + serviceOpt, wantOps: []string{"variables"}},
		{
			name:    "project token of another environment",
			opts:    strings.Replace(projectOpts, railwayfake.EnvironmentID, railwayfake.OtherEnvironmentID, 1),
			wantOps: []string{"projectToken"},
			wantIs:  target.ErrAuth,
			wantErr: "the project token belongs to project prj-rotor-test environment env-production, but the target names project prj-rotor-test environment env-staging",
		},
		{name: "account token, unknown service", opts: accountOpts + "service_id: svc-nope\n", wantOps: []string{"variables"}, wantIs: target.ErrNotFound, wantErr: "Service not found"},
		{name: "account token used as a project token", opts: strings.Replace(accountOpts, "token_kind: account\n", "", 1), wantOps: []string{"projectToken"}, wantIs: target.ErrAuth, wantErr: "token_kind: account"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := railwayfake.New(t)
			f.ForbidWrites()
			tg := newTarget(t, f, tt.opts)
			resp, err := tg.(target.Validator).Validate(t.Context(), target.ValidateRequest{})
			require.Equal(t, tt.wantOps, f.Operations())
			require.Zero(t, f.Mutations(), "Validate must not write")
			require.Empty(t, f.Deploys())
			if tt.wantErr != "" {
				require.ErrorIs(t, err, tt.wantIs)
				require.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			if tt.wantNotes != "" {
				require.Contains(t, strings.Join(resp.Notes, "\n"), tt.wantNotes)
			}
		})
	}
}

func TestRetriedPutConverges(t *testing.T) {
	t.Parallel()
	f := railwayfake.New(t)
	tg := newTarget(t, f, projectOpts+serviceOpt)
	require.True(t, tg.Info().Idempotent)
	f.FailNext(1, 502)
	req := targettest.PutRequest(map[string]string{"DATABASE_URL": "postgres://a:b@h/db"})
	_, err := tg.Put(t.Context(), req)
	var re *target.RetryableError
	require.ErrorAs(t, err, &re)
	_, err = tg.Put(t.Context(), req)
	require.NoError(t, err)
	v, ok := f.Get(railwayfake.EnvironmentID, railwayfake.ServiceID, "DATABASE_URL")
	require.True(t, ok)
	require.Equal(t, "postgres://a:b@h/db", v)
}

func newTarget(t *testing.T, f *railwayfake.Fake, opts string) target.Target {
	t.Helper()
	tg, err := railway.New(target.Params{
		Name:       "prod",
		Decode:     targettest.DecodeYAML(opts + "api_url: " + f.URL + "\n"),
		HTTPClient: f.Client(),
		Now:        func() time.Time { return time.Date(2026, 11, 26, 8, 0, 0, 0, time.UTC) },
	})
	require.NoError(t, err)
	return tg
}
