// Package awsfake is the AWS JSON 1.1 protocol as the Secrets Manager and
// SSM contract fakes (awssmfake, ssmfake) speak it, following
// ../shared/reference/targets-api.md §7: every call is POST / with
// Content-Type application/x-amz-json-1.1 and X-Amz-Target
// <prefix>.<Operation>; failures are HTTP 400 (5xx for the service's own)
// with the body {"__type":"<Code>","message":"…"} and the same code in the
// X-Amzn-ErrorType header.
//
// SigV4 signatures are not verified, but every call must carry an
// Authorization header whose credential scope names the fake's access key
// and the service's signing name; anything else is answered the way AWS
// answers a wrong key (UnrecognizedClientException) or a malformed
// signature (IncompleteSignatureException).
package awsfake

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// Fake credentials for SDK clients pointed at a fake.
const (
	AccessKeyID     = "AKIAFAKEROTOR0000001"
	SecretAccessKey = "fake-secret-access-key"
	Region          = "us-east-1"
	Account         = "123456789012"
)

// Error is an AWS error answer.
type Error struct {
	// Status defaults to 400.
	Status  int
	Code    string
	Message string
	Header  http.Header
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// Errorf builds a 400 answer.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Fault is a canned answer for the next matching call(s).
type Fault struct {
	// Op limits the fault to one operation ("PutSecretValue"); empty
	// matches every call.
	Op string
	Error
	// Times is how many calls get this answer (at least one).
	Times int
}

// Throttle is the fault AWS answers when a caller exceeds its rate.
func Throttle(op string, times int) Fault {
	return Fault{Op: op, Times: times, Error: Error{Code: "ThrottlingException", Message: "Rate exceeded"}}
}

// Call is what the server saw of one request, besides the body.
type Call struct {
	Op          string
	ContentType string
	// AccessKey is the key id from the Authorization credential scope.
	AccessKey string
	// Scope is region/service from the credential scope.
	Scope string
}

// Handler answers one operation. body is the raw JSON request; the
// returned value is marshalled as the answer.
type Handler func(body []byte) (any, *Error)

// Server is one fake AWS service endpoint.
type Server struct {
	URL string

	prefix  string
	service string
	srv     *httptest.Server
	ops     map[string]Handler

	mu        sync.Mutex
	accessKey string
	faults    []Fault
	calls     []Call
}

// New starts an endpoint for the service whose X-Amz-Target prefix is
// prefix ("secretsmanager", "AmazonSSM") and whose SigV4 signing name is
// service ("secretsmanager", "ssm").
func New(t testing.TB, prefix, service string, ops map[string]Handler) *Server {
	t.Helper()
	s := &Server{prefix: prefix, service: service, ops: ops, accessKey: AccessKeyID}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	s.URL = s.srv.URL
	t.Cleanup(s.srv.Close)
	return s
}

// Env is an environment (for target.Params.Getenv) whose credentials the
// fake accepts and that keeps the SDK away from real config files and the
// instance metadata service. dir must be a private directory.
func Env(dir string) map[string]string {
	return map[string]string{
		"AWS_ACCESS_KEY_ID":           AccessKeyID,
		"AWS_SECRET_ACCESS_KEY":       SecretAccessKey,
		"AWS_REGION":                  Region,
		"AWS_CONFIG_FILE":             dir + "/aws-config",
		"AWS_SHARED_CREDENTIALS_FILE": dir + "/aws-credentials",
		"AWS_EC2_METADATA_DISABLED":   "true",
	}
}

// Client returns an HTTP client for the fake.
func (s *Server) Client() *http.Client { return s.srv.Client() }

// RevokeKey makes the fake refuse the access key it accepted so far, as
// AWS does for a deleted or mistyped key.
func (s *Server) RevokeKey() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.accessKey = "AKIA-NO-KEY-IS-VALID"
}

// FailNext queues a fault.
func (s *Server) FailNext(f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f.Times = max(f.Times, 1)
	s.faults = append(s.faults, f)
}

// Calls returns the calls received so far.
func (s *Server) Calls() []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Call(nil), s.calls...)
}

// Ops returns the operations called so far, in order.
func (s *Server) Ops() []string {
	var ops []string
	for _, c := range s.Calls() {
		ops = append(ops, c.Op)
	}
	return ops
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != "/" {
		writeError(w, &Error{Status: http.StatusNotFound, Code: "UnknownOperationException", Message: "the JSON protocol is POST /"})
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		writeError(w, Errorf("SerializationException", "cannot read the body"))
		return
	}
	target := r.Header.Get("X-Amz-Target")
	prefix, op, _ := strings.Cut(target, ".")
	call := Call{Op: op, ContentType: r.Header.Get("Content-Type")}
	call.AccessKey, call.Scope = credentialScope(r.Header.Get("Authorization"))

	s.mu.Lock()
	s.calls = append(s.calls, call)
	accessKey := s.accessKey
	var fault *Error
	for i := range s.faults {
		f := &s.faults[i]
		if f.Times > 0 && (f.Op == "" || f.Op == op) {
			f.Times--
			e := f.Error
			fault = &e
			break
		}
	}
	s.mu.Unlock()

	switch {
	case call.ContentType != "application/x-amz-json-1.1":
		writeError(w, Errorf("SerializationException", "Content-Type must be application/x-amz-json-1.1, not %q", call.ContentType))
	case r.Header.Get("Authorization") == "":
		writeError(w, &Error{Status: http.StatusBadRequest, Code: "MissingAuthenticationTokenException", Message: "Missing Authentication Token"})
	case call.AccessKey == "" || !strings.HasSuffix(call.Scope, "/"+s.service):
		writeError(w, Errorf("IncompleteSignatureException", "Credential should be scoped to correct service: '%s'.", s.service))
	case call.AccessKey != accessKey:
		writeError(w, Errorf("UnrecognizedClientException", "The security token included in the request is invalid."))
	case prefix != s.prefix || s.ops[op] == nil:
		writeError(w, Errorf("UnknownOperationException", "unknown operation %q", target))
	case fault != nil:
		writeError(w, fault)
	default:
		out, aerr := s.ops[op](body)
		if aerr != nil {
			writeError(w, aerr)
			return
		}
		data, err := json.Marshal(out)
		if err != nil {
			writeError(w, &Error{Status: http.StatusInternalServerError, Code: "InternalFailure", Message: err.Error()})
			return
		}
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		_, _ = w.Write(data)
	}
}

// credentialScope reads "AWS4-HMAC-SHA256 Credential=AKID/20260801/us-east-1/ssm/aws4_request, …".
func credentialScope(auth string) (accessKey, scope string) {
	_, cred, ok := strings.Cut(auth, "Credential=")
	if !ok {
		return "", ""
	}
	cred, _, _ = strings.Cut(cred, ",")
	parts := strings.Split(cred, "/")
	if len(parts) != 5 || parts[4] != "aws4_request" {
		return "", ""
	}
	return parts[0], parts[2] + "/" + parts[3]
}

func writeError(w http.ResponseWriter, e *Error) {
	status := e.Status
	if status == 0 {
		status = http.StatusBadRequest
	}
	for k, vs := range e.Header {
		for _, v := range vs {
			w.Header().Add(k, v)
		}
	}
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.Header().Set("X-Amzn-ErrorType", e.Code)
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"__type": e.Code, "message": e.Message})
}

// Decode strictly decodes a request body: a field the operation does not
// have is a client bug the fake should surface, not ignore.
func Decode(body []byte, v any) *Error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return Errorf("SerializationException", "cannot decode the request: %v", err)
	}
	return nil
}
