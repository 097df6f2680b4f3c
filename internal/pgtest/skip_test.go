package pgtest_test

import (
	"errors"
	"fmt"
	"runtime"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/rotorhq/rotor/internal/pgcluster"
	"github.com/rotorhq/rotor/internal/pgtest"
)

// endings records how a test helper ended a test, stopping the goroutine
// the way testing does, so that nothing after Skip or Fatal runs.
type endings struct {
	testing.TB
	kind, msg string
}

func (e *endings) Helper()          {}
func (e *endings) Skip(args ...any) { e.end("skip", fmt.Sprint(args...)) }
func (e *endings) Skipf(format string, args ...any) {
	e.end("skip", fmt.Sprintf(format, args...))
}
func (e *endings) Fatalf(format string, args ...any) {
	e.end("fatal", fmt.Sprintf(format, args...))
}
func (e *endings) end(kind, msg string) { e.kind, e.msg = kind, msg; runtime.Goexit() }

func ending(fn func(testing.TB)) (kind, msg string) {
	e := &endings{}
	done := make(chan struct{})
	go func() { defer close(done); fn(e) }()
	<-done
	return e.kind, e.msg
}

// TestSkipOrFail pins who may skip for want of PostgreSQL: `make test`
// (ROTOR_TEST_DEPS=require) and CI never do, `make test-quick` and a bare
// `go test` do, and no setting hides an error other than missing binaries.
func TestSkipOrFail(t *testing.T) {
	missing := fmt.Errorf("looked on PATH: %w", pgcluster.ErrBinariesNotFound)
	broken := errors.New("initdb: exit status 1")
	tests := []struct {
		deps, ci string
		err      error
		want     string
		wantMsg  string
	}{
		{deps: "", ci: "", err: missing, want: "skip", wantMsg: missing.Error()},
		{deps: "", ci: "true", err: missing, want: "fatal", wantMsg: "scripts/deps.sh installs it"},
		{deps: "require", ci: "", err: missing, want: "fatal", wantMsg: "scripts/deps.sh installs it"},
		{deps: "skip", ci: "true", err: missing, want: "skip", wantMsg: missing.Error()},
		{deps: "", ci: "", err: broken, want: "fatal", wantMsg: broken.Error()},
		{deps: "skip", ci: "", err: broken, want: "fatal", wantMsg: broken.Error()},
		{deps: "yes", ci: "", err: missing, want: "fatal", wantMsg: `ROTOR_TEST_DEPS="yes": want require, skip or unset`},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("ROTOR_TEST_DEPS=%q CI=%q %v", tc.deps, tc.ci, tc.err), func(t *testing.T) {
			t.Setenv("ROTOR_TEST_DEPS", tc.deps)
			t.Setenv("CI", tc.ci)
			kind, msg := ending(func(tb testing.TB) { pgtest.SkipOrFail(tb, tc.err) })
			require.Equal(t, tc.want, kind, msg)
			require.Contains(t, msg, tc.wantMsg)
		})
	}
}

func TestSharedUnderTestQuickSkipsBeforeStarting(t *testing.T) {
	t.Setenv("ROTOR_TEST_DEPS", "skip")
	kind, msg := ending(func(tb testing.TB) { pgtest.Shared(tb) })
	require.Equal(t, "skip", kind)
	require.Contains(t, msg, "make test-quick")
}
