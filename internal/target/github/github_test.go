package github_test

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	gh "github.com/google/go-github/v84/github"
	"github.com/stretchr/testify/require"

	"github.com/rotorhq/rotor/internal/secret"
	"github.com/rotorhq/rotor/internal/target"
	"github.com/rotorhq/rotor/internal/target/github"
	"github.com/rotorhq/rotor/internal/target/github/githubfake"
	"github.com/rotorhq/rotor/internal/target/targettest"
)

var now = time.Date(2026, 11, 26, 8, 0, 0, 0, time.UTC)

const (
	repoOpts   = "token: " + githubfake.Token + "\nrepo: acme/api\n"
	envOpts    = repoOpts + "environment: production\n"
	orgOpts    = "token: " + githubfake.Token + "\norg: acme\nvisibility: selected\nselected_repositories: [api, web]\n"
	dispatchOn = "dispatch: {workflow: deploy.yml, ref: main}\n"
)

var fakes sync.Map // target.Target → *githubfake.Fake

func fakeOf(tg target.Target) *githubfake.Fake {
	f, _ := fakes.Load(tg)
	return f.(*githubfake.Fake)
}

func TestConformance(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name  string
		opts  string
		scope string
	}{
		{name: "repository secrets with a dispatch", opts: repoOpts + dispatchOn, scope: githubfake.RepoScope},
		{name: "environment secrets", opts: envOpts, scope: githubfake.EnvScope},
		{name: "organization secrets for selected repositories", opts: orgOpts, scope: githubfake.OrgScope},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			targettest.Exercise(t, targettest.Harness{
				New: func(t *testing.T) target.Target {
					f := newFake(t)
					tg := newTarget(t, f, tc.opts)
					fakes.Store(tg, f)
					return tg
				},
				// Values are write-only on GitHub; the fake decrypted what
				// landed with the destination's private key.
				Read: func(t *testing.T, tg target.Target, key string) (secret.String, bool) {
					s, ok := fakeOf(tg).Secret(tc.scope, key)
					return secret.New(s.Plaintext), ok
				},
				Seed: func(t *testing.T, tg target.Target, values map[string]secret.String) {
					for k, v := range values {
						fakeOf(tg).Seed(tc.scope, k, v.Reveal())
					}
				},
				NoChangeDetection: true,
				Break: func(t *testing.T, tg target.Target) {
					fakeOf(tg).FailNext(1000, 500)
				},
			})
		})
	}
}

