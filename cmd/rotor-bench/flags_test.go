package main

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// TestParseFlags: -neon selects the Neon ways with the rotations asked
// for, and the default bench still reads its ways.
func TestParseFlags(t *testing.T) {
	o, err := parseFlags([]string{"-neon", "-rotations", "7"})
	require.NoError(t, err)
	require.True(t, o.neon)
	require.Equal(t, 7, o.rotations)

	o, err = parseFlags(nil)
	require.NoError(t, err)
	require.False(t, o.neon, "the default bench is not the Neon one")
	require.Equal(t, 20, o.rotations)
	require.Equal(t, map[string]bool{"manual": true, "single": true, "dual": true}, o.ways)
	require.True(t, o.direct)
	require.True(t, o.bouncer)

	o, err = parseFlags([]string{"-ways", "dual"})
	require.NoError(t, err)
	require.Equal(t, map[string]bool{"dual": true}, o.ways)

	_, err = parseFlags([]string{"-neon", "-rotations", "0"})
	require.ErrorContains(t, err, "at least one rotation")
	_, err = parseFlags([]string{"-ways", "manual,bogus"})
	require.ErrorContains(t, err, `unknown way "bogus"`)
	_, err = parseFlags([]string{"-neon", "extra"})
	require.ErrorContains(t, err, `unexpected argument "extra"`)
}
