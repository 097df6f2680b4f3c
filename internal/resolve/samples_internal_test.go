package resolve

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/rotorhq/rotor/internal/secret"
)

// TestSamplePasswordsPerPolicy: the credentials of one load share their
// policy's sample passwords, and a credential with another policy gets
// samples of its own: framed by each class of its alphabet, drawn from it.
func TestSamplePasswordsPerPolicy(t *testing.T) {
	t.Parallel()
	sp := samplePasswords{}
	def := secret.DefaultPolicy()
	first := sp.of(def)
	require.Len(t, first, 4, "the password, then framed by a lower, an upper and a digit")
	again := sp.of(def)
	require.Equal(t, first[0].Reveal(), again[0].Reveal(), "a second credential with the policy shares its samples")

	sym := def
	sym.Symbols = true
	withSymbols := sp.of(sym)
	require.Len(t, withSymbols, 1+3+len(secret.DefaultSymbolSet), "each symbol frames a sample of its own")
	pw := withSymbols[0].Reveal()
	require.NotEqual(t, first[0].Reveal(), pw, "another policy generates its own")
	for i, c := range "aA0" + secret.DefaultSymbolSet {
		framed := withSymbols[1+i].Reveal()
		require.Equal(t, string(c)+pw+string(c), framed)
	}
	for _, c := range pw {
		require.True(t, strings.ContainsRune(sym.Alphabet(), c), "%q is not in the policy's alphabet", c)
	}

	bad := secret.Policy{Length: 2, Lower: true, Upper: true, Digits: true}
	require.Empty(t, sp.of(bad), "a policy that cannot generate has no samples; its problem is reported elsewhere")
	require.Len(t, sp, 3)
}
