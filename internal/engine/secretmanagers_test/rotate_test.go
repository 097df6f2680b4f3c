// Package secretmanagers_test drives whole dual rotations against real
// PostgreSQL that publish at once to AWS Secrets Manager (staged, against
// its contract fake), Vault KV v2 (against its fake), a Kubernetes Secret
// with a Deployment restart (client-go's fake clientset), a real PgBouncer
// in front of the test cluster, and a .env file. It proves that every copy
// ends up with a connection string the database accepts, that staging
// labels, unrelated keys and workload restarts come out as consumers
// expect, and that PgBouncer accepts the new password.
//
// Values are compared with secret.String.Equal and never printed.
package secretmanagers_test

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/joho/godotenv"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/rotorhq/rotor/internal/connstr"
	"github.com/rotorhq/rotor/internal/engine"
	"github.com/rotorhq/rotor/internal/pgbouncertest"
	"github.com/rotorhq/rotor/internal/pgtest"
	"github.com/rotorhq/rotor/internal/provider"
	pbuiltin "github.com/rotorhq/rotor/internal/provider/builtin"
	"github.com/rotorhq/rotor/internal/resolve"
	"github.com/rotorhq/rotor/internal/secret"
	"github.com/rotorhq/rotor/internal/store"
	"github.com/rotorhq/rotor/internal/store/sqlite"
	"github.com/rotorhq/rotor/internal/target"
	"github.com/rotorhq/rotor/internal/target/awsclient/awsfake"
	"github.com/rotorhq/rotor/internal/target/awssm/awssmfake"
	tbuiltin "github.com/rotorhq/rotor/internal/target/builtin"
	"github.com/rotorhq/rotor/internal/target/kubernetes"
	"github.com/rotorhq/rotor/internal/target/kubernetes/kubefake"
	"github.com/rotorhq/rotor/internal/target/vault/vaultfake"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

const (
	awsSecret  = "prod/app/database"
	vaultPath  = "apps/web"
	namespace  = "shop"
	secretName = "app-env"
	deployName = "web"
	staleURL   = "postgresql://stale@nowhere/db"
)

// targets is every target of the config, in publish order.
var targets = []string{"bouncer", "aws", "vault", "k8s", "env"}

