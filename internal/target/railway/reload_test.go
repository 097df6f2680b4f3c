package railway_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/rotorhq/rotor/internal/target"
	"github.com/rotorhq/rotor/internal/target/railway"
	"github.com/rotorhq/rotor/internal/target/railway/railwayfake"
	"github.com/rotorhq/rotor/internal/target/targettest"
)

// fastPoll keeps the waits of these tests short; the fake counts reads,
// not time, so nothing depends on how fast the machine is.
const fastPoll = "reload_poll: 1ms\n"

func TestReloadWaitsUntilSuccess(t *testing.T) {
	t.Parallel()
	f := railwayfake.New(t)
	// QUEUED when started (the mutation answers only the id), then two
	// reads per status: SUCCESS at the seventh read.
	f.SetProgress(railwayfake.Progress{Statuses: []string{"QUEUED", "INITIALIZING", "BUILDING", "DEPLOYING", "SUCCESS"}, Polls: 2})
	tg := newTarget(t, f, projectOpts+serviceOpt+fastPoll)
	_, err := tg.Put(t.Context(), targettest.PutRequest(map[string]string{"DATABASE_URL": "postgres://a:b@h/db"}))
	require.NoError(t, err)
	require.Empty(t, f.Deploys(), "Put must never deploy")

	before := len(f.Calls())
	resp, err := tg.(target.Reloader).Reload(t.Context(), target.ReloadRequest{RotationID: "7"})
	require.NoError(t, err)
	ds := f.Deploys()
	require.Len(t, ds, 1)
	d := ds[0]
	require.Equal(t, railwayfake.ServiceID, d.ServiceID)
	require.Equal(t, railwayfake.EnvironmentID, d.EnvironmentID)
	require.Equal(t, "redeploy", d.Reason)
	require.Equal(t, "SUCCESS", d.Status)
	require.Equal(t, 7, d.Reads, "Reload reads the deployment until it succeeds, and no more")

	calls := f.Calls()[before:]
	require.Len(t, calls, 1+7)
	require.Equal(t, "serviceInstanceDeployV2", calls[0].Operation)
	require.True(t, calls[0].Mutation)
	require.Equal(t, map[string]any{"serviceId": railwayfake.ServiceID, "environmentId": railwayfake.EnvironmentID}, calls[0].Variables)
	for _, c := range calls[1:] {
		require.Equal(t, "deployment", c.Operation)
		require.False(t, c.Mutation)
		require.Equal(t, map[string]any{"id": d.ID}, c.Variables)
	}
	require.Contains(t, resp.Detail, "deployment "+d.ID+" of service svc-api SUCCESS after ")
	require.Contains(t, resp.Detail, "(INITIALIZING → BUILDING → DEPLOYING → SUCCESS)")

	// A second Reload of the same rotation neither deploys nor asks again.
	n := len(f.Calls())
	again, err := tg.(target.Reloader).Reload(t.Context(), target.ReloadRequest{RotationID: "7"})
	require.NoError(t, err)
	require.Equal(t, resp.Detail, again.Detail)
	require.Len(t, f.Calls(), n)

	// Another rotation deploys again; the earlier deployment is replaced.
	_, err = tg.(target.Reloader).Reload(t.Context(), target.ReloadRequest{RotationID: "8"})
	require.NoError(t, err)
	ds = f.Deploys()
	require.Len(t, ds, 2)
	require.Equal(t, "REMOVED", ds[0].Status)
	require.Equal(t, "SUCCESS", ds[1].Status)
}

func TestReloadSleepingIsFinished(t *testing.T) {
	t.Parallel()
	f := railwayfake.New(t)
	f.SetProgress(railwayfake.Progress{Statuses: []string{"QUEUED", "BUILDING", "SLEEPING"}})
	tg := newTarget(t, f, projectOpts+serviceOpt+fastPoll)
	resp, err := tg.(target.Reloader).Reload(t.Context(), target.ReloadRequest{RotationID: "1"})
	require.NoError(t, err)
	require.Contains(t, resp.Detail, "SLEEPING after ")
	require.Contains(t, resp.Detail, "(BUILDING → SLEEPING), asleep until its next request")
}

