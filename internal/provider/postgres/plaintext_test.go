package postgres_test

import (
	"fmt"
	"net/url"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/rotorhq/rotor/internal/pgcluster"
	"github.com/rotorhq/rotor/internal/pgtest"
	"github.com/rotorhq/rotor/internal/provider"
	"github.com/rotorhq/rotor/internal/provider/postgres"
	"github.com/rotorhq/rotor/internal/secret"
)

// verifyFull turns a cluster URL (sslmode=require) into one that verifies
// the server's certificate against the cluster's own CA file.
func verifyFull(t *testing.T, c *pgcluster.Cluster, u secret.String, mode string) secret.String {
	t.Helper()
	parsed, err := url.Parse(u.Reveal())
	require.NoError(t, err)
	q := parsed.Query()
	q.Set("sslmode", mode)
	q.Set("sslrootcert", c.CACertFile)
	parsed.RawQuery = q.Encode()
	return secret.New(parsed.String())
}

func openProvider(t *testing.T, admin secret.String, hints postgres.Hints) *postgres.Postgres {
	t.Helper()
	p, err := postgres.New(provider.Params{Decode: func(v any) error {
		*(v.(*postgres.Options)) = postgres.Options{AdminURL: admin.Reveal(), Hints: hints}
		return nil
	}})
	require.NoError(t, err)
	t.Cleanup(func() { _ = p.Close() })
	return p.(*postgres.Postgres)
}

func TestPlaintextNeedsVerifiedTLS(t *testing.T) {
	t.Parallel()
	c := pgtest.Shared(t)
	db, admin := pgtest.NewDatabase(t)
	role, old := pgtest.UniqueName(t, "plain"), secret.New("Old-plain-Pw-1")
	pgtest.NewRole(t, c, role, old)
	next := secret.New("Next-plain-" + pgtest.UniqueName(t, "pw"))
	for _, mode := range []string{"require", "prefer", "disable"} {
		t.Run(mode, func(t *testing.T) {
			u, err := url.Parse(admin.Reveal())
			require.NoError(t, err)
			q := u.Query()
			q.Set("sslmode", mode)
			u.RawQuery = q.Encode()
			p := openProvider(t, secret.New(u.String()), postgres.Hints{})
			require.False(t, p.VerifiesTLS())
			_, err = p.SetPlaintextPassword(t.Context(), provider.SetPasswordRequest{Role: role, Password: next})
			require.ErrorIs(t, err, postgres.ErrUnverifiedTLS)
			require.ErrorIs(t, err, provider.ErrInvalid)
			require.ErrorContains(t, err, "sslmode=verify-full")
			require.Empty(t, secret.Leaks([]byte(err.Error()), next))
			require.NoError(t, pgtest.CanLogin(t.Context(), c.URL(role, old, db)), "nothing was sent")
		})
	}
	for _, mode := range []string{"verify-full", "verify-ca"} {
		t.Run(mode, func(t *testing.T) {
			p := openProvider(t, verifyFull(t, c, admin, mode), postgres.Hints{})
			require.True(t, p.VerifiesTLS())
		})
	}
}

// TestPlaintextServerLog sets plaintext passwords on a server that logs
// every statement: with a superuser admin the statement is kept out of
// the log; with a CREATEROLE admin, which may not change log settings,
// the report says so, and the log shows why it matters.
func TestPlaintextServerLog(t *testing.T) {
	t.Parallel()
	c := ownCluster(t, pgcluster.Options{LogStatements: true})
	tests := []struct {
		name       string
		attributes string // "" is the cluster's superuser
		wantQuiet  bool
	}{
		{"superuser admin", "", true},
		{"CREATEROLE admin", "CREATEROLE", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := t.Context()
			db, superURL := pgtest.NewDatabaseOn(t, c)
			adminURL := superURL
			if tt.attributes != "" {
				name, pw := pgtest.UniqueName(t, "admin"), secret.New("admin-Pw-1")
				pgtest.NewRole(t, c, name, pw)
				super := pgtest.Connect(ctx, t, c.AdminURL("postgres"))
				_, err := super.Exec(ctx, "ALTER ROLE "+quote(name)+" "+tt.attributes)
				require.NoError(t, err)
				adminURL = c.URL(name, pw, db)
			}
			p := openProvider(t, verifyFull(t, c, adminURL, "verify-full"), postgres.Hints{})
			role := pgtest.UniqueName(t, "plainlog")
			pgtest.NewRole(t, c, role, secret.New("initial-Pw-0"))
			dropAtCleanup(t, c, role)

			before, err := p.Quiet(ctx)
			require.NoError(t, err)
			pw := secret.New("Plain-" + pgtest.UniqueName(t, "pw"))
			report, err := p.SetPlaintextPassword(ctx, provider.SetPasswordRequest{Role: role, Password: pw})
			require.NoError(t, err)
			require.Equal(t, before, report, "validate reports what a rotation will do")
			require.Equal(t, tt.wantQuiet, report.Complete())
			if tt.wantQuiet {
				require.Contains(t, report.Off, "log_statement")
				require.Contains(t, report.Off, "log_min_error_statement")
				require.Contains(t, report.Off, "track_activities")
			} else {
				require.Contains(t, report.Left, "log_statement")
			}
			require.NotContains(t, append(report.Off, report.Left...), "pg_stat_statements.track_utility", "not loaded on this server")
			require.NoError(t, pgtest.CanLogin(ctx, c.URL(role, pw, db)))

			// Idempotent: the same password again changes nothing.
			_, err = p.SetPlaintextPassword(ctx, provider.SetPasswordRequest{Role: role, Password: pw})
			require.NoError(t, err)
			require.NoError(t, pgtest.CanLogin(ctx, c.URL(role, pw, db)))

			// A missing role never gets the password sent.
			missingPW := secret.New("Missing-" + pgtest.UniqueName(t, "pw"))
			_, err = p.SetPlaintextPassword(ctx, provider.SetPasswordRequest{Role: pgtest.UniqueName(t, "ghost"), Password: missingPW})
			require.ErrorIs(t, err, provider.ErrRoleNotFound)

			marker := pgtest.UniqueName(t, "log_marker")
			probe := pgtest.Connect(ctx, t, superURL)
			_, err = probe.Exec(ctx, "SELECT '"+marker+"'")
			require.NoError(t, err)
			log, err := c.ServerLog()
			require.NoError(t, err)
			require.Contains(t, string(log), marker, "the server must log statements, or this test proves nothing")
			require.Empty(t, secret.Leaks(log, missingPW), "the password of a missing role reached the server")
			if tt.wantQuiet {
				require.Empty(t, secret.Leaks(log, pw), "the statement was logged although the admin could prevent it")
				require.Contains(t, string(log), "SET log_statement = 'none'", "the session switched logging off first")
			} else {
				require.NotEmpty(t, secret.Leaks(log, pw), "a server that logs every statement logs this one too; validate warns of it")
			}
		})
	}
}

