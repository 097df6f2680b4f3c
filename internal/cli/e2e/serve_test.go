//go:build unix

package e2e_test

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/rotorhq/rotor/internal/pgtest"
	"github.com/rotorhq/rotor/internal/secret"
	"github.com/rotorhq/rotor/internal/store"
)

// server is one `rotor serve` process of a world.
type server struct {
	w    *world
	p    *proc
	port int
	base string
	args []string
	env  []string
}

// apiTokens are the tokens a world's servers accept, by scope.
type apiTokens struct{ admin, read string }

func newTokens(w *world) apiTokens {
	tk := apiTokens{admin: "adm" + rand.Text(), read: "rd" + rand.Text()}
	w.learn(secret.New(tk.admin))
	w.learn(secret.New(tk.read))
	w.env = append(w.env, "ROTOR_API_TOKENS=ops:admin:"+tk.admin+",viewer:read:"+tk.read)
	return tk
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// serve starts `rotor serve` on a free port and waits until /healthz
// answers.
func (w *world) serve(t *testing.T, extra []string, args ...string) *server {
	t.Helper()
	s := &server{w: w, port: freePort(t), env: extra}
	s.base = fmt.Sprintf("http://127.0.0.1:%d", s.port)
	s.args = append([]string{"serve", "--listen", fmt.Sprintf("127.0.0.1:%d", s.port)}, args...)
	s.start(t)
	t.Cleanup(func() {
		if !s.p.exited() {
			s.p.kill()
			w.finish(s.p)
		}
	})
	return s
}

func (s *server) start(t *testing.T) {
	t.Helper()
	s.p = s.w.start(t, s.env, s.args...)
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(s.base + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if s.p.exited() {
			r := s.w.finish(s.p)
			t.Fatalf("rotor serve exited %d before answering:\n%s", r.code, s.w.scrub(r.output()))
		}
		require.True(t, time.Now().Before(deadline), "rotor serve did not answer /healthz in 60s")
		time.Sleep(20 * time.Millisecond)
	}
}

// do calls the server; it returns the status and the body.
func (s *server) do(t *testing.T, method, path, token string, body any, header ...string) (int, []byte) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		require.NoError(t, err)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, s.base+path, rd)
	require.NoError(t, err)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, b
}

type apiJob struct {
	ID         int64    `json:"id"`
	Credential string   `json:"credential"`
	State      string   `json:"state"`
	RotationID int64    `json:"rotation_id"`
	Duplicate  bool     `json:"duplicate"`
	Errors     []string `json:"errors"`
}

// trigger asks for a rotation through the API.
func (s *server) trigger(t *testing.T, token, cred, key string) apiJob {
	t.Helper()
	code, b := s.do(t, "POST", "/api/v1/credentials/"+cred+"/rotations", token, map[string]any{"reason": "test"}, "Idempotency-Key", key)
	require.Equal(t, http.StatusAccepted, code, "%s", b)
	var j apiJob
	require.NoError(t, json.Unmarshal(b, &j))
	return j
}

// job reads a job through the API.
func (s *server) job(t *testing.T, token string, id int64) apiJob {
	t.Helper()
	code, b := s.do(t, "GET", fmt.Sprintf("/api/v1/jobs/%d", id), token, nil)
	require.Equal(t, http.StatusOK, code, "%s", b)
	var j apiJob
	require.NoError(t, json.Unmarshal(b, &j))
	return j
}

func (s *server) waitJob(t *testing.T, token string, id int64) apiJob {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		j := s.job(t, token, id)
		switch j.State {
		case "completed", "cancelled", "discarded":
			return j
		}
		require.True(t, time.Now().Before(deadline), "job %d still %s after 2 minutes: %v", id, j.State, j.Errors)
		time.Sleep(50 * time.Millisecond)
	}
}

// stop sends SIGTERM and waits for the exit.
func (s *server) stop(t *testing.T) result {
	t.Helper()
	require.NoError(t, s.p.cmd.Process.Signal(syscall.SIGTERM))
	return s.w.finish(s.p)
}

