// Package kubernetes is the Kubernetes Secret target: it keeps some keys of
// one Secret up to date with server-side apply and restarts the workloads
// that read them (targets-api.md §9).
//
// Put applies `data` (never stringData, which does not work well with
// server-side apply) as field manager "rotor", forced, so rotor owns
// exactly the keys it applied. Server-side apply drops a key from the
// object when its manager stops applying it; so that one credential's
// rotation never removes the key another credential put in the same Secret,
// every apply also carries the keys rotor already owns, with their current
// values, and is pinned to the resourceVersion it read: a concurrent change
// makes the apply fail with a conflict, and Put reads again.
//
// Reload is `kubectl rollout restart`: the pod template's
// kubectl.kubernetes.io/restartedAt annotation is set by a strategic-merge
// patch, which is what makes env and envFrom consumers see new values
// (mounted files update on their own, except with subPath). It returns
// once every restarted workload's rollout is complete, as `kubectl rollout
// status` judges it (rollout.go): until then old pods still connect with
// the old value.
package kubernetes

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/rotorhq/rotor/internal/secret"
	"github.com/rotorhq/rotor/internal/target"
)

// Type is the registry name of this target.
const Type = "kubernetes"

// FieldManager is the server-side apply field manager rotor writes as.
const FieldManager = "rotor"

// RestartedAtAnnotation is the pod-template annotation kubectl's rollout
// restart sets.
const RestartedAtAnnotation = "kubectl.kubernetes.io/restartedAt"

// Workload kinds Reload can restart.
const (
	KindDeployment  = "Deployment"
	KindStatefulSet = "StatefulSet"
	KindDaemonSet   = "DaemonSet"
)

// conflictAttempts bounds how often Put re-reads after a concurrent change.
const conflictAttempts = 5

// Options are the target's own config keys.
type Options struct {
	// Namespace holds the Secret and the workloads.
	Namespace string `yaml:"namespace"`
	// SecretName is the Secret's name.
	SecretName string `yaml:"secret_name"`
	// Kubeconfig is a kubeconfig file; relative paths are resolved against
	// the config file's directory. Default: the in-cluster service account
	// when running in a pod, else $KUBECONFIG, else ~/.kube/config.
	Kubeconfig string `yaml:"kubeconfig"`
	// Context is the kubeconfig context; default its current-context.
	Context string `yaml:"context"`
	// Restart lists the workloads Reload restarts.
	Restart []Workload `yaml:"restart"`
	// ReloadPoll is how often Reload reads each restarted workload while
	// it waits for the rollout to complete, e.g. "5s". Default 2s.
	ReloadPoll string `yaml:"reload_poll"`
}

// DefaultReloadPoll is how often Reload reads a rolling workload by
// default: a GET every 2s per workload is light work for the API server
// (and far from API Priority and Fairness' limits), and pods take seconds
// to become ready, so a finer poll would hardly end the reload sooner.
const DefaultReloadPoll = 2 * time.Second

// Workload is one workload to restart.
type Workload struct {
	Kind string `yaml:"kind"`
	Name string `yaml:"name"`
}

func (w Workload) String() string { return w.Kind + "/" + w.Name }

// Target keeps values in one Secret.
type Target struct {
	name       string
	namespace  string
	secretName string
	kubeconfig string
	context    string
	restart    []Workload
	getenv     func(string) string
	now        func() time.Time

	poll time.Duration

	mu sync.Mutex
	// cfg, when set, is the connection to use instead of the kubeconfig
	// (NewWithConfig).
	cfg *rest.Config
	api *apiClient
	// restarted holds, per rotation id + workload, the generation the
	// restart patch gave the workload: restarted already, in this process.
	restarted map[string]int64
}

// New builds a Kubernetes target from its options. It does no I/O: the
// kubeconfig is read on first use.
func New(p target.Params) (target.Target, error) {
	t, err := newTarget(p, nil)
	if err != nil {
		return nil, err
	}
	return t, nil
}

