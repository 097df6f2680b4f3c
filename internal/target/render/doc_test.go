package render_test

import (
	"testing"

	"github.com/rotorhq/rotor/internal/target/render"
	"github.com/rotorhq/rotor/internal/target/targettest"
)

// TestDocExampleLoads keeps docs/targets/render.md honest: its example loads
// through the real config layer, and a literal token is refused.
func TestDocExampleLoads(t *testing.T) {
	t.Parallel()
	targettest.DocExample(t, "render.md", render.Type, render.New, "RENDER_API_KEY")
}
