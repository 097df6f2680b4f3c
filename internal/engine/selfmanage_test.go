package engine_test

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/rotorhq/rotor/internal/engine"
	"github.com/rotorhq/rotor/internal/pgtest"
	"github.com/rotorhq/rotor/internal/secret"
	"github.com/rotorhq/rotor/internal/store"
)

// TestSelfManagedAdminRole rotates the role the provider itself logs in
// as (admin_url's user; Neon's owner role is the common case). The
// password in the environment is stale after the first rotation: every
// later process must log in with the one rotor keeps, and a crash right
// after apply must resume to one password everywhere.
func TestSelfManagedAdminRole(t *testing.T) {
	t.Parallel()
	role := pgtest.UniqueName(t, "owner")
	b := setup(t, setupOpts{strategy: "single", roles: []string{role}})
	// The role may change its own attributes and is the only admin rotor
	// has; the provider is rebuilt from the config to log in as it.
	pw0 := selfAdmin(t, b, role)
	b.env["ADMIN_URL"] = b.cl.URL(role, pw0, b.db, "sslmode=require").Reveal()
	b.loadConfig()

	first := b.rotate(engine.Options{})
	require.Equal(t, store.StatusSucceeded, first.Status, first.Outcome)
	_, pw1 := b.current()
	b.requireNoLogin(role, pw0)

	// A new process: admin_url still says pw0, which no longer works.
	b.loadConfig()
	b.eng = b.newEngine()
	second := b.rotate(engine.Options{})
	require.Equal(t, store.StatusSucceeded, second.Status, second.Outcome)
	_, pw2 := b.current()
	b.requireNoLogin(role, pw1)
	b.requireLogin(role, pw2)

	// Crash right after apply: the server has the new password, nothing
	// else does. A new process resumes and ends on one password.
	b.loadConfig()
	b.eng = b.newEngine()
	crash := errors.New("killed")
	b.eng.Hooks = &engine.Hooks{BeforeStep: func(step string) error {
		if step == engine.StepTest {
			return crash
		}
		return nil
	}}
	_, err := b.eng.Rotate(b.ctx, b.cred(), engine.Options{})
	require.ErrorIs(t, err, crash)
	b.requireNoLogin(role, pw2)

	b.loadConfig()
	b.eng = b.newEngine()
	res, err := b.eng.Rotate(b.ctx, b.cred(), engine.Options{ResumeOnly: true})
	require.NoError(t, err)
	require.Equal(t, store.StatusSucceeded, res.Status, res.Outcome)
	_, pw3 := b.current() // the .env file names the store's current version
	b.requireLogin(role, pw3)
	require.False(t, pw3.Equal(pw2))

	// And status/plan of a new process log in too.
	b.loadConfig()
	b.eng = b.newEngine()
	st, err := b.eng.Status(context.WithoutCancel(b.ctx), b.cred(), engine.StatusOptions{Live: true})
	require.NoError(t, err)
	for _, w := range st.Warnings {
		require.NotContains(t, w, "password authentication failed")
	}
}

// TestSelfManagedDualIsRefused: a dual credential whose provider logs in
// as one of its roles would lock rotor out when that role is retired.
func TestSelfManagedDualIsRefused(t *testing.T) {
	t.Parallel()
	roles := roleNames(t)
	b := setup(t, setupOpts{strategy: "dual", roles: roles})
	pw := selfAdmin(t, b, roles[0])
	b.env["ADMIN_URL"] = b.cl.URL(roles[0], pw, b.db, "sslmode=require").Reveal()
	b.loadConfig()
	_, err := b.eng.Rotate(b.ctx, b.cred(), engine.Options{})
	require.ErrorContains(t, err, "one of the dual roles")
	vs, err := b.store.ListVersions(b.ctx, store.ListVersionsParams{Credential: "app"})
	require.NoError(t, err)
	require.Empty(t, vs, "nothing was prepared")
}

// selfAdmin gives role CREATEROLE and a password the test knows.
func selfAdmin(t *testing.T, b *bundle, role string) secret.String {
	t.Helper()
	return alterBySuperuser(t, b, role, "CREATEROLE")
}
