// Package api is the HTTP API of `rotor serve` under /api/v1, described
// by the OpenAPI document it serves at /api/v1/openapi.json, and the
// GitHub secret-scanning webhook receiver under /hooks/github.
package api

import (
	"log/slog"
	"net/http"

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

// New returns the handler of /api/v1/… and /hooks/github; the service
// mounts it at the root of its mux for those prefixes.
func New(opts Options) http.Handler {
	// Placeholder until the API lands.
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "not implemented", http.StatusNotImplemented)
	})
}
