package cli

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/rotorhq/rotor/internal/config"
	"github.com/rotorhq/rotor/internal/engine"
	"github.com/rotorhq/rotor/internal/pgcluster"
	"github.com/rotorhq/rotor/internal/pgtest"
	"github.com/rotorhq/rotor/internal/provider"
	pbuiltin "github.com/rotorhq/rotor/internal/provider/builtin"
	"github.com/rotorhq/rotor/internal/provider/neon"
	"github.com/rotorhq/rotor/internal/provider/neon/neonfake"
	"github.com/rotorhq/rotor/internal/resolve"
	tbuiltin "github.com/rotorhq/rotor/internal/target/builtin"
	"github.com/rotorhq/rotor/internal/testdeps"
)

// neonImportWorld is a fake Neon project on a cluster of its own (this
// package has no TestMain to stop a shared one): a default branch main
// with a read replica, databases neondb and shop, a role made over SQL,
// and a child branch dev that holds the same roles.
type neonImportWorld struct {
	fake      *neonfake.Server
	main, dev *neonfake.Branch
}

func startNeonImportWorld(t *testing.T) *neonImportWorld {
	t.Helper()
	testdeps.SkipUnderQuick(t, "PostgreSQL")
	c, err := pgcluster.Start(context.Background(), pgcluster.Options{})
	if err != nil {
		pgtest.SkipOrFail(t, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := c.Stop(ctx); err != nil {
			t.Errorf("stop cluster: %v", err)
		}
	})
	ctx := t.Context()
	fake := neonfake.Start(t, neonfake.Config{})
	main, err := fake.AddBranch(ctx, neonfake.BranchSpec{Name: "main", Cluster: c, ReadReplica: true})
	require.NoError(t, err)
	_, err = fake.AddDatabase(ctx, main.ID, "neondb", "neondb_owner")
	require.NoError(t, err)
	_, err = fake.AddDatabase(ctx, main.ID, "shop", "shop_owner")
	require.NoError(t, err)
	conn, err := pgx.Connect(ctx, c.AdminURL("postgres").Reveal())
	require.NoError(t, err)
	_, err = conn.Exec(ctx, "CREATE ROLE app LOGIN")
	require.NoError(t, err)
	require.NoError(t, conn.Close(ctx))
	dev, err := fake.AddBranch(ctx, neonfake.BranchSpec{Name: "dev", Parent: "main", Cluster: c})
	require.NoError(t, err)
	return &neonImportWorld{fake: fake, main: main, dev: dev}
}

func neonTestFactory(env map[string]string) (*Factory, *bytes.Buffer) {
	io, _, out, _ := TestStreams()
	return &Factory{IO: io, HTTPClient: http.DefaultClient, Now: time.Now,
		LookupEnv: func(k string) (string, bool) { v, ok := env[k]; return v, ok }}, out
}

// runNeon runs `rotor neon …` with f and returns what it printed.
func runNeon(t *testing.T, f *Factory, out *bytes.Buffer, args ...string) (string, error) {
	t.Helper()
	cmd := NewCmdNeon(f)
	cmd.SetArgs(args)
	cmd.SetOut(f.IO.Out)
	cmd.SetErr(f.IO.ErrOut)
	cmd.SilenceErrors, cmd.SilenceUsage = true, true
	err := cmd.ExecuteContext(t.Context())
	return out.String(), err
}

// parseWithNeon loads a config with the neon provider registered, as
// provider/builtin will once it lists neon.
func parseWithNeon(t *testing.T, path string, data []byte, env map[string]string) (*resolve.Config, error) {
	t.Helper()
	lookup := func(typ string) (provider.Factory, error) {
		if typ == "neon" {
			return neon.New, nil
		}
		return pbuiltin.Lookup(typ)
	}
	return resolve.Parse(path, data, func(k string) (string, bool) { v, ok := env[k]; return v, ok },
		resolve.Registry{Provider: lookup, Target: tbuiltin.Lookup, HTTPClient: http.DefaultClient, Now: time.Now, Getenv: func(string) string { return "" }})
}

