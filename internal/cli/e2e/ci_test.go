//go:build unix

package e2e_test

import (
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/joho/godotenv"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/rotorhq/rotor/internal/connstr"
	pbuiltin "github.com/rotorhq/rotor/internal/provider/builtin"
	"github.com/rotorhq/rotor/internal/resolve"
	"github.com/rotorhq/rotor/internal/secret"
	"github.com/rotorhq/rotor/internal/store"
	tbuiltin "github.com/rotorhq/rotor/internal/target/builtin"
)

// examplesDir is the repository's examples/, from this package.
var examplesDir = filepath.Join("..", "..", "..", "examples")

func readYAML(t *testing.T, rel string) (map[string]any, string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(examplesDir, rel))
	require.NoError(t, err)
	var doc map[string]any
	require.NoError(t, yaml.Unmarshal(b, &doc), "%s is not valid YAML", rel)
	return doc, string(b)
}

// yamlAt walks doc by map keys and list indexes; it fails the test when a
// step is missing or of another kind.
func yamlAt[T any](t *testing.T, doc any, steps ...any) T {
	t.Helper()
	cur := doc
	for i, s := range steps {
		switch k := s.(type) {
		case string:
			m, ok := cur.(map[string]any)
			require.True(t, ok, "at %v: want a mapping, got %T", steps[:i], cur)
			v, ok := m[k]
			require.True(t, ok, "no %q at %v (keys: %v)", k, steps[:i], mapKeys(m))
			cur = v
		case int:
			l, ok := cur.([]any)
			require.True(t, ok, "at %v: want a list, got %T", steps[:i], cur)
			require.Less(t, k, len(l), "at %v", steps[:i])
			cur = l[k]
		}
	}
	v, ok := cur.(T)
	require.True(t, ok, "at %v: want %T, got %T (%v)", steps, v, cur, cur)
	return v
}

func mapKeys(m map[string]any) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

var (
	// A URL with a password in it; "…" stands for one in the examples'
	// comments and is not one.
	urlWithPassword = regexp.MustCompile(`[a-z]+://[^\s/@:]+:[^\s@/…]+@`)
	// 32 bytes in base64, the shape of ROTOR_KEY.
	keyLike        = regexp.MustCompile(`[A-Za-z0-9+/]{43}=`)
	githubSecret   = regexp.MustCompile(`^\$\{\{ secrets\.[A-Z][A-Z0-9_]* \}\}$`)
	secretVariable = regexp.MustCompile(`(^ROTOR_STATE_URL$|^ROTOR_KEY$|TOKEN|PASSWORD|ADMIN_URL|SECRET)`)
)

func requireNoSecretInline(t *testing.T, name, text string) {
	t.Helper()
	require.Empty(t, urlWithPassword.FindAllString(text, -1), "%s holds a URL with a password", name)
	require.Empty(t, keyLike.FindAllString(text, -1), "%s holds something shaped like a key", name)
}

// rotorArgs splits a shell line that runs rotor into rotor's arguments.
func rotorArgs(t *testing.T, line string) []string {
	t.Helper()
	f := strings.Fields(line)
	require.NotEmpty(t, f)
	require.Equal(t, "rotor", f[0], "the command runs rotor: %q", line)
	return f[1:]
}

func requireRotateDue(t *testing.T, args []string, where string) {
	t.Helper()
	require.GreaterOrEqual(t, len(args), 2, where)
	require.Equal(t, []string{"rotate", "--due"}, args[:2], "%s runs `rotor rotate --due`", where)
}

// githubRotateStep is the workflow's step that runs rotor, and rotor's
// arguments in it.
func githubRotateStep(t *testing.T) (map[string]any, []string) {
	t.Helper()
	wf, _ := readYAML(t, "ci/github-actions.yml")
	steps := yamlAt[[]any](t, wf, "jobs", "rotate", "steps")
	for _, s := range steps {
		step := s.(map[string]any)
		if run, ok := step["run"].(string); ok && strings.HasPrefix(strings.TrimSpace(run), "rotor ") {
			return step, rotorArgs(t, strings.TrimSpace(run))
		}
	}
	t.Fatal("no step of the workflow runs rotor")
	return nil, nil
}

