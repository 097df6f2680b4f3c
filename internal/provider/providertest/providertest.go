// Package providertest is the conformance suite every database provider
// passes against a real PostgreSQL. It checks the contract written on
// provider.Provider by its effects: logging in with the new password and
// failing with the old one, watching sessions appear and die, and reading
// ownership and grants back from the catalogs.
//
//	func TestConformance(t *testing.T) {
//		providertest.Exercise(t, providertest.Harness{New: func(t *testing.T) providertest.Env { … }})
//	}
package providertest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/rotorhq/rotor/internal/pgtest"
	"github.com/rotorhq/rotor/internal/provider"
	"github.com/rotorhq/rotor/internal/secret"
)

// Harness binds the suite to one provider implementation.
type Harness struct {
	// New returns an Env around a fresh, empty database; everything in it
	// is released when t ends. It is called once per subtest, in parallel.
	New func(t *testing.T) Env
}

// Env is one provider bound to one database, and the means to prepare and
// observe that database independently of the provider.
type Env struct {
	// Provider is bound to Database (its admin connection uses it).
	Provider provider.Provider
	// Database is the database's name.
	Database string
	// AdminURL connects to Database as a role that may create tables,
	// grant, and drop the roles the suite creates (fixtures, checks and
	// cleanup go through it, never through Provider).
	AdminURL secret.String
	// LoginURL is how a consumer connects to Database as role: over TLS
	// with SCRAM channel binding where the backend offers it.
	LoginURL func(role string, password secret.String) secret.String
	// CreateRole creates a plain LOGIN role with password, removed when t
	// ends.
	CreateRole func(t *testing.T, name string, password secret.String)
}

// Exercise runs the conformance suite.
func Exercise(t *testing.T, h Harness) {
	t.Helper()
	tests := []struct {
		name string
		run  func(t *testing.T, h Harness)
	}{
		{"SetPassword", testSetPassword},
		{"SetPasswordIdempotent", testSetPasswordIdempotent},
		{"SetPasswordValidUntil", testSetPasswordValidUntil},
		{"UnknownRole", testUnknownRole},
		{"WeirdRoleNames", testWeirdRoleNames},
		{"SnapshotRestore", testSnapshotRestore},
		{"Retire", testRetire},
		{"Sessions", testSessions},
		{"SessionsStartedBefore", testSessionsStartedBefore},
		{"Terminate", testTerminate},
		{"TerminateStartedBefore", testTerminateStartedBefore},
		{"EnsureRoles", testEnsureRoles},
		{"EnsureRolesRepairs", testEnsureRolesRepairs},
		{"EnsureRolesKeepsPasswords", testEnsureRolesKeepsPasswords},
		{"Parity", testParity},
		{"Check", testCheck},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.run(t, h)
		})
	}
}

func testSetPassword(t *testing.T, h Harness) {
	env, ctx := h.New(t), t.Context()
	role, oldPW, newPW := pgtest.UniqueName(t, "setpw"), newPassword(t), newPassword(t)
	env.CreateRole(t, role, oldPW)
	requireLogin(ctx, t, env.LoginURL(role, oldPW))

	setPassword(ctx, t, env, role, newPW, nil)

	requireLogin(ctx, t, env.LoginURL(role, newPW))
	requireNoLogin(ctx, t, env.LoginURL(role, oldPW))
}

func testSetPasswordIdempotent(t *testing.T, h Harness) {
	env, ctx := h.New(t), t.Context()
	role, pw := pgtest.UniqueName(t, "idem"), newPassword(t)
	env.CreateRole(t, role, newPassword(t))
	req := provider.SetPasswordRequest{Role: role, Password: pw, Verifier: verifier(t, pw)}
	for range 2 {
		_, err := env.Provider.SetPassword(ctx, req)
		require.NoError(t, err)
		requireLogin(ctx, t, env.LoginURL(role, pw))
	}
}

func testSetPasswordValidUntil(t *testing.T, h Harness) {
	env, ctx := h.New(t), t.Context()
	past, future := time.Now().Add(-time.Hour), time.Now().Add(24*time.Hour)
	tests := []struct {
		name       string
		validUntil *time.Time
		wantLogin  bool
	}{
		{"in the past", &past, false},
		{"in the future", &future, true},
		{"none clears an earlier expiry", nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			role, pw := pgtest.UniqueName(t, "valid"), newPassword(t)
			env.CreateRole(t, role, newPassword(t))
			setPassword(ctx, t, env, role, pw, &past)
			setPassword(ctx, t, env, role, pw, tt.validUntil)
			if tt.wantLogin {
				requireLogin(ctx, t, env.LoginURL(role, pw))
			} else {
				requireNoLogin(ctx, t, env.LoginURL(role, pw))
			}
		})
	}
}

