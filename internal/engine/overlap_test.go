package engine_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/rotorhq/rotor/internal/engine"
	"github.com/rotorhq/rotor/internal/pgtest"
	"github.com/rotorhq/rotor/internal/provider"
	"github.com/rotorhq/rotor/internal/provider/postgres"
	"github.com/rotorhq/rotor/internal/secret"
)

// TestDialPostgresAfterLogsInOnlyWhenReady: the login connects at once but
// names the role only once ready is closed, so a password set in between
// is the one the server checks; and a login cancelled while it waits
// returns with the cancellation.
func TestDialPostgresAfterLogsInOnlyWhenReady(t *testing.T) {
	t.Parallel()
	cl := pgtest.Shared(t)
	db, adminURL := pgtest.NewDatabaseOn(t, cl)
	role := pgtest.UniqueName(t, "early")
	pgtest.NewRole(t, cl, role, mustPassword(t))
	admin := pgtest.Connect(t.Context(), t, adminURL)
	newPW := mustPassword(t)
	url := cl.URL(role, newPW, db, "sslmode=require", "channel_binding=require")

	t.Run("the password set while it waits logs in", func(t *testing.T) {
		ready := make(chan struct{})
		done := make(chan error, 1)
		go func() { done <- engine.DialPostgresAfter(t.Context(), url, ready) }()
		select {
		case err := <-done:
			t.Fatalf("the login ended before it was let go: %v", err)
		case <-time.After(300 * time.Millisecond):
		}
		ver, err := secret.SCRAMVerifier(nil, newPW)
		require.NoError(t, err)
		_, err = admin.Exec(t.Context(), "ALTER ROLE "+pgx.Identifier{role}.Sanitize()+" PASSWORD '"+ver.Reveal()+"'")
		require.NoError(t, err)
		close(ready)
		require.NoError(t, <-done)
	})

	t.Run("a wrong password is refused once let go", func(t *testing.T) {
		ready := make(chan struct{})
		close(ready)
		err := engine.DialPostgresAfter(t.Context(), cl.URL(role, mustPassword(t), db), ready)
		require.Error(t, err)
		require.Contains(t, err.Error(), "password authentication failed")
	})

	t.Run("cancelled while it waits", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- engine.DialPostgresAfter(ctx, url, make(chan struct{})) }()
		time.Sleep(100 * time.Millisecond)
		cancel()
		err := <-done
		require.Error(t, err)
		require.ErrorIs(t, err, context.Canceled)
		require.NotContains(t, err.Error(), newPW.Reveal())
	})
}

// dialLog wraps the engine's two dials and a provider's SetPassword, and
// records in order what happened: "set" when SetPassword returned, "early"
// when an early login was started, "ready" when it was let go, "dial" for
// every login dialled after apply.
type dialLog struct {
	mu     sync.Mutex
	events []string
	// earlyErr, when set, is what an early login returns instead of
	// logging in (after it is let go).
	earlyErr error
	// earlyEnded is closed when an early login has returned.
	earlyEnded chan struct{}
}

func (l *dialLog) note(ev string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.events = append(l.events, ev)
}

func (l *dialLog) seen() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.events...)
}

func (l *dialLog) install(e *engine.Engine) {
	l.earlyEnded = make(chan struct{})
	e.Dial = func(ctx context.Context, url secret.String) error {
		l.note("dial")
		return engine.DialPostgres(ctx, url)
	}
	e.DialAfter = func(ctx context.Context, url secret.String, ready <-chan struct{}) error {
		defer close(l.earlyEnded)
		l.note("early")
		gate := make(chan struct{})
		go func() {
			select {
			case <-ready:
				l.note("ready")
				close(gate)
			case <-ctx.Done():
			}
		}()
		err := engine.DialPostgresAfter(ctx, url, gate)
		if err == nil && l.earlyErr != nil {
			return l.earlyErr
		}
		return err
	}
}

// requireLogins checks what a rotation's dials did: one early login
// started (on its own goroutine, so before or after SetPassword returned)
// and then, after "set", exactly the events in after.
func requireLogins(t *testing.T, seen []string, after ...string) {
	t.Helper()
	var rest []string
	early, set := 0, 0
	for _, ev := range seen {
		switch {
		case ev == "early":
			early++
		case ev == "set":
			set++
			require.Empty(t, rest, "%v: a login was let go or dialled before the password was set", seen)
		default:
			rest = append(rest, ev)
		}
	}
	require.Equal(t, 1, early, "%v: one early login", seen)
	require.Equal(t, 1, set, "%v: one SetPassword", seen)
	require.Equal(t, append([]string{}, after...), append([]string{}, rest...), "%v", seen)
}

type setPasswordFunc func(ctx context.Context, req provider.SetPasswordRequest) (provider.SetPasswordResponse, error)