// TestDualRotationPublishesToSecretManagers rotates a dual credential twice
// with engine.Rotate, so the roles switch, publishing to every target at
// once.
func TestDualRotationPublishesToSecretManagers(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	cl := pgtest.Shared(t)
	db, adminURL := pgtest.NewDatabase(t)

	// PgBouncer in front of the cluster, set up as
	// internal/target/pgbouncer's engine test does.
	b := pgbouncertest.StartTB(t, pgbouncertest.Options{ServerHost: cl.Host, ServerPort: cl.Port,
		Databases: map[string]string{db: fmt.Sprintf("host=%s port=%d dbname=%s", cl.Host, cl.Port, db)},
		Settings:  map[string]string{"server_idle_timeout": "1"}})

	roles, group := pgtest.NewDualRoles(t, cl, pgtest.UniqueName(t, "sm"))

	// AWS Secrets Manager: a secret with an old value and a field rotor
	// does not manage, so the first rotation is staged too.
	sm := awssmfake.New(t)
	sm.Seed(awsSecret, fmt.Sprintf(`{"DATABASE_URL":%q,"OTHER":"keep-aws"}`, staleURL))

	// Vault: unrelated keys at the same path.
	vlt := vaultfake.New(t)
	vaultOthers := map[string]any{"OTHER": "keep-vault", "FEATURE_FLAGS": json.Number("42")}
	seed := maps.Clone(vaultOthers)
	seed["DATABASE_URL"] = staleURL
	vlt.Seed("secret", vaultPath, seed)

	// Kubernetes: the Deployment to restart; the Secret does not exist yet.
	cs := fake.NewClientset(&appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: deployName, Namespace: namespace},
		Spec: appsv1.DeploymentSpec{
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Annotations: map[string]string{"other": "keep"}}},
		},
	})
	lookup := func(typ string) (target.Factory, error) {
		if typ == kubernetes.Type {
			return func(p target.Params) (target.Target, error) { return kubefake.NewTarget(t, p, cs) }, nil
		}
		return tbuiltin.Lookup(typ)
	}

	dir := t.TempDir()
	envFile := filepath.Join(dir, ".env")
	require.NoError(t, os.WriteFile(envFile, []byte("# app\nOTHER=keep-me\nDATABASE_URL="+staleURL+"\n"), 0o600))

	env := awsfake.Env(t.TempDir())
	env["ADMIN_URL"] = adminURL.Reveal()
	env["PGBOUNCER_ADMIN_URL"] = b.AdminURL().Reveal()
	env["VAULT_TOKEN"] = vlt.Token

	// The PgBouncer part follows docs/targets/pgbouncer.md: test against
	// the server, the pgbouncer target first with concurrency 1, and
	// retire: next-rotation.
	yaml := fmt.Sprintf(`version: 1
credentials:
  app:
    provider:
      type: postgres
      admin_url: ${ADMIN_URL}
    connection:
      url: postgresql://%s:%d/%s?sslmode=require&channel_binding=require
      pooled_url: postgresql://%s:%d/%s?sslmode=disable
    strategy: dual
    roles: [%q, %q]
    group: %q
    test:
      pooled: false
    retire: next-rotation
    publish:
      concurrency: 1
    targets:
      - name: bouncer
        type: pgbouncer
        auth_file: %q
        admin_url: ${PGBOUNCER_ADMIN_URL}
        values:
          DATABASE_URL: "{{.PooledURL}}"
      - name: aws
        type: aws-secrets-manager
        secret_id: %s
        endpoint: %q
        staged: true
        values:
          DATABASE_URL: "{{.URL}}"
      - name: vault
        type: vault
        address: %q
        token: ${VAULT_TOKEN}
        path: %s
        values:
          DATABASE_URL: "{{.URL}}"
      - name: k8s
        type: kubernetes
        namespace: %s
        secret_name: %s
        restart:
          - {kind: Deployment, name: %s}
        values:
          DATABASE_URL: "{{.URL}}"
      - name: env
        type: dotenv
        path: %q
        values:
          DATABASE_URL: "{{.URL}}"
          POOLED_DATABASE_URL: "{{.PooledURL}}"
`, cl.Host, cl.Port, db, b.Host, b.Port, db, roles[0], roles[1], group,
		b.AuthFile, awsSecret, sm.URL, vlt.URL, vaultPath, namespace, secretName, deployName, envFile)
	cfgPath := filepath.Join(dir, "rotor.yaml")
	require.NoError(t, os.WriteFile(cfgPath, []byte(yaml), 0o600))
	cfg, err := resolve.Load(cfgPath, func(k string) (string, bool) { v, ok := env[k]; return v, ok }, resolve.Registry{
		Provider: pbuiltin.Lookup, Target: lookup, HTTPClient: &http.Client{},
		Getenv: func(k string) string { return env[k] }, Now: time.Now,
	})
	require.NoError(t, err)
	t.Cleanup(func() { cfg.Close() })
	cr, err := cfg.Credential("app")
	require.NoError(t, err)
	_, err = cr.Provider.EnsureRoles(ctx, provider.EnsureRolesRequest{Group: group, Logins: roles, Database: db})
	require.NoError(t, err)

	st, err := sqlite.Open(ctx, filepath.Join(dir, "state.db"))
	require.NoError(t, err)
	t.Cleanup(func() { st.Close() })
	key := make([]byte, 32)
	_, err = rand.Read(key)
	require.NoError(t, err)
	sealer, err := secret.NewSealer(key)
	require.NoError(t, err)
	eng := &engine.Engine{Store: st, Sealer: sealer}

	var previous secret.String
	for i, wantRole := range roles {
		n := i + 1
		res, err := eng.Rotate(ctx, cr, engine.Options{})
		require.NoError(t, err, "rotation %d", n)
		require.Equal(t, store.StatusSucceeded, res.Status, "rotation %d: %s", n, res.Outcome)
		require.Equal(t, wantRole, res.Role, "rotation %d: the roles switch", n)
		if i == 1 {
			require.Equal(t, roles[0], res.OldRole)
		}

		// The .env file: the direct URL names the new role and logs in
		// with TLS and channel binding.
		dotenv, err := godotenv.Read(envFile)
		require.NoError(t, err)
		require.Equal(t, "keep-me", dotenv["OTHER"], "the .env file keeps its other lines")
		url := secret.New(dotenv["DATABASE_URL"])
		pooled := secret.New(dotenv["POOLED_DATABASE_URL"])
		require.Equal(t, wantRole, user(t, url), "rotation %d: the .env file names the new role", n)
		require.Equal(t, wantRole, user(t, pooled))
		require.False(t, url.Equal(previous), "rotation %d published a new URL", n)
		requireLogin(t, ctx, url, "the .env file's DATABASE_URL")

		// AWS Secrets Manager: AWSCURRENT holds the new URL, AWSPREVIOUS
		// the one before, and no AWSPENDING is left behind.
		cur := awsField(t, sm, awssmfake.Current, "DATABASE_URL")
		require.True(t, cur.Equal(url), "rotation %d: AWSCURRENT does not hold the new URL", n)
		require.Equal(t, "keep-aws", awsField(t, sm, awssmfake.Current, "OTHER").Reveal(), "AWS: the unmanaged field is kept")
		prev := awsField(t, sm, awssmfake.Previous, "DATABASE_URL")
		if i == 0 {
			require.Equal(t, staleURL, prev.Reveal(), "AWSPREVIOUS holds the seeded value")
		} else {
			require.True(t, prev.Equal(previous), "AWSPREVIOUS does not hold the first rotation's URL")
		}
		require.Equal(t, n, stagedPuts(sm), "rotation %d: the new version must be written as AWSPENDING first", n)
		stages := sm.Stages(awsSecret)
		require.NotContains(t, stages, awssmfake.Pending, "rotation %d left AWSPENDING behind", n)
		latest, ok := sm.Latest(awsSecret)
		require.True(t, ok)
		require.Equal(t, sm.Versions(awsSecret)[len(sm.Versions(awsSecret))-1], stages[awssmfake.Current], "the newest version is AWSCURRENT")
		require.Contains(t, latest, `"OTHER"`)
		require.Len(t, sm.Versions(awsSecret), 1+n, "one new version per rotation")
		requireLogin(t, ctx, cur, "AWSCURRENT's DATABASE_URL")

		// Vault: the managed key holds the new URL; the unrelated keys are
		// untouched.
		data, _, ok := vlt.Data("secret", vaultPath)
		require.True(t, ok, "vault holds no secret at %s", vaultPath)
		vv, ok := data["DATABASE_URL"].(string)
		require.True(t, ok, "vault holds no DATABASE_URL")
		require.True(t, secret.New(vv).Equal(url), "rotation %d: vault holds a different DATABASE_URL", n)
		for k, want := range vaultOthers {
			require.EqualValues(t, want, data[k], "vault key %s must be intact", k)
		}
		require.Len(t, data, 1+len(vaultOthers), "vault gained or lost keys")
		requireLogin(t, ctx, secret.New(vv), "vault's DATABASE_URL")

		// Kubernetes: the Secret holds the new URL, and the Deployment was
		// restarted once per rotation.
		s, err := cs.CoreV1().Secrets(namespace).Get(ctx, secretName, metav1.GetOptions{})
		require.NoError(t, err)
		kv := secret.New(string(s.Data["DATABASE_URL"]))
		require.True(t, kv.Equal(url), "rotation %d: the Kubernetes Secret holds a different DATABASE_URL", n)
		requireLogin(t, ctx, kv, "the Kubernetes Secret's DATABASE_URL")
		d, err := cs.AppsV1().Deployments(namespace).Get(ctx, deployName, metav1.GetOptions{})
		require.NoError(t, err)
		require.NotEmpty(t, d.Spec.Template.Annotations[kubernetes.RestartedAtAnnotation], "the Deployment was not restarted")
		require.Equal(t, "keep", d.Spec.Template.Annotations["other"], "the restart keeps other annotations")
		require.Equal(t, n, deploymentPatches(cs), "the Deployment is restarted once per rotation")

		// PgBouncer: a client logs in through it with the new password.
		require.NoError(t, pgtest.CanLogin(ctx, pooled), "rotation %d: the new role must log in through PgBouncer", n)

		// The engine's result: every target written, verified where it
		// can be read back (PgBouncer's auth_file holds only a verifier).
		require.Len(t, res.Targets, len(targets))
		for _, name := range targets {
			tr := targetResult(t, res, name)
			want := store.DeliveryVerified
			if name == "bouncer" {
				want = store.DeliveryUnverified
			}
			require.Equal(t, want, tr.State, "rotation %d: %s: %s", n, name, tr.Detail)
			require.Empty(t, tr.Error, name)
			require.True(t, tr.Changed, "%s was written", name)
		}
		previous = url
	}
}

