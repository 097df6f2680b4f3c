package fly

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/rotorhq/rotor/internal/target"
	"github.com/rotorhq/rotor/internal/target/webapi"
)

// Rolling reload. Updating a started machine restarts it, so updating all
// of them back to back takes the whole app down at once. Reload therefore
// updates one machine, waits until it is started again and its health
// checks pass, and only then touches the next — what flyctl's rolling
// deploys (which `fly secrets deploy` uses) do.
//
// What the Machines API offers for this, as Fly.io documents it
// (superfly/docs machines/api/machines-resource.html.markerb, served as
// https://fly.io/docs/machines/api/machines-resource/ "Wait for a Machine
// to reach a specified state"):
//
//   - GET /v1/apps/{app}/machines/{id}/wait with query parameters
//     instance_id ("Filter for a specific Machine instance_id (version)"),
//     timeout ("The time, in seconds, to wait … Default is 60") and state
//     (started, stopped or destroyed; default started). It answers 200 once
//     the state is reached, 400 Bad Request, or 408 Request Timeout when
//     the timeout passes first.
//   - Every machine object carries instance_id ("Every Update request
//     potentially changes the instance_id") and checks ("the status of any
//     configured health checks"); the update answers with the machine, so
//     its new instance_id is what the wait filters on.
//
// How flyctl uses it (superfly/fly-go flaps/flaps_machines.go Wait, and
// superfly/flyctl internal/machine/leasable_machine.go WaitForState and
// WaitForHealthchecksToPass): the per-request timeout is clamped to 1–60 s
// (longer waits are cut by Fly's proxy), a 408 is not a failure but a
// reason to ask again until the caller's own deadline (flyctl's
// --wait-timeout, 5m by default), and health checks are polled with GET
// machine every 1–2 s until every check's status is "passing" (fly-go's
// HealthCheckStatus.AllPassing; "warning" and "critical" are not). A
// machine without checks is done once started. Newer fly-go also sends
// version=, but the API reference documents instance_id, so that is what
// rotor sends.
//
// Machine states (superfly/docs machines/machine-states.html.markerb):
// "failed" and "launch_failed" do not recover on their own, and a
// "destroying"/"destroyed" machine never starts, so those end the wait at
// once instead of at the deadline. A "stopped" machine is waited for: its
// restart policy may start it again.
//
// The reload has finished when every machine that was running is started
// again on its new instance with every check passing. The engine bounds
// the whole reload with the target's reload_timeout; when that ends the
// wait, the error names the machine and the state it was last seen in, and
// is not retryable (the bound is the bound). A 429 or 5xx while waiting is
// no verdict on the machine: the wait pauses (reload_poll, or Fly.io's
// Retry-After) and asks again.

const (
	// defaultPollEvery is the pause between health-check polls (flyctl: 1–2 s).
	defaultPollEvery = time.Second
	// maxWaitChunk caps one wait request (the documented default, and
	// fly-go's proxy threshold).
	maxWaitChunk = 60 * time.Second
)

// progress is what Reload knows about one machine within a rotation.
type progress struct {
	// instance is the instance_id the update returned ("" if it did not).
	instance string
	// sentAt is when the update was accepted, on the wall clock: the
	// machine's wait_timeout runs from there, across engine retries.
	sentAt time.Time
	// stays marks a stopped machine that was left stopped; it is not
	// waited for.
	stays bool
	// checks says the machine has health checks to wait for.
	checks bool
	// settled: started again (and healthy); the next machine may go.
	settled bool
	// seen is the machine as last seen (the update's answer, then each
	// read while waiting), for the error when the wait is cut short.
	seen machine
	// pollErr is the transient error of the wait's last request, if it
	// failed, so a wait cut short says it could not see the machine.
	pollErr error
}

// errGaveUp ends a wait early: the machine is in a state it does not leave
// on its own.
var errGaveUp = errors.New("machine will not start on its own")