func newTarget(p target.Params, cfg *rest.Config) (*Target, error) {
	var opts Options
	if err := p.DecodeOptions(Type, &opts); err != nil {
		return nil, err
	}
	desc := p.Describe(Type)
	if opts.Namespace == "" {
		return nil, fmt.Errorf("%s has no namespace; add namespace: <the Secret's namespace>: %w", desc, target.ErrInvalid)
	}
	if errs := validation.IsDNS1123Label(opts.Namespace); len(errs) > 0 {
		return nil, fmt.Errorf("%s: namespace %q is not a valid namespace name (%s): %w", desc, opts.Namespace, strings.Join(errs, "; "), target.ErrInvalid)
	}
	if opts.SecretName == "" {
		return nil, fmt.Errorf("%s has no secret_name; add secret_name: <the Secret's name>: %w", desc, target.ErrInvalid)
	}
	if errs := validation.IsDNS1123Subdomain(opts.SecretName); len(errs) > 0 {
		return nil, fmt.Errorf("%s: secret_name %q is not a valid object name (%s): %w", desc, opts.SecretName, strings.Join(errs, "; "), target.ErrInvalid)
	}
	seen := map[Workload]bool{}
	for i, w := range opts.Restart {
		switch w.Kind {
		case KindDeployment, KindStatefulSet, KindDaemonSet:
		default:
			return nil, fmt.Errorf("%s: restart[%d] has kind %q; use one of Deployment, StatefulSet, DaemonSet (spelled so): %w", desc, i, w.Kind, target.ErrInvalid)
		}
		if errs := validation.IsDNS1123Subdomain(w.Name); len(errs) > 0 {
			return nil, fmt.Errorf("%s: restart[%d] name %q is not a valid object name (%s): %w", desc, i, w.Name, strings.Join(errs, "; "), target.ErrInvalid)
		}
		if seen[w] {
			return nil, fmt.Errorf("%s: restart lists %s twice; keep one: %w", desc, w, target.ErrInvalid)
		}
		seen[w] = true
	}
	poll := DefaultReloadPoll
	if opts.ReloadPoll != "" {
		d, err := time.ParseDuration(opts.ReloadPoll)
		if err != nil || d <= 0 {
			return nil, fmt.Errorf("%s: reload_poll %q is not a positive duration like 2s or 10s: %w", desc, opts.ReloadPoll, target.ErrInvalid)
		}
		poll = d
	}
	getenv := p.Env()
	kubeconfig := opts.Kubeconfig
	if rest, ok := strings.CutPrefix(kubeconfig, "~/"); ok {
		home := getenv("HOME")
		if home == "" {
			return nil, fmt.Errorf("%s: kubeconfig %s starts with ~/ but HOME is not set; write the full path: %w", desc, kubeconfig, target.ErrInvalid)
		}
		kubeconfig = filepath.Join(home, rest)
	}
	if kubeconfig != "" {
		var err error
		if kubeconfig, err = p.ResolvePath(kubeconfig); err != nil {
			return nil, fmt.Errorf("%s: kubeconfig %w", desc, err)
		}
	}
	now := p.Clock()
	return &Target{
		name: p.Name, namespace: opts.Namespace, secretName: opts.SecretName,
		kubeconfig: kubeconfig, context: opts.Context, restart: opts.Restart,
		getenv: getenv, now: now, poll: poll, cfg: cfg, restarted: map[string]int64{},
	}, nil
}

// Info implements target.Target.
func (t *Target) Info() target.Info {
	dest := fmt.Sprintf("kubernetes secret %s/%s", t.namespace, t.secretName)
	if t.context != "" {
		dest += " (context " + t.context + ")"
	}
	return target.Info{Type: Type, Name: t.name, Destination: dest, Idempotent: true}
}

// CheckKeys implements target.KeyChecker: Secret data keys.
func (t *Target) CheckKeys(keys []string) error {
	for _, k := range keys {
		if errs := validation.IsConfigMapKey(k); len(errs) > 0 {
			return fmt.Errorf("%q cannot be a Secret key (%s); rename it in values: %w", k, strings.Join(errs, "; "), target.ErrInvalid)
		}
	}
	return nil
}

