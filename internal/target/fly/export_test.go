package fly

import (
	"time"

	"github.com/rotorhq/rotor/internal/target"
)

// SetTimings shortens the pause between health-check polls and the most
// one wait request may block, so tests do not spend seconds per step.
func SetTimings(tg target.Target, pollEvery, waitChunk time.Duration) {
	var t *Target
	switch v := tg.(type) {
	case *deployer:
		t = v.Target
	case *Target:
		t = v
	default:
		panic("not a fly target")
	}
	t.pollEvery, t.waitChunk = pollEvery, waitChunk
}
