// Package gcpsmfake is a contract fake of Google Secret Manager's REST API
// (v1), limited to what the gcp-secret-manager target uses. It follows
// ../shared/reference/targets-api.md §10 "Google Secret Manager" and the
// REST reference of projects.secrets and projects.secrets.versions:
//
//   - POST /v1/projects/{p}/secrets:addVersion with
//     {"payload":{"data":"<base64>","dataCrc32c":"<int64>"}} appends an
//     ENABLED version and answers the SecretVersion; a checksum that does
//     not match the data is INVALID_ARGUMENT; a missing secret NOT_FOUND.
//   - POST /v1/projects/{p}/secrets?secretId={s} creates a secret
//     ({"replication":{"automatic":{}}} or userManaged replicas); an
//     existing one is ALREADY_EXISTS (409).
//   - GET …/versions/latest:access answers the newest version's payload
//     (with dataCrc32c); a disabled or destroyed one is
//     FAILED_PRECONDITION, no version at all NOT_FOUND.
//   - GET …/versions?filter=state:ENABLED lists versions newest first,
//     with pageSize/pageToken; POST …/versions/{n}:disable disables one.
//   - GET /v1/projects/{p}/secrets/{s} describes the secret.
//
// Errors are Google's JSON shape, {"error":{"code","message","status"}}.
// Every call needs Authorization: Bearer <Token> (401 UNAUTHENTICATED
// otherwise); Deny makes one IAM permission answer 403 PERMISSION_DENIED;
// throttling is 429 RESOURCE_EXHAUSTED. POST /token is a minimal OAuth 2.0
// token endpoint for service-account JWT grants, so the target's
// credential flow runs against the fake too.
package gcpsmfake

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Version states.
const (
	Enabled   = "ENABLED"
	Disabled  = "DISABLED"
	Destroyed = "DESTROYED"
)

// Server is one fake Secret Manager.
type Server struct {
	URL string
	// Token is the only bearer token the API accepts, and what the token
	// endpoint hands out.
	Token string

	srv *httptest.Server

	mu       sync.Mutex
	secrets  map[string]*entry // "projects/p/secrets/s" → entry
	denied   map[string]bool
	faults   []Fault
	requests []Request
	grants   []Grant
	clock    time.Time
}

// Request is what the fake saw of one API call (never a payload).
type Request struct {
	Method string
	// Path is the URL path, e.g. /v1/projects/p/secrets/s:addVersion.
	Path  string
	Query string
	// HasChecksum reports an addVersion carrying dataCrc32c.
	HasChecksum bool
	// Replication is a created secret's replication: "automatic" or the
	// user-managed locations joined by ",".
	Replication string
}

// Grant is one token request the fake answered.
type Grant struct {
	GrantType string
	// Issuer and Scope are the JWT assertion's iss and scope claims.
	Issuer   string
	Scope    string
	Audience string
}

// Fault is a canned answer for the next matching call(s).
type Fault struct {
	// Status is the HTTP status; the gRPC status name follows from it.
	Status  int
	Message string
	Header  http.Header
	// Times is how many calls get this answer (at least one).
	Times int
	// Suffix limits the fault to paths ending so (":addVersion",
	// ":access"); empty matches every API call.
	Suffix string
}

type entry struct {
	name        string
	replication string
	versions    []*version // versions[i] is version i+1
	created     time.Time
}

type version struct {
	data    []byte
	state   string
	created time.Time
}

// Permissions the fake checks, as IAM names them.
const (
	PermGet     = "secretmanager.secrets.get"
	PermCreate  = "secretmanager.secrets.create"
	PermAdd     = "secretmanager.versions.add"
	PermAccess  = "secretmanager.versions.access"
	PermList    = "secretmanager.versions.list"
	PermDisable = "secretmanager.versions.disable"
)

