package engine

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/rotorhq/rotor/internal/provider"
	"github.com/rotorhq/rotor/internal/secret"
	"github.com/rotorhq/rotor/internal/store"
	"github.com/rotorhq/rotor/internal/target"
)

// RotationSummary is a rotation as status and plan show it.
type RotationSummary struct {
	ID         int64        `json:"id"`
	Status     store.Status `json:"status"`
	Trigger    string       `json:"trigger"`
	Step       string       `json:"step"`
	Error      string       `json:"error,omitempty"`
	Outcome    string       `json:"outcome,omitempty"`
	StartedAt  time.Time    `json:"started_at"`
	FinishedAt *time.Time   `json:"finished_at,omitempty"`
}

func summarize(r *store.Rotation) *RotationSummary {
	if r == nil {
		return nil
	}
	s := &RotationSummary{ID: r.ID, Status: r.Status, Trigger: r.Trigger, Step: r.Step, Error: r.Error, Outcome: r.Outcome, StartedAt: r.StartedAt}
	if !r.FinishedAt.IsZero() {
		t := r.FinishedAt
		s.FinishedAt = &t
	}
	return s
}

// CredentialStatus is what `rotor status` reports for one credential.
type CredentialStatus struct {
	Name        string           `json:"name"`
	Strategy    string           `json:"strategy"`
	Role        string           `json:"role,omitempty"`
	Version     int64            `json:"version,omitempty"`
	Fingerprint string           `json:"fingerprint,omitempty"`
	ActivatedAt *time.Time       `json:"activated_at,omitempty"`
	Age         time.Duration    `json:"age_ns,omitempty"`
	Schedule    string           `json:"schedule"`
	NextDue     *time.Time       `json:"next_due,omitempty"`
	Due         bool             `json:"due"`
	Last        *RotationSummary `json:"last_rotation,omitempty"`
	Active      *RotationSummary `json:"active_rotation,omitempty"`
	LeaseHolder string           `json:"lease_holder,omitempty"`
	Targets     []TargetStatus   `json:"targets"`
	// Provider is where the credential lives, as its provider describes it
	// (Neon: project, branch, endpoint); --live only.
	Provider    []string           `json:"provider,omitempty"`
	OldSessions []provider.Session `json:"old_role_sessions,omitempty"`
	// Drift lists roles changed behind the store's back (--live only).
	Drift []Drift `json:"drift,omitempty"`
	// PendingRetirement is the last rotation's old role while it awaits
	// retirement.
	PendingRetirement *PendingRetirement `json:"pending_retirement,omitempty"`
	Warnings          []string           `json:"warnings,omitempty"`
}

// PendingRetirement is an old role that still works after its rotation
// switched, and the evidence so far.
type PendingRetirement struct {
	RotationID int64        `json:"rotation_id"`
	Role       string       `json:"role"`
	Status     store.Status `json:"status"`
	SwitchedAt time.Time    `json:"switched_at"`
	GraceUntil time.Time    `json:"grace_until"`
	Deadline   time.Time    `json:"deadline"`
	// Sessions are those on the role now (status --live only).
	Sessions []provider.Session `json:"sessions,omitempty"`
	// LastLogin is the role's last login the server recorded (status
	// --live, PostgreSQL 17's login record only).
	LastLogin   *time.Time `json:"last_login,omitempty"`
	RetiresWhen string     `json:"retires_when"`
}

// TargetStatus is a target's last known delivery.
type TargetStatus struct {
	Name        string              `json:"name"`
	Type        string              `json:"type"`
	Destination string              `json:"destination"`
	State       store.DeliveryState `json:"state"`
	RotationID  int64               `json:"rotation_id,omitempty"`
	At          *time.Time          `json:"at,omitempty"`
	Attempts    int                 `json:"attempts,omitempty"`
	Error       string              `json:"error,omitempty"`
}

// StatusOptions tune Status.
type StatusOptions struct {
	// Live also asks the database who is still logged in as the
	// credential's other roles.
	Live bool
}

