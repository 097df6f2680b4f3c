// Package infisicalfake is a contract fake of the Infisical API, limited to
// what the infisical target uses. It follows
// ../shared/reference/targets-api.md §10 "Infisical": universal-auth login
// (POST /api/v1/auth/universal-auth/login {clientId, clientSecret} →
// accessToken), then Bearer calls to the v3 raw-secret endpoints: PATCH
// /api/v3/secrets/raw/{name} updates and answers 404 when the secret does
// not exist, POST creates and refuses an existing one, GET reads
// {"secret":{secretKey,secretValue,version,…}}. Errors are Infisical's
// {"reqId","statusCode","message","error"}. GET /api/v1/workspace/{id},
// which lists a project's environments, comes from Infisical's API
// reference ("Get Project"), not from targets-api.md.
//
// Reads expand ${KEY} secret references unless the request says
// expandSecretReferences=false, so a client that forgets to ask for the raw
// value reads back something other than what it wrote.
package infisicalfake

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// Server is one fake Infisical instance with one project.
type Server struct {
	// URL is the site URL; the API lives under URL+"/api".
	URL string
	// ClientID and ClientSecret are the machine identity's credentials.
	ClientID, ClientSecret string
	// ProjectID is the one project; Environments are its slugs.
	ProjectID    string
	Environments []string

	srv *httptest.Server

	mu       sync.Mutex
	tokens   map[string]bool
	issued   int
	folders  map[string]bool            // "env:path"
	secrets  map[string]map[string]*sec // "env:path" → key → secret
	readOnly bool
	faults   []Fault
	requests []Request
}

type sec struct {
	value   string
	version int
}

// Request is what the fake saw of one call (never a value).
type Request struct {
	Method string
	// Path is the URL path without the query.
	Path string
	// Scope is workspaceId, environment, secretPath and type, from the
	// query or the body.
	WorkspaceID, Environment, SecretPath, Type string
	// Expand is the expandSecretReferences query parameter.
	Expand string
	// Authorized is true when the request carried a valid access token.
	Authorized bool
}

// Fault is a canned answer for the next matching request(s).
type Fault struct {
	Status  int
	Header  http.Header
	Message string
	// Times is how many requests get this answer (at least one).
	Times int
	// Method and PathPrefix limit the fault when set.
	Method, PathPrefix string
}

// New starts a fake with project "proj-1" and environments dev and prod.
func New(t testing.TB) *Server {
	t.Helper()
	s := &Server{
		ClientID: "client-1", ClientSecret: "cs-fake-secret", ProjectID: "proj-1", Environments: []string{"dev", "prod"},
		tokens:  map[string]bool{},
		folders: map[string]bool{"dev:/": true, "prod:/": true},
		secrets: map[string]map[string]*sec{},
	}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	s.URL = s.srv.URL
	t.Cleanup(s.srv.Close)
	return s
}

// Client returns an HTTP client for the fake.
func (s *Server) Client() *http.Client { return s.srv.Client() }

// AddFolder creates a folder (secretPath) in env.
func (s *Server) AddFolder(env, path string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.folders[env+":"+path] = true
}

// Set stores a secret as another client would.
func (s *Server) Set(env, path, key, value string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.set(env+":"+path, key, value)
}

// Value returns a secret's stored value.
func (s *Server) Value(env, path, key string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.secrets[env+":"+path][key]
	if !ok {
		return "", false
	}
	return v.value, true
}

// ExpireTokens invalidates every access token issued so far.
func (s *Server) ExpireTokens() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.tokens)
}

// SetReadOnly gives the identity a role that cannot edit secrets.
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

func (s *Server) set(scope, key, value string) *sec {
	m := s.secrets[scope]
	if m == nil {
		m = map[string]*sec{}
		s.secrets[scope] = m
	}
	e := m[key]
	if e == nil {
		e = &sec{}
		m[key] = e
	}
	e.value = value
	e.version++
	return e
}

