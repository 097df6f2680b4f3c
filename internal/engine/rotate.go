package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rotorhq/rotor/internal/connstr"
	"github.com/rotorhq/rotor/internal/provider"
	"github.com/rotorhq/rotor/internal/secret"
	"github.com/rotorhq/rotor/internal/store"
	"github.com/rotorhq/rotor/internal/target"
)

// Result is what one Rotate call did, secret-free.
type Result struct {
	Credential string         `json:"credential"`
	RotationID int64          `json:"rotation_id"`
	Resumed    bool           `json:"resumed"`
	Status     store.Status   `json:"status"`
	Strategy   string         `json:"strategy"`
	Role       string         `json:"role"`
	OldRole    string         `json:"old_role,omitempty"`
	Version    int64          `json:"version"`
	Outcome    string         `json:"outcome"`
	Steps      []StepResult   `json:"steps"`
	Targets    []TargetResult `json:"targets"`
	// OldSessions are the sessions still on the old role when a dual
	// rotation finished without retiring it.
	OldSessions []provider.Session `json:"old_sessions,omitempty"`
	Terminated  int                `json:"terminated_sessions,omitempty"`
	// Retirement is what became of a dual rotation's old role, and on
	// what evidence.
	Retirement *Retirement `json:"retirement,omitempty"`
	// FailureWindow (single strategy) is how long new connections with
	// the old string could fail.
	FailureWindow *FailureWindow `json:"failure_window,omitempty"`
	Duration      time.Duration  `json:"duration_ns"`
}

// StepResult is one step's outcome in this run.
type StepResult struct {
	Name     string        `json:"name"`
	Status   string        `json:"status"`
	Detail   string        `json:"detail,omitempty"`
	Duration time.Duration `json:"duration_ns"`
}

// TargetResult is one target's outcome in this run.
type TargetResult struct {
	Name        string              `json:"name"`
	Type        string              `json:"type"`
	Destination string              `json:"destination"`
	State       store.DeliveryState `json:"state"`
	Attempts    int                 `json:"attempts"`
	Changed     bool                `json:"changed"`
	Detail      string              `json:"detail,omitempty"`
	Error       string              `json:"error,omitempty"`
	Duration    time.Duration       `json:"duration_ns"`
}

// run is the state of one rotation while the engine works on it.
type run struct {
	e    *Engine
	cr   *Credential
	opts Options
	rot  *store.Rotation
	res  *Result

	from    *store.Version // current when the rotation started, nil on the first
	to      *store.Version // the pending version
	pending material       // its secret material
	applied time.Time      // when the server got the new password (for revoke in single)
	// fence is the lease this run holds: every journal write carries it,
	// so a run that lost its lease (paused, partitioned) writes nothing.
	fence store.Fence
	held  *heldLease // the same lease, as renewals keep it (Engine.holds)
	// stopRenew ends the lease's renewals; released says the finish let
	// the lease go with it (finish), so nothing is left to release.
	stopRenew func()
	released  bool
	// conn and pooled are how consumers connect (config or discovered).
	conn, pooled *connstr.Conn
	// replica is the read replica the provider found, nil when none.
	replica *connstr.Conn
	// snapshots are the provider's Snapshots read so far (snapshot).
	snapshots map[string]snapshotResult
	// owed is the running step's started record while it is not in the
	// store yet (runStep): the step's first write carries it.
	owed *store.OpenStep
	// settled are the deliveries confirm read back, journaled with its
	// done or failed record.
	settled []store.UpsertDeliveryParams
	// fresh is the new password and its verifier, drawn while the run
	// reads what it needs (drawPassword); nil for a resumed rotation.
	fresh *freshPassword
	// early is the test step's first login, connected during apply
	// (connectEarly); nil when there is none waiting.
	early *earlyLogin
	// lastStepAt is the time of the last step record journalStep wrote;
	// published that of publish's done record when this run wrote it.
	lastStepAt, published time.Time
}

// material is what a version's sealed blob holds.
type material struct {
	Password string `json:"p"`
	Verifier string `json:"v"`
}

func (m material) password() secret.String { return secret.New(m.Password) }
func (m material) verifier() secret.String { return secret.New(m.Verifier) }

