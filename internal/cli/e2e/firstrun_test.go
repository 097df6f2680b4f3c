//go:build unix

package e2e_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestFirstRunInReadmeOrder follows the README's quick start for a dual
// credential whose roles do not exist yet. validate before setup-roles
// notes the step to take instead of failing; a rotation tried before it
// stops with a message that says each thing once; after setup-roles
// validate checks the parity and the rotation (resumed) goes through.
func TestFirstRunInReadmeOrder(t *testing.T) {
	t.Parallel()
	w := newWorld(t, nil, credSpec{name: "app", strategy: "dual"})

	r := w.mustRotor(t, "validate", "--offline")
	require.Contains(t, r.stdout, "✓ config ")

	r = w.rotor(t, nil, "validate")
	require.Equal(t, exitOK, r.code, "validate before setup-roles is a note, not a failure:\n%s", w.scrub(r.output()))
	require.Contains(t, r.stdout, "✓ app: privilege parity of")
	require.Contains(t, r.stdout, "not checked yet: the roles do not all exist; run `rotor setup-roles app`, then validate again")
	require.Contains(t, r.stdout, "does not exist; create it (rotor setup-roles)")

	r = w.rotor(t, nil, "rotate", "app")
	require.Equal(t, exitError, r.code, "rotate before setup-roles:\n%s", w.scrub(r.output()))
	first, _, _ := strings.Cut(r.stderr, "\n")
	require.Contains(t, first, "rotor: app: rotation 1 stopped at prepare: list sessions of role ")
	require.Contains(t, first, "does not exist; create it (rotor setup-roles)")
	requireWrappedOnce(t, first)

	w.mustRotor(t, "setup-roles", "app")
	r = w.mustRotor(t, "validate")
	require.Contains(t, r.stdout, "✓ app: privilege parity of")
	require.NotContains(t, r.stdout, "not checked yet")
	r = w.mustRotor(t, "rotate", "app")
	require.Contains(t, r.stdout, "app: rotated (resumed rotation 1)", "the interrupted rotation is finished now that the roles exist")
	w.requireNoLeaks(t, nil)
}

// requireWrappedOnce fails when two parts of an error message (split at
// ": ") start alike — the same words, or the same name — as when each
// layer says what it was doing in the same words ("list sessions of
// app_blue: list sessions of role "app_blue": …").
func requireWrappedOnce(t *testing.T, msg string) {
	t.Helper()
	parts := strings.Split(msg, ": ")
	head := func(s string) string {
		words := strings.Fields(strings.NewReplacer(`"`, "", "'", "").Replace(s))
		return strings.Join(words[:min(3, len(words))], " ")
	}
	for i := range parts {
		for j := i + 1; j < len(parts); j++ {
			if h := head(parts[i]); h != "" && h == head(parts[j]) {
				require.Failf(t, "a prefix is repeated", "%q and %q in %q", parts[i], parts[j], msg)
			}
		}
	}
}
