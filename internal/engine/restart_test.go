package engine_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/rotorhq/rotor/internal/engine"
	"github.com/rotorhq/rotor/internal/pgcluster"
	"github.com/rotorhq/rotor/internal/pgtest"
	"github.com/rotorhq/rotor/internal/provider"
	pbuiltin "github.com/rotorhq/rotor/internal/provider/builtin"
	"github.com/rotorhq/rotor/internal/resolve"
	"github.com/rotorhq/rotor/internal/secret"
	"github.com/rotorhq/rotor/internal/store"
	"github.com/rotorhq/rotor/internal/store/sqlite"
	tbuiltin "github.com/rotorhq/rotor/internal/target/builtin"
	"github.com/rotorhq/rotor/internal/testdeps"
)

// TestDatabaseTroubleMidRotation restarts the PostgreSQL server, or ends
// rotor's admin session, right before a step that needs the database. The
// rotation either rides it out (the provider retries idempotent work on a
// fresh connection) or stops with the credential working; resume then
// finishes, and the database accepts what the store calls current.
func TestDatabaseTroubleMidRotation(t *testing.T) {
	testdeps.SkipUnderQuick(t, "PostgreSQL")
	t.Parallel()
	dir, err := os.MkdirTemp("", "rotor-restart-")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	// The server runs as the postgres OS user when tests run as root.
	require.NoError(t, os.Chmod(dir, 0o711))
	cl, err := pgcluster.Start(t.Context(), pgcluster.Options{Dir: filepath.Join(dir, "pg")})
	if err != nil {
		pgtest.SkipOrFail(t, err)
	}
	t.Cleanup(func() { cl.Stop(context.Background()) })

	for _, tc := range []struct {
		name     string
		strategy string
		step     string
		trouble  string
	}{
		{"restart before apply", "single", engine.StepApply, "restart"},
		{"restart before confirm", "dual", engine.StepConfirm, "restart"},
		{"admin session ended before apply", "single", engine.StepApply, "terminate"},
		{"admin session ended before finish", "dual", engine.StepFinish, "terminate"},
		{"admin session ended in the middle of ALTER ROLE", "single", engine.StepApply, "terminate-mid-alter"},
		{"admin session ended in the middle of ALTER ROLE (dual)", "dual", engine.StepApply, "terminate-mid-alter"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Sequential: a restart would break a sibling's connections.
			ctx := t.Context()
			admin, err := pgx.Connect(ctx, cl.AdminURL("postgres").Reveal())
			require.NoError(t, err)
			db := pgtest.UniqueName(t, "db")
			_, err = admin.Exec(ctx, "CREATE DATABASE "+db)
			require.NoError(t, err)
			admin.Close(ctx)

			roles := []string{pgtest.UniqueName(t, "app") + "_b", pgtest.UniqueName(t, "app") + "_g"}
			roleYAML := fmt.Sprintf("    strategy: dual\n    roles: [%s, %s]\n    group: %s_grp\n", roles[0], roles[1], roles[0])
			if tc.strategy == "single" {
				pgtest.NewRole(t, cl, roles[0], mustPassword(t))
				roleYAML = fmt.Sprintf("    strategy: single\n    role: %s\n", roles[0])
			}
			cdir := t.TempDir()
			envFile := filepath.Join(cdir, ".env")
			yaml := fmt.Sprintf(`version: 1
credentials:
  app:
    provider: {type: postgres, admin_url: "${ADMIN_URL}"}
    connection: {url: "postgresql://%s:%d/%s?sslmode=require&channel_binding=require"}
%s    drain: {timeout: 2s, poll: 50ms, grace: 200ms, quiet: 300ms}
    targets:
      - {name: env, type: dotenv, path: %q, values: {DATABASE_URL: "{{.URL}}"}}
`, cl.Host, cl.Port, db, roleYAML, envFile)
			path := filepath.Join(cdir, "rotor.yaml")
			require.NoError(t, os.WriteFile(path, []byte(yaml), 0o600))
			env := map[string]string{"ADMIN_URL": cl.AdminURL(db).Reveal()}
			cfg, err := resolve.Load(path, func(k string) (string, bool) { v, ok := env[k]; return v, ok },
				resolve.Registry{Provider: pbuiltin.Lookup, Target: tbuiltin.Lookup, Now: time.Now, Getenv: func(string) string { return "" }})
			require.NoError(t, err)
			t.Cleanup(func() { cfg.Close() })
			cr, err := cfg.Credential("app")
			require.NoError(t, err)
			if tc.strategy == "dual" {
				_, err := cr.Provider.EnsureRoles(ctx, ensureReqFor(roles, db))
				require.NoError(t, err)
			}
			st, err := sqlite.Open(ctx, filepath.Join(cdir, "state.db"))
			require.NoError(t, err)
			t.Cleanup(func() { st.Close() })
			sealer, err := secret.NewSealer(testKey)
			require.NoError(t, err)
			eng := &engine.Engine{Store: st, Sealer: sealer}

			// A first rotation gives the credential a known current version.
			_, err = eng.Rotate(ctx, cr, engine.Options{})
			require.NoError(t, err)

			fired := false
			midAlter := make(chan error, 1)
			eng.Hooks = &engine.Hooks{BeforeStep: func(step string) error {
				if step != tc.step || fired {
					return nil
				}
				fired = true
				switch tc.trouble {
				case "restart":
					return cl.Restart(context.Background())
				case "terminate-mid-alter":
					// Another transaction holds the roles' pg_authid rows, so
					// rotor's ALTER ROLE waits on its lock; the session is
					// ended while it waits.
					locked := roles
					if tc.strategy == "single" {
						locked = roles[:1]
					}
					return stallThenTerminateAlterRole(cl, db, locked, midAlter)
				default:
					c, err := pgx.Connect(context.Background(), cl.AdminURL("postgres").Reveal())
					if err != nil {
						return err
					}
					defer c.Close(context.Background())
					_, err = c.Exec(context.Background(), "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND usename = $2 AND pid <> pg_backend_pid()", db, cl.SuperUser)
					return err
				}
			}}
			res, err := eng.Rotate(ctx, cr, engine.Options{})
			require.True(t, fired)
			if tc.trouble == "terminate-mid-alter" {
				require.NoError(t, <-midAlter, "rotor's ALTER ROLE must have been caught waiting and ended")
			}
			if err != nil {
				// Stopped: nothing may be lost; resume finishes the job.
				var se *engine.StepError
				require.ErrorAs(t, err, &se)
				res, err = eng.Rotate(ctx, cr, engine.Options{ResumeOnly: true})
				require.NoError(t, err)
			}
			require.Equal(t, store.StatusSucceeded, res.Status, res.Outcome)
			require.EqualValues(t, 2, res.Version, "the rotation finished with the version it generated")

			// The database accepts what the store calls current, and the
			// .env holds exactly that.
			vs, err := st.ListVersions(ctx, store.ListVersionsParams{Credential: "app", Stages: []store.Stage{store.StageCurrent}})
			require.NoError(t, err)
			require.Len(t, vs, 1)
			b := &bundle{t: t, ctx: ctx, cl: cl, db: db, envFile: envFile, store: st}
			role, pw := b.current()
			require.Equal(t, vs[0].Role, role)
			b.requireLogin(role, pw)
		})
	}
}

