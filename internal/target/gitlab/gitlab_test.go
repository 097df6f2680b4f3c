package gitlab_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/rotorhq/rotor/internal/secret"
	"github.com/rotorhq/rotor/internal/target"
	"github.com/rotorhq/rotor/internal/target/gitlab"
	"github.com/rotorhq/rotor/internal/target/gitlab/gitlabfake"
	"github.com/rotorhq/rotor/internal/target/targettest"
)

const (
	projectOpts = "token: " + gitlabfake.Token + "\nproject: acme/app\n"
	groupOpts   = "token: " + gitlabfake.Token + "\ngroup: '7'\n"
	pipelineOn  = "pipeline: {ref: main}\n"
)

var fakes sync.Map // target.Target → *gitlabfake.Fake

func fakeOf(tg target.Target) *gitlabfake.Fake {
	f, _ := fakes.Load(tg)
	return f.(*gitlabfake.Fake)
}

func TestConformance(t *testing.T) {
	t.Parallel()
	unmaskable := func(_, v string) bool { return gitlab.CanMask(v, true) != "" }
	cases := []struct {
		name    string
		opts    string
		kind    string
		scope   string
		hidden  bool
		rejects func(key, value string) bool
	}{
		{name: "project variables", opts: projectOpts, kind: gitlabfake.Project, scope: "*"},
		{name: "masked group variables of one environment", opts: groupOpts + "masked: true\nenvironment_scope: production\n", kind: gitlabfake.Group, scope: "production", rejects: unmaskable},
		{name: "hidden project variables with a pipeline", opts: "token: " + gitlabfake.Token + "\nproject: 42\nhidden: true\n" + pipelineOn, kind: gitlabfake.Project, scope: "*", hidden: true, rejects: unmaskable},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := targettest.Harness{
				New: func(t *testing.T) target.Target {
					f := gitlabfake.New(t)
					tg := newTarget(t, f, tc.opts)
					fakes.Store(tg, f)
					return tg
				},
				Seed: func(t *testing.T, tg target.Target, values map[string]secret.String) {
					for k, v := range values {
						fakeOf(tg).Seed(tc.kind, gitlabfake.Variable{Key: k, Value: v.Reveal(), EnvironmentScope: tc.scope, Raw: true})
					}
				},
				Rejects: tc.rejects,
				Break: func(t *testing.T, tg target.Target) {
					fakeOf(tg).FailNext(1000, 500)
				},
			}
			if tc.hidden {
				// Hidden values cannot be read back or compared.
				h.NoChangeDetection = true
				h.Read = func(t *testing.T, tg target.Target, key string) (secret.String, bool) {
					v, ok := fakeOf(tg).Variable(tc.kind, key, tc.scope)
					return secret.New(v.Value), ok
				}
			}
			targettest.Exercise(t, h)
		})
	}
}

