package kubernetes_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	clienttesting "k8s.io/client-go/testing"

	"github.com/rotorhq/rotor/internal/target"
	"github.com/rotorhq/rotor/internal/target/kubernetes"
	"github.com/rotorhq/rotor/internal/target/kubernetes/kubefake"
	"github.com/rotorhq/rotor/internal/target/targettest"
)

// controllers makes a fake clientset behave like the API server and the
// workload controllers during a rollout:
//
//   - a patch of a workload increments metadata.generation, as the API
//     server does on every change to spec (Kubernetes API conventions,
//     "metadata.generation: a sequence number representing a specific
//     generation of the desired state");
//   - from then on every GET of that workload shows the next of the
//     statuses the test gave it, the last one standing — a rollout takes
//     as many polls as it has statuses, and one whose last status is not
//     complete never finishes. A patched workload the test gave no
//     statuses shows a complete rollout at once.
//
// The statuses the tests give follow what the controllers document:
// kubernetes.io "Deployments" › "Deployment status" and "Failed
// Deployment" (a Progressing condition with reason
// ProgressDeadlineExceeded once progressDeadlineSeconds pass without
// progress), "StatefulSets" › "Rolling Updates" (pods replaced one ordinal
// at a time, currentRevision set to updateRevision when all are), and
// "Perform a Rolling Update on a DaemonSet".
type controllers struct {
	cs *fake.Clientset

	mu      sync.Mutex
	steps   map[string][]step // "deployments/web" → statuses after the patch
	gets    map[string]int    // GETs since the last patch
	patches map[string]int
	// onPoll, when set, runs after the n-th GET since the patch of key.
	onPoll func(key string, n int)
}

// step sets a workload's status as its controller has it at one point
// of a rollout.
type step func(runtime.Object)

func newControllers(cs *fake.Clientset) *controllers {
	c := &controllers{cs: cs, steps: map[string][]step{}, gets: map[string]int{}, patches: map[string]int{}}
	for _, res := range []string{"deployments", "statefulsets", "daemonsets"} {
		cs.PrependReactor("patch", res, c.onPatch)
		cs.PrependReactor("get", res, c.onGet)
	}
	return c
}

// rollout gives a workload ("deployments/web") its statuses after a patch.
func (c *controllers) rollout(key string, steps ...step) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.steps[key] = steps
}

// polls is how many times the workload was read since it was patched.
func (c *controllers) polls(key string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.gets[key]
}

func (c *controllers) onPatch(a clienttesting.Action) (bool, runtime.Object, error) {
	gvr, name := a.GetResource(), a.(clienttesting.PatchAction).GetName()
	obj, err := c.cs.Tracker().Get(gvr, a.GetNamespace(), name)
	if err != nil {
		return false, nil, nil // the default reactor answers NotFound
	}
	m, err := meta.Accessor(obj)
	if err != nil {
		return true, nil, err
	}
	m.SetGeneration(m.GetGeneration() + 1)
	if err := c.cs.Tracker().Update(gvr, obj, a.GetNamespace()); err != nil {
		return true, nil, err
	}
	c.mu.Lock()
	key := gvr.Resource + "/" + name
	c.patches[key]++
	c.gets[key] = 0
	c.mu.Unlock()
	return false, nil, nil // the default reactor applies the patch
}

func (c *controllers) onGet(a clienttesting.Action) (bool, runtime.Object, error) {
	gvr, name := a.GetResource(), a.(clienttesting.GetAction).GetName()
	key := gvr.Resource + "/" + name
	c.mu.Lock()
	if c.patches[key] == 0 {
		c.mu.Unlock()
		return false, nil, nil
	}
	steps, i := c.steps[key], c.gets[key]
	c.gets[key]++
	onPoll := c.onPoll
	c.mu.Unlock()
	if onPoll != nil {
		defer onPoll(key, i+1)
	}
	obj, err := c.cs.Tracker().Get(gvr, a.GetNamespace(), name)
	if err != nil {
		return false, nil, nil
	}
	if len(steps) == 0 {
		complete(obj)
	} else {
		steps[min(i, len(steps)-1)](obj)
	}
	if err := c.cs.Tracker().Update(gvr, obj, a.GetNamespace()); err != nil {
		return true, nil, err
	}
	return false, nil, nil
}

