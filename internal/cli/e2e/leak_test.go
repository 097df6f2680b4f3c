//go:build unix

package e2e_test

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/rotorhq/rotor/internal/pgcluster"
	"github.com/rotorhq/rotor/internal/pgtest"
	"github.com/rotorhq/rotor/internal/secret"
	"github.com/rotorhq/rotor/internal/testdeps"
)

// TestNoPasswordLeaks drives every read and write command with --debug
// against a cluster that logs every statement, then looks for each
// password rotor generated — raw, percent-encoded, escaped, hex, base64 —
// everywhere except the .env files meant to hold them: stdout and stderr of
// every command, their arguments, the audit log (history --json), the
// state store's files (with -wal and -shm), the server log and the config.
func TestNoPasswordLeaks(t *testing.T) {
	testdeps.SkipUnderQuick(t, "PostgreSQL")
	t.Parallel()
	base := t.TempDir()
	// The server runs as the postgres OS user when the tests run as root:
	// it must be able to traverse down to its directory (files stay 0600).
	for _, d := range []string{filepath.Dir(base), base} {
		require.NoError(t, os.Chmod(d, 0o711))
	}
	cl, err := pgcluster.Start(t.Context(), pgcluster.Options{Dir: filepath.Join(base, "pg"), LogStatements: true})
	if err != nil {
		pgtest.SkipOrFail(t, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
		defer cancel()
		if err := cl.Stop(ctx); err != nil {
			t.Errorf("stop the cluster: %v", err)
		}
	})

	w := newWorld(t, cl, credSpec{name: "dual-db", strategy: "dual"}, credSpec{name: "single-db", strategy: "single"})
	rotor := func(args ...string) result {
		return w.mustRotor(t, append([]string{"--debug"}, args...)...)
	}
	rotor("setup-roles", "dual-db")
	rotor("validate")
	rotor("plan")

	var generated []secret.String
	collect := func(creds ...string) {
		t.Helper()
		for _, cred := range creds {
			before := len(generated)
			conn, _ := w.envConn(t, cred)
			require.NotNil(t, conn, "%s: .env written", cred)
			if !slices.ContainsFunc(generated, conn.Password.Equal) {
				generated = append(generated, conn.Password)
			}
			require.Len(t, generated, before+1, "%s: every rotation publishes a new password", cred)
		}
	}
	for _, args := range [][]string{
		{"rotate", "--progress", "dual-db", "single-db"},
		{"rotate", "--progress", "dual-db", "single-db"},
		{"--json", "rotate", "--revoke", "dual-db", "single-db"},
	} {
		rotor(args...)
		collect("dual-db", "single-db")
	}

	// A rotation killed before finish leaves its writes in the store's
	// write-ahead log, not yet checkpointed into the main file: scan both
	// as the crash left them, then let resume finish it.
	r := w.rotor(t, []string{"ROTOR_TEST_CRASH_AT=finish"}, "--debug", "rotate", "--progress", "dual-db")
	require.True(t, r.killed, "rotate must be killed before finish:\n%s", w.scrub(r.output()))
	crashed := map[string][]byte{}
	for _, suffix := range []string{"", "-wal", "-shm"} {
		if b, err := os.ReadFile(filepath.Join(w.dir, ".rotor", "state.db"+suffix)); err == nil {
			crashed["file .rotor/state.db"+suffix+" right after a SIGKILL"] = b
		}
	}
	require.Contains(t, crashed, "file .rotor/state.db-wal right after a SIGKILL")
	rotor("resume", "--progress")
	collect("dual-db")
	rotor("status")
	rotor("status", "--live")
	rotor("history")
	rotor("plan")
	rotor("validate")
	rotor("--json", "status")
	audit := rotor("history", "--json")
	require.Contains(t, audit.stdout, "rotation.succeeded", "the audit log records the rotations it is scanned for")
	rotor("resume")

	serverLog, err := cl.ServerLog()
	require.NoError(t, err)
	// Never print the log itself in a failure: it is what may hold a leak.
	// (rotor turns statement logging off around ALTER ROLE, so that
	// statement itself is not in the log; everything else it sends is.)
	require.True(t, bytes.Contains(serverLog, []byte("application_name=rotor ")) && bytes.Contains(serverLog, []byte("LOG:  statement: ")),
		"the server logs rotor's sessions and statements, so the scan covers what rotor sent")
	require.Len(t, generated, 7)
	// A positive control: the scan does find a password where it is meant
	// to be.
	for _, cred := range []string{"dual-db", "single-db"} {
		env, err := os.ReadFile(w.envPath(cred))
		require.NoError(t, err)
		conn, _ := w.envConn(t, cred)
		require.NotEmpty(t, secret.Leaks(env, conn.Password), "the scan must find the password in %s", w.creds[cred].envFile)
	}
	crashed["the server log"] = serverLog
	places := w.requireNoLeaks(t, crashed)
	require.Contains(t, places, "file .rotor/state.db")
	require.Contains(t, places, "the stdout of rotor --debug history --json")
}