func TestNeonImport(t *testing.T) {
	t.Parallel()
	w := startNeonImportWorld(t)
	env := map[string]string{"NEON_API_KEY": w.fake.APIKey}

	t.Run("print", func(t *testing.T) {
		t.Parallel()
		f, buf := neonTestFactory(env)
		out, err := runNeon(t, f, buf, "import", "--project-id", w.fake.ProjectID, "--api-url", w.fake.URL, "--print")
		require.NoError(t, err)
		cfg, err := parseWithNeon(t, filepath.Join(t.TempDir(), "rotor.yaml"), []byte(out), env)
		require.NoError(t, err, "the imported config must load:\n%s", out)
		defer cfg.Close()
		require.Len(t, cfg.Credentials, 2)
		byName := map[string]*engine.Credential{}
		for _, cr := range cfg.Credentials {
			byName[cr.Name] = cr
			require.Equal(t, "neon", cr.ProviderType)
			require.Equal(t, config.StrategySingle, cr.Strategy)
			require.Nil(t, cr.Conn, "hosts come from the provider, not the file")
			require.Len(t, cr.Targets, 1)
			require.Equal(t, "dotenv", cr.Targets[0].Type)
		}
		// Two databases, one .env: each credential's keys have a prefix.
		require.Equal(t, []string{"NEONDB_DATABASE_URL", "NEONDB_DATABASE_URL_UNPOOLED", "NEONDB_DATABASE_URL_READONLY"}, byName["neondb"].Targets[0].Keys)
		require.Equal(t, []string{"SHOP_DATABASE_URL", "SHOP_DATABASE_URL_UNPOOLED", "SHOP_DATABASE_URL_READONLY"}, byName["shop"].Targets[0].Keys)
		require.Equal(t, []string{"neondb_owner"}, byName["neondb"].Roles)
		require.Equal(t, []string{"shop_owner"}, byName["shop"].Roles)
		require.Contains(t, out, `SHOP_DATABASE_URL: "{{.PooledURL}}"`)
		require.Contains(t, out, `SHOP_DATABASE_URL_UNPOOLED: "{{.DirectURL}}"`)
		require.Contains(t, out, `SHOP_DATABASE_URL_READONLY: "{{.ReplicaURL}}"`, "the branch has a read replica")
		require.Contains(t, out, "method: sql", "sql is the default, for the owner too")
		require.NotContains(t, out, "method: api")
		require.NotContains(t, out, "admin_password", "the project stores passwords")
		require.Contains(t, out, "The owner is also the role rotor logs in as")
		require.Contains(t, out, "branches: [main]")
		require.Contains(t, out, "# Also on dev, where the old password would keep working")
		require.Contains(t, out, "#   direct  "+w.main.Host, "the read_write endpoint, not the replica listed first")
		require.Contains(t, out, "#   pooled  "+w.main.EndpointID+"-pooler.")
		require.Contains(t, out, "#   replica ep-")
		require.Contains(t, out, "api_key: ${NEON_API_KEY}")
		require.NotContains(t, out, w.fake.APIKey, "the key stays in the environment")

		// The provider the file describes reaches the project.
		ep, err := byName["neondb"].Provider.(provider.Endpointer).Endpoints(t.Context(), provider.EndpointsRequest{})
		require.NoError(t, err)
		require.Equal(t, "postgresql://"+w.main.Host+"/neondb?sslmode=require&channel_binding=require", ep.Direct)
	})

	t.Run("one database with another role", func(t *testing.T) {
		t.Parallel()
		f, buf := neonTestFactory(env)
		out, err := runNeon(t, f, buf, "import", "--project-id", w.fake.ProjectID, "--api-url", w.fake.URL, "--print", "--database", "neondb", "--role", "app", "--env-file", "web/.env.local")
		require.NoError(t, err)
		cfg, err := parseWithNeon(t, filepath.Join(t.TempDir(), "rotor.yaml"), []byte(out), env)
		require.NoError(t, err, out)
		defer cfg.Close()
		require.Len(t, cfg.Credentials, 1)
		require.Equal(t, []string{"app"}, cfg.Credentials[0].Roles)
		require.Equal(t, []string{"DATABASE_URL", "DATABASE_URL_UNPOOLED", "DATABASE_URL_READONLY"}, cfg.Credentials[0].Targets[0].Keys, "one database: Neon's names as they are")
		require.Contains(t, out, "method: sql")
		require.Contains(t, out, "path: web/.env.local")
		require.NotContains(t, out, "The owner is also the role rotor logs in as")
	})

	t.Run("split", func(t *testing.T) {
		t.Parallel()
		f, buf := neonTestFactory(env)
		out, err := runNeon(t, f, buf, "import", "--project-id", w.fake.ProjectID, "--api-url", w.fake.URL, "--print", "--split")
		require.NoError(t, err)
		cfg, err := parseWithNeon(t, filepath.Join(t.TempDir(), "rotor.yaml"), []byte(out), env)
		require.NoError(t, err, out)
		defer cfg.Close()
		var paths []string
		for _, cr := range cfg.Credentials {
			require.Equal(t, []string{"DATABASE_URL", "DATABASE_URL_UNPOOLED", "DATABASE_URL_READONLY"}, cr.Targets[0].Keys)
			paths = append(paths, filepath.Base(cr.Targets[0].Impl.Info().Destination))
		}
		require.Equal(t, []string{".env.neondb", ".env.shop"}, paths)
	})

	t.Run("one .env for two databases without prefixes is refused", func(t *testing.T) {
		t.Parallel()
		f, buf := neonTestFactory(env)
		out, err := runNeon(t, f, buf, "import", "--project-id", w.fake.ProjectID, "--api-url", w.fake.URL, "--print")
		require.NoError(t, err)
		unprefixed := strings.NewReplacer("NEONDB_DATABASE", "DATABASE", "SHOP_DATABASE", "DATABASE").Replace(out)
		_, err = parseWithNeon(t, filepath.Join(t.TempDir(), "rotor.yaml"), []byte(unprefixed), env)
		require.ErrorContains(t, err, "writes DATABASE_URL to dotenv")
		require.ErrorContains(t, err, "so one would overwrite the other")
	})

	t.Run("project without stored passwords", func(t *testing.T) {
		t.Parallel()
		fake := neonfake.Start(t, neonfake.Config{DisableStorePasswords: true})
		main, err := fake.AddBranch(t.Context(), neonfake.BranchSpec{Name: "main", Cluster: w.main.Cluster})
		require.NoError(t, err)
		_, err = fake.AddDatabase(t.Context(), main.ID, "neondb", "neondb_owner")
		require.NoError(t, err)
		env := map[string]string{"NEON_API_KEY": fake.APIKey}
		f, buf := neonTestFactory(env)
		path := filepath.Join(t.TempDir(), "rotor.yaml")
		out, err := runNeon(t, f, buf, "import", "--project-id", fake.ProjectID, "--api-url", fake.URL, "-o", path)
		require.NoError(t, err)
		require.Contains(t, out, "export NEON_ADMIN_PASSWORD=")
		text, err := os.ReadFile(path)
		require.NoError(t, err)
		require.Contains(t, string(text), "admin_password: ${NEON_ADMIN_PASSWORD}")
		require.Contains(t, string(text), "does not store\n#                 role passwords")
		require.Contains(t, string(text), `DATABASE_URL: "{{.PooledURL}}"`, "one database: no prefix")
		require.NotContains(t, string(text), "{{.ReplicaURL}}", "no replica on this branch")
		_, err = parseWithNeon(t, path, text, env)
		require.ErrorContains(t, err, "NEON_ADMIN_PASSWORD", "the variable is required")
		env["NEON_ADMIN_PASSWORD"] = "set"
		cfg, err := parseWithNeon(t, path, text, env)
		require.NoError(t, err)
		require.NoError(t, cfg.Close())
	})

	t.Run("writes a file once", func(t *testing.T) {
		t.Parallel()
		f, buf := neonTestFactory(env)
		path := filepath.Join(t.TempDir(), "rotor.yaml")
		out, err := runNeon(t, f, buf, "import", "--project-id", w.fake.ProjectID, "--api-url", w.fake.URL, "-o", path)
		require.NoError(t, err)
		require.Contains(t, out, "wrote "+path+" with 2 credential(s)")
		st, err := os.Stat(path)
		require.NoError(t, err)
		require.Equal(t, os.FileMode(0o600), st.Mode().Perm())

		f2, buf2 := neonTestFactory(env)
		_, err = runNeon(t, f2, buf2, "import", "--project-id", w.fake.ProjectID, "--api-url", w.fake.URL, "-o", path)
		var usage *UsageError
		require.ErrorAs(t, err, &usage)
		require.ErrorContains(t, err, "already exists; pass --force")
		f3, buf3 := neonTestFactory(env)
		_, err = runNeon(t, f3, buf3, "import", "--project-id", w.fake.ProjectID, "--api-url", w.fake.URL, "-o", path, "--force")
		require.NoError(t, err)
	})

	t.Run("NEON_API_HOST", func(t *testing.T) {
		t.Parallel()
		f, buf := neonTestFactory(map[string]string{"NEON_API_KEY": w.fake.APIKey, neon.APIHostEnv: w.fake.URL})
		out, err := runNeon(t, f, buf, "import", "--project-id", w.fake.ProjectID, "--print")
		require.NoError(t, err)
		require.Contains(t, out, "api_url: "+w.fake.URL)
	})

	t.Run("mistakes", func(t *testing.T) {
		t.Parallel()
		tests := []struct {
			name    string
			env     map[string]string
			args    []string
			usage   bool
			wantErr string
		}{
			{"no key", map[string]string{}, []string{"--project-id", w.fake.ProjectID}, true, "NEON_API_KEY is not set"},
			{"no project", env, nil, true, "--project-id is required"},
			{"bad key", map[string]string{"NEON_API_KEY": "napi_wrong"}, []string{"--project-id", w.fake.ProjectID}, false, "401 Unauthorized"},
			{"unknown project", env, []string{"--project-id", "nope-123"}, false, "check --project-id"},
			{"unknown branch", env, []string{"--project-id", w.fake.ProjectID, "--branch", "staging"}, true, `no branch "staging" (branches: main, dev)`},
			{"unknown role", env, []string{"--project-id", w.fake.ProjectID, "--role", "ghost"}, true, `no role "ghost"`},
			{"bad method", env, []string{"--project-id", w.fake.ProjectID, "--method", "magic"}, true, `--method "magic"`},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				t.Parallel()
				f, buf := neonTestFactory(tt.env)
				args := append([]string{"import", "--api-url", w.fake.URL, "--print"}, tt.args...)
				_, err := runNeon(t, f, buf, args...)
				require.ErrorContains(t, err, tt.wantErr)
				var usage *UsageError
				require.Equal(t, tt.usage, errors.As(err, &usage))
				require.NotContains(t, err.Error(), w.fake.APIKey)
			})
		}
	})
}
