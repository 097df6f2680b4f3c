package pgbouncertest_test

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/rotorhq/rotor/internal/pgbouncertest"
	"github.com/rotorhq/rotor/internal/pgtest"
	"github.com/rotorhq/rotor/internal/secret"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// TestLoginThroughBouncer proves the set-up the pgbouncer target relies
// on: a role whose server verifier is copied into the auth_file logs in
// through PgBouncer (SCRAM passed through), and one that is not listed
// does not.
func TestLoginThroughBouncer(t *testing.T) {
	t.Parallel()
	for _, tls := range []bool{false, true} {
		name := "plain"
		if tls {
			name = "client TLS"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			loginThroughBouncer(t, tls)
		})
	}
}

func loginThroughBouncer(t *testing.T, tls bool) {
	cl := pgtest.Shared(t)
	db, _ := pgtest.NewDatabase(t)
	b := pgbouncertest.StartTB(t, pgbouncertest.Options{ServerHost: cl.Host, ServerPort: cl.Port, ClientTLS: tls})
	ctx := t.Context()

	// The admin console answers only the simple protocol.
	admin, err := pgconn.Connect(ctx, b.AdminURL().Reveal())
	require.NoError(t, err)
	defer admin.Close(context.WithoutCancel(ctx))
	res, err := admin.Exec(ctx, "SHOW VERSION").ReadAll()
	require.NoError(t, err)
	require.NotEmpty(t, res)

	role := pgtest.UniqueName(t, "bouncer")
	pw, err := secret.Generate(nil, secret.DefaultPolicy())
	require.NoError(t, err)
	ver, err := secret.SCRAMVerifier(nil, pw)
	require.NoError(t, err)
	superConn := pgtest.Connect(ctx, t, cl.AdminURL(db))
	_, err = superConn.Exec(ctx, "CREATE ROLE "+pgx.Identifier{role}.Sanitize()+" LOGIN PASSWORD '"+ver.Reveal()+"'")
	require.NoError(t, err)
	t.Cleanup(func() { _ = pgtest.DropRole(context.Background(), cl, role) })

	err = pgtest.CanLogin(ctx, b.URL(role, pw, db))
	require.Error(t, err, "a role missing from the auth_file must not log in")
	require.Empty(t, secret.Leaks([]byte(err.Error()), pw))

	f, err := os.OpenFile(b.AuthFile, os.O_APPEND|os.O_WRONLY, 0)
	require.NoError(t, err)
	_, err = f.WriteString(pgbouncertest.Entry(role, ver.Reveal()))
	require.NoError(t, err)
	require.NoError(t, f.Close())
	_, err = admin.Exec(ctx, "RELOAD").ReadAll()
	require.NoError(t, err)

	require.NoError(t, pgtest.CanLogin(ctx, b.URL(role, pw, db)))
	if !tls {
		require.Contains(t, b.URL(role, pw, db).Reveal(), "sslmode=disable")
		return
	}
	// The bouncer requires TLS, with a certificate clients can verify.
	url := b.URL(role, pw, db).Reveal()
	require.Contains(t, url, "sslmode=require")
	verified := strings.Replace(url, "sslmode=require", "sslmode=verify-full&sslrootcert="+b.CACertFile, 1)
	require.NoError(t, pgtest.CanLogin(ctx, secret.New(verified)))
	err = pgtest.CanLogin(ctx, secret.New(strings.Replace(url, "sslmode=require", "sslmode=disable", 1)))
	require.Error(t, err, "a client without TLS must be refused")
	require.Empty(t, secret.Leaks([]byte(err.Error()), pw))
}

func TestStartNeedsServer(t *testing.T) {
	t.Parallel()
	_, err := pgbouncertest.Start(t.Context(), pgbouncertest.Options{})
	require.ErrorContains(t, err, "ServerHost and ServerPort are required")
}
