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
// Restarts and waiting are not in targets-api.md; they follow Fly.io's
// Machines API reference (superfly/docs machines/api/machines-resource
// .html.markerb, https://fly.io/docs/machines/api/machines-resource/) and
// its machine states page (machines/machine-states.html.markerb):
//
//   - an update without skip_launch restarts the machine as a new version:
//     a new instance_id, then "replacing" for the first half of its start
//     delay, "starting" for the second, then "started" (or "failed" with
//     FailStart). The delay is Options.StartDelay (0 by default: started
//     at once, so tests that do not care stay fast) or SetStartDelay's;
//     Never keeps it "starting" for good, like a wedged machine;
//     ExitOnStart makes it "stopped" instead, like a process that exits as
//     it boots once its restart policy gives up ("stopped: … exited,
//     either on its own or explicitly stopped", machine-states);
//   - the machine object carries state, instance_id and checks
//     [{"name","status"}], status "passing" or "critical" (fly-go's
//     ConsulCheckStatus also has "warning"). A check added with AddCheck is
//     "critical" while the machine is not started and for passAfter after
//     each start, then "passing"; with Never it does not pass again after
//     the next restart. Before any update the checks pass: the app was
//     healthy before the rotation;
//   - GET /v1/apps/{app}/machines/{id}/wait?state=&instance_id=&timeout=
//     blocks until the machine is in state (started, stopped or destroyed;
//     default started) and answers 200 {"ok":true}, or 408 once timeout
//     seconds (default 60) pass first, with the body clients have recorded
//     from Fly.io ({"error":"deadline_exceeded: machine failed to reach
//     desired state, started, currently created"}); 400 for another state,
//     a timeout that is not a positive integer, or state=stopped without
//     instance_id ("Required when waiting for Machine to be in stopped
//     state"). An
//     instance_id other than the current one is answered 400 too: that
//     version was replaced and can never reach the state, and the fake
//     would rather fail a client bug loudly than time out (the reference
//     does not say what Fly.io answers).
//
// Machine timing runs on the wall clock, not Options.Now: tests freeze Now
// for timestamps, and a frozen clock would never start a machine.
//
// The state (plaintext values, machines and the secrets each runs with) is
// inspectable, and UpdateLog records what every other machine looked like
// when each update arrived (to prove a reload is rolling); knobs inject
// rate limits, 5xx answers that echo the request body, and delays.
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
	// StartDelay is how long a machine an update launches takes to be
	// "started" again. Default 0: at once.
	StartDelay time.Duration
}

// Never is a delay that does not end: a machine that never starts, a check
// that never passes.
const Never time.Duration = -1

// Secret is one app secret with its plaintext value.
type Secret struct {
	Value     string
	Digest    string
	CreatedAt time.Time
	UpdatedAt time.Time
}

// Machine is one machine of the app, as it is at the moment it is looked at.
type Machine struct {
	ID     string
	Region string
	// State is the current state: "replacing"/"starting" while an update
	// restarts it, then "started" (or "failed").
	State      string
	InstanceID string
	Config     json.RawMessage
	// Updates counts the updates the machine received.
	Updates int
	// MinSecretsVersion is what the last update asked for.
	MinSecretsVersion uint64
	// SkipLaunch is what the last update asked for.
	SkipLaunch bool
	// Env is the secrets the machine runs with since its last update.
	Env map[string]string
	// Checks are the health checks' current results.
	Checks []Check
}

// Healthy reports a started machine whose checks all pass.
func (m Machine) Healthy() bool {
	if m.State != "started" {
		return false
	}
	for _, c := range m.Checks {
		if c.Status != "passing" {
			return false
		}
	}
	return true
}

// Check is one health check's result.
type Check struct {
	Name   string
	Status string
}

// Update is one machine update the fake accepted.
type Update struct {
	Machine    string
	SkipLaunch bool
	// Others is every other machine as it was when the update arrived.
	Others map[string]Machine
}