func TestNew(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name         string
		opts         string
		wantDest     string
		wantDispatch bool
		wantIs       error
		wantErr      string
	}{
		{name: "repository", opts: repoOpts, wantDest: "github repository acme/api actions secrets"},
		{name: "environment", opts: envOpts, wantDest: "github repository acme/api environment production secrets"},
		{name: "organization", opts: orgOpts, wantDest: "github organization acme actions secrets (visibility selected)"},
		{name: "dispatch", opts: repoOpts + dispatchOn, wantDest: "github repository acme/api actions secrets", wantDispatch: true},
		{name: "org with dispatch in a named repo", opts: orgOpts + "dispatch: {workflow: deploy.yml, ref: main, repo: acme/api}\n", wantDest: "github organization acme actions secrets (visibility selected)", wantDispatch: true},
		{name: "no token", opts: "repo: acme/api\n", wantIs: target.ErrAuth, wantErr: "has no token; add token: ${GITHUB_TOKEN}"},
		{name: "neither repo nor org", opts: "token: x\n", wantIs: target.ErrInvalid, wantErr: "needs repo: owner/name"},
		{name: "both repo and org", opts: repoOpts + "org: acme\n", wantIs: target.ErrInvalid, wantErr: "sets both org and repo"},
		{name: "repo without owner", opts: "token: x\nrepo: api\n", wantIs: target.ErrInvalid, wantErr: `repo "api" is not owner/name`},
		{name: "org without visibility", opts: "token: x\norg: acme\n", wantIs: target.ErrInvalid, wantErr: "organization secrets need visibility: private"},
		{name: "unknown visibility", opts: "token: x\norg: acme\nvisibility: internal\n", wantIs: target.ErrInvalid, wantErr: `visibility "internal" is not all, private or selected`},
		{name: "selected without repositories", opts: "token: x\norg: acme\nvisibility: selected\n", wantIs: target.ErrInvalid, wantErr: "visibility: selected needs selected_repositories"},
		{name: "repositories without selected", opts: "token: x\norg: acme\nvisibility: all\nselected_repositories: [api]\n", wantIs: target.ErrInvalid, wantErr: "selected_repositories only applies with visibility: selected"},
		{name: "selected repository with owner", opts: "token: x\norg: acme\nvisibility: selected\nselected_repositories: [acme/api]\n", wantIs: target.ErrInvalid, wantErr: "without the owner"},
		{name: "visibility with repo", opts: repoOpts + "visibility: all\n", wantIs: target.ErrInvalid, wantErr: "are for organization secrets"},
		{name: "environment with org", opts: "token: x\norg: acme\nvisibility: all\nenvironment: production\n", wantIs: target.ErrInvalid, wantErr: "environment is for repository secrets"},
		{name: "dispatch without ref", opts: repoOpts + "dispatch: {workflow: deploy.yml}\n", wantIs: target.ErrInvalid, wantErr: "dispatch needs workflow and ref"},
		{name: "org dispatch without repo", opts: orgOpts + dispatchOn, wantIs: target.ErrInvalid, wantErr: "needs dispatch.repo"},
		{name: "bad api_url", opts: repoOpts + "api_url: 'api.github.com'\n", wantIs: target.ErrInvalid, wantErr: "is not an http(s) URL"},
		{name: "unknown option", opts: repoOpts + "secret_prefix: X\n", wantErr: "field secret_prefix not found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tg, err := github.New(target.Params{Name: "ci", Decode: targettest.DecodeYAML(tt.opts)})
			if tt.wantErr != "" {
				require.ErrorContains(t, err, `github-actions target "ci"`)
				require.ErrorContains(t, err, tt.wantErr)
				if tt.wantIs != nil {
					require.ErrorIs(t, err, tt.wantIs)
				}
				return
			}
			require.NoError(t, err)
			require.Equal(t, target.Info{Type: "github-actions", Name: "ci", Destination: tt.wantDest, Idempotent: true}, tg.Info())
			isReloader := target.Discover(tg).Reloader != nil
			require.Equal(t, tt.wantDispatch, isReloader)
		})
	}
}

