//go:build unix

package e2e_test

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/rotorhq/rotor/internal/pgtest"
	"github.com/rotorhq/rotor/internal/store"
)

// envInt reads a knob of the long run (make soak) with its CI default.
func envInt(t *testing.T, name string, def int) int {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	require.NoError(t, err, "%s=%q: not a number", name, v)
	return n
}

// TestServeHA: three `rotor serve` replicas on one PostgreSQL store, the
// scheduler and bursts of API triggers at work, replicas killed with
// SIGKILL at random and restarted. Afterwards no credential was rotated
// twice for one trigger or one due time, every triggered job finished
// exactly once, every .env logs in, nothing is left unfinished.
//
// CI runs a short version; `make soak` sets ROTOR_SOAK_SERVE_KILLS=100
// and ROTOR_SOAK_SERVE_CREDS=50.
func TestServeHA(t *testing.T) {
	t.Parallel()
	kills := envInt(t, "ROTOR_SOAK_SERVE_KILLS", 10)
	ncreds := envInt(t, "ROTOR_SOAK_SERVE_CREDS", 10)
	var specs []credSpec
	for i := range ncreds {
		specs = append(specs, credSpec{name: fmt.Sprintf("c%02d", i), strategy: "single", extra: "    schedule: {every: 30d}\n"})
	}
	w := newWorld(t, nil, specs...)
	st := sharedStore(t, w)
	tk := newTokens(w)
	w.env = append(w.env, "ROTOR_LEASE_TTL=2s")
	var replicas []*server
	for range 3 {
		replicas = append(replicas, w.serve(t, nil, "--tick", "1s", "--rescue-after", "2s", "--shutdown-timeout", "5s", "--watch-config", "0"))
	}

	var mu sync.Mutex // guards replicas' processes and the job set
	live := func() *server {
		mu.Lock()
		defer mu.Unlock()
		for _, i := range rand.Perm(len(replicas)) {
			if !replicas[i].p.exited() {
				return replicas[i]
			}
		}
		return nil
	}
	jobs := map[int64]string{} // job id → credential
	stop := make(chan struct{})
	var wg sync.WaitGroup

	// The killer: SIGKILL a random replica, restart it shortly after.
	killed := 0
	wg.Go(func() {
		for killed < kills {
			time.Sleep(time.Duration(150+rand.IntN(400)) * time.Millisecond)
			mu.Lock()
			s := replicas[rand.IntN(len(replicas))]
			s.p.kill()
			r := w.finish(s.p)
			mu.Unlock()
			if r.killed {
				killed++
			}
			time.Sleep(time.Duration(50+rand.IntN(200)) * time.Millisecond)
			mu.Lock()
			s.start(t)
			mu.Unlock()
		}
		close(stop)
	})

	// The triggers: bursts of rotations through the API, each with its own
	// Idempotency-Key, some sent twice (a client that retried).
	triggers := 0
	wg.Go(func() {
		for n := 0; ; n++ {
			select {
			case <-stop:
				return
			default:
			}
			for range 1 + rand.IntN(4) {
				cred := specs[rand.IntN(len(specs))].name
				key := fmt.Sprintf("burst-%d-%s", n, cred)
				for range 1 + rand.IntN(2) {
					s := live()
					if s == nil {
						continue
					}
					j, err := s.tryTrigger(tk.admin, cred, key)
					if err != nil {
						continue // the replica died under the request; the client retries elsewhere
					}
					mu.Lock()
					if prev, seen := jobs[j.ID]; seen {
						require.Equal(t, prev, cred)
					}
					jobs[j.ID] = cred
					triggers++
					mu.Unlock()
				}
			}
			time.Sleep(time.Duration(100+rand.IntN(300)) * time.Millisecond)
		}
	})
	wg.Wait()
	require.GreaterOrEqual(t, killed, kills)

	// Every job the API handed out finishes (rescued from dead replicas,
	// resumed from the journal) and names the rotation it ran.
	s := live()
	require.NotNil(t, s)
	for id, cred := range jobs {
		j := s.waitJob(t, tk.read, id)
		require.Equal(t, "completed", j.State, "job %d (%s): %v", id, cred, j.Errors)
		require.NotZero(t, j.RotationID, "job %d (%s) names its rotation", id, cred)
	}
	ctx := t.Context()
	require.Eventually(t, func() bool {
		for _, sp := range specs {
			rs, err := st.ListRotations(ctx, store.ListRotationsParams{Credential: sp.name, Active: true})
			if err != nil || len(rs) > 0 {
				return false
			}
		}
		return true
	}, 2*time.Minute, 100*time.Millisecond, "nothing unfinished at the end")

	rotations := 0
	for _, sp := range specs {
		rs, err := st.ListRotations(ctx, store.ListRotationsParams{Credential: sp.name})
		require.NoError(t, err)
		byTrigger := map[string]int{}
		scheduled := 0
		for _, r := range rs {
			require.Equal(t, store.StatusSucceeded, r.Status, "%s rotation %d (%s): %s", sp.name, r.ID, r.Trigger, r.Error)
			byTrigger[r.Trigger]++
			if strings.HasPrefix(r.Trigger, "schedule/") {
				scheduled++
			}
		}
		for trig, n := range byTrigger {
			require.Equal(t, 1, n, "%s rotated %d times for the one trigger %s", sp.name, n, trig)
		}
		// Never rotated, it was due once: the scheduler rotates it then,
		// unless an API trigger got there first.
		require.LessOrEqual(t, scheduled, 1, "%s: one due time, at most one scheduled rotation (%v)", sp.name, byTrigger)
		require.NotEmpty(t, rs, "%s was due and never rotated", sp.name)
		rotations += len(rs)
		_, url := w.envConn(t, sp.name)
		require.NoError(t, pgtest.CanLogin(ctx, url), "%s's .env logs in", sp.name)
	}
	for _, rep := range replicas {
		r := rep.stop(t)
		require.Equal(t, 0, r.code, "SIGTERM ends a replica with 0:\n%s", w.scrub(r.output()))
	}
	w.requireNoLeaks(t, nil)
	t.Logf("HA: %d replicas, %d credentials, %d SIGKILLs, %d API triggers → %d jobs, %d rotations, 0 violations",
		len(replicas), len(specs), killed, triggers, len(jobs), rotations)
}

// tryTrigger is trigger for a replica that may die under the request.
func (s *server) tryTrigger(token, cred, key string) (apiJob, error) {
	var j apiJob
	req, err := http.NewRequest("POST", s.base+"/api/v1/credentials/"+cred+"/rotations", strings.NewReader(`{"reason":"burst"}`))
	if err != nil {
		return j, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return j, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		return j, fmt.Errorf("status %d", resp.StatusCode)
	}
	return j, json.NewDecoder(resp.Body).Decode(&j)
}
