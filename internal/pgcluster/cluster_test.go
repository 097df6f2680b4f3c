package pgcluster_test

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/rotorhq/rotor/internal/pgcluster"
	"github.com/rotorhq/rotor/internal/pgtest"
	"github.com/rotorhq/rotor/internal/secret"
	"github.com/rotorhq/rotor/internal/testdeps"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

func TestFindBinaries(t *testing.T) {
	testdeps.SkipUnderQuick(t, "PostgreSQL")
	t.Parallel()
	dir, err := pgcluster.FindBinaries()
	if err != nil {
		pgtest.SkipOrFail(t, err)
	}
	for _, name := range []string{"initdb", "pg_ctl", "postgres"} {
		_, err := os.Stat(filepath.Join(dir, name))
		require.NoError(t, err)
	}
}

// TestLogin proves the auth and TLS setup that rotor's rotations rely on:
// SCRAM over TLS with and without channel binding, plain TCP, and
// certificate verification against CACertFile.
func TestLogin(t *testing.T) {
	t.Parallel()
	c := pgtest.Shared(t)
	tests := []struct {
		name    string
		params  []string
		wantSSL bool
	}{
		{"sslmode=require", nil, true},
		{"sslmode=disable", []string{"sslmode=disable"}, false},
		{"channel_binding=require", []string{"channel_binding=require"}, true},
		{"verify-full against CACertFile", []string{"sslmode=verify-full", "sslrootcert=" + c.CACertFile}, true},
		{"require_auth=scram-sha-256", []string{"require_auth=scram-sha-256"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			conn := pgtest.Connect(ctx, t, c.URL(c.SuperUser, c.SuperPassword(), "postgres", tt.params...))
			var ssl bool
			require.NoError(t, conn.QueryRow(ctx, `SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()`).Scan(&ssl))
			require.Equal(t, tt.wantSSL, ssl)
		})
	}
}

func TestWrongPasswordFails(t *testing.T) {
	t.Parallel()
	c := pgtest.Shared(t)
	wrong := secret.New("not-the-password-Zq81")
	err := pgtest.CanLogin(t.Context(), c.URL(c.SuperUser, wrong, "postgres"))
	require.ErrorContains(t, err, "password authentication failed")
	require.NotContains(t, err.Error(), wrong.Reveal())
}

func TestServerSettings(t *testing.T) {
	t.Parallel()
	c := pgtest.Shared(t)
	ctx := t.Context()
	conn := pgtest.Connect(ctx, t, c.AdminURL("postgres"))
	tests := []struct{ setting, want string }{
		{"password_encryption", "scram-sha-256"},
		{"listen_addresses", "127.0.0.1"},
		{"ssl", "on"},
		{"max_connections", "300"},
		{"unix_socket_directories", c.DataDir},
		{"port", strconv.Itoa(c.Port)},
	}
	for _, tt := range tests {
		var got string
		require.NoError(t, conn.QueryRow(ctx, "SELECT current_setting($1)", tt.setting).Scan(&got))
		require.Equal(t, tt.want, got, tt.setting)
	}
	info, err := os.Stat(filepath.Join(c.DataDir, "server.key"))
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), info.Mode().Perm())
}

