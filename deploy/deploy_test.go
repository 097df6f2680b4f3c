// Package deploy_test checks the deployment files under deploy/: they
// decode strictly into the Kubernetes types (a misspelt field fails), and
// hold the properties docs/deploy.md promises.
package deploy_test

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/yaml"

	"github.com/rotorhq/rotor/internal/image"
	pbuiltin "github.com/rotorhq/rotor/internal/provider/builtin"
	"github.com/rotorhq/rotor/internal/resolve"
	tbuiltin "github.com/rotorhq/rotor/internal/target/builtin"
)

// docs splits a file into its YAML documents.
func docs(t *testing.T, path string) [][]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	var out [][]byte
	for _, d := range regexp.MustCompile(`(?m)^---\s*$`).Split(string(b), -1) {
		if strings.TrimSpace(d) != "" {
			out = append(out, []byte(d))
		}
	}
	return out
}

func strict[T any](t *testing.T, path string, doc []byte) *T {
	t.Helper()
	var v T
	require.NoError(t, yaml.UnmarshalStrict(doc, &v), "%s", path)
	return &v
}

type manifests struct {
	dep  *appsv1.Deployment
	svc  *corev1.Service
	pdb  *policyv1.PodDisruptionBudget
	np   *networkingv1.NetworkPolicy
	cm   *corev1.ConfigMap
	sa   *corev1.ServiceAccount
	role *rbacv1.Role
	rb   *rbacv1.RoleBinding
}

func load(t *testing.T) manifests {
	t.Helper()
	var m manifests
	var kust struct {
		APIVersion string   `json:"apiVersion"`
		Kind       string   `json:"kind"`
		Resources  []string `json:"resources"`
		Labels     []any    `json:"labels"`
	}
	require.NoError(t, yaml.UnmarshalStrict(docs(t, "kubernetes/kustomization.yaml")[0], &kust))
	require.NotEmpty(t, kust.Resources)
	for _, res := range kust.Resources {
		path := filepath.Join("kubernetes", res)
		for _, d := range docs(t, path) {
			var meta struct{ Kind string }
			require.NoError(t, yaml.Unmarshal(d, &meta))
			switch meta.Kind {
			case "Deployment":
				m.dep = strict[appsv1.Deployment](t, path, d)
			case "Service":
				m.svc = strict[corev1.Service](t, path, d)
			case "PodDisruptionBudget":
				m.pdb = strict[policyv1.PodDisruptionBudget](t, path, d)
			case "NetworkPolicy":
				m.np = strict[networkingv1.NetworkPolicy](t, path, d)
			case "ConfigMap":
				m.cm = strict[corev1.ConfigMap](t, path, d)
			case "ServiceAccount":
				m.sa = strict[corev1.ServiceAccount](t, path, d)
			case "Role":
				m.role = strict[rbacv1.Role](t, path, d)
			case "RoleBinding":
				m.rb = strict[rbacv1.RoleBinding](t, path, d)
			default:
				t.Fatalf("%s: unexpected kind %q", path, meta.Kind)
			}
		}
	}
	for name, v := range map[string]any{"Deployment": m.dep, "Service": m.svc, "PodDisruptionBudget": m.pdb, "NetworkPolicy": m.np, "ConfigMap": m.cm} {
		require.NotNil(t, v, "kustomization.yaml lists a %s", name)
	}
	return m
}

