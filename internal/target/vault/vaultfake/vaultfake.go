// Package vaultfake is a contract fake of the HashiCorp Vault HTTP API,
// limited to what the vault target uses. It follows
// ../shared/reference/targets-api.md §8 (KV v2: writes replace the whole
// data map, options.cas, the 400 "check-and-set parameter did not match the
// current version" body, PATCH with application/merge-patch+json, reads
// nested under data.data/data.metadata, metadata with current_version and
// cas_required, X-Vault-Token and X-Vault-Namespace, 429 from rate-limit
// quotas) and Vault's documented endpoints auth/token/lookup-self and
// sys/capabilities-self.
//
// Every error is Vault's shape, {"errors":[…]}; a KV path that holds no
// version answers 404 {"errors":[]}, and one whose latest version was
// deleted answers 404 with that version's metadata, as Vault does.
package vaultfake

import (
	"bytes"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"maps"
	"mime"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Capabilities a policy can grant; the fake grants them on every path.
const (
	CapCreate = "create"
	CapRead   = "read"
	CapUpdate = "update"
	CapPatch  = "patch"
)

// Server is one fake Vault with KV v2 mounts.
type Server struct {
	URL string
	// Token is the only token the fake accepts.
	Token string
	// Namespace, when set, must arrive in X-Vault-Namespace.
	Namespace string

	srv *httptest.Server

	mu       sync.Mutex
	mounts   map[string]map[string]*entry // mount → path → entry
	caps     []string
	faults   []Fault
	beforeW  func(s *Server)
	requests []Request
	now      time.Time
}

// Request is what the fake saw of one call (never a value).
type Request struct {
	Method      string
	Path        string
	Namespace   string
	ContentType string
	// CAS is options.cas of a KV write, nil when absent.
	CAS *int
	// Keys are the keys of a KV write's data, sorted.
	Keys []string
}

// Fault is a canned answer for the next request(s).
type Fault struct {
	Status int
	Header http.Header
	// Errors become the body {"errors":[…]}.
	Errors []string
	// Times is how many requests get this answer (at least one).
	Times int
	// Method, when set, limits the fault to requests with that method;
	// others pass through.
	Method string
}

type entry struct {
	versions    []version // versions[i] is version i+1
	casRequired bool
}

type version struct {
	data    map[string]any
	created time.Time
	deleted bool
}

// New starts a fake with the KV v2 mount "secret" and every capability,
// over plain HTTP.
func New(t testing.TB) *Server { return start(t, httptest.NewServer) }

// NewTLS is New over HTTPS with httptest's self-signed certificate (see
// CertificatePEM), as a real Vault listener with its own CA.
func NewTLS(t testing.TB) *Server { return start(t, httptest.NewTLSServer) }

// CertificatePEM is the TLS fake's certificate, PEM-encoded, for
// VAULT_CACERT.
func (s *Server) CertificatePEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.srv.Certificate().Raw})
}

func start(t testing.TB, listen func(http.Handler) *httptest.Server) *Server {
	t.Helper()
	s := &Server{
		Token:  "hvs.fake-token",
		mounts: map[string]map[string]*entry{"secret": {}},
		caps:   []string{CapCreate, CapRead, CapUpdate, CapPatch},
		now:    time.Date(2026, 8, 1, 12, 0, 0, 0, time.UTC),
	}
	s.srv = listen(http.HandlerFunc(s.serve))
	s.URL = s.srv.URL
	t.Cleanup(s.srv.Close)
	return s
}

// Client returns an HTTP client for the fake.
func (s *Server) Client() *http.Client { return s.srv.Client() }

// AddMount adds a KV v2 mount, e.g. "kv/team".
func (s *Server) AddMount(mount string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.mounts[strings.Trim(mount, "/")] = map[string]*entry{}
}

// SetCapabilities replaces what the token's policy grants.
func (s *Server) SetCapabilities(caps ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.caps = slices.Clone(caps)
}

