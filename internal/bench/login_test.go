package bench

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/rotorhq/rotor/internal/pgtest"
	"github.com/rotorhq/rotor/internal/secret"
)

// BenchmarkLoginPhases splits the test step's login (TLS + SCRAM, then
// SELECT 1, as engine.DialPostgres does it) at the point where
// DialPostgresAfter holds an early login back: what comes before the
// startup message (TCP, TLS, the server's new backend) is what a rotation
// overlaps with apply. Mean milliseconds over 300 logins.
func BenchmarkLoginPhases(b *testing.B) {
	cl := pgtest.Shared(b)
	db, adminURL := pgtest.NewDatabase(b)
	ctx := context.Background()
	admin, err := pgx.Connect(ctx, adminURL.Reveal())
	require.NoError(b, err)
	defer admin.Close(ctx)
	pw, err := secret.Generate(nil, secret.DefaultPolicy())
	require.NoError(b, err)
	ver, err := secret.SCRAMVerifier(nil, pw)
	require.NoError(b, err)
	role := pgtest.UniqueName(b, "login")
	_, err = admin.Exec(ctx, "CREATE ROLE "+pgx.Identifier{role}.Sanitize()+" LOGIN PASSWORD '"+ver.Reveal()+"'")
	require.NoError(b, err)
	b.Cleanup(func() {
		if err := pgtest.DropRole(context.Background(), cl, role); err != nil {
			b.Error(err)
		}
	})
	url := cl.URL(role, pw, db)
	const logins = 300
	for i := 0; i < b.N; i++ {
		var before, total time.Duration
		for range logins {
			cfg, err := pgx.ParseConfig(url.Reveal())
			require.NoError(b, err)
			cfg.StatementCacheCapacity, cfg.DescriptionCacheCapacity = 0, 0
			cfg.DefaultQueryExecMode = pgx.QueryExecModeSimpleProtocol
			start := time.Now()
			var connected time.Time
			cfg.AfterNetConnect = func(_ context.Context, _ *pgconn.Config, nc net.Conn) (net.Conn, error) {
				connected = time.Now()
				return nc, nil
			}
			conn, err := pgx.ConnectConfig(ctx, cfg)
			require.NoError(b, secret.Scrub(err, pw))
			var one int
			require.NoError(b, conn.QueryRow(ctx, "SELECT 1").Scan(&one))
			require.NoError(b, conn.Close(ctx))
			total += time.Since(start)
			before += connected.Sub(start)
		}
		b.ReportMetric(float64(before.Microseconds())/1000/logins, "before-startup-ms")
		b.ReportMetric(float64(total.Microseconds())/1000/logins, "login-ms")
	}
}