// New starts a fake with no secrets.
func New(t testing.TB) *Server {
	t.Helper()
	s := &Server{
		Token:   "ya29.fake-access-token",
		secrets: map[string]*entry{},
		denied:  map[string]bool{},
		clock:   time.Date(2026, 8, 1, 12, 0, 0, 0, time.UTC),
	}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	s.URL = s.srv.URL
	t.Cleanup(s.srv.Close)
	return s
}

// Client returns an HTTP client for the fake.
func (s *Server) Client() *http.Client { return s.srv.Client() }

// TokenURL is the fake's OAuth 2.0 token endpoint.
func (s *Server) TokenURL() string { return s.URL + "/token" }

// Seed adds an ENABLED version (creating the secret), bypassing the API.
func (s *Server) Seed(project, secret, payload string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.secrets[secretName(project, secret)]
	if e == nil {
		e = &entry{name: secretName(project, secret), replication: "automatic", created: s.tick()}
		s.secrets[e.name] = e
	}
	e.versions = append(e.versions, &version{data: []byte(payload), state: Enabled, created: s.tick()})
}

// SetState changes a version's state, bypassing the API.
func (s *Server) SetState(project, secret string, n int, state string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e := s.secrets[secretName(project, secret)]; e != nil && n >= 1 && n <= len(e.versions) {
		e.versions[n-1].state = state
	}
}

// Deny makes every call needing permission answer 403.
func (s *Server) Deny(permission string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.denied[permission] = true
}

// FailNext queues a fault.
func (s *Server) FailNext(f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f.Times = max(f.Times, 1)
	s.faults = append(s.faults, f)
}

// Versions returns each version's payload and state, oldest first.
func (s *Server) Versions(project, secret string) (payloads, states []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.secrets[secretName(project, secret)]
	if e == nil {
		return nil, nil
	}
	for _, v := range e.versions {
		payloads = append(payloads, string(v.data))
		states = append(states, v.state)
	}
	return payloads, states
}

// Replication returns how a secret is replicated, empty when it does not
// exist.
func (s *Server) Replication(project, secret string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e := s.secrets[secretName(project, secret)]; e != nil {
		return e.replication
	}
	return ""
}

// Requests returns the API calls received, in order.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.requests)
}

// Grants returns the token requests answered, in order.
func (s *Server) Grants() []Grant {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.grants)
}

func secretName(project, secret string) string { return "projects/" + project + "/secrets/" + secret }

func (s *Server) tick() time.Time {
	s.clock = s.clock.Add(time.Second)
	return s.clock
}

var statusNames = map[int]string{
	400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
	409: "ALREADY_EXISTS", 429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 503: "UNAVAILABLE",
}

// apiError is Google's error answer; status overrides the name derived
// from the code (FAILED_PRECONDITION is a 400 too).
type apiError struct {
	code    int
	status  string
	message string
	header  http.Header
}

func errorf(code int, format string, args ...any) *apiError {
	return &apiError{code: code, message: fmt.Sprintf(format, args...)}
}

func writeError(w http.ResponseWriter, e *apiError) {
	status := e.status
	if status == "" {
		status = statusNames[e.code]
	}
	for k, vs := range e.header {
		for _, v := range vs {
			w.Header().Add(k, v)
		}
	}
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	w.WriteHeader(e.code)
	_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]any{"code": e.code, "message": e.message, "status": status}})
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	_ = json.NewEncoder(w).Encode(v)
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/token" {
		s.token(w, r)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		writeError(w, errorf(400, "cannot read the body"))
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	req := Request{Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery}
	idx := len(s.requests)
	s.requests = append(s.requests, req)

	if r.Header.Get("Authorization") != "Bearer "+s.Token {
		writeError(w, errorf(401, "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential."))
		return
	}
	for i := range s.faults {
		f := &s.faults[i]
		if f.Times > 0 && (f.Suffix == "" || strings.HasSuffix(r.URL.Path, f.Suffix)) {
			f.Times--
			writeError(w, &apiError{code: f.Status, message: f.Message, header: f.Header})
			return
		}
	}
	out, aerr := s.route(r, body, &s.requests[idx])
	if aerr != nil {
		writeError(w, aerr)
		return
	}
	writeJSON(w, out)
}