// machine is the fake's record; Machine is what it looks like at a moment.
type machine struct {
	id, region string
	// state is the persistent state; "started" after a launch means "on
	// its way", see at.
	state             string
	config            json.RawMessage
	updates           int
	minSecretsVersion uint64
	skipLaunch        bool
	env               map[string]string
	// launchedAt is when the last update launched it (zero: never).
	launchedAt time.Time
	// startDelay overrides Options.StartDelay when set.
	startDelay    time.Duration
	hasStartDelay bool
	failStart     bool
	exitOnStart   bool
	checks        []check
}

type check struct {
	name      string
	passAfter time.Duration
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

	mu        sync.Mutex
	secrets   map[string]*Secret
	version   uint64
	machines  []*machine
	requests  []Request
	updateLog []Update
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
	mux.HandleFunc("GET /v1/apps/{app}/machines/{id}/wait", s.waitMachine)
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
	s.machines = append(s.machines, &machine{id: id, region: region, state: state, config: config})
}

// SetStartDelay sets how long machine id takes to be started again after
// an update (Never: it stays "starting").
func (s *Server) SetStartDelay(id string, d time.Duration) {
	s.with(id, func(m *machine) { m.startDelay, m.hasStartDelay = d, true })
}

// FailStart makes machine id end up "failed" instead of "started" after
// its next updates.
func (s *Server) FailStart(id string) {
	s.with(id, func(m *machine) { m.failStart = true })
}

// ExitOnStart makes machine id end up "stopped" instead of "started"
// after its next updates: its process exits as it boots.
func (s *Server) ExitOnStart(id string) {
	s.with(id, func(m *machine) { m.exitOnStart = true })
}

// AddCheck gives machine id a health check that passes passAfter after
// each start (Never: not again after the next restart).
func (s *Server) AddCheck(id, name string, passAfter time.Duration) {
	s.with(id, func(m *machine) { m.checks = append(m.checks, check{name: name, passAfter: passAfter}) })
}

func (s *Server) with(id string, f func(*machine)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, m := range s.machines {
		if m.id == id {
			f(m)
			return
		}
	}
	panic("flyfake: no machine " + id)
}

// Machines returns the app's machines as they are now.
func (s *Server) Machines() []Machine {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	out := make([]Machine, len(s.machines))
	for i, m := range s.machines {
		out[i] = s.at(m, now)
	}
	return out
}

// UpdateLog returns the accepted machine updates, in order.
func (s *Server) UpdateLog() []Update {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.updateLog)
}