func testUnknownRole(t *testing.T, h Harness) {
	env, ctx := h.New(t), t.Context()
	role, pw := pgtest.UniqueName(t, "missing"), newPassword(t)
	v := verifier(t, pw)
	tests := []struct {
		name string
		call func() error
		want []error
	}{
		{"SetPassword", func() error {
			_, err := env.Provider.SetPassword(ctx, provider.SetPasswordRequest{Role: role, Password: pw, Verifier: v})
			return err
		}, []error{provider.ErrRoleNotFound}},
		{"Snapshot", func() error {
			_, err := env.Provider.Snapshot(ctx, provider.SnapshotRequest{Role: role})
			return err
		}, []error{provider.ErrRoleNotFound, provider.ErrUnsupported}},
		{"Retire", func() error {
			_, err := env.Provider.Retire(ctx, provider.RetireRequest{Role: role, Method: provider.RetireScramble})
			return err
		}, []error{provider.ErrRoleNotFound}},
		{"Sessions", func() error {
			_, err := env.Provider.Sessions(ctx, provider.SessionsRequest{Role: role})
			return err
		}, []error{provider.ErrRoleNotFound}},
		{"Parity", func() error {
			_, err := env.Provider.Parity(ctx, provider.ParityRequest{Roles: []string{role, role + "_2"}})
			return err
		}, []error{provider.ErrRoleNotFound}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := tt.call()
			require.Error(t, err)
			requireIsOneOf(t, err, tt.want...)
			requireNoSecret(t, err.Error(), pw, v)
		})
	}
}

// weirdNames are role names that break naive quoting in SQL, in URLs, or
// in both.
var weirdNames = []string{
	`we"ird; DROP TABLE x; --`,
	`o'brien`,
	`Mixed Case`,
	`back\slash`,
	`ünïcødé`,
	`a@b:c/d?e#f%g`,
}

func testWeirdRoleNames(t *testing.T, h Harness) {
	env, ctx := h.New(t), t.Context()
	admin := pgtest.Connect(ctx, t, env.AdminURL)
	_, err := admin.Exec(ctx, `CREATE TABLE x (id int)`)
	require.NoError(t, err)
	for _, name := range weirdNames {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			// Roles are cluster-wide; the suffix keeps parallel runs apart.
			suffix := pgtest.UniqueName(t, "")
			role := name + suffix
			pw := newPassword(t)
			env.CreateRole(t, role, newPassword(t))
			setPassword(ctx, t, env, role, pw, nil)
			// Logging in through connectAs, not requireLogin: a closed
			// session's backend may linger in pg_stat_activity for a moment
			// and would be counted below.
			conn := connectAs(ctx, t, env.LoginURL(role, pw), "weird")
			sessions, err := env.Provider.Sessions(ctx, provider.SessionsRequest{Role: role})
			require.NoError(t, err)
			require.Len(t, sessions.Sessions, 1)
			require.Equal(t, int(conn.PgConn().PID()), sessions.Sessions[0].PID)

			group := "group " + name + suffix
			other := "other " + name + suffix
			dropRolesAtCleanup(t, env, group, other)
			layout := provider.EnsureRolesRequest{Group: group, Logins: []string{role, other}, Database: env.Database}
			_, err = env.Provider.EnsureRoles(ctx, layout)
			require.NoError(t, err)
			again, err := env.Provider.EnsureRoles(ctx, layout)
			require.NoError(t, err)
			require.Empty(t, again.Changes, "the layout must be recognised under quoting")
			parity, err := env.Provider.Parity(ctx, provider.ParityRequest{Roles: []string{role, other}})
			require.NoError(t, err)
			require.Empty(t, parity.Differences)

			terminated, err := env.Provider.Terminate(ctx, provider.TerminateRequest{Role: role})
			require.NoError(t, err)
			require.Equal(t, 1, terminated.Terminated)

			for _, m := range []provider.RetireMethod{provider.RetireScramble, provider.RetireNoLogin} {
				_, err = env.Provider.Retire(ctx, provider.RetireRequest{Role: role, Method: m})
				require.NoError(t, err)
			}
			requireNoLogin(ctx, t, env.LoginURL(role, pw))
		})
	}
	t.Cleanup(func() {
		// The table survives every name: nothing was injected.
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		var n int
		require.NoError(t, admin.QueryRow(ctx, `SELECT count(*) FROM x`).Scan(&n))
	})
}