// TestCIExamples checks what each scheduled-run example promises: valid
// YAML, a schedule, `rotor rotate --due`, no two runs at once, and every
// secret from the platform's secret store, none written in the file.
func TestCIExamples(t *testing.T) {
	t.Parallel()
	t.Run("github-actions", func(t *testing.T) {
		t.Parallel()
		wf, text := readYAML(t, "ci/github-actions.yml")
		requireNoSecretInline(t, "github-actions.yml", text)
		cron := yamlAt[string](t, wf, "on", "schedule", 0, "cron")
		require.Len(t, strings.Fields(cron), 5, "a five-field cron")
		require.NotEmpty(t, yamlAt[string](t, wf, "concurrency", "group"), "one concurrency group, so two runs never overlap")
		require.False(t, yamlAt[bool](t, wf, "concurrency", "cancel-in-progress"), "a run in progress is never cancelled mid-rotation")

		step, args := githubRotateStep(t)
		requireRotateDue(t, args, "the workflow")
		env := yamlAt[map[string]any](t, step, "env")
		for _, k := range []string{"ROTOR_STATE_URL", "ROTOR_KEY"} {
			require.Contains(t, env, k, "the state is in PostgreSQL and the key from a secret")
		}
		for k, v := range env {
			if secretVariable.MatchString(k) {
				require.Regexp(t, githubSecret, v, "%s comes from a repository secret", k)
			}
		}
		require.NotContains(t, yamlAt[string](t, step, "run"), "secrets.", "secrets reach rotor through env, never its command line")

		// Every ${VAR} of the config the workflow runs with is a variable
		// the step sets: loading it with exactly those fails on any other.
		given := map[string]string{}
		for k := range env {
			given[k] = "postgresql://user@db.internal/x"
		}
		reg := resolve.Registry{Provider: pbuiltin.Lookup, Target: tbuiltin.Lookup, Getenv: func(k string) string { return given[k] }}
		cfg, err := resolve.Load(filepath.Join(examplesDir, "ci", "rotor.yaml"), func(k string) (string, bool) {
			v, ok := given[k]
			return v, ok
		}, reg)
		require.NoError(t, err, "examples/ci/rotor.yaml with the workflow's environment")
		defer cfg.Close()
		require.NotEmpty(t, cfg.Credentials)
		for _, cr := range cfg.Credentials {
			require.True(t, cr.Schedule.Periodic(), "%s has a schedule for --due", cr.Name)
		}
	})

	t.Run("gitlab-ci", func(t *testing.T) {
		t.Parallel()
		doc, text := readYAML(t, "ci/gitlab-ci.yml")
		requireNoSecretInline(t, "gitlab-ci.yml", text)
		job := yamlAt[map[string]any](t, doc, "rotor-rotate")
		require.Contains(t, yamlAt[string](t, job, "rules", 0, "if"), `$CI_PIPELINE_SOURCE == "schedule"`, "the job runs from a pipeline schedule")
		require.NotEmpty(t, yamlAt[string](t, job, "resource_group"), "one resource group, so two jobs never overlap")
		script := yamlAt[[]any](t, job, "script")
		requireRotateDue(t, rotorArgs(t, script[len(script)-1].(string)), "the job")
		require.NotContains(t, doc, "variables", "secrets are CI/CD variables of the project, not of the file")
		require.NotContains(t, job, "variables")
	})

	t.Run("kubernetes", func(t *testing.T) {
		t.Parallel()
		cj, text := readYAML(t, "kubernetes/cronjob.yaml")
		requireNoSecretInline(t, "cronjob.yaml", text)
		require.Equal(t, "CronJob", yamlAt[string](t, cj, "kind"))
		require.Len(t, strings.Fields(yamlAt[string](t, cj, "spec", "schedule")), 5)
		require.Equal(t, "Forbid", yamlAt[string](t, cj, "spec", "concurrencyPolicy"), "two runs never overlap")
		pod := yamlAt[map[string]any](t, cj, "spec", "jobTemplate", "spec", "template", "spec")
		require.NotContains(t, pod, "volumes", "no volume: the state is in PostgreSQL")
		require.True(t, yamlAt[bool](t, pod, "securityContext", "runAsNonRoot"))
		containers := yamlAt[[]any](t, pod, "containers")
		require.Len(t, containers, 1)
		c := containers[0].(map[string]any)
		require.NotContains(t, c, "volumeMounts")
		require.True(t, yamlAt[bool](t, c, "securityContext", "readOnlyRootFilesystem"))
		require.False(t, yamlAt[bool](t, c, "securityContext", "allowPrivilegeEscalation"))
		var args []string
		for _, a := range yamlAt[[]any](t, c, "args") {
			args = append(args, a.(string))
		}
		requireRotateDue(t, args, "the CronJob")
		require.NotEmpty(t, yamlAt[string](t, c, "envFrom", 0, "secretRef", "name"), "the environment comes from a Secret")
		for _, e := range yamlAt[[]any](t, c, "env") {
			name := yamlAt[string](t, e, "name")
			if secretVariable.MatchString(name) {
				require.NotContains(t, e, "value", "%s must come from the Secret, not be written here", name)
			}
		}
	})
}

// dotenvConn is DATABASE_URL as the dotenv file at path holds it.
func dotenvConn(t *testing.T, w *world, path string) *connstr.Conn {
	t.Helper()
	m, err := godotenv.Read(path)
	require.NoError(t, err)
	raw := secret.New(m["DATABASE_URL"])
	w.learn(raw)
	c, err := connstr.Parse(raw.Reveal())
	require.NoError(t, secret.Scrub(err, raw))
	w.learn(c.Password)
	return c
}

