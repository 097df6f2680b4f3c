package kubernetes_test

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	authv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation/field"
	applycorev1 "k8s.io/client-go/applyconfigurations/core/v1"
	"k8s.io/client-go/kubernetes/fake"
	clienttesting "k8s.io/client-go/testing"

	"github.com/rotorhq/rotor/internal/secret"
	"github.com/rotorhq/rotor/internal/target"
	"github.com/rotorhq/rotor/internal/target/kubernetes"
	"github.com/rotorhq/rotor/internal/target/kubernetes/kubefake"
	"github.com/rotorhq/rotor/internal/target/targettest"
)

const (
	ns     = "shop"
	name   = "app-env"
	stamp  = "2026-08-01T12:00:00Z"
	deploy = "web"
)

var now = func() time.Time { return time.Date(2026, 8, 1, 12, 0, 0, 0, time.UTC) }

func TestConformance(t *testing.T) {
	t.Parallel()
	var fakes sync.Map // target.Target → *fake.Clientset
	fakeOf := func(tg target.Target) *fake.Clientset {
		cs, ok := fakes.Load(tg)
		require.True(t, ok, "target not built by the harness")
		return cs.(*fake.Clientset)
	}
	targettest.Exercise(t, targettest.Harness{
		New: func(t *testing.T) target.Target {
			cs := newClientset(t, nil, deployment(deploy, false))
			newControllers(cs)
			tg := newTarget(t, cs, "restart: [{kind: Deployment, name: web}]")
			fakes.Store(tg, cs)
			return tg
		},
		Seed: func(t *testing.T, tg target.Target, values map[string]secret.String) {
			data := map[string][]byte{}
			for k, v := range values {
				data[k] = []byte(v.Reveal())
			}
			// Another field manager owns these keys.
			_, err := fakeOf(tg).CoreV1().Secrets(ns).Apply(t.Context(), applycorev1.Secret(name, ns).WithData(data), metav1.ApplyOptions{FieldManager: "helm", Force: true})
			require.NoError(t, err)
		},
		Break: func(t *testing.T, tg target.Target) {
			fakeOf(tg).PrependReactor("*", "*", func(clienttesting.Action) (bool, runtime.Object, error) {
				return true, nil, apierrors.NewInternalError(errors.New("etcdserver: request timed out"))
			})
		},
	})
}

func TestNew(t *testing.T) {
	t.Parallel()
	base := t.TempDir()
	tests := []struct {
		name     string
		opts     string
		baseDir  string
		wantDest string
		wantErr  string
	}{
		{name: "minimal", opts: "{namespace: shop, secret_name: app-env}", wantDest: "kubernetes secret shop/app-env"},
		{name: "everything", opts: "{namespace: shop, secret_name: app-env, kubeconfig: kube/config, context: prod, restart: [{kind: Deployment, name: web}, {kind: StatefulSet, name: worker}, {kind: DaemonSet, name: agent}]}", baseDir: base, wantDest: "kubernetes secret shop/app-env (context prod)"},
		{name: "no namespace", opts: "{secret_name: app-env}", wantErr: "has no namespace; add namespace:"},
		{name: "bad namespace", opts: "{namespace: Shop_1, secret_name: app-env}", wantErr: `namespace "Shop_1" is not a valid namespace name`},
		{name: "no secret name", opts: "{namespace: shop}", wantErr: "has no secret_name"},
		{name: "bad secret name", opts: "{namespace: shop, secret_name: App Env}", wantErr: `secret_name "App Env" is not a valid object name`},
		{name: "unknown kind", opts: "{namespace: shop, secret_name: a, restart: [{kind: deployment, name: web}]}", wantErr: `restart[0] has kind "deployment"; use one of Deployment, StatefulSet, DaemonSet`},
		{name: "bad workload name", opts: "{namespace: shop, secret_name: a, restart: [{kind: Deployment, name: ''}]}", wantErr: `restart[0] name "" is not a valid object name`},
		{name: "duplicate workload", opts: "{namespace: shop, secret_name: a, restart: [{kind: Deployment, name: web}, {kind: Deployment, name: web}]}", wantErr: "restart lists Deployment/web twice"},
		{name: "relative kubeconfig without a config directory", opts: "{namespace: shop, secret_name: a, kubeconfig: kube/config}", wantErr: "is relative but there is no config directory"},
		{name: "home kubeconfig without HOME", opts: "{namespace: shop, secret_name: a, kubeconfig: ~/.kube/prod}", wantErr: "starts with ~/ but HOME is not set"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tg, err := kubernetes.New(target.Params{Name: "k8s", Decode: targettest.DecodeYAML(tt.opts), BaseDir: tt.baseDir, Getenv: targettest.MapEnv(nil)})
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				require.ErrorIs(t, err, target.ErrInvalid)
				require.Nil(t, tg)
				return
			}
			require.NoError(t, err)
			require.Equal(t, target.Info{Type: "kubernetes", Name: "k8s", Destination: tt.wantDest, Idempotent: true}, tg.Info())
		})
	}
}