func TestReloadFailedDeployment(t *testing.T) {
	t.Parallel()
	cases := []struct{ status, why string }{
		{"FAILED", "the build or the deploy failed"},
		{"CRASHED", "it started and then crashed"},
		{"REMOVED", "it was removed"},
		{"SKIPPED", "Railway skipped it"},
	}
	for _, tc := range cases {
		t.Run(tc.status, func(t *testing.T) {
			t.Parallel()
			f := railwayfake.New(t)
			f.SetProgress(railwayfake.Progress{Statuses: []string{"QUEUED", "BUILDING", tc.status}})
			tg := newTarget(t, f, projectOpts+serviceOpt+fastPoll)
			_, err := tg.(target.Reloader).Reload(t.Context(), target.ReloadRequest{RotationID: "r"})
			require.ErrorIs(t, err, railway.ErrDeployFailed)
			id := f.Deploys()[0].ID
			require.ErrorContains(t, err, `railway target "prod": deployment `+id+" of service svc-api ended "+tc.status)
			require.ErrorContains(t, err, "(BUILDING → "+tc.status+")")
			require.ErrorContains(t, err, tc.why)
			require.ErrorContains(t, err, "logs in the Railway dashboard")
			require.ErrorContains(t, err, "rotor resume")
			var re *target.RetryableError
			require.False(t, errors.As(err, &re), "a broken build is not fixed by deploying it again at once")

			// The failed deployment is forgotten: the next Reload (a resume)
			// deploys again.
			f.SetProgress(railwayfake.Progress{})
			resp, err := tg.(target.Reloader).Reload(t.Context(), target.ReloadRequest{RotationID: "r"})
			require.NoError(t, err)
			require.Len(t, f.Deploys(), 2)
			require.Contains(t, resp.Detail, f.Deploys()[1].ID)
		})
	}
}

func TestReloadTimesOutWhileBuilding(t *testing.T) {
	t.Parallel()
	f := railwayfake.New(t)
	f.SetProgress(railwayfake.Progress{Statuses: []string{"QUEUED", "BUILDING", "SUCCESS"}, Polls: 1 << 30})
	tg := newTarget(t, f, projectOpts+serviceOpt+fastPoll)
	// reload_timeout runs out once the client has seen it BUILDING.
	ctx := targettest.NewDeadline(t.Context())
	ctx.PassWhen(func() bool { ds := f.Deploys(); return len(ds) > 0 && ds[0].Reads >= 2 })
	_, err := tg.(target.Reloader).Reload(ctx, target.ReloadRequest{RotationID: "r"})
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.NotErrorIs(t, err, railway.ErrDeployFailed)
	d := f.Deploys()[0]
	require.ErrorContains(t, err, "deployment "+d.ID+" of service svc-api still BUILDING after ")
	require.ErrorContains(t, err, "(BUILDING)")
	require.ErrorContains(t, err, "reload_timeout")
	var re *target.RetryableError
	require.False(t, errors.As(err, &re), "the deployment goes on at Railway; starting another is no fix")

	// Resuming in the same process waits for the same deployment.
	f.Finish(d.ID)
	resp, err := tg.(target.Reloader).Reload(t.Context(), target.ReloadRequest{RotationID: "r"})
	require.NoError(t, err)
	require.Len(t, f.Deploys(), 1, "the second Reload must not deploy again")
	require.Contains(t, resp.Detail, "deployment "+d.ID+" of service svc-api SUCCESS after ")
	require.Contains(t, resp.Detail, "(BUILDING → SUCCESS)")
}

func TestReloadTimesOutWaitingForApproval(t *testing.T) {
	t.Parallel()
	f := railwayfake.New(t)
	f.SetProgress(railwayfake.Progress{Statuses: []string{"QUEUED", "NEEDS_APPROVAL", "SUCCESS"}, Polls: 1 << 30})
	tg := newTarget(t, f, projectOpts+serviceOpt+fastPoll)
	ctx := targettest.NewDeadline(t.Context())
	ctx.PassWhen(func() bool { ds := f.Deploys(); return len(ds) > 0 && ds[0].Reads >= 2 })
	_, err := tg.(target.Reloader).Reload(ctx, target.ReloadRequest{RotationID: "r"})
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.ErrorContains(t, err, "still NEEDS_APPROVAL (it needs approving in the Railway dashboard)")
}

func TestReloadPollingSurvivesTransientErrors(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		arm  func(f *railwayfake.Fake)
	}{
		{name: "HTTP 502", arm: func(f *railwayfake.Fake) { f.FailNext(2, http.StatusBadGateway) }},
		{name: "HTTP 429", arm: func(f *railwayfake.Fake) { f.Limit(0, 0) }},
		{name: "rate limit in GraphQL", arm: func(f *railwayfake.Fake) { f.RateLimitInGraphQLNext(2, 0) }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := railwayfake.New(t)
			f.SetProgress(railwayfake.Progress{Statuses: []string{"QUEUED", "BUILDING", "SUCCESS"}})
			ft := &afterDeploy{f: f, arm: tc.arm, failures: 2}
			tg := newTargetVia(t, f, ft, projectOpts+serviceOpt+fastPoll)
			resp, err := tg.(target.Reloader).Reload(t.Context(), target.ReloadRequest{RotationID: "r"})
			require.NoError(t, err)
			require.Equal(t, 2, ft.failed(), "two reads failed and were retried")
			require.Contains(t, resp.Detail, "SUCCESS after")
			require.Len(t, f.Deploys(), 1, "a failed read never deploys again")
		})
	}
}