// deploymentPatches counts the patches the fake API server got for
// Deployments: the rollout restarts.
func deploymentPatches(cs *fake.Clientset) int {
	n := 0
	for _, a := range cs.Actions() {
		if a.GetVerb() == "patch" && a.GetResource().Resource == "deployments" {
			n++
		}
	}
	return n
}

// stagedPuts counts the PutSecretValue calls that labelled the new version
// AWSPENDING only, as staged: true writes it.
func stagedPuts(sm *awssmfake.Server) int {
	n := 0
	for _, r := range sm.Requests() {
		if r.Op == "PutSecretValue" && len(r.VersionStages) == 1 && r.VersionStages[0] == awssmfake.Pending {
			n++
		}
	}
	return n
}

// awsField is one field of the JSON value the version holding stage has.
func awsField(t *testing.T, sm *awssmfake.Server, stage, field string) secret.String {
	t.Helper()
	v, ok := sm.Value(awsSecret, stage)
	require.True(t, ok, "no version holds %s", stage)
	var doc map[string]string
	require.NoError(t, json.Unmarshal([]byte(v), &doc), "the %s value is not a JSON object", stage)
	f, ok := doc[field]
	require.True(t, ok, "the %s value has no %s", stage, field)
	return secret.New(f)
}

// user is the role a connection string names.
func user(t *testing.T, u secret.String) string {
	t.Helper()
	c, err := connstr.Parse(u.Reveal())
	require.NoError(t, secret.Scrub(err, u), "a published URL does not parse")
	return c.User
}

// requireLogin logs in with a direct connection string as a consumer
// would, after checking it asks for TLS and channel binding.
func requireLogin(t *testing.T, ctx context.Context, u secret.String, what string) {
	t.Helper()
	require.True(t, strings.Contains(u.Reveal(), "sslmode=require"), "%s must ask for TLS", what)
	require.True(t, strings.Contains(u.Reveal(), "channel_binding=require"), "%s must ask for channel binding", what)
	require.NoError(t, pgtest.CanLogin(ctx, u), "%s must log in", what)
}

func targetResult(t *testing.T, res *engine.Result, name string) engine.TargetResult {
	t.Helper()
	for _, tr := range res.Targets {
		if tr.Name == name {
			return tr
		}
	}
	require.FailNow(t, "target missing from the result", "target %s", name)
	return engine.TargetResult{}
}