func TestNew(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name         string
		opts         string
		wantDest     string
		wantPipeline bool
		wantIs       error
		wantErr      string
	}{
		{name: "project path", opts: projectOpts, wantDest: "gitlab project acme/app CI/CD variables (environment scope *)"},
		{name: "group id and scope", opts: groupOpts + "environment_scope: production\n", wantDest: "gitlab group 7 CI/CD variables (environment scope production)"},
		{name: "pipeline", opts: projectOpts + pipelineOn, wantDest: "gitlab project acme/app CI/CD variables (environment scope *)", wantPipeline: true},
		{name: "no token", opts: "project: acme/app\n", wantIs: target.ErrAuth, wantErr: "has no token; add token: ${GITLAB_TOKEN}"},
		{name: "neither project nor group", opts: "token: x\n", wantIs: target.ErrInvalid, wantErr: "needs project:"},
		{name: "both project and group", opts: projectOpts + "group: acme\n", wantIs: target.ErrInvalid, wantErr: "sets both project and group"},
		{name: "empty scope", opts: projectOpts + "environment_scope: ''\n", wantIs: target.ErrInvalid, wantErr: "environment_scope is empty"},
		{name: "unknown variable type", opts: projectOpts + "variable_type: secret\n", wantIs: target.ErrInvalid, wantErr: `variable_type "secret" is not env_var or file`},
		{name: "pipeline without ref", opts: projectOpts + "pipeline: {}\n", wantIs: target.ErrInvalid, wantErr: "pipeline needs ref"},
		{name: "pipeline on a group", opts: groupOpts + pipelineOn, wantIs: target.ErrInvalid, wantErr: "groups have no pipelines"},
		{name: "bad api_url", opts: projectOpts + "api_url: gitlab.com\n", wantIs: target.ErrInvalid, wantErr: "is not an http(s) URL"},
		{name: "pipeline with reload_poll", opts: projectOpts + pipelineOn + "reload_poll: 30s\n", wantDest: "gitlab project acme/app CI/CD variables (environment scope *)", wantPipeline: true},
		{name: "reload_poll without pipeline", opts: projectOpts + "reload_poll: 30s\n", wantIs: target.ErrInvalid, wantErr: "reload_poll is how often Reload looks at the pipeline it started, but there is no pipeline"},
		{name: "reload_poll not a duration", opts: projectOpts + pipelineOn + "reload_poll: '5'\n", wantIs: target.ErrInvalid, wantErr: `reload_poll "5" is not a positive duration`},
		{name: "unknown option", opts: projectOpts + "expand: false\n", wantErr: "field expand not found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tg, err := gitlab.New(target.Params{Name: "ci", Decode: targettest.DecodeYAML(tt.opts)})
			if tt.wantErr != "" {
				require.ErrorContains(t, err, `gitlab target "ci"`)
				require.ErrorContains(t, err, tt.wantErr)
				if tt.wantIs != nil {
					require.ErrorIs(t, err, tt.wantIs)
				}
				return
			}
			require.NoError(t, err)
			require.Equal(t, target.Info{Type: "gitlab", Name: "ci", Destination: tt.wantDest, Idempotent: true}, tg.Info())
			isReloader := target.Discover(tg).Reloader != nil
			require.Equal(t, tt.wantPipeline, isReloader)
		})
	}
}

func TestPutGetsThenCreatesOrUpdates(t *testing.T) {
	t.Parallel()
	const (
		varPath = "/api/v4/projects/acme%2Fapp/variables/DATABASE_URL"
		filter  = "filter%5Benvironment_scope%5D=%2A"
	)
	f := gitlabfake.New(t)
	// Another environment's variable of the same key must stay untouched.
	f.Seed(gitlabfake.Project, gitlabfake.Variable{Key: "DATABASE_URL", Value: "postgres://staging", EnvironmentScope: "staging"})
	tg := newTarget(t, f, projectOpts)

	v1 := "postgres://app:pa$$word@db/app"
	resp, err := tg.Put(t.Context(), targettest.PutRequest(map[string]string{"DATABASE_URL": v1}))
	require.NoError(t, err)
	require.True(t, resp.Changed)
	require.Equal(t, []string{"GET " + varPath + "?" + filter + " 404", "POST /api/v4/projects/acme%2Fapp/variables 201"}, callList(f))
	v, ok := f.Variable(gitlabfake.Project, "DATABASE_URL", "*")
	require.True(t, ok)
	require.Equal(t, gitlabfake.Variable{Key: "DATABASE_URL", Value: v1, EnvironmentScope: "*", VariableType: "env_var", Raw: true}, v,
		"raw by default, so GitLab does not expand the $ in the password")

	// The same value again: read only.
	resp, err = tg.Put(t.Context(), targettest.PutRequest(map[string]string{"DATABASE_URL": v1}))
	require.NoError(t, err)
	require.False(t, resp.Changed)
	require.Equal(t, "GET "+varPath+"?"+filter+" 200", last(f))

	// A new value: read, then update that scope only.
	resp, err = tg.Put(t.Context(), targettest.PutRequest(map[string]string{"DATABASE_URL": "postgres://app:n3w@db/app"}))
	require.NoError(t, err)
	require.True(t, resp.Changed)
	require.Equal(t, "PUT "+varPath+" 200", last(f))
	v, _ = f.Variable(gitlabfake.Project, "DATABASE_URL", "*")
	require.Equal(t, "postgres://app:n3w@db/app", v.Value)
	other, _ := f.Variable(gitlabfake.Project, "DATABASE_URL", "staging")
	require.Equal(t, "postgres://staging", other.Value)
	require.Len(t, f.Variables(gitlabfake.Project), 2)
}