// route dispatches under s.mu.
func (s *Server) route(r *http.Request, body []byte, req *Request) (any, *apiError) {
	path, ok := strings.CutPrefix(r.URL.Path, "/v1/")
	if !ok {
		return nil, errorf(404, "unknown path %s", r.URL.Path)
	}
	path, verb, _ := strings.Cut(path, ":")
	parts := strings.Split(path, "/")
	switch {
	// projects/p/secrets
	case len(parts) == 3 && parts[0] == "projects" && parts[2] == "secrets" && r.Method == http.MethodPost && verb == "":
		return s.createSecret(parts[1], r.URL.Query().Get("secretId"), body, req)
	// projects/p/secrets/s
	case len(parts) == 4 && parts[0] == "projects" && parts[2] == "secrets":
		name := path
		switch {
		case r.Method == http.MethodPost && verb == "addVersion":
			return s.addVersion(name, body, req)
		case r.Method == http.MethodGet && verb == "":
			return s.getSecret(name)
		}
	// projects/p/secrets/s/versions
	case len(parts) == 5 && parts[0] == "projects" && parts[2] == "secrets" && parts[4] == "versions" && r.Method == http.MethodGet && verb == "":
		return s.listVersions(strings.Join(parts[:4], "/"), r.URL.Query())
	// projects/p/secrets/s/versions/n
	case len(parts) == 6 && parts[0] == "projects" && parts[2] == "secrets" && parts[4] == "versions":
		name := strings.Join(parts[:4], "/")
		switch {
		case r.Method == http.MethodGet && verb == "access":
			return s.access(name, parts[5])
		case r.Method == http.MethodPost && verb == "disable":
			return s.disable(name, parts[5])
		}
	}
	return nil, errorf(404, "unknown method %s %s", r.Method, r.URL.Path)
}

func (s *Server) check(permission, resource string) *apiError {
	if s.denied[permission] {
		return errorf(403, "Permission '%s' denied for resource '%s' (or it may not exist).", permission, resource)
	}
	return nil
}

func (s *Server) secretAnswer(e *entry) map[string]any {
	repl := map[string]any{"automatic": map[string]any{}}
	if e.replication != "automatic" {
		var replicas []any
		for l := range strings.SplitSeq(e.replication, ",") {
			replicas = append(replicas, map[string]any{"location": l})
		}
		repl = map[string]any{"userManaged": map[string]any{"replicas": replicas}}
	}
	return map[string]any{"name": e.name, "replication": repl, "createTime": e.created.Format(time.RFC3339Nano), "etag": `"` + strconv.Itoa(len(e.versions)) + `"`}
}

func (e *entry) versionAnswer(n int) map[string]any {
	v := e.versions[n-1]
	return map[string]any{
		"name": fmt.Sprintf("%s/versions/%d", e.name, n), "createTime": v.created.Format(time.RFC3339Nano),
		"state": v.state, "etag": fmt.Sprintf(`"%d-%s"`, n, strings.ToLower(v.state)),
		"replicationStatus": map[string]any{"automatic": map[string]any{}}, "clientSpecifiedPayloadChecksum": true,
	}
}

type replicationIn struct {
	Automatic   *struct{} `json:"automatic"`
	UserManaged *struct {
		Replicas []struct {
			Location string `json:"location"`
		} `json:"replicas"`
	} `json:"userManaged"`
}

