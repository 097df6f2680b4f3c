package pgbouncertest

import (
	"context"
	"errors"
	"os"
	"time"
)

// TB is the part of testing.TB that StartTB needs; naming it here keeps
// the testing package out of this one.
type TB interface {
	Helper()
	Cleanup(func())
	Skipf(format string, args ...any)
	Fatalf(format string, args ...any)
	Errorf(format string, args ...any)
}

// StartTB starts a bouncer for one test and stops it when the test ends.
// Without the pgbouncer binary the test is skipped, or fails when $CI is
// set: CI must never silently skip these tests.
func StartTB(tb TB, opts Options) *Bouncer {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	b, err := Start(ctx, opts)
	if err != nil {
		SkipOrFail(tb, err)
		return nil
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := b.Stop(ctx); err != nil {
			tb.Errorf("stop PgBouncer: %v", err)
		}
	})
	return b
}

// SkipOrFail ends a test that cannot get a bouncer: a skip with the
// install hint when the binary is missing outside CI, a failure otherwise.
func SkipOrFail(tb TB, err error) {
	tb.Helper()
	if errors.Is(err, ErrBinaryNotFound) && os.Getenv("CI") == "" {
		tb.Skipf("skipping: %v", err)
		return
	}
	tb.Fatalf("start PgBouncer: %v", err)
}