// Put implements target.Target: it applies the managed keys and reports
// Changed=false without writing when the Secret already holds them.
func (t *Target) Put(ctx context.Context, req target.PutRequest) (target.PutResponse, error) {
	if err := t.CheckKeys(slices.Sorted(maps.Keys(req.Values))); err != nil {
		return target.PutResponse{}, fmt.Errorf("kubernetes target %q: %w", t.name, err)
	}
	api, err := t.client()
	if err != nil {
		return target.PutResponse{}, err
	}
	secrets := slices.Collect(maps.Values(req.Values))
	for range conflictAttempts {
		cur, err := api.getSecret(ctx, t.namespace, t.secretName)
		exists := err == nil
		if err != nil && !apierrors.IsNotFound(err) {
			return target.PutResponse{}, t.fail("get secret "+t.secretRef(), err, secrets)
		}
		data := map[string][]byte{}
		if exists {
			if holds(cur.Data, req.Values) {
				return target.PutResponse{Changed: false, Ref: "resourceVersion " + cur.Metadata.ResourceVersion}, nil
			}
			for _, k := range ownedKeys(cur.Metadata.ManagedFields) {
				if v, ok := cur.Data[k]; ok {
					data[k] = v
				}
			}
		}
		for k, v := range req.Values {
			data[k] = []byte(v.Reveal())
		}
		apply := &secretObject{Metadata: objectMeta{Name: t.secretName, Namespace: t.namespace}, Data: data}
		if exists {
			// Pinned: a concurrent change makes the apply a conflict.
			apply.Metadata.ResourceVersion = cur.Metadata.ResourceVersion
		}
		out, err := api.applySecret(ctx, apply, FieldManager)
		if apierrors.IsConflict(err) {
			continue
		}
		if err != nil {
			return target.PutResponse{}, t.fail("apply secret "+t.secretRef(), err, secrets)
		}
		return target.PutResponse{Changed: true, Ref: "resourceVersion " + out.Metadata.ResourceVersion}, nil
	}
	return target.PutResponse{}, &target.RetryableError{Err: fmt.Errorf(
		"kubernetes target %q: secret %s/%s changed during each of %d attempts to apply; something else keeps writing it (nothing was lost; the write can be retried): %w",
		t.name, t.namespace, t.secretName, conflictAttempts, target.ErrInvalid)}
}

// Check implements target.Checker. A missing Secret holds no keys.
func (t *Target) Check(ctx context.Context, req target.CheckRequest) (target.CheckResponse, error) {
	api, err := t.client()
	if err != nil {
		return target.CheckResponse{}, err
	}
	resp := target.CheckResponse{Values: map[string]secret.String{}}
	cur, err := api.getSecret(ctx, t.namespace, t.secretName)
	switch {
	case apierrors.IsNotFound(err):
		resp.Notes = append(resp.Notes, fmt.Sprintf("secret %s/%s does not exist", t.namespace, t.secretName))
		return resp, nil
	case err != nil:
		return target.CheckResponse{}, t.fail("get secret "+t.secretRef(), err, nil)
	}
	for _, k := range req.Keys {
		if v, ok := cur.Data[k]; ok {
			resp.Values[k] = secret.New(string(v))
		}
	}
	return resp, nil
}

// Reload implements target.Reloader: a rollout restart of each listed
// workload, then a wait until every one of those rollouts is complete
// (rollout.go). Workloads already restarted for this rotation in this
// process are not restarted again when Reload is called again (an engine
// retry after a partial failure, a resume): their rollouts are waited for.
func (t *Target) Reload(ctx context.Context, req target.ReloadRequest) (target.ReloadResponse, error) {
	if len(t.restart) == 0 {
		return target.ReloadResponse{Detail: "no workloads to restart"}, nil
	}
	api, err := t.client()
	if err != nil {
		return target.ReloadResponse{}, err
	}
	patch, err := json.Marshal(map[string]any{"spec": map[string]any{"template": map[string]any{"metadata": map[string]any{
		"annotations": map[string]string{RestartedAtAnnotation: t.now().Format(time.RFC3339)},
	}}}})
	if err != nil {
		return target.ReloadResponse{}, fmt.Errorf("kubernetes target %q: encode the restart patch: %w", t.name, err)
	}
	start := t.now()
	var done []string
	generations := make([]int64, len(t.restart))
	for i, w := range t.restart {
		key := req.RotationID + "\x00" + w.String()
		t.mu.Lock()
		gen, already := t.restarted[key]
		t.mu.Unlock()
		if !already {
			if gen, err = t.restartOne(ctx, api, w, patch); err != nil {
				if len(done) > 0 {
					return target.ReloadResponse{}, fmt.Errorf("kubernetes target %q: restarted %s, then: %w", t.name, strings.Join(done, ", "), err)
				}
				return target.ReloadResponse{}, fmt.Errorf("kubernetes target %q: %w", t.name, err)
			}
			t.mu.Lock()
			t.restarted[key] = gen
			t.mu.Unlock()
		}
		generations[i] = gen
		done = append(done, w.String())
	}
	seen, err := t.awaitRollouts(ctx, api, generations)
	if err != nil {
		return target.ReloadResponse{}, fmt.Errorf("kubernetes target %q: restarted %s, then: %w", t.name, strings.Join(done, ", "), err)
	}
	parts := make([]string, len(t.restart))
	for i, w := range t.restart {
		parts[i] = w.String() + " " + seen[i]
	}
	return target.ReloadResponse{Detail: fmt.Sprintf("restarted %s; rollouts complete after %s: %s",
		strings.Join(done, ", "), t.now().Sub(start).Round(time.Second), strings.Join(parts, "; "))}, nil
}