// Status reports one credential from the store (and, with Live, the database).
func (e *Engine) Status(ctx context.Context, cr *Credential, opts StatusOptions) (*CredentialStatus, error) {
	e.init()
	now := e.now()
	st := &CredentialStatus{Name: cr.Name, Strategy: cr.Strategy, Schedule: cr.Schedule.String()}
	cur, err := e.currentVersion(ctx, cr.Name)
	if err != nil {
		return nil, err
	}
	var last time.Time
	if cur != nil {
		st.Role, st.Version, st.Fingerprint = cur.Role, cur.Seq, cur.Fingerprint
		t := cur.ActivatedAt
		st.ActivatedAt, st.Age, last = &t, now.Sub(t), t
	} else {
		st.Warnings = append(st.Warnings, "never rotated by rotor")
	}
	if cr.Schedule.Periodic() {
		next := cr.Schedule.NextFrom(cr.Name, last, now)
		st.NextDue = &next
		st.Due = cr.Schedule.Due(cr.Name, last, now)
	}
	if cur != nil && cr.ExpireAfter > 0 && now.After(cur.ActivatedAt.Add(cr.ExpireAfter)) {
		st.Warnings = append(st.Warnings, fmt.Sprintf("the password expired (expire_after %s) — rotate now", formatDuration(cr.ExpireAfter)))
	}
	rots, err := e.Store.ListRotations(ctx, store.ListRotationsParams{Credential: cr.Name, Limit: 1})
	if err != nil {
		return nil, err
	}
	if len(rots) > 0 {
		if rots[0].Status == store.StatusActive {
			st.Active = summarize(rots[0])
			msg := fmt.Sprintf("rotation %d has not finished (last step %s)", rots[0].ID, rots[0].Step)
			if rots[0].Error != "" {
				msg += ": " + rots[0].Error
			}
			st.Warnings = append(st.Warnings, msg+"; run `rotor resume`")
			if more, err := e.Store.ListRotations(ctx, store.ListRotationsParams{Credential: cr.Name, Limit: 2}); err == nil && len(more) > 1 {
				st.Last = summarize(more[1])
			}
		} else {
			st.Last = summarize(rots[0])
			if rots[0].Status == store.StatusOldInUse {
				st.Warnings = append(st.Warnings, "the last rotation left the old role in use: "+rots[0].Outcome)
			}
			if rots[0].Status.RetirementPending() {
				pr, err := e.pendingRetirement(ctx, cr, rots[0], opts.Live)
				if err != nil {
					st.Warnings = append(st.Warnings, "could not read the pending retirement: "+err.Error())
				}
				st.PendingRetirement = pr
			}
		}
	}
	if l, err := e.Store.GetLease(ctx, store.GetLeaseParams{Name: leaseName(cr.Name)}); err == nil && l.ExpiresAt.After(now) {
		st.LeaseHolder = l.Holder
	}
	dels, err := e.Store.ListDeliveries(ctx, store.ListDeliveriesParams{Credential: cr.Name})
	if err != nil {
		return nil, err
	}
	byName := map[string]*store.Delivery{}
	for _, d := range dels {
		byName[d.Target] = d
	}
	for _, t := range cr.Targets {
		ts := TargetStatus{Name: t.Name, Type: t.Type, Destination: t.Impl.Info().Destination, State: "never"}
		if d := byName[t.Name]; d != nil {
			at := d.UpdatedAt
			ts.State, ts.RotationID, ts.At, ts.Attempts, ts.Error = d.State, d.RotationID, &at, d.Attempts, d.Error
			if cur != nil && d.RotationID != cur.RotationID && st.Active == nil {
				st.Warnings = append(st.Warnings, fmt.Sprintf("target %s was last written by rotation %d, not by the one that made the current version (%d)", t.Name, d.RotationID, cur.RotationID))
			}
		} else if cur != nil {
			st.Warnings = append(st.Warnings, fmt.Sprintf("target %s has never been written by rotor", t.Name))
		}
		st.Targets = append(st.Targets, ts)
	}
	if opts.Live {
		if err := e.useStoredAdmin(ctx, cr); err != nil {
			st.Warnings = append(st.Warnings, err.Error())
		}
	}
	if rep, ok := cr.Provider.(provider.Reporter); ok && opts.Live {
		if resp, err := rep.Report(ctx, provider.ReportRequest{Roles: cr.Roles}); err == nil {
			st.Provider = resp.Facts
			st.Warnings = append(st.Warnings, resp.Warnings...)
		} else {
			st.Warnings = append(st.Warnings, "provider report failed: "+err.Error())
		}
	}
	if opts.Live {
		var (
			changed  func(context.Context, *store.Version) bool
			remember func(string, provider.SnapshotResponse)
		)
		if conn, _, _, err := e.endpoints(ctx, cr); err == nil {
			r := &run{e: e, cr: cr, conn: conn}
			changed, remember = r.changedOutside, r.remember
		}
		if ds, err := e.drift(ctx, cr, cr.Roles, cur, changed, remember); err != nil {
			st.Warnings = append(st.Warnings, "could not check for changes behind the store's back: "+err.Error())
		} else {
			st.Drift = ds
			for _, d := range ds {
				st.Warnings = append(st.Warnings, "role "+d.Role+" changed behind the store's back: "+d.Reason+"; see `rotor adopt`")
			}
		}
	}
	if opts.Live && cr.Strategy == StrategyDual && cur != nil {
		for _, role := range cr.Roles {
			if role == cur.Role {
				continue
			}
			s, err := cr.Provider.Sessions(ctx, provider.SessionsRequest{Role: role})
			if err != nil {
				st.Warnings = append(st.Warnings, fmt.Sprintf("could not list sessions of %s: %v", role, err))
				continue
			}
			st.OldSessions = append(st.OldSessions, s.Sessions...)
			if len(s.Sessions) > 0 {
				st.Warnings = append(st.Warnings, fmt.Sprintf("%d session(s) still use the old role %s: %s", len(s.Sessions), role, describeSessions(s.Sessions)))
			}
		}
	}
	return st, nil
}

