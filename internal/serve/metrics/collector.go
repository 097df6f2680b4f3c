package metrics

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rotorhq/rotor/internal/engine"
	"github.com/rotorhq/rotor/internal/serve"
	"github.com/rotorhq/rotor/internal/store"
)

// deliveryStates are the values of rotor_target_delivery_state's state
// label: "never" (no delivery recorded) and the store's delivery states.
// Every one is reported (0 or 1) so that a state changing is a series
// going 1→0, which alerts can see.
var deliveryStates = []store.DeliveryState{"never", store.DeliveryPending, store.DeliveryWritten,
	store.DeliveryReloaded, store.DeliveryVerified, store.DeliveryUnverified, store.DeliveryMismatch, store.DeliveryFailed}

// jobKinds are reported in rotor_jobs_queued even when none is queued.
var jobKinds = []serve.Kind{serve.KindRotate, serve.KindRevoke, serve.KindRetire}

var (
	descUp = prometheus.NewDesc("rotor_up",
		"1 if the last scrape read the state of every credential and the queue from the store, 0 if a read failed (see the logs).", nil, nil)
	descScrapeErrors = prometheus.NewDesc("rotor_scrape_errors_total",
		"Store reads that failed during scrapes of this replica.", nil, nil)
	descBuild = prometheus.NewDesc("rotor_build_info",
		"Always 1; the labels say which rotor is running.", []string{"version", "revision", "goversion"}, nil)
	descLastSuccess = prometheus.NewDesc("rotor_last_success_timestamp_seconds",
		"When the credential's current version became current (the end of its last successful rotation), Unix seconds.", []string{"credential"}, nil)
	descNext = prometheus.NewDesc("rotor_next_rotation_timestamp_seconds",
		"When the credential's schedule says it is next due, Unix seconds; absent for a credential without a periodic schedule.", []string{"credential"}, nil)
	descDue = prometheus.NewDesc("rotor_rotation_due",
		"1 while the credential's schedule says it is due now (inside its window) and it has not rotated since, else 0; absent without a periodic schedule.", []string{"credential"}, nil)
	descAge = prometheus.NewDesc("rotor_credential_age_seconds",
		"Age of the credential's current version; absent when rotor never rotated it.", []string{"credential"}, nil)
	descDelivery = prometheus.NewDesc("rotor_target_delivery_state",
		"1 for the target's last recorded delivery state, 0 for the others.", []string{"credential", "target", "state"}, nil)
	descRetirement = prometheus.NewDesc("rotor_retirement_pending",
		"1 while the last rotation's old role still works and awaits retirement (dual strategy), else 0.", []string{"credential"}, nil)
	descRotationActive = prometheus.NewDesc("rotor_rotation_unfinished",
		"1 while the credential has a rotation that has not finished (running, or left for resume), else 0.", []string{"credential"}, nil)
	descQueued = prometheus.NewDesc("rotor_jobs_queued",
		"Jobs waiting to run, by kind (from the job queue in the shared store).", []string{"kind"}, nil)
)

// stateCollector reads the state of the service from the store at each
// scrape, bounded by timeout.
type stateCollector struct {
	backend serve.Backend
	build   BuildInfo
	timeout time.Duration
	logger  *slog.Logger
	errors  atomic.Uint64
}

func newStateCollector(b serve.Backend, build BuildInfo, timeout time.Duration, logger *slog.Logger) *stateCollector {
	return &stateCollector{backend: b, build: build, timeout: timeout, logger: logger}
}

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descUp, descScrapeErrors, descBuild, descLastSuccess, descNext, descDue, descAge,
		descDelivery, descRetirement, descRotationActive, descQueued} {
		ch <- d
	}
}

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	ch <- prometheus.MustNewConstMetric(descBuild, prometheus.GaugeValue, 1, c.build.Version, c.build.Revision, c.build.GoVersion)
	up := 1.0
	fail := func(what string, err error) {
		up = 0
		c.errors.Add(1)
		// The engine's errors never carry a password (they are scrubbed
		// where they arise); only the credential's name is added here.
		c.logger.Warn("metrics: could not read the state", "what", what, "error", err)
	}
	if cfg := c.backend.Config(); cfg != nil {
		eng := c.backend.Engine()
		for _, cr := range cfg.Credentials {
			if ctx.Err() != nil {
				fail("credential "+cr.Name, ctx.Err())
				break
			}
			st, err := eng.Status(ctx, cr, engine.StatusOptions{})
			if err != nil {
				fail("credential "+cr.Name, err)
				continue
			}
			c.credential(ch, st)
		}
	}
	depth, err := c.backend.QueueDepth(ctx)
	if err != nil {
		fail("job queue depth", err)
	} else {
		for _, k := range jobKinds {
			ch <- prometheus.MustNewConstMetric(descQueued, prometheus.GaugeValue, float64(depth[k]), string(k))
		}
	}
	ch <- prometheus.MustNewConstMetric(descUp, prometheus.GaugeValue, up)
	ch <- prometheus.MustNewConstMetric(descScrapeErrors, prometheus.CounterValue, float64(c.errors.Load()))
}

func (c *stateCollector) credential(ch chan<- prometheus.Metric, st *engine.CredentialStatus) {
	name := st.Name
	if st.ActivatedAt != nil {
		ch <- prometheus.MustNewConstMetric(descLastSuccess, prometheus.GaugeValue, unix(*st.ActivatedAt), name)
		ch <- prometheus.MustNewConstMetric(descAge, prometheus.GaugeValue, st.Age.Seconds(), name)
	}
	if st.NextDue != nil {
		ch <- prometheus.MustNewConstMetric(descNext, prometheus.GaugeValue, unix(*st.NextDue), name)
		ch <- prometheus.MustNewConstMetric(descDue, prometheus.GaugeValue, boolValue(st.Due), name)
	}
	ch <- prometheus.MustNewConstMetric(descRetirement, prometheus.GaugeValue, boolValue(st.PendingRetirement != nil), name)
	ch <- prometheus.MustNewConstMetric(descRotationActive, prometheus.GaugeValue, boolValue(st.Active != nil), name)
	for _, t := range st.Targets {
		for _, s := range deliveryStates {
			ch <- prometheus.MustNewConstMetric(descDelivery, prometheus.GaugeValue, boolValue(t.State == s), name, t.Name, string(s))
		}
	}
}

func unix(t time.Time) float64 { return float64(t.UnixNano()) / 1e9 }

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
