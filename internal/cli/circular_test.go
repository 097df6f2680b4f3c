package cli

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// circularConfig writes a config whose state store is PostgreSQL at
// state and whose two credentials rotate app (single) and app_blue and
// app_green (dual).
func circularConfig(t *testing.T, state string) string {
	t.Helper()
	cfg := filepath.Join(t.TempDir(), "rotor.yaml")
	require.NoError(t, os.WriteFile(cfg, fmt.Appendf(nil, `version: 1
state: %s
defaults:
  provider: {type: postgres, admin_url: "${ADMIN_URL}"}
  connection: {url: "postgresql://db.internal:5432/app?sslmode=require"}
credentials:
  single-db:
    strategy: single
    role: app
    targets: [{name: env, type: dotenv, path: .env, values: {DATABASE_URL: "{{.URL}}"}}]
  dual-db:
    strategy: dual
    roles: [app_blue, app_green]
    group: app_owner
    targets: [{name: env, type: dotenv, path: .env.dual, values: {DATABASE_URL: "{{.URL}}"}}]
`, state), 0o600))
	return cfg
}

func TestCircularStateRoleRefused(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, state string
		env         testEnv
		credential  string
	}{
		{name: "single role in the URL", state: "postgres://app@db.internal/rotor", credential: "single-db"},
		{name: "a dual role", state: "postgresql://app_green@db.internal:5432/rotor?sslmode=verify-full", credential: "dual-db"},
		{name: "from PGUSER", state: "postgres://db.internal/rotor", env: testEnv{"PGUSER": "app_blue"}, credential: "dual-db"},
		{name: "from ROTOR_STATE_URL", state: ".rotor/state.db", env: testEnv{"ROTOR_STATE_URL": "postgres://app:" + canary + "@other-host/rotor"}, credential: "single-db"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			env := testEnv{"ROTOR_CONFIG": circularConfig(t, tt.state), "ADMIN_URL": "postgresql://admin@db.internal/postgres"}
			for k, v := range tt.env {
				env[k] = v
			}
			for _, args := range [][]string{{"rotate", tt.credential}, {"rotate", "--due"}, {"resume"}} {
				code, out, errOut := run(t, env, "", args...)
				require.Equal(t, ExitUsage, code, "%v: %s%s", args, out, errOut)
				require.Contains(t, errOut, "credential "+tt.credential+" rotates role")
				require.Contains(t, errOut, "Give the store a role of its own")
				require.NotContains(t, out+errOut, canary)
			}

			code, out, errOut := run(t, env, "", "validate", "--offline", "--json")
			require.Equal(t, ExitError, code, errOut)
			var checks []Check
			require.NoError(t, json.Unmarshal([]byte(out), &checks))
			var failed []Check
			for _, c := range checks {
				if !c.OK {
					failed = append(failed, c)
				}
			}
			require.Len(t, failed, 1)
			require.Equal(t, tt.credential, failed[0].Credential)
			require.Contains(t, failed[0].Error, "no longer opens")
		})
	}
}

// Rotating another credential of the same config is not circular, and a
// store with a role of its own is fine.
func TestCircularOnlyWhatRotates(t *testing.T) {
	t.Parallel()
	env := testEnv{"ROTOR_CONFIG": circularConfig(t, "postgres://rotor_state@db.internal/rotor"), "ADMIN_URL": "postgresql://admin@db.internal/postgres"}
	code, out, errOut := run(t, env, "", "validate", "--offline")
	require.Equal(t, ExitOK, code, out+errOut)
	require.NotContains(t, out, "state store's role")

	env["ROTOR_CONFIG"] = circularConfig(t, "postgres://app@db.internal/rotor")
	code, out, errOut = run(t, env, "", "validate", "--offline", "dual-db")
	require.Equal(t, ExitOK, code, "only single-db rotates app: %s%s", out, errOut)
}
