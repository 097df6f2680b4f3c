package neonfake

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/rotorhq/rotor/internal/secret"
)

func TestEntropyBits(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		pw     string
		strong bool
	}{
		{"password1", false},
		{"T3sting!23Ab", true},              // Neon's own example of about 60 bits
		{"aaaaaaaaaaaaaaaaaaaaaaaa", false}, // runs count twice at most
		{"abcdefghijklmnopqrstuvwx", false}, // so do sequences
		{"0123456789012345678901234567", false},
		{"npg_Ab3dE5gH7jK9", true}, // the shape of Neon's generated passwords
		{"correct horse battery staple", true},
		{"", false},
	} {
		got := entropyBits(tt.pw)
		require.Equal(t, tt.strong, got >= minEntropyBits, "%q: %.1f bits", tt.pw, got)
	}
	// The estimate is exact where it is simple: 12 lower-case letters
	// with no run or sequence are 12 × log2(26) bits.
	require.InDelta(t, 12*4.7004, entropyBits("qzmxnwbecvrt"), 0.01)
}

func TestIsHashedPassword(t *testing.T) {
	t.Parallel()
	v, err := secret.SCRAMVerifier(nil, secret.New("Whatever-it-is-42"))
	require.NoError(t, err)
	require.True(t, isHashedPassword(v.Reveal()))
	require.True(t, isHashedPassword("md5"+strings.Repeat("0a", 16)))
	require.False(t, isHashedPassword("md5"+strings.Repeat("0A", 16)), "PostgreSQL takes only lower-case hex for an md5 hash")
	require.False(t, isHashedPassword("md5-is-not-a-hash-of-anything"))
	require.False(t, isHashedPassword("Plain-text-password-1"))
}

func TestRewriteRolePasswords(t *testing.T) {
	t.Parallel()
	scram, err := secret.SCRAMVerifier(nil, secret.New("Whatever-it-is-42"))
	require.NoError(t, err)
	strong := "Kq7#vLp2!xWz9@Rt"
	for _, tt := range []struct {
		name, sql string
		refused   []string // substrings of the refusals, in order
		kept      []string // what must survive the rewrite
	}{
		{"scram verifier", "ALTER ROLE app PASSWORD '" + scram.Reveal() + "'", []string{"hashed passwords are not supported"}, nil},
		{"md5 hash, USER, WITH ENCRYPTED", `alter user "App" with encrypted password 'md5` + strings.Repeat("ab", 16) + `'`, []string{`role "App": hashed`}, nil},
		{"create role, escape string", `CREATE ROLE app LOGIN PASSWORD E'SCRAM-SHA-256\x24x'`, []string{"hashed"}, nil},
		{"dollar quoted", "CREATE GROUP g PASSWORD $p$" + scram.Reveal() + "$p$", []string{"hashed"}, nil},
		{"weak", "ALTER ROLE app PASSWORD 'password1'", []string{"too weak", "at least 60"}, nil},
		{"strong passes", "ALTER ROLE app PASSWORD '" + strong + "'", nil, []string{strong}},
		{"password null passes", "ALTER ROLE app PASSWORD NULL", nil, []string{"NULL"}},
		{"not a password", "ALTER ROLE app SET search_path = 'password', public", nil, []string{"search_path"}},
		{"user mapping", "CREATE USER MAPPING FOR app SERVER s OPTIONS (user 'x', password 'weak')", nil, []string{"MAPPING"}},
		{"a literal in a query", "SELECT 'ALTER ROLE app PASSWORD ''x'''", nil, []string{"SELECT"}},
		{"comment", "/* ALTER ROLE app PASSWORD 'x' */ SELECT 1 -- ALTER ROLE app PASSWORD 'x'", nil, []string{"SELECT 1"}},
		{"only the offending statement", "SELECT 1; ALTER ROLE app PASSWORD 'weak'; SELECT 2", []string{"too weak"}, []string{"SELECT 1; ", "; SELECT 2"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			out, changed := rewrite(tt.sql, rolePasswordRule)
			require.Equal(t, len(tt.refused) > 0, changed, out)
			for _, want := range tt.refused {
				require.Contains(t, out, want)
				require.Contains(t, out, "Received HTTP code 400 from control plane")
				require.Contains(t, out, "ERRCODE = 'XX000'")
			}
			for _, want := range tt.kept {
				require.Contains(t, out, want)
			}
			if changed {
				require.NotContains(t, out, scram.Reveal(), "the password never reaches the server")
				require.NotContains(t, out, "weak'")
			}
		})
	}
}

func TestReadOnlyRule(t *testing.T) {
	t.Parallel()
	for sql, refused := range map[string]bool{
		"BEGIN READ WRITE": true,
		"start transaction isolation level serializable, read write": true,
		"SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE":      true,
		"SET default_transaction_read_only = off":                    true,
		"set local transaction_read_only to false":                   true,
		"SET default_transaction_read_only = on":                     false,
		"RESET default_transaction_read_only":                        false,
		"SHOW transaction_read_only":                                 false,
		"SELECT 'read write'":                                        false,
		"BEGIN READ ONLY":                                            false,
	} {
		_, changed := rewrite(sql, readOnlyRule)
		require.Equal(t, refused, changed, sql)
	}
}
