// Package dopplerfake is a contract fake of the Doppler v3 API, limited to
// what the doppler target uses. It follows
// ../shared/reference/targets-api.md §10 "Doppler": POST
// /v3/configs/config/secrets with {"project","config","secrets":{…}}
// upserts by name and answers {"success":true,"secrets":{NAME:{raw,
// computed,rawVisibility,…}}}; GET /v3/configs/config/secret answers the
// secret's value object; errors are {"messages":[…],"success":false};
// restricted values are not returned. Two details come from Doppler's API
// reference rather than targets-api.md: the read answer puts the value
// object at the top level ({"name","value":{"raw","computed",…}}; §10
// nests it under "secret", which the target also accepts), and GET
// /v3/configs/config/secrets/names lists names without values.
//
// computed values expand ${NAME} references, as Doppler does, so a client
// that reads computed instead of raw gets a different string back.
package dopplerfake

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
)

// Visibilities Doppler gives a secret.
const (
	Masked     = "masked"
	Unmasked   = "unmasked"
	Restricted = "restricted"
)

// Server is one fake Doppler workplace holding one config.
type Server struct {
	URL string
	// Token is the only token accepted (Authorization: Bearer).
	Token string
	// Project and Config name the one config the token can reach; a
	// service token also reaches it when a request omits them.
	Project, Config string

	srv *httptest.Server

	mu       sync.Mutex
	secrets  map[string]*entry
	faults   []Fault
	requests []Request
	// ReadOnly makes the token a read-only service token.
	readOnly bool
}

type entry struct {
	raw        string
	visibility string
}

// Request is what the fake saw of one call (never a value).
type Request struct {
	Method string
	Path   string
	// Project, Config and Name come from the query or the body.
	Project, Config, Name string
	// Keys are the names a write carried, sorted.
	Keys []string
}

// Fault is a canned answer for the next matching request(s).
type Fault struct {
	Status   int
	Header   http.Header
	Messages []string
	// Times is how many requests get this answer (at least one).
	Times int
	// Method limits the fault to one method when set.
	Method string
}

// New starts a fake for project "backend", config "prd".
func New(t testing.TB) *Server {
	t.Helper()
	s := &Server{Token: "dp.st.prd.fake", Project: "backend", Config: "prd", secrets: map[string]*entry{}}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	s.URL = s.srv.URL
	t.Cleanup(s.srv.Close)
	return s
}

// Client returns an HTTP client for the fake.
func (s *Server) Client() *http.Client { return s.srv.Client() }

// Set stores a secret as another client would.
func (s *Server) Set(name, raw, visibility string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.secrets[name] = &entry{raw: raw, visibility: visibility}
}

// Value returns a secret's raw value.
func (s *Server) Value(name string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.secrets[name]
	if !ok {
		return "", false
	}
	return e.raw, true
}

// SetReadOnly makes writes answer 403, as for a read-only service token.
func (s *Server) SetReadOnly(ro bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.readOnly = ro
}

// FailNext queues f.
func (s *Server) FailNext(f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if f.Times < 1 {
		f.Times = 1
	}
	s.faults = append(s.faults, f)
}

// Requests returns the calls seen so far.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.requests)
}

