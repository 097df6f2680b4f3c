package fly_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/rotorhq/rotor/internal/secret"
	"github.com/rotorhq/rotor/internal/target"
	"github.com/rotorhq/rotor/internal/target/fly"
	"github.com/rotorhq/rotor/internal/target/fly/flyfake"
	"github.com/rotorhq/rotor/internal/target/targettest"
)

// A config with a health check, as fly.toml's [[http_service.checks]]
// becomes in the machine config.
const checkedConfig = `{"image":"registry.fly.io/rotor-app:deployment-01","services":[{"internal_port":8080,"protocol":"tcp","checks":[{"type":"http","interval":"10s","path":"/healthz"}]}]}`

// threeMachines is an app whose machines each take a while to start and
// then to pass their health check after every update.
func threeMachines(t *testing.T, opts flyfake.Options) *flyfake.Server {
	t.Helper()
	f := flyfake.New(t, opts)
	for _, id := range []string{"m-web-1", "m-web-2", "m-web-3"} {
		f.AddMachine(id, "fra", "started", json.RawMessage(checkedConfig))
		f.AddCheck(id, "servicecheck-00-http-8080", 80*time.Millisecond)
	}
	return f
}

// rollingTarget is a deploying target with fast polls; extra are more
// options (YAML).
func rollingTarget(t *testing.T, f *flyfake.Server, rec *recorder, extra string) target.Target {
	t.Helper()
	var rt http.RoundTripper
	if rec != nil {
		rt = rec
	}
	tg := newTarget(t, f, rt, extra)
	fly.SetTimings(tg, 5*time.Millisecond, time.Second)
	return tg
}

func reload(t *testing.T, ctx context.Context, tg target.Target, rotation string) (target.ReloadResponse, error) {
	t.Helper()
	return tg.(target.Reloader).Reload(ctx, target.ReloadRequest{RotationID: rotation})
}

// TestReloadIsRolling: machine N+1's update reaches Fly.io only once
// machine N is started again and its health check passes; the fake
// records how every other machine looked when each update arrived.
func TestReloadIsRolling(t *testing.T) {
	t.Parallel()
	f := threeMachines(t, flyfake.Options{StartDelay: 120 * time.Millisecond})
	rec := &recorder{}
	tg := rollingTarget(t, f, rec, "{}")
	v := secret.New("postgres://app:rolling@host/db")
	_, err := tg.Put(t.Context(), putReq(map[string]secret.String{"DATABASE_URL": v}, "DATABASE_URL"))
	require.NoError(t, err)

	start := time.Now()
	resp, err := reload(t, t.Context(), tg, "1")
	require.NoError(t, err)
	require.GreaterOrEqual(t, time.Since(start), 3*(120+80)*time.Millisecond, "three restarts and three checks, one after the other")
	require.Equal(t, "updated 3 machine(s) to secrets version 1, rolling: 3 restarted, each started again and passing its health checks before the next was updated", resp.Detail)

	log := f.UpdateLog()
	require.Len(t, log, 3)
	for i, id := range []string{"m-web-1", "m-web-2", "m-web-3"} {
		require.Equal(t, id, log[i].Machine, "machines are updated in list order")
	}
	// When m-web-2's update arrived, m-web-1 was back and healthy and
	// m-web-3 untouched, and so on.
	require.True(t, log[1].Others["m-web-1"].Healthy(), "m-web-2 was updated while m-web-1 was %+v", log[1].Others["m-web-1"])
	require.Equal(t, 1, log[1].Others["m-web-1"].Updates)
	require.Zero(t, log[1].Others["m-web-3"].Updates)
	require.True(t, log[2].Others["m-web-2"].Healthy(), "m-web-3 was updated while m-web-2 was %+v", log[2].Others["m-web-2"])
	require.True(t, log[2].Others["m-web-1"].Healthy())
	for _, u := range log {
		healthy := 0
		for _, o := range u.Others {
			if o.Healthy() {
				healthy++
			}
		}
		require.Equal(t, 2, healthy, "at every update the two other machines serve (%s)", u.Machine)
	}

	// The wait names the instance each update created, and health is
	// polled with GET machine until the check passes.
	var waits []string
	polls := 0
	for _, c := range rec.all() {
		if strings.HasSuffix(c.path, "/wait") {
			waits = append(waits, c.path+"?"+c.query)
		}
		if c.method == http.MethodGet && c.path == "/v1/apps/rotor-app/machines/m-web-2" {
			polls++
		}
	}
	require.Equal(t, []string{
		"/v1/apps/rotor-app/machines/m-web-1/wait?instance_id=m-web-1-1&state=started&timeout=1",
		"/v1/apps/rotor-app/machines/m-web-2/wait?instance_id=m-web-2-1&state=started&timeout=1",
		"/v1/apps/rotor-app/machines/m-web-3/wait?instance_id=m-web-3-1&state=started&timeout=1",
	}, waits, "the 1 s is the test's cap on one wait request (60 s otherwise)")
	require.Greater(t, polls, 2, "the read before the update, then polls until the check passes")

	for _, m := range f.Machines() {
		require.True(t, m.Healthy(), m.ID)
		require.True(t, v.Equal(secret.New(m.Env["DATABASE_URL"])), "%s runs with the new value", m.ID)
	}
}

