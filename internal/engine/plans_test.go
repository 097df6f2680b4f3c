package engine_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/rotorhq/rotor/internal/engine"
	pbuiltin "github.com/rotorhq/rotor/internal/provider/builtin"
	"github.com/rotorhq/rotor/internal/resolve"
	"github.com/rotorhq/rotor/internal/secret"
	"github.com/rotorhq/rotor/internal/store"
	"github.com/rotorhq/rotor/internal/store/sqlite"
	tbuiltin "github.com/rotorhq/rotor/internal/target/builtin"
)

// TestPlansReadsInBulkWhatPlanReadsOneByOne: over enough credentials to
// read the store in bulk, Plans describes each exactly as Plan does —
// the role a dual credential moves from (its current version), the
// unfinished rotation it resumes — and a store holding versions of
// another config's credentials changes nothing.
func TestPlansReadsInBulkWhatPlanReadsOneByOne(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	dir := t.TempDir()
	var b strings.Builder
	b.WriteString(`version: 1
defaults:
  provider: {type: postgres, admin_url: "${ADMIN_URL}"}
  connection: {url: "postgresql://db.invalid:5432/app?sslmode=require"}
  strategy: dual
credentials:
`)
	const n = 40
	for i := range n {
		fmt.Fprintf(&b, "  c%02d:\n    roles: [c%02d_blue, c%02d_green]\n    group: c%02d\n    targets:\n      - {name: env, type: dotenv, path: env/%02d.env, values: {DATABASE_URL: \"{{.URL}}\"}}\n", i, i, i, i, i)
	}
	path := filepath.Join(dir, "rotor.yaml")
	require.NoError(t, os.WriteFile(path, []byte(b.String()), 0o600))
	cfg, err := resolve.LoadOffline(path, func(string) (string, bool) { return "", false }, resolve.Registry{Provider: pbuiltin.Lookup, Target: tbuiltin.Lookup})
	require.NoError(t, err)
	t.Cleanup(func() { cfg.Close() })
	require.Len(t, cfg.Credentials, n)

	st, err := sqlite.Open(ctx, filepath.Join(dir, "state.db"))
	require.NoError(t, err)
	t.Cleanup(func() { st.Close() })
	now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	for i := 0; i < n; i += 3 {
		_, err := st.InsertVersion(ctx, store.InsertVersionParams{Credential: fmt.Sprintf("c%02d", i), Role: fmt.Sprintf("c%02d_blue", i), Stage: store.StageCurrent, Sealed: []byte("x"), Now: now})
		require.NoError(t, err)
	}
	for i := 1; i < n; i += 7 {
		_, err := st.InsertRotation(ctx, store.InsertRotationParams{Credential: fmt.Sprintf("c%02d", i), Strategy: "dual", Trigger: "manual", Now: now})
		require.NoError(t, err)
	}
	// Another config's credential, newest of all.
	_, err = st.InsertVersion(ctx, store.InsertVersionParams{Credential: "elsewhere", Role: "elsewhere_blue", Stage: store.StageCurrent, Sealed: []byte("x"), Now: now})
	require.NoError(t, err)

	key, err := secret.GenerateKey(nil)
	require.NoError(t, err)
	sealer, err := secret.NewSealer(key)
	require.NoError(t, err)
	eng := &engine.Engine{Store: st, Sealer: sealer, Now: func() time.Time { return now }}
	opts := engine.PlanOptions{Offline: true}

	plans, err := eng.Plans(ctx, cfg.Credentials, opts)
	require.NoError(t, err)
	require.Len(t, plans, n)
	resumes, moves := 0, 0
	for i, cr := range cfg.Credentials {
		one, err := eng.Plan(ctx, cr, opts)
		require.NoError(t, err)
		require.Equal(t, one, plans[i], cr.Name)
		if plans[i].Resume != nil {
			resumes++
		}
		if plans[i].FromRole != "" {
			moves++
			require.Equal(t, cr.Roles[0], plans[i].FromRole, cr.Name)
			require.Equal(t, cr.Roles[1], plans[i].ToRole, cr.Name)
		}
	}
	require.Equal(t, 6, resumes, "c01, c08, … c36 have an unfinished rotation")
	require.Equal(t, 14, moves, "c00, c03, … c39 have a current version")

	few, err := eng.Plans(ctx, cfg.Credentials[:3], opts)
	require.NoError(t, err)
	require.Equal(t, plans[:3], few, "below the bulk threshold, the same plans")
}
