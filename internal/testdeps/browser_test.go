package testdeps_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/rotorhq/rotor/internal/testdeps"
)

func TestBrowser(t *testing.T) {
	t.Setenv("CI", "")
	empty := t.TempDir()
	t.Setenv("PATH", empty)

	t.Setenv(testdeps.Env, "")
	r := &recorder{}
	require.Empty(t, testdeps.Browser(r))
	require.Equal(t, "skip", r.kind)
	require.Contains(t, r.msg, "no Chromium on PATH")

	t.Setenv(testdeps.Env, "require")
	r = &recorder{}
	testdeps.Browser(r)
	require.Equal(t, "fatal", r.kind)
	require.Contains(t, r.msg, "chromium-browser")

	// The second name is found when the first is missing.
	bin := filepath.Join(empty, "chromium-browser")
	require.NoError(t, os.WriteFile(bin, []byte("#!/bin/sh\n"), 0o755))
	r = &recorder{}
	require.Equal(t, bin, testdeps.Browser(r))
	require.Empty(t, r.kind)

	t.Setenv(testdeps.Env, "skip")
	r = &recorder{}
	require.Empty(t, testdeps.Browser(r))
	require.Equal(t, "skip", r.kind)
}
