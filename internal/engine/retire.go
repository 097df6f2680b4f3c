package engine

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/rotorhq/rotor/internal/provider"
	"github.com/rotorhq/rotor/internal/store"
)

// Retirement of a dual rotation's old role, on evidence (DESIGN.md, step
// 6). A session seen once is no proof that nobody uses a role: a consumer
// may be mid-handshake with a value it read just before the switch, or
// connect per request and be gone between two samples. So the old role is
// retired only when
//
//   - every reload has finished (publish returns only then: the new
//     deployment is live, the rollout complete),
//   - drain.grace has passed since, and
//   - sampling every drain.poll has seen no session on the role (server
//     and gatekeeper clients) for drain.quiet without a break — and, where
//     the server records logins (PostgreSQL 17's login event trigger that
//     `rotor setup-roles` installs, provider.LoginRecorder), no login
//     either: a consumer that connects per request is gone between two
//     samples, but not from the record.
//
// Until then the rotation is switched: its version is current, the old
// role still works. Rotate waits drain.wait for the evidence and otherwise
// leaves the retirement to a later `rotate`, `resume` or `retire`. Past
// drain.timeout (from the switch) a role still in use is reported and
// kept, never broken.

// Retirement states, as Result.Retirement and status report them.
const (
	RetirementRetired    = "retired"
	RetirementPending    = "pending"
	RetirementInUse      = "in_use"
	RetirementTerminated = "terminated"
	RetirementKept       = "kept"
	RetirementRevoked    = "revoked"
)

// Retirement is what became of a dual rotation's old role.
type Retirement struct {
	RotationID int64  `json:"rotation_id"`
	Role       string `json:"role"`
	// State is one of the Retirement* constants.
	State string `json:"state"`
	// RetiresWhen says, while pending, what evidence is still missing.
	RetiresWhen string   `json:"retires_when,omitempty"`
	Evidence    Evidence `json:"evidence"`
}

// Evidence is what rotor observed about the old role before retiring it.
type Evidence struct {
	// SwitchedAt is when every target was written and every reload had
	// finished.
	SwitchedAt time.Time `json:"switched_at"`
	// GraceUntil is SwitchedAt + drain.grace; Deadline SwitchedAt +
	// drain.timeout.
	GraceUntil time.Time `json:"grace_until"`
	Deadline   time.Time `json:"deadline"`
	// Quiet is how long the samples have seen no session without a break,
	// up to the last one; QuietNeeded is drain.quiet.
	Quiet       time.Duration `json:"quiet_ns"`
	QuietNeeded time.Duration `json:"quiet_needed_ns"`
	Samples     int           `json:"samples"`
	// LastSeen is when a session on the role was last seen, if ever.
	LastSeen *time.Time `json:"last_session_seen,omitempty"`
	// LoginsRecorded: the server records the role's logins, and the quiet
	// period counts from the last one too; LastLogin is when that was (on
	// rotor's clock), if one was recorded.
	LoginsRecorded bool       `json:"logins_recorded"`
	LastLogin      *time.Time `json:"last_login,omitempty"`
	// Sessions are the ones the last sample saw.
	Sessions []provider.Session `json:"sessions,omitempty"`
	// Skipped: retired without waiting (--revoke, `rotor retire --now`).
	Skipped string `json:"skipped,omitempty"`
}

// String is the evidence in one line, as outcomes and the audit log say it.
func (ev Evidence) String() string {
	if ev.Skipped != "" {
		return "without waiting for evidence (" + ev.Skipped + ")"
	}
	parts := []string{"every reload finished at " + ev.SwitchedAt.Format(time.RFC3339)}
	grace := ev.GraceUntil.Sub(ev.SwitchedAt)
	parts = append(parts, fmt.Sprintf("grace %s until %s", formatDuration(grace), ev.GraceUntil.Format(time.RFC3339)))
	quiet := "no session"
	if ev.LoginsRecorded {
		quiet = "no session or recorded login"
	}
	parts = append(parts, fmt.Sprintf("%s for %s (%d samples)", quiet, ev.Quiet.Round(time.Millisecond), ev.Samples))
	if ev.LastSeen != nil {
		parts = append(parts, "last session seen "+ev.LastSeen.Format(time.RFC3339Nano))
	}
	if ev.LastLogin != nil {
		parts = append(parts, "last login recorded "+ev.LastLogin.Format(time.RFC3339Nano))
	}
	return strings.Join(parts, ", ")
}

