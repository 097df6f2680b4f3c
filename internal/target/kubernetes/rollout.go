package kubernetes

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/rotorhq/rotor/internal/target"
)

// Waiting for a rollout. A restart patch only changes the pod template;
// the workload's controller then replaces the pods, and until it has, old
// pods keep running with the old values. Reload therefore reads each
// restarted workload every reload_poll until its rollout is complete, as
// `kubectl rollout status` judges it (kubernetes/kubectl
// pkg/polymorphichelpers/rollout_status.go), with the generation the
// patch produced as the one the controller must have observed:
//
//   - Deployment: status.observedGeneration ≥ that generation; then a
//     Progressing condition with reason ProgressDeadlineExceeded is a
//     failure (the Deployment controller's own verdict after
//     spec.progressDeadlineSeconds without progress, kubernetes.io
//     "Deployments" › "Failed Deployment"); complete once updatedReplicas
//     ≥ spec.replicas, replicas ≤ updatedReplicas (no old pod left) and
//     availableReplicas ≥ updatedReplicas.
//   - StatefulSet: observedGeneration ≥ that generation (and not 0);
//     complete once readyReplicas and updatedReplicas ≥ spec.replicas and
//     currentRevision = updateRevision, which the controller sets only when
//     every pod runs the new revision. kubectl also accepts a partitioned
//     rollout as complete; rotor refuses to restart a partitioned
//     StatefulSet at all, since the pods below the partition would keep the
//     old values.
//   - DaemonSet: observedGeneration ≥ that generation; complete once
//     updatedNumberScheduled and numberAvailable ≥ desiredNumberScheduled.
//
// As kubectl does, a spec.replicas left unset (only seen with fakes: the
// API server defaults it to 1) puts no bound on the replica counts.

// ErrRolloutFailed: the workload's controller reports that the rollout
// cannot finish (a Deployment past its progress deadline).
var ErrRolloutFailed = errors.New("rollout failed")

// rollout is what one read of a workload says about its rollout.
type rollout struct {
	// done: every pod runs the restarted template and is ready/available.
	done bool
	// progress says where the rollout is, for the Detail and for errors:
	// "2 of 3 replicas updated, 1 available".
	progress string
	// failed, when set, is why the rollout will not finish on its own.
	failed string
}

// awaitRollouts polls every restarted workload until each rollout is
// complete, one fails, or ctx ends; generations are the ones the restart
// patches produced, in t.restart's order. It returns each workload's last
// progress.
func (t *Target) awaitRollouts(ctx context.Context, api *apiClient, generations []int64) ([]string, error) {
	seen := make([]string, len(t.restart))
	lastErr := make([]error, len(t.restart))
	pending := make([]int, len(t.restart))
	for i := range pending {
		pending[i] = i
	}
	for {
		wait := t.poll
		var next []int
		for _, i := range pending {
			w := t.restart[i]
			r, err := t.readRollout(ctx, api, w, generations[i])
			if err != nil {
				if ctx.Err() != nil {
					return seen, t.rolloutTimeout(ctx, pending, seen, lastErr)
				}
				var re *target.RetryableError
				if !errors.As(err, &re) {
					return seen, err
				}
				// A busy or failing API server is no verdict on the
				// rollout: ask again at the next poll.
				lastErr[i] = err
				wait = max(wait, re.RetryAfter)
				next = append(next, i)
				continue
			}
			seen[i], lastErr[i] = r.progress, nil
			if r.failed != "" {
				return seen, t.rolloutFailure(w, r)
			}
			if !r.done {
				next = append(next, i)
			}
		}
		if pending = next; len(pending) == 0 {
			return seen, nil
		}
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return seen, t.rolloutTimeout(ctx, pending, seen, lastErr)
		case <-timer.C:
		}
	}
}

// readRollout reads w once and judges its rollout.
func (t *Target) readRollout(ctx context.Context, api *apiClient, w Workload, generation int64) (rollout, error) {
	cur, err := api.getWorkload(ctx, t.namespace, w.Kind, w.Name)
	if err != nil {
		return rollout{}, t.classify("read "+t.workloadRef(w)+" while waiting for its rollout", err, nil)
	}
	switch w.Kind {
	case KindStatefulSet:
		return statefulSetRollout(cur, generation), nil
	case KindDaemonSet:
		return daemonSetRollout(cur, generation), nil
	}
	return deploymentRollout(cur, generation), nil
}