// Rotate runs (or continues) a rotation of cr. An interrupted rotation of
// the same credential is always finished first; with opts.ResumeOnly
// nothing new is started and a nil Result means there was nothing to do.
func (e *Engine) Rotate(ctx context.Context, cr *Credential, opts Options) (_ *Result, err error) {
	e.init()
	started := e.Now()
	if opts.Trigger == "" {
		opts.Trigger = "manual"
	}
	// A credential with nothing unfinished starts its rotation in the
	// write that takes its lease (quickStart); any other takes the lease
	// first and reads what to do holding it.
	lease, rot, from, err := e.quickStart(ctx, cr, opts)
	if err != nil {
		return nil, err
	}
	var release func() error
	if lease != nil {
		release = e.releaser(ctx, cr.Name)
	} else if lease, release, err = e.lock(ctx, cr.Name); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	held := newHeldLease(lease, e.LeaseTTL)
	r := &run{e: e, cr: cr, opts: opts, res: &Result{Credential: cr.Name, Strategy: cr.Strategy}, fence: lease.Fence(), held: held}
	r.stopRenew = sync.OnceFunc(e.renew(ctx, lease, held, cancel))
	defer func() {
		r.dropEarly()
		r.stopRenew()
		if !r.released {
			err = errors.Join(err, release())
		}
	}()

	var prior []StepResult
	var active []*store.Rotation
	if rot == nil {
		if active, err = e.Store.ListRotations(ctx, store.ListRotationsParams{Credential: cr.Name, Active: true, Limit: 1}); err != nil {
			return nil, fmt.Errorf("%s: read rotations: %w", cr.Name, err)
		}
	}
	switch {
	case rot != nil:
		r.rot, r.from = rot, from
	case len(active) > 0:
		r.rot = active[0]
		r.res.Resumed = true
		r.opts.Revoke = r.opts.Revoke || r.rot.Revoke
		if r.rot.Strategy != cr.Strategy {
			return nil, fmt.Errorf("%s: interrupted rotation %d used strategy %s but the config now says %s; put the strategy back until it finishes (`rotor resume`)", cr.Name, r.rot.ID, r.rot.Strategy, cr.Strategy)
		}
		e.auditResumed(ctx, r.rot)
	default:
		// The last rotation's old role may still await retirement: that
		// comes first, and a new rotation starts only once it is done (the
		// new password would go to that very role). A revoke cannot wait
		// for evidence: the leaked password may be the old one.
		pre, err := e.retirePending(ctx, cr, RetireOptions{Now: opts.Revoke, Reason: "revoke"}, r.fence)
		if err != nil {
			return pre, err
		}
		if pre != nil {
			prior = pre.Steps
			switch {
			case opts.ResumeOnly, pre.Retirement.State == RetirementPending,
				pre.Retirement.State == RetirementInUse && !opts.Force:
				if !opts.ResumeOnly {
					pre.Outcome += "; no new rotation was started, it would give the new password to " + pre.OldRole
				}
				pre.Duration = e.Now().Sub(started)
				return pre, nil
			}
		}
		if opts.ResumeOnly {
			return nil, nil
		}
		cur, err := e.currentVersion(ctx, cr.Name)
		if err != nil {
			return nil, err
		}
		r.from = cur // what execute would read again
		p := e.newRotation(cr, opts, cur)
		p.Fence = r.fence
		if r.rot, err = e.Store.InsertRotation(ctx, p); err != nil {
			return nil, fmt.Errorf("%s: start rotation: %w", cr.Name, journalError("record the rotation and its audit event", err))
		}
	}
	if !r.res.Resumed {
		// A new rotation: its password is drawn while execute reads.
		r.fresh = e.drawPassword(cr)
	}
	r.res.RotationID = r.rot.ID
	r.res.Steps = prior
	err = r.execute(ctx)
	r.res.Duration = e.Now().Sub(started)
	r.notify(context.WithoutCancel(ctx), err)
	if cause := context.Cause(ctx); err != nil && cause != nil && !errors.Is(cause, context.Canceled) {
		err = fmt.Errorf("%w (%v)", err, cause)
	}
	return r.res, err
}

