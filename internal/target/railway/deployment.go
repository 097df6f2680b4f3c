package railway

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/rotorhq/rotor/internal/secret"
	"github.com/rotorhq/rotor/internal/target"
)

// DefaultReloadPoll is how often Reload reads the new deployment while it
// builds. Railway allows 100, 1000 or 10000 requests an hour (Free, Hobby,
// Pro); at one read every 15s a typical two-minute deployment costs about
// ten requests, and a wait of the whole default reload_timeout (15m) sixty.
const DefaultReloadPoll = 15 * time.Second

// ErrDeployFailed is what a deployment that ended without running the new
// values unwraps to.
var ErrDeployFailed = errors.New("the deployment did not succeed")

// What each DeploymentStatus of Railway's public schema (railwayapp/cli
// src/gql/schema.json; described in railwayapp/docs
// content/docs/integrations/api/manage-deployments.md) means for a reload.
var (
	// finishedStatuses: the deployment runs, with the new values.
	finishedStatuses = map[string]string{
		"SUCCESS": "",
		// An app-sleeping service sleeps when idle and wakes with the
		// deployment's values on the next request.
		"SLEEPING": "asleep until its next request",
	}
	// failedStatuses: it will not run the new values.
	failedStatuses = map[string]string{
		"FAILED":   "the build or the deploy failed, so the service still runs its previous deployment with the old values",
		"CRASHED":  "it started and then crashed, so the service may not be running at all",
		"REMOVED":  "it was removed (replaced by a newer deployment, or by hand) before rotor saw it succeed",
		"REMOVING": "it is being removed (replaced by a newer deployment, or by hand) before rotor saw it succeed",
		"SKIPPED":  "Railway skipped it, so the service still runs its previous deployment with the old values",
	}
	// waitingHints explain statuses that need someone to act.
	waitingHints = map[string]string{
		"NEEDS_APPROVAL": "it needs approving in the Railway dashboard",
		"WAITING":        "Railway holds it back, waiting for an approval or for the commit's CI checks",
	}
)

// deployWait is a deployment Reload started, remembered per rotation so a
// second Reload waits for it instead of deploying again.
type deployWait struct {
	id      string
	started time.Time
	// seen are the statuses read so far, each once, in order.
	seen target.States
	// detail is set once the deployment runs.
	detail string
}

func (d *deployWait) last() string {
	if len(d.seen) == 0 {
		return "in an unknown status"
	}
	last := d.seen.Last()
	if hint := waitingHints[last]; hint != "" {
		return last + " (" + hint + ")"
	}
	return last
}

// Reload implements target.Reloader: it deploys the service's current
// commit again (serviceInstanceDeployV2, which answers the deployment id)
// so the service starts with the variables Put wrote, and returns once
// that deployment is SUCCESS.
//
// The deployment is remembered for the rotation: calling Reload again (an
// engine retry, a resume in the same process) waits for it, or reports it
// again once it runs, and never deploys a second time. A deployment that
// failed is forgotten, so the next Reload deploys again.
func (t *Target) Reload(ctx context.Context, req target.ReloadRequest) (target.ReloadResponse, error) {
	t.mu.Lock()
	w := t.deployed[req.RotationID]
	detail := ""
	if w != nil {
		detail = w.detail
	}
	t.mu.Unlock()
	if detail != "" {
		return target.ReloadResponse{Detail: detail}, nil
	}
	if w == nil {
		var err error
		if w, err = t.deploy(ctx); err != nil {
			return target.ReloadResponse{}, err
		}
		t.mu.Lock()
		t.deployed[req.RotationID] = w
		t.mu.Unlock()
	}
	detail, err := t.await(ctx, w)
	t.mu.Lock()
	defer t.mu.Unlock()
	switch {
	case err == nil:
		w.detail = detail
	case errors.Is(err, ErrDeployFailed):
		delete(t.deployed, req.RotationID)
	}
	if err != nil {
		return target.ReloadResponse{}, err
	}
	return target.ReloadResponse{Detail: detail}, nil
}

