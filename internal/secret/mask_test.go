package secret

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestMaskAcrossTheKeystreamBoundary: values shorter than, as long as and
// longer than the precomputed keystream round-trip, never hold their
// plaintext, and mask the same way every time (== and map keys rely on
// it), including a long value's first maskKeystreamLen bytes, which must
// agree with a short value's.
func TestMaskAcrossTheKeystreamBoundary(t *testing.T) {
	t.Parallel()
	for _, n := range []int{1, 15, 16, 17, maskKeystreamLen - 1, maskKeystreamLen, maskKeystreamLen + 1, 3*maskKeystreamLen + 7} {
		plain := strings.Repeat("p@ssw0rd-", n/9+1)[:n]
		s := New(plain)
		require.Equal(t, plain, s.Reveal(), "length %d", n)
		require.NotEqual(t, plain, s.masked, "length %d", n)
		require.Equal(t, s, New(plain), "length %d", n)
		if n > maskKeystreamLen {
			short := New(plain[:maskKeystreamLen])
			require.Equal(t, short.masked, s.masked[:maskKeystreamLen], "length %d", n)
		}
	}
}

// BenchmarkNewReveal is one String made and read back, what every
// credential of a config pays several times over.
func BenchmarkNewReveal(b *testing.B) {
	b.ReportAllocs()
	plain := "postgresql://app:Zq3vT8pL2mNx7RcW9yKd4HsB@db.internal:5432/app?sslmode=require"
	for b.Loop() {
		if New(plain).Reveal() != plain {
			b.Fatal("round trip")
		}
	}
}
