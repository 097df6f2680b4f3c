package secret

import (
	"bytes"
	"errors"
	"io"
	"math"
	"math/big"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func seeded(seed byte) io.Reader {
	var s [32]byte
	s[0] = seed
	return rand.NewChaCha8(s)
}

func TestDefaultPolicy(t *testing.T) {
	t.Parallel()
	p := DefaultPolicy()
	require.NoError(t, p.Validate())
	require.Equal(t, 32, p.Length)
	require.Equal(t, lowerChars+upperChars+digitChars, p.Alphabet())
	// 32·log2(62) ≈ 190.5; requiring every class costs a small fraction of a bit.
	require.InDelta(t, 32*math.Log2(62), p.EntropyBits(), 0.01)
	require.Less(t, p.EntropyBits(), 32*math.Log2(62))
}

func TestPolicyAlphabet(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		policy Policy
		want   string
	}{
		{"none", Policy{}, ""},
		{"lower", Policy{Lower: true}, lowerChars},
		{"digits and upper keep a fixed order", Policy{Digits: true, Upper: true}, upperChars + digitChars},
		{"default symbols", Policy{Symbols: true}, "-_.~"},
		{"custom symbols", Policy{Lower: true, Symbols: true, SymbolSet: "!@"}, lowerChars + "!@"},
		{"symbol set without symbols", Policy{Digits: true, SymbolSet: "!@"}, digitChars},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tt.want, tt.policy.Alphabet())
		})
	}
}

// TestPolicyEntropyBits checks the inclusion–exclusion formula against an
// exact count by dynamic programming: the number of strings of each length
// that use exactly a given set of classes.
func TestPolicyEntropyBits(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		policy Policy
	}{
		{"one class", Policy{Length: 4, Digits: true}},
		{"two classes", Policy{Length: 4, Digits: true, Symbols: true, SymbolSet: "-_"}},
		{"three classes", Policy{Length: 7, Digits: true, Symbols: true, SymbolSet: "!", Upper: true}},
		{"four classes", Policy{Length: 9, Lower: true, Upper: true, Digits: true, Symbols: true, SymbolSet: "~"}},
		{"default", DefaultPolicy()},
		{"all classes, minimum length", Policy{Length: 16, Lower: true, Upper: true, Digits: true, Symbols: true}},
		{"length equals classes", Policy{Length: 2, Digits: true, Symbols: true, SymbolSet: "~"}},
		{"length below classes", Policy{Length: 2, Lower: true, Digits: true, Symbols: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			classes := tt.policy.classes()
			all := 1<<len(classes) - 1
			// count[set] = strings so far that use exactly the classes in set
			count := make([]*big.Int, all+1)
			for set := range count {
				count[set] = new(big.Int)
			}
			count[0].SetInt64(1)
			for range tt.policy.length() {
				next := make([]*big.Int, all+1)
				for set := range next {
					next[set] = new(big.Int)
				}
				for set, n := range count {
					for c, chars := range classes {
						grown := new(big.Int).Mul(n, big.NewInt(int64(len(chars))))
						next[set|1<<c].Add(next[set|1<<c], grown)
					}
				}
				count = next
			}
			valid := count[all]
			want := 0.0
			if valid.Sign() > 0 {
				f, _ := new(big.Float).SetInt(valid).Float64()
				want = math.Log2(f)
			}
			require.InDelta(t, want, tt.policy.EntropyBits(), 1e-9)
		})
	}
}

func TestPolicyValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		policy  Policy
		wantErr string // empty: valid
	}{
		{"default", DefaultPolicy(), ""},
		{"zero length means default", Policy{Lower: true, Upper: true, Digits: true}, ""},
		{"all classes", Policy{Length: 24, Lower: true, Upper: true, Digits: true, Symbols: true}, ""},
		{"lower only, long enough", Policy{Length: 28, Lower: true}, ""},
		{"digits only, long enough", Policy{Length: 39, Digits: true}, ""},
		{"custom symbols", Policy{Length: 21, Lower: true, Upper: true, Digits: true, Symbols: true, SymbolSet: "!#%*+,/:=@^"}, ""},
		{"bad symbol set ignored without symbols", Policy{Length: 32, Lower: true, Upper: true, SymbolSet: "aa"}, ""},
		{"maximum length", Policy{Length: MaxLength, Digits: true}, ""},
		{"negative length", Policy{Length: -1, Lower: true}, "Length is -1; set it to at least 16"},
		{"too short", Policy{Length: 15, Lower: true, Upper: true, Digits: true, Symbols: true}, "Length 15 is below the minimum 16; raise Length"},
		{"too long", Policy{Length: MaxLength + 1, Lower: true}, "above the maximum 1024; lower Length"},
		{"no classes", Policy{Length: 32}, "enable at least one of Lower, Upper, Digits, Symbols"},
		{"digits only, too short", Policy{Length: 32, Digits: true}, "106 bits, below the required 128; raise Length to at least 39"},
		{"lower only, too short", Policy{Length: 27, Lower: true}, "raise Length to at least 28"},
		{"minimum length, all classes", Policy{Length: 16, Lower: true, Upper: true, Digits: true}, "raise Length to at least 22"},
		{"symbol set has a letter", Policy{Lower: true, Symbols: true, SymbolSet: "-a"}, `SymbolSet has the letter or digit 'a'`},
		{"symbol set has a digit", Policy{Lower: true, Symbols: true, SymbolSet: "7"}, `SymbolSet has the letter or digit '7'`},
		{"symbol set repeats", Policy{Lower: true, Symbols: true, SymbolSet: "-_-"}, `SymbolSet has '-' twice`},
		{"symbol set has a space", Policy{Lower: true, Symbols: true, SymbolSet: "- "}, "SymbolSet has a space, control or non-ASCII character"},
		{"symbol set has a tab", Policy{Lower: true, Symbols: true, SymbolSet: "\t"}, "SymbolSet has a space, control or non-ASCII character"},
		{"symbol set non-ascii", Policy{Lower: true, Symbols: true, SymbolSet: "§"}, "SymbolSet has a space, control or non-ASCII character"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := tt.policy.Validate()
			if tt.wantErr == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tt.wantErr)
			require.True(t, strings.HasPrefix(err.Error(), "password policy: "), err.Error())
		})
	}
}

func TestGenerate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		policy Policy
		draws  int
	}{
		{"default", DefaultPolicy(), 200},
		{"zero length means 32", Policy{Lower: true, Upper: true, Digits: true}, 200},
		{"all classes, short", Policy{Length: 22, Lower: true, Upper: true, Digits: true, Symbols: true}, 200},
		{"single-symbol set", Policy{Length: 24, Lower: true, Upper: true, Digits: true, Symbols: true, SymbolSet: "_"}, 200},
		{"symbols and digits", Policy{Length: 40, Digits: true, Symbols: true}, 200},
		{"lower only", Policy{Length: 28, Lower: true}, 200},
		{"long", Policy{Length: MaxLength, Upper: true, Digits: true}, 10},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := seeded(byte(i))
			alphabet, classes := tt.policy.Alphabet(), tt.policy.classes()
			seen := make(map[string]bool)
			for range tt.draws {
				s, err := Generate(r, tt.policy)
				require.NoError(t, err)
				pw := s.Reveal()
				require.Len(t, pw, tt.policy.length())
				outside := strings.IndexFunc(pw, func(r rune) bool { return !strings.ContainsRune(alphabet, r) })
				require.Equal(t, -1, outside, "character outside the alphabet")
				for _, class := range classes {
					require.True(t, strings.ContainsAny(pw, class), "class %q missing", class)
				}
				require.False(t, seen[pw], "repeated password")
				seen[pw] = true
			}
		})
	}
}

func TestGenerateDeterministic(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		a, b     io.Reader
		wantSame bool
	}{
		{"same seed", seeded(7), seeded(7), true},
		{"different seeds", seeded(7), seeded(8), false},
		{"crypto/rand", nil, nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			a, err := Generate(tt.a, DefaultPolicy())
			require.NoError(t, err)
			b, err := Generate(tt.b, DefaultPolicy())
			require.NoError(t, err)
			require.Equal(t, tt.wantSame, a.Equal(b))
		})
	}
}

