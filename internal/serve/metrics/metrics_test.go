package metrics_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"

	"github.com/rotorhq/rotor/internal/engine"
	"github.com/rotorhq/rotor/internal/provider"
	"github.com/rotorhq/rotor/internal/secret"
	"github.com/rotorhq/rotor/internal/serve"
	"github.com/rotorhq/rotor/internal/serve/metrics"
)

var build = metrics.BuildInfo{Version: "1.2.3", Revision: "abc123", GoVersion: "go1.26.8"}

// scrape GETs /metrics over HTTP and returns the body and its parsed families.
func scrape(t *testing.T, m *metrics.Metrics) (string, map[string]*dto.MetricFamily) {
	t.Helper()
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(strings.NewReader(string(body)))
	require.NoError(t, err)
	return string(body), fams
}

// value returns the value of the family's series with exactly labels.
func value(t *testing.T, fams map[string]*dto.MetricFamily, name string, labels map[string]string) (float64, bool) {
	t.Helper()
	f := fams[name]
	if f == nil {
		return 0, false
	}
next:
	for _, m := range f.Metric {
		if len(m.Label) != len(labels) {
			continue
		}
		for _, l := range m.Label {
			if labels[l.GetName()] != l.GetValue() {
				continue next
			}
		}
		switch {
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		}
	}
	return 0, false
}

func mustValue(t *testing.T, fams map[string]*dto.MetricFamily, name string, labels map[string]string) float64 {
	t.Helper()
	v, ok := value(t, fams, name, labels)
	require.True(t, ok, "no series %s%v", name, labels)
	return v
}

func TestScrapeBeforeAndAfterARealRotation(t *testing.T) {
	w := setup(t)
	m := metrics.New(w.backend, build)

	// Never rotated: no age, no last success; the target was never written.
	_, fams := scrape(t, m)
	require.Equal(t, 1.0, mustValue(t, fams, "rotor_up", nil))
	_, ok := value(t, fams, "rotor_last_success_timestamp_seconds", map[string]string{"credential": "app"})
	require.False(t, ok, "a credential never rotated has no last success")
	require.Equal(t, 1.0, mustValue(t, fams, "rotor_rotation_due", map[string]string{"credential": "app"}), "never rotated is due")
	require.InDelta(t, float64(time.Now().Unix()), mustValue(t, fams, "rotor_next_rotation_timestamp_seconds", map[string]string{"credential": "app"}), 3600, "due now")
	require.Equal(t, 1.0, mustValue(t, fams, "rotor_target_delivery_state", map[string]string{"credential": "app", "target": "env", "state": "never"}))
	require.Equal(t, 2.0, mustValue(t, fams, "rotor_jobs_queued", map[string]string{"kind": "rotate"}))
	require.Equal(t, 0.0, mustValue(t, fams, "rotor_jobs_queued", map[string]string{"kind": "retire"}))
	require.Equal(t, 1.0, mustValue(t, fams, "rotor_build_info", map[string]string{"version": "1.2.3", "revision": "abc123", "goversion": "go1.26.8"}))

	before := time.Now()
	res := w.rotate(t)
	m.RotationFinished("app", res.Strategy, string(res.Status), 1500*time.Millisecond)
	after := time.Now()

	body, fams := scrape(t, m)
	require.Equal(t, 1.0, mustValue(t, fams, "rotor_up", nil))
	last := mustValue(t, fams, "rotor_last_success_timestamp_seconds", map[string]string{"credential": "app"})
	require.GreaterOrEqual(t, last, float64(before.Unix()-1))
	require.LessOrEqual(t, last, float64(after.Unix()+1))
	next := mustValue(t, fams, "rotor_next_rotation_timestamp_seconds", map[string]string{"credential": "app"})
	require.InDelta(t, last+720*3600, next, 3600, "next due is a schedule period after the last success")
	require.Equal(t, 0.0, mustValue(t, fams, "rotor_rotation_due", map[string]string{"credential": "app"}), "just rotated")
	age := mustValue(t, fams, "rotor_credential_age_seconds", map[string]string{"credential": "app"})
	require.GreaterOrEqual(t, age, 0.0)
	require.Less(t, age, 3600.0)
	require.Equal(t, 0.0, mustValue(t, fams, "rotor_target_delivery_state", map[string]string{"credential": "app", "target": "env", "state": "never"}))
	var current float64
	for _, s := range []string{"verified", "unverifiable", "reloaded", "written"} {
		current += mustValue(t, fams, "rotor_target_delivery_state", map[string]string{"credential": "app", "target": "env", "state": s})
	}
	require.Equal(t, 1.0, current, "exactly one delivered state is 1")
	require.Equal(t, 0.0, mustValue(t, fams, "rotor_retirement_pending", map[string]string{"credential": "app"}))
	require.Equal(t, 0.0, mustValue(t, fams, "rotor_rotation_unfinished", map[string]string{"credential": "app"}))
	require.Equal(t, 1.0, mustValue(t, fams, "rotor_rotations_total", map[string]string{"credential": "app", "strategy": "single", "result": "succeeded"}))
	h := fams["rotor_rotation_duration_seconds"]
	require.NotNil(t, h)
	require.Equal(t, uint64(1), h.Metric[0].Histogram.GetSampleCount())
	require.InDelta(t, 1.5, h.Metric[0].Histogram.GetSampleSum(), 1e-9)
	require.Contains(t, fams, "go_goroutines")
	require.Contains(t, fams, "process_start_time_seconds")

	// Never a secret: neither the role's old password, nor the new one
	// the dotenv target holds, nor its connection string.
	env, err := os.ReadFile(w.envFile)
	require.NoError(t, err)
	newURL := strings.Trim(strings.TrimPrefix(strings.TrimSpace(string(env)), "DATABASE_URL="), `"'`)
	require.NotEmpty(t, newURL)
	require.Empty(t, secret.Leaks([]byte(body), w.password, secret.New(newURL)))
	require.NotContains(t, body, "fingerprint")
}

