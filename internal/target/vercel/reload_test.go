package vercel_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/rotorhq/rotor/internal/secret"
	"github.com/rotorhq/rotor/internal/target"
	"github.com/rotorhq/rotor/internal/target/targettest"
	"github.com/rotorhq/rotor/internal/target/vercel"
	"github.com/rotorhq/rotor/internal/target/vercel/vercelfake"
)

// fastPoll keeps the waits of these tests short; the fake counts reads,
// not time, so nothing depends on how fast the machine is.
const fastPoll = "reload_poll: 1ms"

func TestReloadWaitsUntilServingProduction(t *testing.T) {
	t.Parallel()
	f := vercelfake.New(t, vercelfake.Options{TeamID: "team_7"})
	f.AddDeployment("dpl_old", "production", "READY")
	f.AddDeployment("dpl_live", "production", "READY")
	f.AddDeployment("dpl_preview", "preview", "READY")
	f.AddDeployment("dpl_failed", "production", "ERROR")
	// Two reads per state: QUEUED at creation, then BUILDING, INITIALIZING
	// and READY, reached at the fifth read.
	f.SetBuild(vercelfake.Build{States: []string{"QUEUED", "BUILDING", "INITIALIZING", "READY"}, Polls: 2})
	rec := &recorder{}
	tg := newTargetWith(t, f, rec, "{team_id: team_7, redeploy: true, "+fastPoll+"}")
	v := secret.New("postgres://app:fresh@host/db")
	_, err := tg.Put(t.Context(), putReq(map[string]secret.String{"DATABASE_URL": v}, "DATABASE_URL"))
	require.NoError(t, err)
	require.Len(t, f.Deployments(), 4, "Put must never deploy")

	before := len(rec.all())
	resp, err := tg.(target.Reloader).Reload(t.Context(), target.ReloadRequest{RotationID: "42"})
	require.NoError(t, err)

	ds := f.Deployments()
	require.Len(t, ds, 5)
	created := ds[4]
	require.Equal(t, "dpl_live", created.RedeployOf)
	require.Equal(t, "production", created.Target)
	require.True(t, v.Equal(secret.New(created.Env["DATABASE_URL"])), "the redeploy must see the value written")
	require.Equal(t, "READY", created.State)
	require.Equal(t, "PROMOTED", created.Substate)
	require.Equal(t, 5, created.Reads, "Reload reads the deployment until it is READY, and no more")

	calls := rec.all()[before:]
	require.Len(t, calls, 2+5)
	require.Equal(t, "GET /v7/deployments?limit=1&projectId=prj_rotor&state=READY&target=production&teamId=team_7", calls[0].line())
	require.Equal(t, "POST /v13/deployments?forceNew=1&teamId=team_7", calls[1].line())
	require.JSONEq(t, `{"name":"rotor-app","project":"prj_rotor","deploymentId":"dpl_live","target":"production"}`, string(calls[1].body))
	for _, c := range calls[2:] {
		require.Equal(t, "GET /v13/deployments/"+created.UID+"?teamId=team_7", c.line())
	}
	require.Contains(t, resp.Detail, "deployment "+created.UID+" (a redeploy of dpl_live) READY after ")
	require.Contains(t, resp.Detail, "(QUEUED → BUILDING → INITIALIZING → READY), serving production")

	// A second Reload of the same rotation neither builds nor asks again.
	n := len(rec.all())
	again, err := tg.(target.Reloader).Reload(t.Context(), target.ReloadRequest{RotationID: "42"})
	require.NoError(t, err)
	require.Equal(t, resp.Detail, again.Detail)
	require.Len(t, f.Deployments(), 5)
	require.Len(t, rec.all(), n)

	// Another rotation redeploys again.
	_, err = tg.(target.Reloader).Reload(t.Context(), target.ReloadRequest{RotationID: "43"})
	require.NoError(t, err)
	require.Len(t, f.Deployments(), 6)
}

func TestReloadWaitsForTheProductionDomains(t *testing.T) {
	t.Parallel()
	f := vercelfake.New(t, vercelfake.Options{})
	f.AddDeployment("dpl_live", "production", "READY")
	// READY at the first read, but the production domains are assigned
	// only three reads later.
	f.SetBuild(vercelfake.Build{AliasPolls: 3})
	tg := newTarget(t, f, "{redeploy: true, "+fastPoll+"}")
	resp, err := tg.(target.Reloader).Reload(t.Context(), target.ReloadRequest{RotationID: "1"})
	require.NoError(t, err)
	created := f.Deployments()[1]
	require.Equal(t, 4, created.Reads, "READY is not enough: Reload waits until the deployment serves production")
	require.True(t, created.AliasAssigned)
	require.Contains(t, resp.Detail, "(QUEUED → READY), serving production")
}

