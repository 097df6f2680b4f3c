package fly_test

import (
	"testing"

	"github.com/rotorhq/rotor/internal/target/fly"
	"github.com/rotorhq/rotor/internal/target/targettest"
)

// TestDocExampleLoads keeps docs/targets/fly.md honest: its example loads
// through the real config layer, and a literal token is refused.
func TestDocExampleLoads(t *testing.T) {
	t.Parallel()
	targettest.DocExample(t, "fly.md", fly.Type, fly.New, "FLY_API_TOKEN")
}
