package render_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/rotorhq/rotor/internal/secret"
	"github.com/rotorhq/rotor/internal/target"
	"github.com/rotorhq/rotor/internal/target/render"
	"github.com/rotorhq/rotor/internal/target/render/renderfake"
	"github.com/rotorhq/rotor/internal/target/targettest"
)

// fastPoll keeps the waits of these tests short; the fake counts reads,
// not time, so nothing depends on how fast the machine is.
const fastPoll = "reload_poll: 1ms"

// fullDeploy is the life of a deploy Render documents: created when
// triggered, then build and update for two reads each, then live.
var fullDeploy = renderfake.Progress{Statuses: []string{"created", "build_in_progress", "update_in_progress", "live"}, Polls: 2}

func TestReloadWaitsUntilLive(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, opts, wantBody string
		queued               bool
		wantPath             string
	}{
		{name: "service", opts: "{service_id: " + svc + ", " + fastPoll + "}", wantBody: `{"clearCache":"do_not_clear"}`, wantPath: "created → build_in_progress → update_in_progress → live"},
		{name: "deploy_only", opts: "{service_id: " + svc + ", deploy_mode: deploy_only, " + fastPoll + "}", wantBody: `{"clearCache":"do_not_clear","deployMode":"deploy_only"}`, wantPath: "created → build_in_progress → update_in_progress → live"},
		{name: "queued (202)", opts: "{service_id: " + svc + ", " + fastPoll + "}", wantBody: `{"clearCache":"do_not_clear"}`, queued: true, wantPath: "queued → created → build_in_progress → update_in_progress → live"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFake(t, renderfake.Options{})
			f.QueueDeploys(tc.queued)
			f.SetProgress(fullDeploy)
			rec := &recorder{}
			tg := newTarget(t, f, rec, tc.opts)
			v := secret.New("postgres://app:new@host/db")
			_, err := tg.Put(t.Context(), putReq(map[string]secret.String{"DATABASE_URL": v}, "DATABASE_URL"))
			require.NoError(t, err)
			require.Empty(t, f.Deploys(svc), "Put must never deploy")

			before := len(rec.all())
			resp, err := tg.(target.Reloader).Reload(t.Context(), target.ReloadRequest{RotationID: "7"})
			require.NoError(t, err)
			ds := f.Deploys(svc)
			require.Len(t, ds, 1)
			d := ds[0]
			require.True(t, v.Equal(secret.New(d.Env["DATABASE_URL"])), "the deploy must see the value written")
			require.Equal(t, "live", d.Status)

			calls := rec.all()[before:]
			require.Equal(t, "POST /v1/services/"+svc+"/deploys", calls[0].line())
			require.JSONEq(t, tc.wantBody, string(calls[0].body))
			calls = calls[1:]
			if tc.queued {
				require.Equal(t, "GET /v1/services/"+svc+"/deploys?limit=1&status=queued&status=created&status=build_in_progress&status=update_in_progress&status=pre_deploy_in_progress", calls[0].lineQuery())
				calls = calls[1:]
			}
			// Two reads each for build_in_progress and update_in_progress
			// (and created, after queued): live at the fifth (seventh) read.
			wantReads := 5
			if tc.queued {
				wantReads = 7
			}
			require.Len(t, calls, wantReads)
			require.Equal(t, wantReads, d.Reads, "Reload reads the deploy until it is live, and no more")
			for _, c := range calls {
				require.Equal(t, "GET /v1/services/"+svc+"/deploys/"+d.ID, c.line())
			}
			require.Contains(t, resp.Detail, "deploy "+d.ID+" of "+svc+" live after ")
			require.Contains(t, resp.Detail, "("+tc.wantPath+")")

			// A second Reload of the same rotation neither deploys nor asks again.
			n := len(rec.all())
			again, err := tg.(target.Reloader).Reload(t.Context(), target.ReloadRequest{RotationID: "7"})
			require.NoError(t, err)
			require.Equal(t, resp.Detail, again.Detail)
			require.Len(t, rec.all(), n)
		})
	}
}