// TestReloadStopsAtAMachineThatDoesNotComeBack: the reload fails naming
// the machine, where it is and what to do, and the machines after it are
// never updated, so the app keeps serving from them.
func TestReloadStopsAtAMachineThatDoesNotComeBack(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		arrange func(*flyfake.Server)
		opts    string
		want    []string
		fast    bool
	}{
		{
			name:    "health check never passes",
			arrange: func(f *flyfake.Server) { f.AddCheck("m-web-2", "db-ping", flyfake.Never) },
			opts:    "wait_timeout: 300ms",
			want: []string{
				`machine m-web-2 did not come back within wait_timeout 300ms after its update: it is "started" with health checks db-ping critical`,
				"raise wait_timeout",
			},
		},
		{
			name:    "never starts",
			arrange: func(f *flyfake.Server) { f.SetStartDelay("m-web-2", flyfake.Never) },
			opts:    "wait_timeout: 300ms",
			want: []string{
				`machine m-web-2 did not come back within wait_timeout 300ms after its update: it is "starting" with health checks servicecheck-00-http-8080 critical`,
				"raise wait_timeout",
			},
		},
		{
			// Its process exits as it boots: "stopped" is not a state
			// rotor gives up on at once (a restart policy may start it
			// again), so the reload stops at wait_timeout.
			name:    "stops after its update",
			arrange: func(f *flyfake.Server) { f.ExitOnStart("m-web-2") },
			opts:    "wait_timeout: 300ms",
			want: []string{
				`machine m-web-2 did not come back within wait_timeout 300ms after its update: it is "stopped" with health checks servicecheck-00-http-8080 critical`,
			},
		},
		{
			// The wait endpoint answers 408 (after the test's 1 s cap); a
			// look at the machine shows it failed, so the reload stops
			// long before wait_timeout.
			name:    "fails to start",
			arrange: func(f *flyfake.Server) { f.FailStart("m-web-2") },
			opts:    "wait_timeout: 1m",
			want:    []string{`machine m-web-2 will not come back on its own after its update: it is "failed"`},
			fast:    true,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := threeMachines(t, flyfake.Options{StartDelay: 20 * time.Millisecond})
			tc.arrange(f)
			tg := rollingTarget(t, f, nil, tc.opts)
			_, err := tg.Put(t.Context(), putReq(map[string]secret.String{"DATABASE_URL": secret.New("postgres://app:new@host/db")}, "DATABASE_URL"))
			require.NoError(t, err)

			start := time.Now()
			resp, err := reload(t, t.Context(), tg, "4")
			require.Error(t, err)
			if tc.fast {
				require.Less(t, time.Since(start), 20*time.Second, "a failed machine ends the wait before wait_timeout")
			}
			for _, w := range tc.want {
				require.ErrorContains(t, err, w)
			}
			require.ErrorContains(t, err, `fly target "edge"`)
			require.ErrorContains(t, err, "the reload stopped there: machine m-web-3 was not updated and still runs with the previous secrets")
			require.ErrorContains(t, err, "fly machine status m-web-2 -a rotor-app")
			require.ErrorContains(t, err, "fly logs -a rotor-app -i m-web-2")
			require.ErrorContains(t, err, "rotor resume")
			var re *target.RetryableError
			require.NotErrorAs(t, err, &re, "waiting again would not help; a person has to look")
			require.Equal(t, "2 of 3 machine(s) updated before the failure; the rest were not touched", resp.Detail)

			ms := f.Machines()
			require.Equal(t, 1, ms[0].Updates)
			require.Equal(t, 1, ms[1].Updates)
			require.Zero(t, ms[2].Updates, "m-web-3 is never updated")
			require.True(t, ms[2].Healthy(), "m-web-3 keeps serving")
			for _, u := range f.UpdateLog() {
				require.NotEqual(t, "m-web-3", u.Machine)
			}
		})
	}
}