// restartOne patches w's pod template as kubectl's rollout restart does
// and returns the generation the patch gave it, which the workload's
// controller must observe before its status says anything about the
// restart.
func (t *Target) restartOne(ctx context.Context, api *apiClient, w Workload, patch []byte) (int64, error) {
	cur, err := api.getWorkload(ctx, t.namespace, w.Kind, w.Name)
	if err == nil {
		if err := t.refusal(w, cur); err != nil {
			return 0, err
		}
		cur, err = api.patchWorkload(ctx, t.namespace, w.Kind, w.Name, patch, FieldManager)
	}
	if err != nil {
		return 0, t.classify("restart "+t.workloadRef(w), err, nil)
	}
	return cur.Metadata.Generation, nil
}

// refusal refuses to restart a workload a rollout restart would not move
// entirely to the new values: a paused Deployment (kubectl refuses it
// too), a StatefulSet or DaemonSet that updates OnDelete, a partitioned
// StatefulSet.
func (t *Target) refusal(w Workload, cur *workload) error {
	switch w.Kind {
	case KindDeployment:
		if cur.Spec.Paused {
			return fmt.Errorf("cannot restart paused deployment %s/%s (as kubectl refuses to); run `kubectl rollout resume deployment/%s -n %s` first: %w",
				t.namespace, w.Name, w.Name, t.namespace, target.ErrInvalid)
		}
	case KindStatefulSet:
		return t.statefulSetRefusal(w, cur)
	case KindDaemonSet:
		if cur.Spec.UpdateStrategy.Type == onDeleteStrategy {
			return t.onDelete(w)
		}
	}
	return nil
}

// statefulSetRefusal refuses a restart that would leave some of s's pods
// on the old values: OnDelete replaces none, a partition only those at or
// above its ordinal.
func (t *Target) statefulSetRefusal(w Workload, s *workload) error {
	if s.Spec.UpdateStrategy.Type == onDeleteStrategy {
		return t.onDelete(w)
	}
	if p := partition(s); p > 0 {
		return fmt.Errorf("%s has updateStrategy.rollingUpdate.partition %d, so a rollout restart would replace only the pods with ordinal %d and up and leave the others on the old value; set the partition to 0, or restart those pods by hand and leave it out of restart: %w",
			t.workloadRef(w), p, p, target.ErrInvalid)
	}
	return nil
}

func partition(s *workload) int32 {
	if ru := s.Spec.UpdateStrategy.RollingUpdate; ru != nil && ru.Partition != nil {
		return *ru.Partition
	}
	return 0
}

// onDelete refuses a restart that would change the template but restart
// no pod, leaving them on the old value without a word.
func (t *Target) onDelete(w Workload) error {
	return fmt.Errorf("%s uses updateStrategy OnDelete, so a rollout restart would not restart its pods; delete them by hand or switch it to RollingUpdate: %w",
		t.workloadRef(w), target.ErrInvalid)
}

