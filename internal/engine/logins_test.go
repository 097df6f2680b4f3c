package engine_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/rotorhq/rotor/internal/engine"
	"github.com/rotorhq/rotor/internal/pgtest"
	"github.com/rotorhq/rotor/internal/provider"
)

// TestALoginBetweenSamplesRestartsTheQuietPeriod: on PostgreSQL 17 with
// the login record setup-roles installs, a consumer that connects per
// request — here, always between two samples, so sampling never sees it —
// still keeps the old role until drain.quiet has passed since its last
// login, and the evidence names that login.
func TestALoginBetweenSamplesRestartsTheQuietPeriod(t *testing.T) {
	t.Parallel()
	roles := roleNames(t)
	b := setup(t, setupOpts{strategy: "dual", roles: roles, pg17: true, grace: "100ms", quiet: "1s", poll: "200ms", wait: "1m"})
	rec, ok := b.cred().Provider.(provider.LoginRecorder)
	require.True(t, ok, "the postgres provider records logins")
	resp, err := rec.RecordLogins(b.ctx, provider.RecordLoginsRequest{Roles: roles})
	require.NoError(t, err)
	require.True(t, resp.Recorded, resp.Reason)

	b.rotate(engine.Options{})
	oldRole, oldPW := b.current()
	admin := pgtest.Connect(b.ctx, t, b.cl.AdminURL(b.db))

	// The consumer logs in, runs one query and leaves inside the engine's
	// sleeps between samples, for the first five of them.
	var (
		mu        sync.Mutex
		logins    int
		lastLogin time.Time
	)
	sleep := b.eng.Sleep
	b.eng.Sleep = func(ctx context.Context, d time.Duration) error {
		mu.Lock()
		n := logins
		mu.Unlock()
		if n < 5 {
			at := time.Now()
			conn, err := pgx.Connect(ctx, b.loginURL(oldRole, oldPW).Reveal()+"&application_name=per-request")
			require.NoError(t, err, "the old role must still work while its consumer is active")
			_, err = conn.Exec(ctx, "SELECT 1")
			require.NoError(t, err)
			require.NoError(t, conn.Close(ctx))
			require.Eventually(t, func() bool {
				var left int
				require.NoError(t, admin.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE usename = $1`, oldRole).Scan(&left))
				return left == 0
			}, 10*time.Second, 5*time.Millisecond, "the per-request session ends before the next sample")
			mu.Lock()
			logins++
			lastLogin = at
			mu.Unlock()
		}
		if sleep == nil {
			return nil
		}
		return sleep(ctx, d)
	}
	res := b.rotate(engine.Options{})
	b.eng.Sleep = sleep
	require.Equal(t, engine.RetirementRetired, res.Retirement.State, res.Outcome)
	ev := res.Retirement.Evidence
	mu.Lock()
	defer mu.Unlock()
	require.Equal(t, 5, logins)
	require.Nil(t, ev.LastSeen, "sampling never saw the per-request consumer")
	require.True(t, ev.LoginsRecorded)
	require.NotNil(t, ev.LastLogin, "the record saw it")
	require.WithinDuration(t, lastLogin, *ev.LastLogin, time.Second, "the last login recorded is the consumer's last")
	require.GreaterOrEqual(t, ev.Quiet, time.Second)
	require.Contains(t, ev.String(), "no session or recorded login for ")
	require.Contains(t, ev.String(), "last login recorded ")
	b.requireNoLogin(oldRole, oldPW)
}

// TestStatusShowsTheLastRecordedLogin: a pending retirement's status
// (--live) names the old role's last login the server recorded.
func TestStatusShowsTheLastRecordedLogin(t *testing.T) {
	t.Parallel()
	roles := roleNames(t)
	b := setup(t, setupOpts{strategy: "dual", roles: roles, pg17: true, grace: "10m", wait: "50ms", drain: "1h"})
	_, err := b.cred().Provider.(provider.LoginRecorder).RecordLogins(b.ctx, provider.RecordLoginsRequest{Roles: roles})
	require.NoError(t, err)
	b.rotate(engine.Options{})
	oldRole, oldPW := b.current()
	res := b.rotate(engine.Options{})
	require.Equal(t, engine.RetirementPending, res.Retirement.State, res.Outcome)

	st, err := b.eng.Status(b.ctx, b.cred(), engine.StatusOptions{Live: true})
	require.NoError(t, err)
	require.NotNil(t, st.PendingRetirement)
	pr := st.PendingRetirement
	require.NotNil(t, pr.LastLogin, "the first rotation's test step logged in as it")
	require.True(t, pr.LastLogin.Before(pr.SwitchedAt), "and nobody since the switch")

	at := time.Now()
	b.requireLogin(oldRole, oldPW)
	st, err = b.eng.Status(b.ctx, b.cred(), engine.StatusOptions{Live: true})
	require.NoError(t, err)
	require.NotNil(t, st.PendingRetirement.LastLogin)
	require.WithinDuration(t, at, *st.PendingRetirement.LastLogin, time.Second)
	require.True(t, st.PendingRetirement.LastLogin.After(pr.SwitchedAt))
}