// TestReloadDoesNotWaitForStoppedMachines: a stopped machine is updated
// with skip_launch and left stopped, and nothing waits for it to start;
// the started machine after it is still updated and waited for.
func TestReloadDoesNotWaitForStoppedMachines(t *testing.T) {
	t.Parallel()
	f := flyfake.New(t, flyfake.Options{})
	f.AddMachine("m-idle", "fra", "stopped", json.RawMessage(checkedConfig))
	f.AddCheck("m-idle", "servicecheck-00-http-8080", flyfake.Never)
	f.SetStartDelay("m-idle", flyfake.Never) // waiting for it would never end
	f.AddMachine("m-web-1", "fra", "started", json.RawMessage(webConfig))
	rec := &recorder{}
	tg := rollingTarget(t, f, rec, "wait_timeout: 2s")
	_, err := tg.Put(t.Context(), putReq(map[string]secret.String{"DATABASE_URL": secret.New("v")}, "DATABASE_URL"))
	require.NoError(t, err)

	resp, err := reload(t, t.Context(), tg, "1")
	require.NoError(t, err)
	require.Equal(t, "updated 2 machine(s) to secrets version 1, rolling: 1 restarted, each started again before the next was updated; 1 stopped machine(s) left stopped", resp.Detail)
	var lines []string
	for _, c := range rec.all()[1:] {
		lines = append(lines, c.line())
	}
	require.Equal(t, []string{
		"GET /v1/apps/rotor-app/machines",
		"GET /v1/apps/rotor-app/machines/m-idle", "POST /v1/apps/rotor-app/machines/m-idle",
		"GET /v1/apps/rotor-app/machines/m-web-1", "POST /v1/apps/rotor-app/machines/m-web-1", "GET /v1/apps/rotor-app/machines/m-web-1/wait",
	}, lines)
	ms := f.Machines()
	require.Equal(t, "stopped", ms[0].State)
	require.True(t, ms[0].SkipLaunch)
	require.Equal(t, 1, ms[0].Updates)
	require.Equal(t, "started", ms[1].State)
}