// nameRE is Doppler's rule for secret names.
var nameRE = regexp.MustCompile(`^[A-Z_][A-Z0-9_]*$`)

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	req := Request{Method: r.Method, Path: r.URL.Path, Project: q.Get("project"), Config: q.Get("config"), Name: q.Get("name")}
	var body struct {
		Project string                     `json:"project"`
		Config  string                     `json:"config"`
		Secrets map[string]json.RawMessage `json:"secrets"`
	}
	if r.Method == http.MethodPost {
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			s.record(req)
			writeErr(w, http.StatusBadRequest, "Invalid request body")
			return
		}
		req.Project, req.Config = firstNonEmpty(body.Project, req.Project), firstNonEmpty(body.Config, req.Config)
		req.Keys = slices.Sorted(maps.Keys(body.Secrets))
	}
	s.record(req)

	s.mu.Lock()
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
		writeErr(w, fault.Status, fault.Messages...)
		return
	}
	s.mu.Unlock()

	if r.Header.Get("Authorization") != "Bearer "+s.Token {
		writeErr(w, http.StatusUnauthorized, "Invalid Auth token")
		return
	}
	if (req.Project != "" && req.Project != s.Project) || (req.Config != "" && req.Config != s.Config) {
		writeErr(w, http.StatusForbidden, "This token does not have access to requested config")
		return
	}

	switch {
	case r.Method == http.MethodPost && r.URL.Path == "/v3/configs/config/secrets":
		s.update(w, body.Secrets)
	case r.Method == http.MethodGet && r.URL.Path == "/v3/configs/config/secret":
		s.get(w, req.Name)
	case r.Method == http.MethodGet && r.URL.Path == "/v3/configs/config/secrets/names":
		s.mu.Lock()
		names := slices.Sorted(maps.Keys(s.secrets))
		s.mu.Unlock()
		writeJSON(w, http.StatusOK, map[string]any{"names": names, "success": true})
	default:
		writeErr(w, http.StatusNotFound, "Not found")
	}
}

func (s *Server) record(r Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests = append(s.requests, r)
}

func (s *Server) update(w http.ResponseWriter, in map[string]json.RawMessage) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.readOnly {
		writeErr(w, http.StatusForbidden, "You do not have permission to perform this action")
		return
	}
	values := map[string]string{}
	for name, raw := range in {
		if !nameRE.MatchString(name) {
			writeErr(w, http.StatusBadRequest, fmt.Sprintf("Secret name %q must contain only uppercase letters, numbers, and underscores, and must not start with a number", name))
			return
		}
		var v string
		if err := json.Unmarshal(raw, &v); err != nil {
			writeErr(w, http.StatusBadRequest, "Secret values must be strings")
			return
		}
		values[name] = v
	}
	for name, v := range values {
		if e, ok := s.secrets[name]; ok {
			e.raw = v
			continue
		}
		s.secrets[name] = &entry{raw: v, visibility: Masked}
	}
	out := map[string]any{}
	for name := range s.secrets {
		out[name] = s.valueObject(name)
	}
	writeJSON(w, http.StatusOK, map[string]any{"secrets": out, "success": true})
}

func (s *Server) get(w http.ResponseWriter, name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.secrets[name]; !ok {
		writeErr(w, http.StatusNotFound, "Could not find requested secret")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"name": name, "value": s.valueObject(name), "success": true})
}

// valueObject is Doppler's {raw, computed, …} for name; restricted values
// come back as null.
func (s *Server) valueObject(name string) map[string]any {
	e := s.secrets[name]
	if e.visibility == Restricted {
		return map[string]any{"raw": nil, "computed": nil, "note": "", "rawVisibility": Restricted, "computedVisibility": Restricted}
	}
	return map[string]any{"raw": e.raw, "computed": s.compute(e.raw), "note": "", "rawVisibility": e.visibility, "computedVisibility": e.visibility}
}

var refRE = regexp.MustCompile(`\$\{([A-Za-z0-9_.]+)\}`)

func (s *Server) compute(raw string) string {
	return refRE.ReplaceAllStringFunc(raw, func(m string) string {
		if e, ok := s.secrets[m[2:len(m)-1]]; ok {
			return e.raw
		}
		return ""
	})
}

func writeErr(w http.ResponseWriter, status int, messages ...string) {
	if messages == nil {
		messages = []string{http.StatusText(status)}
	}
	writeJSON(w, status, map[string]any{"messages": messages, "success": false})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func firstNonEmpty(a, b string) string {
	if strings.TrimSpace(a) != "" {
		return a
	}
	return b
}