// FailNext makes the next f.Times requests answer f.
func (s *Server) FailNext(f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if f.Times < 1 {
		f.Times = 1
	}
	s.faults = append(s.faults, f)
}

// BeforeWrite runs fn (with the fake unlocked) before each KV write or
// patch is applied, to play another writer racing the target.
func (s *Server) BeforeWrite(fn func(s *Server)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.beforeW = fn
}

// Seed writes data as a new version at mount/path, as another client would.
func (s *Server) Seed(mount, path string, data map[string]any) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.entry(mount, path, true)
	return s.appendVersion(e, maps.Clone(data))
}

// SetCASRequired sets the path's cas_required metadata.
func (s *Server) SetCASRequired(mount, path string, required bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.entry(mount, path, true).casRequired = required
}

// DeleteLatest soft-deletes the latest version at mount/path.
func (s *Server) DeleteLatest(mount, path string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e := s.entry(mount, path, false); e != nil && len(e.versions) > 0 {
		e.versions[len(e.versions)-1].deleted = true
	}
}

// Data returns the latest live version's data and its number; ok is false
// when the path holds no readable version.
func (s *Server) Data(mount, path string) (data map[string]any, ver int, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.entry(mount, path, false)
	if e == nil || len(e.versions) == 0 || e.versions[len(e.versions)-1].deleted {
		return nil, 0, false
	}
	return maps.Clone(e.versions[len(e.versions)-1].data), len(e.versions), true
}

// Requests returns the calls seen so far.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.requests)
}

func (s *Server) entry(mount, path string, create bool) *entry {
	m := s.mounts[strings.Trim(mount, "/")]
	if m == nil {
		return nil
	}
	path = strings.Trim(path, "/")
	e := m[path]
	if e == nil && create {
		e = &entry{}
		m[path] = e
	}
	return e
}

func (s *Server) appendVersion(e *entry, data map[string]any) int {
	s.now = s.now.Add(time.Second)
	e.versions = append(e.versions, version{data: data, created: s.now})
	return len(e.versions)
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	var body map[string]any
	raw, err := io.ReadAll(r.Body)
	if err != nil {
		writeErrors(w, http.StatusBadRequest, "failed to read request")
		return
	}
	if len(raw) > 0 {
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber()
		if err := dec.Decode(&body); err != nil {
			writeErrors(w, http.StatusBadRequest, "failed to parse JSON input")
			return
		}
	}
	req := Request{Method: r.Method, Path: r.URL.Path, Namespace: r.Header.Get("X-Vault-Namespace"), ContentType: r.Header.Get("Content-Type")}
	if d, ok := body["data"].(map[string]any); ok {
		req.Keys = slices.Sorted(maps.Keys(d))
	}
	if o, ok := body["options"].(map[string]any); ok {
		if n, ok := o["cas"].(json.Number); ok {
			if v, err := strconv.Atoi(n.String()); err == nil {
				req.CAS = &v
			}
		}
	}

	s.mu.Lock()
	s.requests = append(s.requests, req)
	if len(s.faults) > 0 && (s.faults[0].Method == "" || s.faults[0].Method == r.Method) {
		f := &s.faults[0]
		f.Times--
		fault := *f
		if f.Times == 0 {
			s.faults = s.faults[1:]
		}
		s.mu.Unlock()
		for k, vs := range fault.Header {
			w.Header()[k] = vs
		}
		writeErrors(w, fault.Status, fault.Errors...)
		return
	}
	s.mu.Unlock()

	if r.Header.Get("X-Vault-Token") != s.Token {
		writeErrors(w, http.StatusForbidden, "permission denied")
		return
	}
	if s.Namespace != "" && strings.Trim(req.Namespace, "/") != s.Namespace {
		// The token lives in its namespace; elsewhere it is unknown.
		writeErrors(w, http.StatusForbidden, "permission denied")
		return
	}

	p := strings.TrimPrefix(r.URL.Path, "/v1/")
	switch {
	case p == "auth/token/lookup-self" && r.Method == http.MethodGet:
		s.lookupSelf(w)
		return
	case p == "sys/capabilities-self" && (r.Method == http.MethodPost || r.Method == http.MethodPut):
		s.capabilitiesSelf(w, body)
		return
	}
	mount, kind, path, ok := s.route(p)
	if !ok {
		writeErrors(w, http.StatusNotFound, fmt.Sprintf("no handler for route %q. route entry not found.", p))
		return
	}
	switch {
	case kind == "data" && r.Method == http.MethodGet:
		s.read(w, mount, path)
	case kind == "data" && (r.Method == http.MethodPost || r.Method == http.MethodPut):
		s.write(w, mount, path, body, req.CAS)
	case kind == "data" && r.Method == http.MethodPatch:
		s.patch(w, r, mount, path, body, req.CAS)
	case kind == "metadata" && r.Method == http.MethodGet:
		s.metadata(w, mount, path)
	default:
		writeErrors(w, http.StatusMethodNotAllowed, "unsupported operation")
	}
}