func (s *Server) createSecret(project, id string, body []byte, req *Request) (any, *apiError) {
	name := secretName(project, id)
	if err := s.check(PermCreate, "projects/"+project); err != nil {
		return nil, err
	}
	if id == "" || len(id) > 255 || strings.Trim(id, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") != "" {
		return nil, errorf(400, "Secret ID must be 1-255 characters of letters, digits, - and _.")
	}
	var in struct {
		Replication replicationIn `json:"replication"`
	}
	if err := json.Unmarshal(body, &in); err != nil {
		return nil, errorf(400, "Invalid JSON payload received.")
	}
	repl := "automatic"
	switch {
	case in.Replication.Automatic != nil && in.Replication.UserManaged == nil:
	case in.Replication.UserManaged != nil && in.Replication.Automatic == nil && len(in.Replication.UserManaged.Replicas) > 0:
		var ls []string
		for _, r := range in.Replication.UserManaged.Replicas {
			ls = append(ls, r.Location)
		}
		repl = strings.Join(ls, ",")
	default:
		return nil, errorf(400, "Secret.replication must specify exactly one of automatic or userManaged.")
	}
	req.Replication = repl
	if s.secrets[name] != nil {
		return nil, errorf(409, "Secret [%s] already exists.", name)
	}
	e := &entry{name: name, replication: repl, created: s.tick()}
	s.secrets[name] = e
	return s.secretAnswer(e), nil
}

func (s *Server) getSecret(name string) (any, *apiError) {
	if err := s.check(PermGet, name); err != nil {
		return nil, err
	}
	e := s.secrets[name]
	if e == nil {
		return nil, errorf(404, "Secret [%s] not found.", name)
	}
	return s.secretAnswer(e), nil
}

func (s *Server) addVersion(name string, body []byte, req *Request) (any, *apiError) {
	if err := s.check(PermAdd, name); err != nil {
		return nil, err
	}
	var in struct {
		Payload struct {
			Data       string  `json:"data"`
			DataCrc32c *string `json:"dataCrc32c"`
		} `json:"payload"`
	}
	if err := json.Unmarshal(body, &in); err != nil {
		return nil, errorf(400, "Invalid JSON payload received.")
	}
	req.HasChecksum = in.Payload.DataCrc32c != nil
	data, err := base64.StdEncoding.DecodeString(in.Payload.Data)
	if err != nil {
		return nil, errorf(400, "Invalid value at 'payload.data' (TYPE_BYTES), Base64 decoding failed.")
	}
	if len(data) > 64*1024 {
		return nil, errorf(400, "Secret payload data length must be at most 65536 bytes.")
	}
	if in.Payload.DataCrc32c != nil {
		want := strconv.FormatUint(uint64(crc32.Checksum(data, crc32.MakeTable(crc32.Castagnoli))), 10)
		if *in.Payload.DataCrc32c != want {
			return nil, errorf(400, "Checksum mismatch: the data_crc32c in the request does not match the payload.")
		}
	}
	e := s.secrets[name]
	if e == nil {
		return nil, errorf(404, "Secret [%s] not found or has no versions.", name)
	}
	e.versions = append(e.versions, &version{data: data, state: Enabled, created: s.tick()})
	return e.versionAnswer(len(e.versions)), nil
}

func (s *Server) resolve(e *entry, id string) (int, *apiError) {
	if id == "latest" {
		if len(e.versions) == 0 {
			return 0, errorf(404, "Secret [%s] not found or has no versions.", e.name)
		}
		return len(e.versions), nil
	}
	n, err := strconv.Atoi(id)
	if err != nil || n < 1 || n > len(e.versions) {
		return 0, errorf(404, "Secret Version [%s/versions/%s] not found.", e.name, id)
	}
	return n, nil
}

func (s *Server) access(name, id string) (any, *apiError) {
	if err := s.check(PermAccess, name); err != nil {
		return nil, err
	}
	e := s.secrets[name]
	if e == nil {
		return nil, errorf(404, "Secret [%s] not found or has no versions.", name)
	}
	n, err := s.resolve(e, id)
	if err != nil {
		return nil, err
	}
	v := e.versions[n-1]
	if v.state != Enabled {
		return nil, &apiError{code: 400, status: "FAILED_PRECONDITION", message: fmt.Sprintf("Secret Version [%s/versions/%d] is in %s state.", name, n, v.state)}
	}
	return map[string]any{
		"name": fmt.Sprintf("%s/versions/%d", name, n),
		"payload": map[string]any{
			"data":       base64.StdEncoding.EncodeToString(v.data),
			"dataCrc32c": strconv.FormatUint(uint64(crc32.Checksum(v.data, crc32.MakeTable(crc32.Castagnoli))), 10),
		},
	}, nil
}