func TestPutAppliesManagedKeys(t *testing.T) {
	t.Parallel()
	cs := newClientset(t, nil, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, ResourceVersion: "17"},
		Type:       corev1.SecretTypeOpaque,
		Data:       map[string][]byte{"OTHER": []byte("keep"), "DATABASE_URL": []byte("old")},
	})
	tg := newTarget(t, cs, "")
	resp, err := tg.Put(t.Context(), targettest.PutRequest(map[string]string{"DATABASE_URL": "postgres://app:new@h/db"}))
	require.NoError(t, err)
	require.True(t, resp.Changed)
	require.True(t, strings.HasPrefix(resp.Ref, "resourceVersion "), resp.Ref)

	acts := cs.Actions()
	require.Len(t, acts, 2)
	require.True(t, acts[0].Matches("get", "secrets"))
	patch, ok := acts[1].(clienttesting.PatchActionImpl)
	require.True(t, ok && acts[1].Matches("patch", "secrets"), "the write is a patch")
	require.Equal(t, types.ApplyPatchType, patch.GetPatchType())
	require.Equal(t, metav1.PatchOptions{FieldManager: "rotor", Force: new(true)}, patch.GetPatchOptions())
	var applied struct {
		Kind     string            `json:"kind"`
		Metadata map[string]string `json:"metadata"`
		Data     map[string]string `json:"data"`
		String   map[string]string `json:"stringData"`
	}
	require.NoError(t, json.Unmarshal(patch.GetPatch(), &applied))
	require.Equal(t, "Secret", applied.Kind)
	require.Equal(t, name, applied.Metadata["name"])
	require.Equal(t, "17", applied.Metadata["resourceVersion"], "the apply is pinned to the version read")
	require.Equal(t, map[string]string{"DATABASE_URL": base64.StdEncoding.EncodeToString([]byte("postgres://app:new@h/db"))}, applied.Data, "only the managed key, as data")
	require.Nil(t, applied.String, "never stringData")

	got, err := cs.CoreV1().Secrets(ns).Get(t.Context(), name, metav1.GetOptions{})
	require.NoError(t, err)
	require.Equal(t, "keep", string(got.Data["OTHER"]))
	require.Equal(t, corev1.SecretTypeOpaque, got.Type)
}

func TestPutKeepsKeysOfOtherCredentials(t *testing.T) {
	t.Parallel()
	cs := newClientset(t, nil)
	// Two credentials publish into the same Secret through two targets,
	// both applying as field manager "rotor".
	app := newTarget(t, cs, "")
	replica := newTarget(t, cs, "")
	_, err := app.Put(t.Context(), targettest.PutRequest(map[string]string{"DATABASE_URL": "primary"}))
	require.NoError(t, err)
	_, err = replica.Put(t.Context(), targettest.PutRequest(map[string]string{"REPLICA_URL": "replica"}))
	require.NoError(t, err)
	_, err = app.Put(t.Context(), targettest.PutRequest(map[string]string{"DATABASE_URL": "primary-2"}))
	require.NoError(t, err)

	got, err := cs.CoreV1().Secrets(ns).Get(t.Context(), name, metav1.GetOptions{})
	require.NoError(t, err)
	require.Equal(t, map[string][]byte{"DATABASE_URL": []byte("primary-2"), "REPLICA_URL": []byte("replica")}, got.Data)
}

