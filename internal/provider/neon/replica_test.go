package neon_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/rotorhq/rotor/internal/connstr"
	"github.com/rotorhq/rotor/internal/engine"
	"github.com/rotorhq/rotor/internal/pgtest"
	"github.com/rotorhq/rotor/internal/provider"
	"github.com/rotorhq/rotor/internal/provider/neon"
	"github.com/rotorhq/rotor/internal/provider/neon/neonfake"
	"github.com/rotorhq/rotor/internal/store"
	"github.com/rotorhq/rotor/internal/template"
)

// replicaWorld is newWorld with a read replica on main.
func replicaWorld(t *testing.T) *world {
	t.Helper()
	fake := neonfake.Start(t, neonfake.Config{})
	main, err := fake.AddBranch(t.Context(), neonfake.BranchSpec{Name: "main", Cluster: pgtest.Shared(t), ReadReplica: true})
	require.NoError(t, err)
	w := &world{t: t, fake: fake, main: main, db: pgtest.UniqueName(t, "neondb"), owner: pgtest.UniqueName(t, "neondb_owner"), logs: &syncBuffer{}}
	w.ownerPW, err = fake.AddDatabase(t.Context(), main.ID, w.db, w.owner)
	require.NoError(t, err)
	return w
}

// TestEngineReplicaURL publishes {{.ReplicaURL}}: the read replica's host
// with the new password, which logs in there and is read-only.
func TestEngineReplicaURL(t *testing.T) {
	t.Parallel()
	w := replicaWorld(t)
	role := pgtest.UniqueName(t, "app")
	pgtest.NewRole(t, w.main.Cluster, role, strongPW(t))
	r := newRig(t, w, rigOpts{method: neon.MethodSQL, strategy: "single", roles: []string{role}, values: []string{`DATABASE_URL_READONLY: "{{.ReplicaURL}}"`}})
	_, err := r.cred().Provider.Check(t.Context(), provider.CheckRequest{Roles: []string{role}})
	require.NoError(t, err, "the replica exists, so validate passes")

	res, err := r.eng.Rotate(t.Context(), r.cred(), engine.Options{})
	require.NoError(t, err)
	require.Equal(t, store.StatusSucceeded, res.Status)
	_, pw := r.published()
	ro, err := connstr.Parse(r.env()["DATABASE_URL_READONLY"])
	require.NoError(t, err)
	require.Equal(t, w.main.ReplicaHost, ro.Host)
	require.Equal(t, role, ro.User)
	require.True(t, pw.Equal(ro.Password))
	conn := pgtest.Connect(t.Context(), t, r.routed(ro.URL()))
	var readOnly string
	require.NoError(t, conn.QueryRow(t.Context(), "SHOW default_transaction_read_only").Scan(&readOnly))
	require.Equal(t, "on", readOnly)
}

// TestEngineReplicaURLWithoutReplica: validate fails, and a rotation stops
// at prepare, before the password changes.
func TestEngineReplicaURLWithoutReplica(t *testing.T) {
	t.Parallel()
	w := newWorld(t, neonfake.Config{})
	role, old := pgtest.UniqueName(t, "app"), strongPW(t)
	pgtest.NewRole(t, w.main.Cluster, role, old)
	r := newRig(t, w, rigOpts{method: neon.MethodSQL, strategy: "single", roles: []string{role}, values: []string{`DATABASE_URL_READONLY: "{{.ReplicaURL}}"`}})
	_, err := r.cred().Provider.Check(t.Context(), provider.CheckRequest{Roles: []string{role}})
	require.ErrorContains(t, err, "has no read replica")

	_, err = r.eng.Rotate(t.Context(), r.cred(), engine.Options{})
	var se *engine.StepError
	require.ErrorAs(t, err, &se)
	require.Equal(t, engine.StepPrepare, se.Step)
	require.ErrorIs(t, err, template.ErrNoReplica)
	require.NoError(t, w.login(role, old), "nothing changed")
	require.NotContains(t, r.env(), "DATABASE_URL")
	require.False(t, strings.Contains(err.Error(), old.Reveal()))
}