// verdict is what the evidence allows.
type verdict int

const (
	verdictPending verdict = iota
	verdictRetire
	verdictInUse
)

// retirer gathers evidence about one old role and retires it.
type retirer struct {
	e   *Engine
	cr  *Credential
	rot *store.Rotation
	old string
	ev  Evidence
	// fence is the lease the caller holds; every write carries it.
	fence store.Fence
	// terminated counts the sessions conclude ended.
	terminated int
}

// newRetirer starts the evidence for rotation rot's old role, which the
// rotation switched away from when its publish step finished.
func (e *Engine) newRetirer(ctx context.Context, cr *Credential, rot *store.Rotation, old string, fence store.Fence) (*retirer, error) {
	switched, err := e.publishedAt(ctx, rot)
	if err != nil {
		return nil, err
	}
	return &retirer{e: e, cr: cr, rot: rot, old: old, fence: fence, ev: Evidence{
		SwitchedAt: switched, GraceUntil: switched.Add(cr.DrainGrace), Deadline: switched.Add(cr.DrainTimeout),
		QuietNeeded: cr.DrainQuiet,
	}}, nil
}

// publishedAt is when rot's publish step last finished: every target
// written, every reload finished. A rotation with no such record (the
// store was edited) counts from its last update.
func (e *Engine) publishedAt(ctx context.Context, rot *store.Rotation) (time.Time, error) {
	steps, err := e.Store.ListSteps(ctx, store.ListStepsParams{RotationID: rot.ID})
	if err != nil {
		return time.Time{}, fmt.Errorf("%s: read the journal of rotation %d: %w", rot.Credential, rot.ID, err)
	}
	var at time.Time
	for _, s := range steps {
		if s.Name == StepPublish && s.Status == store.StepDone {
			at = s.At
		}
	}
	if at.IsZero() {
		at = rot.UpdatedAt
	}
	return at.UTC(), nil
}

// gather samples the old role until the evidence is complete, the role is
// in use past the deadline, or until passes. Quiet is measured only while
// this process watches: a retirement resumed later starts a new window.
func (rt *retirer) gather(ctx context.Context, until time.Time) (verdict, error) {
	e, cr := rt.e, rt.cr
	var quietFrom time.Time
	lastNote, lastCount := time.Time{}, -1
	for {
		sessions, err := roleSessions(ctx, cr, rt.old)
		if err != nil {
			return verdictPending, err
		}
		login, err := lastLogin(ctx, cr, rt.old)
		if err != nil {
			return verdictPending, err
		}
		now := e.now()
		rt.ev.Samples++
		rt.ev.Sessions = sessions
		rt.ev.LoginsRecorded = login.Recorded
		var loginAt time.Time
		if login.Seen {
			loginAt = now.Add(-login.Ago)
			rt.ev.LastLogin = &loginAt
		}
		if len(sessions) > 0 {
			quietFrom = time.Time{}
			rt.ev.Quiet = 0
			seen := now
			rt.ev.LastSeen = &seen
		} else {
			if quietFrom.IsZero() {
				quietFrom = now
			}
			// A login since is a session that came and went unseen.
			if loginAt.After(quietFrom) {
				quietFrom = loginAt
			}
			rt.ev.Quiet = now.Sub(quietFrom)
		}
		switch {
		case len(sessions) == 0 && !now.Before(rt.ev.GraceUntil) && rt.ev.Quiet >= cr.DrainQuiet:
			return verdictRetire, nil
		case len(sessions) > 0 && !now.Before(rt.ev.Deadline):
			return verdictInUse, nil
		case !now.Before(until):
			return verdictPending, nil
		}
		if len(sessions) != lastCount || now.Sub(lastNote) >= 5*time.Second {
			lastNote, lastCount = now, len(sessions)
			e.emit(Event{Credential: cr.Name, RotationID: rt.rot.ID, Step: StepFinish, Status: "wait", Detail: "old role " + rt.old + ": " + rt.missing(now)})
		}
		// Wake for the next sample, or exactly when the grace or the quiet
		// period would be complete, whichever comes first.
		next := cr.DrainPoll
		if d := rt.ev.GraceUntil.Sub(now); d > 0 && d < next {
			next = d
		}
		if !quietFrom.IsZero() {
			if d := quietFrom.Add(cr.DrainQuiet).Sub(now); d > 0 && d < next {
				next = d
			}
		}
		if d := until.Sub(now); d < next {
			next = d
		}
		if err := e.Sleep(ctx, max(next, 0)); err != nil {
			return verdictPending, err
		}
	}
}