// Validate implements target.Validator: the Secret can be read, the
// caller may apply it (SelfSubjectAccessReview) and every workload to
// restart exists, may be patched, and is one Reload would restart (not a
// paused Deployment, no OnDelete strategy, no StatefulSet partition). It
// writes nothing.
func (t *Target) Validate(ctx context.Context, _ target.ValidateRequest) (target.ValidateResponse, error) {
	api, err := t.client()
	if err != nil {
		return target.ValidateResponse{}, err
	}
	var resp target.ValidateResponse
	verbs := []string{"get", "patch"}
	_, err = api.getSecret(ctx, t.namespace, t.secretName)
	switch {
	case apierrors.IsNotFound(err):
		resp.Notes = append(resp.Notes, fmt.Sprintf("secret %s/%s does not exist yet; the first rotation creates it", t.namespace, t.secretName))
		verbs = append(verbs, "create")
	case err != nil:
		return resp, t.fail("get secret "+t.secretRef(), err, nil)
	}
	var missing []string
	check := func(group, resource, name, verb string) error {
		allowed, err := t.allowed(ctx, api, group, resource, name, verb)
		if err != nil {
			return err
		}
		if !allowed {
			missing = append(missing, fmt.Sprintf("%s %s/%s", verb, qualified(group, resource), name))
		}
		return nil
	}
	for _, v := range verbs {
		if err := check("", "secrets", t.secretName, v); err != nil {
			resp.Notes = append(resp.Notes, "could not ask the API server what rotor may do (SelfSubjectAccessReview); the first rotation will tell")
			break
		}
	}
	for _, w := range t.restart {
		cur, err := api.getWorkload(ctx, t.namespace, w.Kind, w.Name)
		if err != nil {
			return resp, t.fail("get "+t.workloadRef(w), err, nil)
		}
		if err := t.refusal(w, cur); err != nil {
			if w.Kind == KindDeployment {
				return resp, fmt.Errorf("kubernetes target %q: deployment %s/%s is paused, so Reload would refuse to restart it; run `kubectl rollout resume deployment/%s -n %s`: %w",
					t.name, t.namespace, w.Name, w.Name, t.namespace, target.ErrInvalid)
			}
			return resp, fmt.Errorf("kubernetes target %q: Reload would refuse to restart it: %w", t.name, err)
		}
		_ = check("apps", resourceOf(w.Kind), w.Name, "patch")
	}
	if len(missing) > 0 {
		return resp, fmt.Errorf("kubernetes target %q: RBAC does not allow %s in namespace %s; grant them with the Role in docs/targets/kubernetes.md: %w",
			t.name, strings.Join(missing, ", "), t.namespace, target.ErrAuth)
	}
	return resp, nil
}

func (t *Target) allowed(ctx context.Context, api *apiClient, group, resource, name, verb string) (bool, error) {
	return api.accessAllowed(ctx, resourceAttributes{Namespace: t.namespace, Verb: verb, Group: group, Resource: resource, Name: name})
}

// holds reports whether data already has every value.
func holds(data map[string][]byte, values map[string]secret.String) bool {
	for k, v := range values {
		cur, ok := data[k]
		if !ok || !secret.New(string(cur)).Equal(v) {
			return false
		}
	}
	return true
}

// ownedKeys lists the data keys rotor's field manager applied before.
func ownedKeys(mfs []managedFieldsEntry) []string {
	var keys []string
	for _, mf := range mfs {
		if mf.Manager != FieldManager || mf.Operation != "Apply" || len(mf.FieldsV1) == 0 {
			continue
		}
		var fields struct {
			Data map[string]json.RawMessage `json:"f:data"`
		}
		if json.Unmarshal(mf.FieldsV1, &fields) != nil {
			continue
		}
		for f := range fields.Data {
			if k, ok := strings.CutPrefix(f, "f:"); ok {
				keys = append(keys, k)
			}
		}
	}
	return keys
}

// client connects on first use, the way kubectl would: in a pod, its
// service account (unless a kubeconfig or context is configured); else
// the kubeconfig option, $KUBECONFIG or ~/.kube/config.
func (t *Target) client() (*apiClient, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.api != nil {
		return t.api, nil
	}
	cfg, source := t.cfg, "the given connection"
	if cfg == nil {
		var err error
		if cfg, source, err = t.restConfig(); err != nil {
			return nil, err
		}
	}
	cfg = rest.CopyConfig(cfg)
	cfg.UserAgent = "rotor"
	api, err := newAPIClient(cfg)
	if err != nil {
		return nil, fmt.Errorf("kubernetes target %q: cannot build a client from %s: %w", t.name, source, err)
	}
	t.api = api
	return api, nil
}