func testSnapshotRestore(t *testing.T, h Harness) {
	env, ctx := h.New(t), t.Context()
	role, oldPW, newPW := pgtest.UniqueName(t, "snap"), newPassword(t), newPassword(t)
	env.CreateRole(t, role, oldPW)

	snap, err := env.Provider.Snapshot(ctx, provider.SnapshotRequest{Role: role})
	if err != nil {
		require.ErrorIs(t, err, provider.ErrUnsupported)
		return
	}
	require.True(t, snap.Login)
	require.False(t, snap.Verifier.IsZero())
	require.True(t, secret.VerifySCRAM(snap.Verifier, oldPW), "the snapshot must be the verifier of the current password")

	setPassword(ctx, t, env, role, newPW, nil)
	requireNoLogin(ctx, t, env.LoginURL(role, oldPW))

	_, err = env.Provider.SetPassword(ctx, provider.SetPasswordRequest{Role: role, Verifier: snap.Verifier})
	require.NoError(t, err)
	requireLogin(ctx, t, env.LoginURL(role, oldPW))
	requireNoLogin(ctx, t, env.LoginURL(role, newPW))
}

func testRetire(t *testing.T, h Harness) {
	env, ctx := h.New(t), t.Context()
	for _, method := range []provider.RetireMethod{provider.RetireScramble, provider.RetireNoLogin} {
		t.Run(string(method), func(t *testing.T) {
			t.Parallel()
			role, pw, next := pgtest.UniqueName(t, "retire"), newPassword(t), newPassword(t)
			env.CreateRole(t, role, pw)
			requireLogin(ctx, t, env.LoginURL(role, pw))

			for range 2 { // idempotent
				_, err := env.Provider.Retire(ctx, provider.RetireRequest{Role: role, Method: method})
				require.NoError(t, err)
				requireNoLogin(ctx, t, env.LoginURL(role, pw))
			}
			if snap, err := env.Provider.Snapshot(ctx, provider.SnapshotRequest{Role: role}); err == nil {
				require.Equal(t, method == provider.RetireScramble, snap.Login)
			}

			setPassword(ctx, t, env, role, next, nil)
			requireLogin(ctx, t, env.LoginURL(role, next))
		})
	}
	t.Run("unknown method", func(t *testing.T) {
		t.Parallel()
		role := pgtest.UniqueName(t, "retire")
		env.CreateRole(t, role, newPassword(t))
		_, err := env.Provider.Retire(ctx, provider.RetireRequest{Role: role, Method: "drop"})
		require.ErrorIs(t, err, provider.ErrInvalid)
	})
}

func testSessions(t *testing.T, h Harness) {
	env, ctx := h.New(t), t.Context()
	role, other, pw := pgtest.UniqueName(t, "sess"), pgtest.UniqueName(t, "other"), newPassword(t)
	env.CreateRole(t, role, pw)
	env.CreateRole(t, other, pw)

	got, err := env.Provider.Sessions(ctx, provider.SessionsRequest{Role: role})
	require.NoError(t, err)
	require.Empty(t, got.Sessions)

	app := pgtest.UniqueName(t, "app")
	conn := connectAs(ctx, t, env.LoginURL(role, pw), app)
	connectAs(ctx, t, env.LoginURL(other, pw), "not listed")

	got, err = env.Provider.Sessions(ctx, provider.SessionsRequest{Role: role})
	require.NoError(t, err)
	require.Len(t, got.Sessions, 1)
	s := got.Sessions[0]
	require.Equal(t, int(conn.PgConn().PID()), s.PID)
	require.Equal(t, app, s.ApplicationName)
	require.Equal(t, env.Database, s.Database)
	require.NotEmpty(t, s.ClientAddr)
	require.False(t, s.BackendStart.IsZero())
	require.NotEmpty(t, s.State)
}

