package render

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/rotorhq/rotor/internal/target"
	"github.com/rotorhq/rotor/internal/target/webapi"
)

// DefaultReloadPoll is how often Reload reads each deploy while it runs.
// Render's own CLI polls a deploy every 5 to 10 seconds; 10s stays far
// below the GET rate limit (100–400 a minute) even for several services.
const DefaultReloadPoll = 10 * time.Second

// ErrDeployFailed is what a deploy that ended without going live unwraps
// to.
var ErrDeployFailed = errors.New("the deploy did not go live")

// Render's deploy statuses (render-oss/cli pkg/client/types_gen.go,
// DeployStatus), by what they mean for a reload.
const statusLive = "live"

const stillOld = ", so the service still runs its previous deploy with the old values"

var failedStatuses = map[string]string{
	"build_failed":      "the build failed" + stillOld,
	"update_failed":     "the new instances did not start or pass their health checks" + stillOld,
	"pre_deploy_failed": "the pre-deploy command failed" + stillOld,
	"canceled":          "the deploy was canceled" + stillOld,
	// A deploy is deactivated when another one replaces it; if rotor did
	// not see it live first, nobody can tell which values are running.
	"deactivated": "another deploy replaced it before rotor saw it live, so rotor cannot tell whether the service runs the new values",
}

// inProgressStatuses are the statuses of a deploy that has not ended; a
// deploy Render answered 202 for is the newest of them.
var inProgressStatuses = []string{"queued", "created", "build_in_progress", "update_in_progress", "pre_deploy_in_progress"}

// deployWait is one deploy Reload started, remembered per rotation and
// service so a second Reload waits for it instead of deploying again.
type deployWait struct {
	service, id string
	started     time.Time
	// seen are the statuses read so far, each once, in order.
	seen target.States
	// detail is set once the deploy is live.
	detail string
}

func (d *deployWait) last() string {
	if len(d.seen) == 0 {
		return "in an unknown status"
	}
	return d.seen.Last()
}

// Reload implements target.Reloader: Render applies variables only to new
// deploys, so each service is deployed, and Reload returns once every
// deploy is live.
//
// Every service's deploy is triggered first, then all are waited for
// together. The deploys Reload started are remembered for the rotation:
// calling Reload again (an engine retry, a resume in the same process)
// waits for them and deploys only the services that have none. A deploy
// that failed is forgotten, so the next Reload deploys that service again.
func (t *Target) Reload(ctx context.Context, req target.ReloadRequest) (target.ReloadResponse, error) {
	waits := make([]*deployWait, 0, len(t.deployTo))
	for _, s := range t.deployTo {
		t.mu.Lock()
		w := t.deployed[req.RotationID][s]
		t.mu.Unlock()
		if w == nil {
			var err error
			if w, err = t.deploy(ctx, s); err != nil {
				return target.ReloadResponse{}, err
			}
			t.mu.Lock()
			if t.deployed[req.RotationID] == nil {
				t.deployed[req.RotationID] = map[string]*deployWait{}
			}
			t.deployed[req.RotationID][s] = w
			t.mu.Unlock()
		}
		waits = append(waits, w)
	}
	err := t.await(ctx, waits)
	if failed := (*deployFailure)(nil); errors.As(err, &failed) {
		t.mu.Lock()
		delete(t.deployed[req.RotationID], failed.service)
		t.mu.Unlock()
	}
	if err != nil {
		return target.ReloadResponse{}, err
	}
	details := make([]string, len(waits))
	for i, w := range waits {
		details[i] = w.detail
	}
	return target.ReloadResponse{Detail: strings.Join(details, "; ")}, nil
}

// deploy triggers a deploy of service and finds its id.
func (t *Target) deploy(ctx context.Context, service string) (*deployWait, error) {
	body := map[string]string{"clearCache": "do_not_clear"}
	if t.deployMode != "" {
		body["deployMode"] = t.deployMode
	}
	started := t.now()
	resp, err := t.api.Do(ctx, webapi.Request{
		Method: http.MethodPost, Path: servicePath(service, "/deploys"), Body: body,
		// A deploy is not idempotent: after a 5xx Render may have queued
		// it. A 429 (10 deploys a minute per service) is refused before
		// anything happens, so only that is retried.
		Retryable: true,
	})
	if err != nil {
		return nil, t.fail("cannot deploy service "+service, webapi.OnlyRateLimitRetries(err))
	}
	w := &deployWait{service: service, started: started}
	var out renderDeploy
	if resp.Status == http.StatusAccepted {
		// 202 has no body: the deploy is queued behind one in progress.
		// Like Render's CLI, rotor finds it in the service's deploy list:
		// it is the newest that has not ended.
		if out, err = t.newestInProgress(ctx, service); err != nil {
			return nil, err
		}
	} else if err := t.api.Decode(resp, &out); err != nil {
		return nil, t.fail("cannot read the answer to the deploy of "+service, err)
	}
	if out.ID == "" {
		return nil, fmt.Errorf("render target %q: Render accepted the deploy of %s but its answer names no deploy id, so rotor cannot wait for it; check the service's deploys in the Render dashboard: %w", t.name, service, target.ErrInvalid)
	}
	w.id = out.ID
	w.seen.See(out.Status)
	return w, nil
}