// newRotation is the row and audit event of a new rotation of cr from
// its current version cur (nil on the first rotation).
func (e *Engine) newRotation(cr *Credential, opts Options, cur *store.Version) store.InsertRotationParams {
	var fromID int64
	if cur != nil {
		fromID = cur.ID
	}
	return store.InsertRotationParams{
		Credential: cr.Name, Strategy: cr.Strategy, Trigger: opts.Trigger,
		Revoke: opts.Revoke, FromVersionID: fromID, Now: e.now(), Deferred: true,
		Audit: &store.AppendAuditParams{Event: "rotation.started", Actor: e.Holder,
			Detail: jsonDetail(map[string]any{"trigger": opts.Trigger, "strategy": cr.Strategy, "revoke": opts.Revoke})},
	}
}

// quickStart starts a new rotation of cr in the same write that takes its
// lease (store.StartRotation), when what it reads without the lease says
// there is nothing to finish first: no unfinished rotation, no retirement
// pending, and not opts.ResumeOnly. The write re-checks those reads under
// the lease. A nil lease and no error mean Rotate takes the lease first
// and reads again holding it (lock): there was something to finish, the
// reads went stale, or another process holds the lease (lock says who, or
// takes over from a holder that died).
func (e *Engine) quickStart(ctx context.Context, cr *Credential, opts Options) (*store.Lease, *store.Rotation, *store.Version, error) {
	if opts.ResumeOnly {
		return nil, nil, nil, nil
	}
	last, err := e.Store.ListRotations(ctx, store.ListRotationsParams{Credential: cr.Name, Limit: 1})
	if err != nil {
		return nil, nil, nil, fmt.Errorf("%s: read rotations: %w", cr.Name, err)
	}
	var after int64
	if len(last) > 0 {
		if last[0].Status == store.StatusActive || last[0].Status.RetirementPending() {
			return nil, nil, nil, nil
		}
		after = last[0].ID
	}
	cur, err := e.currentVersion(ctx, cr.Name)
	if err != nil {
		return nil, nil, nil, err
	}
	rot, lease, err := e.Store.StartRotation(ctx, store.StartRotationParams{
		Lease:    store.AcquireLeaseParams{Name: leaseName(cr.Name), Holder: e.Holder, TTL: e.LeaseTTL, Now: e.now()},
		Rotation: e.newRotation(cr, opts, cur), After: after,
	})
	switch {
	case errors.Is(err, store.ErrLeaseHeld), errors.Is(err, store.ErrConflict):
		return nil, nil, nil, nil
	case err != nil:
		return nil, nil, nil, fmt.Errorf("%s: start rotation: %w", cr.Name, journalError("take the lease and record the rotation and its audit event", err))
	}
	return lease, rot, cur, nil
}

// notify tells every Notifier target how the rotation ended. Failures are
// logged, never returned: a notification must not fail a rotation.
func (r *run) notify(ctx context.Context, runErr error) {
	n := target.Notification{
		Credential: r.cr.Name, RotationID: strconv.FormatInt(r.rot.ID, 10), Role: r.res.Role, OldRole: r.res.OldRole,
		Version: r.res.Version, Status: string(r.rot.Status), Outcome: r.res.Outcome, Time: r.e.now(),
	}
	var se *StepError
	switch {
	case runErr != nil && errors.As(runErr, &se) && !r.rot.Status.Terminal():
		n.Type, n.Step, n.Error = "rotation.failed", se.Step, secret.ScrubString(se.Err.Error(), r.secrets()...)
	case runErr != nil && !r.rot.Status.Terminal():
		n.Type, n.Step, n.Error = "rotation.failed", r.rot.Step, secret.ScrubString(runErr.Error(), r.secrets()...)
	case r.rot.Status.Terminal():
		n.Type = "rotation." + string(r.rot.Status)
	default:
		return
	}
	for _, t := range r.cr.Targets {
		nt := target.Discover(t.Impl).Notifier
		if nt == nil {
			continue
		}
		nctx, cancel := context.WithTimeout(ctx, r.cr.TargetTimeout)
		if err := nt.Notify(nctx, n); err != nil {
			r.e.Logger.Warn("notification failed", "credential", r.cr.Name, "target", t.Name, "error", secret.ScrubString(err.Error(), r.secrets()...))
			r.e.emit(Event{Credential: r.cr.Name, RotationID: r.rot.ID, Step: StepFinish, Target: t.Name, Status: "note", Detail: "notification failed"})
		}
		cancel()
	}
}