func testSessionsStartedBefore(t *testing.T, h Harness) {
	env, ctx := h.New(t), t.Context()
	role, pw := pgtest.UniqueName(t, "before"), newPassword(t)
	env.CreateRole(t, role, pw)
	first := connectAs(ctx, t, env.LoginURL(role, pw), "first")
	second := connectAs(ctx, t, env.LoginURL(role, pw), "second")

	all, err := env.Provider.Sessions(ctx, provider.SessionsRequest{Role: role})
	require.NoError(t, err)
	require.Len(t, all.Sessions, 2)
	start := map[int]time.Time{}
	for _, s := range all.Sessions {
		start[s.PID] = s.BackendStart
	}
	firstPID, secondPID := int(first.PgConn().PID()), int(second.PgConn().PID())

	// Cut-offs taken from the server's own clock, so no sleeping and no
	// comparison with this machine's clock.
	tests := []struct {
		name   string
		before time.Time
		want   []int
	}{
		{"zero means all", time.Time{}, []int{firstPID, secondPID}},
		{"before the second", start[secondPID], []int{firstPID}},
		{"before the first", start[firstPID], nil},
		{"after both", start[secondPID].Add(time.Second), []int{firstPID, secondPID}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := env.Provider.Sessions(ctx, provider.SessionsRequest{Role: role, StartedBefore: tt.before})
			require.NoError(t, err)
			require.ElementsMatch(t, tt.want, pids(got.Sessions))
		})
	}
}

func testTerminate(t *testing.T, h Harness) {
	env, ctx := h.New(t), t.Context()
	role, other, pw := pgtest.UniqueName(t, "term"), pgtest.UniqueName(t, "bystander"), newPassword(t)
	env.CreateRole(t, role, pw)
	env.CreateRole(t, other, pw)
	victims := []*pgx.Conn{
		connectAs(ctx, t, env.LoginURL(role, pw), "victim"),
		connectAs(ctx, t, env.LoginURL(role, pw), "victim"),
	}
	bystander := connectAs(ctx, t, env.LoginURL(other, pw), "bystander")

	got, err := env.Provider.Terminate(ctx, provider.TerminateRequest{Role: role})
	require.NoError(t, err)
	require.Equal(t, 2, got.Terminated)

	left, err := env.Provider.Sessions(ctx, provider.SessionsRequest{Role: role})
	require.NoError(t, err)
	require.Empty(t, left.Sessions, "Terminate must wait until the sessions are gone")
	for _, conn := range victims {
		_, err := conn.Exec(ctx, "SELECT 1")
		require.Error(t, err, "a terminated session must be unusable")
	}
	_, err = bystander.Exec(ctx, "SELECT 1")
	require.NoError(t, err, "another role's session must survive")

	got, err = env.Provider.Terminate(ctx, provider.TerminateRequest{Role: role})
	require.NoError(t, err, "terminating nothing is not an error")
	require.Zero(t, got.Terminated)
	requireLogin(ctx, t, env.LoginURL(role, pw))
}

func testTerminateStartedBefore(t *testing.T, h Harness) {
	env, ctx := h.New(t), t.Context()
	role, pw := pgtest.UniqueName(t, "termb"), newPassword(t)
	env.CreateRole(t, role, pw)
	old := connectAs(ctx, t, env.LoginURL(role, pw), "old")
	young := connectAs(ctx, t, env.LoginURL(role, pw), "young")
	all, err := env.Provider.Sessions(ctx, provider.SessionsRequest{Role: role})
	require.NoError(t, err)
	var cutoff time.Time
	for _, s := range all.Sessions {
		if s.PID == int(young.PgConn().PID()) {
			cutoff = s.BackendStart
		}
	}
	require.False(t, cutoff.IsZero())

	got, err := env.Provider.Terminate(ctx, provider.TerminateRequest{Role: role, StartedBefore: cutoff})
	require.NoError(t, err)
	require.Equal(t, 1, got.Terminated)
	_, err = old.Exec(ctx, "SELECT 1")
	require.Error(t, err)
	_, err = young.Exec(ctx, "SELECT 1")
	require.NoError(t, err)
}