// route splits "secret/data/app/db" into its mount, endpoint and path.
func (s *Server) route(p string) (mount, kind, path string, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	// The longest mount wins, so "kv/team" is not read as mount "kv".
	mounts := slices.SortedFunc(maps.Keys(s.mounts), func(a, b string) int { return len(b) - len(a) })
	for _, m := range mounts {
		rest, found := strings.CutPrefix(p, m+"/")
		if !found {
			continue
		}
		kind, path, _ = strings.Cut(rest, "/")
		if (kind == "data" || kind == "metadata") && path != "" {
			return m, kind, path, true
		}
	}
	return "", "", "", false
}

func (s *Server) can(capability string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Contains(s.caps, capability)
}

func (s *Server) lookupSelf(w http.ResponseWriter) {
	writeJSON(w, http.StatusOK, map[string]any{
		"data": map[string]any{
			"accessor": "fake-accessor", "display_name": "token-rotor", "policies": []string{"default", "rotor"},
			"ttl": 3600, "renewable": true, "type": "service",
		},
	})
}

func (s *Server) capabilitiesSelf(w http.ResponseWriter, body map[string]any) {
	var paths []string
	if p, ok := body["path"].(string); ok {
		paths = append(paths, p)
	}
	if ps, ok := body["paths"].([]any); ok {
		for _, p := range ps {
			if p, ok := p.(string); ok {
				paths = append(paths, p)
			}
		}
	}
	s.mu.Lock()
	caps := slices.Clone(s.caps)
	s.mu.Unlock()
	if len(caps) == 0 {
		caps = []string{"deny"}
	}
	data := map[string]any{"capabilities": caps}
	for _, p := range paths {
		data[p] = caps
	}
	out := maps.Clone(data)
	out["data"] = data
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) read(w http.ResponseWriter, mount, path string) {
	if !s.can(CapRead) {
		writeErrors(w, http.StatusForbidden, "1 error occurred:\n\t* permission denied\n\n")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.entry(mount, path, false)
	if e == nil || len(e.versions) == 0 {
		writeErrors(w, http.StatusNotFound)
		return
	}
	n := len(e.versions)
	v := e.versions[n-1]
	if v.deleted {
		writeJSON(w, http.StatusNotFound, map[string]any{"data": map[string]any{"data": nil, "metadata": versionMeta(v, n)}})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"data": map[string]any{"data": v.data, "metadata": versionMeta(v, n)}})
}

