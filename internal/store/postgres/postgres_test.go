package postgres_test

import (
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/rotorhq/rotor/internal/pgcluster"
	"github.com/rotorhq/rotor/internal/pgtest"
	"github.com/rotorhq/rotor/internal/secret"
	"github.com/rotorhq/rotor/internal/store"
	"github.com/rotorhq/rotor/internal/store/postgres"
	"github.com/rotorhq/rotor/internal/store/storetest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

func open(t testing.TB, url secret.String, schema string) *postgres.Store {
	t.Helper()
	s, err := postgres.Open(t.Context(), postgres.Options{URL: url, Schema: schema})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, s.Close()) })
	return s
}

// TestConformance gives every subtest its own schema of one database:
// cheaper than a database each, and it exercises the schema option.
func TestConformance(t *testing.T) {
	t.Parallel()
	_, url := pgtest.NewDatabase(t)
	storetest.Exercise(t, func(t *testing.T) store.Store {
		return open(t, url, pgtest.UniqueName(t, "rotor"))
	})
}

func TestDefaultSchemaIsRotor(t *testing.T) {
	t.Parallel()
	_, url := pgtest.NewDatabase(t)
	s := open(t, url, "")
	_, err := s.AppendAudit(t.Context(), store.AppendAuditParams{Event: "x", Now: time.Unix(0, 1)})
	require.NoError(t, err)

	conn := pgtest.Connect(t.Context(), t, url)
	var n int
	require.NoError(t, conn.QueryRow(t.Context(), `SELECT count(*) FROM rotor.audit`).Scan(&n))
	require.Equal(t, 1, n)
	var version int
	require.NoError(t, conn.QueryRow(t.Context(), `SELECT max(version) FROM rotor.schema_migrations`).Scan(&version))
	in, err := s.Info(t.Context())
	require.NoError(t, err)
	require.Equal(t, in.SchemaVersion, version)
	require.Equal(t, 2, version)
}

// Several processes may open a new schema at once: the advisory lock
// makes them take turns, so each migration is applied exactly once.
func TestConcurrentOpenOfNewSchema(t *testing.T) {
	t.Parallel()
	_, url := pgtest.NewDatabase(t)
	const n = 4
	stores := make([]*postgres.Store, n)
	errs := make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			stores[i], errs[i] = postgres.Open(t.Context(), postgres.Options{URL: url, Schema: "shared"})
		})
	}
	close(start)
	wg.Wait()
	for i := range n {
		require.NoError(t, errs[i])
		require.NoError(t, stores[i].Close())
	}
	conn := pgtest.Connect(t.Context(), t, url)
	var rows int
	require.NoError(t, conn.QueryRow(t.Context(), `SELECT count(*) FROM shared.schema_migrations`).Scan(&rows))
	var ids int
	require.NoError(t, conn.QueryRow(t.Context(), `SELECT count(*) FROM shared.store_meta WHERE key = 'id'`).Scan(&ids))
	require.Equal(t, 1, ids, "one store id, however many processes created the schema")
	require.Equal(t, 2, rows, "one row per migration, each applied once")
}

func TestOpenRefusesNewerSchema(t *testing.T) {
	t.Parallel()
	_, url := pgtest.NewDatabase(t)
	require.NoError(t, open(t, url, "rotor").Close())
	conn := pgtest.Connect(t.Context(), t, url)
	_, err := conn.Exec(t.Context(), `INSERT INTO rotor.schema_migrations (version, name, applied_at) VALUES (999, '0999_future.sql', now())`)
	require.NoError(t, err)

	_, err = postgres.Open(t.Context(), postgres.Options{URL: url})
	require.ErrorContains(t, err, "schema rotor has version 999 but this rotor knows only up to 2; upgrade rotor")
}

func TestTLSVerifyFull(t *testing.T) {
	t.Parallel()
	c := pgtest.Shared(t)
	name, _ := pgtest.NewDatabase(t)

	verified := c.URL(c.SuperUser, c.SuperPassword(), name, "sslmode=verify-full", "sslrootcert="+c.CACertFile)
	s := open(t, verified, "")
	_, err := s.AppendAudit(t.Context(), store.AppendAuditParams{Event: "x", Now: time.Unix(0, 1)})
	require.NoError(t, err)

	// Another CA must be refused: the option is honoured, not ignored.
	certPEM, _, err := pgcluster.SelfSignedCert(time.Now())
	require.NoError(t, err)
	otherCA := filepath.Join(t.TempDir(), "other-ca.crt")
	require.NoError(t, os.WriteFile(otherCA, certPEM, 0o600))
	wrong := c.URL(c.SuperUser, c.SuperPassword(), name, "sslmode=verify-full", "sslrootcert="+otherCA)
	_, err = postgres.Open(t.Context(), postgres.Options{URL: wrong})
	require.Error(t, err)
	require.ErrorContains(t, err, "certificate")
	require.NotContains(t, err.Error(), c.SuperPassword().Reveal())
}

