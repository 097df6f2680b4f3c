// Package testdeps is the one rule for what a test does when something it
// needs is not installed (PostgreSQL, PgBouncer, Node.js): skip, or fail.
// `make test` and CI must not pass by skipping — a green run that skipped
// the database tests proves nothing — while `make test-quick` runs only
// what needs nothing.
//
// The Makefile sets ROTOR_TEST_DEPS: "require" under `make test`, "skip"
// under `make test-quick`. Unset, $CI means "require"; otherwise a test
// skips only what is not installed.
package testdeps

import "os"

// Env is the variable the rule is read from.
const Env = "ROTOR_TEST_DEPS"

// The rules.
const (
	Require = "require"
	Skip    = "skip"
	// Auto: skip what is missing, run what is there (a bare `go test`).
	Auto = ""
)

// TB is the part of testing.TB the rule needs; naming it here keeps the
// testing package out of the production helpers that use it.
type TB interface {
	Helper()
	Skipf(format string, args ...any)
	Fatalf(format string, args ...any)
}

// Rule returns the rule in force; an unknown value fails the test.
func Rule(tb TB) string {
	tb.Helper()
	switch v := os.Getenv(Env); v {
	case Require, Skip:
		return v
	case "":
		if os.Getenv("CI") != "" {
			return Require
		}
		return Auto
	default:
		tb.Fatalf("%s=%q: want require, skip or unset", Env, v)
		return Auto
	}
}

// SkipUnderQuick skips a test that needs what (e.g. "PostgreSQL") before
// it looks for it, under `make test-quick`. It reports whether it skipped,
// for callers whose TB does not stop the goroutine.
func SkipUnderQuick(tb TB, what string) bool {
	tb.Helper()
	if Rule(tb) != Skip {
		return false
	}
	tb.Skipf("skipping: needs %s, and %s=skip (make test-quick) runs only what needs nothing", what, Env)
	return true
}

// Missing ends a test whose dependency is not installed (err says what is
// missing and where it was looked for): a skip where skipping is allowed,
// a failure otherwise. action, when not empty, is what the test was doing
// ("start PgBouncer"); hint what installs the dependency, by default
// scripts/deps.sh.
func Missing(tb TB, action string, err error, hint string) {
	tb.Helper()
	if hint == "" {
		hint = "scripts/deps.sh installs it"
	}
	if Rule(tb) != Require {
		tb.Skipf("skipping: %v; %s", err, hint)
		return
	}
	if action != "" {
		action += ": "
	}
	tb.Fatalf("%s%v (this run does not skip tests for a missing dependency; %s)", action, err, hint)
}
