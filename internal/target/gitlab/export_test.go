package gitlab

import (
	"context"
	"time"

	"github.com/rotorhq/rotor/internal/target"
)

// SetSleep replaces the wait between polls of a pipeline, so tests can
// see the waits Reload chose without spending them.
func SetSleep(tg target.Target, sleep func(ctx context.Context, d time.Duration) error) {
	tg.(*Target).sleep = sleep
}