func TestOpenErrorsHideThePassword(t *testing.T) {
	t.Parallel()
	c := pgtest.Shared(t)
	name, _ := pgtest.NewDatabase(t)
	password := secret.New("not-the-password-" + pgtest.UniqueName(t, "p"))
	bad := c.URL(c.SuperUser, password, name)
	_, err := postgres.Open(t.Context(), postgres.Options{URL: bad})
	require.Error(t, err)
	require.NotContains(t, err.Error(), password.Reveal())

	_, err = postgres.Open(t.Context(), postgres.Options{URL: secret.New("postgres://u:" + password.Reveal() + "@h:notaport/db")})
	require.Error(t, err)
	require.NotContains(t, err.Error(), password.Reveal())
}

// A role given only its own schema (no CREATE on the database) can still
// open the store once the schema exists.
func TestOpenWithSchemaPrivilegesOnly(t *testing.T) {
	t.Parallel()
	c := pgtest.Shared(t)
	name, admin := pgtest.NewDatabase(t)
	role := pgtest.UniqueName(t, "state")
	password := secret.New(pgtest.UniqueName(t, "pw"))
	pgtest.NewRole(t, c, role, password)
	conn := pgtest.Connect(t.Context(), t, admin)
	ident := pgx.Identifier{role}.Sanitize()
	for _, q := range []string{
		`REVOKE CREATE ON DATABASE ` + pgx.Identifier{name}.Sanitize() + ` FROM PUBLIC`,
		`CREATE SCHEMA rotor AUTHORIZATION ` + ident,
	} {
		_, err := conn.Exec(t.Context(), q)
		require.NoError(t, err, q)
	}
	s := open(t, c.URL(role, password, name), "")
	_, err := s.InsertRotation(t.Context(), store.InsertRotationParams{Credential: "app-db", Strategy: "dual", Trigger: "manual", Now: time.Unix(0, 1)})
	require.NoError(t, err)
}

// Two stores on one schema stand in for two machines: the second takes
// over an expired lease, and the first, still believing it holds it, can
// no longer write.
func TestTakeOverAcrossHandlesFencesTheOldHolder(t *testing.T) {
	t.Parallel()
	_, url := pgtest.NewDatabase(t)
	a, b := open(t, url, ""), open(t, url, "")
	ctx := t.Context()
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)

	la, err := a.AcquireLease(ctx, store.AcquireLeaseParams{Name: "credential/app-db", Holder: "machine-a", TTL: time.Minute, Now: now})
	require.NoError(t, err)
	r, err := a.InsertRotation(ctx, store.InsertRotationParams{Credential: "app-db", Strategy: "dual", Trigger: "schedule", Now: now, Fence: la.Fence()})
	require.NoError(t, err)

	lb, err := b.AcquireLease(ctx, store.AcquireLeaseParams{Name: "credential/app-db", Holder: "machine-b", TTL: time.Minute, Now: now.Add(time.Minute)})
	require.NoError(t, err)
	require.Greater(t, lb.Token, la.Token)

	_, err = a.AppendStep(ctx, store.AppendStepParams{RotationID: r.ID, Name: "prepare", Status: store.StepStarted, Now: now.Add(2 * time.Minute), Fence: la.Fence()})
	require.ErrorIs(t, err, store.ErrFenced)
	_, err = a.RenewLease(ctx, store.RenewLeaseParams{Name: "credential/app-db", Holder: "machine-a", TTL: time.Minute, Now: now.Add(2 * time.Minute)})
	require.ErrorIs(t, err, store.ErrLeaseLost)
	steps, err := b.ListSteps(ctx, store.ListStepsParams{RotationID: r.ID})
	require.NoError(t, err)
	require.Empty(t, steps, "the fenced write left nothing behind")

	_, err = b.AppendStep(ctx, store.AppendStepParams{RotationID: r.ID, Name: "prepare", Status: store.StepStarted, Now: now.Add(2 * time.Minute), Fence: lb.Fence()})
	require.NoError(t, err)
}