// TestReloadTimesOut: when ctx ends (the engine's reload_timeout) while a
// machine is still starting, the error wraps ctx.Err(), names the machine
// and the state it was last seen in, and is not retryable. A second
// Reload of the same rotation (a resume in this process) waits for that
// machine again — without restarting it a second time — before it
// updates the next one.
func TestReloadTimesOut(t *testing.T) {
	t.Parallel()
	f := threeMachines(t, flyfake.Options{StartDelay: 50 * time.Millisecond})
	f.SetStartDelay("m-web-1", 800*time.Millisecond)
	// The time runs out as the wait for m-web-1 (the 4th request, after
	// the list, the read and the update) goes out.
	ctx := targettest.NewDeadline(t.Context())
	rt := &onRequests{do: map[int]func(){4: ctx.Pass}}
	tg := newTarget(t, f, rt, "wait_timeout: 1m")
	fly.SetTimings(tg, 5*time.Millisecond, time.Second)
	_, err := tg.Put(t.Context(), putReq(map[string]secret.String{"DATABASE_URL": secret.New("v")}, "DATABASE_URL"))
	require.NoError(t, err)
	rt.start()

	resp, err := reload(t, ctx, tg, "9")
	require.ErrorIs(t, err, context.DeadlineExceeded)
	var re *target.RetryableError
	require.NotErrorAs(t, err, &re, "reload_timeout bounds the reload; the engine does not start it over")
	// The update's answer is the last look at the machine.
	require.ErrorContains(t, err, `fly target "edge": machine m-web-1 was updated and was not back yet when the reload's time ran out: it was last seen "replacing" with health checks servicecheck-00-http-8080 critical`)
	require.ErrorContains(t, err, "machines m-web-2, m-web-3 were not updated and still run with the previous secrets")
	require.ErrorContains(t, err, "raise reload_timeout")
	require.Equal(t, "1 of 3 machine(s) updated before the failure; the rest were not touched", resp.Detail)
	require.Len(t, f.UpdateLog(), 1, "m-web-2 must wait for m-web-1")

	_, err = reload(t, t.Context(), tg, "9")
	require.NoError(t, err)
	log := f.UpdateLog()
	require.Len(t, log, 3, "m-web-1 is not updated a second time")
	require.Equal(t, "m-web-2", log[1].Machine)
	require.True(t, log[1].Others["m-web-1"].Healthy())
}

// TestReloadTimeoutWhileRequestsFail: when the wait's requests fail until
// the deadline, the error says so next to the last state seen.
func TestReloadTimeoutWhileRequestsFail(t *testing.T) {
	t.Parallel()
	f := newFake(t, flyfake.Options{})
	// The list, the read and the update of m-web-1 get through; every
	// request from the wait on fails, and the time runs out at the third.
	ctx := targettest.NewDeadline(t.Context())
	rt := &onRequests{do: map[int]func(){4: func() { f.FailNext(1<<20, http.StatusBadGateway) }, 6: ctx.Pass}}
	tg := newTarget(t, f, rt, "{}")
	fly.SetTimings(tg, 5*time.Millisecond, time.Second)
	_, err := tg.Put(t.Context(), putReq(map[string]secret.String{"DATABASE_URL": secret.New("v")}, "DATABASE_URL"))
	require.NoError(t, err)
	rt.start()

	_, err = reload(t, ctx, tg, "2")
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.ErrorContains(t, err, `machine m-web-1 was updated and was not back yet when the reload's time ran out: it was last seen "started" (the last request to see it failed: Fly.io Machines API: GET /v1/apps/rotor-app/machines/m-web-1/wait answered 502`)
}

