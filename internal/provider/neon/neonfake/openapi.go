package neonfake

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"
)

// SpecEnv names a variable that may point at neon-openapi.json when it is
// not at its usual place, ../shared/reference beside the repository.
const SpecEnv = "ROTOR_NEON_OPENAPI"

// specServer is the spec's own server; requests are rewritten onto it so
// the router can match them.
const specServer = "https://console.neon.tech/api/v2"

// servedPaths are the spec paths the fake answers. The router is built
// from these alone: the rest of the spec is irrelevant here, and one of its
// unrelated patterns does not compile as a Go regexp.
var servedPaths = []string{
	"/projects/{project_id}/branches",
	"/projects/{project_id}/branches/{branch_id}",
	"/projects/{project_id}/branches/{branch_id}/endpoints",
	"/projects/{project_id}/endpoints",
	"/projects/{project_id}/branches/{branch_id}/databases",
	"/projects/{project_id}/branches/{branch_id}/databases/{database_name}",
	"/projects/{project_id}/branches/{branch_id}/roles",
	"/projects/{project_id}/branches/{branch_id}/roles/{role_name}",
	"/projects/{project_id}/branches/{branch_id}/roles/{role_name}/reveal_password",
	"/projects/{project_id}/branches/{branch_id}/roles/{role_name}/reset_password",
	"/projects/{project_id}/connection_uri",
	"/projects/{project_id}/operations/{operation_id}",
}

// Validator checks requests and responses against the Neon OpenAPI spec.
type Validator struct {
	router routers.Router
}

var (
	specOnce sync.Once
	specVal  *Validator
	specErr  error
)

// SpecPath finds neon-openapi.json: $ROTOR_NEON_OPENAPI, else
// ../shared/reference/neon-openapi.json from the repository root (the
// directory holding go.mod), where CI keeps shared/ beside the checkout.
func SpecPath() (string, error) {
	if p := os.Getenv(SpecEnv); p != "" {
		return p, nil
	}
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return filepath.Join(dir, "..", "shared", "reference", "neon-openapi.json"), nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory, so the repository root (and ../shared beside it) is unknown")
		}
		dir = parent
	}
}

// LoadValidator loads and compiles the spec once per process.
func LoadValidator() (*Validator, error) {
	specOnce.Do(func() {
		specVal, specErr = loadValidator()
	})
	return specVal, specErr
}

func loadValidator() (*Validator, error) {
	path, err := SpecPath()
	if err != nil {
		return nil, fmt.Errorf("find the Neon OpenAPI spec: %w; set %s to its path", err, SpecEnv)
	}
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("the Neon OpenAPI spec is not at %s (CI keeps shared/ beside the checkout); check out shared/ there or set %s: %w", path, SpecEnv, err)
	}
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromFile(path)
	if err != nil {
		return nil, fmt.Errorf("load the Neon OpenAPI spec %s: %w", path, err)
	}
	paths := openapi3.NewPaths()
	for _, p := range servedPaths {
		item := doc.Paths.Value(p)
		if item == nil {
			return nil, fmt.Errorf("the Neon OpenAPI spec %s has no path %s; the fake and the spec disagree", path, p)
		}
		paths.Set(p, item)
	}
	doc.Paths = paths
	router, err := legacy.NewRouter(doc)
	if err != nil {
		return nil, fmt.Errorf("build a router from the Neon OpenAPI spec: %w", err)
	}
	return &Validator{router: router}, nil
}

// Check validates one exchange: the request (path, query, body) and the
// response (status, content type, body) against the spec. path is the
// request's escaped path below /api/v2.
func (v *Validator) Check(method, path, rawQuery string, reqHeader http.Header, reqBody []byte, status int, respHeader http.Header, respBody []byte) error {
	target := specServer + path
	if rawQuery != "" {
		target += "?" + rawQuery
	}
	u, err := url.Parse(target)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	req := (&http.Request{Method: method, URL: u, Header: reqHeader.Clone(), Host: u.Host}).WithContext(context.Background())
	if reqBody != nil {
		req.Body = io.NopCloser(bytes.NewReader(reqBody))
		req.ContentLength = int64(len(reqBody))
	}
	route, params, err := v.router.FindRoute(req)
	if err != nil {
		return fmt.Errorf("%s %s is not in the Neon API spec: %w", method, path, err)
	}
	opts := &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc, MultiError: true, IncludeResponseStatus: true}
	in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route, Options: opts}
	var problems []string
	if err := openapi3filter.ValidateRequest(context.Background(), in); err != nil {
		problems = append(problems, "request: "+err.Error())
	}
	out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: status, Header: respHeader, Options: opts}
	out.SetBodyBytes(respBody)
	if err := openapi3filter.ValidateResponse(context.Background(), out); err != nil {
		problems = append(problems, fmt.Sprintf("response %d: %v", status, err))
	}
	if len(problems) > 0 {
		return fmt.Errorf("%s %s breaks the Neon API spec: %s", method, path, strings.Join(problems, "; "))
	}
	return nil
}