func TestPutRetriesConflicts(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		conflicts int
		wantErr   string
		patches   int
	}{
		{name: "one conflict", conflicts: 1, patches: 2},
		{name: "always in conflict", conflicts: 100, patches: 5, wantErr: "changed during each of 5 attempts to apply"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cs := newClientset(t, nil)
			left := tt.conflicts
			cs.PrependReactor("patch", "secrets", func(clienttesting.Action) (bool, runtime.Object, error) {
				if left == 0 {
					return false, nil, nil
				}
				left--
				return true, nil, apierrors.NewConflict(schema.GroupResource{Resource: "secrets"}, name, errors.New("the object has been modified"))
			})
			tg := newTarget(t, cs, "")
			_, err := tg.Put(t.Context(), targettest.PutRequest(map[string]string{"DATABASE_URL": "x"}))
			patches := 0
			for _, a := range cs.Actions() {
				if a.Matches("patch", "secrets") {
					patches++
				}
			}
			require.Equal(t, tt.patches, patches)
			if tt.wantErr == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tt.wantErr)
			var re *target.RetryableError
			require.ErrorAs(t, err, &re)
		})
	}
}

func TestPutErrors(t *testing.T) {
	t.Parallel()
	canary := "canary-k8s-e3f1"
	gr := schema.GroupResource{Resource: "secrets"}
	tests := []struct {
		name           string
		err            error
		wantIs         error
		wantRetryable  bool
		wantRetryAfter time.Duration
		wantErr        string
	}{
		{
			name:          "throttled by priority and fairness",
			err:           apierrors.NewTooManyRequests("too many requests, please try again later", 7),
			wantRetryable: true, wantRetryAfter: 7 * time.Second,
			wantErr: `kubernetes target "k8s": apply secret shop/app-env: the API server is busy or failing`,
		},
		{
			name:    "RBAC forbids patch",
			err:     apierrors.NewForbidden(gr, name, errors.New(`User "system:serviceaccount:shop:rotor" cannot patch resource "secrets" in API group "" in the namespace "shop"`)),
			wantIs:  target.ErrAuth,
			wantErr: "RBAC forbids it; grant the Role in docs/targets/kubernetes.md",
		},
		{
			name:    "expired credentials",
			err:     apierrors.NewUnauthorized("Unauthorized"),
			wantIs:  target.ErrAuth,
			wantErr: "rejected the credentials (expired token or certificate?)",
		},
		{
			name: "refusal that echoes the value",
			err: apierrors.NewInvalid(schema.GroupKind{Kind: "Secret"}, name, field.ErrorList{
				field.Invalid(field.NewPath("data", "DATABASE_URL"), "postgres://u:"+canary+"@h/db", "too long"),
			}),
			wantIs:  target.ErrInvalid,
			wantErr: "the API server refused it",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cs := newClientset(t, nil)
			cs.PrependReactor("patch", "secrets", func(clienttesting.Action) (bool, runtime.Object, error) { return true, nil, tt.err })
			tg := newTarget(t, cs, "")
			value := "postgres://u:" + canary + "@h/db"
			_, err := tg.Put(t.Context(), targettest.PutRequest(map[string]string{"DATABASE_URL": value}))
			require.Error(t, err)
			require.Empty(t, secret.Leaks([]byte(fmt.Sprintf("%v %+v", err, err)), secret.New(value), secret.New(canary)))
			require.ErrorContains(t, err, tt.wantErr)
			var re *target.RetryableError
			require.Equal(t, tt.wantRetryable, errors.As(err, &re))
			if tt.wantRetryable {
				require.Equal(t, tt.wantRetryAfter, re.RetryAfter)
			}
			if tt.wantIs != nil {
				require.ErrorIs(t, err, tt.wantIs)
			}
		})
	}
}