// TestGenerateDistribution is a chi-square test of character frequencies
// within each class. (Across classes they are not uniform, and should not
// be: redrawing until every class appears makes the small classes a little
// likelier.) The bound is six standard deviations above the mean of the
// statistic; modulo bias, which makes some characters 25% likelier, pushes
// it into the thousands.
func TestGenerateDistribution(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		policy Policy
		seed   byte
	}{
		{"default", DefaultPolicy(), 1},
		{"with symbols", Policy{Length: 32, Lower: true, Upper: true, Digits: true, Symbols: true}, 2},
		{"short, custom symbols", Policy{Length: 21, Lower: true, Upper: true, Digits: true, Symbols: true, SymbolSet: "!#%*+,/:=@^"}, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := seeded(tt.seed)
			counts := make(map[byte]int)
			const passwords = 3000
			for range passwords {
				s, err := Generate(r, tt.policy)
				require.NoError(t, err)
				for _, c := range []byte(s.Reveal()) {
					counts[c]++
				}
			}
			chi2, dof := 0.0, 0
			for _, class := range tt.policy.classes() {
				total := 0
				for _, c := range []byte(class) {
					total += counts[c]
				}
				expected := float64(total) / float64(len(class))
				for _, c := range []byte(class) {
					d := float64(counts[c]) - expected
					chi2 += d * d / expected
				}
				dof += len(class) - 1
			}
			require.Less(t, chi2, float64(dof)+6*math.Sqrt(2*float64(dof)))
		})
	}
}

// cycleReader yields 0, 1, …, 255, 0, 1, … forever: every byte value
// equally often, so any bias in turning bytes into characters shows exactly.
type cycleReader struct{ next byte }

func (c *cycleReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = c.next
		c.next++
	}
	return len(p), nil
}

func TestGenerateNoModuloBias(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		policy Policy
	}{
		// 256 = 9·26 + 22: modulo alone would make a…v 10/9 as likely.
		{"lower", Policy{Length: 4 * 234, Lower: true}},
		// 256 = 4·62 + 8.
		{"default classes", Policy{Length: 4 * 248, Lower: true, Upper: true, Digits: true}},
		// 256 = 4·64: nothing to reject.
		{"power of two", Policy{Length: 4 * 256, Lower: true, Upper: true, Digits: true, Symbols: true, SymbolSet: "-_"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			alphabet := tt.policy.Alphabet()
			// Uniform sampling uses exactly four cycles of the reader and
			// draws every character equally often; a biased one does not.
			s, err := Generate(&cycleReader{}, tt.policy)
			require.NoError(t, err)
			per := tt.policy.Length / len(alphabet)
			for _, c := range []byte(alphabet) {
				require.Equal(t, per, strings.Count(s.Reveal(), string(c)), "character %q", c)
			}
		})
	}
}

func TestGenerateRedrawsWhole(t *testing.T) {
	t.Parallel()
	p := Policy{Length: 23, Lower: true, Upper: true} // alphabet a…zA…Z, bytes ≥ 208 rejected
	tests := []struct {
		name  string
		input []byte
		want  string
	}{
		{
			"first draw lacks upper",
			append(make([]byte, 23), append([]byte{26}, make([]byte, 22)...)...),
			"A" + strings.Repeat("a", 22),
		},
		{
			"rejected bytes are skipped, not wrapped",
			append([]byte{208, 255, 27}, bytes.Repeat([]byte{1}, 22)...),
			"B" + strings.Repeat("b", 22),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, err := Generate(bytes.NewReader(tt.input), p)
			require.NoError(t, err)
			require.Equal(t, tt.want, s.Reveal())
		})
	}
}

type failingReader struct{ err error }

func (f failingReader) Read([]byte) (int, error) { return 0, f.err }

func TestGenerateErrors(t *testing.T) {
	t.Parallel()
	errBoom := errors.New("entropy pool on fire")
	tests := []struct {
		name    string
		reader  io.Reader
		policy  Policy
		wantIs  error
		wantErr string
	}{
		{"invalid policy", nil, Policy{Length: 8, Lower: true}, nil, "password policy: Length 8"},
		{"reader fails", failingReader{errBoom}, DefaultPolicy(), errBoom, "generate password: read random bytes"},
		{"reader runs dry", bytes.NewReader(make([]byte, 10)), DefaultPolicy(), io.ErrUnexpectedEOF, "read random bytes"},
		{"reader is constant", bytes.NewReader(make([]byte, 1<<20)), DefaultPolicy(), nil, "the random source is broken or not random"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, err := Generate(tt.reader, tt.policy)
			require.ErrorContains(t, err, tt.wantErr)
			if tt.wantIs != nil {
				require.ErrorIs(t, err, tt.wantIs)
			}
			require.True(t, s.IsZero())
		})
	}
}

func BenchmarkGenerate(b *testing.B) {
	p := DefaultPolicy()
	for b.Loop() {
		if _, err := Generate(nil, p); err != nil {
			b.Fatal(err)
		}
	}
}
