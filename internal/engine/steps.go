package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/rotorhq/rotor/internal/provider"
	"github.com/rotorhq/rotor/internal/secret"
	"github.com/rotorhq/rotor/internal/store"
)

// prepare chooses the role, generates the password and stores it sealed as
// pending. Nothing outside rotor's store changes.
func (r *run) prepare(ctx context.Context) (string, error) {
	if r.rot.ToVersionID != 0 {
		return r.loadPending(ctx)
	}
	// A crash between InsertVersion and UpdateRotation leaves a pending
	// version that the rotation does not point to yet: adopt it.
	pend, err := r.e.Store.ListVersions(ctx, store.ListVersionsParams{Credential: r.cr.Name, Stages: []store.Stage{store.StagePending}})
	if err != nil {
		return "", err
	}
	for _, v := range pend {
		if v.RotationID == r.rot.ID {
			return r.adopt(ctx, v)
		}
	}
	if len(pend) > 0 {
		return "", fmt.Errorf("credential has a pending version %d from rotation %d that never finished; run `rotor resume --abandon %s` first", pend[0].Seq, pend[0].RotationID, r.cr.Name)
	}

	role, err := r.chooseRole(ctx)
	if err != nil {
		return "", err
	}
	roles := []string{role}
	if r.from != nil && r.from.Role != role {
		roles = append(roles, r.from.Role)
	}
	if ds, err := r.e.drift(ctx, r.cr, roles, r.from, r.changedOutside, r.remember); err != nil {
		return "", err
	} else if len(ds) > 0 {
		return "", &StepError{Credential: r.cr.Name, RotationID: r.rot.ID, Step: StepPrepare, Err: driftError(r.cr, ds), Hint: adoptHint(r.cr)}
	}
	if r.cr.Strategy == StrategyDual {
		if err := r.checkParity(ctx); err != nil {
			return "", err
		}
	}
	if r.fresh == nil {
		r.fresh = r.e.drawPassword(r.cr)
	}
	pw, ver, err := r.fresh.wait()
	if err != nil {
		return "", err
	}
	m := material{Password: pw.Reveal(), Verifier: ver.Reveal()}
	sealed, err := r.e.seal(r.cr.Name, role, m)
	if err != nil {
		return "", err
	}
	// Single strategy: remember what the server holds now so a failed
	// test can put it back. Superusers can read it; others fall back to
	// the previous version rotor stored, if any.
	var rollback []byte
	if r.cr.Strategy == StrategySingle {
		snap, err := r.snapshot(ctx, role)
		switch {
		case err == nil && !snap.Verifier.IsZero():
			if rollback, err = r.e.seal(r.cr.Name, role, material{Verifier: snap.Verifier.Reveal()}); err != nil {
				return "", err
			}
		case err == nil, errors.Is(err, provider.ErrUnsupported):
		default:
			return "", err
		}
	}
	// The pending version, the rotation pointing at it and the password
	// to roll back to, in one write.
	now := r.e.now()
	v, err := r.e.Store.InsertVersion(ctx, store.InsertVersionParams{Fence: r.fence,
		Credential: r.cr.Name, Role: role, Stage: store.StagePending, RotationID: r.rot.ID,
		Sealed: sealed, Fingerprint: r.e.Sealer.Fingerprint("password", r.cr.Name, pw.Reveal()), Now: now, Deferred: true,
		Pending: &store.UpdateRotationParams{Rollback: rollback, Now: now}, Open: r.owed,
	})
	if err != nil {
		return "", journalError("store the pending version", err)
	}
	r.carried(StepPrepare, "")
	r.rot.ToVersionID, r.rot.UpdatedAt = v.ID, now
	if rollback != nil {
		r.rot.Rollback = rollback
	}
	return r.pendingLoaded(v, m), nil
}

func (r *run) adopt(ctx context.Context, v *store.Version) (string, error) {
	id := v.ID
	rot, err := r.e.Store.UpdateRotation(ctx, store.UpdateRotationParams{Fence: r.fence, ID: r.rot.ID, ToVersionID: &id, Now: r.e.now(), Deferred: true})
	if err != nil {
		return "", journalError("record the pending version", err)
	}
	r.rot = rot
	return r.loadPending(ctx)
}