func TestKubernetesManifests(t *testing.T) {
	m := load(t)
	dep := m.dep
	require.EqualValues(t, 2, *dep.Spec.Replicas, "two replicas: one dies, the other resumes its rotation")
	pod := dep.Spec.Template.Spec
	require.True(t, *pod.SecurityContext.RunAsNonRoot)
	require.EqualValues(t, 65532, *pod.SecurityContext.RunAsUser)
	require.Len(t, pod.Containers, 1)
	c := pod.Containers[0]
	require.False(t, *c.SecurityContext.AllowPrivilegeEscalation)
	require.True(t, *c.SecurityContext.ReadOnlyRootFilesystem)
	require.Equal(t, []corev1.Capability{"ALL"}, c.SecurityContext.Capabilities.Drop)
	require.Equal(t, "/readyz", c.ReadinessProbe.HTTPGet.Path)
	require.Equal(t, "/healthz", c.LivenessProbe.HTTPGet.Path)

	// The command is the image's, with a shutdown timeout the grace
	// period covers.
	require.Equal(t, image.Cmd, c.Args[:len(image.Cmd)])
	shutdown := 30 * time.Second
	for i, a := range c.Args {
		if a == "--shutdown-timeout" {
			d, err := time.ParseDuration(c.Args[i+1])
			require.NoError(t, err)
			shutdown = d
		}
		require.NotEqual(t, "--insecure-listen", a, "the manifests serve TLS")
	}
	require.Greater(t, time.Duration(*pod.TerminationGracePeriodSeconds)*time.Second, shutdown+10*time.Second,
		"SIGKILL must not come before the drain ends")

	// Every secret comes from the Secret, none is written in the manifest.
	secretVars := map[string]bool{"ROTOR_STATE_URL": true, "ROTOR_KEY": true, "ROTOR_API_TOKENS": true, "ROTOR_GITHUB_WEBHOOK_SECRET": true, "ADMIN_URL": true}
	for _, e := range c.Env {
		if secretVars[e.Name] {
			require.Empty(t, e.Value, "%s is written in the manifest", e.Name)
			require.NotNil(t, e.ValueFrom.SecretKeyRef, "%s comes from a Secret", e.Name)
			require.Equal(t, "rotor-secrets", e.ValueFrom.SecretKeyRef.Name)
			delete(secretVars, e.Name)
		} else {
			require.NotContains(t, e.Value, "://", "%s looks like a URL written in the manifest", e.Name)
		}
	}
	require.Empty(t, secretVars, "secrets the Deployment does not pass")

	// The config the Deployment points at is the ConfigMap's.
	var cfgPath string
	for _, e := range c.Env {
		if e.Name == "ROTOR_CONFIG" {
			cfgPath = e.Value
		}
	}
	var mounted bool
	for _, vm := range c.VolumeMounts {
		for _, v := range pod.Volumes {
			if v.Name == vm.Name && v.ConfigMap != nil && v.ConfigMap.Name == m.cm.Name {
				require.Equal(t, filepath.Join(vm.MountPath, "rotor.yaml"), cfgPath)
				mounted = true
			}
		}
	}
	require.True(t, mounted, "the ConfigMap is mounted where ROTOR_CONFIG points")

	// Selectors match the pods; the Service reaches the container's port.
	podLabels := labels.Set(dep.Spec.Template.Labels)
	require.True(t, labels.SelectorFromSet(dep.Spec.Selector.MatchLabels).Matches(podLabels))
	require.True(t, labels.SelectorFromSet(m.svc.Spec.Selector).Matches(podLabels), "the Service selects the pods")
	require.True(t, labels.SelectorFromSet(m.pdb.Spec.Selector.MatchLabels).Matches(podLabels), "the PDB selects the pods")
	require.True(t, labels.SelectorFromSet(m.np.Spec.PodSelector.MatchLabels).Matches(podLabels), "the NetworkPolicy selects the pods")
	require.EqualValues(t, 1, m.pdb.Spec.MinAvailable.IntValue())
	var named bool
	for _, p := range c.Ports {
		if p.Name == m.svc.Spec.Ports[0].TargetPort.String() {
			named = true
			require.EqualValues(t, 8443, p.ContainerPort)
			require.EqualValues(t, p.ContainerPort, m.np.Spec.Ingress[0].Ports[0].Port.IntValue(), "the NetworkPolicy lets the port in")
		}
	}
	require.True(t, named, "the Service's targetPort names a container port")
	require.Equal(t, "true", dep.Spec.Template.Annotations["prometheus.io/scrape"])
	require.Equal(t, "/metrics", dep.Spec.Template.Annotations["prometheus.io/path"])
	require.Equal(t, m.sa.Name, pod.ServiceAccountName)
	require.Equal(t, m.sa.Name, m.rb.Subjects[0].Name)
	require.Equal(t, m.role.Name, m.rb.RoleRef.Name)
}

