package cli

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/rotorhq/rotor/internal/secret"
	"github.com/rotorhq/rotor/internal/store"
	"github.com/rotorhq/rotor/internal/store/sqlite"
	"github.com/rotorhq/rotor/internal/store/storetest"
)

// stateConfig is a config whose database and target secrets are not in
// the environment: the state commands must not need them.
const stateConfig = `version: 1
credentials:
  app-db:
    provider:
      type: postgres
      admin_url: ${ADMIN_URL}
    connection:
      url: postgresql://db.internal:5432/app?sslmode=require
    strategy: single
    role: app
    targets:
      - name: vercel
        type: vercel
        token: ${VERCEL_TOKEN}
        project: prj_1
        values: {DATABASE_URL: "{{.URL}}"}
`

// stateWorld is a config directory with a filled SQLite store and a key.
type stateWorld struct {
	dir, cfg, state string
	key             string // ROTOR_KEY
	sealer          *secret.Sealer
	id              string
}

func newStateWorld(t *testing.T) *stateWorld {
	t.Helper()
	w := &stateWorld{dir: t.TempDir()}
	w.cfg = filepath.Join(w.dir, "rotor.yaml")
	require.NoError(t, os.WriteFile(w.cfg, []byte(stateConfig), 0o600))
	key, err := secret.GenerateKey(nil)
	require.NoError(t, err)
	w.key = base64.StdEncoding.EncodeToString(key)
	w.sealer, err = secret.NewSealer(key)
	require.NoError(t, err)
	w.state = filepath.Join(w.dir, ".rotor", "state.db")
	st, err := sqlite.Open(t.Context(), w.state)
	require.NoError(t, err)
	defer st.Close()
	storetest.Fill(t, st)
	// Two versions sealed with the key as the engine seals them.
	for _, role := range []string{"app_a", "app_b"} {
		blob, err := w.sealer.Seal([]byte(`{"p":"pw"}`), []byte("rotor/v1/version\x00sealed-db\x00"+role))
		require.NoError(t, err)
		r, err := st.InsertRotation(t.Context(), store.InsertRotationParams{Credential: "sealed-db", Strategy: "dual", Trigger: "manual", Now: time.Unix(100, 0)})
		require.NoError(t, err)
		_, err = st.InsertVersion(t.Context(), store.InsertVersionParams{Credential: "sealed-db", Role: role, Stage: store.StagePending,
			RotationID: r.ID, Sealed: blob, Fingerprint: "fp", Now: time.Unix(100, 0)})
		require.NoError(t, err)
		_, err = st.FinishRotation(t.Context(), store.FinishRotationParams{ID: r.ID, Status: store.StatusSucceeded, Promote: true, Now: time.Unix(101, 0),
			Audit: store.AppendAuditParams{Event: "rotation.succeeded"}})
		require.NoError(t, err)
	}
	in, err := st.Info(t.Context())
	require.NoError(t, err)
	w.id = in.ID
	return w
}

func (w *stateWorld) env() testEnv {
	return testEnv{"ROTOR_CONFIG": w.cfg, "ROTOR_KEY": w.key}
}

// runAt runs rotor at now (after Fill's leases have expired unless said
// otherwise).
func runAt(t *testing.T, env testEnv, now time.Time, args ...string) (int, string, string) {
	t.Helper()
	f, io := newTestFactory(env)
	f.Now = func() time.Time { return now }
	code := Run(context.Background(), f, args)
	return code, io.out.String(), io.errOut.String()
}

var afterLeases = time.Date(2040, 1, 1, 0, 0, 0, 0, time.UTC)

func TestStateInfo(t *testing.T) {
	t.Parallel()
	w := newStateWorld(t)
	code, out, errOut := runAt(t, w.env(), afterLeases, "state", "info")
	require.Equal(t, ExitOK, code, errOut)
	require.Contains(t, out, "store         sqlite "+w.state+"\n")
	require.Contains(t, out, "schema        version 5\n")
	require.Contains(t, out, "store id      "+w.id+"\n")
	require.Contains(t, out, "(environment variable ROTOR_KEY); opens 2 of 4 sealed version(s)")
	require.Contains(t, out, "does not open every sealed version", "Fill's blobs were not sealed with this key")
	require.Regexp(t, `(?m)^  app-db +3 +app-db_blue +\S+ +#3 unfinished at step apply$`, out)
	require.Regexp(t, `(?m)^  other-db +- +- +- +#4 rolled_back `, out)
	require.Regexp(t, `(?m)^  sealed-db +2 +app_b +1970-01-01T00:01:41Z +#6 succeeded `, out)
	require.NotContains(t, out, w.key)

	code, out, errOut = runAt(t, w.env(), afterLeases, "state", "info", "--json")
	require.Equal(t, ExitOK, code, errOut)
	var in StateInfo
	require.NoError(t, json.Unmarshal([]byte(out), &in))
	require.Equal(t, "sqlite", in.Driver)
	require.Equal(t, w.id, in.StoreID)
	require.Equal(t, 5, in.SchemaVersion)
	require.Equal(t, KeyInfo{Fingerprint: keyFingerprint(w.sealer), Source: "environment variable ROTOR_KEY", Sealed: 4, Opens: 2}, in.Key)
	require.Len(t, in.Credentials, 3)
	require.Equal(t, "sealed-db", in.Credentials[2].Name)
	require.Equal(t, int64(2), in.Credentials[2].Version)
	require.Equal(t, 2, in.Credentials[2].Rotations)
	require.Equal(t, store.StatusSucceeded, in.Credentials[2].Last.Status)
}

