package builtin_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/rotorhq/rotor/internal/provider"
	"github.com/rotorhq/rotor/internal/provider/builtin"
)

func TestLookup(t *testing.T) {
	t.Parallel()
	tests := []struct {
		typ     string
		wantErr string
	}{
		{"postgres", ""},
		{"x", `unknown provider type "x" (known: ` + strings.Join(builtin.Names(), ", ") + ")"},
		{"", `unknown provider type "" (known: `},
		{"Postgres", `unknown provider type "Postgres"`},
	}
	for _, tt := range tests {
		t.Run(tt.typ, func(t *testing.T) {
			t.Parallel()
			f, err := builtin.Lookup(tt.typ)
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				require.Nil(t, f)
				return
			}
			require.NoError(t, err)
			require.NotNil(t, f)
		})
	}
}

func TestNamesSorted(t *testing.T) {
	t.Parallel()
	names := builtin.Names()
	require.Contains(t, names, "postgres")
	require.IsIncreasing(t, names)
	require.Len(t, names, len(builtin.Providers))
}

// TestFactoriesDoNoIO builds every provider from a minimal config pointing
// at a port nobody listens on: a factory must not connect.
func TestFactoriesDoNoIO(t *testing.T) {
	t.Parallel()
	configs := map[string]string{
		"postgres": "admin_url: postgresql://admin:pw@127.0.0.1:1/db",
		"neon":     "api_key: napi_x\nproject_id: p\napi_url: http://127.0.0.1:1/api/v2",
	}
	for _, name := range builtin.Names() {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			cfg, ok := configs[name]
			require.True(t, ok, "add a minimal config for provider %q to this test", name)
			f, err := builtin.Lookup(name)
			require.NoError(t, err)
			p, err := f(provider.Params{Decode: func(v any) error { return yaml.Unmarshal([]byte(cfg), v) }})
			require.NoError(t, err)
			require.NoError(t, p.Close())
		})
	}
}
