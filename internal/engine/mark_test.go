package engine_test

import (
	"context"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/rotorhq/rotor/internal/engine"
	"github.com/rotorhq/rotor/internal/pgtest"
	"github.com/rotorhq/rotor/internal/secret"
	"github.com/rotorhq/rotor/internal/store"
	"github.com/rotorhq/rotor/internal/store/sqlite"
)

// TestSecondStoreIsDetected: two stores rotating one database do not know
// about each other; the role's mark tells the second that the first set
// the password, and it stops until it adopts the credential.
func TestSecondStoreIsDetected(t *testing.T) {
	t.Parallel()
	roles := roleNames(t)
	b := setup(t, setupOpts{strategy: "dual", roles: roles, grace: "100ms", quiet: "100ms", drain: "10s"})
	b.rotate(engine.Options{})
	b.rotate(engine.Options{})

	other, err := sqlite.Open(b.ctx, filepath.Join(t.TempDir(), "other.db"))
	require.NoError(t, err)
	t.Cleanup(func() { other.Close() })
	mine := b.eng
	b.store = other
	b.eng = b.newEngine()
	_, err = b.eng.Rotate(b.ctx, b.cred(), engine.Options{})
	var se *engine.StepError
	require.ErrorAs(t, err, &se)
	require.Equal(t, engine.StepPrepare, se.Step)
	require.Contains(t, err.Error(), "another rotor store")
	require.Contains(t, err.Error(), "rotor adopt app")
	vs, err := other.ListVersions(b.ctx, store.ListVersionsParams{Credential: "app", Stages: []store.Stage{store.StagePending}})
	require.NoError(t, err)
	require.Empty(t, vs, "nothing prepared")
	// Adopting also drops the rotation that stopped at prepare.
	adopted, err := b.eng.Adopt(b.ctx, b.cred())
	require.NoError(t, err)
	require.Len(t, adopted, 2)
	require.Contains(t, adopted[0].Previous+adopted[1].Previous, "rotor:v1 store=")
	res := b.rotate(engine.Options{})
	require.Equal(t, store.StatusSucceeded, res.Status, res.Outcome)

	// Now the first store is the one that is behind.
	b.eng = mine
	_, err = mine.Rotate(b.ctx, b.cred(), engine.Options{})
	require.ErrorContains(t, err, "another rotor store")

	st, err := b.eng.Status(b.ctx, b.cred(), engine.StatusOptions{Live: true})
	require.NoError(t, err)
	require.NotEmpty(t, st.Drift)
}

// TestPasswordChangedByHandIsDetected: an ALTER ROLE outside rotor leaves
// the mark as it was, but the current version no longer logs in.
func TestPasswordChangedByHandIsDetected(t *testing.T) {
	t.Parallel()
	role := pgtest.UniqueName(t, "app")
	b := setup(t, setupOpts{strategy: "single", roles: []string{role}})
	b.rotate(engine.Options{})
	_, before := b.current()

	byHand := setByHand(t, b, role)
	_, err := b.eng.Rotate(b.ctx, b.cred(), engine.Options{})
	require.ErrorContains(t, err, "no longer logs in: it was changed outside rotor")
	require.NotContains(t, err.Error(), byHand.Reveal())
	b.requireLogin(role, byHand) // untouched
	b.requireNoLogin(role, before)

	_, err = b.eng.Adopt(b.ctx, b.cred())
	require.NoError(t, err)
	res := b.rotate(engine.Options{})
	require.Equal(t, store.StatusSucceeded, res.Status)
	_, now := b.current()
	b.requireLogin(role, now)
}

