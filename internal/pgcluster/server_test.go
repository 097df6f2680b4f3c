package pgcluster_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/rotorhq/rotor/internal/pgtest"
)

// TestServer17 starts a PostgreSQL 17 cluster — in the chroot that
// scripts/deps.sh --pg17 makes when the system's PostgreSQL is older — and
// logs in over TLS that verifies it.
func TestServer17(t *testing.T) {
	c := pgtest.Shared17(t)
	require.GreaterOrEqual(t, c.Major, 17)
	conn, err := pgx.Connect(t.Context(), c.URL(c.SuperUser, c.SuperPassword(), "postgres", "sslmode=verify-full", "sslrootcert="+c.CACertFile).Reveal())
	require.NoError(t, err)
	defer conn.Close(context.Background())
	var v int
	require.NoError(t, conn.QueryRow(t.Context(), "SELECT current_setting('server_version_num')::int").Scan(&v))
	require.GreaterOrEqual(t, v, 170000)
}