func TestPlaintextErrorsAreScrubbed(t *testing.T) {
	t.Parallel()
	c := pgtest.Shared(t)
	ctx := t.Context()
	db, superURL := pgtest.NewDatabase(t)
	name, adminPW := pgtest.UniqueName(t, "admin"), secret.New("admin-Pw-1")
	pgtest.NewRole(t, c, name, adminPW)
	super := pgtest.Connect(ctx, t, superURL)
	_, err := super.Exec(ctx, "ALTER ROLE "+quote(name)+" CREATEROLE")
	require.NoError(t, err)
	victim := pgtest.UniqueName(t, "su")
	pgtest.NewRole(t, c, victim, secret.New("Su-Pw-1"))
	_, err = super.Exec(ctx, "ALTER ROLE "+quote(victim)+" SUPERUSER")
	require.NoError(t, err)

	hints := postgres.Hints{AdminPrivilege: "give admin_role more rights", MissingRole: "create it in the console", AdminLogin: "check admin_password"}
	p := openProvider(t, verifyFull(t, c, c.URL(name, adminPW, db), "verify-full"), hints)
	pw := secret.New(`Pw'with"quotes\and` + pgtest.UniqueName(t, "x"))
	_, err = p.SetPlaintextPassword(ctx, provider.SetPasswordRequest{Role: victim, Password: pw})
	require.ErrorIs(t, err, provider.ErrPermission, "a CREATEROLE admin may not alter a superuser")
	require.ErrorContains(t, err, "give admin_role more rights")
	require.Empty(t, secret.Leaks([]byte(fmt.Sprintf("%v %+v", err, err)), pw))

	_, err = p.SetPlaintextPassword(ctx, provider.SetPasswordRequest{Role: pgtest.UniqueName(t, "ghost"), Password: pw})
	require.ErrorIs(t, err, provider.ErrRoleNotFound)
	require.ErrorContains(t, err, "create it in the console")
	require.NotContains(t, err.Error(), "setup-roles")

	wrong := openProvider(t, verifyFull(t, c, c.URL(name, secret.New("wrong-Pw"), db), "verify-full"), hints)
	_, err = wrong.Check(ctx, provider.CheckRequest{})
	require.ErrorIs(t, err, provider.ErrPermission)
	require.ErrorContains(t, err, "check admin_password")
	require.NotContains(t, err.Error(), "admin_url")
}

func TestLogIn(t *testing.T) {
	t.Parallel()
	c := pgtest.Shared(t)
	ctx := t.Context()
	db, superURL := pgtest.NewDatabase(t)
	p := openProvider(t, verifyFull(t, c, superURL, "verify-full"), postgres.Hints{})
	role, pw := pgtest.UniqueName(t, "login"), secret.New("Login-Pw-"+pgtest.UniqueName(t, "x"))
	pgtest.NewRole(t, c, role, pw)

	require.NoError(t, p.LogIn(ctx, role, pw))
	wrong := secret.New("Wrong-" + pw.Reveal())
	err := p.LogIn(ctx, role, wrong)
	require.ErrorIs(t, err, provider.ErrPermission)
	require.Empty(t, secret.Leaks([]byte(err.Error()), wrong))
	require.Empty(t, secret.Leaks([]byte(err.Error()), pw))

	// Authenticated but refused the database: the password works.
	super := pgtest.Connect(ctx, t, superURL)
	_, err = super.Exec(ctx, "REVOKE CONNECT ON DATABASE "+quote(db)+" FROM PUBLIC")
	require.NoError(t, err)
	require.NoError(t, p.LogIn(ctx, role, pw))
}

func TestUnverifiedCertificateSaysSo(t *testing.T) {
	t.Parallel()
	c := pgtest.Shared(t)
	_, superURL := pgtest.NewDatabase(t)
	u, err := url.Parse(superURL.Reveal())
	require.NoError(t, err)
	q := u.Query()
	q.Set("sslmode", "verify-full") // the system's roots do not know the cluster's CA
	u.RawQuery = q.Encode()
	p := openProvider(t, secret.New(u.String()), postgres.Hints{AdminTLS: "set sslrootcert in the neon provider"})
	_, err = p.Check(t.Context(), provider.CheckRequest{})
	require.ErrorIs(t, err, provider.ErrUnavailable)
	require.ErrorContains(t, err, "set sslrootcert in the neon provider")
	require.Empty(t, secret.Leaks([]byte(err.Error()), c.SuperPassword()))
}
