package github_test

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

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
		{name: "dispatch with reload_poll", opts: repoOpts + dispatchOn + "reload_poll: 30s\n", wantDest: "github repository acme/api actions secrets", wantDispatch: true},
		{name: "reload_poll without dispatch", opts: repoOpts + "reload_poll: 30s\n", wantIs: target.ErrInvalid, wantErr: "reload_poll is how often Reload looks at a dispatched workflow run, but there is no dispatch"},
		{name: "reload_poll not a duration", opts: repoOpts + dispatchOn + "reload_poll: often\n", wantIs: target.ErrInvalid, wantErr: `reload_poll "often" is not a positive duration`},
		{name: "reload_poll zero", opts: repoOpts + dispatchOn + "reload_poll: 0s\n", wantIs: target.ErrInvalid, wantErr: `reload_poll "0s" is not a positive duration`},
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
			name: "environment", opts: envOpts, scope: githubfake.EnvScope,
			wantCalls: []string{"GET /repos/acme/api/environments/production/secrets/public-key", "PUT /repos/acme/api/environments/production/secrets/DATABASE_URL", "PUT /repos/acme/api/environments/production/secrets/PGPASSWORD"},
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
			require.Len(t, f.Dispatches(), 1)
			require.Equal(t, "main", f.Dispatches()[0].Ref)
			run := f.Dispatches()[0].RunID
			require.Contains(t, resp.Detail, fmt.Sprintf("workflow run %d of ", run))
			require.Contains(t, resp.Detail, "on main in acme/api completed success")
			require.Equal(t, []string{"POST " + tt.wantPath, fmt.Sprintf("GET /repos/acme/api/actions/runs/%d", run)}, callList(f),
				"GitHub returned the run's id (return_run_details), so nothing is listed")
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

const pollOpts = repoOpts + dispatchOn + "reload_poll: 5ms\n"

// sleeps records the waits Reload asks for instead of spending them; hook
// runs before each returns.
type sleeps struct {
	mu   sync.Mutex
	got  []time.Duration
	hook func(n int)
}

func (s *sleeps) install(tg target.Target) {
	github.SetSleep(tg, func(ctx context.Context, d time.Duration) error {
		s.mu.Lock()
		s.got = append(s.got, d)
		n, hook := len(s.got), s.hook
		s.mu.Unlock()
		if hook != nil {
			hook(n)
		}
		return ctx.Err()
	})
}

func (s *sleeps) all() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.got)
}

// expiring is a context whose deadline passes when the test says so, so
// that "reload_timeout struck while the run was unfinished" does not
// depend on how fast the machine is.
type expiring struct {
	context.Context
	once sync.Once
	done chan struct{}
}

func newExpiring(parent context.Context) *expiring {
	return &expiring{Context: parent, done: make(chan struct{})}
}

func (e *expiring) expire()                     { e.once.Do(func() { close(e.done) }) }
func (e *expiring) Done() <-chan struct{}       { return e.done }
func (e *expiring) Deadline() (time.Time, bool) { return time.Time{}, false }

func (e *expiring) Err() error {
	select {
	case <-e.done:
		return context.DeadlineExceeded
	default:
		return nil
	}
}

func reload(t *testing.T, ctx context.Context, tg target.Target, rotation string) (target.ReloadResponse, error) {
	t.Helper()
	return tg.(target.Reloader).Reload(ctx, target.ReloadRequest{RotationID: rotation})
}

// TestReloadWaitsForTheRun: Reload returns when the dispatched run has
// completed with success, polling every reload_poll, not when GitHub
// accepted the dispatch.
func TestReloadWaitsForTheRun(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	f.SetRunPlan(githubfake.RunPlan{Steps: []githubfake.RunStep{{Status: "queued", Polls: 2}, {Status: "in_progress", Polls: 3}}})
	tg := newTarget(t, f, pollOpts)
	var s sleeps
	s.install(tg)

	resp, err := reload(t, t.Context(), tg, "7")
	require.NoError(t, err)
	run := f.Runs()[0]
	require.Equal(t, fmt.Sprintf("workflow run %d of deploy.yml on main in acme/api completed success after 0s (queued → in_progress → completed): https://github.com/acme/api/actions/runs/%d", run.ID, run.ID), resp.Detail)
	require.Equal(t, "completed", run.Status)
	require.Equal(t, 6, run.Polls, "two polls queued, three in_progress, one completed")
	require.Equal(t, slices.Repeat([]time.Duration{5 * time.Millisecond}, 5), s.all(), "one reload_poll pause after each poll that saw the run unfinished")
}