func TestPutFixesFlags(t *testing.T) {
	t.Parallel()
	f := gitlabfake.New(t)
	f.Seed(gitlabfake.Project, gitlabfake.Variable{Key: "PGPASSWORD", Value: "Zx9pLq2vT7abc", Raw: false})
	tg := newTarget(t, f, projectOpts+"masked: true\nprotected: true\n")
	resp, err := tg.Put(t.Context(), targettest.PutRequest(map[string]string{"PGPASSWORD": "Zx9pLq2vT7abc"}))
	require.NoError(t, err)
	require.True(t, resp.Changed, "same value, different flags: still a write")
	v, _ := f.Variable(gitlabfake.Project, "PGPASSWORD", "*")
	require.True(t, v.Masked)
	require.True(t, v.Protected)
	require.True(t, v.Raw)
}

func TestCreateRaceBecomesUpdate(t *testing.T) {
	t.Parallel()
	f := gitlabfake.New(t)
	f.RaceOnNextCreate(gitlabfake.Project, gitlabfake.Variable{Key: "DATABASE_URL", Value: "postgres://someone-else"})
	tg := newTarget(t, f, projectOpts)
	_, err := tg.Put(t.Context(), targettest.PutRequest(map[string]string{"DATABASE_URL": "postgres://app:pw@db/app"}))
	require.NoError(t, err)
	require.Equal(t, []string{
		"GET /api/v4/projects/acme%2Fapp/variables/DATABASE_URL?filter%5Benvironment_scope%5D=%2A 404",
		"POST /api/v4/projects/acme%2Fapp/variables 400",
		"PUT /api/v4/projects/acme%2Fapp/variables/DATABASE_URL 200",
	}, callList(f))
	v, _ := f.Variable(gitlabfake.Project, "DATABASE_URL", "*")
	require.Equal(t, "postgres://app:pw@db/app", v.Value)
}

func TestCanMask(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		value string
		raw   bool
		want  string
	}{
		{"percent-encoded URL, raw", "postgres://app:p%40ss@h:5432/db?sslmode=require&x=1", true, ""},
		{"percent-encoded URL, expanded", "postgres://app:p%40ss@h:5432/db?sslmode=require", false, "contains characters other than"},
		{"password of allowed characters, expanded", "Zx9-pL_q2+vT7=/@:.~", false, ""},
		{"short", "Zx9pLq2", true, "is shorter than 8 characters"},
		{"space", "Zx9p Lq2vT7", true, "contains spaces"},
		{"tab", "Zx9p\tLq2vT7", true, "contains spaces"},
		{"line break", "Zx9pLq2v\nT7", true, "spans several lines"},
		{"non-ASCII, raw", "pässwörd-€-密码", true, ""},
		{"non-ASCII, expanded", "pässwörd-€-密码", false, "contains characters other than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tt.want == "", gitlab.CanMask(tt.value, tt.raw) == "")
			if tt.want != "" {
				require.Contains(t, gitlab.CanMask(tt.value, tt.raw), tt.want)
			}
		})
	}
}

func TestMaskedRefusesUnmaskableValuesBeforeWriting(t *testing.T) {
	t.Parallel()
	const canary = "canary 9a8b7c"
	f := gitlabfake.New(t)
	tg := newTarget(t, f, projectOpts+"masked: true\n")
	value := secret.New("postgres://app:" + canary + "@db/app")
	_, err := tg.Put(t.Context(), target.PutRequest{
		Values: map[string]secret.String{"PGUSER": secret.New("app_blue"), "DATABASE_URL": value},
		Keys:   []string{"PGUSER", "DATABASE_URL"},
	})
	require.ErrorIs(t, err, target.ErrInvalid)
	require.ErrorContains(t, err, "GitLab cannot mask the value for DATABASE_URL: it contains spaces")
	require.ErrorContains(t, err, "mask a separate key that holds only the password")
	require.ErrorContains(t, err, "PGPASSWORD")
	require.Empty(t, secret.Leaks([]byte(err.Error()), value, secret.New(canary)))
	require.Empty(t, f.Calls(), "no key is written when one would be refused")
}