func TestPutSealsForTheDestinationKey(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		opts      string
		scope     string
		wantCalls []string
	}{
		{
			name: "repository", opts: repoOpts, scope: githubfake.RepoScope,
			wantCalls: []string{"GET /repos/acme/api/actions/secrets/public-key", "PUT /repos/acme/api/actions/secrets/DATABASE_URL", "PUT /repos/acme/api/actions/secrets/PGPASSWORD"},
		},
		{
			// go-github v84 addresses environments by repository id.
			name: "environment", opts: envOpts, scope: githubfake.EnvScope,
			wantCalls: []string{"GET /repos/acme/api", "GET /repositories/4242/environments/production/secrets/public-key", "PUT /repositories/4242/environments/production/secrets/DATABASE_URL", "PUT /repositories/4242/environments/production/secrets/PGPASSWORD"},
		},
		{
			name: "organization", opts: orgOpts, scope: githubfake.OrgScope,
			wantCalls: []string{"GET /orgs/acme/actions/secrets/public-key", "GET /repos/acme/api", "GET /repos/acme/web", "PUT /orgs/acme/actions/secrets/DATABASE_URL", "PUT /orgs/acme/actions/secrets/PGPASSWORD"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFake(t)
			tg := newTarget(t, f, tt.opts)
			values := map[string]string{"DATABASE_URL": "postgres://app:s3cr%40t@db/app", "PGPASSWORD": "s3cr@t"}
			resp, err := tg.Put(t.Context(), targettest.PutRequest(values, "DATABASE_URL", "PGPASSWORD"))
			require.NoError(t, err)
			require.True(t, resp.Changed)
			require.Equal(t, tt.wantCalls, callList(f))
			for k, v := range values {
				s, ok := f.Secret(tt.scope, k)
				require.True(t, ok, k)
				require.Equal(t, v, s.Plaintext, "the fake opened the sealed box with its private key")
				require.NotContains(t, s.Ciphertext, v)
				require.NotEmpty(t, s.KeyID)
			}
			if tt.scope == githubfake.OrgScope {
				s, _ := f.Secret(tt.scope, "DATABASE_URL")
				require.Equal(t, "selected", s.Visibility)
				require.Equal(t, []int64{githubfake.RepoID, githubfake.OtherRepoID}, s.SelectedRepositoryIDs)
			}

			// A second Put replaces (204) and looks nothing up again.
			before := len(f.Calls())
			_, err = tg.Put(t.Context(), targettest.PutRequest(map[string]string{"DATABASE_URL": "postgres://app:n3w@db/app"}, "DATABASE_URL"))
			require.NoError(t, err)
			calls := f.Calls()[before:]
			require.Len(t, calls, 2, "public key and one PUT")
			require.Equal(t, 204, calls[1].Status)
			s, _ := f.Secret(tt.scope, "DATABASE_URL")
			require.Equal(t, "postgres://app:n3w@db/app", s.Plaintext)
		})
	}
}

// constReader is randomness that never changes, so sealed boxes are
// reproducible.
type constReader byte

func (c constReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(c)
	}
	return len(p), nil
}

func TestSealingRandomnessIsInjectable(t *testing.T) {
	t.Parallel()
	ciphertexts := func(r io.Reader) (string, string) {
		f := newFake(t)
		tg, err := github.NewWithRand(params(f, repoOpts), r)
		require.NoError(t, err)
		var out []string
		for range 2 {
			_, err := tg.Put(t.Context(), targettest.PutRequest(map[string]string{"DATABASE_URL": "postgres://a:b@h/d"}, "DATABASE_URL"))
			require.NoError(t, err)
			s, _ := f.Secret(githubfake.RepoScope, "DATABASE_URL")
			require.Equal(t, "postgres://a:b@h/d", s.Plaintext)
			out = append(out, s.Ciphertext)
		}
		return out[0], out[1]
	}
	a, b := ciphertexts(constReader(7))
	require.Equal(t, a, b, "the same randomness must give the same sealed box")
	a, b = ciphertexts(rand.Reader)
	require.NotEqual(t, a, b, "crypto/rand must give a fresh ephemeral key each time")
}