func TestKeyFingerprint(t *testing.T) {
	t.Parallel()
	fp := func(key []byte) string {
		s, err := secret.NewSealer(key)
		require.NoError(t, err)
		return keyFingerprint(s)
	}
	a, b := make([]byte, secret.KeySize), make([]byte, secret.KeySize)
	b[31] = 1
	require.Equal(t, fp(a), fp(a), "one key, one fingerprint")
	require.NotEqual(t, fp(a), fp(b))
	require.Regexp(t, `^hmac-sha256:[0-9a-f]{32}$`, fp(a))
}

// The key file the config names is used when ROTOR_KEY is unset; without
// either, info still describes the store and says what is missing.
func TestStateInfoKeySources(t *testing.T) {
	t.Parallel()
	w := newStateWorld(t)
	env := testEnv{"ROTOR_CONFIG": w.cfg}
	code, out, errOut := runAt(t, env, afterLeases, "state", "info")
	require.Equal(t, ExitOK, code, errOut)
	require.Contains(t, out, "key           none: key file "+filepath.Join(w.dir, ".rotor", "key")+" does not exist")
	require.Contains(t, out, "store id      "+w.id)

	require.NoError(t, os.WriteFile(filepath.Join(w.dir, ".rotor", "key"), []byte(w.key+"\n"), 0o600))
	code, out, errOut = runAt(t, env, afterLeases, "state", "info")
	require.Equal(t, ExitOK, code, errOut)
	require.Contains(t, out, keyFingerprint(w.sealer)+" (key file ")
}

func TestStateInfoRefusals(t *testing.T) {
	t.Parallel()
	t.Run("no store yet", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		cfg := filepath.Join(dir, "rotor.yaml")
		require.NoError(t, os.WriteFile(cfg, []byte(stateConfig), 0o600))
		code, _, errOut := runAt(t, testEnv{"ROTOR_CONFIG": cfg}, afterLeases, "state", "info")
		require.Equal(t, ExitError, code)
		require.Contains(t, errOut, "no state store at "+filepath.Join(dir, ".rotor", "state.db"))
		require.NoFileExists(t, filepath.Join(dir, ".rotor", "state.db"), "info creates no store")
	})
	t.Run("password typed into state", func(t *testing.T) {
		t.Parallel()
		cfg := filepath.Join(t.TempDir(), "rotor.yaml")
		require.NoError(t, os.WriteFile(cfg, []byte("state: postgres://rotor:"+canary+"@db.internal/rotor\n"+stateConfig), 0o600))
		code, out, errOut := runAt(t, testEnv{"ROTOR_CONFIG": cfg}, afterLeases, "state", "info")
		require.Equal(t, ExitUsage, code)
		require.Contains(t, errOut, "rotor.yaml:1: state holds a password in the config file")
		require.NotContains(t, out+errOut, canary)
	})
	t.Run("state from an unset variable", func(t *testing.T) {
		t.Parallel()
		cfg := filepath.Join(t.TempDir(), "rotor.yaml")
		require.NoError(t, os.WriteFile(cfg, []byte("state: ${STATE_URL}\n"+stateConfig), 0o600))
		code, _, errOut := runAt(t, testEnv{"ROTOR_CONFIG": cfg}, afterLeases, "state", "info")
		require.Equal(t, ExitUsage, code)
		require.Contains(t, errOut, "uses an environment variable that is not set")
		require.Contains(t, errOut, "(STATE_URL)", "only the variable of state:, not the credentials' ADMIN_URL or VERCEL_TOKEN")
	})
	t.Run("password on --state", func(t *testing.T) {
		t.Parallel()
		code, out, errOut := runAt(t, nil, afterLeases, "state", "info", "--state", "postgres://rotor:"+canary+"@db.internal/rotor")
		require.Equal(t, ExitUsage, code)
		require.Contains(t, errOut, "--state holds a password")
		require.NotContains(t, out+errOut, canary)
	})
}

// --state (or ROTOR_STATE_URL) with ROTOR_KEY needs no config file at all,
// as in a CI job that only inspects the store.
func TestStateInfoWithoutConfig(t *testing.T) {
	t.Parallel()
	w := newStateWorld(t)
	env := testEnv{"ROTOR_CONFIG": filepath.Join(t.TempDir(), "absent.yaml"), "ROTOR_KEY": w.key, "ROTOR_STATE_URL": "sqlite://" + w.state}
	code, out, errOut := runAt(t, env, afterLeases, "state", "info")
	require.Equal(t, ExitOK, code, errOut)
	require.Contains(t, out, "store id      "+w.id)
}