// TestReloadWaitSurvivesTransientErrors: a 429 or 5xx while waiting is no
// verdict on the machine: the wait pauses (Fly.io's Retry-After when it
// sends one) and asks again, within the same Reload, and no machine is
// updated twice.
func TestReloadWaitSurvivesTransientErrors(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		arrange func(*flyfake.Server) map[int]func()
		pause   time.Duration
	}{
		{name: "429 with Retry-After", pause: time.Second, arrange: func(f *flyfake.Server) map[int]func() {
			// The wait (4th request) is answered 429, Retry-After: 1.
			return map[int]func(){4: func() { f.RateLimit(0, time.Second) }, 5: f.NoRateLimit}
		}},
		{name: "503", arrange: func(f *flyfake.Server) map[int]func() {
			return map[int]func(){4: func() { f.FailNext(1, http.StatusServiceUnavailable) }}
		}},
		{name: "502 on the health poll", arrange: func(f *flyfake.Server) map[int]func() {
			// m-web-1 has a check: request 5 is its first health poll.
			return map[int]func(){5: func() { f.FailNext(2, http.StatusBadGateway) }}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFake(t, flyfake.Options{})
			f.AddCheck("m-web-1", "servicecheck-00-http-8080", 20*time.Millisecond)
			rt := &onRequests{do: tc.arrange(f)}
			tg := newTarget(t, f, rt, "{}")
			fly.SetTimings(tg, 5*time.Millisecond, time.Second)
			_, err := tg.Put(t.Context(), putReq(map[string]secret.String{"DATABASE_URL": secret.New("v")}, "DATABASE_URL"))
			require.NoError(t, err)
			rt.start()

			_, err = reload(t, t.Context(), tg, "2")
			require.NoError(t, err)
			for _, m := range f.Machines() {
				require.Equal(t, 1, m.Updates, "%s is updated exactly once", m.ID)
				require.True(t, m.Healthy(), m.ID)
			}
			if tc.pause > 0 {
				at := rt.times()
				require.GreaterOrEqual(t, at[4].Sub(at[3]), tc.pause, "the next request waits for Retry-After")
			}
		})
	}
}

// TestFakeWaitEndpoint pins the fake's wait endpoint to the reference:
// 200 once started, 408 with Fly.io's message when the timeout passes,
// 400 for what the reference refuses.
func TestFakeWaitEndpoint(t *testing.T) {
	t.Parallel()
	f := flyfake.New(t, flyfake.Options{})
	f.AddMachine("m1", "fra", "started", json.RawMessage(webConfig))
	f.SetStartDelay("m1", flyfake.Never)
	get := func(query string) (int, string) {
		req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, f.URL+"/v1/apps/rotor-app/machines/m1/wait?"+query, nil)
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+f.Token())
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		var body map[string]any
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&body))
		return resp.StatusCode, fmt.Sprint(body)
	}
	status, body := get("state=started&timeout=1")
	require.Equal(t, http.StatusOK, status, "never updated: started all along")
	require.Equal(t, "map[ok:true]", body)

	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, f.URL+"/v1/apps/rotor-app/machines/m1", strings.NewReader(`{"config":`+webConfig+`}`))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+f.Token())
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)

	start := time.Now()
	status, body = get("state=started&instance_id=m1-1&timeout=1")
	require.Equal(t, http.StatusRequestTimeout, status)
	require.Contains(t, body, "deadline_exceeded: machine failed to reach desired state, started, currently starting")
	require.GreaterOrEqual(t, time.Since(start), time.Second)

	for _, q := range []string{"state=started&instance_id=m1-0&timeout=1", "state=running", "timeout=0", "timeout=soon", "state=stopped"} {
		status, _ = get(q)
		require.Equal(t, http.StatusBadRequest, status, q)
	}
}

// onRequests runs do[n] just before the n-th request after start
// (counting from 1), so a fault hits chosen calls, and records when each
// request went out.
type onRequests struct {
	do      map[int]func()
	mu      sync.Mutex
	started bool
	at      []time.Time
}

func (o *onRequests) start() {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.started = true
}

func (o *onRequests) times() []time.Time {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]time.Time(nil), o.at...)
}

func (o *onRequests) RoundTrip(req *http.Request) (*http.Response, error) {
	o.mu.Lock()
	if o.started {
		o.at = append(o.at, time.Now())
		if do := o.do[len(o.at)]; do != nil {
			do()
		}
	}
	o.mu.Unlock()
	return http.DefaultTransport.RoundTrip(req)
}