// lastLogin is the server's record of role's last login, where the
// provider keeps one (provider.LoginRecorder); none otherwise.
func lastLogin(ctx context.Context, cr *Credential, role string) (provider.LastLoginResponse, error) {
	rec, ok := cr.Provider.(provider.LoginRecorder)
	if !ok {
		return provider.LastLoginResponse{}, nil
	}
	return rec.LastLogin(ctx, provider.LastLoginRequest{Role: role})
}

// missing says what evidence is still missing at now.
func (rt *retirer) missing(now time.Time) string {
	var parts []string
	if now.Before(rt.ev.GraceUntil) {
		parts = append(parts, fmt.Sprintf("the grace period ends at %s", rt.ev.GraceUntil.Format(time.RFC3339)))
	}
	if n := len(rt.ev.Sessions); n > 0 {
		parts = append(parts, fmt.Sprintf("its %d session(s) end (%s), then it stays quiet for %s", n, describeSessions(rt.ev.Sessions), formatDuration(rt.cr.DrainQuiet)))
	} else if rt.ev.Quiet < rt.cr.DrainQuiet {
		parts = append(parts, fmt.Sprintf("no session is seen on it for %s (quiet for %s so far)", formatDuration(rt.cr.DrainQuiet), rt.ev.Quiet.Round(time.Millisecond)))
	}
	if len(parts) == 0 {
		return "ready to retire"
	}
	return "retires when " + strings.Join(parts, " and ") + fmt.Sprintf(", by %s at the latest", rt.ev.Deadline.Format(time.RFC3339))
}

// conclude acts on v: retires the role, or records that it stays pending
// or in use. It returns the retirement and the rotation as stored.
func (rt *retirer) conclude(ctx context.Context, v verdict, prefix string) (*Retirement, error) {
	e, cr := rt.e, rt.cr
	ret := &Retirement{RotationID: rt.rot.ID, Role: rt.old, Evidence: rt.ev}
	status := store.StatusSucceeded
	event := "rotation.retired"
	var outcome string
	if v != verdictPending {
		if err := e.stillHeld(ctx, rt.fence); err != nil {
			return nil, err
		}
	}
	switch v {
	case verdictRetire:
		if _, err := cr.Provider.Retire(ctx, provider.RetireRequest{Role: rt.old, Method: cr.RetireMethod}); err != nil {
			return nil, err
		}
		ret.State = RetirementRetired
		if rt.ev.Skipped != "" {
			// Without evidence, whoever is still on the role is cut off.
			t, err := cr.Provider.Terminate(ctx, provider.TerminateRequest{Role: rt.old})
			if err != nil {
				return nil, err
			}
			rt.terminated += t.Terminated
			if t.Terminated > 0 {
				ret.State = RetirementTerminated
			}
		}
		outcome = fmt.Sprintf("old role %s retired %s", rt.old, rt.ev)
	case verdictInUse:
		if cr.DrainTerminate {
			if _, err := cr.Provider.Retire(ctx, provider.RetireRequest{Role: rt.old, Method: cr.RetireMethod}); err != nil {
				return nil, fmt.Errorf("drain.terminate: %w", err)
			}
			t, err := cr.Provider.Terminate(ctx, provider.TerminateRequest{Role: rt.old})
			if err != nil {
				return nil, fmt.Errorf("drain.terminate: %w", err)
			}
			rt.terminated += t.Terminated
			ret.State = RetirementTerminated
			outcome = fmt.Sprintf("old role %s retired at the drain deadline (%s after the switch); %d session(s) still on it were terminated (drain.terminate)", rt.old, formatDuration(cr.DrainTimeout), t.Terminated)
			break
		}
		status, event, ret.State = store.StatusOldInUse, "rotation.old_in_use", RetirementInUse
		outcome = fmt.Sprintf("old role %s still in use by %d session(s) (%s) %s after the switch; not retired", rt.old, len(rt.ev.Sessions), describeSessions(rt.ev.Sessions), formatDuration(cr.DrainTimeout))
	default:
		status, event, ret.State = store.StatusSwitched, "rotation.retirement_pending", RetirementPending
		ret.RetiresWhen = rt.missing(e.now())
		outcome = "switched; old role " + rt.old + " still valid: it " + ret.RetiresWhen + " (`rotor rotate --due`, `rotor resume` or `rotor retire " + cr.Name + "` carries it out)"
	}
	if prefix != "" {
		outcome = prefix + "; " + outcome
	}
	if status == rt.rot.Status && status == store.StatusSwitched && rt.rot.Outcome == outcome {
		return ret, nil
	}
	rot, err := e.Store.FinishRetirement(ctx, store.FinishRetirementParams{Fence: rt.fence,
		ID: rt.rot.ID, Status: status, Outcome: outcome, RetirePrevious: status == store.StatusSucceeded,
		Audit: store.AppendAuditParams{Credential: cr.Name, RotationID: rt.rot.ID, Event: event, Actor: e.Holder,
			Detail: jsonDetail(map[string]any{"old_role": rt.old, "state": ret.State, "evidence": rt.ev.String(), "samples": rt.ev.Samples}), Now: e.now()},
		Now: e.now(),
	})
	if err != nil {
		return nil, journalError("record the retirement of "+rt.old, err)
	}
	rt.rot = rot
	return ret, nil
}