// Reload implements target.Reloader: each machine is updated with its own
// config and min_secrets_version, one at a time, and each one that was
// running must be started again (and pass its health checks) before the
// next is touched. Stopped and suspended machines stay stopped; they read
// the secrets when they start, so they are not waited for.
func (t *Target) Reload(ctx context.Context, req target.ReloadRequest) (target.ReloadResponse, error) {
	ms, err := t.machines(ctx)
	if err != nil {
		return target.ReloadResponse{}, ended(ctx, err)
	}
	t.mu.Lock()
	version := t.version
	t.mu.Unlock()
	live := make([]machine, 0, len(ms))
	for _, m := range ms {
		if m.State != "destroyed" && m.State != "destroying" {
			live = append(live, m)
		}
	}
	if len(live) == 0 {
		return target.ReloadResponse{Detail: "app " + t.app + " has no machines; the secrets apply at its first deploy"}, nil
	}
	restarted, kept, healthy := 0, 0, 0
	for i, m := range live {
		failed := func(err error) (target.ReloadResponse, error) {
			return target.ReloadResponse{Detail: fmt.Sprintf("%d of %d machine(s) updated before the failure; the rest were not touched", t.countUpdated(req.RotationID, live), len(live))}, ended(ctx, err)
		}
		p := t.progressOf(req.RotationID, m.ID)
		if p == nil {
			p, err = t.update(ctx, m.ID, version)
			if err != nil {
				return failed(err)
			}
			t.mu.Lock()
			if t.updated[req.RotationID] == nil {
				t.updated[req.RotationID] = map[string]*progress{}
			}
			t.updated[req.RotationID][m.ID] = p
			t.mu.Unlock()
		}
		t.mu.Lock()
		settled := p.settled
		t.mu.Unlock()
		if !settled {
			if err := t.await(ctx, m.ID, p, t.notUpdated(req.RotationID, live[i+1:])); err != nil {
				return failed(err)
			}
			t.mu.Lock()
			p.settled = true
			t.mu.Unlock()
		}
		switch {
		case p.stays:
			kept++
		case p.checks:
			restarted++
			healthy++
		default:
			restarted++
		}
	}
	detail := fmt.Sprintf("updated %d machine(s)", len(live))
	if version > 0 {
		detail += fmt.Sprintf(" to secrets version %d", version)
	} else {
		detail += " (secrets version unknown in this process; machines get the latest Fly.io has)"
	}
	switch {
	case restarted == 0:
	case healthy == restarted:
		detail += fmt.Sprintf(", rolling: %d restarted, each started again and passing its health checks before the next was updated", restarted)
	case healthy > 0:
		detail += fmt.Sprintf(", rolling: %d restarted, each started again (the %d with health checks also passing them) before the next was updated", restarted, healthy)
	default:
		detail += fmt.Sprintf(", rolling: %d restarted, each started again before the next was updated", restarted)
	}
	if kept > 0 {
		detail += fmt.Sprintf("; %d stopped machine(s) left stopped", kept)
	}
	return target.ReloadResponse{Detail: detail}, nil
}

func (t *Target) progressOf(rotation, id string) *progress {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.updated[rotation][id]
}

func (t *Target) countUpdated(rotation string, ms []machine) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	for _, m := range ms {
		if t.updated[rotation][m.ID] != nil {
			n++
		}
	}
	return n
}

// notUpdated lists the machines of ms this rotation has not updated yet.
func (t *Target) notUpdated(rotation string, ms []machine) []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []string
	for _, m := range ms {
		if t.updated[rotation][m.ID] == nil {
			out = append(out, m.ID)
		}
	}
	return out
}

// update re-submits one machine's current config so it restarts with the
// new secrets. A machine that was stopped is updated with skip_launch and
// its progress is settled at once: nothing will start it.
func (t *Target) update(ctx context.Context, id string, version uint64) (*progress, error) {
	m, err := t.get(ctx, id)
	if err != nil {
		return nil, err
	}
	if len(m.Config) == 0 || string(m.Config) == "null" {
		return nil, fmt.Errorf("fly target %q: machine %s came back without a config, so it cannot be updated in place; run `fly secrets deploy -a %s`: %w", t.name, id, t.app, target.ErrInvalid)
	}
	// flyctl leaves stopped machines stopped; starting one here would wake
	// an app that is meant to scale to zero.
	stays := m.State == "stopped" || m.State == "suspended"
	body := updateBody{Config: m.Config, Region: m.Region, SkipLaunch: stays}
	if version > 0 {
		body.MinSecretsVersion = &version
	}
	// Re-submitting the same config converges, so a retry is safe; at
	// worst the machine restarts twice.
	resp, err := t.api.Do(ctx, webapi.Request{Method: http.MethodPost, Path: t.machinePath(id), Body: body, Retryable: true})
	if err != nil {
		return nil, t.fail("cannot update machine "+id, err)
	}
	// The answer is the updated machine. The update has happened whatever
	// it says, so an answer rotor cannot read only costs the instance
	// filter: the wait then accepts any started version.
	var out machine
	_ = json.Unmarshal(resp.Body, &out)
	seen := out
	if seen.State == "" {
		seen = m
	}
	return &progress{
		instance: out.InstanceID,
		sentAt:   time.Now(),
		stays:    stays,
		checks:   len(out.Checks) > 0 || len(m.Checks) > 0 || declaresChecks(m.Config),
		settled:  stays,
		seen:     seen,
	}, nil
}

