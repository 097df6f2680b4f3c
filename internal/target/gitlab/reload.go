package gitlab

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/rotorhq/rotor/internal/secret"
	"github.com/rotorhq/rotor/internal/target"
	"github.com/rotorhq/rotor/internal/target/webapi"
)

// DefaultReloadPoll is how often Reload looks at the pipeline: 90
// requests for a 15-minute pipeline, far below GitLab.com's 2,000
// authenticated API requests a minute.
const DefaultReloadPoll = 10 * time.Second

// ErrPipelineFailed: the pipeline Reload started ended failed, canceled
// or skipped.
var ErrPipelineFailed = errors.New("the pipeline did not succeed")

// pipelineState is one rotation's pipeline and what has been seen of it.
type pipelineState struct {
	rotationID string
	id         int64
	webURL     string
	// start is when the pipeline was created (rotor's clock).
	start time.Time
	// statuses are the pipeline's statuses in the order seen.
	statuses target.States
	// detail is set once the pipeline succeeded.
	detail string
}

func (s *pipelineState) last() string { return s.statuses.Last() }

// Reload implements target.Reloader: it starts a pipeline on the ref so
// jobs run with the new variables, and returns once the pipeline's status
// is success. failed, canceled and skipped are an ErrPipelineFailed
// naming the pipeline; manual means it waits for a person to run a job,
// which Reload keeps waiting for. When ctx ends first, the error wraps
// ctx.Err() and says the last status seen.
//
// A pipeline is not idempotent (each call is a run), so only rate limits,
// refused before anything ran, are retryable. Called again for the same
// rotation, Reload waits for the pipeline it already started instead of
// starting another, unless that one failed: then it starts a new one,
// which is what `rotor resume` is for.
func (t *Target) Reload(ctx context.Context, req target.ReloadRequest) (target.ReloadResponse, error) {
	t.mu.Lock()
	st := t.pipeline
	if st != nil && st.rotationID != req.RotationID {
		st = nil
	}
	var detail string
	if st != nil {
		detail = st.detail
	}
	t.mu.Unlock()
	if detail != "" {
		return target.ReloadResponse{Detail: detail + " (finished before; no new pipeline started)"}, nil
	}
	if st == nil {
		ref := t.pipelineRef
		start := t.now()
		// Not idempotent: each POST is a run, so only a 429 or a
		// request that never left is retried (apiError, webapi).
		var pl pipeline
		if err := t.call(ctx, http.MethodPost, t.ownerPath()+"/pipeline", pipelineRequest{Ref: ref}, &pl, "start a pipeline on "+ref, false, []secret.String{t.token}); err != nil {
			return target.ReloadResponse{}, err
		}
		st = &pipelineState{rotationID: req.RotationID, id: pl.ID, webURL: pl.WebURL, start: start}
		st.statuses.See(pl.Status)
		t.mu.Lock()
		t.pipeline = st
		t.mu.Unlock()
	}
	detail, err := t.waitPipeline(ctx, st)
	t.mu.Lock()
	defer t.mu.Unlock()
	switch {
	case errors.Is(err, ErrPipelineFailed):
		if t.pipeline == st {
			t.pipeline = nil // the next Reload starts a new pipeline
		}
		return target.ReloadResponse{}, err
	case err != nil:
		return target.ReloadResponse{}, err
	}
	st.detail = detail
	return target.ReloadResponse{Detail: detail}, nil
}

// waitPipeline polls the pipeline until it succeeded, failed, or ctx
// ends. A 429 is waited out (Retry-After); a 5xx or a lost answer is tried
// again at the next poll.
func (t *Target) waitPipeline(ctx context.Context, st *pipelineState) (string, error) {
	for {
		detail, done, err := t.pollPipeline(ctx, st)
		if ctx.Err() != nil {
			return "", t.stillRunning(ctx, st)
		}
		var wait time.Duration
		switch {
		case errors.Is(err, ErrPipelineFailed):
			return "", err
		case err != nil:
			var ok bool
			if wait, ok = retryPoll(err); !ok {
				return "", err
			}
		case done:
			return detail, nil
		}
		if t.sleep(ctx, max(t.pollEvery, wait)) != nil {
			return "", t.stillRunning(ctx, st)
		}
	}
}

// retryPoll says whether a failed poll may be repeated, and after how
// long at least: a 429 or a 5xx (the poll is a read), or an error without
// any answer from GitLab.
func retryPoll(err error) (time.Duration, bool) {
	var re *target.RetryableError
	if errors.As(err, &re) {
		return re.RetryAfter, true
	}
	var se *webapi.StatusError
	return 0, !errors.As(err, &se)
}

// pollPipeline looks at the pipeline once (GET
// /projects/:id/pipelines/:pipeline_id).
func (t *Target) pollPipeline(ctx context.Context, st *pipelineState) (string, bool, error) {
	var pl pipeline
	if err := t.get(ctx, fmt.Sprintf("%s/pipelines/%d", t.ownerPath(), st.id), &pl, fmt.Sprintf("read pipeline %d", st.id)); err != nil {
		return "", false, err
	}
	st.webURL = cmp.Or(pl.WebURL, st.webURL)
	st.statuses.See(pl.Status)
	elapsed := t.now().Sub(st.start).Round(time.Second)
	switch pl.Status {
	case pipelineSuccess:
		return fmt.Sprintf("pipeline %d on %s in project %s succeeded after %s (%s): %s",
			st.id, t.pipelineRef, t.ref, elapsed, st.statuses.String(), st.webURL), true, nil
	case pipelineFailed, pipelineCanceled, pipelineSkipped:
		return "", false, fmt.Errorf("%s: pipeline %d on %s in project %s ended %s after %s (%s); the variables hold the new values, but the pipeline did not succeed: read its jobs' logs at %s, fix the cause, then `rotor resume` starts a new pipeline: %w",
			t.desc, st.id, t.pipelineRef, t.ref, pl.Status, elapsed, st.statuses.String(), st.webURL, ErrPipelineFailed)
	}
	return "", false, nil
}

// stillRunning is the error for a pipeline ctx gave up on: its last
// status and where to look.
func (t *Target) stillRunning(ctx context.Context, st *pipelineState) error {
	elapsed := t.now().Sub(st.start).Round(time.Second)
	hint := "look at it at " + st.webURL
	if st.last() == pipelineManual {
		hint = "it waits for someone to run its manual job(s): run them at " + st.webURL
	}
	return fmt.Errorf("%s: pipeline %d on %s in project %s is still %s after %s (%s); %s, and once it has succeeded run `rotor resume`: %w",
		t.desc, st.id, t.pipelineRef, t.ref, cmp.Or(st.last(), "unseen"), elapsed, cmp.Or(st.statuses.String(), "no status seen"), hint, ctx.Err())
}
