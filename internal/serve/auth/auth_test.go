package auth_test

import (
	"strings"
	"testing"

	"github.com/rotorhq/rotor/internal/serve/auth"
	"github.com/stretchr/testify/require"
)

const tokA = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
const tokB = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"

func TestParseAndAuthenticate(t *testing.T) {
	tk, err := auth.Parse("# comment\nci:rotate:" + tokA + "\n\nops:admin:" + tokB + ",viewer:read:" + strings.Repeat("c", 30))
	require.NoError(t, err)
	require.Equal(t, 3, tk.Len())
	id, ok := tk.Authenticate(tokA)
	require.True(t, ok)
	require.Equal(t, auth.Identity{Name: "ci", Scope: auth.ScopeRotate}, id)
	require.True(t, id.Allows(auth.ScopeRead))
	require.True(t, id.Allows(auth.ScopeRotate))
	require.False(t, id.Allows(auth.ScopeAdmin))
	_, ok = tk.Authenticate(tokA + "x")
	require.False(t, ok)
	_, ok = tk.Authenticate("")
	require.False(t, ok)
	var zero auth.Tokens
	_, ok = zero.Authenticate(tokA)
	require.False(t, ok)
}

func TestParseErrorsNeverEchoTheToken(t *testing.T) {
	for spec, want := range map[string]string{
		"ci:rotate":                             "not NAME:SCOPE:TOKEN",
		"CI:rotate:" + tokA:                     `name "CI"`,
		"ci:write:" + tokA:                      `scope "write" is not one of read, rotate, admin`,
		"ci:read:short-secret-value":            "shorter than 24 characters",
		"ci:read:" + tokA + ",ci:admin:" + tokB: `"ci": named twice`,
	} {
		_, err := auth.Parse(spec)
		require.ErrorContains(t, err, want, spec)
		require.NotContains(t, err.Error(), tokA)
		require.NotContains(t, err.Error(), "short-secret-value")
	}
}
