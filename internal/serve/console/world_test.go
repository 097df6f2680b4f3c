package console_test

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/rotorhq/rotor/internal/engine"
	"github.com/rotorhq/rotor/internal/pgtest"
	"github.com/rotorhq/rotor/internal/provider"
	"github.com/rotorhq/rotor/internal/secret"
	"github.com/rotorhq/rotor/internal/serve"
	"github.com/rotorhq/rotor/internal/serve/auth"
	"github.com/rotorhq/rotor/internal/serve/console"
	"github.com/rotorhq/rotor/internal/serve/servetest"
)

func TestMain(m *testing.M) {
	code := pgtest.Main(m)
	closeBrowser()
	os.Exit(code)
}

const (
	readTok   = "read-token-0123456789abcdef"
	rotateTok = "rotate-token-0123456789abcdef"
	adminTok  = "admin-token-0123456789abcdef"
)

// world is the console of a real `rotor serve` (the service on River over
// a SQLite store, servetest's roles on the shared PostgreSQL): "app"
// writes a .env file; "broken"'s .env path is a directory, so its target
// fails. The credentials are manual (no schedule), so nothing rotates
// unless a test asks.
type world struct {
	t       testing.TB
	sw      *servetest.World
	srv     *httptest.Server
	b       *serve.Service
	envFile string
	secrets []secret.String
	mu      sync.Mutex
	bodies  [][]byte
	logs    *syncBuffer
	// gate, while held, stops every rotation before its publish step
	// (a browser test watches it live, then lets it go).
	gate *gate
	// stop is the console's Done: closing it is the service stopping.
	stop chan struct{}
	// streams receives the URI of each event stream once it is open.
	streams chan string
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) Bytes() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return bytes.Clone(s.b.Bytes())
}

// gate holds rotations back before chosen steps until released.
type gate struct {
	mu     sync.Mutex
	closed map[string]chan struct{} // step -> closed when released
}

// hold stops every rotation before steps (default: publish) from now on.
func (g *gate) hold(steps ...string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(steps) == 0 {
		steps = []string{engine.StepPublish}
	}
	if g.closed == nil {
		g.closed = map[string]chan struct{}{}
	}
	for _, s := range steps {
		if g.closed[s] == nil {
			g.closed[s] = make(chan struct{})
		}
	}
}

// release lets rotations through steps (default: every held step).
func (g *gate) release(steps ...string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(steps) == 0 {
		for s := range g.closed {
			steps = append(steps, s)
		}
	}
	for _, s := range steps {
		if ch := g.closed[s]; ch != nil {
			close(ch)
			delete(g.closed, s)
		}
	}
}

func (g *gate) wait(step string) {
	g.mu.Lock()
	ch := g.closed[step]
	g.mu.Unlock()
	if ch != nil {
		<-ch
	}
}

type worldOptions struct {
	secure bool
	// dual adds "blue-green": a dual-strategy credential (two login roles
	// of one group) whose old role stays pending retirement for 10
	// minutes after a switch, so a test can see it and who is on it.
	dual bool
}

func newWorld(t testing.TB, o worldOptions) *world {
	sw := servetest.New(t, servetest.Options{Names: []string{"app", "broken"}, Every: "0s"})
	require.NoError(t, os.Mkdir(sw.EnvFile("broken"), 0o700))
	if o.dual {
		addDual(t, sw)
	}
	g := &gate{}
	sw.Engine.Hooks = &engine.Hooks{BeforeStep: func(step string) error {
		g.wait(step)
		return nil
	}}
	logs := &syncBuffer{}
	log := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	// One attempt: a failed rotation's job ends at once instead of waiting
	// for River's retries.
	svc := sw.Service(serve.Options{Workers: 2, MaxAttempts: 1, Logger: log}, true)
	t.Cleanup(func() { g.release() }) // before the service stops: cleanups run last first
	tokens, err := auth.Parse("viewer:read:" + readTok + ",ci:rotate:" + rotateTok + ",ops:admin:" + adminTok)
	require.NoError(t, err)
	stop := make(chan struct{})
	secrets := []secret.String{sw.AdminURL, secret.New(readTok), secret.New(rotateTok), secret.New(adminTok)}
	for _, pw := range sw.Passwords {
		secrets = append(secrets, pw)
	}
	w := &world{t: t, sw: sw, b: svc, envFile: sw.EnvFile("app"), logs: logs, gate: g, stop: stop, secrets: secrets,
		streams: make(chan string, 16)}
	w.srv = httptest.NewServer(w.record(console.New(console.Options{Backend: svc, Tokens: tokens, Secure: o.secure, Logger: log, Done: stop})))
	t.Cleanup(w.srv.Close)
	return w
}

// record keeps every response body the console sends, whoever asked (a
// test's client or the browser), for the leak scan, and says on streams
// when an event stream has opened (its first bytes are flushed).
func (w *world) record(h http.Handler) http.Handler {
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		rec := &recording{ResponseWriter: rw, w: w, stream: r.URL.Path == "/events", uri: r.URL.RequestURI()}
		h.ServeHTTP(rec, r)
		w.keep(rec.body.Bytes())
	})
}

type recording struct {
	http.ResponseWriter
	w      *world
	body   bytes.Buffer
	stream bool
	opened bool
	uri    string
}

func (rec *recording) Write(p []byte) (int, error) {
	rec.body.Write(p)
	return rec.ResponseWriter.Write(p)
}

func (rec *recording) Flush() {
	rec.ResponseWriter.(http.Flusher).Flush()
	if rec.stream && !rec.opened {
		rec.opened = true
		select {
		case rec.w.streams <- rec.uri:
		default:
		}
	}
}

var connURL = regexp.MustCompile(`(?m)^      url: (\S+)$`)

// addDual appends the dual credential "blue-green" to sw's config, on
// the same database as the others, and reloads it before the service
// takes it. Its roles and their group are created as setup-roles would.
func addDual(t testing.TB, sw *servetest.World) {
	t.Helper()
	cl := pgtest.Shared(t)
	y, err := os.ReadFile(sw.CfgPath)
	require.NoError(t, err)
	m := connURL.FindSubmatch(y)
	require.NotNil(t, m, "servetest's config has a connection url")
	roles, group := pgtest.NewDualRoles(t, cl, pgtest.UniqueName(t, "bg"))
	y = fmt.Appendf(y, `  blue-green:
    provider:
      type: postgres
      admin_url: ${ADMIN_URL}
    connection:
      url: %s
    strategy: dual
    roles: [%q, %q]
    group: %q
    drain:
      timeout: 1h
      poll: 50ms
      grace: 10m
      quiet: 300ms
      wait: 50ms
    schedule:
      every: 0s
    targets:
      - name: env
        type: dotenv
        path: %q
        values:
          DATABASE_URL: "{{.URL}}"
`, m[1], roles[0], roles[1], group, sw.EnvFile("blue-green"))
	require.NoError(t, os.WriteFile(sw.CfgPath, y, 0o600))
	sw.Config.Close()
	sw.Config = sw.Load()
	cr, err := sw.Config.Credential("blue-green")
	require.NoError(t, err)
	u, err := url.Parse(string(m[1]))
	require.NoError(t, err)
	_, err = cr.Provider.EnsureRoles(t.Context(), provider.EnsureRolesRequest{Group: group, Logins: roles, Database: strings.TrimPrefix(u.Path, "/")})
	require.NoError(t, err)
}

// done waits for River to finish the job (no timing assertion: the bound
// only turns a stuck job into a failure instead of a hung package).
func (w *world) done(id int64) *serve.Job {
	w.t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		j, err := w.b.Job(w.t.Context(), id)
		require.NoError(w.t, err)
		if j.FinishedAt != nil {
			return j
		}
		require.True(w.t, time.Now().Before(deadline), "job %d still %s after 2 minutes", id, j.State)
		time.Sleep(20 * time.Millisecond)
	}
}

// client is one browser-like visitor: a cookie jar, redirects not
// followed so each answer can be checked.
type client struct {
	w  *world
	hc *http.Client
}

func (w *world) client() *client {
	jar, _ := cookiejar.New(nil)
	return &client{w: w, hc: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

type response struct {
	status int
	header http.Header
	body   string
}

func (c *client) do(method, path string, form url.Values, header map[string]string) response {
	t := c.w.t
	t.Helper()
	var rd io.Reader
	if form != nil {
		rd = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, c.w.srv.URL+path, rd)
	require.NoError(t, err)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := c.hc.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	c.w.keep(data)
	return response{status: resp.StatusCode, header: resp.Header, body: string(data)}
}

func (c *client) get(path string) response { c.w.t.Helper(); return c.do("GET", path, nil, nil) }

func (c *client) post(path string, form url.Values) response {
	c.w.t.Helper()
	return c.do("POST", path, form, nil)
}

func (w *world) keep(b []byte) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.bodies = append(w.bodies, b)
}

// signIn signs c in with token and returns the session's CSRF token.
func (c *client) signIn(token string) string {
	t := c.w.t
	t.Helper()
	r := c.post("/signin", url.Values{"token": {token}, "next": {"/"}})
	require.Equal(t, http.StatusSeeOther, r.status, r.body)
	require.Equal(t, "/", r.header.Get("Location"))
	return c.csrf()
}

var csrfRE = regexp.MustCompile(`name="csrf" value="([0-9a-f]+)"`)

func (c *client) csrf() string {
	c.w.t.Helper()
	r := c.get("/")
	require.Equal(c.w.t, http.StatusOK, r.status, r.body)
	m := csrfRE.FindStringSubmatch(r.body)
	require.NotNil(c.w.t, m, "the page has a CSRF field")
	return m[1]
}

// currentURL is the connection string app's target holds now; it and its
// password join the leak scan.
func (w *world) currentURL() string {
	w.t.Helper()
	return w.currentURLOf(w.envFile)
}

// currentURLOf is currentURL for the target file path.
func (w *world) currentURLOf(path string) string {
	w.t.Helper()
	u, secrets := servetest.EnvURL(w.t, path)
	w.secrets = append(w.secrets, secrets...)
	return u
}

// scan fails the test if any response, or the console's log, carried a
// password or a token.
func (w *world) scan() {
	w.t.Helper()
	require.Empty(w.t, secret.Leaks(w.logs.Bytes(), w.secrets...), "the console's log leaks a secret")
	w.mu.Lock()
	defer w.mu.Unlock()
	require.NotEmpty(w.t, w.bodies)
	for _, b := range w.bodies {
		require.Empty(w.t, secret.Leaks(b, w.secrets...), "a response leaks a secret")
	}
}