// requireJSONLogs checks that every line serve wrote on stderr is one
// JSON object with a level and a message.
func requireJSONLogs(t *testing.T, stderr string) {
	t.Helper()
	sc := bufio.NewScanner(strings.NewReader(stderr))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	n := 0
	for sc.Scan() {
		var rec map[string]any
		require.NoError(t, json.Unmarshal(sc.Bytes(), &rec), "a log line that is not JSON: %q", sc.Text())
		require.Contains(t, rec, "level")
		require.Contains(t, rec, "msg")
		n++
	}
	require.Positive(t, n)
}

// TestServe runs `rotor serve` as a user would: health and readiness, a
// rotation through the API that ends with the .env logging in, metrics,
// the auth failures, a reload refused and one taken, and a clean stop.
func TestServe(t *testing.T) {
	t.Parallel()
	for _, kind := range []string{"sqlite", "postgres"} {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			w := newWorld(t, nil, credSpec{name: "app", strategy: "single"})
			if kind == "postgres" {
				sharedStore(t, w)
			}
			tk := newTokens(w)
			s := w.serve(t, nil, "--tick", "1h", "--watch-config", "100ms")

			code, body := s.do(t, "GET", "/readyz", "", nil)
			require.Equal(t, http.StatusOK, code, "%s", body)

			// Auth: no token, a wrong one, too small a scope.
			code, _ = s.do(t, "GET", "/api/v1/credentials", "", nil)
			require.Equal(t, http.StatusUnauthorized, code)
			code, _ = s.do(t, "GET", "/api/v1/credentials", "x"+tk.read, nil)
			require.Equal(t, http.StatusUnauthorized, code)
			code, _ = s.do(t, "POST", "/api/v1/credentials/app/rotations", tk.read, map[string]any{})
			require.Equal(t, http.StatusForbidden, code)

			j := s.trigger(t, tk.admin, "app", "first")
			again := s.trigger(t, tk.admin, "app", "first")
			require.Equal(t, j.ID, again.ID)
			require.True(t, again.Duplicate)
			done := s.waitJob(t, tk.read, j.ID)
			require.Equal(t, "completed", done.State, "%v", done.Errors)
			require.NotZero(t, done.RotationID)
			_, url := w.envConn(t, "app")
			require.NoError(t, pgtest.CanLogin(t.Context(), url), "the .env that serve wrote logs in")
			if kind == "sqlite" {
				w.requireSettled(t, "app", nil)
			}

			code, metrics := s.do(t, "GET", "/metrics", "", nil)
			require.Equal(t, http.StatusOK, code)
			require.Contains(t, string(metrics), "rotor_build_info")
			require.Regexp(t, `rotor_rotations_total\{credential="app",result="succeeded",strategy="single"\} 1`, string(metrics))

			// A broken config is refused and the old one kept; a good one
			// (a second credential) is taken without a restart.
			good, err := os.ReadFile(w.cfgPath)
			require.NoError(t, err)
			require.NoError(t, os.WriteFile(w.cfgPath, append(bytes.Clone(good), []byte("  nonsense: [\n")...), 0o600))
			require.NoError(t, s.p.cmd.Process.Signal(syscall.SIGHUP))
			time.Sleep(500 * time.Millisecond)
			code, body = s.do(t, "GET", "/api/v1/credentials/app", tk.read, nil)
			require.Equal(t, http.StatusOK, code, "the config in force is kept: %s", body)
			second := strings.Replace(string(good), "credentials:\n", "credentials:\n  extra:\n    strategy: single\n    role: nobody_here\n    targets:\n      - {name: env, type: dotenv, path: .env.extra, values: {DATABASE_URL: \"{{.URL}}\"}}\n", 1)
			require.NoError(t, os.WriteFile(w.cfgPath, []byte(second), 0o600))
			require.Eventually(t, func() bool {
				code, _ := s.do(t, "GET", "/api/v1/credentials/extra", tk.read, nil)
				return code == http.StatusOK
			}, 30*time.Second, 50*time.Millisecond, "the changed config file is picked up")

			r := s.stop(t)
			require.Equal(t, 0, r.code, "SIGTERM ends serve with 0:\n%s", w.scrub(r.output()))
			requireJSONLogs(t, r.stderr)
			require.Contains(t, r.stderr, "config reload refused")
			require.Contains(t, r.stderr, "config reloaded")
			w.requireNoLeaks(t, map[string][]byte{"the /metrics page": metrics})
		})
	}
}

