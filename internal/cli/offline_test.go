package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestCommandsThatDoNotConnectNeedNoSecrets: status, history, validate
// --offline and plan --offline read local state and the config only, so
// the connection secrets the config references (admin_url, a target's
// token) need not be set for them; every command that connects still
// refuses to start without each one, naming it, so none is ever used as
// an empty string.
func TestCommandsThatDoNotConnectNeedNoSecrets(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "rotor.yaml")
	src := `version: 1
defaults:
  provider: {type: postgres, admin_url: "${ROTOR_ADMIN_URL}"}
credentials:
  app:
    connection: {url: "postgresql://db.internal:5432/app?sslmode=require"}
    strategy: dual
    roles: [app_blue, app_green]
    targets:
      - {name: env, type: dotenv, path: .env, values: {DATABASE_URL: "{{.URL}}"}}
      - {name: ci, type: github-actions, repo: acme/api, token: "${GITHUB_TOKEN}", values: {DATABASE_URL: "{{.URL}}"}}
`
	require.NoError(t, os.WriteFile(path, []byte(src), 0o600))

	for _, args := range [][]string{{"status"}, {"status", "app"}, {"history"}, {"history", "app"}, {"validate", "--offline"}, {"plan", "--offline"}, {"plan", "--offline", "--json"}, {"status", "--json"}} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			t.Parallel()
			code, out, errOut := run(t, testEnv{}, "", append(args, "--config", path)...)
			require.Equal(t, ExitOK, code, errOut)
			require.NotEmpty(t, out)
			require.Empty(t, errOut)
			if strings.Contains(strings.Join(args, " "), "--json") {
				require.True(t, json.Valid([]byte(out)), out)
			}
			if args[0] == "plan" {
				require.Contains(t, out, "github repository acme/api actions secrets", "the target is described as configured")
			}
		})
	}

	for _, args := range [][]string{{"validate"}, {"plan"}, {"status", "--live"}, {"rotate", "app"}, {"resume"}, {"setup-roles", "app"}, {"retire", "app"}} {
		t.Run(strings.Join(args, " ")+" needs them", func(t *testing.T) {
			t.Parallel()
			code, out, errOut := run(t, testEnv{}, "", append(args, "--config", path)...)
			require.Equal(t, ExitUsage, code, errOut)
			require.Empty(t, out)
			require.Contains(t, errOut, ":3: environment variable ROTOR_ADMIN_URL is not set")
			require.Contains(t, errOut, ":11: environment variable GITHUB_TOKEN is not set")
		})
	}
	_, err := os.Stat(filepath.Join(dir, ".rotor"))
	require.ErrorIs(t, err, os.ErrNotExist, "nothing was created")
}