type body struct {
	ClientID     string  `json:"clientId"`
	ClientSecret string  `json:"clientSecret"`
	WorkspaceID  string  `json:"workspaceId"`
	Environment  string  `json:"environment"`
	SecretPath   string  `json:"secretPath"`
	Type         string  `json:"type"`
	SecretValue  *string `json:"secretValue"`
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	var b body
	if r.Method == http.MethodPost || r.Method == http.MethodPatch {
		if err := json.NewDecoder(r.Body).Decode(&b); err != nil {
			writeErr(w, http.StatusBadRequest, "Invalid request body")
			return
		}
	}
	q := r.URL.Query()
	req := Request{
		Method: r.Method, Path: r.URL.Path,
		WorkspaceID: first(b.WorkspaceID, q.Get("workspaceId")), Environment: first(b.Environment, q.Get("environment")),
		SecretPath: first(b.SecretPath, q.Get("secretPath")), Type: first(b.Type, q.Get("type")),
		Expand: q.Get("expandSecretReferences"),
	}
	s.mu.Lock()
	bearer, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	req.Authorized = s.tokens[bearer]
	s.requests = append(s.requests, req)
	if len(s.faults) > 0 {
		f := &s.faults[0]
		if (f.Method == "" || f.Method == r.Method) && strings.HasPrefix(r.URL.Path, f.PathPrefix) {
			f.Times--
			fault := *f
			if f.Times == 0 {
				s.faults = s.faults[1:]
			}
			s.mu.Unlock()
			for k, vs := range fault.Header {
				w.Header()[k] = vs
			}
			writeErr(w, fault.Status, fault.Message)
			return
		}
	}
	s.mu.Unlock()

	if r.Method == http.MethodPost && r.URL.Path == "/api/v1/auth/universal-auth/login" {
		s.login(w, b)
		return
	}
	if !req.Authorized {
		writeErr(w, http.StatusUnauthorized, "Token missing, expired or invalid")
		return
	}
	if id, ok := strings.CutPrefix(r.URL.Path, "/api/v1/workspace/"); ok && r.Method == http.MethodGet {
		s.project(w, id)
		return
	}
	name, ok := strings.CutPrefix(r.URL.Path, "/api/v3/secrets/raw/")
	if !ok || name == "" {
		writeErr(w, http.StatusNotFound, fmt.Sprintf("Route %s:%s not found", r.Method, r.URL.Path))
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if req.WorkspaceID != s.ProjectID {
		writeErr(w, http.StatusNotFound, fmt.Sprintf("Project with ID '%s' not found", req.WorkspaceID))
		return
	}
	if !slices.Contains(s.Environments, req.Environment) {
		writeErr(w, http.StatusNotFound, fmt.Sprintf("Environment with slug '%s' in project with ID '%s' not found", req.Environment, req.WorkspaceID))
		return
	}
	path := req.SecretPath
	if path == "" {
		path = "/"
	}
	scope := req.Environment + ":" + path
	if !s.folders[scope] {
		writeErr(w, http.StatusNotFound, fmt.Sprintf("Folder with path '%s' in environment with slug '%s' not found", path, req.Environment))
		return
	}
	if req.Type != "" && req.Type != "shared" {
		writeErr(w, http.StatusBadRequest, "personal secrets are not supported by this fake")
		return
	}
	cur := s.secrets[scope][name]
	switch r.Method {
	case http.MethodGet:
		if cur == nil {
			writeErr(w, http.StatusNotFound, fmt.Sprintf("Secret with name '%s' not found", name))
			return
		}
		value := cur.value
		if req.Expand != "false" {
			value = s.expand(scope, value)
		}
		writeJSON(w, http.StatusOK, map[string]any{"secret": secretJSON(req, name, value, cur.version)})
	case http.MethodPatch, http.MethodPost:
		if s.readOnly {
			writeErr(w, http.StatusForbidden, "You are not allowed to edit secrets in this environment")
			return
		}
		if b.SecretValue == nil {
			writeErr(w, http.StatusUnprocessableEntity, `[{"code":"invalid_type","expected":"string","received":"undefined","path":["secretValue"]}]`)
			return
		}
		if r.Method == http.MethodPatch && cur == nil {
			writeErr(w, http.StatusNotFound, "Secret not found")
			return
		}
		if r.Method == http.MethodPost && cur != nil {
			writeErr(w, http.StatusBadRequest, "Secret already exist")
			return
		}
		e := s.set(scope, name, *b.SecretValue)
		writeJSON(w, http.StatusOK, map[string]any{"secret": secretJSON(req, name, e.value, e.version)})
	default:
		writeErr(w, http.StatusMethodNotAllowed, "Method not allowed")
	}
}

func (s *Server) login(w http.ResponseWriter, b body) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if b.ClientID != s.ClientID || b.ClientSecret != s.ClientSecret {
		writeErr(w, http.StatusUnauthorized, "Invalid credentials")
		return
	}
	s.issued++
	tok := "inf-at-" + strconv.Itoa(s.issued)
	s.tokens[tok] = true
	writeJSON(w, http.StatusOK, map[string]any{"accessToken": tok, "expiresIn": 7200, "accessTokenMaxTTL": 43200, "tokenType": "Bearer"})
}

func (s *Server) project(w http.ResponseWriter, id string) {
	if id != s.ProjectID {
		writeErr(w, http.StatusNotFound, fmt.Sprintf("Project with ID '%s' not found", id))
		return
	}
	var envs []map[string]string
	for _, e := range s.Environments {
		envs = append(envs, map[string]string{"id": "env-" + e, "name": strings.ToUpper(e[:1]) + e[1:], "slug": e})
	}
	writeJSON(w, http.StatusOK, map[string]any{"workspace": map[string]any{"id": id, "name": "Backend", "environments": envs}})
}

var refRE = regexp.MustCompile(`\$\{([A-Za-z0-9_.-]+)\}`)

func (s *Server) expand(scope, v string) string {
	return refRE.ReplaceAllStringFunc(v, func(m string) string {
		if e, ok := s.secrets[scope][m[2:len(m)-1]]; ok {
			return e.value
		}
		return ""
	})
}

func secretJSON(req Request, key, value string, version int) map[string]any {
	return map[string]any{
		"id": "sec-" + key, "_id": "sec-" + key, "workspace": req.WorkspaceID, "environment": req.Environment,
		"version": version, "type": "shared", "secretKey": key, "secretValue": value, "secretComment": "",
		"secretPath": first(req.SecretPath, "/"), "tags": []any{},
	}
}

func writeErr(w http.ResponseWriter, status int, message string) {
	writeJSON(w, status, map[string]any{
		"reqId": "req-fake", "statusCode": status, "message": message, "error": strings.ReplaceAll(http.StatusText(status), " ", ""),
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func first(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