func TestReloadFailedDeployment(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name  string
		build vercelfake.Build
		want  []string
	}{
		{
			name:  "build error",
			build: vercelfake.Build{States: []string{"QUEUED", "BUILDING", "ERROR"}, ErrorCode: "BUILD_FAILED", ErrorMessage: "Command \"npm run build\" exited with 1"},
			want:  []string{"ended ERROR", "(QUEUED → BUILDING → ERROR)", "BUILD_FAILED: Command \"npm run build\" exited with 1", "production still runs dpl_live", "build logs", "rotor resume"},
		},
		{
			name:  "canceled",
			build: vercelfake.Build{States: []string{"QUEUED", "BUILDING", "CANCELED"}},
			want:  []string{"ended CANCELED", "(QUEUED → BUILDING → CANCELED)", "rotor resume"},
		},
		{
			name:  "staged: production domains are not assigned automatically",
			build: vercelfake.Build{Staged: true},
			want:  []string{"is READY (QUEUED → READY) but staged", "production still runs dpl_live", "vercel promote dpl_", "automatic assignment of production domains", "rotor resume"},
		},
		{
			name:  "aliases could not be assigned",
			build: vercelfake.Build{AliasError: "DOMAIN_VERIFICATION_FAILED"},
			want:  []string{"could not assign it to production (aliasError DOMAIN_VERIFICATION_FAILED", "production still runs dpl_live"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := vercelfake.New(t, vercelfake.Options{})
			f.AddDeployment("dpl_live", "production", "READY")
			f.SetBuild(tc.build)
			tg := newTarget(t, f, "{redeploy: true, "+fastPoll+"}")
			_, err := tg.(target.Reloader).Reload(t.Context(), target.ReloadRequest{RotationID: "r"})
			require.ErrorIs(t, err, vercel.ErrDeployFailed)
			created := f.Deployments()[1]
			require.ErrorContains(t, err, `vercel target "web": deployment `+created.UID)
			for _, w := range tc.want {
				require.ErrorContains(t, err, w)
			}
			var re *target.RetryableError
			require.False(t, errors.As(err, &re), "a broken build is not fixed by deploying it again at once")

			// The failed deployment is forgotten: the next Reload (a resume)
			// redeploys.
			f.SetBuild(vercelfake.Build{})
			resp, err := tg.(target.Reloader).Reload(t.Context(), target.ReloadRequest{RotationID: "r"})
			require.NoError(t, err)
			require.Len(t, f.Deployments(), 3)
			require.Contains(t, resp.Detail, f.Deployments()[2].UID)
		})
	}
}

func TestReloadTimesOutWhileBuilding(t *testing.T) {
	t.Parallel()
	f := vercelfake.New(t, vercelfake.Options{})
	f.AddDeployment("dpl_live", "production", "READY")
	// A build that stays BUILDING until the test finishes it.
	f.SetBuild(vercelfake.Build{States: []string{"QUEUED", "BUILDING", "READY"}, Polls: 1 << 30})
	tg := newTarget(t, f, "{redeploy: true, "+fastPoll+"}")
	// reload_timeout runs out once the client has seen it BUILDING.
	ctx := targettest.NewDeadline(t.Context())
	ctx.PassWhen(func() bool { ds := f.Deployments(); return len(ds) > 1 && ds[1].Reads >= 2 })
	_, err := tg.(target.Reloader).Reload(ctx, target.ReloadRequest{RotationID: "r"})
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.NotErrorIs(t, err, vercel.ErrDeployFailed)
	created := f.Deployments()[1]
	require.ErrorContains(t, err, "deployment "+created.UID+" (a redeploy of dpl_live) still BUILDING after ")
	require.ErrorContains(t, err, "(QUEUED → BUILDING)")
	require.ErrorContains(t, err, "reload_timeout")
	var re *target.RetryableError
	require.False(t, errors.As(err, &re), "the build goes on at Vercel; starting another is no fix")
	require.Positive(t, created.Reads)

	// Resuming in the same process waits for the same deployment.
	f.Finish(created.UID)
	resp, err := tg.(target.Reloader).Reload(t.Context(), target.ReloadRequest{RotationID: "r"})
	require.NoError(t, err)
	require.Len(t, f.Deployments(), 2, "the second Reload must not redeploy")
	require.Contains(t, resp.Detail, "deployment "+created.UID+" (a redeploy of dpl_live) READY after ")
	require.Contains(t, resp.Detail, "(QUEUED → BUILDING → READY), serving production")
}

func TestReloadTimesOutWhileStaged(t *testing.T) {
	t.Parallel()
	f := vercelfake.New(t, vercelfake.Options{})
	f.AddDeployment("dpl_live", "production", "READY")
	f.SetBuild(vercelfake.Build{AliasPolls: 1 << 30})
	tg := newTarget(t, f, "{redeploy: true, "+fastPoll+"}")
	ctx := targettest.NewDeadline(t.Context())
	ctx.PassWhen(func() bool { ds := f.Deployments(); return len(ds) > 1 && ds[1].Reads >= 2 })
	_, err := tg.(target.Reloader).Reload(ctx, target.ReloadRequest{RotationID: "r"})
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.ErrorContains(t, err, "still READY but not serving production yet (readySubstate STAGED, aliasAssigned false)")
}