func testEnsureRoles(t *testing.T, h Harness) {
	env, ctx := h.New(t), t.Context()
	group, blue, green := pgtest.UniqueName(t, "app"), pgtest.UniqueName(t, "app_blue"), pgtest.UniqueName(t, "app_green")
	dropRolesAtCleanup(t, env, group, blue, green)
	req := provider.EnsureRolesRequest{Group: group, Logins: []string{blue, green}, Database: env.Database}

	first, err := env.Provider.EnsureRoles(ctx, req)
	require.NoError(t, err)
	require.NotEmpty(t, first.Changes)
	again, err := env.Provider.EnsureRoles(ctx, req)
	require.NoError(t, err)
	require.Empty(t, again.Changes, "a second run must find everything in place")

	admin := pgtest.Connect(ctx, t, env.AdminURL)
	var groupCanLogin bool
	require.NoError(t, admin.QueryRow(ctx, `SELECT rolcanlogin FROM pg_roles WHERE rolname = $1`, group).Scan(&groupCanLogin))
	require.False(t, groupCanLogin, "the owner group must be NOLOGIN")
	_, err = admin.Exec(ctx, "GRANT CREATE ON SCHEMA public TO "+pgx.Identifier{group}.Sanitize())
	require.NoError(t, err)

	bluePW, greenPW := newPassword(t), newPassword(t)
	setPassword(ctx, t, env, blue, bluePW, nil)
	setPassword(ctx, t, env, green, greenPW, nil)

	asBlue := connectAs(ctx, t, env.LoginURL(blue, bluePW), "blue")
	_, err = asBlue.Exec(ctx, `CREATE TABLE made_by_blue (id int)`)
	require.NoError(t, err)
	var owner string
	require.NoError(t, admin.QueryRow(ctx, `SELECT tableowner FROM pg_tables WHERE tablename = 'made_by_blue'`).Scan(&owner))
	require.Equal(t, group, owner, "objects a login role creates must belong to the group")

	asGreen := connectAs(ctx, t, env.LoginURL(green, greenPW), "green")
	_, err = asGreen.Exec(ctx, `INSERT INTO made_by_blue VALUES (1)`)
	require.NoError(t, err, "the other login role must be able to use the group's objects")
	_, err = asGreen.Exec(ctx, `ALTER TABLE made_by_blue ADD COLUMN note text`)
	require.NoError(t, err, "the other login role must be able to migrate the group's objects")
}

func testEnsureRolesRepairs(t *testing.T, h Harness) {
	env, ctx := h.New(t), t.Context()
	group, blue, green := pgtest.UniqueName(t, "app"), pgtest.UniqueName(t, "app_blue"), pgtest.UniqueName(t, "app_green")
	dropRolesAtCleanup(t, env, group, blue, green)
	req := provider.EnsureRolesRequest{Group: group, Logins: []string{blue, green}}
	_, err := env.Provider.EnsureRoles(ctx, req)
	require.NoError(t, err)

	admin := pgtest.Connect(ctx, t, env.AdminURL)
	g, gr := pgx.Identifier{group}.Sanitize(), pgx.Identifier{green}.Sanitize()
	_, err = admin.Exec(ctx, "REVOKE "+g+" FROM "+gr+"; ALTER ROLE "+gr+" RESET role")
	require.NoError(t, err)

	repaired, err := env.Provider.EnsureRoles(ctx, req)
	require.NoError(t, err)
	require.Len(t, repaired.Changes, 2, "membership and setting: %v", repaired.Changes)
	for _, c := range repaired.Changes {
		require.Contains(t, c, green)
	}
	again, err := env.Provider.EnsureRoles(ctx, req)
	require.NoError(t, err)
	require.Empty(t, again.Changes)
}

func testEnsureRolesKeepsPasswords(t *testing.T, h Harness) {
	env, ctx := h.New(t), t.Context()
	group, blue, green := pgtest.UniqueName(t, "app"), pgtest.UniqueName(t, "app_blue"), pgtest.UniqueName(t, "app_green")
	pw := newPassword(t)
	env.CreateRole(t, blue, pw)
	dropRolesAtCleanup(t, env, group, green)

	got, err := env.Provider.EnsureRoles(ctx, provider.EnsureRolesRequest{Group: group, Logins: []string{blue, green}})
	require.NoError(t, err)
	require.NotEmpty(t, got.Changes)
	requireLogin(ctx, t, env.LoginURL(blue, pw))
}

func testParity(t *testing.T, h Harness) {
	env, ctx := h.New(t), t.Context()
	group, blue, green := pgtest.UniqueName(t, "app"), pgtest.UniqueName(t, "app_blue"), pgtest.UniqueName(t, "app_green")
	dropRolesAtCleanup(t, env, group, blue, green)
	_, err := env.Provider.EnsureRoles(ctx, provider.EnsureRolesRequest{Group: group, Logins: []string{blue, green}, Database: env.Database})
	require.NoError(t, err)
	roles := provider.ParityRequest{Roles: []string{blue, green}}

	got, err := env.Provider.Parity(ctx, roles)
	require.NoError(t, err)
	require.Empty(t, got.Differences, "a fresh pair must be interchangeable")

	admin := pgtest.Connect(ctx, t, env.AdminURL)
	_, err = admin.Exec(ctx, "CREATE TABLE orders (id int); GRANT SELECT ON orders TO "+pgx.Identifier{blue}.Sanitize())
	require.NoError(t, err)

	got, err = env.Provider.Parity(ctx, roles)
	require.NoError(t, err)
	require.Len(t, got.Differences, 1, "%v", got.Differences)
	require.Contains(t, got.Differences[0], "orders")
	require.Contains(t, got.Differences[0], green)
	require.Contains(t, got.Differences[0], "SELECT")
}

