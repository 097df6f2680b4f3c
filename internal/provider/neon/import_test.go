package neon_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/joho/godotenv"
	"github.com/stretchr/testify/require"

	"github.com/rotorhq/rotor/internal/cli"
	"github.com/rotorhq/rotor/internal/connstr"
	"github.com/rotorhq/rotor/internal/engine"
	"github.com/rotorhq/rotor/internal/pgtest"
	"github.com/rotorhq/rotor/internal/provider"
	pbuiltin "github.com/rotorhq/rotor/internal/provider/builtin"
	"github.com/rotorhq/rotor/internal/provider/neon"
	"github.com/rotorhq/rotor/internal/provider/neon/neonapi"
	"github.com/rotorhq/rotor/internal/provider/neon/neonfake"
	"github.com/rotorhq/rotor/internal/resolve"
	"github.com/rotorhq/rotor/internal/secret"
	"github.com/rotorhq/rotor/internal/store"
	"github.com/rotorhq/rotor/internal/store/sqlite"
	tbuiltin "github.com/rotorhq/rotor/internal/target/builtin"
)

// TestImportThenRotate is what a Neon user does first: `rotor neon
// import`, then `rotor rotate` with the file as written, for the owner
// role (also the admin), in a project that stores passwords and in one
// that does not (then NEON_ADMIN_PASSWORD is exported, as the file says).
// The rotation succeeds on the first try, both published strings log in,
// and the old password fails. The only line added is sslrootcert: the
// fake's computes sign their own certificates, where Neon's are signed by
// a CA the system trusts.
func TestImportThenRotate(t *testing.T) {
	t.Parallel()
	for _, stored := range []bool{true, false} {
		t.Run(fmt.Sprintf("stored_passwords=%v", stored), func(t *testing.T) {
			t.Parallel()
			w := newWorld(t, neonfake.Config{DisableStorePasswords: !stored})
			dir := t.TempDir()
			envFile := filepath.Join(dir, ".env")
			environ := map[string]string{"NEON_API_KEY": w.fake.APIKey}

			io, _, out, _ := cli.TestStreams()
			f := &cli.Factory{IO: io, HTTPClient: http.DefaultClient, Now: time.Now,
				LookupEnv: func(k string) (string, bool) { v, ok := environ[k]; return v, ok }}
			cmd := cli.NewCmdNeon(f)
			cmd.SetArgs([]string{"import", "--project-id", w.fake.ProjectID, "--api-url", w.fake.URL, "--env-file", envFile, "--print"})
			cmd.SetOut(io.Out)
			cmd.SetErr(io.ErrOut)
			cmd.SilenceErrors, cmd.SilenceUsage = true, true
			require.NoError(t, cmd.ExecuteContext(t.Context()))
			doc := out.String()
			require.Contains(t, doc, "method: sql")
			require.Contains(t, doc, "role: "+w.owner)
			require.Equal(t, !stored, strings.Contains(doc, "admin_password: ${NEON_ADMIN_PASSWORD}"))
			if !stored {
				environ["NEON_ADMIN_PASSWORD"] = w.ownerPW.Reveal()
			}
			doc = strings.Replace(doc, "      type: neon\n", "      type: neon\n      sslrootcert: "+w.fake.CACertFile+"\n", 1)

			lookup := func(typ string) (provider.Factory, error) {
				if typ == "neon" {
					return neon.FactoryForTest(w.fake.Route, nil, func(c *neonapi.Client) {
						c.Sleep = func(ctx context.Context, _ time.Duration) error { return ctx.Err() }
					}, w.logs), nil
				}
				return pbuiltin.Lookup(typ)
			}
			cfg, err := resolve.Parse(filepath.Join(dir, "rotor.yaml"), []byte(doc), func(k string) (string, bool) { v, ok := environ[k]; return v, ok },
				resolve.Registry{Provider: lookup, Target: tbuiltin.Lookup, HTTPClient: http.DefaultClient, Now: time.Now, Getenv: func(string) string { return "" }})
			require.NoError(t, err, doc)
			t.Cleanup(func() { cfg.Close() })
			require.Len(t, cfg.Credentials, 1)
			st, err := sqlite.Open(t.Context(), filepath.Join(dir, "state.db"))
			require.NoError(t, err)
			t.Cleanup(func() { st.Close() })
			key := make([]byte, 32)
			_, _ = rand.Read(key)
			sealer, err := secret.NewSealer(key)
			require.NoError(t, err)
			eng := &engine.Engine{Store: st, Sealer: sealer,
				Sleep: func(ctx context.Context, _ time.Duration) error { return ctx.Err() },
				Dial:  func(ctx context.Context, url secret.String) error { return engine.DialPostgres(ctx, w.routed(url)) },
				DialAfter: func(ctx context.Context, url secret.String, ready <-chan struct{}) error {
					return engine.DialPostgresAfter(ctx, w.routed(url), ready)
				}}

			res, err := eng.Rotate(t.Context(), cfg.Credentials[0], engine.Options{})
			require.NoError(t, err, "the first rotation of the imported config succeeds")
			require.Equal(t, store.StatusSucceeded, res.Status)
			values, err := godotenv.Read(envFile)
			require.NoError(t, err)
			var pw secret.String
			for _, k := range []string{"DATABASE_URL", "DATABASE_URL_UNPOOLED"} {
				require.NotEmpty(t, values[k], k)
				require.NoError(t, pgtest.CanLogin(t.Context(), w.routed(secret.New(values[k]))), "the published %s logs in", k)
			}
			pooled := values["DATABASE_URL"]
			require.Contains(t, pooled, w.main.EndpointID+"-pooler.")
			direct, err := connstr.Parse(values["DATABASE_URL_UNPOOLED"])
			require.NoError(t, err)
			require.Equal(t, w.owner, direct.User)
			pw = direct.Password
			require.NoError(t, w.login(w.owner, pw))
			require.Error(t, w.login(w.owner, w.ownerPW), "the old password fails")
			require.Empty(t, secret.Leaks(out.Bytes(), pw))
			w.requireNoLeak(t, []string{fmt.Sprintf("%+v", res)}, pw, w.ownerPW)
			raw, err := os.ReadFile(filepath.Join(dir, "state.db"))
			require.NoError(t, err)
			require.Empty(t, secret.Leaks(raw, pw), "the state file holds the password sealed only")
		})
	}
}