// complete is a finished rollout of whatever the workload is.
func complete(obj runtime.Object) {
	switch o := obj.(type) {
	case *appsv1.Deployment:
		r := replicasOf(o.Spec.Replicas)
		o.Status = appsv1.DeploymentStatus{ObservedGeneration: o.Generation, Replicas: r, UpdatedReplicas: r, ReadyReplicas: r, AvailableReplicas: r}
	case *appsv1.StatefulSet:
		r := replicasOf(o.Spec.Replicas)
		rev := fmt.Sprintf("%s-%d", o.Name, o.Generation)
		o.Status = appsv1.StatefulSetStatus{ObservedGeneration: o.Generation, Replicas: r, ReadyReplicas: r, UpdatedReplicas: r, CurrentReplicas: r, CurrentRevision: rev, UpdateRevision: rev}
	case *appsv1.DaemonSet:
		n := max(o.Status.DesiredNumberScheduled, 1)
		o.Status = appsv1.DaemonSetStatus{ObservedGeneration: o.Generation, DesiredNumberScheduled: n, CurrentNumberScheduled: n, UpdatedNumberScheduled: n, NumberReady: n, NumberAvailable: n}
	}
}

func replicasOf(r *int32) int32 {
	if r == nil {
		return 1
	}
	return *r
}

// deploymentAt is a Deployment's status during its rollout; observed
// false is the status from before the controller saw the patch.
func deploymentAt(observed bool, replicas, updated, available int32, conds ...appsv1.DeploymentCondition) step {
	return func(o runtime.Object) {
		d := o.(*appsv1.Deployment)
		d.Status = appsv1.DeploymentStatus{
			ObservedGeneration: d.Generation, Replicas: replicas, UpdatedReplicas: updated,
			ReadyReplicas: available, AvailableReplicas: available, Conditions: conds,
		}
		if !observed {
			d.Status.ObservedGeneration--
		}
	}
}

func statefulSetAt(observed bool, ready, updated int32, current, update string) step {
	return func(o runtime.Object) {
		s := o.(*appsv1.StatefulSet)
		s.Status = appsv1.StatefulSetStatus{
			ObservedGeneration: s.Generation, Replicas: replicasOf(s.Spec.Replicas), ReadyReplicas: ready,
			UpdatedReplicas: updated, CurrentRevision: current, UpdateRevision: update,
		}
		if !observed {
			s.Status.ObservedGeneration--
		}
	}
}

func daemonSetAt(observed bool, desired, updated, available int32) step {
	return func(o runtime.Object) {
		d := o.(*appsv1.DaemonSet)
		d.Status = appsv1.DaemonSetStatus{
			ObservedGeneration: d.Generation, DesiredNumberScheduled: desired, CurrentNumberScheduled: desired,
			UpdatedNumberScheduled: updated, NumberReady: available, NumberAvailable: available,
		}
		if !observed {
			d.Status.ObservedGeneration--
		}
	}
}

// deadlineExceeded is the condition the Deployment controller sets when
// a rollout makes no progress for progressDeadlineSeconds.
var deadlineExceeded = appsv1.DeploymentCondition{
	Type: appsv1.DeploymentProgressing, Status: "False", Reason: "ProgressDeadlineExceeded",
	Message: `ReplicaSet "web-7c5d9f" has timed out progressing.`,
}

// scaled sets a workload's spec.replicas.
func scaled[T interface {
	*appsv1.Deployment | *appsv1.StatefulSet
}](obj T, n int32) T {
	switch o := any(obj).(type) {
	case *appsv1.Deployment:
		o.Spec.Replicas = &n
	case *appsv1.StatefulSet:
		o.Spec.Replicas = &n
	}
	return obj
}