func (t *Target) newestInProgress(ctx context.Context, service string) (renderDeploy, error) {
	q := url.Values{"status": inProgressStatuses, "limit": {"1"}}
	resp, err := t.api.Do(ctx, webapi.Request{Method: http.MethodGet, Path: servicePath(service, "/deploys?"+q.Encode()), Retryable: true})
	var list []struct {
		Deploy renderDeploy `json:"deploy"`
	}
	if err == nil {
		err = t.api.Decode(resp, &list)
	}
	if err != nil {
		// Not retryable: the deploy is queued, and a retried Reload would
		// queue another.
		var re *target.RetryableError
		if errors.As(err, &re) {
			err = re.Err
		}
		return renderDeploy{}, t.fail("Render queued the deploy of "+service+" (202) but rotor cannot list the service's deploys to follow it", err)
	}
	if len(list) == 0 {
		return renderDeploy{}, fmt.Errorf("render target %q: Render queued the deploy of %s (202), but the service lists no deploy in progress; check its deploys in the Render dashboard and run `rotor resume` once one is live: %w", t.name, service, ErrDeployFailed)
	}
	return list[0].Deploy, nil
}

// await reads every deploy that is not live yet, every reload_poll, until
// all are live, one fails, or ctx ends. A transient failure of one read
// (429, 5xx, a network error) is retried at the next poll, after the wait
// a 429 asked for.
func (t *Target) await(ctx context.Context, waits []*deployWait) error {
	lastErr := map[*deployWait]error{}
	for {
		wait, pending := t.poll, false
		for _, w := range waits {
			if w.detail != "" {
				continue
			}
			d, err := t.readDeploy(ctx, w)
			switch {
			case err == nil:
				delete(lastErr, w)
				w.seen.See(d.Status)
				if d.Status == statusLive {
					w.detail = fmt.Sprintf("deploy %s of %s live after %s (%s)", w.id, w.service, target.Elapsed(w.started, t.now()), w.seen.String())
					continue
				}
				if why, failed := failedStatuses[d.Status]; failed {
					return t.deployFailed(w, why)
				}
			case ctx.Err() != nil:
				return t.stillRunning(ctx, waits, lastErr)
			default:
				var re *target.RetryableError
				if !errors.As(err, &re) {
					return t.fail(fmt.Sprintf("cannot follow deploy %s of %s (%s so far)", w.id, w.service, cmp.Or(w.seen.String(), "no status read")), err)
				}
				lastErr[w] = err
				wait = max(wait, re.RetryAfter)
			}
			pending = true
		}
		if !pending {
			return nil
		}
		if err := target.Sleep(ctx, wait); err != nil {
			return t.stillRunning(ctx, waits, lastErr)
		}
	}
}

func (t *Target) readDeploy(ctx context.Context, w *deployWait) (renderDeploy, error) {
	resp, err := t.api.Do(ctx, webapi.Request{Method: http.MethodGet, Path: servicePath(w.service, "/deploys/"+url.PathEscape(w.id)), Retryable: true})
	if err != nil {
		return renderDeploy{}, err
	}
	var out renderDeploy
	err = t.api.Decode(resp, &out)
	return out, err
}

// deployFailure is the error for a deploy that ended without going live;
// Reload forgets that service's deploy so the next Reload deploys again.
type deployFailure struct {
	service string
	msg     string
}

func (e *deployFailure) Error() string { return e.msg }
func (e *deployFailure) Unwrap() error { return ErrDeployFailed }

func (t *Target) deployFailed(w *deployWait, why string) error {
	return &deployFailure{service: w.service, msg: fmt.Sprintf("render target %q: deploy %s of %s ended %s after %s (%s): %s. Look at the deploy's logs in the Render dashboard, fix the cause and run `rotor resume`, which deploys again: %v",
		t.name, w.id, w.service, w.last(), target.Elapsed(w.started, t.now()), w.seen.String(), why, ErrDeployFailed)}
}

// stillRunning is the error for a wait that ctx ended; it names every
// deploy that is not live yet, wraps ctx.Err() and is not retryable: the
// deploys go on at Render.
func (t *Target) stillRunning(ctx context.Context, waits []*deployWait, lastErr map[*deployWait]error) error {
	var parts []string
	for _, w := range waits {
		if w.detail != "" {
			parts = append(parts, w.detail)
			continue
		}
		part := fmt.Sprintf("deploy %s of %s still %s after %s (%s)", w.id, w.service, w.last(), target.Elapsed(w.started, t.now()), w.seen.String())
		if err := lastErr[w]; err != nil {
			part += fmt.Sprintf(", the last read failed: %v", err)
		}
		parts = append(parts, part)
	}
	return fmt.Errorf("render target %q: %s; a service keeps its old values until its deploy is live. Follow the deploys in the Render dashboard, raise the target's reload_timeout if they take this long, and run `rotor resume` once they are live: %w",
		t.name, strings.Join(parts, "; "), ctx.Err())
}

// renderDeploy is a deploy as Render answers it.
type renderDeploy struct {
	ID     string `json:"id"`
	Status string `json:"status"`
}

func servicePath(service, suffix string) string {
	return "/v1/services/" + url.PathEscape(service) + suffix
}
