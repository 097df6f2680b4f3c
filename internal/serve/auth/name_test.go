package auth

import (
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestValidNameIsTheNamePattern: validName accepts exactly what the
// pattern it replaced accepts, at the edges of each rule.
func TestValidNameIsTheNamePattern(t *testing.T) {
	t.Parallel()
	re := regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]{0,62}$`)
	for _, name := range []string{"", "a", "0", "_a", ".a", "-a", "a_", "a.b-c_d", "A", "aB", "a b", "a:b", "é", "ci",
		strings.Repeat("a", 63), strings.Repeat("a", 64), "a" + strings.Repeat("-", 62), "a\n", "\x00"} {
		require.Equal(t, re.MatchString(name), validName(name), "%q", name)
	}
}
