package neon_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/rotorhq/rotor/internal/engine"
	"github.com/rotorhq/rotor/internal/provider/neon"
	"github.com/rotorhq/rotor/internal/provider/neon/neonfake"
	"github.com/rotorhq/rotor/internal/secret"
	"github.com/rotorhq/rotor/internal/store"
)

// TestOwnerRoleCrashMatrix is the crash matrix of a self-managed
// credential on the Neon fake: the owner role, which is also the role
// rotor logs in as, by either method, with and without stored
// passwords. Each run dies before one journaled step (the hook aborts
// as a killed process would); then, before anything resumes, the
// database must accept a password the store holds, and a new process
// (config and providers loaded again, the environment's admin password
// stale) resumes and ends with the database, the store and the .env on
// one password, every older one refused.
func TestOwnerRoleCrashMatrix(t *testing.T) {
	t.Parallel()
	for _, method := range []string{neon.MethodSQL, neon.MethodAPI} {
		for _, stored := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s/stored_passwords=%v", method, stored), func(t *testing.T) {
				t.Parallel()
				w := newWorld(t, neonfake.Config{DisableStorePasswords: !stored})
				o := rigOpts{method: method, strategy: "single", roles: []string{w.owner}}
				if !stored {
					o.provider = []string{"admin_password: ${NEON_ADMIN_PASSWORD}"}
					o.env = map[string]string{"NEON_ADMIN_PASSWORD": w.ownerPW.Reveal()}
				}
				r := newRig(t, w, o)
				res, err := r.eng.Rotate(t.Context(), r.cred(), engine.Options{})
				require.NoError(t, err)
				require.Equal(t, store.StatusSucceeded, res.Status, res.Outcome)
				_, cur := r.published()
				seen := []secret.String{w.ownerPW, cur}

				for _, step := range engine.Steps[1:] {
					t.Run("before-"+step, func(t *testing.T) {
						r.reload()
						r.eng = r.newEngine()
						crash := errors.New("killed")
						r.eng.Hooks = &engine.Hooks{BeforeStep: func(s string) error {
							if s == step {
								return crash
							}
							return nil
						}}
						_, err := r.eng.Rotate(t.Context(), r.cred(), engine.Options{})
						require.ErrorIs(t, err, crash)

						// Right after the crash: one of the store's
						// passwords (current, or the pending one once apply
						// ran) opens the database.
						held := r.storedPasswords(t)
						accepted := 0
						for _, pw := range held {
							if w.login(w.owner, pw) == nil {
								accepted++
							}
						}
						require.Equal(t, 1, accepted, "exactly one password the store holds must log in after a crash before %s", step)

						// A new process resumes.
						r.reload()
						r.eng = r.newEngine()
						res, err := r.eng.Rotate(t.Context(), r.cred(), engine.Options{ResumeOnly: true})
						require.NoError(t, err, "resume after a crash before %s", step)
						require.Equal(t, store.StatusSucceeded, res.Status, res.Outcome)
						_, now := r.published()
						require.NoError(t, w.login(w.owner, now), "the .env's password logs in")
						current := r.storedPasswords(t)[0]
						require.True(t, now.Equal(current), "the .env holds the store's current version")
						for _, old := range seen {
							if !old.Equal(now) {
								require.Error(t, w.login(w.owner, old), "an earlier password is refused")
							}
						}
						seen = append(seen, now)
						w.requireNoLeak(t, []string{err2s(err), fmt.Sprintf("%+v", res)}, seen...)
					})
				}
			})
		}
	}
}

// storedPasswords returns the passwords of the store's current version
// first, then of the pending one of an unfinished rotation (if any).
func (r *rig) storedPasswords(t *testing.T) []secret.String {
	t.Helper()
	ctx := t.Context()
	var out []secret.String
	vs, err := r.store.ListVersions(ctx, store.ListVersionsParams{Credential: "app", Stages: []store.Stage{store.StageCurrent}})
	require.NoError(t, err)
	require.Len(t, vs, 1, "one current version")
	out = append(out, r.open(t, vs[0]))
	rots, err := r.store.ListRotations(ctx, store.ListRotationsParams{Credential: "app", Active: true})
	require.NoError(t, err)
	for _, rot := range rots {
		if rot.ToVersionID == 0 {
			continue // stopped before prepare generated the new version
		}
		v, err := r.store.GetVersion(ctx, store.GetVersionParams{ID: rot.ToVersionID})
		require.NoError(t, err)
		out = append(out, r.open(t, v))
	}
	return out
}

// open unseals a version's password with the rig's key, as the engine does.
func (r *rig) open(t *testing.T, v *store.Version) secret.String {
	t.Helper()
	sealer, err := secret.NewSealer(r.key)
	require.NoError(t, err)
	plain, err := sealer.Open(v.Sealed, []byte("rotor/v1/version\x00"+v.Credential+"\x00"+v.Role))
	require.NoError(t, err, "open version %d", v.Seq)
	var m struct {
		Password string `json:"p"`
	}
	require.NoError(t, json.Unmarshal(plain, &m))
	return secret.New(m.Password)
}

func err2s(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
