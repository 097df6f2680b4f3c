package engine

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/rotorhq/rotor/internal/store"
)

// The audit trail's events (`rotor history`). Each detail is secret-free
// JSON with snake_case names.
const (
	EventStarted    = "rotation.started"
	EventResumed    = "rotation.resumed"
	EventFailed     = "rotation.failed"
	EventRolledBack = "rotation.rolled_back"
	EventAbandoned  = "rotation.abandoned"
	EventSucceeded  = "rotation.succeeded"
	EventSwitched   = "rotation.switched"
	// Retirement of a switched rotation's old role (retire.go).
	EventRetired           = "rotation.retired"
	EventRetirementPending = "rotation.retirement_pending"
	EventOldInUse          = "rotation.old_in_use"
	// EventLeaseTakenOver: the credential's lease was held by a process
	// of this host that no longer exists, and this one took it.
	EventLeaseTakenOver = "lease.taken_over"
	// EventRetry: a write or reload of a target failed and is tried again.
	EventRetry = "delivery.retry"
	// EventRolesSetUp: `rotor setup-roles` created or repaired roles.
	EventRolesSetUp = "roles.setup"
)

// DeliveryEvent is the event recorded when a target reaches state:
// "delivery.written", "delivery.reloaded", "delivery.verified", …
func DeliveryEvent(state store.DeliveryState) string { return "delivery." + string(state) }

// Results are what `rotor history --result` filters by, each event
// counting as one of them.
var Results = []string{"requested", "started", "resumed", "retried", "failed", "succeeded", "pending", "attention", "abandoned"}

var eventResults = map[string]string{
	EventStarted:           "started",
	EventResumed:           "resumed",
	EventLeaseTakenOver:    "resumed",
	EventRetry:             "retried",
	EventFailed:            "failed",
	EventRolledBack:        "failed",
	EventSucceeded:         "succeeded",
	EventRetired:           "succeeded",
	EventRolesSetUp:        "succeeded",
	EventSwitched:          "pending",
	EventRetirementPending: "pending",
	EventOldInUse:          "attention",
	EventAbandoned:         "abandoned",
	EventRotateRequested:   "requested",
	EventRevokeRequested:   "requested",
	EventRetireRequested:   "requested",
	EventLeakMatched:       "requested",
	EventLeakUnmatched:     "attention",
}

// Events `rotor serve` records for what was asked of it, with the API
// token's name (or the webhook's) as the actor.
const (
	EventRotateRequested = "api.rotate_requested"
	EventRevokeRequested = "api.revoke_requested"
	EventRetireRequested = "api.retire_requested"
	// EventLeakMatched: a leak report matched a credential's version and a
	// revoke was queued; EventLeakUnmatched: it matched none, which a
	// person should look at (a secret leaked that rotor does not manage).
	EventLeakMatched   = "leak.matched"
	EventLeakUnmatched = "leak.unmatched"
)

func init() {
	for _, s := range []store.DeliveryState{store.DeliveryWritten, store.DeliveryReloaded, store.DeliveryVerified, store.DeliveryUnverified} {
		eventResults[DeliveryEvent(s)] = "succeeded"
	}
	for _, s := range []store.DeliveryState{store.DeliveryFailed, store.DeliveryMismatch} {
		eventResults[DeliveryEvent(s)] = "failed"
	}
}

// EventResult is the result an event counts as (one of Results); "" for
// an event this rotor does not know (written by a newer one).
func EventResult(event string) string { return eventResults[event] }

// EventsWithResult lists, sorted, the events that count as result.
func EventsWithResult(result string) []string {
	var out []string
	for ev, r := range eventResults {
		if r == result {
			out = append(out, ev)
		}
	}
	slices.Sort(out)
	return out
}

// auditResumed records that the interrupted rotation rot is being
// continued, from which step, and whether its process died: when the
// journal's last entry is not a failure, nothing recorded why the run
// stopped — it was killed, crashed or lost its machine.
func (e *Engine) auditResumed(ctx context.Context, rot *store.Rotation) {
	steps, err := e.Store.ListSteps(ctx, store.ListStepsParams{RotationID: rot.ID})
	if err != nil {
		e.Logger.Warn("could not read the journal for the audit trail", "credential", rot.Credential, "rotation", rot.ID, "error", err)
	}
	detail := map[string]any{"from_step": StepPrepare, "interrupted": true}
	if n := len(steps); n > 0 {
		last := steps[n-1]
		detail["from_step"], detail["last_status"] = last.Name, string(last.Status)
		detail["interrupted"] = last.Status != store.StepFailed
		detail["stopped_at"] = last.At.UTC().Format(time.RFC3339Nano)
		if last.Status == store.StepFailed {
			detail["error"] = last.Detail
		}
	}
	e.auditQuietly(ctx, rot.Credential, rot.ID, EventResumed, detail)
}

// auditTakeover records that the lease of credential was taken from
// holder, a process of this host that is gone.
func (e *Engine) auditTakeover(ctx context.Context, credential, holder string, err error) {
	if err == nil {
		e.auditQuietly(ctx, credential, 0, EventLeaseTakenOver, map[string]any{"from_holder": holder, "holder": e.Holder})
	}
}

// deliveryAudit is the event that records the state a target reached,
// appended with the delivery itself.
func (r *run) deliveryAudit(tr TargetResult) *store.AppendAuditParams {
	detail := map[string]any{"target": tr.Name, "type": tr.Type, "state": string(tr.State), "attempts": tr.Attempts, "changed": tr.Changed}
	if tr.Error != "" {
		detail["error"] = tr.Error
	}
	if tr.Detail != "" {
		detail["detail"] = tr.Detail
	}
	return &store.AppendAuditParams{Event: DeliveryEvent(tr.State), Actor: r.e.Holder, Detail: jsonDetail(detail)}
}

// auditRetry records that attempt of target t failed with err and is
// tried again after wait.
func (r *run) auditRetry(ctx context.Context, t *Target, attempt int, err error, wait time.Duration) {
	r.e.auditQuietly(context.WithoutCancel(ctx), r.cr.Name, r.rot.ID, EventRetry, map[string]any{
		"target": t.Name, "attempt": attempt, "error": r.scrub(err).Error(), "retry_in": wait.Round(time.Millisecond).String(),
	})
}

// auditQuietly appends an event that only informs: the state it reports
// is journaled elsewhere (steps, deliveries), so a failed append is
// logged, not a reason to stop, and the append is deferred: the next
// durable record of the run makes it durable (durableBefore).
func (e *Engine) auditQuietly(ctx context.Context, cred string, rotID int64, event string, detail map[string]any) {
	if err := e.auditAs(ctx, true, cred, rotID, event, detail); err != nil {
		e.Logger.Warn("audit event not recorded", "credential", cred, "rotation", rotID, "event", event, "error", fmt.Sprint(err))
	}
}