func TestPutRefusesBadKeys(t *testing.T) {
	t.Parallel()
	cs := newClientset(t, nil)
	_, err := newTarget(t, cs, "").Put(t.Context(), targettest.PutRequest(map[string]string{"DATABASE URL": "x"}))
	require.ErrorIs(t, err, target.ErrInvalid)
	require.ErrorContains(t, err, `"DATABASE URL" cannot be a Secret key`)
	require.Empty(t, cs.Actions())
}

func TestReload(t *testing.T) {
	t.Parallel()
	const restartAll = "restart: [{kind: Deployment, name: web}, {kind: StatefulSet, name: worker}, {kind: DaemonSet, name: agent}]"
	tests := []struct {
		name       string
		objs       []runtime.Object
		opts       string
		fail       string // resource whose patch fails once
		wantDetail string
		wantIs     error
		wantErr    string
	}{
		{
			name: "every kind",
			objs: []runtime.Object{deployment("web", false), statefulSet("worker", appsv1.RollingUpdateStatefulSetStrategyType), daemonSet("agent", appsv1.RollingUpdateDaemonSetStrategyType)},
			opts: restartAll,
			wantDetail: "restarted Deployment/web, StatefulSet/worker, DaemonSet/agent; rollouts complete after 0s: " +
				"Deployment/web 1 of 1 replicas updated, 1 available; StatefulSet/worker 1 of 1 replicas updated, 1 ready at revision worker-1; DaemonSet/agent 1 of 1 pods updated, 1 available",
		},
		{name: "nothing to restart", wantDetail: "no workloads to restart"},
		{
			name:    "paused deployment",
			objs:    []runtime.Object{deployment("web", true)},
			opts:    "restart: [{kind: Deployment, name: web}]",
			wantIs:  target.ErrInvalid,
			wantErr: "cannot restart paused deployment shop/web (as kubectl refuses to); run `kubectl rollout resume deployment/web -n shop` first",
		},
		{
			name:    "OnDelete statefulset",
			objs:    []runtime.Object{statefulSet("worker", appsv1.OnDeleteStatefulSetStrategyType)},
			opts:    "restart: [{kind: StatefulSet, name: worker}]",
			wantIs:  target.ErrInvalid,
			wantErr: "uses updateStrategy OnDelete, so a rollout restart would not restart its pods",
		},
		{
			name:    "partitioned statefulset",
			objs:    []runtime.Object{partitioned(statefulSet("worker", appsv1.RollingUpdateStatefulSetStrategyType), 2)},
			opts:    "restart: [{kind: StatefulSet, name: worker}]",
			wantIs:  target.ErrInvalid,
			wantErr: "statefulset shop/worker has updateStrategy.rollingUpdate.partition 2, so a rollout restart would replace only the pods with ordinal 2 and up",
		},
		{
			name:    "missing workload",
			opts:    "restart: [{kind: DaemonSet, name: agent}]",
			wantIs:  target.ErrNotFound,
			wantErr: `kubernetes target "k8s": restart daemonset shop/agent: not found`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cs := newClientset(t, nil, tt.objs...)
			newControllers(cs)
			tg := newTarget(t, cs, tt.opts).(target.Reloader)
			resp, err := tg.Reload(t.Context(), target.ReloadRequest{RotationID: "7"})
			if tt.wantErr != "" {
				require.ErrorIs(t, err, tt.wantIs)
				require.ErrorContains(t, err, tt.wantErr)
				for _, a := range cs.Actions() {
					require.NotEqual(t, "patch", a.GetVerb(), "a refused workload is not touched")
				}
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.wantDetail, resp.Detail)
			for _, a := range cs.Actions() {
				if a.GetVerb() != "patch" {
					continue
				}
				p := a.(clienttesting.PatchActionImpl)
				require.Equal(t, types.StrategicMergePatchType, p.GetPatchType())
				require.JSONEq(t, `{"spec":{"template":{"metadata":{"annotations":{"kubectl.kubernetes.io/restartedAt":"`+stamp+`"}}}}}`, string(p.GetPatch()))
				require.Equal(t, "rotor", p.GetPatchOptions().FieldManager)
			}
			if strings.Contains(tt.opts, "web") {
				d, err := cs.AppsV1().Deployments(ns).Get(t.Context(), "web", metav1.GetOptions{})
				require.NoError(t, err)
				require.Equal(t, stamp, d.Spec.Template.Annotations[kubernetes.RestartedAtAnnotation])
				require.Equal(t, "keep", d.Spec.Template.Annotations["other"], "other template annotations survive")
			}
		})
	}
}

