package postgres_test

import (
	"bytes"
	"encoding/base64"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/rotorhq/rotor/internal/pgtest"
	"github.com/rotorhq/rotor/internal/provider"
	"github.com/rotorhq/rotor/internal/provider/postgres"
	"github.com/rotorhq/rotor/internal/secret"
)

func TestRedactSQL(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{`ALTER ROLE "app" WITH LOGIN PASSWORD 'SCRAM-SHA-256$4096:c2FsdA==$a:b' VALID UNTIL 'infinity'`,
			`ALTER ROLE "app" WITH LOGIN PASSWORD '[REDACTED]' VALID UNTIL 'infinity'`},
		{`ALTER ROLE x PASSWORD 'it''s'`, `ALTER ROLE x PASSWORD '[REDACTED]'`},
		{`alter role x password E'a\\b\'c' VALID UNTIL 'infinity'`, `alter role x password '[REDACTED]' VALID UNTIL 'infinity'`},
		{`CREATE ROLE "a" LOGIN PASSWORD 'x'; ALTER ROLE "b" PASSWORD 'y'`, `CREATE ROLE "a" LOGIN PASSWORD '[REDACTED]'; ALTER ROLE "b" PASSWORD '[REDACTED]'`},
		{`SELECT rolname FROM pg_roles WHERE rolname = $1`, `SELECT rolname FROM pg_roles WHERE rolname = $1`},
	}
	for _, tt := range tests {
		require.Equal(t, tt.want, postgres.RedactSQL(tt.in))
	}
}

// syncBuffer is a log sink several connections write to at once.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestStatementsLogged: with a logger (rotor --debug) every statement the
// provider sends is logged, the ALTER ROLE too, with no password, verifier
// or admin password in the log.
func TestStatementsLogged(t *testing.T) {
	t.Parallel()
	c := pgtest.Shared(t)
	db, adminURL := pgtest.NewDatabase(t)
	var log syncBuffer
	p, err := postgres.New(provider.Params{
		Decode: strictDecode("admin_url: " + adminURL.Reveal()),
		Logger: slog.New(slog.NewTextHandler(&log, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	require.NoError(t, err)
	t.Cleanup(func() { _ = p.Close() })
	role := pgtest.UniqueName(t, "traced")
	pgtest.NewRole(t, c, role, mustGenerate(t))

	pw := mustGenerate(t)
	verifier, err := secret.SCRAMVerifier(nil, pw)
	require.NoError(t, err)
	_, err = p.SetPassword(t.Context(), provider.SetPasswordRequest{Role: role, Password: pw, Verifier: verifier})
	require.NoError(t, err)
	_, err = p.Sessions(t.Context(), provider.SessionsRequest{Role: role})
	require.NoError(t, err)
	require.NoError(t, pgtest.CanLogin(t.Context(), c.URL(role, pw, db, "sslmode=require")))

	out := log.String()
	require.Contains(t, out, `msg=sql sql="ALTER ROLE `)
	require.Contains(t, out, `PASSWORD '[REDACTED]' VALID UNTIL 'infinity'`)
	require.Contains(t, out, "FROM pg_stat_activity")
	require.Contains(t, out, "args=2")
	require.Contains(t, out, `result="ALTER ROLE; COMMIT"`, "the ALTER ROLE and the COMMIT go in one message")
	for _, s := range []string{pw.Reveal(), verifier.Reveal(), base64.StdEncoding.EncodeToString([]byte(pw.Reveal())), c.SuperPassword().Reveal()} {
		require.NotContains(t, out, s)
	}
	require.Empty(t, secret.Leaks([]byte(out), pw, verifier, c.SuperPassword()))
	require.False(t, strings.Contains(out, "SCRAM-SHA-256$"), "no verifier of any role")
}

func mustGenerate(t *testing.T) secret.String {
	t.Helper()
	pw, err := secret.Generate(nil, secret.DefaultPolicy())
	require.NoError(t, err)
	return pw
}
