package engine_test

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/rotorhq/rotor/internal/engine"
	"github.com/rotorhq/rotor/internal/secret"
	"github.com/rotorhq/rotor/internal/store"
	"github.com/rotorhq/rotor/internal/store/sqlite"
)

func TestMatchLeak(t *testing.T) {
	ctx := t.Context()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "state.db"))
	require.NoError(t, err)
	t.Cleanup(func() { st.Close() })
	sealer, err := secret.NewSealer(make([]byte, 32))
	require.NoError(t, err)
	e := &engine.Engine{Store: st, Sealer: sealer}
	put := func(cred, role, pw string, stage store.Stage) {
		_, err := st.InsertVersion(ctx, store.InsertVersionParams{Credential: cred, Role: role, Stage: stage, Sealed: []byte("x"),
			Fingerprint: sealer.Fingerprint("password", cred, pw), Now: time.Now()})
		require.NoError(t, err)
	}
	put("a", "a_role", "pw-a-current", store.StageCurrent)
	put("b", "b_old", "pw-b-previous", store.StagePrevious)
	put("b", "b_new", "pw-b-current", store.StageCurrent)
	put("c", "c_role", "pw-c-retired", store.StageRetired)
	creds := []*engine.Credential{{Name: "a"}, {Name: "b"}, {Name: "c"}}

	for leak, want := range map[string]*engine.LeakMatch{
		"pw-a-current":     {Credential: "a", Role: "a_role", Version: 1, Stage: store.StageCurrent},
		"  pw-a-current\n": {Credential: "a", Role: "a_role", Version: 1, Stage: store.StageCurrent},
		"postgresql://b_old:pw-b-previous@db.example:5432/app?sslmode=require": {Credential: "b", Role: "b_old", Version: 1, Stage: store.StagePrevious},
		"host=db user=b_new password=pw-b-current dbname=app":                  {Credential: "b", Role: "b_new", Version: 2, Stage: store.StageCurrent},
		"pw-c-retired": nil, // retired: nothing left to revoke
		"pw-a":         nil,
		"":             nil,
		"postgresql://a_role:pw-b-current@db/app": {Credential: "b", Role: "b_new", Version: 2, Stage: store.StageCurrent},
	} {
		got, err := e.MatchLeak(ctx, creds, secret.New(leak))
		require.NoError(t, err, leak)
		require.Equal(t, want, got, leak)
	}
}
