package fly

import (
	"time"

	"github.com/rotorhq/rotor/internal/target"
)

// SetTimings shortens the pause between health-check polls and the most
// one wait request may block, so tests do not spend seconds per step.
func SetTimings(tg target.Target, pollEvery, waitChunk time.Duration) {
	t, ok := tg.(*Target)
	if !ok {
		panic("not a fly target")
	}
	t.pollEvery, t.waitChunk = pollEvery, waitChunk
}
