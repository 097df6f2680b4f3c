// Package metrics is the Prometheus endpoint of `rotor serve`.
package metrics

import (
	"net/http"
	"time"

	"github.com/rotorhq/rotor/internal/serve"
)

// BuildInfo labels rotor_build_info.
type BuildInfo struct {
	Version, Revision, GoVersion string
}

// Metrics collects what /metrics shows.
type Metrics struct {
	backend serve.Backend
	build   BuildInfo
}

// New returns the metrics of the service behind b.
func New(b serve.Backend, build BuildInfo) *Metrics {
	return &Metrics{backend: b, build: build}
}

// RotationFinished is called by the service core once per rotation job
// this replica ran to an end (result is the rotation's status, e.g.
// succeeded, switched, rolled_back, failed).
func (m *Metrics) RotationFinished(credential, strategy, result string, d time.Duration) {}

// Handler serves /metrics.
func (m *Metrics) Handler() http.Handler {
	// Placeholder until the metrics land.
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "not implemented", http.StatusNotImplemented)
	})
}
