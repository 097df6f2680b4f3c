// Package flyfake is an httptest contract fake of the parts of the Fly.io
// Machines API the fly target uses. It follows
// /work/shared/reference/targets-api.md §3 "Fly.io":
//
//   - auth: Authorization: Bearer <token>, or the token itself when it is a
//     macaroon (`FlyV1 …`), as fly-go sends it; anything else gets 401
//     {"error":"…"} (the Machines API error shape);
//   - POST /v1/apps/{app}/secrets {"values":{name: value|null}} sets (null
//     deletes) in one new version and answers {"secrets":[…],"version":N};
//   - GET /v1/apps/{app}/secrets[?version=] answers names, digests and
//     timestamps only: values are write-only ("API servers can only
//     encrypt");
//   - setting secrets restarts nothing; GET /v1/apps/{app}/machines, GET and
//     POST /v1/apps/{app}/machines/{id} with {"config","region",
//     "min_secrets_version","skip_launch"} update a machine, which then runs
//     with the secrets of that version, as `fly secrets deploy` relies on;
//   - 429 for back-off; Retry-After only when the knob sets one (no headers
//     are documented).
//
// The state (plaintext values, machines and the secrets each runs with) is
// inspectable; knobs inject rate limits, 5xx answers that echo the request
// body, and delays.
package flyfake

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rotorhq/rotor/internal/target/webapi/fakefaults"
)

// Options configure a fake. Zero values get usable defaults.
type Options struct {
	// Token is the accepted token. Default "fly-test-token". A token that
	// starts with "FlyV1 " must arrive as the whole header value.
	Token string
	// App is the one app's name. Default "rotor-app".
	App string
	// Now is the fake's clock (secret timestamps). Default time.Now.
	Now func() time.Time
}

// Secret is one app secret with its plaintext value.
type Secret struct {
	Value     string
	Digest    string
	CreatedAt time.Time
	UpdatedAt time.Time
}

// Machine is one machine of the app.
type Machine struct {
	ID     string
	Region string
	State  string
	Config json.RawMessage
	// Updates counts the updates the machine received.
	Updates int
	// MinSecretsVersion is what the last update asked for.
	MinSecretsVersion uint64
	// SkipLaunch is what the last update asked for.
	SkipLaunch bool
	// Env is the secrets the machine runs with since its last update.
	Env map[string]string
}

// Request is one request the fake received.
type Request struct {
	Method string
	Path   string
	Query  string
}

// Server is a running fake.
type Server struct {
	URL  string
	opts Options

	fakefaults.Faults

	mu       sync.Mutex
	secrets  map[string]*Secret
	version  uint64
	machines []*Machine
	requests []Request
}

// New starts a fake that is closed when t ends.
func New(t testing.TB, opts Options) *Server {
	t.Helper()
	if opts.Token == "" {
		opts.Token = "fly-test-token"
	}
	if opts.App == "" {
		opts.App = "rotor-app"
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	s := &Server{opts: opts, secrets: map[string]*Secret{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/apps/{app}/secrets", s.listSecrets)
	mux.HandleFunc("POST /v1/apps/{app}/secrets", s.updateSecrets)
	mux.HandleFunc("GET /v1/apps/{app}/machines", s.listMachines)
	mux.HandleFunc("GET /v1/apps/{app}/machines/{id}", s.getMachine)
	mux.HandleFunc("POST /v1/apps/{app}/machines/{id}", s.updateMachine)
	srv := httptest.NewServer(s.middleware(mux))
	t.Cleanup(srv.Close)
	s.URL = srv.URL
	return s
}

// Token returns the token the fake accepts.
func (s *Server) Token() string { return s.opts.Token }

// App returns the app's name.
func (s *Server) App() string { return s.opts.App }

// AddMachine adds a machine in state (started, stopped, suspended, …).
func (s *Server) AddMachine(id, region, state string, config json.RawMessage) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.machines = append(s.machines, &Machine{ID: id, Region: region, State: state, Config: config})
}

// Machines returns the app's machines.
func (s *Server) Machines() []Machine {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Machine, len(s.machines))
	for i, m := range s.machines {
		out[i] = *m
	}
	return out
}

// SetSecret sets a secret as `fly secrets set` would, in a new version.
func (s *Server) SetSecret(name, value string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.version++
	s.set(name, value)
}

// Secret returns a secret with its plaintext value.
func (s *Server) Secret(name string) (Secret, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sec, ok := s.secrets[name]
	if !ok {
		return Secret{}, false
	}
	return *sec, true
}

// Version returns the current secrets version.
func (s *Server) Version() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.version
}

// Requests returns every request received, in order.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.requests)
}

// Writes returns the requests that were not reads.
func (s *Server) Writes() []Request {
	var out []Request
	for _, r := range s.Requests() {
		if r.Method != http.MethodGet {
			out = append(out, r)
		}
	}
	return out
}

func (s *Server) set(name, value string) {
	now := s.opts.Now().UTC()
	sum := sha256.Sum256([]byte("flyfake digest\x00" + value))
	if sec, ok := s.secrets[name]; ok {
		sec.Value, sec.Digest, sec.UpdatedAt = value, hex.EncodeToString(sum[:8]), now
		return
	}
	s.secrets[name] = &Secret{Value: value, Digest: hex.EncodeToString(sum[:8]), CreatedAt: now, UpdatedAt: now}
}