func TestScopeConflicts(t *testing.T) {
	t.Parallel()
	t.Run("several scopes without a working filter: 409", func(t *testing.T) {
		t.Parallel()
		f := gitlabfake.New(t)
		f.IgnoreScopeFilter()
		f.Seed(gitlabfake.Project, gitlabfake.Variable{Key: "DATABASE_URL", Value: "a", EnvironmentScope: "*"})
		f.Seed(gitlabfake.Project, gitlabfake.Variable{Key: "DATABASE_URL", Value: "b", EnvironmentScope: "production"})
		tg := newTarget(t, f, projectOpts)
		_, err := tg.Put(t.Context(), targettest.PutRequest(map[string]string{"DATABASE_URL": "postgres://x"}))
		require.ErrorIs(t, err, target.ErrInvalid)
		require.ErrorContains(t, err, "GitLab answered 409: There are multiple variables with provided parameters")
		require.ErrorContains(t, err, "the key exists in several environment scopes")
		require.Equal(t, 0, f.Writes())
	})
	t.Run("a filter that is ignored must not move another scope's variable", func(t *testing.T) {
		t.Parallel()
		f := gitlabfake.New(t)
		f.IgnoreScopeFilter()
		f.Seed(gitlabfake.Project, gitlabfake.Variable{Key: "DATABASE_URL", Value: "postgres://prod", EnvironmentScope: "production"})
		tg := newTarget(t, f, projectOpts)
		_, err := tg.Put(t.Context(), targettest.PutRequest(map[string]string{"DATABASE_URL": "postgres://x"}))
		require.ErrorIs(t, err, target.ErrInvalid)
		require.ErrorContains(t, err, "asked for DATABASE_URL in environment scope *, GitLab answered with the one of scope production")
		require.Equal(t, 0, f.Writes())
		v, _ := f.Variable(gitlabfake.Project, "DATABASE_URL", "production")
		require.Equal(t, "postgres://prod", v.Value)
	})
}

func TestHiddenVariables(t *testing.T) {
	t.Parallel()
	const pw = "Zx9pLq2vT7abc"
	t.Run("created hidden and reported unreadable", func(t *testing.T) {
		t.Parallel()
		f := gitlabfake.New(t)
		tg := newTarget(t, f, projectOpts+"hidden: true\n")
		_, err := tg.Put(t.Context(), targettest.PutRequest(map[string]string{"PGPASSWORD": pw}))
		require.NoError(t, err)
		v, _ := f.Variable(gitlabfake.Project, "PGPASSWORD", "*")
		require.True(t, v.Hidden)
		require.True(t, v.Masked)
		require.Equal(t, pw, v.Value)
		resp, err := tg.(target.Checker).Check(t.Context(), target.CheckRequest{Keys: []string{"PGPASSWORD", "ABSENT"}})
		require.NoError(t, err)
		require.Empty(t, resp.Values)
		require.Equal(t, []string{"PGPASSWORD"}, resp.Unreadable)
		require.Equal(t, []string{"PGPASSWORD is hidden in GitLab; hidden values cannot be read back"}, resp.Notes)
	})
	t.Run("an existing visible variable cannot become hidden", func(t *testing.T) {
		t.Parallel()
		f := gitlabfake.New(t)
		f.Seed(gitlabfake.Project, gitlabfake.Variable{Key: "PGPASSWORD", Value: "old-password", Raw: true})
		tg := newTarget(t, f, projectOpts+"hidden: true\n")
		_, err := tg.Put(t.Context(), targettest.PutRequest(map[string]string{"PGPASSWORD": pw}))
		require.ErrorIs(t, err, target.ErrInvalid)
		require.ErrorContains(t, err, "GitLab hides variables only when creating them; delete it")
		require.Zero(t, f.Writes())
	})
	t.Run("a hidden variable needs hidden: true", func(t *testing.T) {
		t.Parallel()
		f := gitlabfake.New(t)
		f.Seed(gitlabfake.Project, gitlabfake.Variable{Key: "PGPASSWORD", Value: "old-password", Masked: true, Hidden: true, Raw: true})
		tg := newTarget(t, f, projectOpts)
		_, err := tg.Put(t.Context(), targettest.PutRequest(map[string]string{"PGPASSWORD": pw}))
		require.ErrorIs(t, err, target.ErrInvalid)
		require.ErrorContains(t, err, "is hidden in GitLab, and hidden variables stay masked; set hidden: true")
		require.Zero(t, f.Writes())
	})
}