func TestReloadRetrySkipsRestartedWorkloads(t *testing.T) {
	t.Parallel()
	cs := newClientset(t, nil, deployment("web", false), statefulSet("worker", appsv1.RollingUpdateStatefulSetStrategyType))
	newControllers(cs)
	failed := false
	cs.PrependReactor("patch", "statefulsets", func(clienttesting.Action) (bool, runtime.Object, error) {
		if failed {
			return false, nil, nil
		}
		failed = true
		return true, nil, apierrors.NewTooManyRequests("slow down", 2)
	})
	tg := newTarget(t, cs, "restart: [{kind: Deployment, name: web}, {kind: StatefulSet, name: worker}]").(target.Reloader)
	_, err := tg.Reload(t.Context(), target.ReloadRequest{RotationID: "7"})
	var re *target.RetryableError
	require.ErrorAs(t, err, &re)
	require.ErrorContains(t, err, `kubernetes target "k8s": restarted Deployment/web, then: restart statefulset shop/worker: the API server is busy or failing`)

	resp, err := tg.Reload(t.Context(), target.ReloadRequest{RotationID: "7"})
	require.NoError(t, err)
	require.Equal(t, "restarted Deployment/web, StatefulSet/worker; rollouts complete after 0s: "+
		"Deployment/web 1 of 1 replicas updated, 1 available; StatefulSet/worker 1 of 1 replicas updated, 1 ready at revision worker-1", resp.Detail)
	patches := map[string]int{}
	for _, a := range cs.Actions() {
		if a.GetVerb() == "patch" {
			patches[a.GetResource().Resource]++
		}
	}
	require.Equal(t, map[string]int{"deployments": 1, "statefulsets": 2}, patches, "web is restarted once")
}

func TestCheck(t *testing.T) {
	t.Parallel()
	cs := newClientset(t, nil, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Data:       map[string][]byte{"DATABASE_URL": []byte("u"), "OTHER": []byte("o")},
	})
	c := newTarget(t, cs, "").(target.Checker)
	resp, err := c.Check(t.Context(), target.CheckRequest{Keys: []string{"DATABASE_URL", "MISSING"}})
	require.NoError(t, err)
	require.Len(t, resp.Values, 1)
	require.True(t, secret.New("u").Equal(resp.Values["DATABASE_URL"]))

	c = newTarget(t, newClientset(t, nil), "").(target.Checker)
	resp, err = c.Check(t.Context(), target.CheckRequest{Keys: []string{"DATABASE_URL"}})
	require.NoError(t, err)
	require.Empty(t, resp.Values)
	require.Equal(t, []string{"secret shop/app-env does not exist"}, resp.Notes)
}