func (r *run) loadPending(ctx context.Context) (string, error) {
	v, err := r.e.Store.GetVersion(ctx, store.GetVersionParams{ID: r.rot.ToVersionID})
	if err != nil {
		return "", fmt.Errorf("read pending version: %w", err)
	}
	m, err := r.e.open(v)
	if err != nil {
		return "", err
	}
	return r.pendingLoaded(v, m), nil
}

// pendingLoaded makes v, whose secret is m, the run's pending version and
// returns prepare's detail.
func (r *run) pendingLoaded(v *store.Version, m material) string {
	r.to, r.pending = v, m
	r.res.Role, r.res.Version = v.Role, v.Seq
	if r.from != nil && r.from.Role != v.Role {
		r.res.OldRole = r.from.Role
	}
	return fmt.Sprintf("role %s, version %d (%s)", v.Role, v.Seq, v.Fingerprint)
}

// chooseRole picks the role the new password goes to (nextRole) and, for
// dual, refuses one that still has sessions unless forced.
func (r *run) chooseRole(ctx context.Context) (string, error) {
	next, err := nextRole(ctx, r.cr, r.from, true)
	if err != nil || r.cr.Strategy == StrategySingle {
		return next, err
	}
	if r.opts.Force {
		return next, nil
	}
	sessions, err := roleSessions(ctx, r.cr, next)
	if err != nil {
		return "", err
	}
	s := provider.SessionsResponse{Sessions: sessions}
	if n := len(s.Sessions); n > 0 {
		return "", &StepError{Credential: r.cr.Name, RotationID: r.rot.ID, Step: StepPrepare,
			Err: fmt.Errorf("role %s, which this rotation would give a new password, still has %d session(s): %s", next, n, describeSessions(s.Sessions)),
			Hint: "those consumers have not moved to the current role yet; changing the password would not cut them off now, but they would fail on their next reconnect.\n" +
				"Find them (`rotor status` lists them), move them to the current connection string, then run `rotor resume`; or pass --force."}
	}
	return next, nil
}

// nextRole is the role a rotation from version from (nil on the first
// rotation) gives the new password: the only role for single; for dual
// the one consumers are not using. Plan asks it too, so what plan shows
// is what rotate does. With live false (plan --offline) nobody is asked
// who is logged in, and a first dual rotation is assumed to find both
// roles idle.
func nextRole(ctx context.Context, cr *Credential, from *store.Version, live bool) (string, error) {
	roles := cr.Roles
	if cr.Strategy == StrategySingle {
		return roles[0], nil
	}
	switch {
	case from == nil:
	case from.Role == roles[0]:
		return roles[1], nil
	case from.Role == roles[1]:
		return roles[0], nil
	default:
		return "", fmt.Errorf("the current version uses role %s, which is not in roles: %v; put it back in the config or run `rotor setup-roles`", from.Role, roles)
	}
	// First rotation: prefer the role nobody is logged in as.
	if live {
		s0, err0 := cr.Provider.Sessions(ctx, provider.SessionsRequest{Role: roles[0]})
		s1, err1 := cr.Provider.Sessions(ctx, provider.SessionsRequest{Role: roles[1]})
		if err0 == nil && err1 == nil && len(s0.Sessions) > 0 && len(s1.Sessions) == 0 {
			return roles[1], nil
		}
	}
	return roles[0], nil
}

func (r *run) checkParity(ctx context.Context) error {
	p, err := r.cr.Provider.Parity(ctx, provider.ParityRequest{Roles: r.cr.Roles})
	if err != nil {
		if errors.Is(err, provider.ErrUnsupported) {
			return nil
		}
		return err
	}
	if len(p.Differences) == 0 {
		return nil
	}
	return &StepError{Credential: r.cr.Name, RotationID: r.rot.ID, Step: StepPrepare,
		Err:  fmt.Errorf("roles %s do not have the same privileges:\n- %s", strings.Join(r.cr.Roles, " and "), strings.Join(p.Differences, "\n- ")),
		Hint: "switching would change what the application may do. Grant privileges to the group role " + orDefault(r.cr.Group, "(see `rotor setup-roles`)") + " instead of to one login role, then run `rotor resume`."}
}