func (t *Target) restConfig() (*rest.Config, string, error) {
	if t.kubeconfig == "" && t.context == "" && t.getenv("KUBERNETES_SERVICE_HOST") != "" {
		cfg, err := rest.InClusterConfig()
		if err != nil {
			return nil, "", fmt.Errorf("kubernetes target %q: running in a pod, but its service account cannot be used (%v); mount a token or set kubeconfig: %w", t.name, err, target.ErrAuth)
		}
		return cfg, "the pod's service account", nil
	}
	rules := &clientcmd.ClientConfigLoadingRules{}
	source := ""
	switch {
	case t.kubeconfig != "":
		rules.ExplicitPath = t.kubeconfig
		source = t.kubeconfig
	case t.getenv("KUBECONFIG") != "":
		rules.Precedence = filepath.SplitList(t.getenv("KUBECONFIG"))
		source = "$KUBECONFIG"
	default:
		home := t.getenv("HOME")
		if home == "" {
			rules.Precedence = []string{clientcmd.RecommendedHomeFile}
			source = clientcmd.RecommendedHomeFile
		} else {
			source = filepath.Join(home, ".kube", "config")
			rules.Precedence = []string{source}
		}
	}
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{CurrentContext: t.context}).ClientConfig()
	if err != nil {
		return nil, "", fmt.Errorf("kubernetes target %q: cannot load the kubeconfig (%s); set kubeconfig: and context: to a working cluster entry: %w", t.name, source, err)
	}
	return cfg, source, nil
}

// fail turns an API error into one that names the target and the fix.
func (t *Target) fail(op string, err error, secrets []secret.String) error {
	return fmt.Errorf("kubernetes target %q: %w", t.name, t.classify(op, err, secrets))
}

// classify says what went wrong with op and what to do, and maps the API
// error to the target sentinels.
func (t *Target) classify(op string, err error, secrets []secret.String) error {
	err = secret.Scrub(err, secrets...)
	switch {
	case apierrors.IsTooManyRequests(err) || apierrors.IsServerTimeout(err) || apierrors.IsTimeout(err) ||
		apierrors.IsServiceUnavailable(err) || apierrors.IsInternalError(err):
		delay, _ := apierrors.SuggestsClientDelay(err)
		return &target.RetryableError{Err: fmt.Errorf("%s: the API server is busy or failing: %w", op, err), RetryAfter: time.Duration(delay) * time.Second}
	case apierrors.IsUnauthorized(err):
		return fmt.Errorf("%s: the API server rejected the credentials (expired token or certificate?); refresh the kubeconfig: %w", op, &kindError{target.ErrAuth, err})
	case apierrors.IsForbidden(err):
		return fmt.Errorf("%s: RBAC forbids it; grant the Role in docs/targets/kubernetes.md: %w", op, &kindError{target.ErrAuth, err})
	case apierrors.IsNotFound(err):
		return fmt.Errorf("%s: not found; check namespace and names: %w", op, &kindError{target.ErrNotFound, err})
	case apierrors.IsInvalid(err) || apierrors.IsBadRequest(err) || apierrors.IsRequestEntityTooLargeError(err):
		return fmt.Errorf("%s: the API server refused it: %w", op, &kindError{target.ErrInvalid, err})
	}
	return fmt.Errorf("%s: %w", op, err)
}

// kindError is an API error that is also one of the target sentinels; its
// text is the API's alone.
type kindError struct{ kind, err error }

func (e *kindError) Error() string   { return e.err.Error() }
func (e *kindError) Unwrap() []error { return []error{e.kind, e.err} }

func (t *Target) secretRef() string { return t.namespace + "/" + t.secretName }

func (t *Target) workloadRef(w Workload) string {
	return strings.ToLower(w.Kind) + " " + t.namespace + "/" + w.Name
}

func resourceOf(kind string) string {
	switch kind {
	case KindDeployment:
		return "deployments"
	case KindStatefulSet:
		return "statefulsets"
	case KindDaemonSet:
		return "daemonsets"
	}
	return strings.ToLower(kind) + "s"
}

func qualified(group, resource string) string {
	if group == "" {
		return resource
	}
	return resource + "." + group
}

var (
	_ target.Target     = (*Target)(nil)
	_ target.KeyChecker = (*Target)(nil)
	_ target.Reloader   = (*Target)(nil)
	_ target.Checker    = (*Target)(nil)
	_ target.Validator  = (*Target)(nil)
)
