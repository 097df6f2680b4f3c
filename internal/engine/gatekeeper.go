package engine

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/rotorhq/rotor/internal/provider"
	"github.com/rotorhq/rotor/internal/secret"
	"github.com/rotorhq/rotor/internal/store"
	"github.com/rotorhq/rotor/internal/target"
)

// This file is everything the engine does for gatekeeper targets
// (target.Gatekeeper: consumers authenticate through them, so they must
// accept a new password before anyone presents it). The steps call in at
// four points: before apply (single strategy), before the login test
// (dual), at the head of publish, and when listing a role's sessions.

// gatekeeperOf is the one place the engine finds out whether a target is
// a gatekeeper.
func gatekeeperOf(t *Target) (target.Gatekeeper, bool) {
	gk := target.Discover(t.Impl).Gatekeeper
	return gk, gk != nil
}

func (rd *rendered) gatekeeper() bool {
	_, ok := gatekeeperOf(rd.t)
	return ok
}

func (r *run) hasGatekeeper() bool {
	for _, t := range r.cr.Targets {
		if _, ok := gatekeeperOf(t); ok {
			return true
		}
	}
	return false
}

// gatekeepersFirst reports whether apply hands the gatekeepers the new
// verifier before the server: single strategy, where the server's change
// cuts the old password off at once.
func (r *run) gatekeepersFirst() bool {
	return r.cr.Strategy == StrategySingle && r.hasGatekeeper() && !r.pending.verifier().IsZero()
}

// gatekeepersBeforeApply publishes the gatekeepers ahead of the server
// (single strategy behind a gatekeeper passing SCRAM through). A consumer
// still on the old password is then refused by the gatekeeper itself,
// rather than let through to a server login that fails — which would make
// a pooler turn every client of the pool away for its login retry time.
func (r *run) gatekeepersBeforeApply(ctx context.Context) error {
	if !r.gatekeepersFirst() {
		return nil
	}
	if err := r.publishGatekeepers(ctx, StepApply); err != nil {
		return r.restoreGatekeepersAfter(ctx, err, r.previousVerifier(ctx))
	}
	r.settleGatekeepers(ctx)
	return nil
}

// gatekeepersBeforeTest publishes the gatekeepers ahead of the login test
// (dual strategy: the new role is not in use yet, so this is harmless), so
// the test can log in through them exactly as consumers will. The single
// strategy gave them the new password in apply.
func (r *run) gatekeepersBeforeTest(ctx context.Context) error {
	if r.cr.Strategy != StrategyDual || !r.hasGatekeeper() {
		return nil
	}
	return r.publishGatekeepers(ctx, StepTest)
}

// publishGatekeepers writes and reloads the gatekeeper targets now,
// reporting a failure as step's.
func (r *run) publishGatekeepers(ctx context.Context, step string) error {
	if err := r.opened(ctx); err != nil {
		return err
	}
	rds, err := r.renderAll()
	if err != nil {
		return err
	}
	done, err := r.priorDeliveries(ctx)
	if err != nil {
		return err
	}
	results := make([]TargetResult, len(rds))
	if err := r.writeGatekeepers(ctx, rds, done, results); err != nil {
		var se *StepError
		if errors.As(err, &se) {
			se.Step = step
		}
		return err
	}
	return nil
}

// writeGatekeepers writes and reloads every gatekeeper target, one by one,
// filling results. A gatekeeper already written in this rotation (same
// fingerprint) is skipped.
func (r *run) writeGatekeepers(ctx context.Context, rds []*rendered, done map[string]*store.Delivery, results []TargetResult) error {
	for i, rd := range rds {
		if !rd.gatekeeper() {
			continue
		}
		var err error
		if results[i], err = r.write(ctx, rd, done[rd.t.Name], never); err != nil {
			return err
		}
		if results[i].State != store.DeliveryFailed {
			if err := r.reload(ctx, rd, &results[i], done[rd.t.Name], never); err != nil {
				return err
			}
		}
		if results[i].State == store.DeliveryFailed {
			return &StepError{Credential: r.cr.Name, RotationID: r.rot.ID, Step: StepPublish,
				Err:  fmt.Errorf("gatekeeper target %s failed, so no other target was written: %s", rd.t.Name, results[i].Error),
				Hint: r.publishHint()}
		}
	}
	return nil
}

// put sends one target its values: Put, or for a gatekeeper the new
// verifier (with the values, for a gatekeeper that keeps some).
func (r *run) put(ctx context.Context, rd *rendered) (target.PutResponse, error) {
	rotID := strconv.FormatInt(r.rot.ID, 10)
	if gk, ok := gatekeeperOf(rd.t); ok {
		resp, err := gk.PublishVerifier(ctx, target.PublishVerifierRequest{
			Role: r.to.Role, Verifier: r.pending.verifier(), Values: rd.values, Keys: rd.t.Keys,
			RotationID: rotID, Version: r.to.Seq,
		})
		return target.PutResponse{Changed: resp.Changed, Ref: resp.Ref}, err
	}
	return rd.t.Impl.Put(ctx, target.PutRequest{
		Values: rd.values, Keys: rd.t.Keys, RotationID: rotID, Version: r.to.Seq, Role: r.to.Role,
	})
}

// settleWait bounds how long apply waits for gatekeepers to settle.
const settleWait = 5 * time.Second