func TestValidate(t *testing.T) {
	t.Parallel()
	existing := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}}
	tests := []struct {
		name      string
		objs      []runtime.Object
		denied    map[string]bool // "verb resource"
		opts      string
		wantNotes []string
		wantIs    error
		wantErr   string
	}{
		{name: "all allowed", objs: []runtime.Object{existing, deployment("web", false)}, opts: "restart: [{kind: Deployment, name: web}]"},
		{
			name:      "secret to be created",
			wantNotes: []string{"secret shop/app-env does not exist yet; the first rotation creates it"},
		},
		{
			name:    "create not allowed for a missing secret",
			denied:  map[string]bool{"create secrets": true},
			wantIs:  target.ErrAuth,
			wantErr: "RBAC does not allow create secrets/app-env in namespace shop",
		},
		{
			name:    "workload patch not allowed",
			objs:    []runtime.Object{existing, deployment("web", false)},
			denied:  map[string]bool{"patch secrets": true, "patch deployments": true},
			opts:    "restart: [{kind: Deployment, name: web}]",
			wantIs:  target.ErrAuth,
			wantErr: "RBAC does not allow patch secrets/app-env, patch deployments.apps/web in namespace shop",
		},
		{
			name:    "paused deployment",
			objs:    []runtime.Object{existing, deployment("web", true)},
			opts:    "restart: [{kind: Deployment, name: web}]",
			wantIs:  target.ErrInvalid,
			wantErr: "deployment shop/web is paused, so Reload would refuse to restart it",
		},
		{
			name:    "OnDelete daemonset",
			objs:    []runtime.Object{existing, daemonSet("agent", appsv1.OnDeleteDaemonSetStrategyType)},
			opts:    "restart: [{kind: DaemonSet, name: agent}]",
			wantIs:  target.ErrInvalid,
			wantErr: "Reload would refuse to restart it: daemonset shop/agent uses updateStrategy OnDelete",
		},
		{
			name:    "partitioned statefulset",
			objs:    []runtime.Object{existing, partitioned(statefulSet("worker", appsv1.RollingUpdateStatefulSetStrategyType), 1)},
			opts:    "restart: [{kind: StatefulSet, name: worker}]",
			wantIs:  target.ErrInvalid,
			wantErr: "Reload would refuse to restart it: statefulset shop/worker has updateStrategy.rollingUpdate.partition 1",
		},
		{
			name:    "missing workload",
			objs:    []runtime.Object{existing},
			opts:    "restart: [{kind: StatefulSet, name: worker}]",
			wantIs:  target.ErrNotFound,
			wantErr: "get statefulset shop/worker: not found",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cs := newClientset(t, tt.denied, tt.objs...)
			resp, err := newTarget(t, cs, tt.opts).(target.Validator).Validate(t.Context(), target.ValidateRequest{})
			for _, a := range cs.Actions() {
				if a.GetVerb() == "create" {
					require.Equal(t, "selfsubjectaccessreviews", a.GetResource().Resource, "Validate writes nothing but access reviews")
					continue
				}
				require.Equal(t, "get", a.GetVerb())
			}
			if tt.wantErr != "" {
				require.ErrorIs(t, err, tt.wantIs)
				require.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.wantNotes, resp.Notes)
		})
	}
}