// apply sets the pending password on the database. Idempotent: replaying
// sets the same verifier again.
func (r *run) apply(ctx context.Context) (string, error) {
	if err := r.gatekeepersBeforeApply(ctx); err != nil {
		return "", err
	}
	var until *time.Time
	if r.cr.ExpireAfter > 0 {
		t := r.e.now().Add(r.cr.ExpireAfter)
		until = &t
	}
	r.connectEarly(ctx)
	resp, err := r.cr.Provider.SetPassword(ctx, provider.SetPasswordRequest{
		Role: r.to.Role, Password: r.pending.password(), Verifier: r.pending.verifier(), ValidUntil: until,
		Mark: r.markToSet(ctx),
	})
	if err != nil {
		r.dropEarly()
		return "", r.gatekeepersAfterFailedApply(ctx, err)
	}
	if !resp.Password.IsZero() && !resp.Password.Equal(r.pending.password()) {
		r.dropEarly() // it holds the password rotor chose
		// The backend chose the password (an API that resets it): store it
		// before anything else, it is the only copy.
		m := material{Password: resp.Password.Reveal()}
		sealed, err := r.e.seal(r.cr.Name, r.to.Role, m)
		if err != nil {
			return "", err
		}
		fp := r.e.Sealer.Fingerprint("password", r.cr.Name, m.Password)
		if err := r.e.Store.ReplacePendingSecret(ctx, store.ReplacePendingSecretParams{Fence: r.fence, ID: r.to.ID, Sealed: sealed, Fingerprint: fp}); err != nil {
			return "", journalError("store the password the backend generated", err)
		}
		r.pending, r.to.Fingerprint = m, fp
	}
	if err := r.useNewAdmin(ctx); err != nil {
		return "", err
	}
	if !resp.Marked {
		r.writeMark(ctx)
	}
	if r.applied.IsZero() {
		// When the old password stopped working: journaled with the step's
		// done (or failed) record (carry). A process killed before that
		// sets the password again on resume, and the time is taken then.
		r.applied = r.e.now()
	}
	detail := fmt.Sprintf("password set on role %s", r.to.Role)
	if resp.Detail != "" {
		detail += " (" + resp.Detail + ")"
	}
	return detail + " at " + r.applied.Format(time.RFC3339Nano), nil
}

// test logs in exactly as consumers will. Single strategy: a failure puts
// the previous password back and ends the rotation as rolled back.
func (r *run) test(ctx context.Context) (string, error) {
	if err := r.gatekeepersBeforeTest(ctx); err != nil {
		return "", err
	}
	tried, lastErr, err := r.loginRetrying(ctx)
	if err != nil {
		return "", err
	}
	if lastErr == nil {
		return "logged in via " + strings.Join(tried, " and "), nil
	}
	if r.cr.Strategy == StrategyDual {
		return "", &StepError{Credential: r.cr.Name, RotationID: r.rot.ID, Step: StepTest,
			Err:  fmt.Errorf("the new password of %s does not log in: %w", r.to.Role, lastErr),
			Hint: "nothing was published; consumers still use " + orDefault(r.fromRole(), "the old role") + ". Fix the cause (pg_hba.conf, the pooler, connection.url), then `rotor resume`."}
	}
	return "", r.rollback(ctx, lastErr)
}

// loginRetrying tries login three times, with a short growing pause, and
// returns the last login error scrubbed of the password; err is the
// journal's, which stops the step without a rollback.
func (r *run) loginRetrying(ctx context.Context) (tried []string, lastErr, err error) {
	for attempt := 0; attempt < 3; attempt++ {
		tried, lastErr = r.login(ctx)
		if lastErr == nil {
			return tried, nil, nil
		}
		// A pause is not "only reading": the journal says where we are.
		if err := r.opened(ctx); err != nil {
			return tried, nil, err
		}
		if err := r.e.Sleep(ctx, time.Duration(attempt+1)*500*time.Millisecond); err != nil {
			break
		}
	}
	return tried, secret.Scrub(lastErr, r.secrets()...), nil
}

