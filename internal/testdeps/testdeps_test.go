package testdeps_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/rotorhq/rotor/internal/testdeps"
)

// recorder notes how the rule ended a test instead of ending it.
type recorder struct{ kind, msg string }

func (r *recorder) Helper() {}
func (r *recorder) Skipf(format string, args ...any) {
	r.kind, r.msg = "skip", fmt.Sprintf(format, args...)
}
func (r *recorder) Fatalf(format string, args ...any) {
	r.kind, r.msg = "fatal", fmt.Sprintf(format, args...)
}

func TestRule(t *testing.T) {
	for _, tc := range []struct{ deps, ci, want string }{
		{"", "", testdeps.Auto}, {"", "true", testdeps.Require},
		{"skip", "true", testdeps.Skip}, {"require", "", testdeps.Require},
	} {
		t.Setenv(testdeps.Env, tc.deps)
		t.Setenv("CI", tc.ci)
		r := &recorder{}
		require.Equal(t, tc.want, testdeps.Rule(r), "ROTOR_TEST_DEPS=%q CI=%q", tc.deps, tc.ci)
		require.Empty(t, r.kind)
	}
	t.Setenv(testdeps.Env, "yes")
	r := &recorder{}
	testdeps.Rule(r)
	require.Equal(t, "fatal", r.kind)
	require.Contains(t, r.msg, `ROTOR_TEST_DEPS="yes"`)
}

func TestMissing(t *testing.T) {
	err := errors.New("pgbouncer not on PATH")
	t.Setenv("CI", "")
	t.Setenv(testdeps.Env, "")
	r := &recorder{}
	testdeps.Missing(r, "start PgBouncer", err, "")
	require.Equal(t, "skip", r.kind)
	require.Contains(t, r.msg, err.Error())

	t.Setenv(testdeps.Env, "require")
	r = &recorder{}
	testdeps.Missing(r, "start PgBouncer", err, "apt-get install pgbouncer")
	require.Equal(t, "fatal", r.kind)
	require.Equal(t, "start PgBouncer: pgbouncer not on PATH (this run does not skip tests for a missing dependency; apt-get install pgbouncer)", r.msg)

	t.Setenv(testdeps.Env, "skip")
	r = &recorder{}
	require.True(t, testdeps.SkipUnderQuick(r, "PgBouncer"))
	require.Contains(t, r.msg, "make test-quick")
}