// await waits until machine id, updated as p records, is started again
// and (if it has checks) healthy, within its wait_timeout. rest names the
// machines that will not be updated if it never is.
func (t *Target) await(ctx context.Context, id string, p *progress, rest []string) error {
	wctx, cancel := context.WithDeadline(ctx, p.sentAt.Add(t.waitTimeout))
	defer cancel()
	t.mu.Lock()
	last := p.seen
	t.mu.Unlock()
	last, err := t.waitStarted(wctx, id, p, last)
	if err == nil && p.checks {
		last, err = t.waitHealthy(wctx, id, p, last)
	}
	t.mu.Lock()
	p.seen = last
	t.mu.Unlock()
	switch {
	case err == nil:
		return nil
	case ctx.Err() != nil:
		// The reload's own time (reload_timeout) or the run ended, not the
		// machine's. The update is recorded, so a resume in this process
		// waits for this machine again instead of restarting it twice,
		// and still touches no other machine before this one is back.
		return fmt.Errorf("fly target %q: machine %s was updated and was not back yet when the reload's time ran out: it was last seen %s; %s. Look at it with `fly machine status %s -a %s`; if it only needs longer, raise reload_timeout, then run `rotor resume` (in the same process it waits for this machine again without restarting it): %w",
			t.name, id, t.lastSeen(p, last), leftAlone(rest), id, t.app, ctx.Err())
	case wctx.Err() != nil || errors.Is(err, errGaveUp):
		return t.stuck(ctx, id, p, last, rest, errors.Is(err, errGaveUp))
	default:
		return err
	}
}

// waitStarted asks the wait endpoint until the machine's new instance is
// started, the context ends, or the machine lands in a state it will not
// leave on its own. last is the machine as last seen; so is the result.
func (t *Target) waitStarted(ctx context.Context, id string, p *progress, last machine) (machine, error) {
	for {
		q := url.Values{"state": {"started"}, "timeout": {strconv.Itoa(waitSeconds(ctx, t.waitChunk))}}
		if p.instance != "" {
			q.Set("instance_id", p.instance)
		}
		_, err := t.api.Do(ctx, webapi.Request{Method: http.MethodGet, Path: t.machinePath(id) + "/wait?" + q.Encode(), Retryable: true})
		if err == nil {
			t.polled(p, nil)
			return last, nil
		}
		if ctx.Err() != nil {
			return last, ctx.Err()
		}
		var se *webapi.StatusError
		if !errors.As(err, &se) || se.Status != http.StatusRequestTimeout {
			if err := t.pause(ctx, p, err); err != nil {
				return last, t.fail("cannot wait for machine "+id+" to start", err)
			}
			continue
		}
		// 408: not started within this request's timeout. A look at the
		// machine tells a slow start from one that will not happen.
		m, err := t.get(ctx, id)
		if err != nil {
			if err := t.pause(ctx, p, err); err != nil {
				return last, err
			}
			continue
		}
		t.polled(p, nil)
		last = m
		if gaveUp(m.State) {
			return m, errGaveUp
		}
	}
}

// waitHealthy polls the machine until it is started and every health
// check it reports is passing.
func (t *Target) waitHealthy(ctx context.Context, id string, p *progress, last machine) (machine, error) {
	for {
		m, err := t.get(ctx, id)
		if err != nil {
			if err := t.pause(ctx, p, err); err != nil {
				return last, err
			}
			continue
		}
		t.polled(p, nil)
		last = m
		switch {
		case gaveUp(m.State):
			return m, errGaveUp
		case m.State == "started" && allPassing(m.Checks):
			return m, nil
		}
		select {
		case <-ctx.Done():
			return last, ctx.Err()
		case <-time.After(t.pollEvery):
		}
	}
}

// pause is what a wait does after a failed request: for a transient one
// (429, 5xx, a network error) it waits reload_poll, or as long as Fly.io
// asked, and returns nil so the caller asks again; any other error, or
// ctx ending first, is returned.
func (t *Target) pause(ctx context.Context, p *progress, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	var re *target.RetryableError
	if !errors.As(err, &re) {
		return err
	}
	t.polled(p, err)
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(max(t.pollEvery, re.RetryAfter)):
		return nil
	}
}

// polled records how the wait's last request went.
func (t *Target) polled(p *progress, err error) {
	t.mu.Lock()
	p.pollErr = err
	t.mu.Unlock()
}

// lastSeen describes the machine as the wait last saw it, and the failure
// of the wait's last request if it failed.
func (t *Target) lastSeen(p *progress, last machine) string {
	t.mu.Lock()
	err := p.pollErr
	t.mu.Unlock()
	out := describe(last)
	if err != nil {
		var se *webapi.StatusError
		if errors.As(err, &se) {
			err = se
		}
		out += fmt.Sprintf(" (the last request to see it failed: %v)", err)
	}
	return out
}

