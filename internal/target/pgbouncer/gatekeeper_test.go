package pgbouncer_test

import (
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/rotorhq/rotor/internal/pgbouncertest"
	"github.com/rotorhq/rotor/internal/pgtest"
	"github.com/rotorhq/rotor/internal/secret"
	"github.com/rotorhq/rotor/internal/target"
	"github.com/rotorhq/rotor/internal/target/gatekeepertest"
)

// TestGatekeeperConformance runs the gatekeeper protocol suite against a
// real PgBouncer per subtest (a RELOAD from one would disturb another's
// logins) in front of the shared cluster.
func TestGatekeeperConformance(t *testing.T) {
	t.Parallel()
	cl := pgtest.Shared(t)
	db, _ := pgtest.NewDatabase(t)
	var bouncers sync.Map // auth_file path → *pgbouncertest.Bouncer
	bouncerOf := func(t *testing.T, gk target.Gatekeeper) *pgbouncertest.Bouncer {
		b, ok := bouncers.Load(gk.Info().Destination)
		require.True(t, ok, "a gatekeeper the harness did not build")
		return b.(*pgbouncertest.Bouncer)
	}
	gatekeepertest.Exercise(t, gatekeepertest.Harness{
		New: func(t *testing.T) target.Gatekeeper {
			b := pgbouncertest.StartTB(t, pgbouncertest.Options{ServerHost: cl.Host, ServerPort: cl.Port})
			tg := mustTarget(t, options(b.AuthFile, b.AdminURL()))
			bouncers.Store(tg.Info().Destination, b)
			return tg
		},
		NewRole: func(t *testing.T) string {
			role := pgtest.UniqueName(t, "gk")
			pgtest.NewRole(t, cl, role, password(t))
			return role
		},
		SetServerVerifier: func(t *testing.T, role string, v secret.String) {
			setPassword(t, cl, db, role, v)
		},
		Login: func(t *testing.T, gk target.Gatekeeper, role string, pw secret.String) error {
			return pgtest.CanLogin(t.Context(), bouncerOf(t, gk).URL(role, pw, db))
		},
		Session: func(t *testing.T, gk target.Gatekeeper, role string, pw secret.String) {
			conn := pgtest.Connect(t.Context(), t, bouncerOf(t, gk).URL(role, pw, db))
			_, err := conn.Exec(t.Context(), "SELECT 1")
			require.NoError(t, err)
		},
	})
}