func (e *Engine) pendingRetirement(ctx context.Context, cr *Credential, rot *store.Rotation, live bool) (*PendingRetirement, error) {
	from, err := e.Store.GetVersion(ctx, store.GetVersionParams{ID: rot.FromVersionID})
	if err != nil {
		return nil, err
	}
	rt, err := e.newRetirer(ctx, cr, rot, from.Role, store.Fence{})
	if err != nil {
		return nil, err
	}
	if live {
		if rt.ev.Sessions, err = roleSessions(ctx, cr, from.Role); err != nil {
			return nil, err
		}
		login, err := lastLogin(ctx, cr, from.Role)
		if err != nil {
			return nil, err
		}
		if login.Seen {
			at := e.now().Add(-login.Ago)
			rt.ev.LastLogin = &at
		}
	}
	return &PendingRetirement{RotationID: rot.ID, Role: from.Role, Status: rot.Status, SwitchedAt: rt.ev.SwitchedAt,
		GraceUntil: rt.ev.GraceUntil, Deadline: rt.ev.Deadline, Sessions: rt.ev.Sessions, LastLogin: rt.ev.LastLogin, RetiresWhen: rt.missing(e.now())}, nil
}

// Due reports whether cr's schedule says it should rotate now.
func (e *Engine) Due(ctx context.Context, cr *Credential) (bool, error) {
	e.init()
	if !cr.Schedule.Periodic() {
		return false, nil
	}
	cur, err := e.currentVersion(ctx, cr.Name)
	if err != nil {
		return false, err
	}
	var last time.Time
	if cur != nil {
		last = cur.ActivatedAt
	}
	return cr.Schedule.Due(cr.Name, last, e.now()), nil
}

// Plan is what a rotation of one credential would do.
type Plan struct {
	Credential string           `json:"credential"`
	Strategy   string           `json:"strategy"`
	Provider   string           `json:"provider"`
	FromRole   string           `json:"from_role,omitempty"`
	ToRole     string           `json:"to_role"`
	Resume     *RotationSummary `json:"resumes,omitempty"`
	Actions    []string         `json:"actions"`
	Targets    []PlanTarget     `json:"targets"`
	Warnings   []string         `json:"warnings,omitempty"`
}

// PlanTarget is one target in a plan; values are shown as their templates.
type PlanTarget struct {
	Name        string            `json:"name"`
	Type        string            `json:"type"`
	Destination string            `json:"destination"`
	Values      map[string]string `json:"values"`
	Keys        []string          `json:"keys"`
	Reload      bool              `json:"reload"`
	ReadBack    bool              `json:"read_back"`
	Idempotent  bool              `json:"retried"`
}

// PlanOptions tune Plan.
type PlanOptions struct {
	// Offline skips every database call (no parity or session checks).
	Offline bool
}