func testCheck(t *testing.T, h Harness) {
	env, ctx := h.New(t), t.Context()
	present, missing := pgtest.UniqueName(t, "present"), pgtest.UniqueName(t, "missing")
	env.CreateRole(t, present, newPassword(t))

	got, err := env.Provider.Check(ctx, provider.CheckRequest{Roles: []string{present, missing}})
	require.NoError(t, err)
	require.NotEmpty(t, got.ServerVersion)
	notes := strings.Join(got.Notes, "\n")
	require.Contains(t, notes, missing)
	require.NotContains(t, notes, present)
}

// newPassword returns a password with characters that need escaping in
// URLs, to prove every layer passes it through intact.
func newPassword(t testing.TB) secret.String {
	t.Helper()
	b := make([]byte, 12)
	_, err := rand.Read(b)
	require.NoError(t, err)
	return secret.New("pw-" + hex.EncodeToString(b) + "@:/%?#'\"")
}

func verifier(t testing.TB, pw secret.String) secret.String {
	t.Helper()
	v, err := secret.SCRAMVerifier(nil, pw)
	require.NoError(t, err)
	return v
}

func setPassword(ctx context.Context, t *testing.T, env Env, role string, pw secret.String, validUntil *time.Time) {
	t.Helper()
	v := verifier(t, pw)
	_, err := env.Provider.SetPassword(ctx, provider.SetPasswordRequest{Role: role, Password: pw, Verifier: v, ValidUntil: validUntil})
	if err != nil {
		requireNoSecret(t, err.Error(), pw, v)
	}
	require.NoError(t, err)
}

func requireLogin(ctx context.Context, t *testing.T, url secret.String) {
	t.Helper()
	require.NoError(t, pgtest.CanLogin(ctx, url))
}

func requireNoLogin(ctx context.Context, t *testing.T, url secret.String) {
	t.Helper()
	err := pgtest.CanLogin(ctx, url)
	require.Error(t, err, "login must fail")
	require.Contains(t, err.Error(), "SQLSTATE 28", "login must fail at authentication, not for another reason")
}

func requireNoSecret(t *testing.T, text string, secrets ...secret.String) {
	t.Helper()
	for _, s := range secrets {
		if strings.Contains(text, s.Reveal()) {
			t.Fatalf("a secret leaked into an error (secret not shown)")
		}
	}
}

func requireIsOneOf(t *testing.T, err error, targets ...error) {
	t.Helper()
	for _, target := range targets {
		if errors.Is(err, target) {
			return
		}
	}
	t.Fatalf("error %q is none of %v", err, targets)
}

// connectAs opens a session with an application_name, closed when t ends.
func connectAs(ctx context.Context, t *testing.T, url secret.String, app string) *pgx.Conn {
	t.Helper()
	cfg, err := pgx.ParseConfig(url.Reveal())
	require.NoError(t, err)
	cfg.RuntimeParams["application_name"] = app
	conn, err := pgx.ConnectConfig(ctx, cfg)
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = conn.Close(ctx)
	})
	return conn
}

// dropRolesAtCleanup removes roles the provider created, through AdminURL.
// Registered after Env's own cleanup, it runs before the database is
// dropped, so DROP OWNED can still reach what the roles own there.
func dropRolesAtCleanup(t *testing.T, env Env, names ...string) {
	t.Helper()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, env.AdminURL.Reveal())
		if err != nil {
			t.Errorf("drop roles: connect: %v", err)
			return
		}
		defer conn.Close(ctx)
		for _, name := range names {
			var exists bool
			if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)`, name).Scan(&exists); err != nil || !exists {
				continue
			}
			id := pgx.Identifier{name}.Sanitize()
			_, _ = conn.Exec(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1`, name)
			if err := pgtest.RetryCatalogRace(ctx, func() error { _, err := conn.Exec(ctx, "DROP OWNED BY "+id+"; DROP ROLE "+id); return err }); err != nil {
				t.Errorf("drop role %q: %v", name, err)
			}
		}
	})
}

func pids(sessions []provider.Session) []int {
	out := make([]int, len(sessions))
	for i, s := range sessions {
		out[i] = s.PID
	}
	return out
}
