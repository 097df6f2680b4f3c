//go:build unix

package e2e_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/rotorhq/rotor/internal/engine"
	"github.com/rotorhq/rotor/internal/secret"
	"github.com/rotorhq/rotor/internal/store"
)

// Exit codes of internal/cli/exitcode.go; scripts branch on these.
const (
	exitOK         = 0
	exitError      = 1
	exitUsage      = 2
	exitInProgress = 3
	exitAttention  = 4
)

// TestExitCodes checks that each kind of outcome exits with its code and
// says what to do. Exit 3 (in progress) is TestConcurrentRotate's.
func TestExitCodes(t *testing.T) {
	t.Parallel()

	t.Run("usage", func(t *testing.T) {
		t.Parallel()
		w := newWorld(t, nil, credSpec{name: "app", strategy: "single"})

		cfg, err := os.ReadFile(w.cfgPath)
		require.NoError(t, err)
		head, tail, ok := strings.Cut(string(cfg), "    strategy: single\n")
		require.True(t, ok)
		bad := head + "    strategy: single\n    colour: blue\n" + tail
		line := strings.Count(head, "\n") + 2
		badPath := filepath.Join(w.dir, "bad.yaml")
		require.NoError(t, os.WriteFile(badPath, []byte(bad), 0o600))

		r := w.rotor(t, nil, "-c", badPath, "rotate", "app")
		require.Equal(t, exitUsage, r.code, "unknown config key:\n%s", w.scrub(r.output()))
		require.Contains(t, r.stderr, fmt.Sprintf("bad.yaml:%d:", line), "the error points at the unknown key's line")
		require.Contains(t, r.stderr, "colour")

		r = w.rotor(t, nil, "rotate", "no-such-credential")
		require.Equal(t, exitUsage, r.code, "unknown credential:\n%s", w.scrub(r.output()))
		require.Contains(t, r.stderr, "no-such-credential")

		r = w.rotor(t, nil, "rotate")
		require.Equal(t, exitUsage, r.code, "rotate without arguments:\n%s", w.scrub(r.output()))
		require.Contains(t, r.stderr, "--due")

		// Nothing was done: no rotation, so no store and no .env file.
		_, err = os.Stat(filepath.Join(w.dir, ".rotor", "state.db"))
		require.True(t, os.IsNotExist(err), "a usage error must not touch the store")
		w.requireNoLeaks(t, nil)
	})

	t.Run("target fails then resume", func(t *testing.T) {
		t.Parallel()
		w := newWorld(t, nil, credSpec{name: "app", strategy: "single", envFile: "missing/.env"})

		r := w.rotor(t, nil, "rotate", "app")
		require.Equal(t, exitError, r.code, "a target that cannot be written:\n%s", w.scrub(r.output()))
		require.Contains(t, r.stderr, "rotor resume", "the message says how to finish")
		require.Contains(t, r.stderr, filepath.Join(w.dir, "missing"), "the message names the target's directory")
		require.True(t, w.unfinishedShown(t, "app"))

		// The database already has the new password; rotor still holds it.
		s := w.inspect(t, "app")
		require.Len(t, s.active, 1)
		require.Len(t, s.pending, 1, s.describe())
		require.True(t, s.journaled(engine.StepPublish, store.StepFailed), s.describe())
		p := s.pending[0]
		require.NoError(t, w.login(t.Context(), p.Role, s.secrets[p.ID]), "the pending password is set and kept")

		require.NoError(t, os.Mkdir(filepath.Join(w.dir, "missing"), 0o700))
		r = w.rotor(t, nil, "resume")
		require.Equal(t, exitOK, r.code, "resume after the fix:\n%s", w.scrub(r.output()))
		w.requireSettled(t, "app", nil)
		require.False(t, w.unfinishedShown(t, "app"))
		w.requireNoLeaks(t, nil)
	})

	t.Run("old role still in use", func(t *testing.T) {
		t.Parallel()
		w := newWorld(t, nil, credSpec{name: "app", strategy: "dual", extra: "    drain:\n      timeout: 1s\n      poll: 50ms\n      grace: 200ms\n      quiet: 300ms\n"})
		w.mustRotor(t, "setup-roles", "app")
		w.mustRotor(t, "rotate", "app")
		before := w.requireSettled(t, "app", nil)

		// A consumer that never moves to the new role.
		_, url := w.envConn(t, "app")
		conn, err := pgx.Connect(t.Context(), url.Reveal()+"&application_name=legacy-cron")
		require.NoError(t, secret.Scrub(err, url), "connect as the current role")
		defer conn.Close(context.WithoutCancel(t.Context()))

		r := w.rotor(t, nil, "rotate", "app")
		require.Equal(t, exitAttention, r.code, "published but the old role is in use:\n%s", w.scrub(r.output()))
		require.Contains(t, r.stdout, "legacy-cron", "the result names the application still on the old role")
		w.requireSettled(t, "app", before)
		_, err = conn.Exec(t.Context(), "SELECT 1")
		require.NoError(t, err, "the consumer that has not moved keeps working")
		w.requireNoLeaks(t, nil)
	})
}
