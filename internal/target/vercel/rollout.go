package vercel

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

// DefaultReloadPoll is how often Reload reads the new deployment while it
// builds. A build takes tens of seconds to minutes; one read every 5s is a
// dozen requests a minute, far inside Vercel's API rate limits, and any
// 429 is honoured anyway.
const DefaultReloadPoll = 5 * time.Second

// ErrDeployFailed is what a redeploy that will never serve the new values
// unwraps to: the build ended in ERROR or CANCELED, or Vercel built it but
// did not assign it to production.
var ErrDeployFailed = errors.New("the redeploy did not reach production")

// Vercel's readyState values and the readySubstate values of a READY
// deployment (vercel/sdk src/models/getdeploymentresponsebody.ts).
const (
	stateReady    = "READY"
	stateError    = "ERROR"
	stateCanceled = "CANCELED"

	// substateStaged: "never seen production traffic".
	substateStaged = "STAGED"
	// substateRolling: "in the process of having production traffic
	// gradually transitioned" (a rolling release).
	substateRolling = "ROLLING"
	// substatePromoted: "has seen production traffic".
	substatePromoted = "PROMOTED"
)

// rollout is a redeploy Reload started, remembered per rotation so that a
// second Reload of the same rotation waits for it instead of building
// again.
type rollout struct {
	id, from string
	started  time.Time
	// seen are the states read so far, each once, in order.
	seen target.States
	// unassigned says, for a READY deployment not yet serving
	// production, what Vercel reports instead.
	unassigned string
	// detail is set once the deployment serves production.
	detail string
}

func (r *rollout) last() string {
	if len(r.seen) == 0 {
		return "in an unknown state"
	}
	if last := r.seen.Last(); last != stateReady || r.unassigned == "" {
		return last
	}
	return "READY but not serving production yet (" + r.unassigned + ")"
}

// Reload implements target.Reloader: Vercel applies variables only to new
// deployments, so the current production deployment is redeployed, and
// Reload returns once the new deployment is READY and serving production.
//
// A deployment Reload started is remembered for the rotation: calling
// Reload again (an engine retry, a resume in the same process) waits for
// it, or reports it again once it serves production, and never builds a
// second one. A deployment that failed is forgotten, so the next Reload
// redeploys.
func (t *Target) Reload(ctx context.Context, req target.ReloadRequest) (target.ReloadResponse, error) {
	t.mu.Lock()
	r := t.rollouts[req.RotationID]
	detail := ""
	if r != nil {
		detail = r.detail
	}
	t.mu.Unlock()
	if detail != "" {
		return target.ReloadResponse{Detail: detail}, nil
	}
	if r == nil {
		d, err := t.currentProduction(ctx)
		if err != nil {
			return target.ReloadResponse{}, err
		}
		if d == nil {
			return target.ReloadResponse{Detail: "no READY production deployment to redeploy; the next deployment reads the new values"}, nil
		}
		if r, err = t.redeployOf(ctx, d); err != nil {
			return target.ReloadResponse{}, err
		}
		t.mu.Lock()
		t.rollouts[req.RotationID] = r
		t.mu.Unlock()
	}
	detail, err := t.await(ctx, r)
	t.mu.Lock()
	defer t.mu.Unlock()
	switch {
	case err == nil:
		r.detail = detail
	case errors.Is(err, ErrDeployFailed):
		delete(t.rollouts, req.RotationID)
	}
	if err != nil {
		return target.ReloadResponse{}, err
	}
	return target.ReloadResponse{Detail: detail}, nil
}

// redeployOf asks Vercel to build d again for production.
func (t *Target) redeployOf(ctx context.Context, d *deployment) (*rollout, error) {
	name := d.Name
	if name == "" {
		name = t.project
	}
	started := t.now()
	resp, err := t.api.Do(ctx, webapi.Request{
		Method: http.MethodPost, Path: t.teamPath("/v13/deployments", url.Values{"forceNew": {"1"}}),
		Body: redeployBody{Name: name, Project: t.project, DeploymentID: d.UID, Target: EnvProduction},
		// A second deployment is only wasted build time, but Vercel may
		// have started the first when it answered 5xx; only a 429, which
		// Vercel answers before doing anything, is retried.
		Retryable: true,
	})
	if err != nil {
		return nil, t.fail("cannot redeploy production deployment "+d.UID, webapi.OnlyRateLimitRetries(err))
	}
	var out deployment
	if err := t.api.Decode(resp, &out); err != nil {
		return nil, t.fail("cannot read the answer to the redeploy", err)
	}
	if out.ID == "" {
		return nil, fmt.Errorf("vercel target %q: the redeploy of %s was accepted but Vercel's answer names no deployment id, so rotor cannot wait for it; check the project's deployments in the Vercel dashboard: %w", t.name, d.UID, target.ErrInvalid)
	}
	r := &rollout{id: out.ID, from: d.UID, started: started}
	r.seen.See(out.ReadyState)
	return r, nil
}