func TestStateMigrateUsage(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"state", "migrate"}, "say where to copy the store"},
		{[]string{"state", "migrate", "--to", "postgres://rotor:" + canary + "@db/rotor"}, "--to holds a password"},
		{[]string{"state", "migrate", "--to", "x.db", "--to-env", "X"}, "--to and --to-env name the target twice"},
		{[]string{"state", "migrate", "--to-env", "NOPE"}, "--to-env NOPE: the variable is not set"},
		{[]string{"state"}, "name a subcommand: info or migrate"},
	} {
		code, out, errOut := runAt(t, nil, afterLeases, tt.args...)
		require.Equal(t, ExitUsage, code, strings.Join(tt.args, " "))
		require.Contains(t, errOut, tt.want)
		require.NotContains(t, out+errOut, canary)
	}
}

func TestStateMigrateSQLite(t *testing.T) {
	t.Parallel()
	w := newStateWorld(t)
	// Fill's blobs were sealed with no key at all; keep only the versions
	// this key opens, as in a real store.
	st, err := sqlite.Open(t.Context(), w.state)
	require.NoError(t, err)
	snap, err := st.Export(t.Context(), store.ExportParams{})
	require.NoError(t, err)
	require.NoError(t, st.Close())
	kept := *snap
	kept.Versions = nil
	for _, v := range snap.Versions {
		if v.Sealed == nil || openVersion(w.sealer, v) == nil {
			kept.Versions = append(kept.Versions, v)
		} else {
			cp := *v
			cp.Sealed = nil
			kept.Versions = append(kept.Versions, &cp)
		}
	}
	clean := filepath.Join(t.TempDir(), "clean.db")
	cst, err := sqlite.Open(t.Context(), clean)
	require.NoError(t, err)
	require.NoError(t, cst.Import(t.Context(), store.ImportParams{Snapshot: &kept}))
	require.NoError(t, cst.Close())

	target := filepath.Join(t.TempDir(), "moved", "state.db")
	env := w.env()
	env["ROTOR_STATE_URL"] = clean
	code, out, errOut := runAt(t, env, afterLeases, "state", "migrate", "--to", target)
	require.Equal(t, ExitOK, code, errOut)
	require.Contains(t, out, "copied sqlite "+clean+"\n    to sqlite "+target)
	require.Contains(t, out, "store id "+w.id+" (kept")
	require.Contains(t, out, "2 sealed version(s) open with the key "+keyFingerprint(w.sealer))
	require.Regexp(t, `(?m)^ +versions +7 +[0-9a-f]{64}$`, out)
	require.Contains(t, out, "write `state: "+target+"`")
	require.Contains(t, out, "mv "+clean+" "+clean+".migrated")
	require.Contains(t, out, "ROTOR_STATE_URL still names the old store")

	moved, err := sqlite.Open(t.Context(), target)
	require.NoError(t, err)
	defer moved.Close()
	got, err := moved.Export(t.Context(), store.ExportParams{})
	require.NoError(t, err)
	require.Equal(t, &kept, got)

	// A second run finds the target not empty and says what to do.
	code, _, errOut = runAt(t, env, afterLeases, "state", "migrate", "--to", target)
	require.Equal(t, ExitError, code)
	require.Contains(t, errOut, "the store is not empty")
	require.Contains(t, errOut, "name a new schema")
}

func TestStateMigrateRefusals(t *testing.T) {
	t.Parallel()
	t.Run("wrong key", func(t *testing.T) {
		t.Parallel()
		w := newStateWorld(t) // Fill's versions do not open with w's key
		code, out, errOut := runAt(t, w.env(), afterLeases, "state", "migrate", "--to", filepath.Join(t.TempDir(), "s.db"))
		require.Equal(t, ExitError, code, out)
		require.Contains(t, errOut, "cannot decrypt sealed value")
		require.Contains(t, errOut, "empty it")
	})
	t.Run("rotation running", func(t *testing.T) {
		t.Parallel()
		w := newStateWorld(t)
		target := filepath.Join(t.TempDir(), "s.db")
		code, _, errOut := runAt(t, w.env(), time.Date(2031, 4, 5, 1, 30, 0, 0, time.UTC), "state", "migrate", "--to", target)
		require.Equal(t, ExitError, code)
		require.Contains(t, errOut, "lease app-db is held by holder-a")
		st, err := sqlite.Open(t.Context(), target)
		require.NoError(t, err)
		defer st.Close()
		snap, err := st.Export(t.Context(), store.ExportParams{})
		require.NoError(t, err)
		require.Empty(t, snap.Versions)
	})
	t.Run("same store", func(t *testing.T) {
		t.Parallel()
		w := newStateWorld(t)
		code, _, errOut := runAt(t, w.env(), afterLeases, "state", "migrate", "--to", "sqlite://"+w.state)
		require.Equal(t, ExitUsage, code)
		require.Contains(t, errOut, "the target is the store rotor uses now")
	})
}
