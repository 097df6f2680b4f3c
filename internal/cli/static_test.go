package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestUnwritableTemplateRefusedBeforeAnythingChanges: a dotenv template
// that no quoting can write ("it's $$HOME …": the quote rules out single
// quotes, the expansion double quotes) used to pass validate and plan and
// stop a single rotation at publish, after the password changed. It is a
// config error now, with its line, for validate --offline, plan and
// rotate alike — and every other problem of the file comes with it.
func TestUnwritableTemplateRefusedBeforeAnythingChanges(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "rotor.yaml")
	src := `version: 1
credentials:
  app:
    provider: {type: postgres, admin_url: "${ROTOR_ADMIN_URL}"}
    connection: {url: "postgresql://db.internal:5432/app?sslmode=require"}
    strategy: single
    role: app
    targets:
      - name: env
        type: dotenv
        path: .env
        values:
          DATABASE_URL: "{{.URL}}"
          GREETING: "it's $$HOME {{.Password}}"
      - name: strict
        type: dotenv
        path: strict.env
        quote: double
        values:
          HOME_URL: "$${HOME}{{.URL}}"
    schedule: {every: 30x}
`
	require.NoError(t, os.WriteFile(path, []byte(src), 0o600))
	line := func(marker string) string { return itoa(strings.Count(src[:strings.Index(src, marker)], "\n") + 1) }
	env := testEnv{"ROTOR_ADMIN_URL": "postgresql://admin:" + canary + "@db.internal/postgres"}
	for _, args := range [][]string{{"validate", "--offline"}, {"validate"}, {"plan", "--offline"}, {"plan"}, {"rotate", "app"}} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			t.Parallel()
			code, out, errOut := run(t, env, "", append(args, "--config", path)...)
			require.Equal(t, ExitUsage, code, errOut)
			require.Empty(t, out)
			require.Contains(t, errOut, path+":"+line("GREETING")+": credentials.app.targets[0] (env).values.GREETING: the value for GREETING cannot be written")
			require.Contains(t, errOut, path+":"+line("HOME_URL")+": credentials.app.targets[1] (strict).values.HOME_URL: the value for HOME_URL contains a $ followed by a variable name")
			require.Contains(t, errOut, path+":"+line("every: 30x")+`: credentials.app.schedule.every: bad duration "30x"`, "every problem at once")
			require.Equal(t, 3, strings.Count(errOut, path+":"), errOut)
			require.NotContains(t, errOut, canary)
		})
	}
	_, err := os.Stat(filepath.Join(dir, ".rotor"))
	require.ErrorIs(t, err, os.ErrNotExist, "nothing was opened or created")
	_, err = os.Stat(filepath.Join(dir, ".env"))
	require.ErrorIs(t, err, os.ErrNotExist)
}
