package engine_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/rotorhq/rotor/internal/engine"
	"github.com/rotorhq/rotor/internal/pgtest"
	pbuiltin "github.com/rotorhq/rotor/internal/provider/builtin"
	"github.com/rotorhq/rotor/internal/resolve"
	"github.com/rotorhq/rotor/internal/secret"
	"github.com/rotorhq/rotor/internal/store"
	"github.com/rotorhq/rotor/internal/store/sqlite"
	tbuiltin "github.com/rotorhq/rotor/internal/target/builtin"
)

// TestRotateEach: several credentials at once, never more than Parallel
// of them, outcomes in the order asked; with DueOnly only the due ones
// and the unfinished ones.
// eachSetup is three single credentials (a, b and manual, which has no
// schedule), each publishing to a .env file, and an engine over a SQLite
// store.
func eachSetup(t *testing.T) (*engine.Engine, *resolve.Config, []string) {
	ctx := t.Context()
	cl := pgtest.Shared(t)
	db, adminURL := pgtest.NewDatabase(t)
	dir := t.TempDir()
	var b strings.Builder
	fmt.Fprintf(&b, `version: 1
defaults:
  provider: {type: postgres, admin_url: "${ADMIN_URL}"}
  connection: {url: "postgresql://%s:%d/%s?sslmode=require&channel_binding=require"}
  strategy: single
credentials:
`, cl.Host, cl.Port, db)
	names := []string{"a", "b", "manual"}
	for _, name := range names {
		role := pgtest.UniqueName(t, "each_"+name)
		pgtest.NewRole(t, cl, role, mustPassword(t))
		schedule := "    schedule: {every: 30d}\n"
		if name == "manual" {
			schedule = ""
		}
		fmt.Fprintf(&b, "  %s:\n    role: %s\n%s    targets:\n      - {name: env, type: dotenv, path: %q, values: {DATABASE_URL: \"{{.URL}}\"}}\n",
			name, role, schedule, filepath.Join(dir, name+".env"))
	}
	path := filepath.Join(dir, "rotor.yaml")
	require.NoError(t, os.WriteFile(path, []byte(b.String()), 0o600))
	env := map[string]string{"ADMIN_URL": adminURL.Reveal()}
	cfg, err := resolve.Load(path, func(k string) (string, bool) { v, ok := env[k]; return v, ok },
		resolve.Registry{Provider: pbuiltin.Lookup, Target: tbuiltin.Lookup, Now: time.Now, Getenv: func(string) string { return "" }})
	require.NoError(t, err)
	t.Cleanup(func() { cfg.Close() })
	st, err := sqlite.Open(ctx, filepath.Join(dir, "state.db"))
	require.NoError(t, err)
	t.Cleanup(func() { st.Close() })
	sealer, err := secret.NewSealer(testKey)
	require.NoError(t, err)
	eng := &engine.Engine{Store: st, Sealer: sealer}
	return eng, cfg, names
}

func TestRotateEach(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	eng, cfg, names := eachSetup(t)

	// The first two rotations to reach prepare wait for each other, so
	// two run at once; the third may start only when one of them is done.
	var mu sync.Mutex
	arrived, running, most := 0, 0, 0
	second := make(chan struct{})
	eng.Hooks = &engine.Hooks{BeforeStep: func(step string) error {
		mu.Lock()
		switch step {
		case engine.StepPrepare:
			arrived++
			running++
			most = max(most, running)
			n := arrived
			mu.Unlock()
			switch n {
			case 1:
				<-second
			case 2:
				close(second)
			}
			return nil
		case engine.StepFinish:
			running--
		}
		mu.Unlock()
		return nil
	}}
	outs := eng.RotateEach(ctx, cfg.Credentials, engine.EachOptions{Parallel: 2})
	require.Len(t, outs, 3)
	for i, o := range outs {
		require.Equal(t, names[i], o.Credential, "outcomes in the order of the credentials")
		require.NoError(t, o.Err)
		require.NotNil(t, o.Result)
		require.Equal(t, store.StatusSucceeded, o.Result.Status)
	}
	require.Equal(t, 2, most, "two at once, never more")
	eng.Hooks = nil

	// Just rotated: nothing is due, and the manual one never is.
	for _, o := range eng.RotateEach(ctx, cfg.Credentials, engine.EachOptions{DueOnly: true, Parallel: 3}) {
		require.NoError(t, o.Err)
		require.Nil(t, o.Result, "%s is not due", o.Credential)
	}

	// An unfinished rotation is finished even though it is not due.
	cb, err := cfg.Credential("b")
	require.NoError(t, err)
	stop := errors.New("stopped for the test")
	eng.Hooks = &engine.Hooks{BeforeStep: func(step string) error {
		if step == engine.StepPublish {
			return stop
		}
		return nil
	}}
	_, err = eng.Rotate(ctx, cb, engine.Options{})
	require.ErrorIs(t, err, stop)
	eng.Hooks = nil
	outs = eng.RotateEach(ctx, cfg.Credentials, engine.EachOptions{DueOnly: true, Options: engine.Options{Trigger: "schedule"}})
	require.Nil(t, outs[0].Result)
	require.Nil(t, outs[2].Result)
	require.NoError(t, outs[1].Err)
	require.NotNil(t, outs[1].Result)
	require.True(t, outs[1].Result.Resumed)
	require.Equal(t, store.StatusSucceeded, outs[1].Result.Status)
}

// TestRotateEachFuncYieldsInOrder: an outcome is handed over as soon as
// it and every one before it are done, never ahead of an earlier one. a
// is held at prepare until b and manual have reached their last step, so
// they finish first and wait for a; then all three come in the order of
// the credentials.
func TestRotateEachFuncYieldsInOrder(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	eng, cfg, names := eachSetup(t)
	var mu sync.Mutex
	var finishing, yielded []string
	var finishingAtYield []int
	othersFinishing := make(chan struct{})
	eng.Events = func(ev engine.Event) {
		if ev.Target != "" || ev.Status != "start" {
			return
		}
		switch {
		case ev.Credential == "a" && ev.Step == engine.StepPrepare:
			<-othersFinishing
		case ev.Step == engine.StepFinish:
			mu.Lock()
			defer mu.Unlock()
			finishing = append(finishing, ev.Credential)
			if len(finishing) == 2 {
				close(othersFinishing)
			}
		}
	}
	var outs []engine.Outcome
	eng.RotateEachFunc(ctx, cfg.Credentials, engine.EachOptions{Parallel: 3}, func(o engine.Outcome) {
		mu.Lock()
		defer mu.Unlock()
		outs = append(outs, o)
		yielded = append(yielded, o.Credential)
		finishingAtYield = append(finishingAtYield, len(finishing))
	})
	require.Equal(t, names, yielded, "every outcome, once, in the order of the credentials")
	require.Equal(t, "a", finishing[2], "a reached its last step after b and manual")
	require.Equal(t, []int{3, 3, 3}, finishingAtYield, "b and manual were held until a was done")
	for _, o := range outs {
		require.NoError(t, o.Err)
		require.Equal(t, store.StatusSucceeded, o.Result.Status)
	}
}
