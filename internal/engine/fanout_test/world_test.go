// Package fanout_test drives whole rotations against real PostgreSQL that
// publish to every deploy-platform and CI target at once — Vercel, Render,
// Fly.io, Railway, GitHub Actions, GitLab CI, each against its contract
// fake — plus a dotenv file, with each target's reload turned on. It proves
// what the issue "Deploy-platform and CI targets" asks: every copy ends up
// with a connection string the database accepts, reloads run once and only
// after every write, faults are retried only where that is safe, and a
// stopped rotation resumes without writing twice.
//
// Values are compared with secret.String.Equal and never printed.
package fanout_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/joho/godotenv"
	"github.com/stretchr/testify/require"

	"github.com/rotorhq/rotor/internal/engine"
	"github.com/rotorhq/rotor/internal/pgcluster"
	"github.com/rotorhq/rotor/internal/pgtest"
	"github.com/rotorhq/rotor/internal/provider"
	pbuiltin "github.com/rotorhq/rotor/internal/provider/builtin"
	"github.com/rotorhq/rotor/internal/resolve"
	"github.com/rotorhq/rotor/internal/secret"
	"github.com/rotorhq/rotor/internal/store"
	"github.com/rotorhq/rotor/internal/store/sqlite"
	tbuiltin "github.com/rotorhq/rotor/internal/target/builtin"
	"github.com/rotorhq/rotor/internal/target/fly/flyfake"
	"github.com/rotorhq/rotor/internal/target/github/githubfake"
	"github.com/rotorhq/rotor/internal/target/gitlab/gitlabfake"
	"github.com/rotorhq/rotor/internal/target/railway/railwayfake"
	"github.com/rotorhq/rotor/internal/target/render/renderfake"
	"github.com/rotorhq/rotor/internal/target/vercel/vercelfake"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// httpTargets are the six HTTP targets, in config order (after the dotenv
// target "env").
var httpTargets = []string{"vercel", "render", "fly", "railway", "github", "gitlab"}

// targetClock is the clock the targets and the fakes share, so that a
// rate-limit reset given as a unix time (Render) turns into exactly the
// wait the fake asked for. The engine keeps the real clock.
var targetClock = func() time.Time { return time.Date(2031, 3, 4, 5, 6, 7, 0, time.UTC) }

// kind is what an HTTP request does to a destination.
type kind int

const (
	kindRead kind = iota
	kindWrite
	kindReload
	kindOtherMutation
)

// fake is one HTTP target as the tests drive and observe it.
type fake struct {
	name     string // target name in rotor.yaml
	typ      string // registry type
	tokenEnv string // the environment variable its token comes from
	token    string // the token the fake accepts
	// readable: read-back compares values, so confirm ends "verified";
	// otherwise (write-only) "unverified".
	readable bool
	yaml     func(apiURL string) string
	url      string

	// value is the plaintext DATABASE_URL that landed in the fake.
	value func() (string, bool)
	// writes counts the write requests in the fake's own log.
	writes func() int
	// reloads counts the reloads (redeploys, deploys, machine updates,
	// dispatches, pipelines) the fake's state records.
	reloads func() int
	// seenByReload is what the last reload saw, where the fake records it.
	seenByReload func() (string, bool)
	classify     func(method, path string, op gqlOp) kind

	failNext  func(n, status int)
	rateLimit func(retryAfter time.Duration) (clear func())
	delay     func(d time.Duration)
}

// gqlOp is the first field of a GraphQL document (Railway).
type gqlOp struct {
	field    string
	mutation bool
}

// world is one test's setup: a database and two login roles of its own on
// the shared cluster, the six fakes, a config file, a store and an engine.
type world struct {
	t       *testing.T
	ctx     context.Context
	cl      *pgcluster.Cluster
	db      string
	roles   []string
	dir     string
	cfgPath string
	envFile string
	env     map[string]string
	key     []byte
	cfg     *resolve.Config
	store   store.Store
	eng     *engine.Engine
	rec     *recorder
	fakes   []*fake
	byName  map[string]*fake

	vercel  *vercelfake.Server
	render  *renderfake.Server
	fly     *flyfake.Server
	railway *railwayfake.Fake
	github  *githubfake.Fake
	gitlab  *gitlabfake.Fake

	mu      sync.Mutex
	sleeps  []time.Duration
	onSleep func()
	evs     []engine.Event
}