// testsPooled reports whether the login test covers a pooled URL that
// differs from the direct one.
func (r *run) testsPooled() bool {
	vars := r.vars()
	return r.cr.TestPooled && !vars.PooledURL.Equal(vars.DirectURL)
}

// login connects as consumers will: directly, and through the pooled URL
// when there is one and it is asked for.
func (r *run) login(ctx context.Context) ([]string, error) {
	vars := r.vars()
	urls := []struct {
		name string
		url  secret.String
	}{{"direct", vars.DirectURL}}
	if r.testsPooled() {
		urls = append(urls, struct {
			name string
			url  secret.String
		}{"pooled", vars.PooledURL})
	}
	var names []string
	for _, u := range urls {
		if r.loginEarly(u.url) {
			names = append(names, u.name)
			continue
		}
		tctx, cancel := context.WithTimeout(ctx, r.cr.TestTimeout)
		err := r.e.Dial(tctx, u.url)
		cancel()
		if err != nil {
			return names, fmt.Errorf("%s connection: %w", u.name, err)
		}
		names = append(names, u.name)
	}
	return names, nil
}

// previousVerifier is what the server held for the role before this
// rotation (single strategy): the snapshot prepare took, else the version
// rotor stored last. Zero when neither is known.
func (r *run) previousVerifier(ctx context.Context) secret.String {
	return r.previous(ctx).verifier()
}

// previous is what the server held for the role before this rotation
// (single strategy): the snapshot prepare took (a verifier only), else the
// version rotor stored last (password and verifier).
func (r *run) previous(ctx context.Context) material {
	switch {
	case r.rot.Rollback != nil:
		if m, err := r.e.openBlob(r.cr.Name, r.to.Role, r.rot.Rollback); err == nil {
			if r.from != nil && r.from.Role == r.to.Role {
				// The stored version's plaintext, for a server that refuses
				// verifiers (Neon over SQL), when it is the same password.
				if fm, err := r.e.open(r.from); err == nil && fm.Verifier == m.Verifier {
					return fm
				}
			}
			return m
		}
	case r.from != nil && r.from.Role == r.to.Role:
		if m, err := r.e.open(r.from); err == nil {
			return m
		}
	}
	return material{}
}

func (r *run) rollback(ctx context.Context, cause error) error {
	if err := r.opened(ctx); err != nil {
		return err
	}
	restore := r.previousVerifier(ctx)
	if restore.IsZero() {
		return &StepError{Credential: r.cr.Name, RotationID: r.rot.ID, Step: StepTest,
			Err:  fmt.Errorf("the new password of %s does not log in (%w), and rotor cannot put the old one back (the admin role cannot read pg_authid and rotor never stored it)", r.to.Role, cause),
			Hint: "the role now has a password no consumer knows. Fix the cause and run `rotor resume` to publish the new one, or reset the password by hand."}
	}
	if _, err := r.cr.Provider.SetPassword(ctx, provider.SetPasswordRequest{Role: r.to.Role, Verifier: restore, Password: r.previous(ctx).password()}); err != nil {
		return &StepError{Credential: r.cr.Name, RotationID: r.rot.ID, Step: StepTest,
			Err:  fmt.Errorf("the new password of %s does not log in (%w), and putting the old one back failed: %v", r.to.Role, cause, secret.Scrub(err, restore, r.previous(ctx).password())),
			Hint: "run `rotor resume` to retry the rollback once the database is reachable."}
	}
	if err := restoreGatekeepers(ctx, r.cr, r.to.Role, restore); err != nil {
		// The server is back on the old password; say what still holds the
		// new one, and finish the rollback anyway.
		cause = fmt.Errorf("%w; restoring the gatekeeper failed too, fix it by hand: %v", cause, secret.Scrub(err, r.secrets()...))
	}
	rot, err := r.e.Store.FinishRotation(ctx, store.FinishRotationParams{Fence: r.fence,
		ID: r.rot.ID, Status: store.StatusRolledBack, Outcome: "test failed; previous password restored", Error: cause.Error(),
		Audit: store.AppendAuditParams{Credential: r.cr.Name, RotationID: r.rot.ID, Event: "rotation.rolled_back", Actor: r.e.Holder, Detail: jsonDetail(map[string]any{"role": r.to.Role, "error": cause.Error()}), Now: r.e.now()},
		Now:   r.e.now(),
	})
	if err != nil {
		return journalError("record the rollback", err)
	}
	r.rot = rot
	r.res.Status, r.res.Outcome = rot.Status, rot.Outcome
	return &StepError{Credential: r.cr.Name, RotationID: r.rot.ID, Step: StepTest,
		Err:  fmt.Errorf("the new password of %s does not log in: %w", r.to.Role, cause),
		Hint: "the previous password was put back and nothing was published; fix the cause, then `rotor rotate " + r.cr.Name + "` again."}
}