func TestMetricNamesPassPromlint(t *testing.T) {
	w := setup(t)
	m := metrics.New(w.backend, build)
	w.rotate(t)
	m.RotationFinished("app", "single", "succeeded", time.Second)
	problems, err := testutil.GatherAndLint(m.Registry())
	require.NoError(t, err)
	var ours []promlint.Problem
	for _, p := range problems {
		if strings.HasPrefix(p.Metric, "rotor_") {
			ours = append(ours, p)
		}
	}
	require.Empty(t, ours)
}

func TestScrapeAnswersWhenTheStoreCannotBeRead(t *testing.T) {
	w := setup(t)
	m := metrics.New(w.backend, build)
	require.NoError(t, w.backend.st.Close())
	w.backend.depthErr = serve.ErrNoJob // any error: the queue cannot be read either

	_, fams := scrape(t, m)
	require.Equal(t, 0.0, mustValue(t, fams, "rotor_up", nil))
	require.Equal(t, 2.0, mustValue(t, fams, "rotor_scrape_errors_total", nil), "the credential and the queue")
	require.Equal(t, 1.0, mustValue(t, fams, "rotor_build_info", map[string]string{"version": "1.2.3", "revision": "abc123", "goversion": "go1.26.8"}))
	_, fams = scrape(t, m)
	require.Equal(t, 4.0, mustValue(t, fams, "rotor_scrape_errors_total", nil))
}

// A store that hangs does not hang the scrape: the collector's context
// ends at the scrape timeout and the answer says rotor_up 0.
func TestScrapeOfAHangingStoreEndsAtTheTimeout(t *testing.T) {
	w := setup(t)
	w.backend.hang = true
	m := metrics.New(w.backend, build)
	m.SetScrapeTimeout(100 * time.Millisecond)
	_, fams := scrape(t, m)
	require.Equal(t, 0.0, mustValue(t, fams, "rotor_up", nil))
	require.Equal(t, 1.0, mustValue(t, fams, "rotor_scrape_errors_total", nil))
	// The credential was read before the queue hung.
	require.Equal(t, 1.0, mustValue(t, fams, "rotor_target_delivery_state", map[string]string{"credential": "app", "target": "env", "state": "never"}))
}

// The sessions still on a dual rotation's old role come from what the
// jobs saw: the count while its retirement waits, 0 once it is retired.
func TestOldRoleSessionsFollowTheJobs(t *testing.T) {
	w := setup(t)
	m := metrics.New(w.backend, build)
	pending := &engine.Result{Credential: "app", Strategy: "dual", Retirement: &engine.Retirement{State: engine.RetirementPending,
		Evidence: engine.Evidence{Sessions: []provider.Session{{PID: 1}, {PID: 2}}}}}
	m.Observe(pending)
	m.Observe(&engine.Result{Credential: "solo", Strategy: "single"})
	text, _ := scrape(t, m)
	require.Contains(t, text, `rotor_old_role_sessions{credential="app"} 2`)
	require.NotContains(t, text, `rotor_old_role_sessions{credential="solo"}`, "a single credential has no old role")
	m.Observe(&engine.Result{Credential: "app", Strategy: "dual", Retirement: &engine.Retirement{State: engine.RetirementRetired}})
	text, _ = scrape(t, m)
	require.Contains(t, text, `rotor_old_role_sessions{credential="app"} 0`)
}