func deploymentRollout(d *workload, generation int64) rollout {
	want := max(generation, d.Metadata.Generation)
	if d.Status.ObservedGeneration < want {
		return rollout{progress: unobserved(want, d.Status.ObservedGeneration)}
	}
	s := d.Status
	total := s.Replicas
	if d.Spec.Replicas != nil {
		total = *d.Spec.Replicas
	}
	r := rollout{progress: fmt.Sprintf("%d of %d replicas updated, %d available", s.UpdatedReplicas, total, s.AvailableReplicas)}
	if old := s.Replicas - s.UpdatedReplicas; old > 0 {
		r.progress += fmt.Sprintf(", %d old still running", old)
	}
	for _, c := range s.Conditions {
		if c.Type == conditionProgressing && c.Reason == "ProgressDeadlineExceeded" {
			r.failed = "it exceeded its progress deadline (condition Progressing: ProgressDeadlineExceeded"
			if c.Message != "" {
				r.failed += ", " + strings.TrimSuffix(c.Message, ".")
			}
			r.failed += ")"
			return r
		}
	}
	if d.Spec.Paused {
		r.failed = "it was paused during its rollout"
		return r
	}
	r.done = (d.Spec.Replicas == nil || s.UpdatedReplicas >= *d.Spec.Replicas) &&
		s.Replicas <= s.UpdatedReplicas && s.AvailableReplicas >= s.UpdatedReplicas
	return r
}

func statefulSetRollout(s *workload, generation int64) rollout {
	want := max(generation, s.Metadata.Generation)
	if s.Status.ObservedGeneration == 0 || s.Status.ObservedGeneration < want {
		return rollout{progress: unobserved(want, s.Status.ObservedGeneration)}
	}
	st := s.Status
	total := st.Replicas
	if s.Spec.Replicas != nil {
		total = *s.Spec.Replicas
	}
	r := rollout{progress: fmt.Sprintf("%d of %d replicas updated, %d ready", st.UpdatedReplicas, total, st.ReadyReplicas)}
	if st.UpdateRevision != "" {
		if st.CurrentRevision == st.UpdateRevision {
			r.progress += " at revision " + st.UpdateRevision
		} else {
			r.progress += fmt.Sprintf(", revision %s not yet current (still %s)", st.UpdateRevision, st.CurrentRevision)
		}
	}
	if p := partition(s); p > 0 {
		r.failed = fmt.Sprintf("its updateStrategy.rollingUpdate.partition became %d during the rollout, so the pods below ordinal %d keep the old value", p, p)
		return r
	}
	r.done = (s.Spec.Replicas == nil || st.ReadyReplicas >= *s.Spec.Replicas && st.UpdatedReplicas >= *s.Spec.Replicas) &&
		st.UpdateRevision == st.CurrentRevision
	return r
}

func daemonSetRollout(d *workload, generation int64) rollout {
	want := max(generation, d.Metadata.Generation)
	if d.Status.ObservedGeneration < want {
		return rollout{progress: unobserved(want, d.Status.ObservedGeneration)}
	}
	s := d.Status
	return rollout{
		progress: fmt.Sprintf("%d of %d pods updated, %d available", s.UpdatedNumberScheduled, s.DesiredNumberScheduled, s.NumberAvailable),
		done:     s.UpdatedNumberScheduled >= s.DesiredNumberScheduled && s.NumberAvailable >= s.DesiredNumberScheduled,
	}
}

func unobserved(want, observed int64) string {
	return fmt.Sprintf("the controller has not yet observed the restart (generation %d, observed %d)", want, observed)
}

// rolloutFailure is the error for a rollout its controller gave up on.
// It is not retryable: restarting again would roll out the same failing
// pods.
func (t *Target) rolloutFailure(w Workload, r rollout) error {
	ref := strings.ToLower(w.Kind) + "/" + w.Name
	return fmt.Errorf("the rollout of %s did not finish: %s; %s. Its old pods keep serving with the previous value. Look at `kubectl rollout status %s -n %s`, `kubectl describe %s -n %s` and the new pods' events and logs, fix the cause, then run `rotor resume`: %w",
		t.workloadRef(w), r.failed, r.progress, ref, t.namespace, ref, t.namespace, ErrRolloutFailed)
}

// rolloutTimeout is the error for rollouts still under way when ctx ended
// (the target's reload_timeout): what each one still lacked.
func (t *Target) rolloutTimeout(ctx context.Context, pending []int, seen []string, lastErr []error) error {
	var parts []string
	for _, i := range pending {
		w := t.restart[i]
		what := seen[i]
		switch {
		case what == "" && lastErr[i] != nil:
			what = fmt.Sprintf("not read yet (%v)", lastErr[i])
		case what == "":
			what = "not read yet"
		case lastErr[i] != nil:
			what += fmt.Sprintf(" when last read (then: %v)", lastErr[i])
		}
		parts = append(parts, t.workloadRef(w)+": "+what)
	}
	first := t.restart[pending[0]]
	ref := strings.ToLower(first.Kind) + "/" + first.Name
	return fmt.Errorf("rollout not complete when the wait ended: %s. The old pods keep serving with the previous value until it is; look at `kubectl rollout status %s -n %s`; if it only needs longer, raise reload_timeout, then run `rotor resume`: %w",
		strings.Join(parts, "; "), ref, t.namespace, ctx.Err())
}