// TestServeRefusesPlainHTTPToTheNetwork: a non-loopback address without
// TLS is refused before anything starts, with the fix named.
func TestServeRefusesPlainHTTPToTheNetwork(t *testing.T) {
	t.Parallel()
	w := newWorld(t, nil, credSpec{name: "app", strategy: "single"})
	port := freePort(t)
	r := w.rotor(t, nil, "serve", "--listen", fmt.Sprintf("0.0.0.0:%d", port))
	require.Equal(t, 2, r.code, r.output())
	require.Contains(t, r.stderr, "--insecure-listen")
	require.Contains(t, r.stderr, "--tls-cert")
	r = w.rotor(t, nil, "serve", "--tls-cert", "nope.crt")
	require.Equal(t, 2, r.code, r.output())
	require.Contains(t, r.stderr, "--tls-cert and --tls-key go together")
	r = w.rotor(t, []string{"ROTOR_API_TOKENS=ci:rotate:short"}, "serve")
	require.Equal(t, 2, r.code, r.output())
	require.Contains(t, r.stderr, "shorter than 24 characters")
	_, err := os.Stat(w.dir + "/.rotor/state.db")
	require.ErrorIs(t, err, os.ErrNotExist, "a refused serve creates no state")
}

// TestServeDrainsOnSIGTERM: SIGTERM in the middle of a rotation (a target
// that takes seconds) stops the job at its next journaled step and exits
// 0; the next replica to start resumes the rotation from the journal and
// finishes it, with the .env logging in.
func TestServeDrainsOnSIGTERM(t *testing.T) {
	t.Parallel()
	w := newWorld(t, nil, credSpec{name: "app", strategy: "single"})
	st := sharedStore(t, w)
	tk := newTokens(w)
	cfg, err := os.ReadFile(w.cfgPath)
	require.NoError(t, err)
	slow := "    targets:\n      - {name: slow, type: exec, command: [sh, -c, 'sleep 3; cat > /dev/null'], stdin: dotenv, idempotent: true, values: {DATABASE_URL: \"{{.URL}}\"}}\n"
	require.NoError(t, os.WriteFile(w.cfgPath, bytes.Replace(cfg, []byte("    targets:\n"), []byte(slow), 1), 0o600))

	a := w.serve(t, nil, "--tick", "1h", "--shutdown-timeout", "500ms")
	j := a.trigger(t, tk.admin, "app", "drain-1")
	require.Eventually(t, func() bool {
		rs, err := st.ListRotations(t.Context(), store.ListRotationsParams{Credential: "app", Active: true})
		return err == nil && len(rs) == 1 && rs[0].Step == "publish"
	}, time.Minute, 20*time.Millisecond, "the rotation reaches publish")
	r := a.stop(t)
	require.Equal(t, 0, r.code, "SIGTERM mid-rotation still exits 0:\n%s", w.scrub(r.output()))
	require.Contains(t, r.stderr, "did not finish in time")
	active, err := st.ListRotations(t.Context(), store.ListRotationsParams{Credential: "app", Active: true})
	require.NoError(t, err)
	require.Len(t, active, 1, "the rotation is left for the journal to resume, not abandoned")

	b := w.serve(t, nil, "--tick", "1h")
	done := b.waitJob(t, tk.read, j.ID)
	require.Equal(t, "completed", done.State, "%v", done.Errors)
	require.Equal(t, active[0].ID, done.RotationID, "the same rotation, resumed")
	_, url := w.envConn(t, "app")
	require.NoError(t, pgtest.CanLogin(t.Context(), url))
	r = b.stop(t)
	require.Equal(t, 0, r.code)
}