// TestUnchangedPasswordNeedsNoLogin: where the admin can read the
// verifier the server holds, the drift check compares it with the
// current version's instead of logging in, so a rotation logs in once
// (its test) and not twice; a verifier the server computed itself from
// the same password (a plaintext ALTER ROLE, as Neon's are) is no drift.
func TestUnchangedPasswordNeedsNoLogin(t *testing.T) {
	t.Parallel()
	role := pgtest.UniqueName(t, "app")
	b := setup(t, setupOpts{strategy: "single", roles: []string{role}})
	dials := countDials(b)
	b.rotate(engine.Options{})
	require.EqualValues(t, 1, dials.Swap(0), "first rotation: the test's login")
	b.rotate(engine.Options{})
	require.EqualValues(t, 1, dials.Swap(0), "second rotation: the test's login only")

	// The same password, hashed by the server with a salt of its own.
	_, pw := b.current()
	su, err := pgx.Connect(b.ctx, b.cl.AdminURL(b.db).Reveal())
	require.NoError(t, err)
	_, err = su.Exec(b.ctx, "SET password_encryption = 'scram-sha-256'")
	require.NoError(t, err)
	_, err = su.Exec(b.ctx, "ALTER ROLE "+pgx.Identifier{role}.Sanitize()+" PASSWORD "+quoteLiteral(pw.Reveal()))
	require.NoError(t, err)
	su.Close(context.WithoutCancel(b.ctx))
	res := b.rotate(engine.Options{})
	require.Equal(t, store.StatusSucceeded, res.Status, res.Outcome)
	require.EqualValues(t, 1, dials.Swap(0))
}

// TestChangedPasswordFoundByLogin: an admin that cannot read pg_authid
// (CREATEROLE, not a superuser) still finds a password changed by hand,
// by logging in with the current one.
func TestChangedPasswordFoundByLogin(t *testing.T) {
	t.Parallel()
	admin := pgtest.UniqueName(t, "admin")
	b := setup(t, setupOpts{strategy: "dual", roles: roleNames(t)})
	pgtest.NewRole(t, b.cl, admin, mustPassword(t))
	adminPW := selfAdmin(t, b, admin)
	b.env["ADMIN_URL"] = b.cl.URL(admin, adminPW, b.db, "sslmode=require").Reveal()
	b.loadConfig()
	dials := countDials(b)
	b.rotate(engine.Options{})
	require.EqualValues(t, 1, dials.Swap(0))
	b.rotate(engine.Options{})
	require.EqualValues(t, 2, dials.Swap(0), "the drift check logged in: the admin cannot read the verifier")

	cur, _ := b.current()
	byHand := setByHand(t, b, cur)
	_, err := b.eng.Rotate(b.ctx, b.cred(), engine.Options{})
	require.ErrorContains(t, err, "no longer logs in: it was changed outside rotor")
	require.NotContains(t, err.Error(), byHand.Reveal())
}

// setByHand sets a new password on role as a superuser would by hand,
// outside rotor, and returns it.
func setByHand(t *testing.T, b *bundle, role string) secret.String {
	t.Helper()
	return alterBySuperuser(t, b, role, "")
}

// alterBySuperuser gives role a new password (its verifier computed here)
// and the attributes attrs, as the cluster's superuser, and returns the
// password.
func alterBySuperuser(t *testing.T, b *bundle, role, attrs string) secret.String {
	t.Helper()
	pw := mustPassword(t)
	ver, err := secret.SCRAMVerifier(nil, pw)
	require.NoError(t, err)
	su, err := pgx.Connect(b.ctx, b.cl.AdminURL(b.db).Reveal())
	require.NoError(t, err)
	defer su.Close(context.WithoutCancel(b.ctx))
	_, err = su.Exec(b.ctx, "ALTER ROLE "+pgx.Identifier{role}.Sanitize()+" "+attrs+" PASSWORD '"+ver.Reveal()+"'")
	require.NoError(t, err)
	return pw
}

// countDials counts the engine's logins from now on.
func countDials(b *bundle) *atomic.Int32 {
	var n atomic.Int32
	b.eng.Dial = func(ctx context.Context, url secret.String) error {
		n.Add(1)
		return engine.DialPostgres(ctx, url)
	}
	return &n
}

func quoteLiteral(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }
