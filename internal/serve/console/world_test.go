package console_test

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/joho/godotenv"
	"github.com/stretchr/testify/require"

	"github.com/rotorhq/rotor/internal/engine"
	"github.com/rotorhq/rotor/internal/pgtest"
	pbuiltin "github.com/rotorhq/rotor/internal/provider/builtin"
	"github.com/rotorhq/rotor/internal/resolve"
	"github.com/rotorhq/rotor/internal/secret"
	"github.com/rotorhq/rotor/internal/serve/auth"
	"github.com/rotorhq/rotor/internal/serve/console"
	"github.com/rotorhq/rotor/internal/store/sqlite"
	tbuiltin "github.com/rotorhq/rotor/internal/target/builtin"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

const (
	readTok   = "read-token-0123456789abcdef"
	rotateTok = "rotate-token-0123456789abcdef"
	adminTok  = "admin-token-0123456789abcdef"
)

// world is the console over a real engine, a SQLite store and real
// PostgreSQL roles: "app" writes a dotenv file; "broken" writes one into a
// directory that does not exist, so its target fails.
type world struct {
	t       *testing.T
	srv     *httptest.Server
	b       *testBackend
	envFile string
	secrets []secret.String
	mu      sync.Mutex
	bodies  [][]byte
	logs    *syncBuffer
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

type worldOptions struct {
	async  bool
	secure bool
}

func newWorld(t *testing.T, o worldOptions) *world {
	cl := pgtest.Shared(t)
	db, adminURL := pgtest.NewDatabase(t)
	appRole, badRole := pgtest.UniqueName(t, "app"), pgtest.UniqueName(t, "bad")
	appPw, badPw := secret.New(rand.Text()), secret.New(rand.Text())
	pgtest.NewRole(t, cl, appRole, appPw)
	pgtest.NewRole(t, cl, badRole, badPw)
	dir := t.TempDir()
	envFile := filepath.Join(dir, ".env")
	cred := func(name, role, path string) string {
		return fmt.Sprintf(`  %s:
    provider:
      type: postgres
      admin_url: ${ADMIN_URL}
    connection:
      url: postgresql://%s:%d/%s?sslmode=disable
    strategy: single
    role: %q
    schedule:
      every: 30d
    targets:
      - name: env
        type: dotenv
        path: %q
        values:
          DATABASE_URL: "{{.URL}}"
`, name, cl.Host, cl.Port, db, role, path)
	}
	yaml := "version: 1\ncredentials:\n" + cred("app", appRole, envFile) + cred("broken", badRole, filepath.Join(dir, "missing-dir", ".env"))
	cfgPath := filepath.Join(dir, "rotor.yaml")
	require.NoError(t, os.WriteFile(cfgPath, []byte(yaml), 0o600))
	env := map[string]string{"ADMIN_URL": adminURL.Reveal()}
	cfg, err := resolve.Load(cfgPath, func(k string) (string, bool) { v, ok := env[k]; return v, ok }, resolve.Registry{
		Provider: pbuiltin.Lookup, Target: tbuiltin.Lookup, Now: time.Now, Getenv: func(string) string { return "" }})
	require.NoError(t, err)
	t.Cleanup(func() { cfg.Close() })
	st, err := sqlite.Open(t.Context(), filepath.Join(dir, "state.db"))
	require.NoError(t, err)
	t.Cleanup(func() { st.Close() })
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	sealer, err := secret.NewSealer(key)
	require.NoError(t, err)
	b := &testBackend{cfg: cfg, st: st, async: o.async}
	b.eng = &engine.Engine{Store: st, Sealer: sealer, Events: b.publish}
	t.Cleanup(b.wg.Wait)
	tokens, err := auth.Parse("viewer:read:" + readTok + ",ci:rotate:" + rotateTok + ",ops:admin:" + adminTok)
	require.NoError(t, err)
	logs := &syncBuffer{}
	srv := httptest.NewServer(console.New(console.Options{Backend: b, Tokens: tokens, Secure: o.secure,
		Logger: slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))}))
	t.Cleanup(srv.Close)
	return &world{t: t, srv: srv, b: b, envFile: envFile, logs: logs,
		secrets: []secret.String{appPw, badPw, adminURL, secret.New(readTok), secret.New(rotateTok), secret.New(adminTok)}}
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
	m, err := godotenv.Read(w.envFile)
	require.NoError(w.t, err)
	u := m["DATABASE_URL"]
	require.NotEmpty(w.t, u)
	w.secrets = append(w.secrets, secret.New(u))
	if p, err := url.Parse(u); err == nil {
		if pw, ok := p.User.Password(); ok {
			w.secrets = append(w.secrets, secret.New(pw))
		}
	}
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
