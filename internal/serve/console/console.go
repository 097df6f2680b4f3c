// Package console is the web console of `rotor serve`: server-rendered
// pages over the same Backend and tokens as the API.
package console

import (
	"log/slog"
	"net/http"

	"github.com/rotorhq/rotor/internal/serve"
	"github.com/rotorhq/rotor/internal/serve/auth"
)

// Options configure the console.
type Options struct {
	Backend serve.Backend
	Tokens  *auth.Tokens
	// Secure marks the session cookie Secure (the service listens with TLS).
	Secure bool
	Logger *slog.Logger
}

// New returns the console's handler; the service mounts it at "/" (every
// path not taken by /api/, /hooks/, /metrics, /healthz, /readyz).
func New(opts Options) http.Handler {
	// Placeholder until the console lands.
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "not implemented", http.StatusNotImplemented)
	})
}