// Plan describes a rotation without changing anything.
func (e *Engine) Plan(ctx context.Context, cr *Credential, opts PlanOptions) (*Plan, error) {
	e.init()
	cur, err := e.currentVersion(ctx, cr.Name)
	if err != nil {
		return nil, err
	}
	var active *store.Rotation
	if rots, err := e.Store.ListRotations(ctx, store.ListRotationsParams{Credential: cr.Name, Active: true, Limit: 1}); err == nil && len(rots) > 0 {
		active = rots[0]
	}
	return e.plan(ctx, cr, opts, cur, active)
}

// plan is Plan once the credential's current version (nil if none) and
// unfinished rotation (nil if none) are read.
func (e *Engine) plan(ctx context.Context, cr *Credential, opts PlanOptions, cur *store.Version, active *store.Rotation) (*Plan, error) {
	var err error
	p := &Plan{Credential: cr.Name, Strategy: cr.Strategy, Provider: cr.ProviderType}
	if !opts.Offline {
		if err := e.useStoredAdmin(ctx, cr); err != nil {
			p.Warnings = append(p.Warnings, err.Error())
		}
	}
	if active != nil {
		p.Resume = summarize(active)
		p.Warnings = append(p.Warnings, fmt.Sprintf("rotation %d is unfinished; `rotor rotate` resumes it from step %s before anything new", active.ID, active.Step))
	}
	switch {
	case cr.Strategy == StrategySingle:
		p.FromRole = cr.Roles[0]
	case cur != nil:
		p.FromRole = cur.Role
	}
	if p.ToRole, err = nextRole(ctx, cr, cur, !opts.Offline); err != nil {
		p.Warnings = append(p.Warnings, "the rotation will stop at prepare: "+err.Error())
	}
	pol := cr.Policy
	role := orDefault(p.ToRole, "(none, see the warnings)")
	generate := fmt.Sprintf("generate a %d-character password (%.0f bits) and store it encrypted as pending", pol.Length, pol.EntropyBits())
	apply := fmt.Sprintf("set it on role %s as a SCRAM-SHA-256 verifier (the server never sees the plaintext)", role)
	rollback := "on failure put the previous password back"
	if d, ok := cr.Provider.(provider.ApplyDescriber); ok {
		g, a, r := d.DescribeApply(role)
		generate, apply, rollback = cmp.Or(g, generate), cmp.Or(a, apply), cmp.Or(r, rollback)
	}
	p.Actions = append(p.Actions, generate, apply)
	test := "log in with the new connection string"
	if cr.TestPooled && cr.Pooled != nil {
		test += " (direct and pooled)"
	}
	if cr.Strategy == StrategySingle {
		test += "; " + rollback
	}
	p.Actions = append(p.Actions, test,
		fmt.Sprintf("write %d target(s) in parallel (up to %d at once), then reload those that need it", len(cr.Targets), cr.Concurrency),
		"read back every target that allows it and compare fingerprints")
	if cr.Strategy == StrategyDual {
		switch {
		case p.FromRole == "":
			p.Actions = append(p.Actions, "first rotation: no old role to retire")
		case cr.Retire == RetireNextRotation:
			p.Actions = append(p.Actions, fmt.Sprintf("keep %s valid until the next rotation", p.FromRole))
		default:
			act := fmt.Sprintf("retire %s (%s) only on evidence: every reload finished, %s of grace since, then %s without a session (sampled every %s); wait up to %s for it, else leave the retirement pending",
				p.FromRole, cr.RetireMethod, formatDuration(cr.DrainGrace), formatDuration(cr.DrainQuiet), formatDuration(cr.DrainPoll), formatDuration(cr.DrainWait))
			if cr.DrainTerminate {
				act += fmt.Sprintf("; sessions still there %s after the switch are terminated", formatDuration(cr.DrainTimeout))
			} else {
				act += fmt.Sprintf("; if sessions remain %s after the switch, leave it in use and report them", formatDuration(cr.DrainTimeout))
			}
			p.Actions = append(p.Actions, act)
		}
	} else {
		p.Actions = append(p.Actions, "new connections with the old password fail from the moment it changes until each consumer reloads")
	}
	for _, t := range cr.Targets {
		info := t.Impl.Info()
		pt := PlanTarget{Name: t.Name, Type: t.Type, Destination: info.Destination, Values: map[string]string{}, Keys: t.Keys, Idempotent: info.Idempotent}
		for i, k := range t.Keys {
			pt.Values[k] = t.Values[i].Text()
		}
		caps := target.Discover(t.Impl)
		pt.Reload, pt.ReadBack = caps.Reloader != nil, caps.Checker != nil
		p.Targets = append(p.Targets, pt)
	}
	if opts.Offline {
		return p, nil
	}
	if cr.Strategy == StrategyDual {
		if par, err := cr.Provider.Parity(ctx, provider.ParityRequest{Roles: cr.Roles}); err == nil {
			for _, d := range par.Differences {
				p.Warnings = append(p.Warnings, "privilege difference (the rotation will stop): "+d)
			}
		} else if !errors.Is(err, provider.ErrUnsupported) {
			p.Warnings = append(p.Warnings, "could not compare privileges: "+err.Error())
		}
		// The same sessions prepare counts (gatekeepers' clients too), on a
		// first rotation as on any other.
		if s, err := roleSessions(ctx, cr, p.ToRole); err == nil && len(s) > 0 && p.ToRole != "" {
			p.Warnings = append(p.Warnings, fmt.Sprintf("%s still has %d session(s) (%s); the rotation will refuse to reuse it without --force", p.ToRole, len(s), describeSessions(s)))
		}
	}
	return p, nil
}