// TestReloadWaitsForRollouts: Reload returns only once every restarted
// workload's rollout is complete, read after read, and not on the stale
// status from before the controller saw the restart.
func TestReloadWaitsForRollouts(t *testing.T) {
	t.Parallel()
	cs := newClientset(t, nil,
		scaled(deployment("web", false), 3),
		scaled(statefulSet("worker", appsv1.RollingUpdateStatefulSetStrategyType), 2),
		daemonSet("agent", appsv1.RollingUpdateDaemonSetStrategyType))
	c := newControllers(cs)
	c.rollout("deployments/web",
		deploymentAt(false, 3, 3, 3), // the last rollout's status: complete, but stale
		deploymentAt(true, 4, 1, 3),  // one surge pod with the new template
		deploymentAt(true, 4, 2, 3),
		deploymentAt(true, 4, 3, 3), // one old pod still terminating
		deploymentAt(true, 3, 3, 2), // a new pod not available yet
		deploymentAt(true, 3, 3, 3))
	c.rollout("statefulsets/worker",
		statefulSetAt(false, 2, 2, "worker-1", "worker-1"),
		statefulSetAt(true, 1, 0, "worker-1", "worker-2"), // worker-1 (the highest ordinal) replaced first
		statefulSetAt(true, 2, 1, "worker-1", "worker-2"),
		statefulSetAt(true, 2, 2, "worker-2", "worker-2"))
	c.rollout("daemonsets/agent",
		daemonSetAt(false, 3, 3, 3),
		daemonSetAt(true, 3, 1, 2),
		daemonSetAt(true, 3, 3, 2),
		daemonSetAt(true, 3, 3, 3))
	tg := newTarget(t, cs, "restart: [{kind: Deployment, name: web}, {kind: StatefulSet, name: worker}, {kind: DaemonSet, name: agent}]").(target.Reloader)

	resp, err := tg.Reload(t.Context(), target.ReloadRequest{RotationID: "7"})
	require.NoError(t, err)
	require.Equal(t, "restarted Deployment/web, StatefulSet/worker, DaemonSet/agent; rollouts complete after 0s: "+
		"Deployment/web 3 of 3 replicas updated, 3 available; "+
		"StatefulSet/worker 2 of 2 replicas updated, 2 ready at revision worker-2; "+
		"DaemonSet/agent 3 of 3 pods updated, 3 available", resp.Detail)
	require.Equal(t, 6, c.polls("deployments/web"), "read until the sixth status, the first complete one")
	require.Equal(t, 4, c.polls("statefulsets/worker"))
	require.Equal(t, 4, c.polls("daemonsets/agent"))
}

// TestReloadRolloutFails: a rollout that its controller gives up on, or
// that can no longer finish, fails the reload at once, naming the
// workload, what was seen and what to do; it is not retryable.
func TestReloadRolloutFails(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		obj     runtime.Object
		opts    string
		key     string
		steps   []step
		wantIs  error
		wantErr []string
	}{
		{
			name: "progress deadline exceeded",
			obj:  scaled(deployment("web", false), 3),
			opts: "restart: [{kind: Deployment, name: web}]",
			key:  "deployments/web",
			steps: []step{
				deploymentAt(false, 3, 3, 3),
				deploymentAt(true, 4, 1, 3),
				deploymentAt(true, 4, 1, 3, deadlineExceeded),
			},
			wantIs: kubernetes.ErrRolloutFailed,
			wantErr: []string{
				`kubernetes target "k8s": restarted Deployment/web, then: the rollout of deployment shop/web did not finish: ` +
					`it exceeded its progress deadline (condition Progressing: ProgressDeadlineExceeded, ReplicaSet "web-7c5d9f" has timed out progressing); ` +
					"1 of 3 replicas updated, 3 available, 3 old still running",
				"kubectl rollout status deployment/web -n shop", "rotor resume",
			},
		},
		{
			name: "paused during the rollout",
			obj:  scaled(deployment("web", false), 2),
			opts: "restart: [{kind: Deployment, name: web}]",
			key:  "deployments/web",
			steps: []step{
				deploymentAt(true, 3, 1, 2),
				func(o runtime.Object) { deploymentAt(true, 3, 1, 2)(o); o.(*appsv1.Deployment).Spec.Paused = true },
			},
			wantIs:  kubernetes.ErrRolloutFailed,
			wantErr: []string{"deployment shop/web did not finish: it was paused during its rollout; 1 of 2 replicas updated, 2 available"},
		},
		{
			name: "partition set during the rollout",
			obj:  scaled(statefulSet("worker", appsv1.RollingUpdateStatefulSetStrategyType), 3),
			opts: "restart: [{kind: StatefulSet, name: worker}]",
			key:  "statefulsets/worker",
			steps: []step{func(o runtime.Object) {
				statefulSetAt(true, 3, 1, "worker-1", "worker-2")(o)
				p := int32(2)
				o.(*appsv1.StatefulSet).Spec.UpdateStrategy.RollingUpdate = &appsv1.RollingUpdateStatefulSetStrategy{Partition: &p}
			}},
			wantIs:  kubernetes.ErrRolloutFailed,
			wantErr: []string{"partition became 2 during the rollout, so the pods below ordinal 2 keep the old value"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cs := newClientset(t, nil, tt.obj)
			c := newControllers(cs)
			c.rollout(tt.key, tt.steps...)
			tg := newTarget(t, cs, tt.opts).(target.Reloader)
			_, err := tg.Reload(t.Context(), target.ReloadRequest{RotationID: "7"})
			require.ErrorIs(t, err, tt.wantIs)
			for _, w := range tt.wantErr {
				require.ErrorContains(t, err, w)
			}
			var re *target.RetryableError
			require.NotErrorAs(t, err, &re, "restarting again would roll out the same failing pods")
			require.Equal(t, len(tt.steps), c.polls(tt.key), "the failure is reported at the first status that shows it")
		})
	}
}

