package bench

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// BenchmarkRotateInProcess is BenchmarkRotateBatch's `rotor rotate --all`
// run through cli.Run in this process, so that `-cpuprofile`,
// `-blockprofile` and `-mutexprofile` see where rotor's share of the
// batch goes. ROTOR_BENCH_CREDENTIALS sets the count (default 1,000) and
// ROTOR_BENCH_PARALLEL the workers (default 1).
func BenchmarkRotateInProcess(b *testing.B) {
	n := envCount(b, "ROTOR_BENCH_CREDENTIALS", 1000)
	parallel := envCount(b, "ROTOR_BENCH_PARALLEL", 1)
	set := newBatch(b, n)
	env := map[string]string{}
	for _, kv := range set.env {
		if k, v, ok := strings.Cut(kv, "="); ok {
			env[k] = v
		}
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		out := runInProcess(b, env, "rotate", "--all", "--json", "--parallel", strconv.Itoa(parallel))
		took := time.Since(start)
		var results []struct {
			Status   string
			Duration time.Duration `json:"duration_ns"`
			Steps    []struct {
				Name     string
				Duration time.Duration `json:"duration_ns"`
			}
		}
		require.NoError(b, json.Unmarshal(out, &results))
		require.Len(b, results, n)
		b.ReportMetric(float64(n)/took.Seconds(), "rotations/s")
		// Where a rotation's time goes, by step, in mean milliseconds: what
		// is outside every step is rotor's own bookkeeping (the lease, the
		// rotation's row, the journal's finish) and the batch's.
		steps := map[string]time.Duration{}
		var total time.Duration
		for _, r := range results {
			require.Equal(b, "succeeded", r.Status)
			total += r.Duration
			for _, st := range r.Steps {
				steps[st.Name] += st.Duration
			}
		}
		for name, d := range steps {
			b.ReportMetric(float64(d.Microseconds())/1000/float64(n), name+"-ms")
		}
		b.ReportMetric(float64(total.Microseconds())/1000/float64(n), "rotation-ms")
		b.ReportMetric(float64(took.Microseconds())/1000/float64(n), "wall-ms/rotation")
	}
}
