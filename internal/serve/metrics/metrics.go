// Package metrics is the Prometheus endpoint of `rotor serve`.
//
// Two kinds of metric live here. The state of every credential (last
// success, next due, age, target deliveries, pending retirement, queue
// depth) is read from the shared store at scrape time by a custom
// collector, so every replica reports the same truth whichever of them ran
// the rotation. Counts and durations of rotations are process-local: each
// replica counts the rotations it ran, and Prometheus sums over replicas.
package metrics

import (
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/rotorhq/rotor/internal/engine"
	"github.com/rotorhq/rotor/internal/serve"
)

// BuildInfo labels rotor_build_info.
type BuildInfo struct {
	Version, Revision, GoVersion string
}

// DefaultScrapeTimeout bounds the store reads of one scrape: a store that
// hangs must not hang Prometheus's scrape (its own default timeout is 10s).
const DefaultScrapeTimeout = 5 * time.Second

// Metrics collects what /metrics shows.
type Metrics struct {
	backend   serve.Backend
	build     BuildInfo
	registry  *prometheus.Registry
	rotations *prometheus.CounterVec
	durations *prometheus.HistogramVec
	sessions  *prometheus.GaugeVec
	state     *stateCollector
}

// New returns the metrics of the service behind b.
func New(b serve.Backend, build BuildInfo) *Metrics {
	m := &Metrics{backend: b, build: build, registry: prometheus.NewRegistry()}
	m.rotations = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "rotor_rotations_total",
		Help: "Rotation jobs this replica ran to an end, by credential, strategy and result (the rotation's final status).",
	}, []string{"credential", "strategy", "result"})
	m.durations = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "rotor_rotation_duration_seconds",
		Help: "Wall time of the rotation jobs this replica ran, by strategy (a dual rotation includes its drain).",
		// From a quick single rotation to a long dual drain.
		Buckets: []float64{0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600},
	}, []string{"strategy"})
	m.sessions = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "rotor_old_role_sessions",
		Help: "Sessions seen on a dual rotation's old role at this replica's last look (0 once retired): consumers that have not moved yet.",
	}, []string{"credential"})
	m.state = newStateCollector(b, build, DefaultScrapeTimeout, slog.Default())
	m.registry.MustRegister(m.rotations, m.durations, m.sessions, m.state,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// SetLogger sets where scrape failures are logged (slog.Default until
// then). Call it before Handler serves: scrapes read it unlocked.
func (m *Metrics) SetLogger(l *slog.Logger) { m.state.logger = l }

// SetScrapeTimeout bounds the store reads of one scrape
// (DefaultScrapeTimeout until then). Call it before Handler serves.
func (m *Metrics) SetScrapeTimeout(d time.Duration) { m.state.timeout = d }

// Registry is the registry behind Handler (for tests and for adding
// collectors of other parts of the service).
func (m *Metrics) Registry() *prometheus.Registry { return m.registry }

// RotationFinished is called by the service core once per rotation job
// this replica ran to an end (result is the rotation's status, e.g.
// succeeded, switched, rolled_back, failed).
func (m *Metrics) RotationFinished(credential, strategy, result string, d time.Duration) {
	m.rotations.WithLabelValues(credential, strategy, result).Inc()
	m.durations.WithLabelValues(strategy).Observe(d.Seconds())
}

// Observe records what a job of this replica saw of a credential's old
// role: the sessions still on it while its retirement waits, none once it
// is retired. Counting sessions needs the database, so it is taken from
// the jobs that look anyway rather than at every scrape.
func (m *Metrics) Observe(res *engine.Result) {
	if res == nil || res.Strategy != "dual" {
		return
	}
	n := len(res.OldSessions)
	if rt := res.Retirement; rt != nil {
		switch rt.State {
		case engine.RetirementPending, engine.RetirementInUse, engine.RetirementKept:
			n = max(n, len(rt.Evidence.Sessions))
		default:
			n = 0
		}
	}
	m.sessions.WithLabelValues(res.Credential).Set(float64(n))
}

// Handler serves /metrics.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{
		// A collector error is reported as rotor_up 0, never as a 500 that
		// would hide every other metric.
		ErrorHandling: promhttp.ContinueOnError,
	})
}