// TestReloadDeletedDuringRollout: a workload that disappears while Reload
// waits for it is reported as not found, not waited for until the
// deadline.
func TestReloadDeletedDuringRollout(t *testing.T) {
	t.Parallel()
	cs := newClientset(t, nil, scaled(deployment("web", false), 2))
	c := newControllers(cs)
	c.rollout("deployments/web", deploymentAt(true, 3, 1, 2), func(runtime.Object) {
		require.NoError(t, cs.Tracker().Delete(appsv1.SchemeGroupVersion.WithResource("deployments"), ns, "web"))
	})
	tg := newTarget(t, cs, "restart: [{kind: Deployment, name: web}]").(target.Reloader)
	_, err := tg.Reload(t.Context(), target.ReloadRequest{RotationID: "7"})
	require.ErrorIs(t, err, target.ErrNotFound)
	require.ErrorContains(t, err, "read deployment shop/web while waiting for its rollout: not found")
}

// TestReloadRolloutTimesOut: when ctx ends (the engine's reload_timeout)
// with a rollout still under way, the error wraps ctx.Err() and says, per
// workload, what was still missing. Called again for the same rotation
// (a resume), Reload does not restart anything again: it waits for the
// rollouts it started.
func TestReloadRolloutTimesOut(t *testing.T) {
	t.Parallel()
	cs := newClientset(t, nil, scaled(deployment("web", false), 3), daemonSet("agent", appsv1.RollingUpdateDaemonSetStrategyType))
	c := newControllers(cs)
	stuck := []step{deploymentAt(false, 3, 3, 3), deploymentAt(true, 4, 1, 3), deploymentAt(true, 4, 2, 1)}
	c.rollout("deployments/web", stuck...)
	// The time runs out once the rollout has shown its stuck status twice.
	ctx := targettest.NewDeadline(t.Context())
	c.onPoll = func(key string, n int) {
		if key == "deployments/web" && n == len(stuck)+1 {
			ctx.Pass()
		}
	}
	tg := newTarget(t, cs, "restart: [{kind: Deployment, name: web}, {kind: DaemonSet, name: agent}]").(target.Reloader)

	_, err := tg.Reload(ctx, target.ReloadRequest{RotationID: "7"})
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.ErrorContains(t, err, `kubernetes target "k8s": restarted Deployment/web, DaemonSet/agent, then: rollout not complete when the wait ended: deployment shop/web: 2 of 3 replicas updated, 1 available, 2 old still running.`)
	require.NotContains(t, err.Error(), "daemonset shop/agent:", "the DaemonSet's rollout completed; only what is missing is listed")
	require.ErrorContains(t, err, "raise reload_timeout")
	var re *target.RetryableError
	require.NotErrorAs(t, err, &re, "reload_timeout bounds the reload; the engine does not start it over")
	require.Equal(t, len(stuck)+1, c.polls("deployments/web"))

	// The rollout finishes later; a second Reload waits for it without a
	// second restart.
	c.mu.Lock()
	c.onPoll = nil
	c.mu.Unlock()
	c.rollout("deployments/web", append(stuck, deploymentAt(true, 3, 3, 3))...)
	resp, err := tg.Reload(t.Context(), target.ReloadRequest{RotationID: "7"})
	require.NoError(t, err)
	require.Contains(t, resp.Detail, "Deployment/web 3 of 3 replicas updated, 3 available")
	patches := map[string]int{}
	for _, a := range cs.Actions() {
		if a.GetVerb() == "patch" {
			patches[a.GetResource().Resource]++
		}
	}
	require.Equal(t, map[string]int{"deployments": 1, "daemonsets": 1}, patches, "nothing is restarted twice")
}

