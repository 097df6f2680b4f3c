package neonfake

import (
	"context"
	"fmt"
	"net/http"
	"time"
)

// Operation stages, in the order an operation goes through them.
const (
	stageScheduling = iota
	stageRunning
	stageFinished
	stageFailed
	stageCancelled
)

var stageNames = map[int]string{
	stageScheduling: "scheduling", stageRunning: "running", stageFinished: "finished",
	stageFailed: "failed", stageCancelled: "cancelled",
}

type operation struct {
	id, branchID, endpointID, action string
	stage, age                       int
	createdAt, updatedAt             time.Time
	err                              string
	// fail, when set, is the error the operation ends with instead of
	// finishing.
	fail string
	// after is the operation that must finish before this one moves.
	after *operation
	// notBefore is when, on Config.Now's clock, the operation may finish
	// at the earliest (Config.OpDuration, Busy).
	notBefore time.Time
	// effect runs when the operation finishes; an error fails it.
	effect func(context.Context) error
	// group is every operation of the same request, for cancelling the
	// rest when one fails.
	group []*operation
}

func (o *operation) done() bool { return o.stage >= stageFinished }

// startOps records the two operations a role change starts, as in the
// spec's examples: apply_config (running) and suspend_compute
// (scheduling, after it). effect runs when the last one finishes. s.mu is
// held.
func (s *Server) startOps(b *Branch, effect func(context.Context) error) []map[string]any {
	started := s.cfg.Now()
	now := started.UTC().Truncate(time.Second)
	var notBefore time.Time
	if s.cfg.OpDuration > 0 {
		notBefore = started.Add(s.cfg.OpDuration)
	}
	apply := &operation{id: newUUID(), branchID: b.ID, endpointID: b.EndpointID, action: "apply_config", stage: stageRunning, createdAt: now, updatedAt: now, notBefore: notBefore}
	suspend := &operation{id: newUUID(), branchID: b.ID, endpointID: b.EndpointID, action: "suspend_compute", stage: stageScheduling, createdAt: now, updatedAt: now, after: apply, effect: effect, notBefore: notBefore}
	if len(s.failOps) > 0 {
		apply.fail, s.failOps = s.failOps[0], s.failOps[1:]
	}
	group := []*operation{apply, suspend}
	for _, op := range group {
		op.group = group
		s.ops[op.id] = op
		s.opOrder = append(s.opOrder, op)
	}
	return []map[string]any{s.opJSON(apply), s.opJSON(suspend)}
}

// advance moves every unfinished operation one request further. s.mu is
// held.
func (s *Server) advance(ctx context.Context) {
	clock := s.cfg.Now()
	now := clock.UTC().Truncate(time.Second)
	for _, op := range s.opOrder {
		if op.done() || (op.after != nil && !op.after.done()) {
			continue
		}
		if op.stage == stageRunning && clock.Before(op.notBefore) {
			continue
		}
		if op.age++; op.age < s.cfg.OpTicks {
			continue
		}
		op.age, op.updatedAt = 0, now
		switch {
		case op.stage == stageScheduling:
			op.stage = stageRunning
		case op.fail != "":
			op.stage, op.err = stageFailed, op.fail
			for _, other := range op.group {
				if !other.done() {
					other.stage, other.updatedAt = stageCancelled, now
				}
			}
		default:
			op.stage = stageFinished
			if op.effect != nil {
				if err := op.effect(ctx); err != nil {
					op.stage, op.err = stageFailed, err.Error()
				}
			}
		}
	}
}

func (s *Server) opJSON(op *operation) map[string]any {
	j := map[string]any{
		"id": op.id, "project_id": s.cfg.ProjectID, "branch_id": op.branchID, "endpoint_id": op.endpointID,
		"action": op.action, "status": stageNames[op.stage], "failures_count": 0,
		"created_at": stamp(op.createdAt), "updated_at": stamp(op.updatedAt),
		"total_duration_ms": int(op.updatedAt.Sub(op.createdAt) / time.Millisecond),
	}
	if op.err != "" {
		j["error"] = op.err
		j["failures_count"] = 1
	}
	return j
}

func (s *Server) getOperation(w *recorder, opID, id string) {
	op := s.ops[opID]
	if op == nil {
		s.fail(w, id, http.StatusNotFound, "", "operation not found", 0)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"operation": s.opJSON(op)})
}

// Busy starts an operation on a branch that is none of the caller's, as a
// change made in the Console or by another client would, and keeps it
// running for d on Config.Now's clock: until it finishes, every mutation
// of the branch answers 423 Locked (neon-api.md §1 "Errors, 423, rate
// limits"). It returns the operation's id.
func (s *Server) Busy(branch string, d time.Duration) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.branch(branch)
	if b == nil {
		return "", fmt.Errorf("neonfake: no branch %q", branch)
	}
	started := s.cfg.Now()
	now := started.UTC().Truncate(time.Second)
	op := &operation{id: newUUID(), branchID: b.ID, endpointID: b.EndpointID, action: "apply_config", stage: stageRunning,
		createdAt: now, updatedAt: now, notBefore: started.Add(d)}
	op.group = []*operation{op}
	s.ops[op.id] = op
	s.opOrder = append(s.opOrder, op)
	return op.id, nil
}

// OperationStatuses returns the current status of every operation, oldest
// first.
func (s *Server) OperationStatuses() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, len(s.opOrder))
	for i, op := range s.opOrder {
		out[i] = op.action + ":" + stageNames[op.stage]
	}
	return out
}

func newUUID() string {
	b := []byte(randomString("0123456789abcdef", 32))
	b[12] = '4'
	b[16] = "89ab"[int(b[16])%4]
	h := string(b)
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}