// stuck is the error for a machine that did not come back: it names the
// machine, where it is, what was left alone and what to do.
func (t *Target) stuck(ctx context.Context, id string, p *progress, last machine, rest []string, failed bool) error {
	if ctx.Err() == nil {
		if m, err := t.get(ctx, id); err == nil {
			last = m
			t.polled(p, nil)
		}
	}
	what := fmt.Sprintf("did not come back within wait_timeout %s after its update", t.waitTimeout)
	if failed {
		what = "will not come back on its own after its update"
	}
	hint := "; if it only needs longer to start, raise wait_timeout"
	if failed {
		hint = ""
	}
	return fmt.Errorf("fly target %q: machine %s %s: it is %s; %s. Look at it with `fly machine status %s -a %s` and `fly logs -a %s -i %s`, fix the cause, then run `rotor resume`%s",
		t.name, id, what, t.lastSeen(p, last), leftAlone(rest), id, t.app, t.app, id, hint)
}

// leftAlone says which machines a reload that stopped at one did not
// update.
func leftAlone(rest []string) string {
	switch len(rest) {
	case 0:
		return "it was the last machine to update, the others already run with the new secrets"
	case 1:
		return "the reload stopped there: machine " + rest[0] + " was not updated and still runs with the previous secrets"
	}
	return "the reload stopped there: machines " + strings.Join(rest, ", ") + " were not updated and still run with the previous secrets"
}

// ended makes an error that happened because ctx ended say so, and keeps
// it from being retried: the engine bounds a reload with reload_timeout,
// and a request cut short by it is no reason to start over.
func ended(ctx context.Context, err error) error {
	if err == nil || ctx.Err() == nil {
		return err
	}
	var re *target.RetryableError
	if !errors.As(err, &re) && !target.NotSent(err) && errors.Is(err, ctx.Err()) {
		return err
	}
	return &ctxEnded{msg: err.Error(), cause: ctx.Err()}
}

// ctxEnded keeps an error's text but has only ctx's error in its chain.
type ctxEnded struct {
	msg   string
	cause error
}

func (e *ctxEnded) Error() string {
	if strings.HasSuffix(e.msg, e.cause.Error()) {
		return e.msg
	}
	return e.msg + ": " + e.cause.Error()
}
func (e *ctxEnded) Unwrap() error { return e.cause }

func (t *Target) get(ctx context.Context, id string) (machine, error) {
	resp, err := t.api.Do(ctx, webapi.Request{Method: http.MethodGet, Path: t.machinePath(id), Retryable: true})
	if err != nil {
		return machine{}, t.fail("cannot read machine "+id, err)
	}
	var m machine
	if err := t.api.Decode(resp, &m); err != nil {
		return machine{}, t.fail("cannot read machine "+id, err)
	}
	return m, nil
}

func (t *Target) machinePath(id string) string {
	return t.appPath("/machines/" + url.PathEscape(id))
}

// waitSeconds is the timeout for one wait request: what is left of ctx,
// in whole seconds, at least 1 and at most chunk (60 s but in tests).
func waitSeconds(ctx context.Context, chunk time.Duration) int {
	most := max(int(chunk/time.Second), 1)
	dl, ok := ctx.Deadline()
	if !ok {
		return most
	}
	s := int(math.Ceil(time.Until(dl).Seconds()))
	return min(max(s, 1), most)
}

// gaveUp reports a state a machine does not leave on its own towards
// "started".
func gaveUp(state string) bool {
	switch state {
	case "failed", "launch_failed", "destroying", "destroyed":
		return true
	}
	return false
}

// allPassing is fly-go's HealthCheckStatus.AllPassing: every reported
// check is "passing" (none reported counts as passing).
func allPassing(checks []checkStatus) bool {
	for _, c := range checks {
		if c.Status != "passing" {
			return false
		}
	}
	return true
}

// describe says where a machine is, for messages: its state and any
// check that is not passing.
func describe(m machine) string {
	if m.State == "" {
		return "in an unknown state"
	}
	out := fmt.Sprintf("%q", m.State)
	var bad []string
	for _, c := range m.Checks {
		if c.Status != "passing" {
			bad = append(bad, fmt.Sprintf("%s %s", c.Name, c.Status))
		}
	}
	if len(bad) > 0 {
		out += " with health checks " + strings.Join(bad, ", ")
	}
	return out
}

// declaresChecks reports whether a machine config defines health checks,
// top-level ("checks") or per service ("services[].checks").
func declaresChecks(config json.RawMessage) bool {
	var c struct {
		Checks   map[string]json.RawMessage `json:"checks"`
		Services []struct {
			Checks []json.RawMessage `json:"checks"`
		} `json:"services"`
	}
	if json.Unmarshal(config, &c) != nil {
		return false
	}
	if len(c.Checks) > 0 {
		return true
	}
	for _, s := range c.Services {
		if len(s.Checks) > 0 {
			return true
		}
	}
	return false
}