func (e *Engine) currentVersion(ctx context.Context, name string) (*store.Version, error) {
	vs, err := e.Store.ListVersions(ctx, store.ListVersionsParams{Credential: name, Stages: []store.Stage{store.StageCurrent}, Limit: 1})
	if err != nil {
		return nil, fmt.Errorf("%s: read versions: %w", name, err)
	}
	if len(vs) == 0 {
		return nil, nil
	}
	return vs[0], nil
}

func (r *run) execute(ctx context.Context) error {
	var err error
	r.applied = r.rot.AppliedAt
	if r.applied.IsZero() {
		if r.applied, err = r.appliedByOldJournal(ctx); err != nil {
			return err
		}
	}
	if r.rot.FromVersionID != 0 && (r.from == nil || r.from.ID != r.rot.FromVersionID) {
		if r.from, err = r.e.Store.GetVersion(ctx, store.GetVersionParams{ID: r.rot.FromVersionID}); err != nil {
			return fmt.Errorf("%s: read current version: %w", r.cr.Name, err)
		}
		if r.from.Stage != store.StageCurrent {
			// Another rotation finished in between (only possible if the
			// store was edited by hand); continuing would publish over it.
			return r.fail(ctx, StepPrepare, errors.New("the version this rotation started from is no longer current"), "abandon this rotation with `rotor resume --abandon "+r.cr.Name+"`")
		}
	}
	if err := r.e.useStoredAdmin(ctx, r.cr); err != nil {
		return r.fail(ctx, StepPrepare, err, "")
	}
	if r.conn, r.pooled, r.replica, err = r.e.endpoints(ctx, r.cr); err != nil {
		return r.fail(ctx, StepPrepare, err, "")
	}
	r.stepResult(StepLock, "done", "lease held by "+r.e.Holder, 0)
	for _, step := range []struct {
		name string
		fn   func(context.Context) (string, error)
	}{
		{StepPrepare, r.prepare},
		{StepApply, r.apply},
		{StepTest, r.test},
		{StepPublish, r.publish},
		{StepConfirm, r.confirm},
		{StepFinish, r.finish},
	} {
		if r.rot.Status.Terminal() {
			return nil
		}
		if err := r.runStep(ctx, step.name, step.fn); err != nil {
			return err
		}
	}
	return nil
}

// appliedByOldJournal recovers the apply time of a rotation journaled by
// a rotor that did not store it as a field yet: it wrote it at the end of
// the apply step's detail, after " at ". Zero when apply never finished.
func (r *run) appliedByOldJournal(ctx context.Context) (time.Time, error) {
	steps, err := r.e.Store.ListSteps(ctx, store.ListStepsParams{RotationID: r.rot.ID})
	if err != nil {
		return time.Time{}, fmt.Errorf("%s: read journal: %w", r.cr.Name, err)
	}
	var applied time.Time
	for _, s := range steps {
		if s.Name == StepApply && s.Status == store.StepDone {
			if i := strings.LastIndex(s.Detail, " at "); i >= 0 {
				if t, err := time.Parse(time.RFC3339Nano, s.Detail[i+4:]); err == nil {
					applied = t
				}
			}
		}
	}
	return applied, nil
}

// runStep journals a step around fn. fn returns a secret-free detail.
func (r *run) runStep(ctx context.Context, name string, fn func(context.Context) (string, error)) error {
	if h := r.e.Hooks; h != nil && h.BeforeStep != nil {
		if err := h.BeforeStep(name); err != nil {
			return err
		}
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%s: stopped before %s: %w", r.cr.Name, name, context.Cause(ctx))
	}
	if err := r.e.holds(ctx, r.held); err != nil {
		return fmt.Errorf("%s: stopped before %s: %w", r.cr.Name, name, err)
	}
	start := r.e.Now()
	r.e.emit(Event{Credential: r.cr.Name, RotationID: r.rot.ID, Step: name, Status: "start"})
	if durableBefore[name] {
		if err := r.journalStep(ctx, name, store.StepStarted, ""); err != nil {
			return err
		}
	} else {
		r.owed = &store.OpenStep{Name: name, At: r.e.now()}
	}
	detail, err := fn(ctx)
	elapsed := r.e.Now().Sub(start)
	if err != nil {
		r.stepResult(name, "failed", firstLineOf(err.Error()), elapsed)
		var se *StepError
		if errors.As(err, &se) {
			return r.fail(ctx, se.Step, se.Err, se.Hint)
		}
		return r.fail(ctx, name, err, "")
	}
	if r.rot.Status.Terminal() {
		r.stepResult(name, "done", detail, elapsed)
		return nil
	}
	if err := r.journalStep(ctx, name, store.StepDone, detail); err != nil {
		return err
	}
	if name == StepPublish {
		r.published = r.lastStepAt
	}
	r.stepResult(name, "done", detail, elapsed)
	r.e.emit(Event{Credential: r.cr.Name, RotationID: r.rot.ID, Step: name, Status: "done", Detail: detail, Elapsed: elapsed})
	return nil
}