func TestReloadPollingSurvivesTransientErrors(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		arm  func(f *vercelfake.Server)
	}{
		{name: "5xx", arm: func(f *vercelfake.Server) { f.FailNext(2, http.StatusBadGateway) }},
		{name: "429", arm: func(f *vercelfake.Server) { f.RateLimit(0, 0) }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := vercelfake.New(t, vercelfake.Options{})
			f.AddDeployment("dpl_live", "production", "READY")
			f.SetBuild(vercelfake.Build{States: []string{"QUEUED", "BUILDING", "READY"}})
			ft := &pollFaults{f: f, arm: tc.arm, failures: 2}
			tg := newTargetWith(t, f, ft, "{redeploy: true, "+fastPoll+"}")
			resp, err := tg.(target.Reloader).Reload(t.Context(), target.ReloadRequest{RotationID: "r"})
			require.NoError(t, err)
			require.Equal(t, 2, ft.failed(), "two reads failed and were retried")
			require.Contains(t, resp.Detail, "READY after")
			require.Len(t, f.Deployments(), 2, "a failed read never redeploys")
		})
	}
}

func TestReloadStopsWhenTheDeploymentIsGone(t *testing.T) {
	t.Parallel()
	f := vercelfake.New(t, vercelfake.Options{})
	f.AddDeployment("dpl_live", "production", "READY")
	tg := newTargetWith(t, f, goneDeployments{}, "{redeploy: true, "+fastPoll+"}")
	_, err := tg.(target.Reloader).Reload(t.Context(), target.ReloadRequest{RotationID: "r"})
	require.ErrorIs(t, err, target.ErrNotFound)
	require.ErrorContains(t, err, "cannot follow deployment "+f.Deployments()[1].UID+" (QUEUED so far)")
	var re *target.RetryableError
	require.False(t, errors.As(err, &re))
}

func TestReloadWithNothingToRedeploy(t *testing.T) {
	t.Parallel()
	f := vercelfake.New(t, vercelfake.Options{})
	f.AddDeployment("dpl_building", "production", "BUILDING")
	tg := newTarget(t, f, "redeploy: true")
	resp, err := tg.(target.Reloader).Reload(t.Context(), target.ReloadRequest{RotationID: "1"})
	require.NoError(t, err)
	require.Contains(t, resp.Detail, "no READY production deployment")
	require.Empty(t, f.Writes())
}

func TestRedeployIsRetriedOnlyWhenRateLimited(t *testing.T) {
	t.Parallel()
	cases := []struct {
		status     int
		retryable  bool
		retryAfter time.Duration
	}{
		{http.StatusTooManyRequests, true, 3 * time.Second},
		{http.StatusInternalServerError, false, 0},
		{http.StatusBadGateway, false, 0},
	}
	for _, c := range cases {
		t.Run(fmt.Sprint(c.status), func(t *testing.T) {
			t.Parallel()
			f := vercelfake.New(t, vercelfake.Options{})
			f.AddDeployment("dpl_live", "production", "READY")
			// The lookup succeeds; the POST that creates the deployment fails.
			tg := newTargetWith(t, f, &armOnPost{f: f, status: c.status}, "redeploy: true")
			_, err := tg.(target.Reloader).Reload(t.Context(), target.ReloadRequest{RotationID: "r"})
			require.ErrorContains(t, err, "cannot redeploy production deployment dpl_live")
			var re *target.RetryableError
			require.Equal(t, c.retryable, errors.As(err, &re))
			if c.retryable {
				require.Equal(t, c.retryAfter, re.RetryAfter)
			}
		})
	}
}

// pollFaults arms a fault on the fake before the first reads of a
// deployment and lifts it once failures of them have failed.
type pollFaults struct {
	f        *vercelfake.Server
	arm      func(*vercelfake.Server)
	failures int

	mu      sync.Mutex
	armed   bool
	nfailed int
}

func (p *pollFaults) RoundTrip(req *http.Request) (*http.Response, error) {
	poll := req.Method == http.MethodGet && strings.HasPrefix(req.URL.Path, "/v13/deployments/")
	p.mu.Lock()
	if poll && !p.armed {
		p.armed = true
		p.arm(p.f)
	}
	p.mu.Unlock()
	resp, err := http.DefaultTransport.RoundTrip(req)
	if poll && err == nil && resp.StatusCode >= 400 {
		p.mu.Lock()
		p.nfailed++
		if p.nfailed == p.failures {
			p.f.NoRateLimit()
		}
		p.mu.Unlock()
	}
	return resp, err
}

func (p *pollFaults) failed() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.nfailed
}

// goneDeployments answers every read of one deployment with Vercel's 404,
// as for a deployment deleted while it built.
type goneDeployments struct{}

func (goneDeployments) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method == http.MethodGet && strings.HasPrefix(req.URL.Path, "/v13/deployments/") {
		return &http.Response{
			StatusCode: http.StatusNotFound, Request: req,
			Header: http.Header{"Content-Type": {"application/json"}},
			Body:   io.NopCloser(strings.NewReader(`{"error":{"code":"not_found","message":"The deployment could not be found."}}`)),
		}, nil
	}
	return http.DefaultTransport.RoundTrip(req)
}
