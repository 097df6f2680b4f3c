package pgbouncertest_test

import (
	"errors"
	"fmt"
	"runtime"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/rotorhq/rotor/internal/pgbouncertest"
)

// endings records how a test helper ended a test, stopping the goroutine
// the way testing does, so that nothing after Skip or Fatal runs.
type endings struct{ kind, msg string }

func (e *endings) Helper()                           {}
func (e *endings) Cleanup(func())                    {}
func (e *endings) Errorf(format string, args ...any) { e.kind = "error" }
func (e *endings) Skipf(format string, args ...any) {
	e.kind, e.msg = "skip", fmt.Sprintf(format, args...)
	runtime.Goexit()
}
func (e *endings) Fatalf(format string, args ...any) {
	e.kind, e.msg = "fatal", fmt.Sprintf(format, args...)
	runtime.Goexit()
}

func ending(fn func(pgbouncertest.TB)) (kind, msg string) {
	e := &endings{}
	done := make(chan struct{})
	go func() { defer close(done); fn(e) }()
	<-done
	return e.kind, e.msg
}

// TestSkipOrFail pins who may skip for want of PgBouncer: `make test`
// (ROTOR_TEST_DEPS=require) and CI never do, `make test-quick` and a bare
// `go test` do, and no setting hides an error other than a missing binary.
func TestSkipOrFail(t *testing.T) {
	missing := pgbouncertest.ErrBinaryNotFound
	broken := errors.New("pgbouncer exited: bad config")
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
			kind, msg := ending(func(tb pgbouncertest.TB) { pgbouncertest.SkipOrFail(tb, tc.err) })
			require.Equal(t, tc.want, kind, msg)
			require.Contains(t, msg, tc.wantMsg)
		})
	}
}

func TestStartTBUnderTestQuickSkipsBeforeStarting(t *testing.T) {
	t.Setenv("ROTOR_TEST_DEPS", "skip")
	// Were the skip missing, StartTB would try to start a bouncer instead.
	kind, msg := ending(func(tb pgbouncertest.TB) {
		pgbouncertest.StartTB(tb, pgbouncertest.Options{ServerHost: "127.0.0.1", ServerPort: 1})
	})
	require.Equal(t, "skip", kind, msg)
	require.Contains(t, msg, "make test-quick")
}