type worldOpts struct {
	// badToken names a target whose token variable holds a wrong token.
	badToken string
	// timeout is publish.timeout (default: rotor's).
	timeout string
}

func newWorld(t *testing.T, o worldOpts) *world {
	t.Helper()
	cl := pgtest.Shared(t)
	db, adminURL := pgtest.NewDatabase(t)
	roles, group := pgtest.NewDualRoles(t, cl, pgtest.UniqueName(t, "fan"))
	w := &world{
		t: t, ctx: t.Context(), cl: cl, db: db, dir: t.TempDir(),
		roles:  roles,
		byName: map[string]*fake{},
	}

	w.startFakes()
	w.key = make([]byte, 32)
	_, err := rand.Read(w.key)
	require.NoError(t, err)
	w.env = map[string]string{
		"ADMIN_URL": adminURL.Reveal(),
		"ROTOR_KEY": base64.StdEncoding.EncodeToString(w.key),
	}
	for _, f := range w.fakes {
		w.env[f.tokenEnv] = f.token
	}
	if o.badToken != "" {
		w.env[w.byName[o.badToken].tokenEnv] = "rotor-test-wrong-token"
	}

	w.envFile = filepath.Join(w.dir, ".env")
	require.NoError(t, os.WriteFile(w.envFile, []byte("# app settings\nOTHER=keep-me\nDATABASE_URL=postgresql://stale@nowhere/db\n"), 0o600))
	var publish string
	if o.timeout != "" {
		publish = "    publish:\n      timeout: " + o.timeout + "\n"
	}
	var targets strings.Builder
	fmt.Fprintf(&targets, "      - name: env\n        type: dotenv\n        path: %q\n        values:\n          DATABASE_URL: \"{{.URL}}\"\n", w.envFile)
	for _, f := range w.fakes {
		fmt.Fprintf(&targets, "      - name: %s\n        type: %s\n%s        values:\n          DATABASE_URL: \"{{.URL}}\"\n", f.name, f.typ, f.yaml(f.url))
	}
	yaml := fmt.Sprintf(`version: 1
state: state.db
credentials:
  app:
    provider:
      type: postgres
      admin_url: ${ADMIN_URL}
    connection:
      url: postgresql://%s:%d/%s?sslmode=require&channel_binding=require
    strategy: dual
    roles: [%q, %q]
    group: %q
    drain:
      timeout: 5s
      poll: 50ms
      grace: 200ms
      quiet: 300ms
%s    targets:
%s`, cl.Host, cl.Port, db, w.roles[0], w.roles[1], group, publish, targets.String())
	w.cfgPath = filepath.Join(w.dir, "rotor.yaml")
	require.NoError(t, os.WriteFile(w.cfgPath, []byte(yaml), 0o600))

	w.rec = newRecorder(w)
	cfg, err := resolve.Load(w.cfgPath, w.lookupEnv, resolve.Registry{
		Provider: pbuiltin.Lookup, Target: tbuiltin.Lookup,
		HTTPClient: w.rec.client(), Getenv: w.getenv, Now: targetClock,
	})
	require.NoError(t, err)
	t.Cleanup(func() { cfg.Close() })
	w.cfg = cfg
	w.store, err = sqlite.Open(w.ctx, cfg.State)
	require.NoError(t, err)
	t.Cleanup(func() { w.store.Close() })
	sealer, err := secret.NewSealer(w.key)
	require.NoError(t, err)
	w.eng = &engine.Engine{Store: w.store, Sealer: sealer, Sleep: w.sleep, Events: w.event}
	_, err = w.cred().Provider.EnsureRoles(w.ctx, provider.EnsureRolesRequest{Group: group, Logins: w.roles, Database: db})
	require.NoError(t, err)
	return w
}

func (w *world) lookupEnv(k string) (string, bool) { v, ok := w.env[k]; return v, ok }
func (w *world) getenv(k string) string            { return w.env[k] }

func (w *world) cred() *engine.Credential {
	cr, err := w.cfg.Credential("app")
	require.NoError(w.t, err)
	return cr
}

// sleep is the engine's Sleep: it records the wait and returns at once,
// after running onSleep (which tests use to clear a fault between two
// attempts).
func (w *world) sleep(ctx context.Context, d time.Duration) error {
	w.mu.Lock()
	w.sleeps = append(w.sleeps, d)
	hook := w.onSleep
	w.mu.Unlock()
	if hook != nil {
		hook()
	}
	return ctx.Err()
}

// event is the engine's Events sink.
func (w *world) event(ev engine.Event) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.evs = append(w.evs, ev)
}

// events is every progress event the engine reported so far.
func (w *world) events() []engine.Event {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.evs)
}

func (w *world) recordedSleeps() []time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.sleeps)
}

func (w *world) setOnSleep(fn func()) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.onSleep = fn
}

// rotation is one Rotate call and the HTTP requests it made.
type rotation struct {
	res      *engine.Result
	err      error
	requests []httpEvent
}

func (w *world) rotate(opts engine.Options) rotation {
	w.t.Helper()
	from := w.rec.mark()
	res, err := w.eng.Rotate(w.ctx, w.cred(), opts)
	return rotation{res: res, err: err, requests: w.rec.since(from)}
}

// envURL is DATABASE_URL as the .env file holds it now.
func (w *world) envURL() secret.String {
	w.t.Helper()
	v, ok := w.dotenvValue()
	require.True(w.t, ok, "the .env file has no DATABASE_URL")
	return secret.New(v)
}

func (w *world) dotenvValue() (string, bool) {
	m, err := godotenv.Read(w.envFile)
	if err != nil {
		return "", false
	}
	v, ok := m["DATABASE_URL"]
	return v, ok
}

// values is what every destination holds now, by target name.
func (w *world) values() map[string]secret.String {
	out := map[string]secret.String{}
	if v, ok := w.dotenvValue(); ok {
		out["env"] = secret.New(v)
	}
	for _, f := range w.fakes {
		if v, ok := f.value(); ok {
			out[f.name] = secret.New(v)
		}
	}
	return out
}

// requireAllHold checks that every destination holds want.
func (w *world) requireAllHold(want secret.String) {
	w.t.Helper()
	got := w.values()
	for _, name := range append([]string{"env"}, httpTargets...) {
		v, ok := got[name]
		require.True(w.t, ok, "%s holds no DATABASE_URL", name)
		require.True(w.t, v.Equal(want), "%s holds a different DATABASE_URL than expected", name)
	}
}

// requireLogin logs in with a connection string exactly as a consumer
// would; the strings rotor publishes carry sslmode=require and
// channel_binding=require, which is checked first.
func (w *world) requireLogin(url secret.String, what string) {
	w.t.Helper()
	require.True(w.t, strings.Contains(url.Reveal(), "sslmode=require"), "%s: the published URL must ask for TLS", what)
	require.True(w.t, strings.Contains(url.Reveal(), "channel_binding=require"), "%s: the published URL must ask for channel binding", what)
	require.NoError(w.t, pgtest.CanLogin(w.ctx, url), "%s must log in", what)
}

func (w *world) requireNoLogin(url secret.String, what string) {
	w.t.Helper()
	err := pgtest.CanLogin(w.ctx, url)
	require.Error(w.t, err, "%s must no longer log in", what)
	require.Contains(w.t, err.Error(), "password authentication failed")
}

// reloadCounts is each fake's reload count.
func (w *world) reloadCounts() map[string]int {
	out := map[string]int{}
	for _, f := range w.fakes {
		out[f.name] = f.reloads()
	}
	return out
}

