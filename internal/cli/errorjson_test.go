package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestErrorsAsJSON: with --json a failure is a JSON document on stdout
// too — the message, the exit code and what it means — as well as the
// text on stderr; a command that printed its own document first (validate,
// with its failed checks in it) prints no second one.
func TestErrorsAsJSON(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "rotor.yaml")
	require.NoError(t, os.WriteFile(path, []byte(strings.Replace(StarterConfig("app-db", "dual"), "every: 30d", "every: 30x", 1)), 0o600))
	tests := []struct {
		args    []string
		code    int
		message string
	}{
		{[]string{"--json", "rotate"}, ExitUsage, "name the credential(s) to rotate"},
		{[]string{"rotate", "--due", "--all", "--json"}, ExitUsage, "--due and --all cannot be combined"},
		{[]string{"--json", "validate", "--offline", "--config", path}, ExitUsage, `credentials.app-db.schedule.every: bad duration "30x"`},
		{[]string{"--json", "status", "--config", filepath.Join(dir, "missing.yaml")}, ExitError, "not found; create one with `rotor init`"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			t.Parallel()
			code, out, errOut := run(t, testEnv{}, "", tt.args...)
			require.Equal(t, tt.code, code)
			require.Contains(t, errOut, tt.message, "the text still goes to stderr")
			require.True(t, strings.HasPrefix(errOut, "rotor: "))
			var got ErrorOutput
			dec := json.NewDecoder(strings.NewReader(out))
			dec.DisallowUnknownFields()
			require.NoError(t, dec.Decode(&got), out)
			require.False(t, dec.More(), "one document")
			require.Contains(t, got.Error, tt.message)
			require.Equal(t, tt.code, got.ExitCode)
			require.Equal(t, ExitMeaning(tt.code), got.Meaning)
			require.NotEqual(t, "unknown exit code", got.Meaning)
		})
	}

	t.Run("a document of its own", func(t *testing.T) {
		t.Parallel()
		// validate prints its checks, the failed one among them, and
		// exits 1: no error document follows.
		good := filepath.Join(t.TempDir(), "rotor.yaml")
		require.NoError(t, os.WriteFile(good, []byte(StarterConfig("app-db", "dual")), 0o600))
		code, out, errOut := run(t, testEnv{"ROTOR_ADMIN_URL": "postgresql://admin@127.0.0.1:1/postgres?connect_timeout=1"}, "", "--json", "validate", "--config", good)
		require.Equal(t, ExitError, code, errOut)
		var checks []Check
		require.NoError(t, json.Unmarshal([]byte(out), &checks), out)
		require.NotEmpty(t, checks)
		require.Contains(t, errOut, "check(s) failed")
	})
}