// Abandon gives up on an unfinished rotation, which is only safe before
// anything was published: consumers never saw its password.
func (e *Engine) Abandon(ctx context.Context, cr *Credential) (_ *store.Rotation, err error) {
	e.init()
	lease, release, err := e.lock(ctx, cr.Name)
	if err != nil {
		return nil, err
	}
	defer func() { err = errors.Join(err, release()) }()
	if err := e.useStoredAdmin(ctx, cr); err != nil {
		return nil, err
	}
	rots, err := e.Store.ListRotations(ctx, store.ListRotationsParams{Credential: cr.Name, Active: true, Limit: 1})
	if err != nil {
		return nil, err
	}
	if len(rots) == 0 {
		return nil, fmt.Errorf("%s has no unfinished rotation to abandon", cr.Name)
	}
	rot := rots[0]
	steps, err := e.Store.ListSteps(ctx, store.ListStepsParams{RotationID: rot.ID})
	if err != nil {
		return nil, err
	}
	applied := false
	for _, s := range steps {
		if s.Name == StepPublish || s.Name == StepConfirm || s.Name == StepFinish {
			return nil, fmt.Errorf("%s: rotation %d already started publishing, so targets may hold its password; finish it with `rotor resume` instead", cr.Name, rot.ID)
		}
		if s.Name == StepApply {
			applied = true
		}
	}
	if applied && cr.Strategy == StrategySingle {
		// The database may hold the new password: put the old one back.
		var restore secret.String
		if rot.Rollback != nil && rot.ToVersionID != 0 {
			v, err := e.Store.GetVersion(ctx, store.GetVersionParams{ID: rot.ToVersionID})
			if err == nil {
				if m, err := e.openBlob(cr.Name, v.Role, rot.Rollback); err == nil {
					restore = m.verifier()
				}
			}
		}
		if restore.IsZero() {
			return nil, fmt.Errorf("%s: rotation %d may already have changed the password and rotor cannot restore the old one; finish it with `rotor resume`", cr.Name, rot.ID)
		}
		if _, err := cr.Provider.SetPassword(ctx, provider.SetPasswordRequest{Role: cr.Roles[0], Verifier: restore}); err != nil {
			return nil, fmt.Errorf("%s: put the previous password back: %w", cr.Name, secret.Scrub(err, restore))
		}
		// Apply gives gatekeepers the new password first.
		if err := restoreGatekeepers(ctx, cr, cr.Roles[0], restore); err != nil {
			return nil, fmt.Errorf("%s: the database has the previous password again, but putting it back on the gatekeeper targets failed (fix them, then abandon again): %w", cr.Name, secret.Scrub(err, restore))
		}
	}
	return e.Store.FinishRotation(ctx, store.FinishRotationParams{
		Fence: lease.Fence(), ID: rot.ID, Status: store.StatusAbandoned, Outcome: "abandoned by operator before publishing",
		Audit: store.AppendAuditParams{Credential: cr.Name, RotationID: rot.ID, Event: "rotation.abandoned", Actor: e.Holder, Detail: "{}", Now: e.now()},
		Now:   e.now(),
	})
}