func TestReloadFailedRun(t *testing.T) {
	t.Parallel()
	for _, conclusion := range []string{"failure", "cancelled", "timed_out", "action_required", "startup_failure", "skipped"} {
		t.Run(conclusion, func(t *testing.T) {
			t.Parallel()
			f := newFake(t)
			f.SetRunPlan(githubfake.RunPlan{Steps: []githubfake.RunStep{{Status: "in_progress", Polls: 1}}, Conclusion: conclusion})
			tg := newTarget(t, f, pollOpts)
			var s sleeps
			s.install(tg)

			_, err := reload(t, t.Context(), tg, "8")
			require.ErrorIs(t, err, github.ErrRunFailed)
			run := f.Runs()[0]
			require.ErrorContains(t, err, fmt.Sprintf(`github-actions target "ci": workflow run %d of deploy.yml on main in acme/api completed with conclusion %s after 0s (in_progress → completed)`, run.ID, conclusion))
			require.ErrorContains(t, err, fmt.Sprintf("read the run's logs at https://github.com/acme/api/actions/runs/%d", run.ID))
			require.ErrorContains(t, err, "`rotor resume` dispatches the workflow again")
			var re *target.RetryableError
			require.False(t, errors.As(err, &re), "dispatching a broken workflow again fixes nothing")
			require.Empty(t, secret.Leaks([]byte(err.Error()), secret.New(githubfake.Token)))

			// Resume after the failure: a new run, as the error promised.
			f.SetRunPlan(githubfake.RunPlan{})
			resp, err := reload(t, t.Context(), tg, "8")
			require.NoError(t, err)
			require.Len(t, f.Dispatches(), 2)
			require.Contains(t, resp.Detail, fmt.Sprintf("workflow run %d ", f.Dispatches()[1].RunID))
		})
	}
}

// TestReloadTimesOut: when ctx ends while the run is unfinished, the
// error wraps ctx.Err() and says the run's last status; a second Reload of
// the same rotation waits for that run rather than dispatching another.
func TestReloadTimesOut(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	f.SetRunPlan(githubfake.RunPlan{Steps: []githubfake.RunStep{{Status: "queued", Polls: 1}, {Status: "in_progress", Polls: -1}}})
	tg := newTarget(t, f, pollOpts)
	ctx := newExpiring(t.Context())
	s := sleeps{hook: func(n int) {
		if n == 3 {
			ctx.expire() // reload_timeout strikes in the third pause
		}
	}}
	s.install(tg)

	_, err := reload(t, ctx, tg, "9")
	require.ErrorIs(t, err, context.DeadlineExceeded)
	run := f.Runs()[0]
	require.ErrorContains(t, err, fmt.Sprintf(`github-actions target "ci": workflow run %d of deploy.yml on main in acme/api is still in_progress after 0s (queued → in_progress); look at the run at https://github.com/acme/api/actions/runs/%d`, run.ID, run.ID))
	require.NotErrorIs(t, err, github.ErrRunFailed)
	var re *target.RetryableError
	require.False(t, errors.As(err, &re))
	require.Equal(t, 3, run.Polls)

	f.CompleteRun(run.ID, "success")
	resp, err := reload(t, t.Context(), tg, "9")
	require.NoError(t, err)
	require.Len(t, f.Dispatches(), 1, "the second Reload of rotation 9 waits for the run the first one started")
	require.Contains(t, resp.Detail, fmt.Sprintf("workflow run %d of deploy.yml on main in acme/api completed success", run.ID))
	require.Contains(t, resp.Detail, "(queued → in_progress → completed)")

	again, err := reload(t, t.Context(), tg, "9")
	require.NoError(t, err)
	require.Len(t, f.Dispatches(), 1, "a finished reload is not dispatched again")
	require.Equal(t, resp.Detail+" (finished before; not dispatched again)", again.Detail)

	f.SetRunPlan(githubfake.RunPlan{})
	_, err = reload(t, t.Context(), tg, "10")
	require.NoError(t, err)
	require.Len(t, f.Dispatches(), 2, "the next rotation dispatches its own run")
}