// The example config in the ConfigMap is one rotor accepts.
func TestConfigMapHoldsAValidConfig(t *testing.T) {
	m := load(t)
	path := filepath.Join(t.TempDir(), "rotor.yaml")
	require.NoError(t, os.WriteFile(path, []byte(m.cm.Data["rotor.yaml"]), 0o600))
	env := map[string]string{"ADMIN_URL": "postgresql://rotor_admin@db.internal:5432/app"}
	cfg, err := resolve.LoadOffline(path, func(k string) (string, bool) { v, ok := env[k]; return v, ok }, resolve.Registry{
		Provider: pbuiltin.Lookup, Target: tbuiltin.Lookup, Now: time.Now, Getenv: func(string) string { return "" }})
	require.NoError(t, err)
	defer cfg.Close()
	require.NotEmpty(t, cfg.Credentials)
}

// The example Secret holds placeholders only.
func TestSecretExampleHoldsNoSecret(t *testing.T) {
	d := docs(t, "kubernetes/secret.example.yaml")
	require.Len(t, d, 1)
	s := strict[corev1.Secret](t, "secret.example.yaml", d[0])
	require.NotEmpty(t, s.StringData)
	for k, v := range s.StringData {
		require.Contains(t, v, "REPLACE_ME", "%s holds something other than a placeholder", k)
	}
	var kust struct{ Resources []string }
	require.NoError(t, yaml.Unmarshal(docs(t, "kubernetes/kustomization.yaml")[0], &kust))
	require.NotContains(t, kust.Resources, "secret.example.yaml", "the example is not applied")
}

func TestSystemdUnit(t *testing.T) {
	f, err := os.Open("systemd/rotor.service")
	require.NoError(t, err)
	defer f.Close()
	unit := map[string][]string{}
	section := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, "["):
			section = strings.Trim(line, "[]")
		default:
			k, v, ok := strings.Cut(line, "=")
			require.True(t, ok, "not key=value: %q", line)
			unit[section+"."+k] = append(unit[section+"."+k], v)
		}
	}
	require.NoError(t, sc.Err())
	one := func(k string) string {
		require.Len(t, unit[k], 1, k)
		return unit[k][0]
	}
	for k, want := range map[string]string{
		"Service.DynamicUser": "yes", "Service.NoNewPrivileges": "yes", "Service.ProtectSystem": "strict",
		"Service.ProtectHome": "yes", "Service.PrivateTmp": "yes", "Service.StateDirectory": "rotor",
		"Service.Restart": "on-failure", "Service.KillSignal": "SIGTERM", "Service.UMask": "0077",
		"Service.EnvironmentFile": "/etc/rotor/rotor.env", "Install.WantedBy": "multi-user.target",
	} {
		require.Equal(t, want, one(k), k)
	}
	require.Empty(t, one("Service.CapabilityBoundingSet"), "no capabilities")
	start := strings.Fields(one("Service.ExecStart"))
	require.Equal(t, "serve", start[1])
	require.NotContains(t, start, "--insecure-listen")
	shutdown := 30 * time.Second
	for i, a := range start {
		if a == "--shutdown-timeout" {
			shutdown, err = time.ParseDuration(start[i+1])
			require.NoError(t, err)
		}
		require.NotContains(t, a, "TOKEN", "no secret on the command line")
	}
	stop, err := time.ParseDuration(one("Service.TimeoutStopSec") + "s")
	require.NoError(t, err)
	require.Greater(t, stop, shutdown+10*time.Second, "systemd must not SIGKILL before the drain ends")
	require.Contains(t, one("Service.ExecReload"), "-HUP $MAINPID")

	if sa, err := exec.LookPath("systemd-analyze"); err == nil {
		// Not required: only where systemd is installed. Unknown keys
		// and bad values show up here.
		out, _ := exec.Command(sa, "verify", "--man=no", "systemd/rotor.service").CombinedOutput()
		require.False(t, bytes.Contains(out, []byte("Unknown key")), "%s", out)
	}
}