func (s *Server) middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(strings.NewReader(string(body)))
		s.mu.Lock()
		s.requests = append(s.requests, Request{Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery})
		s.mu.Unlock()
		if !s.Delay(r) {
			return
		}
		want := "Bearer " + s.opts.Token
		if strings.HasPrefix(s.opts.Token, "FlyV1 ") {
			want = s.opts.Token
		}
		if r.Header.Get("Authorization") != want {
			writeError(w, http.StatusUnauthorized, "unauthorized")
			return
		}
		v := s.Next()
		limited, failing, status := v.Limited, v.Fail, v.Status
		if limited {
			if v.Wait > 0 {
				w.Header().Set("Retry-After", strconv.Itoa(int(v.Wait/time.Second)))
			}
			writeError(w, http.StatusTooManyRequests, "rate limit exceeded")
			return
		}
		if failing {
			writeError(w, status, "internal error handling "+string(body))
			return
		}
		next.ServeHTTP(w, r)
	})
}

type secretJSON struct {
	Name      string `json:"name"`
	Digest    string `json:"digest"`
	CreatedAt string `json:"created_at"`
	UpdatedAt string `json:"updated_at"`
}

func (s *Server) secretJSON(name string) secretJSON {
	sec := s.secrets[name]
	return secretJSON{Name: name, Digest: sec.Digest, CreatedAt: sec.CreatedAt.Format(time.RFC3339), UpdatedAt: sec.UpdatedAt.Format(time.RFC3339)}
}

func (s *Server) listSecrets(w http.ResponseWriter, r *http.Request) {
	if !s.appOK(w, r) {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if v := r.URL.Query().Get("version"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			writeError(w, http.StatusBadRequest, "version must be a number")
			return
		}
		if n > s.version {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("secrets version %d does not exist yet", n))
			return
		}
	}
	names := make([]string, 0, len(s.secrets))
	for n := range s.secrets {
		names = append(names, n)
	}
	sort.Strings(names)
	out := make([]secretJSON, len(names))
	for i, n := range names {
		out[i] = s.secretJSON(n)
	}
	writeJSON(w, http.StatusOK, map[string]any{"secrets": out})
}

func (s *Server) updateSecrets(w http.ResponseWriter, r *http.Request) {
	if !s.appOK(w, r) {
		return
	}
	var body struct {
		Values map[string]*string `json:"values"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil || len(body.Values) == 0 {
		writeError(w, http.StatusBadRequest, "values must name at least one secret")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.version++
	names := make([]string, 0, len(body.Values))
	for name, v := range body.Values {
		if name == "" {
			writeError(w, http.StatusBadRequest, "secret names must not be empty")
			return
		}
		if v == nil {
			delete(s.secrets, name)
			continue
		}
		s.set(name, *v)
		names = append(names, name)
	}
	sort.Strings(names)
	out := make([]secretJSON, len(names))
	for i, n := range names {
		out[i] = s.secretJSON(n)
	}
	writeJSON(w, http.StatusOK, map[string]any{"secrets": out, "version": s.version})
}

type machineJSON struct {
	ID         string          `json:"id"`
	Name       string          `json:"name"`
	State      string          `json:"state"`
	Region     string          `json:"region"`
	InstanceID string          `json:"instance_id"`
	Config     json.RawMessage `json:"config"`
}

func toJSON(m *Machine) machineJSON {
	return machineJSON{ID: m.ID, Name: "machine-" + m.ID, State: m.State, Region: m.Region, InstanceID: fmt.Sprintf("%s-%d", m.ID, m.Updates), Config: m.Config}
}

func (s *Server) listMachines(w http.ResponseWriter, r *http.Request) {
	if !s.appOK(w, r) {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]machineJSON, len(s.machines))
	for i, m := range s.machines {
		out[i] = toJSON(m)
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) machine(w http.ResponseWriter, r *http.Request) *Machine {
	for _, m := range s.machines {
		if m.ID == r.PathValue("id") {
			return m
		}
	}
	writeError(w, http.StatusNotFound, "machine not found")
	return nil
}

func (s *Server) getMachine(w http.ResponseWriter, r *http.Request) {
	if !s.appOK(w, r) {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if m := s.machine(w, r); m != nil {
		writeJSON(w, http.StatusOK, toJSON(m))
	}
}

func (s *Server) updateMachine(w http.ResponseWriter, r *http.Request) {
	if !s.appOK(w, r) {
		return
	}
	var body struct {
		Config            json.RawMessage `json:"config"`
		Region            string          `json:"region"`
		MinSecretsVersion uint64          `json:"min_secrets_version"`
		SkipLaunch        bool            `json:"skip_launch"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil || len(body.Config) == 0 || string(body.Config) == "null" {
		writeError(w, http.StatusBadRequest, "config is required")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.machine(w, r)
	if m == nil {
		return
	}
	if body.Region != "" && body.Region != m.Region {
		writeError(w, http.StatusBadRequest, "a machine cannot change region in an update")
		return
	}
	// The real API waits until the secrets version is available; here
	// every version that exists is, so a later one is a client bug.
	if body.MinSecretsVersion > s.version {
		writeError(w, http.StatusPreconditionFailed, fmt.Sprintf("min_secrets_version %d is not yet available", body.MinSecretsVersion))
		return
	}
	m.Config, m.MinSecretsVersion, m.SkipLaunch = body.Config, body.MinSecretsVersion, body.SkipLaunch
	m.Updates++
	m.Env = map[string]string{}
	for n, sec := range s.secrets {
		m.Env[n] = sec.Value
	}
	if !body.SkipLaunch {
		m.State = "started"
	}
	writeJSON(w, http.StatusOK, toJSON(m))
}

func (s *Server) appOK(w http.ResponseWriter, r *http.Request) bool {
	if r.PathValue("app") == s.opts.App {
		return true
	}
	writeError(w, http.StatusNotFound, "app not found")
	return false
}

func writeError(w http.ResponseWriter, status int, message string) {
	writeJSON(w, status, map[string]string{"error": message})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