func TestPutErrors(t *testing.T) {
	t.Parallel()
	const canary = "canary-77aa01"
	tests := []struct {
		name  string
		opts  string
		setup func(f *gitlabfake.Fake)
		key   string
		// wantIs nil means a *target.RetryableError with wantRetryAfter.
		wantIs         error
		wantRetryAfter time.Duration
		wantErr        string
		wantNoRequest  bool
	}{
		{name: "bad token", opts: strings.Replace(projectOpts, gitlabfake.Token, "wrong", 1), wantIs: target.ErrAuth, wantErr: "read variable DATABASE_URL: GitLab answered 401: 401 Unauthorized; GitLab rejected the token; check that the variable behind token: (e.g. ${GITLAB_TOKEN}) holds a valid, unexpired access token with the api scope"},
		{name: "developer role", opts: strings.Replace(projectOpts, gitlabfake.Token, gitlabfake.DeveloperToken, 1), wantIs: target.ErrAuth, wantErr: "403 Forbidden; the token needs the api scope and the Maintainer role on the project (Owner on a group)"},
		{name: "unknown project", opts: "token: " + gitlabfake.Token + "\nproject: acme/nope\n", wantIs: target.ErrNotFound, wantErr: "create variable DATABASE_URL: GitLab answered 404: 404 Project Not Found; check project/group"},
		{name: "invalid key", opts: projectOpts, key: "DB-URL", wantIs: target.ErrInvalid, wantErr: `"DB-URL" cannot be a GitLab variable key`, wantNoRequest: true},
		{name: "server error", opts: projectOpts, setup: func(f *gitlabfake.Fake) { f.FailNext(1, 503) }, wantErr: "GitLab answered 503"},
		{name: "rate limit with Retry-After", opts: projectOpts, setup: func(f *gitlabfake.Fake) { f.Limit(1, 9*time.Second) }, wantRetryAfter: 9 * time.Second, wantErr: "GitLab answered 429"},
		{name: "rate limit without headers", opts: projectOpts, setup: func(f *gitlabfake.Fake) { f.Limit(0, 0) }, wantErr: "GitLab's rate limit"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := gitlabfake.New(t)
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
			require.ErrorContains(t, err, `gitlab target "ci"`)
			require.ErrorContains(t, err, tt.wantErr)
			require.Empty(t, secret.Leaks([]byte(fmt.Sprintf("%v %+v", err, err)), value, secret.New(canary), secret.New(gitlabfake.Token)))
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
			require.Empty(t, f.Variables(gitlabfake.Project))
		})
	}
}

func TestReload(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name          string
		opts          string
		setup         func(f *gitlabfake.Fake)
		wantIs        error
		wantRetryable bool
		wantErr       string
	}{
		{name: "starts a pipeline", opts: projectOpts + pipelineOn},
		{name: "a Developer may run pipelines", opts: strings.Replace(projectOpts, gitlabfake.Token, gitlabfake.DeveloperToken, 1) + pipelineOn},
		{name: "unknown ref", opts: projectOpts + "pipeline: {ref: release}\n", wantIs: target.ErrInvalid, wantErr: "start a pipeline on release: GitLab answered 400: base: Reference not found"},
		{name: "server error is not retried: a pipeline may exist", opts: projectOpts + pipelineOn, setup: func(f *gitlabfake.Fake) { f.FailNext(1, 500) }, wantErr: "the pipeline may or may not have been created"},
		{name: "rate limit is retried: nothing started", opts: projectOpts + pipelineOn, setup: func(f *gitlabfake.Fake) { f.Limit(0, 4*time.Second) }, wantRetryable: true, wantErr: "GitLab answered 429"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := gitlabfake.New(t)
			if tt.setup != nil {
				tt.setup(f)
			}
			tg := newTarget(t, f, tt.opts)
			resp, err := tg.(target.Reloader).Reload(t.Context(), target.ReloadRequest{RotationID: "5"})
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				var re *target.RetryableError
				require.Equal(t, tt.wantRetryable, errors.As(err, &re))
				if tt.wantIs != nil {
					require.ErrorIs(t, err, tt.wantIs)
				}
				require.Empty(t, f.Pipelines())
				return
			}
			require.NoError(t, err)
			require.Equal(t, "pipeline 1001 on main in project acme/app succeeded after 0s (created → success): https://gitlab.example.com/acme/app/-/pipelines/1001", resp.Detail)
			pls := f.Pipelines()
			require.Len(t, pls, 1)
			require.Equal(t, 1001, pls[0].ID)
			require.Equal(t, "main", pls[0].Ref)
			require.Equal(t, []string{"POST /api/v4/projects/acme%2Fapp/pipeline 201", "GET /api/v4/projects/acme%2Fapp/pipelines/1001 200"}, callList(f))
		})
	}
	t.Run("Put never starts a pipeline", func(t *testing.T) {
		t.Parallel()
		f := gitlabfake.New(t)
		tg := newTarget(t, f, projectOpts+pipelineOn)
		_, err := tg.Put(t.Context(), targettest.PutRequest(map[string]string{"DATABASE_URL": "postgres://a"}))
		require.NoError(t, err)
		require.Empty(t, f.Pipelines())
	})
}