func TestPutErrors(t *testing.T) {
	t.Parallel()
	const canary = "canary-3e8b21"
	tests := []struct {
		name  string
		opts  string
		setup func(f *githubfake.Fake)
		key   string
		// wantIs nil means a *target.RetryableError with wantRetryAfter.
		wantIs         error
		wantRetryAfter time.Duration
		wantErr        string
		wantNoRequest  bool
	}{
		{name: "bad token", opts: strings.Replace(repoOpts, githubfake.Token, "wrong", 1), wantIs: target.ErrAuth, wantErr: "GitHub answered 401: Bad credentials; GitHub rejected the token"},
		{name: "read-only token", opts: strings.Replace(repoOpts, githubfake.Token, githubfake.ReadOnlyToken, 1), wantIs: target.ErrAuth, wantErr: "403: Resource not accessible by personal access token; the token lacks a permission: it needs the repository permission Secrets: read and write (classic token: repo scope) (GitHub accepts: secrets=write)"},
		{name: "read-only token on org secrets", opts: strings.Replace(orgOpts, githubfake.Token, githubfake.ReadOnlyToken, 1), wantIs: target.ErrAuth, wantErr: "organization permission Secrets: read and write (classic token: admin:org scope)"},
		{name: "unknown repository", opts: "token: " + githubfake.Token + "\nrepo: acme/nope\n", wantIs: target.ErrNotFound, wantErr: "get the public key: GitHub answered 404: Not Found; GitHub answers 404 also when the token cannot see the destination"},
		{name: "unknown environment", opts: repoOpts + "environment: staging\n", wantIs: target.ErrNotFound, wantErr: "GitHub answered 404"},
		{name: "unknown selected repository", opts: "token: " + githubfake.Token + "\norg: acme\nvisibility: selected\nselected_repositories: [nope]\n", wantIs: target.ErrNotFound, wantErr: "look up selected repository acme/nope"},
		{name: "reserved name", opts: repoOpts, key: "GITHUB_DB", wantIs: target.ErrInvalid, wantErr: `"GITHUB_DB" cannot be a GitHub secret name`, wantNoRequest: true},
		{name: "name with a dash", opts: repoOpts, key: "DB-URL", wantIs: target.ErrInvalid, wantErr: "cannot be a GitHub secret name", wantNoRequest: true},
		{name: "server error", opts: repoOpts, setup: func(f *githubfake.Fake) { f.FailNext(1, 502) }, wantErr: "GitHub answered 502"},
		{name: "secondary rate limit", opts: repoOpts, setup: func(f *githubfake.Fake) { f.Limit(1, 30*time.Second) }, wantRetryAfter: 30 * time.Second, wantErr: "429: You have exceeded a secondary rate limit"},
		{name: "primary rate limit", opts: repoOpts, setup: func(f *githubfake.Fake) { f.PrimaryLimit(0, time.Minute) }, wantRetryAfter: time.Minute, wantErr: "403: API rate limit exceeded"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFake(t)
			if tt.setup != nil {
				tt.setup(f)
			}
			tg := newTarget(t, f, tt.opts)
			key := tt.key
			if key == "" {
				key = "DATABASE_URL"
			}
			value := secret.New("postgres://app:" + canary + "@db/app")
			_, err := tg.Put(t.Context(), target.PutRequest{Values: map[string]secret.String{key: value}, Keys: []string{key}})
			require.Error(t, err)
			require.ErrorContains(t, err, `github-actions target "ci"`)
			require.ErrorContains(t, err, tt.wantErr)
			require.Empty(t, secret.Leaks([]byte(fmt.Sprintf("%v %+v", err, err)), value, secret.New(canary), secret.New(githubfake.Token)))
			var re *target.RetryableError
			if tt.wantIs != nil {
				require.ErrorIs(t, err, tt.wantIs)
				require.False(t, errors.As(err, &re))
			} else {
				require.ErrorAs(t, err, &re)
				require.Equal(t, tt.wantRetryAfter, re.RetryAfter)
			}
			if tt.wantNoRequest {
				require.Empty(t, f.Calls())
			}
			_, written := f.Secret(githubfake.RepoScope, key)
			require.False(t, written)
		})
	}
}

func TestStaleKeyIsRefreshedOnTheNextPut(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	tg := newTarget(t, f, repoOpts)
	req := targettest.PutRequest(map[string]string{"DATABASE_URL": "postgres://a:b@h/d"}, "DATABASE_URL")
	_, err := tg.Put(t.Context(), req)
	require.NoError(t, err)
	old, _ := f.Secret(githubfake.RepoScope, "DATABASE_URL")
	f.RotateKey(githubfake.RepoScope)
	_, err = tg.Put(t.Context(), req)
	require.NoError(t, err, "each Put fetches the current public key")
	cur, _ := f.Secret(githubfake.RepoScope, "DATABASE_URL")
	require.NotEqual(t, old.KeyID, cur.KeyID)
}