// TestURLEncoding proves that any user name or password survives the trip
// through URL and a driver's parser.
func TestURLEncoding(t *testing.T) {
	t.Parallel()
	c := &pgcluster.Cluster{Host: "127.0.0.1", Port: 5432}
	tests := []struct {
		name, user, password, database string
		params                         []string
		wantSSLMode                    string
	}{
		{"plain", "app", "secret", "db", nil, "require"},
		{"url special characters", "a@b:c/d", "p@ss:w/o?r#d%&=+ 'x", "my db", nil, "require"},
		{"quotes and semicolons", `we"ird; DROP TABLE x; --`, `"';\`, "d", nil, "require"},
		{"unicode", "ünï", "пароль", "база", nil, "require"},
		{"no password", "app", "", "db", nil, "require"},
		{"sslmode overridden", "app", "pw", "db", []string{"sslmode=disable"}, "disable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			u := c.URL(tt.user, secret.New(tt.password), tt.database, tt.params...)
			require.Equal(t, secret.Redacted, u.String(), "a URL carries a password and must print redacted")
			cfg, err := pgx.ParseConfig(u.Reveal())
			require.NoError(t, err)
			require.Equal(t, tt.user, cfg.User)
			require.Equal(t, tt.password, cfg.Password)
			require.Equal(t, tt.database, cfg.Database)
			require.Equal(t, "127.0.0.1", cfg.Host)
			require.Equal(t, uint16(5432), cfg.Port)
			require.Contains(t, u.Reveal(), "sslmode="+tt.wantSSLMode)
		})
	}
}

// TestLifecycle runs its own cluster, because it restarts and stops it.
func TestLifecycle(t *testing.T) {
	testdeps.SkipUnderQuick(t, "PostgreSQL")
	t.Parallel()
	ctx := t.Context()
	c, err := pgcluster.Start(ctx, pgcluster.Options{
		LogStatements: true,
		Settings:      map[string]string{"work_mem": "5MB", "application_name": "it's quoted"},
	})
	if err != nil {
		pgtest.SkipOrFail(t, err)
	}
	t.Cleanup(func() { _ = c.Stop(context.Background()) })

	conn := pgtest.Connect(ctx, t, c.AdminURL("postgres"))
	for setting, want := range map[string]string{"work_mem": "5MB", "log_statement": "all", "application_name": "it's quoted"} {
		var got string
		require.NoError(t, conn.QueryRow(ctx, "SELECT current_setting($1)", setting).Scan(&got))
		require.Equal(t, want, got, setting)
	}
	_, err = conn.Exec(ctx, "SELECT 'pgcluster-log-marker'")
	require.NoError(t, err)
	log, err := c.ServerLog()
	require.NoError(t, err)
	require.Contains(t, string(log), "pgcluster-log-marker", "log_statement=all must reach the server log")
	require.NotContains(t, string(log), c.SuperPassword().Reveal())

	port := c.Port
	require.NoError(t, c.Restart(ctx))
	require.Equal(t, port, c.Port)
	_, err = conn.Exec(ctx, "SELECT 1")
	require.Error(t, err, "a restart must cut existing sessions")
	require.NoError(t, pgtest.CanLogin(ctx, c.AdminURL("postgres")))

	require.NoError(t, c.Stop(ctx))
	_, err = os.Stat(c.Dir)
	require.ErrorIs(t, err, os.ErrNotExist, "Stop must remove the directory Start created")
	require.NoError(t, c.Stop(ctx), "a second Stop must do nothing")
	require.Error(t, c.Restart(ctx))
}

func TestExplicitPortInUse(t *testing.T) {
	testdeps.SkipUnderQuick(t, "PostgreSQL")
	t.Parallel()
	if _, err := pgcluster.FindBinaries(); err != nil {
		pgtest.SkipOrFail(t, err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { _ = l.Close() })
	port := l.Addr().(*net.TCPAddr).Port

	// Not t.TempDir: as root, the postgres OS user could not enter it.
	dir := filepath.Join(os.TempDir(), pgtest.UniqueName(t, "rotor_pg_port"))
	c, err := pgcluster.Start(t.Context(), pgcluster.Options{Port: port, Dir: dir})
	if err == nil {
		_ = c.Stop(context.Background())
	}
	require.Error(t, err, "an explicit port that is taken must not be silently replaced")
	require.True(t, strings.Contains(err.Error(), "server log"), err.Error())
	_, statErr := os.Stat(dir)
	require.ErrorIs(t, statErr, os.ErrNotExist, "a failed Start must remove the directory it created")
}