// await reads the deployment every reload_poll until it serves
// production, fails, or ctx ends. A transient failure of one read (429,
// 5xx, a network error) is retried at the next poll, after the wait a 429
// asked for.
func (t *Target) await(ctx context.Context, r *rollout) (string, error) {
	var lastErr error
	for {
		wait := t.poll
		d, err := t.readDeployment(ctx, r.id)
		switch {
		case err == nil:
			lastErr = nil
			r.seen.See(d.ReadyState)
			switch d.ReadyState {
			case stateReady:
				done, err := t.serving(r, d)
				if err != nil {
					return "", err
				}
				if done {
					return t.finished(r), nil
				}
				r.unassigned = fmt.Sprintf("readySubstate %s, aliasAssigned %t", cmp.Or(d.ReadySubstate, "unset"), d.AliasAssigned)
			case stateError, stateCanceled:
				return "", t.buildFailed(r, d)
			}
		case ctx.Err() != nil:
			return "", t.stillRunning(ctx, r, lastErr)
		default:
			var re *target.RetryableError
			if !errors.As(err, &re) {
				return "", t.fail(fmt.Sprintf("cannot follow deployment %s (%s so far)", r.id, cmp.Or(r.seen.String(), "no state read")), err)
			}
			lastErr = err
			wait = max(wait, re.RetryAfter)
		}
		if err := target.Sleep(ctx, wait); err != nil {
			return "", t.stillRunning(ctx, r, lastErr)
		}
	}
}

// serving reports whether a READY deployment serves production, and
// fails when it never will without someone's help.
func (t *Target) serving(r *rollout, d *deployment) (bool, error) {
	if d.AliasError != nil && (d.AliasError.Code != "" || d.AliasError.Message != "") {
		return false, fmt.Errorf("vercel target %q: deployment %s is READY (%s) but Vercel could not assign it to production (aliasError %s: %s), so production still runs %s with the old values; fix the project's production domains in the Vercel dashboard and run `rotor resume`, which redeploys: %w",
			t.name, r.id, r.seen.String(), d.AliasError.Code, webapi.Shorten(d.AliasError.Message), r.from, ErrDeployFailed)
	}
	switch {
	case d.ReadySubstate == substatePromoted:
		return true, nil
	case d.ReadySubstate == "" && d.AliasAssigned:
		// Vercel answers readySubstate only since 2023; the aliases being
		// assigned is the older evidence.
		return true, nil
	case d.ReadySubstate == substateRolling:
		// A rolling release moves traffic over in stages; the old
		// deployment still serves part of it.
		return false, nil
	case d.AutoAssignCustomDomains != nil && !*d.AutoAssignCustomDomains:
		return false, fmt.Errorf("vercel target %q: deployment %s is READY (%s) but staged: the project does not assign its production domains to new deployments automatically, so production still runs %s with the old values. Turn the automatic assignment of production domains back on and run `rotor resume`, which redeploys; if production deployments are staged on purpose, promote %s yourself (`vercel promote %s`, or Promote in the dashboard), since rotor cannot tell when that happens: %w",
			t.name, r.id, r.seen.String(), r.from, r.id, r.id, ErrDeployFailed)
	}
	return false, nil
}

func (t *Target) finished(r *rollout) string {
	return fmt.Sprintf("deployment %s (a redeploy of %s) READY after %s (%s), serving production", r.id, r.from, target.Elapsed(r.started, t.now()), r.seen.String())
}

func (t *Target) buildFailed(r *rollout, d *deployment) error {
	var parts []string
	for _, p := range []string{d.ErrorCode, webapi.Shorten(d.ErrorMessage)} {
		if p = strings.TrimSpace(p); p != "" {
			parts = append(parts, p)
		}
	}
	why := ""
	if len(parts) > 0 {
		why = " (" + strings.Join(parts, ": ") + ")"
	}
	return fmt.Errorf("vercel target %q: deployment %s (a redeploy of %s) ended %s after %s (%s)%s; production still runs %s with the old values. Look at the deployment's build logs in the Vercel dashboard, fix the cause and run `rotor resume`, which redeploys: %w",
		t.name, r.id, r.from, d.ReadyState, target.Elapsed(r.started, t.now()), r.seen.String(), why, r.from, ErrDeployFailed)
}

// stillRunning is the error for a wait that ctx ended; it wraps ctx.Err()
// and is not retryable: the build goes on at Vercel.
func (t *Target) stillRunning(ctx context.Context, r *rollout, lastErr error) error {
	last := ""
	if lastErr != nil {
		last = fmt.Sprintf("; the last read failed: %v", lastErr)
	}
	return fmt.Errorf("vercel target %q: deployment %s (a redeploy of %s) still %s after %s (%s)%s; production keeps the old values until it serves production. Follow it in the Vercel dashboard, raise the target's reload_timeout if builds take this long, and run `rotor resume` once it is READY: %w",
		t.name, r.id, r.from, r.last(), target.Elapsed(r.started, t.now()), r.seen.String(), last, ctx.Err())
}

func (t *Target) readDeployment(ctx context.Context, id string) (*deployment, error) {
	resp, err := t.api.Do(ctx, webapi.Request{Method: http.MethodGet, Path: t.teamPath("/v13/deployments/"+url.PathEscape(id), nil), Retryable: true})
	if err != nil {
		return nil, err
	}
	var out deployment
	if err := t.api.Decode(resp, &out); err != nil {
		return nil, err
	}
	return &out, nil
}