// at is machine m as it is at now.
func (s *Server) at(m *machine, now time.Time) Machine {
	out := Machine{
		ID: m.id, Region: m.region, State: m.state, InstanceID: fmt.Sprintf("%s-%d", m.id, m.updates), Config: m.config,
		Updates: m.updates, MinSecretsVersion: m.minSecretsVersion, SkipLaunch: m.skipLaunch, Env: m.env,
	}
	var startedFor time.Duration // how long it has been started
	launched := !m.launchedAt.IsZero() && m.state == "started"
	if launched {
		delay := s.opts.StartDelay
		if m.hasStartDelay {
			delay = m.startDelay
		}
		since := now.Sub(m.launchedAt)
		switch {
		case delay == Never:
			out.State = "starting"
		case since < delay/2:
			out.State = "replacing"
		case since < delay:
			out.State = "starting"
		case m.failStart:
			out.State = "failed"
		case m.exitOnStart:
			out.State = "stopped"
		default:
			out.State = "started"
			startedFor = since - delay
		}
	}
	for _, c := range m.checks {
		status := "critical"
		switch {
		case out.State != "started":
		case !launched:
			status = "passing"
		case c.passAfter != Never && startedFor >= c.passAfter:
			status = "passing"
		}
		out.Checks = append(out.Checks, Check{Name: c.name, Status: status})
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
	Checks     []checkJSON     `json:"checks,omitempty"`
}

type checkJSON struct {
	Name   string `json:"name"`
	Status string `json:"status"`
}

// toJSON answers machine m as it is now; call with s.mu held.
func (s *Server) toJSON(m *machine) machineJSON {
	v := s.at(m, time.Now())
	out := machineJSON{ID: v.ID, Name: "machine-" + v.ID, State: v.State, Region: v.Region, InstanceID: v.InstanceID, Config: v.Config}
	for _, c := range v.Checks {
		out.Checks = append(out.Checks, checkJSON(c))
	}
	return out
}

func (s *Server) listMachines(w http.ResponseWriter, r *http.Request) {
	if !s.appOK(w, r) {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]machineJSON, len(s.machines))
	for i, m := range s.machines {
		out[i] = s.toJSON(m)
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) machine(w http.ResponseWriter, r *http.Request) *machine {
	for _, m := range s.machines {
		if m.id == r.PathValue("id") {
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
		writeJSON(w, http.StatusOK, s.toJSON(m))
	}
}

// waitMachine is GET …/machines/{id}/wait: it blocks until the machine is
// in the asked state, or answers 408 when timeout seconds pass first.
func (s *Server) waitMachine(w http.ResponseWriter, r *http.Request) {
	if !s.appOK(w, r) {
		return
	}
	q := r.URL.Query()
	state := q.Get("state")
	switch state {
	case "":
		state = "started"
	case "started", "stopped", "destroyed":
	default:
		writeError(w, http.StatusBadRequest, "state must be started, stopped or destroyed")
		return
	}
	timeout := 60 * time.Second
	if v := q.Get("timeout"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			writeError(w, http.StatusBadRequest, "timeout must be a positive number of seconds")
			return
		}
		timeout = time.Duration(n) * time.Second
	}
	instance := q.Get("instance_id")
	if state == "stopped" && instance == "" {
		writeError(w, http.StatusBadRequest, "instance_id is required to wait for stopped")
		return
	}
	s.mu.Lock()
	m := s.machine(w, r)
	if m == nil {
		s.mu.Unlock()
		return
	}
	if current := s.at(m, time.Now()).InstanceID; instance != "" && instance != current {
		s.mu.Unlock()
		writeError(w, http.StatusBadRequest, fmt.Sprintf("machine version %s was replaced by %s", instance, current))
		return
	}
	s.mu.Unlock()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		s.mu.Lock()
		now := s.at(m, time.Now()).State
		s.mu.Unlock()
		if now == state {
			writeJSON(w, http.StatusOK, map[string]bool{"ok": true})
			return
		}
		if !time.Now().Before(deadline) {
			writeError(w, http.StatusRequestTimeout, fmt.Sprintf("deadline_exceeded: machine failed to reach desired state, %s, currently %s", state, now))
			return
		}
		select {
		case <-r.Context().Done():
			return
		case <-tick.C:
		}
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
	if body.Region != "" && body.Region != m.region {
		writeError(w, http.StatusBadRequest, "a machine cannot change region in an update")
		return
	}
	// The real API waits until the secrets version is available; here
	// every version that exists is, so a later one is a client bug.
	if body.MinSecretsVersion > s.version {
		writeError(w, http.StatusPreconditionFailed, fmt.Sprintf("min_secrets_version %d is not yet available", body.MinSecretsVersion))
		return
	}
	now := time.Now()
	u := Update{Machine: m.id, SkipLaunch: body.SkipLaunch, Others: map[string]Machine{}}
	for _, o := range s.machines {
		if o != m {
			u.Others[o.id] = s.at(o, now)
		}
	}
	s.updateLog = append(s.updateLog, u)
	m.config, m.minSecretsVersion, m.skipLaunch = body.Config, body.MinSecretsVersion, body.SkipLaunch
	m.updates++
	m.env = map[string]string{}
	for n, sec := range s.secrets {
		m.env[n] = sec.Value
	}
	if !body.SkipLaunch {
		m.state, m.launchedAt = "started", now
	}
	writeJSON(w, http.StatusOK, s.toJSON(m))
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