func (t *Target) deploy(ctx context.Context) (*deployWait, error) {
	var out struct {
		ID *string `json:"serviceInstanceDeployV2"`
	}
	vars := map[string]any{"serviceId": t.serviceID, "environmentId": t.environmentID}
	started := t.now()
	// Each call is a new deployment: only a rate-limit refusal is safe to
	// retry.
	if err := t.graphql(ctx, "serviceInstanceDeployV2", deployMutation, vars, &out, []secret.String{t.token}, false); err != nil {
		return nil, err
	}
	if out.ID == nil || *out.ID == "" {
		return nil, fmt.Errorf("%s: serviceInstanceDeployV2 answered no deployment id, so rotor cannot wait for it; check service %s's deployments in the Railway dashboard: %w", t.desc, t.serviceID, target.ErrInvalid)
	}
	return &deployWait{id: *out.ID, started: started}, nil
}

// await reads the deployment at once and then every reload_poll until it
// runs, fails, or ctx ends. A transient failure of one read (a rate limit,
// 5xx, a network error) is retried at the next poll, after the wait
// Railway asked for.
func (t *Target) await(ctx context.Context, w *deployWait) (string, error) {
	var lastErr error
	for {
		wait := t.poll
		status, err := t.deploymentStatus(ctx, w.id)
		switch {
		case err == nil:
			lastErr = nil
			w.seen.See(status)
			if note, ok := finishedStatuses[status]; ok {
				detail := fmt.Sprintf("deployment %s of service %s %s after %s (%s)", w.id, t.serviceID, status, target.Elapsed(w.started, t.now()), w.seen.String())
				if note != "" {
					detail += ", " + note
				}
				return detail, nil
			}
			if why, failed := failedStatuses[status]; failed {
				return "", fmt.Errorf("%s: deployment %s of service %s ended %s after %s (%s): %s. Look at the deployment's build and deploy logs in the Railway dashboard, fix the cause and run `rotor resume`, which deploys again: %w",
					t.desc, w.id, t.serviceID, status, target.Elapsed(w.started, t.now()), w.seen.String(), why, ErrDeployFailed)
			}
		case ctx.Err() != nil:
			return "", t.stillRunning(ctx, w, lastErr)
		default:
			var re *target.RetryableError
			if !errors.As(err, &re) {
				return "", fmt.Errorf("%s: cannot follow deployment %s of service %s (%s so far): %w", t.desc, w.id, t.serviceID, cmp.Or(w.seen.String(), "no status read"), err)
			}
			lastErr = err
			wait = max(wait, re.RetryAfter)
		}
		if err := target.Sleep(ctx, wait); err != nil {
			return "", t.stillRunning(ctx, w, lastErr)
		}
	}
}

func (t *Target) deploymentStatus(ctx context.Context, id string) (string, error) {
	var out struct {
		Deployment *struct {
			ID     string `json:"id"`
			Status string `json:"status"`
		} `json:"deployment"`
	}
	if err := t.graphql(ctx, "deployment", deploymentQuery, map[string]any{"id": id}, &out, []secret.String{t.token}, true); err != nil {
		return "", err
	}
	if out.Deployment == nil || out.Deployment.Status == "" {
		return "", fmt.Errorf("%s: Railway answered no status for deployment %s; check api_url: %w", t.desc, id, target.ErrInvalid)
	}
	return out.Deployment.Status, nil
}

// stillRunning is the error for a wait that ctx ended; it wraps ctx.Err()
// and is not retryable: the deployment goes on at Railway.
func (t *Target) stillRunning(ctx context.Context, w *deployWait, lastErr error) error {
	last := ""
	if lastErr != nil {
		last = fmt.Sprintf("; the last read failed: %v", lastErr)
	}
	return fmt.Errorf("%s: deployment %s of service %s still %s after %s (%s)%s; the service keeps its old values until it succeeds. Follow it in the Railway dashboard, raise the target's reload_timeout if deployments take this long, and run `rotor resume` once it has succeeded: %w",
		t.desc, w.id, t.serviceID, w.last(), target.Elapsed(w.started, t.now()), cmp.Or(w.seen.String(), "no status read"), last, ctx.Err())
}