func TestReloadStopsWhenTheDeploymentIsGone(t *testing.T) {
	t.Parallel()
	f := railwayfake.New(t)
	f.ErrorOn("deployment", "Deployment not found")
	tg := newTarget(t, f, projectOpts+serviceOpt+fastPoll)
	_, err := tg.(target.Reloader).Reload(t.Context(), target.ReloadRequest{RotationID: "r"})
	require.ErrorIs(t, err, target.ErrNotFound)
	require.ErrorContains(t, err, "cannot follow deployment "+f.Deploys()[0].ID+" of service svc-api (no status read so far)")
	var re *target.RetryableError
	require.False(t, errors.As(err, &re))
}

func TestReloadDeployRequest(t *testing.T) {
	t.Parallel()
	t.Run("redeploy: false builds no Reloader", func(t *testing.T) {
		t.Parallel()
		f := railwayfake.New(t)
		tg := newTarget(t, f, projectOpts+serviceOpt+"redeploy: false\n")
		ok := target.Discover(tg).Reloader != nil
		require.False(t, ok)
	})
	t.Run("a server error is not retried: a deployment may have started", func(t *testing.T) {
		t.Parallel()
		f := railwayfake.New(t)
		f.FailNext(1, 502)
		tg := newTarget(t, f, projectOpts+serviceOpt)
		_, err := tg.(target.Reloader).Reload(t.Context(), target.ReloadRequest{})
		require.ErrorContains(t, err, "serviceInstanceDeployV2 failed (HTTP 502)")
		require.ErrorContains(t, err, "may or may not have started the deployment")
		var re *target.RetryableError
		require.False(t, errors.As(err, &re))
	})
	t.Run("a rate limit is retried: nothing started", func(t *testing.T) {
		t.Parallel()
		f := railwayfake.New(t)
		f.Limit(0, 3*time.Second)
		tg := newTarget(t, f, projectOpts+serviceOpt)
		_, err := tg.(target.Reloader).Reload(t.Context(), target.ReloadRequest{})
		var re *target.RetryableError
		require.ErrorAs(t, err, &re)
		require.Equal(t, 3*time.Second, re.RetryAfter)
		require.Empty(t, f.Deploys())
	})
	t.Run("a refused deploy names the operation", func(t *testing.T) {
		t.Parallel()
		f := railwayfake.New(t)
		f.ErrorOn("serviceInstanceDeployV2", "Deployment is already in progress")
		tg := newTarget(t, f, projectOpts+serviceOpt)
		_, err := tg.(target.Reloader).Reload(t.Context(), target.ReloadRequest{})
		require.ErrorIs(t, err, target.ErrInvalid)
		require.ErrorContains(t, err, "serviceInstanceDeployV2 failed (HTTP 200): Deployment is already in progress")
		require.Empty(t, f.Deploys())
	})
}

// afterDeploy arms a fault on the fake once the deploy mutation has been
// answered, so it hits the reads of the deployment, and lifts an HTTP
// rate limit once failures requests have failed.
type afterDeploy struct {
	f        *railwayfake.Fake
	arm      func(*railwayfake.Fake)
	failures int

	mu      sync.Mutex
	armed   bool
	nfailed int
}

func (a *afterDeploy) RoundTrip(req *http.Request) (*http.Response, error) {
	body, _ := io.ReadAll(req.Body)
	req.Body = io.NopCloser(bytes.NewReader(body))
	deploy := bytes.Contains(body, []byte("serviceInstanceDeployV2"))
	resp, err := a.f.Client().Transport.RoundTrip(req)
	if err != nil {
		return resp, err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	switch {
	case deploy && !a.armed:
		a.armed = true
		a.arm(a.f)
	case a.armed && !deploy:
		// Peek at the answer: a GraphQL rate limit comes with HTTP 200.
		raw, _ := io.ReadAll(resp.Body)
		resp.Body = io.NopCloser(bytes.NewReader(raw))
		if resp.StatusCode >= 400 || bytes.Contains(raw, []byte(`"errors"`)) {
			a.nfailed++
			if a.nfailed == a.failures {
				a.f.Limit(-1, 0)
			}
		}
	}
	return resp, err
}

func (a *afterDeploy) failed() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.nfailed
}

func newTargetVia(t *testing.T, f *railwayfake.Fake, rt http.RoundTripper, opts string) target.Target {
	t.Helper()
	tg, err := railway.New(target.Params{
		Name:       "prod",
		Decode:     targettest.DecodeYAML(opts + "api_url: " + f.URL + "\n"),
		HTTPClient: &http.Client{Transport: rt},
		Now:        time.Now,
	})
	require.NoError(t, err)
	return tg
}