// writeCounts is each fake's write count.
func (w *world) writeCounts() map[string]int {
	out := map[string]int{}
	for _, f := range w.fakes {
		out[f.name] = f.writes()
	}
	return out
}

func targetResult(t *testing.T, res *engine.Result, name string) engine.TargetResult {
	t.Helper()
	for _, tr := range res.Targets {
		if tr.Name == name {
			return tr
		}
	}
	require.FailNow(t, "target missing from the result", "target %s", name)
	return engine.TargetResult{}
}

func stepResult(res *engine.Result, name string) (engine.StepResult, bool) {
	for _, s := range res.Steps {
		if s.Name == name {
			return s, true
		}
	}
	return engine.StepResult{}, false
}

// requireNoSecret fails if text contains s, without printing either.
func requireNoSecret(t *testing.T, text string, s secret.String, what string) {
	t.Helper()
	require.False(t, !s.IsZero() && strings.Contains(text, s.Reveal()), "%s contains a secret", what)
}

// --- the six fakes ----------------------------------------------------

const (
	renderService = "srv-rotor-api"
	flyMachine    = "148e21ea7d5d89"
)

func (w *world) startFakes() {
	t := w.t
	w.vercel = vercelfake.New(t, vercelfake.Options{Now: targetClock})
	w.vercel.AddDeployment("dpl_prod1", "production", "READY")
	w.render = renderfake.New(t, renderfake.Options{Now: targetClock})
	w.render.AddService(renderService, "rotor-api")
	w.fly = flyfake.New(t, flyfake.Options{Now: targetClock})
	w.fly.AddMachine(flyMachine, "ams", "started", json.RawMessage(`{"image":"registry.fly.io/rotor-app:v1","guest":{"cpus":1}}`))
	w.railway = railwayfake.New(t)
	w.github = githubfake.New(t)
	w.github.SetNow(targetClock)
	w.gitlab = gitlabfake.New(t)

	vercel := w.vercel
	render := w.render
	fly := w.fly
	railway := w.railway
	github := w.github
	gitlab := w.gitlab
	w.fakes = []*fake{
		{
			name: "vercel", typ: "vercel", tokenEnv: "VERCEL_TOKEN", token: vercel.Token(), readable: true, url: vercel.URL,
			yaml: func(u string) string {
				return fmt.Sprintf("        project: %s\n        redeploy: true\n        token: ${VERCEL_TOKEN}\n        api_url: %s\n", vercel.ProjectID(), u)
			},
			value: func() (string, bool) {
				e, ok := vercel.Env("DATABASE_URL", "production")
				return e.Value, ok
			},
			writes: func() int {
				n := 0
				for _, r := range vercel.Writes() {
					if strings.HasSuffix(r.Path, "/env") {
						n++
					}
				}
				return n
			},
			reloads: func() int {
				n := 0
				for _, d := range vercel.Deployments() {
					if d.RedeployOf != "" {
						n++
					}
				}
				return n
			},
			seenByReload: func() (string, bool) {
				ds := vercel.Deployments()
				if len(ds) == 0 || ds[len(ds)-1].RedeployOf == "" {
					return "", false
				}
				v, ok := ds[len(ds)-1].Env["DATABASE_URL"]
				return v, ok
			},
			classify: func(method, path string, _ gqlOp) kind {
				switch {
				case method == http.MethodGet:
					return kindRead
				case method == http.MethodPost && strings.HasSuffix(path, "/env"):
					return kindWrite
				case method == http.MethodPost && path == "/v13/deployments":
					return kindReload
				}
				return kindOtherMutation
			},
			failNext: vercel.FailNext,
			rateLimit: func(ra time.Duration) func() {
				vercel.RateLimit(0, ra)
				return vercel.NoRateLimit
			},
			delay: vercel.SetDelay,
		},
		{
			name: "render", typ: "render", tokenEnv: "RENDER_API_KEY", token: render.Token(), readable: true, url: render.URL,
			yaml: func(u string) string {
				return fmt.Sprintf("        service_id: %s\n        deploy: true\n        token: ${RENDER_API_KEY}\n        api_url: %s\n", renderService, u)
			},
			value: func() (string, bool) { return render.Var(renderService, "DATABASE_URL") },
			writes: func() int {
				n := 0
				for _, r := range render.Writes() {
					if r.Method == http.MethodPut {
						n++
					}
				}
				return n
			},
			reloads: func() int { return len(render.Deploys(renderService)) },
			seenByReload: func() (string, bool) {
				ds := render.Deploys(renderService)
				if len(ds) == 0 {
					return "", false
				}
				v, ok := ds[len(ds)-1].Env["DATABASE_URL"]
				return v, ok
			},
			classify: func(method, path string, _ gqlOp) kind {
				switch {
				case method == http.MethodGet:
					return kindRead
				case method == http.MethodPut && strings.Contains(path, "/env-vars/"):
					return kindWrite
				case method == http.MethodPost && strings.HasSuffix(path, "/deploys"):
					return kindReload
				}
				return kindOtherMutation
			},
			failNext: render.FailNext,
			rateLimit: func(ra time.Duration) func() {
				render.RateLimit(0, ra)
				return render.NoRateLimit
			},
			delay: render.SetDelay,
		},
		{
			name: "fly", typ: "fly", tokenEnv: "FLY_API_TOKEN", token: fly.Token(), url: fly.URL,
			yaml: func(u string) string {
				return fmt.Sprintf("        app: %s\n        deploy: true\n        token: ${FLY_API_TOKEN}\n        api_url: %s\n", fly.App(), u)
			},
			value: func() (string, bool) {
				s, ok := fly.Secret("DATABASE_URL")
				return s.Value, ok
			},
			writes: func() int {
				n := 0
				for _, r := range fly.Writes() {
					if strings.HasSuffix(r.Path, "/secrets") {
						n++
					}
				}
				return n
			},
			reloads: func() int {
				n := 0
				for _, m := range fly.Machines() {
					n += m.Updates
				}
				return n
			},
			seenByReload: func() (string, bool) {
				for _, m := range fly.Machines() {
					v, ok := m.Env["DATABASE_URL"]
					return v, ok
				}
				return "", false
			},
			classify: func(method, path string, _ gqlOp) kind {
				switch {
				case method == http.MethodGet:
					return kindRead
				case method == http.MethodPost && strings.HasSuffix(path, "/secrets"):
					return kindWrite
				case method == http.MethodPost && strings.Contains(path, "/machines/"):
					return kindReload
				}
				return kindOtherMutation
			},
			failNext: fly.FailNext,
			rateLimit: func(ra time.Duration) func() {
				fly.RateLimit(0, ra)
				return fly.NoRateLimit
			},
			delay: fly.SetDelay,
		},
		{
			name: "railway", typ: "railway", tokenEnv: "RAILWAY_TOKEN", token: railwayfake.ProjectToken, readable: true, url: railway.URL,
			yaml: func(u string) string {
				return fmt.Sprintf("        token: ${RAILWAY_TOKEN}\n        project_id: %s\n        environment_id: %s\n        service_id: %s\n        redeploy: true\n        api_url: %s\n",
					railwayfake.ProjectID, railwayfake.EnvironmentID, railwayfake.ServiceID, u)
			},
			value: func() (string, bool) {
				return railway.Get(railwayfake.EnvironmentID, railwayfake.ServiceID, "DATABASE_URL")
			},
			writes: func() int {
				n := 0
				for _, op := range railway.Operations() {
					if op == "variableCollectionUpsert" {
						n++
					}
				}
				return n
			},
			reloads: func() int {
				n := 0
				for _, d := range railway.Deploys() {
					if d.Reason == "redeploy" {
						n++
					}
				}
				return n
			},
			classify: func(_, _ string, op gqlOp) kind {
				switch {
				case op.field == "variableCollectionUpsert":
					return kindWrite
				case op.field == "serviceInstanceRedeploy" || op.field == "serviceInstanceDeployV2":
					return kindReload
				case op.mutation:
					return kindOtherMutation
				}
				return kindRead
			},
			failNext: railway.FailNext,
			rateLimit: func(ra time.Duration) func() {
				railway.Limit(0, ra)
				return func() { railway.Limit(-1, 0) }
			},
			delay: railway.Delay,
		},
		{
			name: "github", typ: "github-actions", tokenEnv: "GITHUB_TOKEN", token: githubfake.Token, url: github.URL,
			yaml: func(u string) string {
				return fmt.Sprintf("        token: ${GITHUB_TOKEN}\n        repo: %s/%s\n        dispatch: {workflow: %s, ref: %s}\n        api_url: %s\n",
					githubfake.Owner, githubfake.Repo, githubfake.Workflow, githubfake.Ref, u)
			},
			value: func() (string, bool) {
				s, ok := github.Secret(githubfake.RepoScope, "DATABASE_URL")
				return s.Plaintext, ok
			},
			writes: func() int {
				n := 0
				for _, c := range github.Calls() {
					if c.Method == http.MethodPut {
						n++
					}
				}
				return n
			},
			reloads: func() int { return len(github.Dispatches()) },
			classify: func(method, path string, _ gqlOp) kind {
				switch {
				case method == http.MethodGet:
					return kindRead
				case method == http.MethodPut && strings.Contains(path, "/secrets/"):
					return kindWrite
				case method == http.MethodPost && strings.HasSuffix(path, "/dispatches"):
					return kindReload
				}
				return kindOtherMutation
			},
			failNext: github.FailNext,
			rateLimit: func(ra time.Duration) func() {
				github.Limit(0, ra)
				return func() { github.Limit(-1, 0) }
			},
			delay: github.Delay,
		},
		{
			name: "gitlab", typ: "gitlab", tokenEnv: "GITLAB_TOKEN", token: gitlabfake.Token, readable: true, url: gitlab.URL,
			yaml: func(u string) string {
				return fmt.Sprintf("        token: ${GITLAB_TOKEN}\n        project: \"%d\"\n        pipeline: {ref: %s}\n        api_url: %s\n", gitlabfake.ProjectID, gitlabfake.Ref, u)
			},
			value: func() (string, bool) {
				v, ok := gitlab.Variable(gitlabfake.Project, "DATABASE_URL", "*")
				return v.Value, ok
			},
			writes: func() int {
				n := 0
				for _, c := range gitlab.Calls() {
					if c.Method != http.MethodGet && strings.Contains(c.Path, "/variables") {
						n++
					}
				}
				return n
			},
			reloads: func() int { return len(gitlab.Pipelines()) },
			classify: func(method, path string, _ gqlOp) kind {
				switch {
				case method == http.MethodGet:
					return kindRead
				case (method == http.MethodPut || method == http.MethodPost) && strings.Contains(path, "/variables"):
					return kindWrite
				case method == http.MethodPost && strings.HasSuffix(path, "/pipeline"):
					return kindReload
				}
				return kindOtherMutation
			},
			failNext: gitlab.FailNext,
			rateLimit: func(ra time.Duration) func() {
				gitlab.Limit(0, ra)
				return func() { gitlab.Limit(-1, 0) }
			},
			delay: gitlab.Delay,
		},
	}
	for _, f := range w.fakes {
		w.byName[f.name] = f
	}
}

