package bench

import (
	"crypto/rand"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/rotorhq/rotor/internal/engine"
	"github.com/rotorhq/rotor/internal/pgtest"
	"github.com/rotorhq/rotor/internal/provider"
	pbuiltin "github.com/rotorhq/rotor/internal/provider/builtin"
	"github.com/rotorhq/rotor/internal/resolve"
	"github.com/rotorhq/rotor/internal/secret"
	"github.com/rotorhq/rotor/internal/store"
	"github.com/rotorhq/rotor/internal/store/sqlite"
	tbuiltin "github.com/rotorhq/rotor/internal/target/builtin"
	"github.com/rotorhq/rotor/internal/target/render/renderfake"
)

// fanOutDelay is what every request to the Render fake takes while the
// publish step runs: a slow platform API.
const fanOutDelay = 200 * time.Millisecond

// BenchmarkPublishFanOut rotates a real dual credential whose targets are
// n Render services (one target each, through the registered render
// target, against renderfake with fanOutDelay per request), with the
// default publish.concurrency and with one large enough for every target.
// A Render write is a read and an add-or-update, so one target takes about
// 2×fanOutDelay.
//
// It reports the publish step's wall time, the slowest target's own time,
// their ratio (parallel publishing keeps it near 1 up to the concurrency
// bound; the goal is ≤ 1.5) and the serial sum of every target's time,
// which is what publishing one target after another would cost.
//
//	go test ./internal/bench -run '^$' -bench PublishFanOut -benchtime 3x
func BenchmarkPublishFanOut(b *testing.B) {
	for _, n := range []int{1, 10, 50, 200} {
		for _, conc := range []int{0, n} {
			name := fmt.Sprintf("targets=%d/concurrency=default", n)
			if conc > 0 {
				name = fmt.Sprintf("targets=%d/concurrency=%d", n, conc)
			}
			b.Run(name, func(b *testing.B) { benchFanOut(b, n, conc) })
		}
	}
}

func benchFanOut(b *testing.B, n, concurrency int) {
	ctx := b.Context()
	cl := pgtest.Shared(b)
	db, adminURL := pgtest.NewDatabase(b)
	roles, group := pgtest.NewDualRoles(b, cl, pgtest.UniqueName(b, "fan"))

	fake := renderfake.New(b, renderfake.Options{})
	var targets strings.Builder
	for i := range n {
		id := fmt.Sprintf("srv-bench%04d", i)
		fake.AddService(id, id)
		// deploy: false — the benchmark measures the writes' fan-out; a
		// deploy would add one more request per target.
		fmt.Fprintf(&targets, "      - name: render-%04d\n        type: render\n        service_id: %s\n        deploy: false\n        token: ${RENDER_API_KEY}\n        api_url: %s\n        values:\n          DATABASE_URL: \"{{.URL}}\"\n", i, id, fake.URL)
	}
	publish := ""
	if concurrency > 0 {
		publish = fmt.Sprintf("    publish:\n      concurrency: %d\n", concurrency)
	}
	yaml := fmt.Sprintf(`version: 1
credentials:
  app:
    provider:
      type: postgres
      admin_url: ${ADMIN_URL}
    connection:
      url: postgresql://%s:%d/%s?sslmode=require&channel_binding=require
    strategy: dual
    roles: [%q, %q]
    group: %q
    # The fan-out is measured, not the retirement's grace and quiet.
    drain: {grace: 1ms, quiet: 1ms, poll: 1ms}
%s    targets:
%s`, cl.Host, cl.Port, db, roles[0], roles[1], group, publish, targets.String())
	dir := b.TempDir()
	cfgPath := filepath.Join(dir, "rotor.yaml")
	require.NoError(b, os.WriteFile(cfgPath, []byte(yaml), 0o600))
	env := map[string]string{"ADMIN_URL": adminURL.Reveal(), "RENDER_API_KEY": fake.Token()}
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.MaxIdleConnsPerHost = 2 * n
	cfg, err := resolve.Load(cfgPath, func(k string) (string, bool) { v, ok := env[k]; return v, ok }, resolve.Registry{
		Provider: pbuiltin.Lookup, Target: tbuiltin.Lookup,
		HTTPClient: &http.Client{Transport: transport}, Getenv: func(k string) string { return env[k] }, Now: time.Now,
	})
	require.NoError(b, err)
	b.Cleanup(func() { cfg.Close() })
	cr, err := cfg.Credential("app")
	require.NoError(b, err)
	_, err = cr.Provider.EnsureRoles(ctx, provider.EnsureRolesRequest{Group: group, Logins: roles, Database: db})
	require.NoError(b, err)

	st, err := sqlite.Open(ctx, filepath.Join(dir, "state.db"))
	require.NoError(b, err)
	b.Cleanup(func() { st.Close() })
	key := make([]byte, 32)
	_, err = rand.Read(key)
	require.NoError(b, err)
	sealer, err := secret.NewSealer(key)
	require.NoError(b, err)
	// The fake is slow only while publish runs, so that the read-back in
	// confirm (one target after the other) does not dominate the run.
	eng := &engine.Engine{Store: st, Sealer: sealer, Hooks: &engine.Hooks{BeforeStep: func(step string) error {
		switch step {
		case engine.StepPublish:
			fake.SetDelay(fanOutDelay)
		case engine.StepConfirm:
			fake.SetDelay(0)
		}
		return nil
	}}}

	var publishWall, slowest, serial time.Duration
	rotations := 0
	for b.Loop() {
		res, err := eng.Rotate(ctx, cr, engine.Options{})
		require.NoError(b, err)
		require.Equal(b, store.StatusSucceeded, res.Status, res.Outcome)
		require.Len(b, res.Targets, n)
		for _, s := range res.Steps {
			if s.Name == engine.StepPublish {
				publishWall += s.Duration
			}
		}
		var top time.Duration
		for _, tr := range res.Targets {
			require.Equal(b, store.DeliveryVerified, tr.State, tr.Name)
			serial += tr.Duration
			if tr.Duration > top {
				top = tr.Duration
			}
		}
		slowest += top
		rotations++
	}
	per := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 / float64(rotations) }
	b.ReportMetric(per(publishWall), "publish-ms")
	b.ReportMetric(per(slowest), "slowest-target-ms")
	b.ReportMetric(float64(publishWall)/float64(slowest), "publish/slowest")
	b.ReportMetric(per(serial), "serial-sum-ms")
}