func (s *Server) write(w http.ResponseWriter, mount, path string, body map[string]any, cas *int) {
	data, ok := body["data"].(map[string]any)
	if !ok {
		writeErrors(w, http.StatusBadRequest, "no data provided")
		return
	}
	s.runBeforeWrite()
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.entry(mount, path, false)
	exists := e != nil && len(e.versions) > 0
	need := CapCreate
	if exists {
		need = CapUpdate
	}
	if !slices.Contains(s.caps, need) {
		writeErrors(w, http.StatusForbidden, "1 error occurred:\n\t* permission denied\n\n")
		return
	}
	current := 0
	if exists {
		current = len(e.versions)
	}
	if e != nil && e.casRequired && cas == nil {
		writeErrors(w, http.StatusBadRequest, "check-and-set parameter required for this call")
		return
	}
	if cas != nil && *cas != current {
		writeErrors(w, http.StatusBadRequest, "check-and-set parameter did not match the current version")
		return
	}
	e = s.entry(mount, path, true)
	n := s.appendVersion(e, data)
	writeJSON(w, http.StatusOK, map[string]any{"data": versionMeta(e.versions[n-1], n)})
}

func (s *Server) patch(w http.ResponseWriter, r *http.Request, mount, path string, body map[string]any, cas *int) {
	if ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); ct != "application/merge-patch+json" {
		writeErrors(w, http.StatusUnsupportedMediaType, "Unsupported Media Type")
		return
	}
	if !s.can(CapPatch) {
		writeErrors(w, http.StatusForbidden, "1 error occurred:\n\t* permission denied\n\n")
		return
	}
	patch, ok := body["data"].(map[string]any)
	if !ok {
		writeErrors(w, http.StatusBadRequest, "no data provided")
		return
	}
	s.runBeforeWrite()
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.entry(mount, path, false)
	if e == nil || len(e.versions) == 0 || e.versions[len(e.versions)-1].deleted {
		writeErrors(w, http.StatusNotFound)
		return
	}
	if cas != nil && *cas != len(e.versions) {
		writeErrors(w, http.StatusBadRequest, "check-and-set parameter did not match the current version")
		return
	}
	merged := maps.Clone(e.versions[len(e.versions)-1].data)
	for k, v := range patch {
		if v == nil {
			delete(merged, k) // RFC 7396: null removes the key
			continue
		}
		merged[k] = v
	}
	n := s.appendVersion(e, merged)
	writeJSON(w, http.StatusOK, map[string]any{"data": versionMeta(e.versions[n-1], n)})
}

func (s *Server) metadata(w http.ResponseWriter, mount, path string) {
	if !s.can(CapRead) {
		writeErrors(w, http.StatusForbidden, "1 error occurred:\n\t* permission denied\n\n")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.entry(mount, path, false)
	if e == nil || len(e.versions) == 0 {
		writeErrors(w, http.StatusNotFound)
		return
	}
	versions := map[string]any{}
	for i, v := range e.versions {
		versions[strconv.Itoa(i+1)] = versionMeta(v, i+1)
	}
	writeJSON(w, http.StatusOK, map[string]any{"data": map[string]any{
		"cas_required": e.casRequired, "current_version": len(e.versions), "oldest_version": 1,
		"max_versions": 0, "created_time": e.versions[0].created.Format(time.RFC3339Nano),
		"updated_time":    e.versions[len(e.versions)-1].created.Format(time.RFC3339Nano),
		"custom_metadata": nil, "delete_version_after": "0s", "versions": versions,
	}})
}

func (s *Server) runBeforeWrite() {
	s.mu.Lock()
	fn := s.beforeW
	s.mu.Unlock()
	if fn != nil {
		fn(s)
	}
}

func versionMeta(v version, n int) map[string]any {
	deletion := ""
	if v.deleted {
		deletion = v.created.Add(time.Minute).Format(time.RFC3339Nano)
	}
	return map[string]any{
		"version": n, "created_time": v.created.Format(time.RFC3339Nano), "deletion_time": deletion,
		"destroyed": false, "custom_metadata": nil,
	}
}

func writeErrors(w http.ResponseWriter, status int, errs ...string) {
	if errs == nil {
		errs = []string{}
	}
	writeJSON(w, status, map[string]any{"errors": errs})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