// --- the HTTP log -----------------------------------------------------

// httpEvent is one request a target sent, stamped with a sequence number
// shared by every fake when it was sent and when its answer arrived, so
// order across fakes is known without reading any clock.
type httpEvent struct {
	target       string
	method, path string
	op           gqlOp
	kind         kind
	status       int
	sent, answer int64
	// seen is, for a reload, what every destination held when it was
	// sent.
	seen map[string]secret.String
	// diverted: a network fault took the request instead of the fake.
	diverted bool
}

// recorder is the http.RoundTripper every target's client goes through.
type recorder struct {
	w     *world
	base  http.RoundTripper
	seq   atomic.Int64
	hosts map[string]*fake

	mu      sync.Mutex
	events  []httpEvent
	diverts map[string]*divert
}

func newRecorder(w *world) *recorder {
	r := &recorder{w: w, base: http.DefaultTransport, hosts: map[string]*fake{}}
	for _, f := range w.fakes {
		r.hosts[hostOf(f.url)] = f
	}
	return r
}

func (r *recorder) client() *http.Client { return &http.Client{Transport: r} }

func hostOf(u string) string {
	u = strings.TrimPrefix(strings.TrimPrefix(u, "http://"), "https://")
	host, _, _ := strings.Cut(u, "/")
	return host
}