// durableBefore are the steps whose started record waits for the disk
// ("Deferred writes" in package store). They are the two that change what
// a recovery after a power cut must know: apply gives the database the
// pending password, so the pending version (and for single, the password
// to roll back to) must be on disk first; publish gives targets copies of
// it, after which the rotation may no longer be abandoned. Every other
// record of a rotation — the lease, its row and audit entry, the pending
// version, the step records, the deliveries — is deferred: no action
// outside the store depends on it before the next of these, or before the
// finish (FinishRotation) and any failure record, which always wait. So a
// power cut can lose only records written since the last durable one, and
// a resume redoes those steps, which are idempotent; a killed process
// loses nothing, as before.
//
// The other steps' started records cost no write of their own: until the
// step first writes to the store (its pending version, the finish, its
// done or failed record), it has only read, and the record rides with
// that write (store.OpenStep); the deliveries confirm read back ride with
// its done or failed record too. Before anything that
// acts outside the store or waits — a gatekeeper's write, a login retry's
// pause, a rollback, a revoke — the step calls opened, which writes it on
// its own. A process killed inside such a step therefore leaves the
// previous step's done record last, as if it had stopped just before the
// step; a resume runs the step again either way.
var durableBefore = map[string]bool{StepApply: true, StepPublish: true}

// journalStep appends a step record at now, with the step's started
// record when it is still owed. Only apply's and publish's started records
// wait for the disk.
func (r *run) journalStep(ctx context.Context, name string, st store.StepStatus, detail string) error {
	r.lastStepAt = r.e.now()
	return r.appendStep(ctx, store.AppendStepParams{Name: name, Status: st, Detail: detail, Now: r.lastStepAt, Open: r.owed,
		Deferred: !(st == store.StepStarted && durableBefore[name])})
}

// opened writes the running step's started record (and the deliveries it
// settled) now if they are still owed: the step is about to act outside
// the store, or to wait.
func (r *run) opened(ctx context.Context) error {
	if r.owed != nil {
		return r.appendStep(ctx, store.AppendStepParams{Name: r.owed.Name, Status: store.StepStarted, Now: r.owed.At, Deferred: true})
	}
	for len(r.settled) > 0 {
		if _, err := r.e.Store.UpsertDelivery(ctx, r.settled[0]); err != nil {
			return journalError(fmt.Sprintf("record that target %s is %s", r.settled[0].Target, r.settled[0].State), err)
		}
		r.settled = r.settled[1:]
	}
	return nil
}

func (r *run) appendStep(ctx context.Context, p store.AppendStepParams) error {
	if _, err := r.e.Store.AppendStep(ctx, r.carry(p)); err != nil {
		return fmt.Errorf("%s: %w", r.cr.Name, journalError(fmt.Sprintf("record step %s %s", p.Name, p.Status), err))
	}
	r.carried(p.Name, "")
	return nil
}

// carry fills in what every step record of this run carries: the fence,
// the deliveries confirm settled, and when the rotation row does not have
// it yet, when the password was set (apply leaves it to the step's done
// record).
func (r *run) carry(p store.AppendStepParams) store.AppendStepParams {
	p.Fence, p.RotationID, p.Deliveries = r.fence, r.rot.ID, r.settled
	if r.rot.AppliedAt.IsZero() {
		p.AppliedAt = r.applied
	}
	return p
}

// carried updates the run after a step record was written.
func (r *run) carried(step, errText string) {
	r.owed, r.settled = nil, nil
	r.rot.Step, r.rot.Error = step, errText
	if r.rot.AppliedAt.IsZero() {
		r.rot.AppliedAt = r.applied
	}
}

