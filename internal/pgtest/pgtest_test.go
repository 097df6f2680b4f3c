package pgtest_test

import (
	"context"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/rotorhq/rotor/internal/pgtest"
	"github.com/rotorhq/rotor/internal/secret"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

func TestUniqueName(t *testing.T) {
	t.Parallel()
	identifier := regexp.MustCompile(`^[a-z_][a-z0-9_]*$`)
	tests := []struct{ prefix, wantPrefix string }{
		{"db", "db_"},
		{"App-Blue", "app_blue_"},
		{"", "x_"},
		{"9lives", "x9lives_"},
		{`we"ird; --`, "we_ird_"},
		{strings.Repeat("long", 30), "longlong"},
	}
	for _, tt := range tests {
		t.Run(tt.prefix, func(t *testing.T) {
			t.Parallel()
			seen := map[string]bool{}
			for range 200 {
				name := pgtest.UniqueName(t, tt.prefix)
				require.Regexp(t, identifier, name)
				require.LessOrEqual(t, len(name), 63)
				require.True(t, strings.HasPrefix(name, tt.wantPrefix), name)
				require.False(t, seen[name], "duplicate %s", name)
				seen[name] = true
			}
		})
	}
}

func TestNewDatabase(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	c := pgtest.Shared(t)
	var name string
	parent := t
	t.Run("fresh database", func(t *testing.T) {
		var url secret.String
		name, url = pgtest.NewDatabase(t)
		// Not pgtest.Connect: this session must still be open when the
		// database is dropped.
		conn, err := pgx.Connect(ctx, url.Reveal())
		require.NoError(t, err)
		parent.Cleanup(func() { _ = conn.Close(context.Background()) })
		var current string
		require.NoError(t, conn.QueryRow(ctx, "SELECT current_database()").Scan(&current))
		require.Equal(t, name, current)
		var tables int
		require.NoError(t, conn.QueryRow(ctx, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").Scan(&tables))
		require.Zero(t, tables)
		_, err = conn.Exec(ctx, "CREATE TABLE kept_open (id int)")
		require.NoError(t, err)
	})
	admin := pgtest.Connect(ctx, t, c.AdminURL("postgres"))
	var exists bool
	require.NoError(t, admin.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&exists))
	require.False(t, exists, "the database must be dropped when the test ends, open sessions or not")
}

func TestNewRole(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	c := pgtest.Shared(t)
	db, dbURL := pgtest.NewDatabase(t)
	tests := []struct{ name, role, password string }{
		{"plain", pgtest.UniqueName(t, "plain"), "plain-Pw-1"},
		{"quotes and URL characters", `we"ird; DROP TABLE x; --` + pgtest.UniqueName(t, ""), `p@ss:w/o?r#d%'"\`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			// One admin connection per subtest: a pgx.Conn is not safe
			// for concurrent use.
			admin := pgtest.Connect(ctx, t, dbURL)
			// Not parallel: the check below runs after its cleanup.
			t.Run("create and use", func(t *testing.T) {
				pw := secret.New(tt.password)
				pgtest.NewRole(t, c, tt.role, pw)
				require.NoError(t, pgtest.CanLogin(ctx, c.URL(tt.role, pw, db)))

				var stored string
				require.NoError(t, admin.QueryRow(ctx, "SELECT rolpassword FROM pg_authid WHERE rolname = $1", tt.role).Scan(&stored))
				require.True(t, secret.VerifySCRAM(secret.New(stored), pw), "the role must hold a SCRAM verifier of the password")

				// Something it owns and something it was granted, for the
				// cleanup to clear.
				// The other subtest grants on the same schema at the same
				// time: both update public's ACL row.
				require.NoError(t, pgtest.RetryCatalogRace(ctx, func() error {
					_, err := admin.Exec(ctx, "GRANT CREATE ON SCHEMA public TO "+pgx.Identifier{tt.role}.Sanitize())
					return err
				}))
				conn := pgtest.Connect(ctx, t, c.URL(tt.role, pw, db))
				_, err := conn.Exec(ctx, "CREATE TABLE "+pgtest.UniqueName(t, "owned")+" (id int)")
				require.NoError(t, err)
			})
			var exists bool
			require.NoError(t, admin.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)", tt.role).Scan(&exists))
			require.False(t, exists, "the role must be dropped when the test ends")
		})
	}
}

func TestCanLoginHidesPassword(t *testing.T) {
	t.Parallel()
	c := pgtest.Shared(t)
	tests := []struct{ name, user, password string }{
		{"wrong password", c.SuperUser, "wrong-Pw-xyz"},
		{"unknown user", "no_such_user_rotor", "wrong-Pw-abc"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := pgtest.CanLogin(t.Context(), c.URL(tt.user, secret.New(tt.password), "postgres"))
			require.ErrorContains(t, err, "SQLSTATE 28P01")
			require.NotContains(t, err.Error(), tt.password)
		})
	}
}