const pollOpts = projectOpts + pipelineOn + "reload_poll: 5ms\n"

// sleeps records the waits Reload asks for instead of spending them; hook
// runs before each returns.
type sleeps struct {
	mu   sync.Mutex
	got  []time.Duration
	hook func(n int)
}

func (s *sleeps) install(tg target.Target) {
	gitlab.SetSleep(tg, func(ctx context.Context, d time.Duration) error {
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
// that "reload_timeout struck while the pipeline ran" does not depend on
// how fast the machine is.
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

func reload(ctx context.Context, tg target.Target, rotation string) (target.ReloadResponse, error) {
	return tg.(target.Reloader).Reload(ctx, target.ReloadRequest{RotationID: rotation})
}

// TestReloadWaitsForThePipeline: Reload returns when the pipeline
// succeeded, polling every reload_poll, not when GitLab created it.
func TestReloadWaitsForThePipeline(t *testing.T) {
	t.Parallel()
	f := gitlabfake.New(t)
	f.SetPipelinePlan(gitlabfake.PipelinePlan{Steps: []gitlabfake.PipelineStep{{Status: "pending", Polls: 2}, {Status: "running", Polls: 3}}})
	tg := newTarget(t, f, pollOpts)
	var s sleeps
	s.install(tg)

	resp, err := reload(t.Context(), tg, "5")
	require.NoError(t, err)
	require.Equal(t, "pipeline 1001 on main in project acme/app succeeded after 0s (created → pending → running → success): https://gitlab.example.com/acme/app/-/pipelines/1001", resp.Detail)
	pl := f.Pipelines()[0]
	require.Equal(t, "success", pl.Status)
	require.Equal(t, 6, pl.Polls, "two polls pending, three running, one success")
	require.Equal(t, slices.Repeat([]time.Duration{5 * time.Millisecond}, 5), s.all(), "one reload_poll pause after each poll that saw it unfinished")
}

func TestReloadFailedPipeline(t *testing.T) {
	t.Parallel()
	for _, final := range []string{"failed", "canceled", "skipped"} {
		t.Run(final, func(t *testing.T) {
			t.Parallel()
			f := gitlabfake.New(t)
			f.SetPipelinePlan(gitlabfake.PipelinePlan{Steps: []gitlabfake.PipelineStep{{Status: "running", Polls: 1}}, Final: final})
			tg := newTarget(t, f, pollOpts)
			var s sleeps
			s.install(tg)

			_, err := reload(t.Context(), tg, "6")
			require.ErrorIs(t, err, gitlab.ErrPipelineFailed)
			require.ErrorContains(t, err, `gitlab target "ci": pipeline 1001 on main in project acme/app ended `+final+` after 0s (created → running → `+final+`)`)
			require.ErrorContains(t, err, "read its jobs' logs at https://gitlab.example.com/acme/app/-/pipelines/1001")
			require.ErrorContains(t, err, "`rotor resume` starts a new pipeline")
			var re *target.RetryableError
			require.False(t, errors.As(err, &re), "a second run of a broken pipeline fixes nothing")
			require.Empty(t, secret.Leaks([]byte(err.Error()), secret.New(gitlabfake.Token)))

			// Resume after the failure: a new pipeline, as the error said.
			f.SetPipelinePlan(gitlabfake.PipelinePlan{})
			resp, err := reload(t.Context(), tg, "6")
			require.NoError(t, err)
			require.Len(t, f.Pipelines(), 2)
			require.Contains(t, resp.Detail, "pipeline 1002 on main in project acme/app succeeded")
		})
	}
}

// TestReloadTimesOut: when ctx ends while the pipeline runs, the error
// wraps ctx.Err() and says the last status; a second Reload of the same
// rotation waits for that pipeline rather than starting another.
func TestReloadTimesOut(t *testing.T) {
	t.Parallel()
	f := gitlabfake.New(t)
	f.SetPipelinePlan(gitlabfake.PipelinePlan{Steps: []gitlabfake.PipelineStep{{Status: "pending", Polls: 1}, {Status: "running", Polls: -1}}})
	tg := newTarget(t, f, pollOpts)
	ctx := newExpiring(t.Context())
	s := sleeps{hook: func(n int) {
		if n == 3 {
			ctx.expire() // reload_timeout strikes in the third pause
		}
	}}
	s.install(tg)

	_, err := reload(ctx, tg, "7")
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.ErrorContains(t, err, `gitlab target "ci": pipeline 1001 on main in project acme/app is still running after 0s (created → pending → running); look at it at https://gitlab.example.com/acme/app/-/pipelines/1001`)
	require.NotErrorIs(t, err, gitlab.ErrPipelineFailed)
	var re *target.RetryableError
	require.False(t, errors.As(err, &re))
	require.Equal(t, 3, f.Pipelines()[0].Polls)

	f.FinishPipeline(1001, "success")
	resp, err := reload(t.Context(), tg, "7")
	require.NoError(t, err)
	require.Len(t, f.Pipelines(), 1, "the second Reload of rotation 7 waits for the pipeline the first one started")
	require.Equal(t, "pipeline 1001 on main in project acme/app succeeded after 0s (created → pending → running → success): https://gitlab.example.com/acme/app/-/pipelines/1001", resp.Detail)

	again, err := reload(t.Context(), tg, "7")
	require.NoError(t, err)
	require.Len(t, f.Pipelines(), 1, "a finished reload starts no new pipeline")
	require.Equal(t, resp.Detail+" (finished before; no new pipeline started)", again.Detail)

	f.SetPipelinePlan(gitlabfake.PipelinePlan{})
	_, err = reload(t.Context(), tg, "8")
	require.NoError(t, err)
	require.Len(t, f.Pipelines(), 2, "the next rotation starts its own pipeline")
}

// TestReloadManualPipeline: a pipeline waiting for a manual job is not
// finished; Reload waits for the person, and says so when ctx ends.
func TestReloadManualPipeline(t *testing.T) {
	t.Parallel()
	f := gitlabfake.New(t)
	f.SetPipelinePlan(gitlabfake.PipelinePlan{Steps: []gitlabfake.PipelineStep{{Status: "running", Polls: 1}}, Final: "manual"})
	tg := newTarget(t, f, pollOpts)
	ctx := newExpiring(t.Context())
	s := sleeps{hook: func(n int) {
		if n == 4 {
			ctx.expire()
		}
	}}
	s.install(tg)
	_, err := reload(ctx, tg, "9")
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.ErrorContains(t, err, "is still manual after 0s (created → running → manual); it waits for someone to run its manual job(s): run them at https://gitlab.example.com/acme/app/-/pipelines/1001")

	t.Run("and goes on once the job ran", func(t *testing.T) {
		f.SetPipelinePlan(gitlabfake.PipelinePlan{Steps: []gitlabfake.PipelineStep{{Status: "manual", Polls: 2}, {Status: "running", Polls: 1}}})
		resp, err := reload(t.Context(), tg, "10")
		require.NoError(t, err)
		require.Contains(t, resp.Detail, "pipeline 1002 on main in project acme/app succeeded after 0s (created → manual → running → success)")
	})
}

// TestReloadPollingFaults: while polling, a 429 is waited out for as long
// as GitLab asks and a 5xx is tried again at the next poll; a refusal ends
// the wait.
func TestReloadPollingFaults(t *testing.T) {
	t.Parallel()
	plan := gitlabfake.PipelinePlan{Steps: []gitlabfake.PipelineStep{{Status: "running", Polls: 1}}}
	t.Run("rate limit", func(t *testing.T) {
		t.Parallel()
		f := gitlabfake.New(t)
		f.SetPipelinePlan(plan)
		f.Limit(1, 9*time.Second) // the pipeline is created, the polls are limited
		tg := newTarget(t, f, pollOpts)
		s := sleeps{hook: func(int) { f.Limit(-1, 0) }}
		s.install(tg)
		_, err := reload(t.Context(), tg, "11")
		require.NoError(t, err)
		require.Equal(t, []time.Duration{9 * time.Second, 5 * time.Millisecond}, s.all(), "Retry-After, then reload_poll")
		require.Equal(t, "GET /api/v4/projects/acme%2Fapp/pipelines/1001 429", callList(f)[1])
	})
	t.Run("server errors", func(t *testing.T) {
		t.Parallel()
		f := gitlabfake.New(t)
		f.SetPipelinePlan(plan)
		tg := newTarget(t, f, pollOpts)
		s := sleeps{hook: func(n int) {
			if n == 1 {
				f.FailNext(2, 502)
			}
		}}
		s.install(tg)
		resp, err := reload(t.Context(), tg, "12")
		require.NoError(t, err)
		require.Contains(t, resp.Detail, "succeeded")
		require.Equal(t, []string{
			"POST /api/v4/projects/acme%2Fapp/pipeline 201",
			"GET /api/v4/projects/acme%2Fapp/pipelines/1001 200",
			"GET /api/v4/projects/acme%2Fapp/pipelines/1001 502",
			"GET /api/v4/projects/acme%2Fapp/pipelines/1001 502",
			"GET /api/v4/projects/acme%2Fapp/pipelines/1001 200",
		}, callList(f))
		require.Len(t, f.Pipelines(), 1)
	})
	t.Run("refusal", func(t *testing.T) {
		t.Parallel()
		f := gitlabfake.New(t)
		f.SetPipelinePlan(plan)
		tg := newTarget(t, f, pollOpts)
		s := sleeps{hook: func(int) { f.FailNext(1, 403) }}
		s.install(tg)
		_, err := reload(t.Context(), tg, "13")
		require.ErrorIs(t, err, target.ErrAuth)
		require.ErrorContains(t, err, "read pipeline 1001: GitLab answered 403")
		require.ErrorContains(t, err, "may see the project's pipelines")
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
		{name: "project", opts: projectOpts, wantCalls: []string{"GET /api/v4/projects/acme%2Fapp 200", "GET /api/v4/projects/acme%2Fapp/variables?per_page=1 200"}},
		{name: "group", opts: groupOpts, wantCalls: []string{"GET /api/v4/groups/7?with_projects=false 200", "GET /api/v4/groups/7/variables?per_page=1 200"}},
		{name: "pipeline ref", opts: projectOpts + pipelineOn, wantCalls: []string{"GET /api/v4/projects/acme%2Fapp 200", "GET /api/v4/projects/acme%2Fapp/variables?per_page=1 200", "GET /api/v4/projects/acme%2Fapp/repository/commits/main 200"}},
		{name: "unknown ref", opts: projectOpts + "pipeline: {ref: release}\n", wantCalls: []string{"GET /api/v4/projects/acme%2Fapp 200", "GET /api/v4/projects/acme%2Fapp/variables?per_page=1 200", "GET /api/v4/projects/acme%2Fapp/repository/commits/release 404"}, wantIs: target.ErrNotFound, wantErr: "look up ref release"},
		{name: "developer role", opts: strings.Replace(projectOpts, gitlabfake.Token, gitlabfake.DeveloperToken, 1), wantCalls: []string{"GET /api/v4/projects/acme%2Fapp 200"}, wantIs: target.ErrAuth, wantErr: "access level 30 on project acme/app, but managing CI/CD variables needs Maintainer (40)"},
		{name: "unknown group", opts: "token: " + gitlabfake.Token + "\ngroup: nope\n", wantCalls: []string{"GET /api/v4/groups/nope?with_projects=false 404"}, wantIs: target.ErrNotFound, wantErr: "look up group nope"},
		{name: "bad token", opts: strings.Replace(projectOpts, gitlabfake.Token, "wrong", 1), wantCalls: []string{"GET /api/v4/projects/acme%2Fapp 401"}, wantIs: target.ErrAuth, wantErr: "GitLab rejected the token"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := gitlabfake.New(t)
			f.ForbidWrites()
			tg := newTarget(t, f, tt.opts)
			_, err := tg.(target.Validator).Validate(t.Context(), target.ValidateRequest{})
			require.Equal(t, tt.wantCalls, callList(f))
			require.Zero(t, f.Writes(), "Validate must not write")
			if tt.wantErr != "" {
				require.ErrorIs(t, err, tt.wantIs)
				require.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
		})
	}
}

func newTarget(t *testing.T, f *gitlabfake.Fake, opts string) target.Target {
	t.Helper()
	tg, err := gitlab.New(target.Params{
		Name:       "ci",
		Decode:     targettest.DecodeYAML(opts + "api_url: " + f.URL + "\n"),
		HTTPClient: f.Client(),
		Now:        func() time.Time { return time.Date(2026, 11, 26, 8, 0, 0, 0, time.UTC) },
	})
	require.NoError(t, err)
	return tg
}

func callList(f *gitlabfake.Fake) []string {
	var out []string
	for _, c := range f.Calls() {
		p := c.Path
		if c.Query != "" {
			p += "?" + c.Query
		}
		out = append(out, fmt.Sprintf("%s %s %d", c.Method, p, c.Status))
	}
	return out
}

func last(f *gitlabfake.Fake) string {
	calls := callList(f)
	return calls[len(calls)-1]
}