// fail records a failed step and returns a StepError with a hint.
func (r *run) fail(ctx context.Context, step string, err error, hint string) error {
	err = secret.Scrub(err, r.secrets()...)
	if hint == "" {
		hint = "the credential still works; fix the cause, then run `rotor resume`"
	}
	msg := err.Error()
	// Journal with a context that survives cancellation (Ctrl-C, lost
	// lease): the record of why we stopped matters most then.
	wctx := context.WithoutCancel(ctx)
	var journalErrs []error
	if _, jerr := r.e.Store.AppendStep(wctx, r.carry(store.AppendStepParams{Name: step, Status: store.StepFailed, Detail: msg, Now: r.e.now(), Open: r.owed})); jerr != nil {
		journalErrs = append(journalErrs, journalError("record that step "+step+" failed", jerr))
		r.rot.Step, r.rot.Error = step, msg
	} else {
		r.carried(step, msg)
	}
	if jerr := r.e.audit(wctx, r.cr.Name, r.rot.ID, "rotation.failed", map[string]any{"step": step, "error": msg}); jerr != nil {
		journalErrs = append(journalErrs, jerr)
	}
	r.e.emit(Event{Credential: r.cr.Name, RotationID: r.rot.ID, Step: step, Status: "failed", Detail: msg})
	r.res.Status = r.rot.Status
	if len(journalErrs) > 0 {
		// Both matter: why the step stopped, and that the store does not
		// say so (`rotor status` will show the last step journaled).
		err = fmt.Errorf("%w; %w", err, errors.Join(journalErrs...))
	}
	return &StepError{Credential: r.cr.Name, RotationID: r.rot.ID, Step: step, Err: err, Hint: hint}
}

func firstLineOf(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

func (r *run) stepResult(name, status, detail string, d time.Duration) {
	r.res.Steps = append(r.res.Steps, StepResult{Name: name, Status: status, Detail: detail, Duration: d})
}

// secrets lists the values that must be scrubbed from any error.
func (r *run) secrets() []secret.String {
	if r.pending.Password == "" {
		return nil
	}
	out := []secret.String{r.pending.password(), r.pending.verifier()}
	for _, u := range r.urls() {
		out = append(out, u)
	}
	return out
}

// ErrJournal: a write to the store failed, so the journal no longer says
// how far the rotation got. The step stops rather than act on state that
// a resume would not know about.
var ErrJournal = errors.New("the journal could not be written")

func journalError(what string, err error) error {
	return fmt.Errorf("%w (%s): %w", ErrJournal, what, err)
}

func (e *Engine) audit(ctx context.Context, cred string, rotID int64, event string, detail map[string]any) error {
	return e.auditAs(ctx, false, cred, rotID, event, detail)
}

// auditAs is audit, deferred or not (durableBefore).
func (e *Engine) auditAs(ctx context.Context, deferred bool, cred string, rotID int64, event string, detail map[string]any) error {
	if _, err := e.Store.AppendAudit(ctx, store.AppendAuditParams{Credential: cred, RotationID: rotID, Event: event, Actor: e.Holder, Detail: jsonDetail(detail), Now: e.now(), Deferred: deferred}); err != nil {
		return journalError("append audit event "+event, err)
	}
	return nil
}

func (e *Engine) seal(cred, role string, m material) ([]byte, error) {
	b, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	return e.Sealer.Seal(b, aad(cred, role))
}

func (e *Engine) open(v *store.Version) (material, error) {
	var m material
	if v.Sealed == nil {
		return m, fmt.Errorf("version %d of %s has no secret left (retired)", v.Seq, v.Credential)
	}
	b, err := e.Sealer.Open(v.Sealed, aad(v.Credential, v.Role))
	if err != nil {
		return m, fmt.Errorf("version %d of %s: %w", v.Seq, v.Credential, err)
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return m, fmt.Errorf("version %d of %s: corrupt secret", v.Seq, v.Credential)
	}
	return m, nil
}

// aad binds a sealed secret to its credential and role, so a blob copied
// to another row does not decrypt.
func aad(cred, role string) []byte { return []byte("rotor/v1/version\x00" + cred + "\x00" + role) }