var firstField = regexp.MustCompile(`^\s*(query|mutation)?\b[^{]*\{\s*([A-Za-z_][A-Za-z0-9_]*)`)

// operation reads the GraphQL operation from a copy of the body; the body
// holds values, so nothing of it is kept.
func operation(req *http.Request) gqlOp {
	if req.GetBody == nil {
		return gqlOp{}
	}
	body, err := req.GetBody()
	if err != nil {
		return gqlOp{}
	}
	defer body.Close()
	var doc struct {
		Query string `json:"query"`
	}
	if json.NewDecoder(body).Decode(&doc) != nil {
		return gqlOp{}
	}
	m := firstField.FindStringSubmatch(doc.Query)
	if m == nil {
		return gqlOp{}
	}
	return gqlOp{field: m[2], mutation: m[1] == "mutation"}
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	f := r.hosts[req.URL.Host]
	ev := httpEvent{method: req.Method, path: req.URL.Path}
	if f != nil {
		ev.target = f.name
		if f.name == "railway" {
			ev.op = operation(req)
		}
		ev.kind = f.classify(req.Method, req.URL.Path, ev.op)
	}
	if ev.kind == kindReload {
		ev.seen = r.w.values()
	}
	if addr, ok := r.takeDivert(ev.target, ev.kind); ok {
		// A network fault (see netfaults_test.go): the request goes to a
		// real socket that misbehaves instead of to the fake.
		req = req.Clone(req.Context())
		req.URL.Host, req.Host = addr, addr
		ev.diverted = true
	}
	ev.sent = r.seq.Add(1)
	resp, err := r.base.RoundTrip(req)
	ev.answer = r.seq.Add(1)
	if resp != nil {
		ev.status = resp.StatusCode
	}
	r.mu.Lock()
	r.events = append(r.events, ev)
	r.mu.Unlock()
	return resp, err
}