// settleGatekeepers waits (briefly, bounded) until no gatekeeper is still
// letting a consumer through with the previous password: one already
// admitted and waiting for a server login would fail it once the server
// has the new password. Past the bound rotor carries on and reports it.
func (r *run) settleGatekeepers(ctx context.Context) {
	for _, t := range r.cr.Targets {
		gk, ok := gatekeeperOf(t)
		if !ok {
			continue
		}
		sctx, cancel := context.WithTimeout(ctx, settleWait)
		_, err := gk.Settle(sctx, target.SettleRequest{Role: r.to.Role})
		cancel()
		if err != nil {
			r.e.emit(Event{Credential: r.cr.Name, RotationID: r.rot.ID, Step: StepApply, Target: t.Name, Status: "note",
				Detail: "carrying on without waiting for gatekeeper " + t.Name + " to settle: " + secret.Scrub(err, r.secrets()...).Error()})
		}
	}
}

// restoreGatekeepersAfter handles a gatekeeper that failed before the
// server was touched (single strategy, apply): it puts the previous
// verifier back where it may already have landed, and says so.
func (r *run) restoreGatekeepersAfter(ctx context.Context, cause error, previous secret.String) error {
	var se *StepError
	if !errors.As(cause, &se) {
		return cause
	}
	se.Hint = "the database still has the old password, so consumers are unaffected. Fix the gatekeeper, then `rotor resume` (or `rotor resume --abandon`)."
	if previous.IsZero() {
		return se
	}
	if err := restoreGatekeepers(ctx, r.cr, r.to.Role, previous); err != nil {
		se.Hint = "the database still has the old password, but a gatekeeper may hold the new one and refuse consumers: " + secret.Scrub(err, r.secrets()...).Error() + ". Fix it, then `rotor resume`."
		return se
	}
	if err := r.forgetGatekeeperDeliveries(ctx); err != nil {
		se.Err = fmt.Errorf("%w; %w", se.Err, err)
	}
	return se
}

// gatekeepersAfterFailedApply: setting the password on the server failed.
// When apply had given the gatekeepers the new verifier first and the
// server certainly still has another one, the gatekeepers get the previous
// verifier back so consumers keep working until the rotation is resumed;
// if rotor cannot tell (no pg_authid access), they are left alone and the
// error says so.
func (r *run) gatekeepersAfterFailedApply(ctx context.Context, cause error) error {
	if !r.gatekeepersFirst() {
		return cause
	}
	previous := r.previousVerifier(ctx)
	snap, err := r.cr.Provider.Snapshot(ctx, provider.SnapshotRequest{Role: r.to.Role})
	switch {
	case err != nil || snap.Verifier.IsZero() || previous.IsZero():
		return fmt.Errorf("%w; the gatekeeper targets already hold the new password and rotor cannot tell whether the server does, so consumers going through them may be refused until `rotor resume` finishes", cause)
	case snap.Verifier.Equal(r.pending.verifier()):
		return cause // the server has it after all; resume carries on
	}
	if err := restoreGatekeepers(ctx, r.cr, r.to.Role, previous); err != nil {
		return fmt.Errorf("%w; putting the previous password back on the gatekeeper targets failed too, so consumers going through them are refused until `rotor resume` finishes: %v", cause, secret.Scrub(err, r.secrets()...))
	}
	if err := r.forgetGatekeeperDeliveries(ctx); err != nil {
		return fmt.Errorf("%w; %w", cause, err)
	}
	return cause
}

// forgetGatekeeperDeliveries records that the gatekeepers no longer hold
// this rotation's password, so a resume writes them again. Unrecorded, a
// resume would skip them while the server gets the new verifier.
func (r *run) forgetGatekeeperDeliveries(ctx context.Context) error {
	var errs []error
	for _, t := range r.cr.Targets {
		if _, ok := gatekeeperOf(t); !ok {
			continue
		}
		if _, err := r.e.Store.UpsertDelivery(context.WithoutCancel(ctx), store.UpsertDeliveryParams{Fence: r.fence,
			RotationID: r.rot.ID, Credential: r.cr.Name, Target: t.Name, State: store.DeliveryFailed,
			Error: "put back to the previous password", Now: r.e.now(),
		}); err != nil {
			errs = append(errs, journalError("record that gatekeeper "+t.Name+" holds the previous password again, so a resume must write it", err))
		}
	}
	return errors.Join(errs...)
}

// restoreGatekeepers gives every gatekeeper target role's previous
// verifier back (a single-strategy rotation rolled back or abandoned after
// apply wrote them).
func restoreGatekeepers(ctx context.Context, cr *Credential, role string, verifier secret.String) error {
	var errs []error
	for _, t := range cr.Targets {
		gk, ok := gatekeeperOf(t)
		if !ok {
			continue
		}
		if _, err := gk.RestoreVerifier(ctx, target.RestoreVerifierRequest{Role: role, Verifier: verifier}); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", t.Name, err))
		}
	}
	return errors.Join(errs...)
}

// gatekeeperClients lists the clients gatekeeper targets hold for role,
// which the database cannot see, as sessions named after the target.
func gatekeeperClients(ctx context.Context, cr *Credential, role string) ([]provider.Session, error) {
	var out []provider.Session
	for _, t := range cr.Targets {
		gk, ok := gatekeeperOf(t)
		if !ok {
			continue
		}
		resp, err := gk.ListClients(ctx, target.ListClientsRequest{Role: role})
		if err != nil {
			return nil, fmt.Errorf("list clients of %s on target %s: %w", role, t.Name, err)
		}
		for _, c := range resp.Clients {
			out = append(out, provider.Session{Database: c.Database, ApplicationName: c.ApplicationName,
				ClientAddr: orDefault(c.ClientAddr, "?") + " via " + t.Name, State: c.State})
		}
	}
	return out, nil
}

// never is the last of a gatekeeper's records: none settles, since what
// follows a gatekeeper acts outside the store.
func never(bool) bool { return false }