// RetireOptions change a Retire.
type RetireOptions struct {
	// Now retires without waiting for evidence, terminating whoever is
	// still on the old role.
	Now bool
	// Reason is recorded when Now is set ("retire --now", "revoke").
	Reason string
}

// ErrNothingToRetire: the credential has no rotation whose old role awaits
// retirement.
var ErrNothingToRetire = errors.New("no old role is awaiting retirement")

// Retire carries out the pending retirement of cr's last rotation: it waits
// up to drain.wait for the evidence (or none with opts.Now) and retires the
// old role, or reports what is still missing.
func (e *Engine) Retire(ctx context.Context, cr *Credential, opts RetireOptions) (_ *Result, err error) {
	e.init()
	started := e.Now()
	lease, release, err := e.lock(ctx, cr.Name)
	if err != nil {
		return nil, err
	}
	defer func() { err = errors.Join(err, release()) }()
	res, err := e.retirePending(ctx, cr, opts, lease.Fence())
	if err != nil {
		return res, err
	}
	if res == nil {
		return nil, fmt.Errorf("%s: %w", cr.Name, ErrNothingToRetire)
	}
	res.Duration = e.Now().Sub(started)
	return res, nil
}

// retirePending handles the last rotation of cr when its old role awaits
// retirement; nil, nil when none does. The caller holds the lease.
func (e *Engine) retirePending(ctx context.Context, cr *Credential, opts RetireOptions, fence store.Fence) (*Result, error) {
	last, err := e.Store.ListRotations(ctx, store.ListRotationsParams{Credential: cr.Name, Limit: 1})
	if err != nil {
		return nil, fmt.Errorf("%s: read rotations: %w", cr.Name, err)
	}
	if len(last) == 0 || !last[0].Status.RetirementPending() {
		return nil, nil
	}
	rot := last[0]
	from, err := e.Store.GetVersion(ctx, store.GetVersionParams{ID: rot.FromVersionID})
	if err != nil {
		return nil, fmt.Errorf("%s: read the version rotation %d switched from: %w", cr.Name, rot.ID, err)
	}
	rt, err := e.newRetirer(ctx, cr, rot, from.Role, fence)
	if err != nil {
		return nil, err
	}
	res := &Result{Credential: cr.Name, RotationID: rot.ID, Resumed: true, Strategy: rot.Strategy, OldRole: from.Role}
	if to, err := e.Store.GetVersion(ctx, store.GetVersionParams{ID: rot.ToVersionID}); err == nil {
		res.Role, res.Version = to.Role, to.Seq
	}
	v := verdictRetire
	if opts.Now {
		rt.ev.Skipped = opts.Reason
	} else {
		if v, err = rt.gather(ctx, e.now().Add(cr.DrainWait)); err != nil {
			return res, fmt.Errorf("%s: gather evidence for retiring %s: %w", cr.Name, from.Role, err)
		}
	}
	start := e.Now()
	ret, err := rt.conclude(ctx, v, "")
	if err != nil {
		return res, fmt.Errorf("%s: %w", cr.Name, err)
	}
	res.Retirement = ret
	res.Status, res.Outcome = rt.rot.Status, rt.rot.Outcome
	res.Terminated = rt.terminated
	if ret.State == RetirementInUse {
		res.OldSessions = ret.Evidence.Sessions
	}
	res.Steps = append(res.Steps, StepResult{Name: "retire", Status: ret.State, Detail: rt.rot.Outcome, Duration: e.Now().Sub(start)})
	return res, nil
}