// TestCIStory plays a scheduled CI job without CI: the workflow's own
// `rotor rotate --due` command, run twice, each time in a fresh directory
// holding nothing but rotor.yaml, with the environment the workflow gives
// (the state store's URL and the key from secrets, the admin URL). The
// first run rotates the credential that is due; the second, on another
// "machine", sees that in the shared store and rotates nothing. Neither
// leaves state behind on its disk.
func TestCIStory(t *testing.T) {
	t.Parallel()
	w := newWorld(t, nil,
		credSpec{name: "app", strategy: "single", extra: "    schedule:\n      every: 30d\n"},
		credSpec{name: "manual", strategy: "single"}) // no schedule: --due never picks it
	st := sharedStore(t, w)
	step, args := githubRotateStep(t)
	env := yamlAt[map[string]any](t, step, "env")

	rawKey, err := secret.GenerateKey(nil)
	require.NoError(t, err)
	key := secret.New(base64.StdEncoding.EncodeToString(rawKey))
	w.learn(key)
	var jobEnv []string
	for _, kv := range w.env {
		if !strings.HasPrefix(kv, "ROTOR_CONFIG=") {
			jobEnv = append(jobEnv, kv)
		}
	}
	jobEnv = append(jobEnv, "ROTOR_KEY="+key.Reveal())
	for _, k := range []string{"ROTOR_STATE_URL", "ROTOR_KEY"} {
		require.Contains(t, env, k, "the workflow gives %s, which this job relies on", k)
		require.True(t, slices.ContainsFunc(jobEnv, func(kv string) bool { return strings.HasPrefix(kv, k+"=") }))
	}
	cfg, err := os.ReadFile(w.cfgPath)
	require.NoError(t, err)

	job := func() (result, string) {
		t.Helper()
		dir := t.TempDir()
		require.NoError(t, os.WriteFile(filepath.Join(dir, "rotor.yaml"), cfg, 0o600))
		p, err := startRotor(dir, jobEnv, args...)
		require.NoError(t, err)
		return w.finish(p), dir
	}
	results := func(r result) []map[string]any {
		t.Helper()
		var out []map[string]any
		require.NoError(t, json.Unmarshal([]byte(r.stdout), &out), "--json output: %s", w.scrub(r.stdout))
		return out
	}

	first, dir1 := job()
	require.Equal(t, exitOK, first.code, w.scrub(first.output()))
	res := results(first)
	require.Len(t, res, 1, "only the credential with a schedule is due")
	require.Equal(t, "app", res[0]["credential"])
	require.Equal(t, string(store.StatusSucceeded), res[0]["status"])
	require.NoDirExists(t, filepath.Join(dir1, ".rotor"), "nothing of rotor's state stays on the job's disk")
	m := dotenvConn(t, w, filepath.Join(dir1, ".env.app"))
	require.NotNil(t, m, "the first job published the new password")
	require.NoError(t, w.login(t.Context(), m.User, m.Password))

	second, dir2 := job()
	require.Equal(t, exitOK, second.code, w.scrub(second.output()))
	require.Empty(t, results(second), "the second job sees the first one's rotation and finds nothing due")
	require.NoFileExists(t, filepath.Join(dir2, ".env.app"), "nothing was published again")
	require.NoDirExists(t, filepath.Join(dir2, ".rotor"))
	require.NoError(t, w.login(t.Context(), m.User, m.Password), "the first job's password still works: nothing rotated it again")

	rots, err := st.ListRotations(t.Context(), store.ListRotationsParams{Credential: "app"})
	require.NoError(t, err)
	require.Len(t, rots, 1)
	manual, err := st.ListRotations(t.Context(), store.ListRotationsParams{Credential: "manual"})
	require.NoError(t, err)
	require.Empty(t, manual, "a credential without a schedule is never due")

	// A third job only looks: `rotor state info` with the same
	// environment names the shared store and opens its sealed version.
	dir3 := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir3, "rotor.yaml"), cfg, 0o600))
	p, err := startRotor(dir3, jobEnv, "state", "info", "--json")
	require.NoError(t, err)
	info := w.finish(p)
	require.Equal(t, exitOK, info.code, w.scrub(info.output()))
	var si struct {
		Driver  string `json:"driver"`
		StoreID string `json:"store_id"`
		Key     struct {
			Sealed int `json:"sealed_versions"`
			Opens  int `json:"opens"`
		} `json:"key"`
	}
	require.NoError(t, json.Unmarshal([]byte(info.stdout), &si))
	in, err := st.Info(t.Context())
	require.NoError(t, err)
	require.Equal(t, "postgres", si.Driver)
	require.Equal(t, in.ID, si.StoreID)
	require.Equal(t, 1, si.Key.Sealed)
	require.Equal(t, 1, si.Key.Opens, "the key from the secret opens what the first job sealed")
	w.requireNoLeaks(t, nil)
}