func (r *recorder) mark() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.events)
}

func (r *recorder) since(mark int) []httpEvent {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.events[mark:])
}

func count(evs []httpEvent, target string, k kind) int {
	n := 0
	for _, e := range evs {
		if e.target == target && e.kind == k && !e.diverted {
			n++
		}
	}
	return n
}

// requireReloadsAfterWrites checks, for one rotation's requests, that
// every target reloaded exactly once, that no reload was sent before the
// answer to every write had arrived, that each reload was sent while every
// destination (the .env file included) already held want, and that nothing
// but writes and reloads changed anything.
func (w *world) requireReloadsAfterWrites(evs []httpEvent, want secret.String) {
	t := w.t
	t.Helper()
	var lastWrite, firstReload int64 = 0, 1 << 62
	for _, e := range evs {
		require.NotEqual(t, kindOtherMutation, e.kind, "%s: unexpected %s %s", e.target, e.method, e.path)
		switch e.kind {
		case kindWrite:
			lastWrite = max(lastWrite, e.answer)
		case kindReload:
			firstReload = min(firstReload, e.sent)
			for _, name := range append([]string{"env"}, httpTargets...) {
				v, ok := e.seen[name]
				require.True(t, ok && v.Equal(want), "when %s reloaded, %s did not hold the new DATABASE_URL yet", e.target, name)
			}
		}
	}
	for _, name := range httpTargets {
		require.Equal(t, 1, count(evs, name, kindReload), "%s must reload exactly once per rotation", name)
	}
	require.Greater(t, firstReload, lastWrite, "a reload was sent before every write had been answered")
}
