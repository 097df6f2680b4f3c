package connstr

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/rotorhq/rotor/internal/secret"
)

// The helpers below never print a password, not even a test fixture: a
// failure shows redacted forms, lengths and offsets only.

// requireConn compares two Conns, showing Redacted forms on failure.
func requireConn(t *testing.T, want, got *Conn) {
	t.Helper()
	require.NotNil(t, got)
	require.True(t, want.Password.Equal(got.Password),
		"password differs (want %d bytes, got %d bytes)", len(want.Password.Reveal()), len(got.Password.Reveal()))
	w, g := want.Clone(), got.Clone()
	w.Password, g.Password = secret.String{}, secret.String{}
	require.Equal(t, w.Redacted(), g.Redacted())
	require.Equal(t, w.Form, g.Form)
	require.Equal(t, w.Scheme, g.Scheme)
	require.Equal(t, w.User, g.User)
	require.Equal(t, w.Host, g.Host)
	require.Equal(t, w.Port, g.Port)
	require.Equal(t, w.Database, g.Database)
	require.Equal(t, len(w.Params), len(g.Params), "params: want %v, got %v", w.Params, g.Params)
	for i := range w.Params {
		require.Equal(t, w.Params[i], g.Params[i])
	}
	require.True(t, want.Equal(got))
}

// requireNoLeak fails when out contains pw, without printing either.
func requireNoLeak(t *testing.T, out, pw, what string) {
	t.Helper()
	if pw == "" {
		return
	}
	i := strings.Index(out, pw)
	require.True(t, i < 0, "%s leaks the password (%d bytes) at byte %d of %d", what, len(pw), i, len(out))
}

// requireSecret compares a secret with the expected plaintext; on failure
// it prints both with the password masked.
func requireSecret(t *testing.T, want string, got secret.String, pw string) {
	t.Helper()
	g := got.Reveal()
	if want == g {
		return
	}
	mask := func(s string) string {
		if pw == "" {
			return s
		}
		return strings.ReplaceAll(strings.ReplaceAll(s, escape(pw), "<pw>"), pw, "<pw>")
	}
	require.Equal(t, mask(want), mask(g))
	require.Fail(t, "values differ only inside the password")
}

// rotate changes every letter and digit of s to another of the same
// class (hex letters stay hex letters), keeping the length and every other
// byte. Parsing s and rotate(s) follows the same path, so output that
// contains s but not rotate(s) copied s from the input: a leak.
func rotate(s string) string {
	b := []byte(s)
	for i, ch := range b {
		switch {
		case '0' <= ch && ch <= '9':
			b[i] = '0' + (ch-'0'+1)%10
		case 'a' <= ch && ch <= 'f':
			b[i] = 'a' + (ch-'a'+1)%6
		case 'g' <= ch && ch <= 'z':
			b[i] = 'g' + (ch-'g'+1)%20
		case 'A' <= ch && ch <= 'F':
			b[i] = 'A' + (ch-'A'+1)%6
		case 'G' <= ch && ch <= 'Z':
			b[i] = 'G' + (ch-'G'+1)%20
		}
	}
	return string(b)
}

// requireNoLeakVsRotated checks output built from input holding pw against
// the output built from the same input holding rotate(pw) (see rotate).
// The marker becomes a byte the password lacks first, so that "REDACTED"
// followed by a leftover such as " 00" is not taken for the password "D 00".
func requireNoLeakVsRotated(t *testing.T, out, outRotated, pw, what string) {
	t.Helper()
	if len(pw) < 4 {
		return
	}
	var sentinel string
	for b := 0; b < 256; b++ {
		if strings.IndexByte(pw, byte(b)) < 0 {
			sentinel = string([]byte{byte(b)})
			break
		}
	}
	if sentinel != "" {
		out = strings.ReplaceAll(out, redactedMarker, sentinel)
		outRotated = strings.ReplaceAll(outRotated, redactedMarker, sentinel)
	}
	if strings.Contains(outRotated, pw) {
		return
	}
	requireNoLeak(t, out, pw, what)
}