func (e *Engine) openBlob(cred, role string, blob []byte) (material, error) {
	return e.open(&store.Version{Credential: cred, Role: role, Sealed: blob})
}

// confirm reads back what can be read back, ends old sessions for a
// revoke, and for dual waits for the old role to drain.
func (r *run) confirm(ctx context.Context) (string, error) {
	var notes []string
	if n, err := r.verifyTargets(ctx); err != nil {
		return "", err
	} else if n != "" {
		notes = append(notes, n)
	}
	old := r.fromRole()
	if r.opts.Revoke {
		if err := r.opened(ctx); err != nil {
			return "", err
		}
	}
	switch {
	case r.opts.Revoke && r.cr.Strategy == StrategySingle:
		// Same role, so only sessions older than the new password can be
		// the leaked credential's.
		t, err := r.cr.Provider.Terminate(ctx, provider.TerminateRequest{Role: r.to.Role, StartedBefore: r.applied})
		if err != nil {
			return "", fmt.Errorf("revoke: %w", err)
		}
		r.res.Terminated += t.Terminated
		notes = append(notes, fmt.Sprintf("revoke: terminated %d session(s) opened before the new password", t.Terminated))
	case r.cr.Strategy == StrategyDual && old != "" && r.opts.Revoke:
		// Retire first so a terminated attacker cannot log back in.
		if _, err := r.cr.Provider.Retire(ctx, provider.RetireRequest{Role: old, Method: r.cr.RetireMethod}); err != nil {
			return "", fmt.Errorf("revoke: %w", err)
		}
		t, err := r.cr.Provider.Terminate(ctx, provider.TerminateRequest{Role: old})
		if err != nil {
			return "", fmt.Errorf("revoke: %w", err)
		}
		r.res.Terminated += t.Terminated
		notes = append(notes, fmt.Sprintf("revoke: retired %s and terminated %d session(s)", old, t.Terminated))
	}
	return strings.Join(notes, "; "), nil
}

