package postgres

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/rotorhq/rotor/internal/pgtest"
	"github.com/rotorhq/rotor/internal/provider"
	"github.com/rotorhq/rotor/internal/secret"
)

// BenchmarkServerCPU is what each request a single-strategy rotation
// makes of the admin connection costs the database server, beside the
// floor's plain ALTER ROLE (internal/bench/floor_test.go): the CPU time
// of the connection's backend (/proc/PID/schedstat, in nanoseconds, so
// the server must run on this machine), per call, as server-µs/op.
// "ALTER ROLE without a password" shows where an ALTER ROLE's cost is:
// with a SCRAM verifier PostgreSQL checks that the verifier is not that
// of an empty password, one full PBKDF2 at the verifier's iteration
// count, which rotor and the floor pay alike.
//
//	go test -run '^$' -bench ServerCPU -benchtime 1000x ./internal/provider/postgres/
func BenchmarkServerCPU(b *testing.B) {
	ctx := context.Background()
	c := pgtest.Shared(b)
	_, adminURL := pgtest.NewDatabase(b)
	role := pgtest.UniqueName(b, "cost")
	pw, err := secret.Generate(nil, secret.DefaultPolicy())
	require.NoError(b, err)
	pgtest.NewRole(b, c, role, pw)
	v, err := secret.SCRAMVerifier(nil, pw)
	require.NoError(b, err)
	p, err := newFromOptions(Options{AdminURL: adminURL.Reveal()})
	require.NoError(b, err)
	b.Cleanup(func() { require.NoError(b, p.Close()) })

	backend := func() (pid uint32) {
		require.NoError(b, p.conns.with(ctx, func(conn *pgx.Conn) error {
			pid = conn.PgConn().PID()
			return nil
		}))
		return pid
	}
	onAdmin := func(sql string) func(int) error {
		return func(int) error {
			return p.conns.with(ctx, func(conn *pgx.Conn) error { return conn.PgConn().Exec(ctx, sql).Close() })
		}
	}
	pid := backend()
	for _, tc := range []struct {
		name string
		run  func(i int) error
	}{
		{"floor ALTER ROLE", onAdmin("ALTER ROLE " + ident(role) + " PASSWORD " + quoteLiteral(v.Reveal()))},
		{"ALTER ROLE without a password", onAdmin("ALTER ROLE " + ident(role) + " VALID UNTIL 'infinity'")},
		{"ReadMark with Snapshot", func(int) error {
			_, err := p.ReadMark(ctx, provider.ReadMarkRequest{Role: role, Snapshot: true})
			return err
		}},
		{"SetPassword", func(int) error {
			_, err := p.SetPassword(ctx, provider.SetPasswordRequest{Role: role, Verifier: v})
			return err
		}},
		{"SetPassword with Mark", func(i int) error {
			_, err := p.SetPassword(ctx, provider.SetPasswordRequest{Role: role, Verifier: v, Mark: fmt.Sprintf("rotor:bench:%d", i)})
			return err
		}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			before := backendCPU(b, pid)
			i := 0
			for b.Loop() {
				require.NoError(b, tc.run(i))
				i++
			}
			used := backendCPU(b, pid) - before
			require.Equal(b, pid, backend(), "the admin connection was replaced during the run")
			b.ReportMetric(float64(used.Nanoseconds())/1e3/float64(b.N), "server-µs/op")
		})
	}
}

// backendCPU is the CPU time the server process pid has used so far.
func backendCPU(b *testing.B, pid uint32) time.Duration {
	b.Helper()
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/schedstat", pid))
	require.NoError(b, err, "the server must run on this machine")
	first, _, _ := strings.Cut(string(raw), " ")
	ns, err := strconv.ParseInt(first, 10, 64)
	require.NoError(b, err, "/proc/%d/schedstat: %q", pid, raw)
	return time.Duration(ns)
}