func TestReloadDeploysEveryServiceAndWaitsForEach(t *testing.T) {
	t.Parallel()
	f := newFake(t, renderfake.Options{})
	f.SetServiceProgress(svc, renderfake.Progress{Statuses: []string{"created", "live"}})
	f.SetServiceProgress(svc2, renderfake.Progress{Statuses: []string{"created", "build_in_progress", "live"}, Polls: 3})
	rt := &failNthDeploy{f: f, n: 2}
	tg := newTarget(t, f, rt, "{env_group_id: "+group+", deploy_services: ["+svc+", "+svc2+"], "+fastPoll+"}")
	v := secret.New("postgres://app:grp@host/db")
	_, err := tg.Put(t.Context(), putReq(map[string]secret.String{"DATABASE_URL": v}, "DATABASE_URL"))
	require.NoError(t, err)

	// The second service's deploy fails with a 500: not retryable, since
	// Render may have queued it.
	_, err = tg.(target.Reloader).Reload(t.Context(), target.ReloadRequest{RotationID: "9"})
	require.ErrorContains(t, err, "cannot deploy service "+svc2)
	var re *target.RetryableError
	require.False(t, errors.As(err, &re))
	require.Len(t, f.Deploys(svc), 1)
	require.Zero(t, f.Deploys(svc)[0].Reads, "every deploy is triggered before any is waited for")

	// Running Reload again for the same rotation deploys only what is
	// missing, and waits for both.
	resp, err := tg.(target.Reloader).Reload(t.Context(), target.ReloadRequest{RotationID: "9"})
	require.NoError(t, err)
	require.Len(t, f.Deploys(svc), 1)
	require.Len(t, f.Deploys(svc2), 1)
	for _, s := range []string{svc, svc2} {
		d := f.Deploys(s)[0]
		require.Equal(t, "live", d.Status, s)
		require.True(t, v.Equal(secret.New(d.Env["DATABASE_URL"])), "%s saw the group's new value", s)
		require.Contains(t, resp.Detail, "deploy "+d.ID+" of "+s+" live after ")
	}
	require.Equal(t, 1, f.Deploys(svc)[0].Reads, "a live deploy is not read again")
	require.Equal(t, 4, f.Deploys(svc2)[0].Reads)
	require.Contains(t, resp.Detail, "(created → build_in_progress → live)")
}

func TestReloadFailedDeploy(t *testing.T) {
	t.Parallel()
	cases := []struct{ status, why string }{
		{"build_failed", "the build failed"},
		{"update_failed", "did not start or pass their health checks"},
		{"pre_deploy_failed", "the pre-deploy command failed"},
		{"canceled", "the deploy was canceled"},
		{"deactivated", "another deploy replaced it before rotor saw it live"},
	}
	for _, tc := range cases {
		t.Run(tc.status, func(t *testing.T) {
			t.Parallel()
			f := newFake(t, renderfake.Options{})
			f.SetServiceProgress(svc2, renderfake.Progress{Statuses: []string{"created", "build_in_progress", tc.status}})
			tg := newTarget(t, f, nil, "{env_group_id: "+group+", deploy_services: ["+svc+", "+svc2+"], "+fastPoll+"}")
			_, err := tg.(target.Reloader).Reload(t.Context(), target.ReloadRequest{RotationID: "r"})
			require.ErrorIs(t, err, render.ErrDeployFailed)
			failed := f.Deploys(svc2)[0]
			require.ErrorContains(t, err, `render target "api": deploy `+failed.ID+" of "+svc2+" ended "+tc.status)
			require.ErrorContains(t, err, "(created → build_in_progress → "+tc.status+")")
			require.ErrorContains(t, err, tc.why)
			require.ErrorContains(t, err, "logs in the Render dashboard")
			require.ErrorContains(t, err, "rotor resume")
			var re *target.RetryableError
			require.False(t, errors.As(err, &re), "a broken build is not fixed by deploying it again at once")

			// The failed deploy is forgotten, the live one is not: the
			// next Reload (a resume) deploys only the failed service again.
			f.SetServiceProgress(svc2, renderfake.Progress{})
			resp, err := tg.(target.Reloader).Reload(t.Context(), target.ReloadRequest{RotationID: "r"})
			require.NoError(t, err)
			require.Len(t, f.Deploys(svc), 1)
			require.Len(t, f.Deploys(svc2), 2)
			require.Contains(t, resp.Detail, f.Deploys(svc2)[1].ID)
		})
	}
}