// loggedProvider is the postgres provider with SetPassword noted in log,
// and optionally replaced by setPassword.
type loggedProvider struct {
	*postgres.Postgres
	log         *dialLog
	setPassword setPasswordFunc
}

// earlyRig is a test's world with both dials and SetPassword logged: the
// early login returns earlyErr (when set) instead of logging in, and
// setPassword (when set) builds what replaces the provider's SetPassword.
func earlyRig(t *testing.T, strategy string, earlyErr error, setPassword func(*postgres.Postgres) setPasswordFunc) (*bundle, *dialLog, *engine.Credential) {
	b := setup(t, setupOpts{strategy: strategy, roles: rolesFor(t, strategy)})
	log := &dialLog{earlyErr: earlyErr}
	log.install(b.eng)
	cr := b.cred()
	pg := cr.Provider.(*postgres.Postgres)
	lp := loggedProvider{Postgres: pg, log: log}
	if setPassword != nil {
		lp.setPassword = setPassword(pg)
	}
	cr.Provider = lp
	return b, log, cr
}

func (p loggedProvider) SetPassword(ctx context.Context, req provider.SetPasswordRequest) (provider.SetPasswordResponse, error) {
	set := p.Postgres.SetPassword
	if p.setPassword != nil {
		set = p.setPassword
	}
	resp, err := set(ctx, req)
	p.log.note("set")
	return resp, err
}

// TestTheEarlyLoginWaitsForApply: the test step's login is connected
// before apply sets the password and lets go only after, it is the test's
// only login, and the new password then works for consumers — with both
// strategies.
func TestTheEarlyLoginWaitsForApply(t *testing.T) {
	t.Parallel()
	for _, strategy := range []string{"single", "dual"} {
		t.Run(strategy, func(t *testing.T) {
			t.Parallel()
			b, log, cr := earlyRig(t, strategy, nil, nil)
			res, err := b.eng.Rotate(b.ctx, cr, engine.Options{})
			require.NoError(t, err)
			require.Equal(t, "succeeded", string(res.Status))
			requireLogins(t, log.seen(), "ready")
			role, pw := b.current()
			b.requireLogin(role, pw)
		})
	}
}

// TestAFailedEarlyLoginIsTriedAgain: whatever ends the early login
// without logging in (here a connection reset after it was let go), the
// test logs in again from the start, and only that login counts.
func TestAFailedEarlyLoginIsTriedAgain(t *testing.T) {
	t.Parallel()
	b, log, cr := earlyRig(t, "single", errors.New("read: connection reset by peer"), nil)
	res, err := b.eng.Rotate(b.ctx, cr, engine.Options{})
	require.NoError(t, err)
	require.Equal(t, "succeeded", string(res.Status))
	requireLogins(t, log.seen(), "ready", "dial")
	for _, s := range res.Steps {
		require.NotContains(t, s.Detail, "connection reset", "the early login's failure is not the test's outcome")
	}
	role, pw := b.current()
	b.requireLogin(role, pw)
}

// TestTheEarlyLoginIsDroppedUnused: when apply fails, the early login is
// closed before Rotate returns and never let go; when the backend chose
// the password itself (an API reset), it is closed and the test dials
// with the password the backend chose.
func TestTheEarlyLoginIsDroppedUnused(t *testing.T) {
	t.Parallel()
	t.Run("apply fails", func(t *testing.T) {
		t.Parallel()
		b, log, cr := earlyRig(t, "single", nil, func(*postgres.Postgres) setPasswordFunc {
			return func(context.Context, provider.SetPasswordRequest) (provider.SetPasswordResponse, error) {
				return provider.SetPasswordResponse{}, errors.New("permission denied to alter role")
			}
		})
		_, err := b.eng.Rotate(b.ctx, cr, engine.Options{})
		require.Error(t, err)
		select {
		case <-log.earlyEnded:
		default:
			t.Fatal("the early login was still open after Rotate returned")
		}
		requireLogins(t, log.seen())
	})
	t.Run("the backend chose the password", func(t *testing.T) {
		t.Parallel()
		chosen := mustPassword(t)
		b, log, cr := earlyRig(t, "single", nil, func(pg *postgres.Postgres) setPasswordFunc {
			return func(ctx context.Context, req provider.SetPasswordRequest) (provider.SetPasswordResponse, error) {
				ver, err := secret.SCRAMVerifier(nil, chosen)
				if err != nil {
					return provider.SetPasswordResponse{}, err
				}
				req.Password, req.Verifier = chosen, ver
				resp, err := pg.SetPassword(ctx, req)
				resp.Password = chosen
				return resp, err
			}
		})
		res, err := b.eng.Rotate(b.ctx, cr, engine.Options{})
		require.NoError(t, err)
		require.Equal(t, "succeeded", string(res.Status))
		requireLogins(t, log.seen(), "dial")
		role, pw := b.current()
		require.True(t, pw.Equal(chosen), "the .env holds the password the backend chose")
		b.requireLogin(role, pw)
	})
}
