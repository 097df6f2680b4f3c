package postgres

import (
	"errors"
	neturl "net/url"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/rotorhq/rotor/internal/pgtest"
	"github.com/rotorhq/rotor/internal/secret"
)

// A deferred write runs with synchronous_commit off, a durable one with
// the server's setting (on), and SET LOCAL ends with the transaction: the
// pooled connection a deferred write used commits durably again after.
func TestDeferredWritesLowerOnlyTheirOwnTransaction(t *testing.T) {
	t.Parallel()
	_, url := pgtest.NewDatabase(t)
	// The test clusters run with synchronous_commit off; a server that
	// waits for its WAL is what the store must not lower by accident.
	u, err := neturl.Parse(url.Reveal())
	require.NoError(t, err)
	q := u.Query()
	q.Set("synchronous_commit", "on")
	u.RawQuery = q.Encode()
	s, err := Open(t.Context(), Options{URL: secret.New(u.String()), Schema: pgtest.UniqueName(t, "rotor")})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, s.Close()) })

	level := func(deferred bool) string {
		var got string
		require.NoError(t, s.writeAs(t.Context(), deferred, func(tx pgx.Tx) error {
			return tx.QueryRow(t.Context(), "SHOW synchronous_commit").Scan(&got)
		}))
		return got
	}
	for range 3 {
		require.Equal(t, "off", level(true))
		require.Equal(t, "on", level(false))
	}
	boom := errors.New("boom")
	require.ErrorIs(t, s.writeAs(t.Context(), true, func(pgx.Tx) error { return boom }), boom)
	var got string
	require.NoError(t, s.pool.QueryRow(t.Context(), "SHOW synchronous_commit").Scan(&got))
	require.Equal(t, "on", got, "a failed deferred write leaves no connection lowered")
}