func TestReloadWaitingForApproval(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	f.SetRunPlan(githubfake.RunPlan{Steps: []githubfake.RunStep{{Status: "waiting", Polls: -1}}})
	tg := newTarget(t, f, pollOpts)
	ctx := newExpiring(t.Context())
	s := sleeps{hook: func(int) { ctx.expire() }}
	s.install(tg)
	_, err := reload(t, ctx, tg, "11")
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.ErrorContains(t, err, "is still waiting after 0s (waiting); it waits for a deployment protection rule of its environment (e.g. a required reviewer): approve it at https://github.com/acme/api/actions/runs/")
}

// TestReloadPollingFaults: while polling, a rate limit is waited out for
// as long as GitHub asks and a 5xx is tried again at the next poll; a
// refusal ends the wait.
func TestReloadPollingFaults(t *testing.T) {
	t.Parallel()
	plan := githubfake.RunPlan{Steps: []githubfake.RunStep{{Status: "in_progress", Polls: 1}}}
	t.Run("secondary rate limit", func(t *testing.T) {
		t.Parallel()
		f := newFake(t)
		f.SetRunPlan(plan)
		f.Limit(1, 30*time.Second) // the dispatch gets through, the polls do not
		tg := newTarget(t, f, pollOpts)
		s := sleeps{hook: func(int) { f.Limit(-1, 0) }}
		s.install(tg)
		_, err := reload(t, t.Context(), tg, "12")
		require.NoError(t, err)
		require.Equal(t, []time.Duration{30 * time.Second, 5 * time.Millisecond}, s.all(), "Retry-After, then reload_poll")
		require.Equal(t, 429, f.Calls()[1].Status)
	})
	t.Run("primary rate limit", func(t *testing.T) {
		t.Parallel()
		f := newFake(t)
		f.SetRunPlan(plan)
		f.PrimaryLimit(1, time.Minute)
		tg := newTarget(t, f, pollOpts)
		s := sleeps{hook: func(int) { f.PrimaryLimit(-1, 0) }}
		s.install(tg)
		_, err := reload(t, t.Context(), tg, "13")
		require.NoError(t, err)
		require.Equal(t, []time.Duration{time.Minute, 5 * time.Millisecond}, s.all(), "until X-RateLimit-Reset, then reload_poll")
	})
	t.Run("server errors", func(t *testing.T) {
		t.Parallel()
		f := newFake(t)
		f.SetRunPlan(plan)
		tg := newTarget(t, f, pollOpts)
		s := sleeps{hook: func(n int) {
			if n == 1 {
				f.FailNext(2, 502)
			}
		}}
		s.install(tg)
		resp, err := reload(t, t.Context(), tg, "14")
		require.NoError(t, err)
		require.Contains(t, resp.Detail, "completed success")
		var statuses []int
		for _, c := range f.Calls()[1:] {
			statuses = append(statuses, c.Status)
		}
		require.Equal(t, []int{200, 502, 502, 200}, statuses)
		require.Len(t, f.Dispatches(), 1)
	})
	t.Run("refusal", func(t *testing.T) {
		t.Parallel()
		f := newFake(t)
		f.SetRunPlan(plan)
		tg := newTarget(t, f, pollOpts)
		s := sleeps{hook: func(int) { f.FailNext(1, 404) }}
		s.install(tg)
		_, err := reload(t, t.Context(), tg, "15")
		require.ErrorIs(t, err, target.ErrNotFound)
		require.ErrorContains(t, err, "read workflow run")
	})
}

