package vercel_test

import (
	"testing"

	"github.com/rotorhq/rotor/internal/target/targettest"
	"github.com/rotorhq/rotor/internal/target/vercel"
)

// TestDocExampleLoads keeps docs/targets/vercel.md honest: its example loads
// through the real config layer, and a literal token is refused.
func TestDocExampleLoads(t *testing.T) {
	t.Parallel()
	targettest.DocExample(t, "vercel.md", vercel.Type, vercel.New, "VERCEL_TOKEN")
}
