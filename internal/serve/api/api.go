// Package api is the HTTP API of `rotor serve` under /api/v1, described
// by the OpenAPI document it serves at /api/v1/openapi.json, and the
// GitHub secret-scanning webhook receiver under /hooks/github.
package api

import (
	_ "embed"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"

	"github.com/rotorhq/rotor/internal/secret"
	"github.com/rotorhq/rotor/internal/serve"
	"github.com/rotorhq/rotor/internal/serve/auth"
)

// Options configure the API.
type Options struct {
	Backend serve.Backend
	Tokens  *auth.Tokens
	// GitHubWebhookSecret verifies the X-Hub-Signature-256 of GitHub's
	// secret_scanning_alert deliveries; zero turns the receiver off.
	GitHubWebhookSecret secret.String
	Logger              *slog.Logger
}

// OpenAPI is the API's OpenAPI 3 document, written by hand: it is the
// contract, and the tests hold every response to it.
//
//go:embed openapi.json
var OpenAPI []byte

// maxBody bounds a request body: nothing the API takes is larger than a
// connection string or a GitHub alert.
const maxBody = 1 << 20

type api struct {
	opts Options
	log  *slog.Logger
}

// New returns the handler of /api/v1/… and /hooks/github; the service
// mounts it at the root of its mux for those prefixes.
func New(opts Options) http.Handler {
	a := &api{opts: opts, log: opts.Logger}
	if a.log == nil {
		a.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if a.opts.Tokens == nil {
		a.opts.Tokens = &auth.Tokens{}
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v1/openapi.json", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(OpenAPI)
	})
	read, rotate, admin := auth.ScopeRead, auth.ScopeRotate, auth.ScopeAdmin
	mux.Handle("GET /api/v1/credentials", a.with(read, a.listCredentials))
	mux.Handle("GET /api/v1/credentials/{name}", a.with(read, a.getCredential))
	mux.Handle("GET /api/v1/credentials/{name}/plan", a.with(read, a.plan))
	mux.Handle("POST /api/v1/credentials/{name}/rotations", a.with(rotate, a.rotate))
	mux.Handle("POST /api/v1/credentials/{name}/revoke", a.with(admin, a.revoke))
	mux.Handle("POST /api/v1/credentials/{name}/retire", a.with(admin, a.retire))
	mux.Handle("GET /api/v1/jobs/{id}", a.with(read, a.job))
	mux.Handle("GET /api/v1/rotations", a.with(read, a.listRotations))
	mux.Handle("GET /api/v1/rotations/{id}", a.with(read, a.getRotation))
	mux.Handle("GET /api/v1/history", a.with(read, a.history))
	mux.Handle("POST /api/v1/leaks", a.with(rotate, a.leak))
	mux.HandleFunc("POST /hooks/github", a.github)
	mux.HandleFunc("/api/v1/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "not_found", r.Method+" "+r.URL.Path+" is not part of the API; see /api/v1/openapi.json")
	})
	return mux
}

// handler is an endpoint that knows who called it.
type handler func(w http.ResponseWriter, r *http.Request, id auth.Identity)

// with authenticates the bearer token and checks its scope before h runs.
func (a *api) with(scope auth.Scope, h handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		scheme, token, _ := strings.Cut(r.Header.Get("Authorization"), " ")
		// The scheme is case-insensitive (RFC 9110 §11.1).
		if !strings.EqualFold(scheme, "Bearer") || token == "" {
			w.Header().Set("WWW-Authenticate", `Bearer realm="rotor"`)
			writeError(w, http.StatusUnauthorized, "unauthenticated", "send an API token as `Authorization: Bearer <token>` (tokens come from ROTOR_API_TOKENS)")
			return
		}
		id, ok := a.opts.Tokens.Authenticate(token)
		if !ok {
			w.Header().Set("WWW-Authenticate", `Bearer realm="rotor", error="invalid_token"`)
			writeError(w, http.StatusUnauthorized, "invalid_token", "the API token is not one rotor serve knows; check ROTOR_API_TOKENS")
			return
		}
		if !id.Allows(scope) {
			writeError(w, http.StatusForbidden, "insufficient_scope", "token "+id.Name+" has scope "+id.Scope.String()+"; this call needs "+scope.String())
			return
		}
		if r.Method != http.MethodGet {
			// Who asked for a change, by the token's name (never the token).
			a.log.Info("api call", "method", r.Method, "path", r.URL.Path, "actor", id.Name)
		}
		h(w, r, id)
	})
}

// apiError is the body of every error response.
type apiError struct {
	Error errorBody `json:"error"`
}

type errorBody struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, apiError{Error: errorBody{Code: code, Message: msg}})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// internalError logs the cause (secret-free: engine and store errors are
// scrubbed where they arise) and answers 500.
func (a *api) internalError(w http.ResponseWriter, r *http.Request, err error) {
	a.log.Error("api request failed", "method", r.Method, "path", r.URL.Path, "error", err.Error())
	writeError(w, http.StatusInternalServerError, "internal", err.Error())
}