// TestReloadFindsTheRunWithoutRunDetails: a GitHub that does not return
// the run's id (Enterprise Server before 3.21) gets the dispatch without
// return_run_details, and the run is found by listing the workflow's
// dispatch runs on ref created since GitHub received the dispatch.
func TestReloadFindsTheRunWithoutRunDetails(t *testing.T) {
	t.Parallel()
	listQuery := "branch=main&created=%3E%3D2026-11-26T08%3A00%3A00Z&event=workflow_dispatch&per_page=10"
	for name, api := range map[string]githubfake.DispatchAPI{"refuses return_run_details": githubfake.RefusesRunDetails, "ignores return_run_details": githubfake.IgnoresRunDetails} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			f := newFake(t)
			f.SetDispatchAPI(api)
			f.SetRunPlan(githubfake.RunPlan{Steps: []githubfake.RunStep{{Status: "queued", Polls: 1}}, ListedAfter: 2})
			tg := newTarget(t, f, pollOpts)
			var s sleeps
			s.install(tg)
			resp, err := reload(t, t.Context(), tg, "16")
			require.NoError(t, err)
			run := f.Runs()[0]
			require.Contains(t, resp.Detail, fmt.Sprintf("workflow run %d of deploy.yml on main in acme/api completed success after 0s (queued → completed)", run.ID))
			var want []string
			if api == githubfake.RefusesRunDetails {
				want = append(want, "POST /repos/acme/api/actions/workflows/deploy.yml/dispatches 422")
			}
			list := "GET /repos/acme/api/actions/workflows/deploy.yml/runs?" + listQuery + " 200"
			get := fmt.Sprintf("GET /repos/acme/api/actions/runs/%d? 200", run.ID)
			want = append(want, "POST /repos/acme/api/actions/workflows/deploy.yml/dispatches 204", list, list, list, get, get)
			require.Equal(t, want, callsWithQuery(f))

			// The next rotation does not ask for run details again.
			before := len(f.Calls())
			f.SetRunPlan(githubfake.RunPlan{})
			_, err = reload(t, t.Context(), tg, "17")
			require.NoError(t, err)
			require.Equal(t, "POST /repos/acme/api/actions/workflows/deploy.yml/dispatches 204", callsWithQuery(f)[before])
		})
	}

	t.Run("an older run is not taken for the new one", func(t *testing.T) {
		t.Parallel()
		f := newFake(t)
		clock := now
		var mu sync.Mutex
		f.SetNow(func() time.Time { mu.Lock(); defer mu.Unlock(); return clock })
		p := params(f, pollOpts)
		p.Now = func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
		tg, err := github.New(p)
		require.NoError(t, err)
		var s sleeps
		s.install(tg)
		_, err = reload(t, t.Context(), tg, "18")
		require.NoError(t, err)

		mu.Lock()
		clock = clock.Add(5 * time.Minute)
		mu.Unlock()
		f.SetDispatchAPI(githubfake.IgnoresRunDetails)
		f.SetRunPlan(githubfake.RunPlan{ListedAfter: 1})
		resp, err := reload(t, t.Context(), tg, "19")
		require.NoError(t, err)
		runs := f.Runs()
		require.Len(t, runs, 2)
		require.Contains(t, resp.Detail, fmt.Sprintf("workflow run %d ", runs[1].ID), "run %d was created before this dispatch", runs[0].ID)
	})

	t.Run("no run shows up", func(t *testing.T) {
		t.Parallel()
		f := newFake(t)
		f.SetDispatchAPI(githubfake.IgnoresRunDetails)
		f.SetRunPlan(githubfake.RunPlan{ListedAfter: 1 << 30})
		tg := newTarget(t, f, pollOpts)
		ctx := newExpiring(t.Context())
		s := sleeps{hook: func(n int) {
			if n == 5 {
				ctx.expire()
			}
		}}
		s.install(tg)
		_, err := reload(t, ctx, tg, "20")
		require.ErrorIs(t, err, context.DeadlineExceeded)
		require.ErrorContains(t, err, "workflow deploy.yml was dispatched on main in acme/api, but no run of it created since 2026-11-26T08:00:00Z showed up within 0s")
	})
}

func callsWithQuery(f *githubfake.Fake) []string {
	var out []string
	for _, c := range f.Calls() {
		p := c.Path
		if c.Method == "GET" {
			p += "?" + c.Query
		}
		out = append(out, fmt.Sprintf("%s %s %d", c.Method, p, c.Status))
	}
	return out
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
		{name: "environment", opts: envOpts, wantCalls: []string{"GET /repos/acme/api/environments/production/secrets/public-key"}},
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