// TestReloadPollSurvivesAPIErrors: a 429 or 5xx while polling is no
// verdict on the rollout: the next poll asks again.
func TestReloadPollSurvivesAPIErrors(t *testing.T) {
	t.Parallel()
	cs := newClientset(t, nil, scaled(deployment("web", false), 2))
	c := newControllers(cs)
	c.rollout("deployments/web", deploymentAt(true, 3, 1, 2), deploymentAt(true, 2, 2, 2))
	var mu sync.Mutex
	gets := 0
	// Prepended after the controllers, so it answers first: the second
	// and third reads after the patch fail.
	cs.PrependReactor("get", "deployments", func(clienttesting.Action) (bool, runtime.Object, error) {
		mu.Lock()
		defer mu.Unlock()
		gets++
		switch gets {
		case 3:
			return true, nil, apierrors.NewInternalError(errors.New("etcdserver: leader changed"))
		case 4:
			return true, nil, apierrors.NewTooManyRequests("the server has received too many requests", 0)
		}
		return false, nil, nil
	})
	tg := newTarget(t, cs, "restart: [{kind: Deployment, name: web}]").(target.Reloader)
	resp, err := tg.Reload(t.Context(), target.ReloadRequest{RotationID: "7"})
	require.NoError(t, err)
	require.Contains(t, resp.Detail, "Deployment/web 2 of 2 replicas updated, 2 available")
	require.Equal(t, 2, c.polls("deployments/web"))
	mu.Lock()
	defer mu.Unlock()
	require.Equal(t, 5, gets, "the read before the patch, one poll, two failed ones, the last poll")
}

// TestReloadTimeoutNamesPollErrors: when every poll fails until the
// deadline, the error says so instead of inventing a state.
func TestReloadTimeoutNamesPollErrors(t *testing.T) {
	t.Parallel()
	cs := newClientset(t, nil, scaled(deployment("web", false), 2))
	newControllers(cs)
	ctx := targettest.NewDeadline(t.Context())
	patched, failed := false, 0
	cs.PrependReactor("*", "deployments", func(a clienttesting.Action) (bool, runtime.Object, error) {
		if a.GetVerb() == "patch" {
			patched = true
		}
		if a.GetVerb() == "get" && patched {
			if failed++; failed == 3 {
				ctx.Pass()
			}
			return true, nil, apierrors.NewServiceUnavailable("the server is currently unable to handle the request")
		}
		return false, nil, nil
	})
	tg := newTarget(t, cs, "restart: [{kind: Deployment, name: web}]").(target.Reloader)
	_, err := tg.Reload(ctx, target.ReloadRequest{RotationID: "7"})
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.ErrorContains(t, err, "deployment shop/web: not read yet (read deployment shop/web while waiting for its rollout: the API server is busy or failing")
}

func TestReloadPollOption(t *testing.T) {
	t.Parallel()
	_, err := kubefake.NewTarget(t, target.Params{Name: "k8s", Decode: targettest.DecodeYAML("{namespace: shop, secret_name: app-env, reload_poll: soon}")}, fake.NewClientset())
	require.ErrorIs(t, err, target.ErrInvalid)
	require.ErrorContains(t, err, `reload_poll "soon" is not a positive duration`)
	_, err = kubefake.NewTarget(t, target.Params{Name: "k8s", Decode: targettest.DecodeYAML("{namespace: shop, secret_name: app-env, reload_poll: 0s}")}, fake.NewClientset())
	require.ErrorIs(t, err, target.ErrInvalid)
}
