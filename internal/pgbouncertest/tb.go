package pgbouncertest

import (
	"context"
	"errors"
	"time"

	"github.com/rotorhq/rotor/internal/testdeps"
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
// Without the pgbouncer binary the test is skipped or fails, as SkipOrFail
// says; under ROTOR_TEST_DEPS=skip it is skipped before trying.
func StartTB(tb TB, opts Options) *Bouncer {
	tb.Helper()
	if testdeps.SkipUnderQuick(tb, "PgBouncer") {
		return nil
	}
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
// install hint when the binary is missing and skipping is allowed, a
// failure otherwise. `make test` and CI do not allow it: a green run that
// skipped these tests would prove nothing.
func SkipOrFail(tb TB, err error) {
	tb.Helper()
	if !errors.Is(err, ErrBinaryNotFound) {
		tb.Fatalf("start PgBouncer: %v", err)
		return
	}
	testdeps.Missing(tb, "start PgBouncer", err, "")
}