func (s *Server) listVersions(name string, q url.Values) (any, *apiError) {
	if err := s.check(PermList, name); err != nil {
		return nil, err
	}
	e := s.secrets[name]
	if e == nil {
		return nil, errorf(404, "Secret [%s] not found.", name)
	}
	filter := q.Get("filter")
	if filter != "" && !strings.HasPrefix(filter, "state:") {
		return nil, errorf(400, "The fake only filters on state:, not %q.", filter)
	}
	size := 25000
	if v := q.Get("pageSize"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 25000 {
			return nil, errorf(400, "pageSize must be 1 to 25000.")
		}
		size = n
	}
	var ns []int
	for n := len(e.versions); n >= 1; n-- { // newest first
		if filter == "" || "state:"+e.versions[n-1].state == filter {
			ns = append(ns, n)
		}
	}
	start := 0
	if tok := q.Get("pageToken"); tok != "" {
		v, err := strconv.Atoi(tok)
		if err != nil || v < 0 || v > len(ns) {
			return nil, errorf(400, "Invalid page token.")
		}
		start = v
	}
	end := min(start+size, len(ns))
	versions := []any{}
	for _, n := range ns[start:end] {
		versions = append(versions, e.versionAnswer(n))
	}
	out := map[string]any{"versions": versions, "totalSize": len(ns)}
	if end < len(ns) {
		out["nextPageToken"] = strconv.Itoa(end)
	}
	return out, nil
}

func (s *Server) disable(name, id string) (any, *apiError) {
	if err := s.check(PermDisable, name); err != nil {
		return nil, err
	}
	e := s.secrets[name]
	if e == nil {
		return nil, errorf(404, "Secret [%s] not found.", name)
	}
	if id == "latest" {
		return nil, errorf(400, "Aliases are not allowed here; name the version.")
	}
	n, err := s.resolve(e, id)
	if err != nil {
		return nil, err
	}
	if e.versions[n-1].state == Destroyed {
		return nil, &apiError{code: 400, status: "FAILED_PRECONDITION", message: "A destroyed version cannot be disabled."}
	}
	e.versions[n-1].state = Disabled
	return e.versionAnswer(n), nil
}

// token answers a service account's JWT bearer grant (RFC 7523) with
// Token. The assertion's signature is not checked; its claims must name
// this endpoint as audience and ask for a scope.
func (s *Server) token(w http.ResponseWriter, r *http.Request) {
	oauthErr := func(code, desc string) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		_ = json.NewEncoder(w).Encode(map[string]string{"error": code, "error_description": desc})
	}
	if r.Method != http.MethodPost || r.ParseForm() != nil {
		oauthErr("invalid_request", "POST a form")
		return
	}
	g := Grant{GrantType: r.PostForm.Get("grant_type")}
	if g.GrantType != "urn:ietf:params:oauth:grant-type:jwt-bearer" {
		oauthErr("unsupported_grant_type", "only jwt-bearer")
		return
	}
	parts := strings.Split(r.PostForm.Get("assertion"), ".")
	var claims struct {
		Iss   string `json:"iss"`
		Scope string `json:"scope"`
		Aud   string `json:"aud"`
	}
	if len(parts) != 3 {
		oauthErr("invalid_grant", "malformed assertion")
		return
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil || json.Unmarshal(raw, &claims) != nil {
		oauthErr("invalid_grant", "malformed assertion")
		return
	}
	g.Issuer, g.Scope, g.Audience = claims.Iss, claims.Scope, claims.Aud
	s.mu.Lock()
	s.grants = append(s.grants, g)
	token := s.Token
	s.mu.Unlock()
	if claims.Aud != s.TokenURL() || claims.Scope == "" {
		oauthErr("invalid_grant", "Invalid JWT: audience or scope")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"access_token": token, "token_type": "Bearer", "expires_in": 3600})
}