func TestReloadTimesOutWhileDeploying(t *testing.T) {
	t.Parallel()
	f := newFake(t, renderfake.Options{})
	// One service goes live at once; the other stays in its build until
	// the test finishes it.
	f.SetServiceProgress(svc2, renderfake.Progress{Statuses: []string{"created", "build_in_progress", "live"}, Polls: 1 << 30})
	tg := newTarget(t, f, nil, "{env_group_id: "+group+", deploy_services: ["+svc+", "+svc2+"], "+fastPoll+"}")
	// reload_timeout runs out once the client has seen one deploy live
	// and the other building.
	ctx := targettest.NewDeadline(t.Context())
	ctx.PassWhen(func() bool {
		a, b := f.Deploys(svc), f.Deploys(svc2)
		return len(a) > 0 && len(b) > 0 && a[0].Reads >= 1 && b[0].Reads >= 2
	})
	_, err := tg.(target.Reloader).Reload(ctx, target.ReloadRequest{RotationID: "r"})
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.NotErrorIs(t, err, render.ErrDeployFailed)
	live, stuck := f.Deploys(svc)[0], f.Deploys(svc2)[0]
	require.ErrorContains(t, err, "deploy "+live.ID+" of "+svc+" live after ")
	require.ErrorContains(t, err, "deploy "+stuck.ID+" of "+svc2+" still build_in_progress after ")
	require.ErrorContains(t, err, "(created → build_in_progress)")
	require.ErrorContains(t, err, "reload_timeout")
	var re *target.RetryableError
	require.False(t, errors.As(err, &re), "the deploy goes on at Render; starting another is no fix")

	// Resuming in the same process waits for the same deploys.
	f.Finish(svc2, stuck.ID)
	resp, err := tg.(target.Reloader).Reload(t.Context(), target.ReloadRequest{RotationID: "r"})
	require.NoError(t, err)
	require.Len(t, f.Deploys(svc), 1, "the second Reload must not deploy again")
	require.Len(t, f.Deploys(svc2), 1, "the second Reload must not deploy again")
	require.Contains(t, resp.Detail, "deploy "+stuck.ID+" of "+svc2+" live after ")
	require.Contains(t, resp.Detail, "(created → build_in_progress → live)")
}

func TestReloadPollingSurvivesTransientErrors(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		arm  func(f *renderfake.Server)
	}{
		{name: "5xx", arm: func(f *renderfake.Server) { f.FailNext(2, http.StatusServiceUnavailable) }},
		{name: "429", arm: func(f *renderfake.Server) { f.RateLimit(0, 0) }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFake(t, renderfake.Options{})
			f.SetProgress(renderfake.Progress{Statuses: []string{"created", "build_in_progress", "live"}})
			ft := &pollFaults{f: f, arm: tc.arm, failures: 2}
			tg := newTarget(t, f, ft, "{service_id: "+svc+", "+fastPoll+"}")
			resp, err := tg.(target.Reloader).Reload(t.Context(), target.ReloadRequest{RotationID: "r"})
			require.NoError(t, err)
			require.Equal(t, 2, ft.failed(), "two reads failed and were retried")
			require.Contains(t, resp.Detail, "live after")
			require.Len(t, f.Deploys(svc), 1, "a failed read never deploys again")
		})
	}
}

func TestReloadStopsWhenTheDeployIsGone(t *testing.T) {
	t.Parallel()
	f := newFake(t, renderfake.Options{})
	tg := newTarget(t, f, goneDeploys{}, "{service_id: "+svc+", "+fastPoll+"}")
	_, err := tg.(target.Reloader).Reload(t.Context(), target.ReloadRequest{RotationID: "r"})
	require.ErrorIs(t, err, target.ErrNotFound)
	require.ErrorContains(t, err, "cannot follow deploy "+f.Deploys(svc)[0].ID+" of "+svc+" (created so far)")
	var re *target.RetryableError
	require.False(t, errors.As(err, &re))
}

func TestRateLimitedDeployIsRetryable(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 8, 1, 9, 0, 0, 0, time.UTC)
	f := newFake(t, renderfake.Options{Now: func() time.Time { return now }})
	tg := build(t, f, nil, f.Token(), "service_id: "+svc, func() time.Time { return now })
	f.RateLimit(0, 6*time.Second)
	_, err := tg.(target.Reloader).Reload(t.Context(), target.ReloadRequest{RotationID: "1"})
	var re *target.RetryableError
	require.ErrorAs(t, err, &re)
	require.Equal(t, 6*time.Second, re.RetryAfter)
	require.Empty(t, f.Deploys(svc))
}

// pollFaults arms a fault on the fake before the first read of a deploy
// and lifts it once failures reads have failed.
type pollFaults struct {
	f        *renderfake.Server
	arm      func(*renderfake.Server)
	failures int

	mu      sync.Mutex
	armed   bool
	nfailed int
}

func (p *pollFaults) RoundTrip(req *http.Request) (*http.Response, error) {
	poll := req.Method == http.MethodGet && strings.Contains(req.URL.Path, "/deploys/")
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

// goneDeploys answers every read of one deploy with Render's 404, as for
// a deploy that no longer exists.
type goneDeploys struct{}

func (goneDeploys) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method == http.MethodGet && strings.Contains(req.URL.Path, "/deploys/") {
		return &http.Response{
			StatusCode: http.StatusNotFound, Request: req,
			Header: http.Header{"Content-Type": {"application/json"}},
			Body:   io.NopCloser(strings.NewReader(`{"id":"not-found","message":"deploy not found"}`)),
		}, nil
	}
	return http.DefaultTransport.RoundTrip(req)
}
