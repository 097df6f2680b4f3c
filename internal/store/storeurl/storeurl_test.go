package storeurl_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/rotorhq/rotor/internal/pgtest"
	"github.com/rotorhq/rotor/internal/store"
	"github.com/rotorhq/rotor/internal/store/postgres"
	"github.com/rotorhq/rotor/internal/store/sqlite"
	"github.com/rotorhq/rotor/internal/store/storeurl"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

func TestSQLiteByPathOrURL(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, loc := range []string{filepath.Join(dir, "a.db"), "sqlite://" + filepath.Join(dir, "b.db"), "file://" + filepath.Join(dir, "c.db")} {
		s, err := storeurl.Open(t.Context(), loc)
		require.NoError(t, err, loc)
		require.IsType(t, &sqlite.Store{}, s)
		require.NoError(t, s.Close())
	}
	for _, name := range []string{"a.db", "b.db", "c.db"} {
		require.FileExists(t, filepath.Join(dir, name))
	}
}

// SQLitePath names the file of exactly the locations Open gives to SQLite.
func TestSQLitePath(t *testing.T) {
	t.Parallel()
	for loc, want := range map[string]string{
		"/var/lib/rotor/state.db":          "/var/lib/rotor/state.db",
		".rotor/state.db":                  ".rotor/state.db",
		"sqlite:///var/lib/rotor/state.db": "/var/lib/rotor/state.db",
		"SQLite://rel/state.db":            "rel/state.db",
		"file:///tmp/state.db":             "/tmp/state.db",
	} {
		got, ok := storeurl.SQLitePath(loc)
		require.True(t, ok, loc)
		require.Equal(t, want, got, loc)
	}
	for _, loc := range []string{"postgres://rotor@db/rotor", "postgresql://db/rotor", "sqlite://", "mysql://db/x"} {
		_, ok := storeurl.SQLitePath(loc)
		require.False(t, ok, loc)
	}
}

func TestPostgresByURLWithSchema(t *testing.T) {
	t.Parallel()
	_, url := pgtest.NewDatabase(t)
	for _, scheme := range []string{"postgres", "postgresql"} {
		u := scheme + url.Reveal()[len("postgresql"):] + "&schema=" + scheme + "_state"
		s, err := storeurl.Open(t.Context(), u)
		require.NoError(t, err, scheme)
		require.IsType(t, &postgres.Store{}, s)
		_, err = s.AppendAudit(t.Context(), store.AppendAuditParams{Event: scheme, Now: time.Unix(0, 1)})
		require.NoError(t, err)
		require.NoError(t, s.Close())

		conn := pgtest.Connect(t.Context(), t, url)
		var event string
		require.NoError(t, conn.QueryRow(t.Context(), `SELECT event FROM `+scheme+`_state.audit`).Scan(&event))
		require.Equal(t, scheme, event)
	}
}

func TestUnknownSchemeNamesTheKnownOnes(t *testing.T) {
	t.Parallel()
	_, err := storeurl.Open(t.Context(), "mysql://root:hunter2@db/rotor")
	require.EqualError(t, err, `unknown state store scheme "mysql" (known: file://…, postgres://…, postgresql://…, sqlite://…, or a plain file path for SQLite)`)
	require.NotContains(t, err.Error(), "hunter2")
}

func TestUnparsablePostgresURLHidesThePassword(t *testing.T) {
	t.Parallel()
	_, err := storeurl.Open(t.Context(), "postgres://u:hunter2%zz@db/rotor")
	require.ErrorContains(t, err, "does not parse")
	require.NotContains(t, err.Error(), "hunter2")
}
