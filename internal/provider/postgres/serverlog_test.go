package postgres_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/rotorhq/rotor/internal/pgcluster"
	"github.com/rotorhq/rotor/internal/pgtest"
	"github.com/rotorhq/rotor/internal/provider"
	"github.com/rotorhq/rotor/internal/secret"
	"github.com/rotorhq/rotor/internal/testdeps"
)

// ownCluster starts a cluster for tests that need server settings or
// restarts that would disturb the shared one.
func ownCluster(t *testing.T, opts pgcluster.Options) *pgcluster.Cluster {
	testdeps.SkipUnderQuick(t, "PostgreSQL")
	t.Helper()
	c, err := pgcluster.Start(t.Context(), opts)
	if err != nil {
		pgtest.SkipOrFail(t, err)
	}
	t.Cleanup(func() {
		if err := c.Stop(context.Background()); err != nil {
			t.Errorf("%v", err)
		}
	})
	return c
}

// TestServerLogHasNoSecrets runs every password-carrying call against a
// server that logs every statement, then scans the log: the plaintext must
// never be there, and with a superuser admin not even the verifiers.
func TestServerLogHasNoSecrets(t *testing.T) {
	t.Parallel()
	c := ownCluster(t, pgcluster.Options{LogStatements: true})
	tests := []struct {
		name string
		// attributes of the admin role the provider uses; "" means the
		// cluster's superuser.
		attributes         string
		wantVerifierHidden bool
	}{
		{"superuser admin", "", true},
		{"CREATEROLE admin", "CREATEROLE", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := t.Context()
			var admin func(db string) secret.String
			if tt.attributes != "" {
				name, pw := pgtest.UniqueName(t, "admin"), secret.New("admin-Pw-1")
				pgtest.NewRole(t, c, name, pw)
				super := pgtest.Connect(ctx, t, c.AdminURL("postgres"))
				_, err := super.Exec(ctx, "ALTER ROLE "+quote(name)+" "+tt.attributes)
				require.NoError(t, err)
				admin = func(db string) secret.String { return c.URL(name, pw, db) }
			}
			env := envFor(t, c, admin)
			role := pgtest.UniqueName(t, "logged")
			env.CreateRole(t, role, secret.New("initial-Pw-0"))

			var passwords, verifiers []secret.String
			set := func(role string, validUntil *time.Time) error {
				pw := secret.New(pgtest.UniqueName(t, "Plaintext"))
				v, err := secret.SCRAMVerifier(nil, pw)
				require.NoError(t, err)
				passwords, verifiers = append(passwords, pw), append(verifiers, v)
				_, err = env.Provider.SetPassword(ctx, provider.SetPasswordRequest{Role: role, Password: pw, Verifier: v, ValidUntil: validUntil})
				return err
			}
			require.NoError(t, set(role, nil))
			require.NoError(t, pgtest.CanLogin(ctx, env.LoginURL(role, passwords[0])))
			future := time.Now().Add(time.Hour)
			require.NoError(t, set(role, &future))
			require.ErrorIs(t, set(pgtest.UniqueName(t, "missing"), nil), provider.ErrRoleNotFound)
			_, err := env.Provider.Retire(ctx, provider.RetireRequest{Role: role, Method: provider.RetireScramble})
			require.NoError(t, err)
			group, logins := pgtest.UniqueName(t, "grp"), []string{pgtest.UniqueName(t, "blue"), pgtest.UniqueName(t, "green")}
			dropAtCleanup(t, c, append(logins, group)...)
			_, err = env.Provider.EnsureRoles(ctx, provider.EnsureRolesRequest{Group: group, Logins: logins})
			require.NoError(t, err)

			marker := pgtest.UniqueName(t, "log_marker")
			probe := pgtest.Connect(ctx, t, env.AdminURL)
			_, err = probe.Exec(ctx, "SELECT '"+marker+"'")
			require.NoError(t, err)

			log, err := c.ServerLog()
			require.NoError(t, err)
			text := string(log)
			require.Contains(t, text, marker, "the server must log statements, or this test proves nothing")
			for i, pw := range passwords {
				require.False(t, strings.Contains(text, pw.Reveal()), "plaintext password %d is in the server log", i)
			}
			for i, v := range verifiers {
				if tt.wantVerifierHidden {
					require.False(t, strings.Contains(text, v.Reveal()), "verifier %d is in the server log", i)
				}
			}
			if tt.wantVerifierHidden {
				require.NotContains(t, text, quote(logins[0])+" LOGIN PASSWORD", "EnsureRoles' random verifiers must stay out of the log too")
			}
		})
	}
}

// TestSurvivesServerRestart proves that pooled admin connections cut by a
// restart are replaced rather than failing the next rotation step.
func TestSurvivesServerRestart(t *testing.T) {
	t.Parallel()
	c := ownCluster(t, pgcluster.Options{})
	env, ctx := envFor(t, c, nil), t.Context()
	role, pw := pgtest.UniqueName(t, "restart"), secret.New("restart-Pw-1")
	env.CreateRole(t, role, pw)
	_, err := env.Provider.Sessions(ctx, provider.SessionsRequest{Role: role})
	require.NoError(t, err)

	require.NoError(t, c.Restart(ctx))

	next := secret.New("after-Restart-Pw-2")
	v, err := secret.SCRAMVerifier(nil, next)
	require.NoError(t, err)
	_, err = env.Provider.SetPassword(ctx, provider.SetPasswordRequest{Role: role, Password: next, Verifier: v})
	require.NoError(t, err)
	require.NoError(t, pgtest.CanLogin(ctx, env.LoginURL(role, next)))
}
