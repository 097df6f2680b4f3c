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
// Without the pgbouncer binary the test is skipped or fails, as SkipOrFail
// says; under ROTOR_TEST_DEPS=skip it is skipped before trying.
func StartTB(tb TB, opts Options) *Bouncer {
	tb.Helper()
	if depsRule(tb) == "skip" {
		tb.Skipf("skipping: needs PgBouncer, and ROTOR_TEST_DEPS=skip (make test-quick) runs only what needs nothing")
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
	if depsRule(tb) != "require" {
		tb.Skipf("skipping: %v", err)
		return
	}
	tb.Fatalf("start PgBouncer: %v (this run does not skip tests for a missing dependency; scripts/deps.sh installs it)", err)
}

// depsEnv says whether a test may skip for a missing dependency, read as
// pgtest reads it: the Makefile sets "require" under `make test` and
// "skip" under `make test-quick`; unset, $CI means "require", and
// otherwise a test skips only what is not installed.
const depsEnv = "ROTOR_TEST_DEPS"

func depsRule(tb TB) string {
	tb.Helper()
	switch v := os.Getenv(depsEnv); v {
	case "require", "skip":
		return v
	case "":
		if os.Getenv("CI") != "" {
			return "require"
		}
		return ""
	default:
		tb.Fatalf("%s=%q: want require, skip or unset", depsEnv, v)
		return ""
	}
}
