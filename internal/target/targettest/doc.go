package targettest

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	pbuiltin "github.com/rotorhq/rotor/internal/provider/builtin"
	"github.com/rotorhq/rotor/internal/resolve"
	"github.com/rotorhq/rotor/internal/target"
)

// DocExample loads the first YAML example of docs/targets/<doc> (a target
// list entry) through the real config layer, so the documented keys are the
// ones the target takes, and checks that writing the token literally
// instead of ${tokenEnv} is refused. Call it from a package directly under
// internal/target.
func DocExample(t *testing.T, doc, typ string, factory target.Factory, tokenEnv string) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "..", "..", "docs", "targets", doc))
	require.NoError(t, err)
	_, rest, ok := strings.Cut(string(raw), "```yaml\n")
	require.True(t, ok, "%s opens with a yaml example", doc)
	example, _, ok := strings.Cut(rest, "```")
	require.True(t, ok)

	cases := []struct {
		name    string
		edit    func(string) string
		wantErr string
	}{
		{name: "as documented", edit: func(s string) string { return s }},
		{name: "literal token", edit: func(s string) string { return strings.ReplaceAll(s, "${"+tokenEnv+"}", "literal-token") }, wantErr: "holds a secret in the config file"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var b strings.Builder
			b.WriteString("version: 1\nstate: state.db\ncredentials:\n  app-db:\n    provider:\n      type: postgres\n      admin_url: ${ROTOR_ADMIN_URL}\n")
			b.WriteString("    connection: {url: postgresql://db.internal:5432/app}\n    strategy: single\n    role: app\n")
			for _, line := range strings.Split(strings.TrimRight(tc.edit(example), "\n"), "\n") {
				b.WriteString("    " + line + "\n")
			}
			path := filepath.Join(t.TempDir(), "rotor.yaml")
			require.NoError(t, os.WriteFile(path, []byte(b.String()), 0o600))
			env := map[string]string{"ROTOR_ADMIN_URL": "postgresql://admin:pw@db.internal/postgres", tokenEnv: "tok"}
			reg := resolve.Registry{
				Provider: pbuiltin.Lookup,
				Target: func(got string) (target.Factory, error) {
					if got != typ {
						return nil, fmt.Errorf("unknown target type %q", got)
					}
					return factory, nil
				},
				Getenv: func(string) string { return "" },
			}
			cfg, err := resolve.Load(path, func(k string) (string, bool) { v, ok := env[k]; return v, ok }, reg)
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			t.Cleanup(func() { cfg.Close() })
			require.NotEmpty(t, cfg.Credentials[0].Targets)
			for _, tg := range cfg.Credentials[0].Targets {
				require.Equal(t, typ, tg.Impl.Info().Type)
			}
		})
	}
}