func ensureReqFor(roles []string, db string) provider.EnsureRolesRequest {
	return provider.EnsureRolesRequest{Group: roles[0] + "_grp", Logins: roles, Database: db}
}

// stallThenTerminateAlterRole locks the roles' rows in pg_authid in an
// open transaction and, in the background, waits for a session of db to
// block on that lock (rotor's ALTER ROLE), terminates it, then lets the
// lock go. done receives nil once a waiting ALTER ROLE was terminated.
func stallThenTerminateAlterRole(cl *pgcluster.Cluster, db string, roles []string, done chan<- error) error {
	ctx := context.Background()
	blocker, err := pgx.Connect(ctx, cl.AdminURL("postgres").Reveal())
	if err != nil {
		return err
	}
	tx, err := blocker.Begin(ctx)
	if err != nil {
		blocker.Close(ctx)
		return err
	}
	for _, r := range roles {
		if _, err := tx.Exec(ctx, "ALTER ROLE "+pgx.Identifier{r}.Sanitize()+" CONNECTION LIMIT -1"); err != nil {
			blocker.Close(ctx)
			return err
		}
	}
	go func() {
		defer blocker.Close(ctx)
		defer tx.Rollback(ctx)
		watcher, err := pgx.Connect(ctx, cl.AdminURL("postgres").Reveal())
		if err != nil {
			done <- err
			return
		}
		defer watcher.Close(ctx)
		deadline := time.Now().Add(30 * time.Second)
		for time.Now().Before(deadline) {
			var n int
			err := watcher.QueryRow(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
				WHERE datname = $1 AND wait_event_type = 'Lock' AND query ILIKE 'ALTER ROLE%PASSWORD%'`, db).Scan(&n)
			if err != nil {
				done <- err
				return
			}
			if n > 0 {
				done <- nil
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
		done <- fmt.Errorf("no ALTER ROLE waited on the lock within 30s")
	}()
	return nil
}
