package github

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/rotorhq/rotor/internal/secret"
	"github.com/rotorhq/rotor/internal/target"
	"github.com/rotorhq/rotor/internal/target/webapi"
)

// DefaultReloadPoll is how often Reload looks at the dispatched run. A
// token has 5,000 requests an hour; at one every 10 s a 15-minute deploy
// costs 90 of them.
const DefaultReloadPoll = 10 * time.Second

// ErrRunFailed: the dispatched workflow run completed without success.
var ErrRunFailed = errors.New("the dispatched workflow run did not succeed")

// runState is one rotation's dispatch and what has been seen of its run.
type runState struct {
	rotationID string
	// id is the run's; 0 until the run is known (an API without
	// return_run_details answers the dispatch with 204 only).
	id      int64
	htmlURL string
	// since is GitHub's time when it received the dispatch, to the
	// second: the run was created at or after it.
	since time.Time
	// start is when the dispatch was sent (rotor's clock), for elapsed times.
	start time.Time
	// statuses are the run's statuses in the order seen.
	statuses target.States
	// detail is set once the run succeeded.
	detail string
}

func (s *runState) last() string { return s.statuses.Last() }

// Reload implements target.Reloader: it dispatches the workflow on ref and
// returns once the run it started has completed with conclusion success,
// which for a deploy workflow means the new values are live. Any other
// conclusion is an ErrRunFailed naming the run. When ctx ends first, the
// error wraps ctx.Err() and says the run's last status.
//
// A dispatch is not idempotent (each one is a run), so only refusals
// GitHub made before doing anything, rate limits, are retryable. Called
// again for the same rotation, Reload waits for the run it already
// started instead of dispatching again, unless that run failed: then it
// dispatches anew, which is what `rotor resume` is for.
func (t *Target) Reload(ctx context.Context, req target.ReloadRequest) (target.ReloadResponse, error) {
	t.runMu.Lock()
	st := t.run
	if st != nil && st.rotationID != req.RotationID {
		st = nil
	}
	var detail string
	if st != nil {
		detail = st.detail
	}
	t.runMu.Unlock()
	if detail != "" {
		return target.ReloadResponse{Detail: detail + " (finished before; not dispatched again)"}, nil
	}
	if st == nil {
		var err error
		if st, err = t.dispatchRun(ctx, req.RotationID); err != nil {
			return target.ReloadResponse{}, err
		}
		t.runMu.Lock()
		t.run = st
		t.runMu.Unlock()
	}
	detail, err := t.waitRun(ctx, st)
	t.runMu.Lock()
	defer t.runMu.Unlock()
	switch {
	case errors.Is(err, ErrRunFailed):
		if t.run == st {
			t.run = nil // the next Reload dispatches again
		}
		return target.ReloadResponse{}, err
	case err != nil:
		return target.ReloadResponse{}, err
	}
	st.detail = detail
	return target.ReloadResponse{Detail: detail}, nil
}

// dispatchRun starts the workflow, asking GitHub for the run's id
// (return_run_details, GitHub changelog 2026-02-19).
func (t *Target) dispatchRun(ctx context.Context, rotationID string) (*runState, error) {
	d := t.dispatch
	t.runMu.Lock()
	askDetails := !t.noRunDetails
	t.runMu.Unlock()
	event := dispatchEvent{Ref: d.ref}
	if askDetails {
		yes := true
		event.ReturnRunDetails = &yes
	}
	sent := t.now()
	details, r, err := t.sendDispatch(ctx, event)
	if err != nil && askDetails && refusesRunDetails(err) {
		// GitHub Enterprise Server before 3.21 refuses the key, and so
		// started nothing: dispatch again without it.
		t.runMu.Lock()
		t.noRunDetails = true
		t.runMu.Unlock()
		event.ReturnRunDetails = nil
		sent = t.now()
		details, r, err = t.sendDispatch(ctx, event)
	}
	if err != nil {
		return nil, err
	}
	st := &runState{rotationID: rotationID, start: sent, since: t.receivedAt(r, sent)}
	if details.WorkflowRunID != 0 {
		st.id, st.htmlURL = details.WorkflowRunID, details.HTMLURL
	}
	return st, nil
}

// sendDispatch POSTs the dispatch: 204, or 200 with the run's id when
// return_run_details was asked for and understood. A dispatch starts a
// run, so only a refusal made before anything started is retryable.
func (t *Target) sendDispatch(ctx context.Context, event dispatchEvent) (runDetails, *webapi.Response, error) {
	d := t.dispatch
	var details runDetails
	r, err := t.call(ctx, http.MethodPost, t.workflowPath()+"/dispatches", event, &details, "dispatch workflow "+d.workflow+" on "+d.ref, false, []secret.String{t.token})
	return details, r, err
}

// refusesRunDetails recognises an API that does not know
// return_run_details: `"return_run_details" is not a permitted key.`
// (reported for Enterprise Server 3.19, benc-uk/workflow-dispatch#86).
func refusesRunDetails(err error) bool {
	var se *webapi.StatusError
	if !errors.As(err, &se) {
		return false
	}
	return (se.Status == http.StatusBadRequest || se.Status == http.StatusUnprocessableEntity) && strings.Contains(se.Message, "return_run_details")
}