// requireNoLeaks scans for every password the test has seen (all the .env
// files and the store ever held, the superuser's and the roles' initial
// ones) and for the store's encryption key: the output and arguments of
// every rotor run, every file in the world's directory but the .env
// targets and the key file itself, and extra.
func (w *world) requireNoLeaks(t *testing.T, extra map[string][]byte) (places []string) {
	t.Helper()
	haystacks := map[string][]byte{}
	for name, b := range extra {
		haystacks[name] = b
	}
	allowed := map[string]bool{filepath.Join(w.dir, ".rotor", "key"): true}
	for name := range w.creds {
		allowed[w.envPath(name)] = true
	}
	// Files first: opening the store below may checkpoint its WAL.
	err := filepath.WalkDir(w.dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || allowed[path] {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		haystacks["file "+strings.TrimPrefix(path, w.dir+"/")] = b
		return nil
	})
	require.NoError(t, err)
	w.mu.Lock()
	runs := slices.Clone(w.runs)
	w.mu.Unlock()
	for _, r := range runs {
		cmd := "rotor " + strings.Join(r.args, " ")
		haystacks["the arguments of "+cmd] = []byte(cmd)
		haystacks["the stdout of "+cmd] = append(haystacks["the stdout of "+cmd], r.stdout...)
		haystacks["the stderr of "+cmd] = append(haystacks["the stderr of "+cmd], r.stderr...)
	}

	secrets := map[string]secret.String{}
	if _, err := os.Stat(filepath.Join(w.dir, ".rotor", "state.db")); err == nil {
		for name := range w.creds {
			w.inspect(t, name) // learns every secret the store still holds
			w.envConn(t, name)
		}
		key, _, err := secret.LoadKey(func(string) string { return "" }, filepath.Join(w.dir, ".rotor", "key"), false)
		require.NoError(t, err)
		secrets["the encryption key"] = secret.New(string(key))
	}
	w.mu.Lock()
	for i, s := range w.known {
		secrets[fmt.Sprintf("password #%d the test saw", i+1)] = s
	}
	w.mu.Unlock()
	require.Greater(t, len(secrets), 1)

	scanned := 0
	places = slices.Sorted(maps.Keys(haystacks))
	for _, hay := range places {
		for _, name := range slices.Sorted(maps.Keys(secrets)) {
			forms := secret.Leaks(haystacks[hay], secrets[name])
			require.Empty(t, forms, "%s holds %s (%s)", hay, name, strings.Join(forms, ", "))
			scanned++
		}
	}
	var files []string
	for _, p := range places {
		if f, ok := strings.CutPrefix(p, "file "); ok {
			files = append(files, f)
		}
	}
	t.Logf("leak scan: %d secrets × %d places (%d scans), no hits; files: %s", len(secrets), len(haystacks), scanned, strings.Join(files, ", "))
	return places
}
