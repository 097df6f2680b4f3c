package config_test

import (
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/rotorhq/rotor/internal/config"
	"github.com/rotorhq/rotor/internal/engine"
	pbuiltin "github.com/rotorhq/rotor/internal/provider/builtin"
	"github.com/rotorhq/rotor/internal/resolve"
	tbuiltin "github.com/rotorhq/rotor/internal/target/builtin"
)

// TestExamplesLoad loads every example config with the real provider and
// target registries, as `rotor validate --offline` would. Factories do no
// I/O, so no database is needed.
func TestExamplesLoad(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob(filepath.Join("..", "..", "examples", "*.yaml"))
	require.NoError(t, err)
	require.GreaterOrEqual(t, len(files), 3, "examples/ holds single.yaml, dual.yaml and neon.yaml")
	env := map[string]string{
		"ROTOR_ADMIN_URL":     "postgresql://admin:admin-pw@db.internal:5432/postgres?sslmode=require",
		"NEON_ADMIN_URL":      "postgresql://neondb_owner:npg-pw@ep-cool-darkness-123456.eu-central-1.aws.neon.tech/neondb?sslmode=require",
		"NEON_API_KEY":        "napi_example",
		"NEON_ADMIN_PASSWORD": "npg-example",
	}
	reg := resolve.Registry{Provider: pbuiltin.Lookup, Target: tbuiltin.Lookup, Getenv: func(string) string { return "" }}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			t.Parallel()
			cfg, err := resolve.Load(file, envOf(env), reg)
			require.NoError(t, err)
			t.Cleanup(func() { cfg.Close() })
			require.NotEmpty(t, cfg.Credentials)
			for _, cr := range cfg.Credentials {
				require.NotNil(t, cr.Provider, cr.Name)
				require.NotEmpty(t, cr.Targets, cr.Name)
				require.True(t, cr.Schedule.Periodic(), "%s: examples show a schedule", cr.Name)
			}
		})
	}
}

// TestExampleDetails pins what each example is there to show.
func TestExampleDetails(t *testing.T) {
	t.Parallel()
	env := envOf(map[string]string{
		"ROTOR_ADMIN_URL": "postgresql://admin:pw@db.internal/postgres",
		"NEON_ADMIN_URL":  "postgresql://neondb_owner:pw@ep-cool-darkness-123456.eu-central-1.aws.neon.tech/neondb",
	})
	reg := resolve.Registry{Provider: pbuiltin.Lookup, Target: tbuiltin.Lookup, Getenv: func(string) string { return "" }}
	load := func(t *testing.T, name string) *engine.Credential {
		t.Helper()
		cfg, err := resolve.Load(filepath.Join("..", "..", "examples", name), env, reg)
		require.NoError(t, err)
		t.Cleanup(func() { cfg.Close() })
		require.Len(t, cfg.Credentials, 1)
		return cfg.Credentials[0]
	}

	t.Run("single", func(t *testing.T) {
		t.Parallel()
		cr := load(t, "single.yaml")
		require.Equal(t, config.StrategySingle, cr.Strategy)
		require.Equal(t, "postgres", cr.ProviderType)
		require.Equal(t, "dotenv", cr.Targets[0].Type)
	})
	t.Run("dual", func(t *testing.T) {
		t.Parallel()
		cr := load(t, "dual.yaml")
		require.Equal(t, config.StrategyDual, cr.Strategy)
		require.Equal(t, "app", cr.Group)
		require.NotNil(t, cr.Schedule.Cron)
		require.NotNil(t, cr.Schedule.Window)
		require.Positive(t, cr.Schedule.Jitter)
		require.Positive(t, cr.DrainTimeout)
		require.Len(t, cr.Targets, 2)
		require.Equal(t, []string{"DATABASE_URL", "DATABASE_URL_UNPOOLED"}, cr.Targets[0].Keys)
		require.Contains(t, cr.Targets[1].Keys, "PGPASSWORD")
		for _, tg := range cr.Targets {
			require.Equal(t, "dotenv", tg.Type)
		}
	})
	t.Run("neon", func(t *testing.T) {
		t.Parallel()
		cr := load(t, "neon.yaml")
		require.Equal(t, "postgres", cr.ProviderType)
		require.Equal(t, "ep-cool-darkness-123456.eu-central-1.aws.neon.tech", cr.Conn.Host)
		require.Equal(t, "ep-cool-darkness-123456-pooler.eu-central-1.aws.neon.tech", cr.Pooled.Host)
	})
}