// finish retires the old role (dual) and promotes the pending version.
func (r *run) finish(ctx context.Context) (string, error) {
	old := r.fromRole()
	status := store.StatusSucceeded
	retirePrev := r.cr.Strategy == StrategySingle
	outcome := fmt.Sprintf("%s now uses role %s, version %d", r.cr.Name, r.to.Role, r.to.Seq)
	switch {
	case r.cr.Strategy != StrategyDual || old == "":
	case r.opts.Revoke:
		retirePrev = true
		outcome += "; old role " + old + " revoked"
	case r.cr.Retire == RetireNextRotation:
		outcome += "; old role " + old + " stays valid until the next rotation"
	default:
		// Promote first: consumers use the new version from now on, and
		// the old role is retired only on evidence (retire.go).
		status = store.StatusSwitched
		outcome += "; switched from " + old
	}
	if r.cr.Strategy == StrategySingle {
		if w, err := r.failureWindow(ctx); err != nil {
			return "", err
		} else if w != nil {
			r.res.FailureWindow = w
			outcome += fmt.Sprintf("; new connections with the old string could fail for %s, from the password change until the last reload finished", w.Duration.Round(time.Millisecond))
		}
	}
	// A rotation that ends here lets its lease go in the same write; one
	// that switched keeps it for the retirement below.
	release := status != store.StatusSwitched && r.stopRenew != nil
	if release {
		r.stopRenew()
	}
	rot, err := r.e.Store.FinishRotation(ctx, store.FinishRotationParams{Fence: r.fence,
		ID: r.rot.ID, Status: status, Outcome: outcome, Promote: true, RetirePrevious: retirePrev,
		Audit: store.AppendAuditParams{Credential: r.cr.Name, RotationID: r.rot.ID, Event: "rotation." + string(status), Actor: r.e.Holder,
			Detail: jsonDetail(map[string]any{"role": r.to.Role, "version": r.to.Seq, "fingerprint": r.to.Fingerprint, "old_role": old, "terminated": r.res.Terminated}), Now: r.e.now()},
		Now: r.e.now(), Open: r.owed, Release: release,
	})
	if err != nil {
		return "", journalError("record the finished rotation", err)
	}
	r.owed, r.rot, r.released = nil, rot, release
	r.res.Status, r.res.Outcome = rot.Status, outcome
	if status == store.StatusSwitched {
		rt, err := r.e.newRetirer(ctx, r.cr, rot, old, r.fence)
		if err != nil {
			return "", err
		}
		v, err := rt.gather(ctx, r.e.now().Add(r.cr.DrainWait))
		if err != nil {
			// Switched and journaled: the retirement resumes later.
			return "", fmt.Errorf("gather evidence for retiring %s (the rotation switched; `rotor retire %s` carries the retirement out): %w", old, r.cr.Name, err)
		}
		ret, err := rt.conclude(ctx, v, outcome)
		if err != nil {
			return "", err
		}
		r.rot, r.res.Retirement, r.res.Terminated = rt.rot, ret, r.res.Terminated+rt.terminated
		r.res.Status, r.res.Outcome = rt.rot.Status, rt.rot.Outcome
		if ret.State == RetirementInUse {
			r.res.OldSessions = ret.Evidence.Sessions
		}
		outcome = rt.rot.Outcome
	}
	return outcome, nil
}

// FailureWindow is when new connections with the old string fail in a
// single-strategy rotation: from the password change until the last
// target's reload finished.
type FailureWindow struct {
	From     time.Time     `json:"from"`
	To       time.Time     `json:"to"`
	Duration time.Duration `json:"duration_ns"`
}

func (r *run) failureWindow(ctx context.Context) (*FailureWindow, error) {
	if r.applied.IsZero() {
		return nil, nil
	}
	to := r.published
	if to.IsZero() {
		// Published by an earlier run of this rotation: the journal says when.
		var err error
		if to, err = r.e.publishedAt(ctx, r.rot); err != nil {
			return nil, err
		}
	}
	if to.Before(r.applied) {
		to = r.applied
	}
	return &FailureWindow{From: r.applied, To: to, Duration: to.Sub(r.applied)}, nil
}

func (r *run) fromRole() string {
	if r.from == nil {
		return ""
	}
	if r.to != nil && r.from.Role == r.to.Role {
		return ""
	}
	return r.from.Role
}

// roleSessions lists who is still logged in as role: the database's own
// sessions and the clients gatekeeper targets hold, which the database
// cannot see.
func roleSessions(ctx context.Context, cr *Credential, role string) ([]provider.Session, error) {
	s, err := cr.Provider.Sessions(ctx, provider.SessionsRequest{Role: role})
	if err != nil {
		return nil, err // the provider names the role and what it tried
	}
	clients, err := gatekeeperClients(ctx, cr, role)
	if err != nil {
		return nil, err
	}
	return append(s.Sessions, clients...), nil
}

func describeSessions(ss []provider.Session) string {
	counts := map[string]int{}
	for _, s := range ss {
		app := s.ApplicationName
		if app == "" {
			app = "(no application_name)"
		}
		counts[fmt.Sprintf("%s from %s", app, orDefault(s.ClientAddr, "local socket"))]++
	}
	keys := make([]string, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for i, k := range keys {
		if counts[k] > 1 {
			keys[i] = fmt.Sprintf("%s ×%d", k, counts[k])
		}
	}
	return strings.Join(keys, ", ")
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func jsonDetail(m map[string]any) string {
	b, _ := json.Marshal(m)
	return string(b)
}