// TestKubeconfig goes through the real client: the kubeconfig's context
// picks the server, and the server's 401 Status becomes ErrAuth.
func TestKubeconfig(t *testing.T) {
	t.Parallel()
	var paths []string
	var mu sync.Mutex
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		paths = append(paths, r.Method+" "+r.URL.Path+" "+r.Header.Get("Authorization"))
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = w.Write([]byte(`{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"Unauthorized","reason":"Unauthorized","code":401}`))
	}))
	t.Cleanup(srv.Close)
	dir := t.TempDir()
	kubeconfig := fmt.Sprintf(`apiVersion: v1
kind: Config
current-context: other
clusters:
- name: prod
  cluster: {server: %q, insecure-skip-tls-verify: true}
- name: other
  cluster: {server: "http://127.0.0.1:1"}
users:
- name: rotor
  user: {token: expired-token}
contexts:
- name: prod
  context: {cluster: prod, user: rotor}
- name: other
  context: {cluster: other, user: rotor}
`, srv.URL)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "kubeconfig"), []byte(kubeconfig), 0o600))

	tg, err := kubernetes.New(target.Params{Name: "k8s", BaseDir: dir, Getenv: targettest.MapEnv(nil),
		Decode: targettest.DecodeYAML("{namespace: shop, secret_name: app-env, kubeconfig: kubeconfig, context: prod}")})
	require.NoError(t, err)
	_, err = tg.Put(t.Context(), targettest.PutRequest(map[string]string{"DATABASE_URL": "x"}))
	require.ErrorIs(t, err, target.ErrAuth)
	require.ErrorContains(t, err, "rejected the credentials")
	mu.Lock()
	defer mu.Unlock()
	require.Equal(t, []string{"GET /api/v1/namespaces/shop/secrets/app-env Bearer expired-token"}, paths)

	tg, err = kubernetes.New(target.Params{Name: "k8s", BaseDir: dir, Getenv: targettest.MapEnv(nil),
		Decode: targettest.DecodeYAML("{namespace: shop, secret_name: app-env, kubeconfig: missing}")})
	require.NoError(t, err, "the kubeconfig is read on first use")
	_, err = tg.Put(t.Context(), targettest.PutRequest(map[string]string{"DATABASE_URL": "x"}))
	require.ErrorContains(t, err, "cannot load the kubeconfig ("+filepath.Join(dir, "missing")+")")
}

// newClientset is a fake API server holding objs whose access reviews
// allow everything not in denied ("verb resource").
func newClientset(t *testing.T, denied map[string]bool, objs ...runtime.Object) *fake.Clientset {
	t.Helper()
	cs := fake.NewClientset(objs...)
	cs.PrependReactor("create", "selfsubjectaccessreviews", func(a clienttesting.Action) (bool, runtime.Object, error) {
		r := a.(clienttesting.CreateAction).GetObject().(*authv1.SelfSubjectAccessReview).DeepCopy()
		ra := r.Spec.ResourceAttributes
		r.Status.Allowed = !denied[ra.Verb+" "+ra.Resource]
		return true, r, nil
	})
	return cs
}

func newTarget(t *testing.T, cs *fake.Clientset, extra string) target.Target {
	t.Helper()
	opts := "{namespace: shop, secret_name: app-env, reload_poll: 1ms}"
	if extra != "" {
		opts = "{namespace: shop, secret_name: app-env, reload_poll: 1ms, " + extra + "}"
	}
	tg, err := kubefake.NewTarget(t, target.Params{Name: "k8s", Decode: targettest.DecodeYAML(opts), Now: now, Getenv: targettest.MapEnv(nil)}, cs)
	require.NoError(t, err)
	return tg
}

func deployment(n string, paused bool) *appsv1.Deployment {
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: n, Namespace: ns},
		Spec: appsv1.DeploymentSpec{
			Paused:   paused,
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Annotations: map[string]string{"other": "keep"}}},
		},
	}
}

func statefulSet(n string, strategy appsv1.StatefulSetUpdateStrategyType) *appsv1.StatefulSet {
	return &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: n, Namespace: ns},
		Spec:       appsv1.StatefulSetSpec{UpdateStrategy: appsv1.StatefulSetUpdateStrategy{Type: strategy}},
	}
}

func daemonSet(n string, strategy appsv1.DaemonSetUpdateStrategyType) *appsv1.DaemonSet {
	return &appsv1.DaemonSet{
		ObjectMeta: metav1.ObjectMeta{Name: n, Namespace: ns},
		Spec:       appsv1.DaemonSetSpec{UpdateStrategy: appsv1.DaemonSetUpdateStrategy{Type: strategy}},
	}
}

func partitioned(s *appsv1.StatefulSet, p int32) *appsv1.StatefulSet {
	s.Spec.UpdateStrategy.RollingUpdate = &appsv1.RollingUpdateStatefulSetStrategy{Partition: &p}
	return s
}