func TestCheckReportsMetadataOnly(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	tg := newTarget(t, f, envOpts)
	_, err := tg.Put(t.Context(), targettest.PutRequest(map[string]string{"DATABASE_URL": "postgres://a:b@h/d"}, "DATABASE_URL"))
	require.NoError(t, err)
	resp, err := tg.(target.Checker).Check(t.Context(), target.CheckRequest{Keys: []string{"DATABASE_URL", "NEVER_WRITTEN"}})
	require.NoError(t, err)
	require.Empty(t, resp.Values)
	require.Equal(t, []string{"DATABASE_URL"}, resp.Unreadable, "a missing secret is absent, not unreadable")
	require.Equal(t, []string{"DATABASE_URL: GitHub keeps secret values write-only; updated_at 2026-11-26T08:00:00Z"}, resp.Notes)
}

func TestReload(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name           string
		opts           string
		setup          func(f *githubfake.Fake)
		wantPath       string
		wantIs         error
		wantRetryAfter time.Duration
		wantRetryable  bool
		wantErr        string
	}{
		{name: "by file name", opts: repoOpts + dispatchOn, wantPath: "/repos/acme/api/actions/workflows/deploy.yml/dispatches"},
		{name: "by id", opts: repoOpts + "dispatch: {workflow: '161335', ref: main}\n", wantPath: "/repos/acme/api/actions/workflows/161335/dispatches"},
		{name: "unknown ref", opts: repoOpts + "dispatch: {workflow: deploy.yml, ref: release}\n", wantIs: target.ErrInvalid, wantErr: "422: No ref found for: release"},
		{name: "no Actions permission", opts: strings.Replace(repoOpts, githubfake.Token, githubfake.ReadOnlyToken, 1) + dispatchOn, wantIs: target.ErrAuth, wantErr: "Actions: read and write (classic token: repo scope) (GitHub accepts: actions=write)"},
		{name: "server error is not retried: a run may have started", opts: repoOpts + dispatchOn, setup: func(f *githubfake.Fake) { f.FailNext(1, 500) }, wantErr: "the run may or may not have started"},
		{name: "rate limit is retried: nothing started", opts: repoOpts + dispatchOn, setup: func(f *githubfake.Fake) { f.Limit(0, 20*time.Second) }, wantRetryable: true, wantRetryAfter: 20 * time.Second, wantErr: "secondary rate limit"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFake(t)
			if tt.setup != nil {
				tt.setup(f)
			}
			tg := newTarget(t, f, tt.opts)
			resp, err := tg.(target.Reloader).Reload(t.Context(), target.ReloadRequest{RotationID: "3"})
			var re *target.RetryableError
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				require.Equal(t, tt.wantRetryable, errors.As(err, &re))
				if tt.wantRetryable {
					require.Equal(t, tt.wantRetryAfter, re.RetryAfter)
				}
				if tt.wantIs != nil {
					require.ErrorIs(t, err, tt.wantIs)
				}
				require.Empty(t, f.Dispatches())
				return
			}
			require.NoError(t, err)
			require.Contains(t, resp.Detail, "dispatched on main")
			require.Len(t, f.Dispatches(), 1)
			require.Equal(t, "main", f.Dispatches()[0].Ref)
			require.Equal(t, []string{"POST " + tt.wantPath}, callList(f))
		})
	}

	t.Run("Put never dispatches", func(t *testing.T) {
		t.Parallel()
		f := newFake(t)
		tg := newTarget(t, f, repoOpts+dispatchOn)
		_, err := tg.Put(t.Context(), targettest.PutRequest(map[string]string{"DATABASE_URL": "postgres://a:b@h/d"}, "DATABASE_URL"))
		require.NoError(t, err)
		require.Empty(t, f.Dispatches())
	})
}

func TestValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		opts      string
		wantCalls []string
		wantIs    error
		wantErr   string
	}{
		{name: "repository", opts: repoOpts, wantCalls: []string{"GET /repos/acme/api/actions/secrets/public-key"}},
		{name: "environment", opts: envOpts, wantCalls: []string{"GET /repos/acme/api", "GET /repositories/4242/environments/production/secrets/public-key"}},
		{name: "organization", opts: orgOpts, wantCalls: []string{"GET /orgs/acme/actions/secrets/public-key", "GET /repos/acme/api", "GET /repos/acme/web"}},
		{name: "dispatch", opts: repoOpts + dispatchOn, wantCalls: []string{"GET /repos/acme/api/actions/secrets/public-key", "GET /repos/acme/api/actions/workflows/deploy.yml"}},
		{name: "missing workflow", opts: repoOpts + "dispatch: {workflow: release.yml, ref: main}\n", wantCalls: []string{"GET /repos/acme/api/actions/secrets/public-key", "GET /repos/acme/api/actions/workflows/release.yml"}, wantIs: target.ErrNotFound, wantErr: "look up workflow release.yml in acme/api"},
		{name: "bad token", opts: strings.Replace(repoOpts, githubfake.Token, "wrong", 1), wantCalls: []string{"GET /repos/acme/api/actions/secrets/public-key"}, wantIs: target.ErrAuth, wantErr: "GitHub rejected the token"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFake(t)
			f.ForbidWrites()
			tg := newTarget(t, f, tt.opts)
			resp, err := tg.(target.Validator).Validate(t.Context(), target.ValidateRequest{})
			require.Equal(t, tt.wantCalls, callList(f))
			require.Zero(t, f.Writes(), "Validate must not write")
			if tt.wantErr != "" {
				require.ErrorIs(t, err, tt.wantIs)
				require.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			require.Contains(t, strings.Join(resp.Notes, "\n"), "write access cannot be tested without writing")
		})
	}
}

func TestRateLimitErrorsComeFromGoGithub(t *testing.T) {
	t.Parallel()
	// The mapping relies on go-github recognising both limits; keep that
	// assumption visible.
	f := newFake(t)
	f.Limit(0, 5*time.Second)
	c := gh.NewClient(f.Client()).WithAuthToken(githubfake.Token)
	c.BaseURL = mustURL(t, f.URL)
	_, _, err := c.Actions.GetRepoPublicKey(t.Context(), githubfake.Owner, githubfake.Repo)
	var are *gh.AbuseRateLimitError
	require.ErrorAs(t, err, &are)
	require.Equal(t, 5*time.Second, are.GetRetryAfter())
}

func newFake(t *testing.T) *githubfake.Fake {
	f := githubfake.New(t)
	f.SetNow(func() time.Time { return now })
	return f
}

func params(f *githubfake.Fake, opts string) target.Params {
	return target.Params{
		Name:       "ci",
		Decode:     targettest.DecodeYAML(opts + "api_url: " + f.URL + "\n"),
		HTTPClient: f.Client(),
		Now:        func() time.Time { return now },
	}
}

func newTarget(t *testing.T, f *githubfake.Fake, opts string) target.Target {
	t.Helper()
	tg, err := github.New(params(f, opts))
	require.NoError(t, err)
	return tg
}

func callList(f *githubfake.Fake) []string {
	var out []string
	for _, c := range f.Calls() {
		out = append(out, c.Method+" "+c.Path)
	}
	return out
}

func mustURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	require.NoError(t, err)
	return u
}

func TestPutRefusesValuesOverGitHubsLimit(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	tg := newTarget(t, f, repoOpts)
	big := strings.Repeat("x", 48*1024+1)
	_, err := tg.Put(t.Context(), targettest.PutRequest(map[string]string{"DATABASE_URL": big}, "DATABASE_URL"))
	require.ErrorIs(t, err, target.ErrInvalid)
	require.ErrorContains(t, err, "the value for DATABASE_URL is 49153 bytes; GitHub secrets hold at most 48 KB")
	require.Empty(t, f.Calls())
}
