package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/rotorhq/rotor/internal/pgcluster"
	"github.com/rotorhq/rotor/internal/pgtest"
	"github.com/rotorhq/rotor/internal/provider"
	"github.com/rotorhq/rotor/internal/secret"
)

func loginAs(t *testing.T, c *pgcluster.Cluster, role string, pw secret.String, db string) {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), c.URL(role, pw, db).Reveal())
	require.NoError(t, err, "log in as %s", role)
	require.NoError(t, conn.Close(context.Background()))
}

// TestLoginRecord: on PostgreSQL 17, RecordLogins installs a login event
// trigger that records the logins of the listed roles only, idempotently;
// a broken record never refuses a login; setting it up again repairs it.
func TestLoginRecord(t *testing.T) {
	t.Parallel()
	c := pgtest.Shared17(t)
	env := envFor(t, c, nil)
	rec := env.Provider.(provider.LoginRecorder)
	blue, green, other := pgtest.UniqueName(t, "blue"), pgtest.UniqueName(t, "green"), pgtest.UniqueName(t, "other")
	pw := secret.New("Login-record-canary-7Qz")
	for _, r := range []string{blue, green, other} {
		env.CreateRole(t, r, pw)
	}
	ctx := t.Context()

	got, err := rec.LastLogin(ctx, provider.LastLoginRequest{Role: blue})
	require.NoError(t, err)
	require.False(t, got.Recorded, "no record before RecordLogins")

	resp, err := rec.RecordLogins(ctx, provider.RecordLoginsRequest{Roles: []string{blue, green}})
	require.NoError(t, err)
	require.True(t, resp.Recorded, resp.Reason)
	require.Equal(t, `login event trigger rotor_record_login in database "`+env.Database+`"`, resp.Where)
	require.Len(t, resp.Changes, 1)
	require.Contains(t, resp.Changes[0], "created login event trigger rotor_record_login")
	again, err := rec.RecordLogins(ctx, provider.RecordLoginsRequest{Roles: []string{blue, green}})
	require.NoError(t, err)
	require.True(t, again.Recorded)
	require.Empty(t, again.Changes, "already in place")

	got, err = rec.LastLogin(ctx, provider.LastLoginRequest{Role: blue})
	require.NoError(t, err)
	require.Equal(t, provider.LastLoginResponse{Recorded: true}, got, "recorded, never seen")

	loginAs(t, c, blue, pw, env.Database)
	got, err = rec.LastLogin(ctx, provider.LastLoginRequest{Role: blue})
	require.NoError(t, err)
	require.True(t, got.Recorded)
	require.True(t, got.Seen, "blue's login is recorded")
	require.Less(t, got.Ago, time.Hour)
	g, err := rec.LastLogin(ctx, provider.LastLoginRequest{Role: green})
	require.NoError(t, err)
	require.False(t, g.Seen, "green did not log in")

	loginAs(t, c, other, pw, env.Database)
	o, err := rec.LastLogin(ctx, provider.LastLoginRequest{Role: other})
	require.NoError(t, err)
	require.False(t, o.Recorded, "a role rotor does not manage is not recorded")

	// The record broken under it: logins still work.
	admin := pgtest.Connect(ctx, t, env.AdminURL)
	_, err = admin.Exec(ctx, `DROP TABLE rotor_login.last_login`)
	require.NoError(t, err)
	loginAs(t, c, blue, pw, env.Database)
	got, err = rec.LastLogin(ctx, provider.LastLoginRequest{Role: blue})
	require.NoError(t, err)
	require.False(t, got.Recorded)
	repaired, err := rec.RecordLogins(ctx, provider.RecordLoginsRequest{Roles: []string{blue, green}})
	require.NoError(t, err)
	require.True(t, repaired.Recorded)
	loginAs(t, c, green, pw, env.Database)
	g, err = rec.LastLogin(ctx, provider.LastLoginRequest{Role: green})
	require.NoError(t, err)
	require.True(t, g.Seen, "recorded again after the repair")

	// A disabled trigger is no record.
	_, err = admin.Exec(ctx, `ALTER EVENT TRIGGER rotor_record_login DISABLE`)
	require.NoError(t, err)
	got, err = rec.LastLogin(ctx, provider.LastLoginRequest{Role: blue})
	require.NoError(t, err)
	require.False(t, got.Recorded)
}

// TestLoginRecordNeedsSuperuser: an admin that may not create event
// triggers gets a reason, not an error, and nothing is created.
func TestLoginRecordNeedsSuperuser(t *testing.T) {
	t.Parallel()
	c := pgtest.Shared17(t)
	limited := pgtest.UniqueName(t, "admin")
	pw := secret.New("Limited-admin-canary-4Kp")
	pgtest.NewRole(t, c, limited, pw)
	env := envFor(t, c, func(db string) secret.String { return c.URL(limited, pw, db) })
	admin := pgtest.Connect(t.Context(), t, env.AdminURL)
	_, err := admin.Exec(t.Context(), "ALTER ROLE "+quote(limited)+" CREATEROLE")
	require.NoError(t, err)

	resp, err := env.Provider.(provider.LoginRecorder).RecordLogins(t.Context(), provider.RecordLoginsRequest{Roles: []string{"app_blue"}})
	require.NoError(t, err)
	require.False(t, resp.Recorded)
	require.Contains(t, resp.Reason, "not a superuser, which CREATE EVENT TRIGGER needs")
	var n int
	require.NoError(t, admin.QueryRow(t.Context(), `SELECT count(*) FROM pg_event_trigger`).Scan(&n))
	require.Zero(t, n)
}

// TestLoginRecordBefore17: PostgreSQL 15 has no login event triggers; the
// reason names the version, and LastLogin reports no record.
func TestLoginRecordBefore17(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	rec := env.Provider.(provider.LoginRecorder)
	resp, err := rec.RecordLogins(t.Context(), provider.RecordLoginsRequest{Roles: []string{"app_blue", "app_green"}})
	require.NoError(t, err)
	major := pgtest.Shared(t).Major
	require.NotZero(t, major)
	if major >= 17 {
		require.True(t, resp.Recorded, "the system's PostgreSQL %d has login event triggers", major)
		return
	}
	require.False(t, resp.Recorded)
	require.Regexp(t, `^PostgreSQL 1[0-6]\.\d+ has no login event triggers \(17 and later do\)`, resp.Reason)
	got, err := rec.LastLogin(t.Context(), provider.LastLoginRequest{Role: "app_blue"})
	require.NoError(t, err)
	require.False(t, got.Recorded)
}
