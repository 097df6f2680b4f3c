//go:build unix

package e2e_test

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/rotorhq/rotor/internal/connstr"
	"github.com/rotorhq/rotor/internal/secret"
	"github.com/rotorhq/rotor/internal/store"
	"github.com/rotorhq/rotor/internal/store/sqlite"
	"github.com/rotorhq/rotor/internal/store/storeurl"
)

// TestStateMigrateToPostgres moves a store the engine wrote (single and
// dual rotations, a retirement) from SQLite into an empty PostgreSQL
// store with `rotor state migrate`, the password in PGPASSWORD, and then
// keeps rotating from the new store: the copy holds exactly the rows of
// the old one, and because the store id moved along, the marks on the
// roles are this store's and the next rotations proceed without `rotor
// adopt`.
func TestStateMigrateToPostgres(t *testing.T) {
	t.Parallel()
	w := newWorld(t, nil, credSpec{name: "app", strategy: "single"}, credSpec{name: "duo", strategy: "dual"})
	w.mustRotor(t, "setup-roles", "duo")
	for range 2 {
		w.mustRotor(t, "rotate", "app", "duo")
	}
	statePath := filepath.Join(w.dir, ".rotor", "state.db")
	old, err := sqlite.Open(t.Context(), statePath)
	require.NoError(t, err)
	before, err := old.Export(t.Context(), store.ExportParams{})
	require.NoError(t, err)
	require.NoError(t, old.Close())

	full := w.cl.AdminURL(createDatabase(t, w.cl))
	c, err := connstr.Parse(full.Reveal())
	require.NoError(t, secret.Scrub(err, full))
	to := c.WithPassword(secret.String{}).URL().Reveal()
	pgpassword := []string{"PGPASSWORD=" + c.Password.Reveal()}

	r := w.rotor(t, pgpassword, "state", "migrate", "--to", to)
	require.Equal(t, exitOK, r.code, w.scrub(r.output()))
	require.Contains(t, r.stdout, "copied sqlite "+statePath)
	require.Contains(t, r.stdout, "store id "+before.ID+" (kept")
	sealed := 0
	for _, v := range before.Versions {
		if v.Sealed != nil {
			sealed++
		}
	}
	require.Positive(t, sealed)
	require.Contains(t, r.stdout, "; "+strconv.Itoa(sealed)+" sealed version(s) open with the key")
	require.Contains(t, r.stdout, "write `state: "+to+"`")

	shared, err := storeurl.Open(t.Context(), full.Reveal())
	require.NoError(t, err)
	defer shared.Close()
	after, err := shared.Export(t.Context(), store.ExportParams{})
	require.NoError(t, err)
	require.Equal(t, before, after, "every row, sealed bytes and times included, as SQLite held it")

	again := w.rotor(t, pgpassword, "state", "migrate", "--to", to)
	require.Equal(t, exitError, again.code)
	require.Contains(t, again.stderr, "the store is not empty")

	// Switch as the command said: the new store, the old file aside.
	w.env = append(w.env, "ROTOR_STATE_URL="+full.Reveal())
	require.NoError(t, os.Rename(statePath, statePath+".migrated"))
	for _, cred := range []string{"app", "duo"} {
		r := w.mustRotor(t, "rotate", cred)
		require.NotContains(t, r.output(), "adopt", "the roles' marks name the store id, which moved along")
	}
	rots, err := shared.ListRotations(t.Context(), store.ListRotationsParams{Credential: "app"})
	require.NoError(t, err)
	require.Len(t, rots, 3, "two rotations copied, one made on the new store")
	conn, _ := w.envConn(t, "app")
	require.NoError(t, w.login(t.Context(), conn.User, conn.Password))
	require.NoFileExists(t, statePath, "the new store is used; no SQLite file is made again")

	info := w.mustRotor(t, "state", "info")
	require.Contains(t, info.stdout, "store         postgres ")
	require.Contains(t, info.stdout, "store id      "+before.ID)
	require.True(t, strings.Contains(info.stdout, "app ") && strings.Contains(info.stdout, "duo "), info.stdout)
	w.requireNoLeaks(t, nil)
}