// receivedAt is the earliest time, on GitHub's clock and to the second,
// at which GitHub can have received the dispatch: its Date header less
// the round trip. Listing runs created at or after it finds the run
// whatever rotor's clock says.
func (t *Target) receivedAt(r *webapi.Response, sent time.Time) time.Time {
	rtt := max(t.now().Sub(sent), 0)
	if r != nil {
		if date, err := http.ParseTime(r.Header.Get("Date")); err == nil {
			return date.Add(-rtt).Truncate(time.Second).UTC()
		}
	}
	return sent.Truncate(time.Second).UTC()
}

// waitRun polls the run until it completed or ctx ends. A rate limit is
// waited out (Retry-After, or the reset time); a 5xx or a lost answer
// is tried again at the next poll.
func (t *Target) waitRun(ctx context.Context, st *runState) (string, error) {
	for {
		detail, done, err := t.pollRun(ctx, st)
		if ctx.Err() != nil {
			return "", t.stillRunning(ctx, st)
		}
		var wait time.Duration
		switch {
		case errors.Is(err, ErrRunFailed):
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
// long at least: a rate limit or a 5xx (the poll is a read), or an error
// without any answer from GitHub.
func retryPoll(err error) (time.Duration, bool) {
	var re *target.RetryableError
	if errors.As(err, &re) {
		return re.RetryAfter, true
	}
	var se *webapi.StatusError
	return 0, !errors.As(err, &se)
}

// pollRun looks at the run once: done with a detail when it succeeded,
// an ErrRunFailed when it completed otherwise.
func (t *Target) pollRun(ctx context.Context, st *runState) (string, bool, error) {
	d := t.dispatch
	var run workflowRun
	if st.id == 0 {
		found, err := t.findRun(ctx, st)
		if err != nil || found == nil {
			return "", false, err
		}
		run, st.id = *found, found.ID
	} else if err := t.get(ctx, fmt.Sprintf("%s/actions/runs/%d", repoPath(d.wfOwner, d.wfRepo), st.id), &run, fmt.Sprintf("read workflow run %d", st.id)); err != nil {
		return "", false, err
	}
	st.htmlURL = cmp.Or(run.HTMLURL, st.htmlURL)
	st.statuses.See(run.Status)
	if run.Status != "completed" {
		return "", false, nil
	}
	elapsed := t.now().Sub(st.start).Round(time.Second)
	if c := run.Conclusion; c != "success" {
		return "", false, fmt.Errorf("%s: workflow run %d of %s on %s in %s/%s completed with conclusion %s after %s (%s); the secrets hold the new values, but the workflow did not succeed: read the run's logs at %s, fix the cause, then `rotor resume` dispatches the workflow again: %w",
			t.desc, st.id, d.workflow, d.ref, d.wfOwner, d.wfRepo, cmp.Or(c, "(none)"), elapsed, st.statuses.String(), st.htmlURL, ErrRunFailed)
	}
	return fmt.Sprintf("workflow run %d of %s on %s in %s/%s completed success after %s (%s): %s",
		st.id, d.workflow, d.ref, d.wfOwner, d.wfRepo, elapsed, st.statuses.String(), st.htmlURL), true, nil
}

// findRun looks for the run of a dispatch GitHub gave no id for: the
// newest workflow_dispatch run of the workflow on ref created at or after
// GitHub received the dispatch. GitHub creates the run asynchronously, so
// none may be listed yet (nil, nil). Every such run started after the
// secrets were written, so any of them reads the new values.
func (t *Target) findRun(ctx context.Context, st *runState) (*workflowRun, error) {
	d := t.dispatch
	q := url.Values{
		"event":    {"workflow_dispatch"},
		"branch":   {branchOf(d.ref)},
		"created":  {">=" + st.since.Format(time.RFC3339)},
		"per_page": {"10"},
	}
	var runs workflowRuns
	if err := t.get(ctx, t.workflowPath()+"/runs?"+q.Encode(), &runs, "list runs of workflow "+d.workflow); err != nil {
		return nil, err
	}
	for i := range runs.WorkflowRuns { // newest first
		if runs.WorkflowRuns[i].ID != 0 {
			return &runs.WorkflowRuns[i], nil
		}
	}
	return nil, nil
}

// branchOf is the name a run's head_branch carries for a dispatch ref.
func branchOf(ref string) string {
	for _, prefix := range []string{"refs/heads/", "refs/tags/"} {
		if b, ok := strings.CutPrefix(ref, prefix); ok {
			return b
		}
	}
	return ref
}

// stillRunning is the error for a run ctx gave up on: its last status
// and where to look.
func (t *Target) stillRunning(ctx context.Context, st *runState) error {
	d := t.dispatch
	elapsed := t.now().Sub(st.start).Round(time.Second)
	if st.id == 0 {
		return fmt.Errorf("%s: workflow %s was dispatched on %s in %s/%s, but no run of it created since %s showed up within %s; look at the repository's Actions tab (the workflow needs `on: workflow_dispatch` on that ref): %w",
			t.desc, d.workflow, d.ref, d.wfOwner, d.wfRepo, st.since.Format(time.RFC3339), elapsed, ctx.Err())
	}
	hint := "look at the run at " + st.htmlURL
	if st.last() == "waiting" {
		hint = "it waits for a deployment protection rule of its environment (e.g. a required reviewer): approve it at " + st.htmlURL
	}
	return fmt.Errorf("%s: workflow run %d of %s on %s in %s/%s is still %s after %s (%s); %s, and once it has succeeded run `rotor resume`: %w",
		t.desc, st.id, d.workflow, d.ref, d.wfOwner, d.wfRepo, cmp.Or(st.last(), "unseen (GitHub has not answered a poll)"), elapsed, cmp.Or(st.statuses.String(), "no status seen"), hint, ctx.Err())
}
