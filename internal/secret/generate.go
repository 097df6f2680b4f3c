package secret

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"
)

// DefaultSymbolSet is RFC 3986's unreserved punctuation. A password made of
// unreserved characters is never percent-encoded in a connection URL, so it
// reads the same in DATABASE_URL as in PGPASSWORD, and none of these needs
// quoting in a dotenv file, YAML, JSON or a keyword DSN (unlike $ " ' # \ !
// and space). One caveat: a POSIX shell that sources an unquoted
// PGPASSWORD=~… expands the leading tilde; quote values in shell files.
const DefaultSymbolSet = "-_.~"

// Bounds that Policy.Validate enforces.
const (
	DefaultLength = 32
	MinLength     = 16
	// MaxLength only guards against a typo allocating gigabytes; nothing in
	// PostgreSQL needs passwords this long.
	MaxLength = 1024
	// MinEntropyBits is well above Neon's 60-bit floor: the password guards
	// a database reachable from the internet, and 128 bits puts offline
	// guessing against a leaked verifier out of reach.
	MinEntropyBits = 128
)

const (
	lowerChars = "abcdefghijklmnopqrstuvwxyz"
	upperChars = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	digitChars = "0123456789"
)

// generateAttempts bounds the redraws that guarantee every class appears.
// The worst valid policy (a one-character SymbolSet among 63 characters, at
// the 22 that 128 bits need) misses in about 70% of draws, and 0.7^1000 is
// never: running out means the reader is not random.
const generateAttempts = 1000

// Policy says how passwords are generated. The zero Length and the empty
// SymbolSet mean their defaults; the classes have none, so enable at least
// one (or start from DefaultPolicy).
type Policy struct {
	Length int // default DefaultLength

	// Which character classes to draw from; each enabled class appears at
	// least once in every password.
	Lower, Upper, Digits, Symbols bool

	// SymbolSet is the Symbols class, used only when Symbols is true:
	// distinct printable ASCII punctuation. Default DefaultSymbolSet.
	SymbolSet string
}

// DefaultPolicy is 32 characters of lower, upper and digits: about 190 bits,
// and safe unquoted and unescaped in every place a password lands.
func DefaultPolicy() Policy {
	return Policy{Length: DefaultLength, Lower: true, Upper: true, Digits: true}
}

func (p Policy) length() int {
	if p.Length == 0 {
		return DefaultLength
	}
	return p.Length
}

func (p Policy) symbolSet() string {
	if p.SymbolSet == "" {
		return DefaultSymbolSet
	}
	return p.SymbolSet
}

// classes lists the enabled classes in a fixed order, so that the same
// reader bytes always give the same password.
func (p Policy) classes() []string {
	var cs []string
	if p.Lower {
		cs = append(cs, lowerChars)
	}
	if p.Upper {
		cs = append(cs, upperChars)
	}
	if p.Digits {
		cs = append(cs, digitChars)
	}
	if p.Symbols {
		cs = append(cs, p.symbolSet())
	}
	return cs
}

// Alphabet is every character a password can contain.
func (p Policy) Alphabet() string { return strings.Join(p.classes(), "") }

// EntropyBits is log2 of the number of passwords the policy can produce:
// length × log2(alphabet), less the small share of strings that lack an
// enabled class (counted exactly by inclusion–exclusion), since Generate
// never returns those. Zero when the policy can produce nothing.
func (p Policy) EntropyBits() float64 {
	cs := p.classes()
	n, l := len(p.Alphabet()), p.length()
	if n == 0 || l < len(cs) {
		return 0
	}
	// valid share = Σ over sets S of classes left out: (-1)^|S| ((n-|S chars|)/n)^l
	share := 0.0
	for set := 0; set < 1<<len(cs); set++ {
		left, sign := 0, 1.0
		for i, c := range cs {
			if set&(1<<i) != 0 {
				left += len(c)
				sign = -sign
			}
		}
		share += sign * math.Pow(float64(n-left)/float64(n), float64(l))
	}
	if share <= 0 {
		return 0
	}
	return max(0, float64(l)*math.Log2(float64(n))+math.Log2(share))
}

// Validate reports the first problem with p, naming the field to change.
func (p Policy) Validate() error {
	l := p.length()
	switch {
	case l < 0:
		return fmt.Errorf("password policy: Length is %d; set it to at least %d, or 0 for the default %d", l, MinLength, DefaultLength)
	case l < MinLength:
		return fmt.Errorf("password policy: Length %d is below the minimum %d; raise Length", l, MinLength)
	case l > MaxLength:
		return fmt.Errorf("password policy: Length %d is above the maximum %d; lower Length", l, MaxLength)
	case !p.Lower && !p.Upper && !p.Digits && !p.Symbols:
		return errors.New("password policy: no character class is enabled; enable at least one of Lower, Upper, Digits, Symbols")
	}
	if p.Symbols {
		if err := validateSymbolSet(p.symbolSet()); err != nil {
			return err
		}
	}
	if bits := p.EntropyBits(); bits < MinEntropyBits {
		return fmt.Errorf("password policy: %d characters from an alphabet of %d give %.0f bits, below the required %d; %s",
			l, len(p.Alphabet()), bits, MinEntropyBits, p.entropyFix())
	}
	return nil
}

func (p Policy) entropyFix() string {
	for q := p; q.length() <= MaxLength; q.Length = q.length() + 1 {
		if q.EntropyBits() >= MinEntropyBits {
			return fmt.Sprintf("raise Length to at least %d or enable more of Lower, Upper, Digits, Symbols", q.Length)
		}
	}
	return "enable more of Lower, Upper, Digits, Symbols"
}

// validateSymbolSet keeps the alphabet a set: a repeated character, or a
// symbol that is also a letter or digit, would be drawn more often than the
// rest and quietly lower the entropy the policy claims.
func validateSymbolSet(set string) error {
	var seen [128]bool
	for i := 0; i < len(set); i++ {
		c := set[i]
		switch {
		case c <= ' ' || c >= 0x7f:
			return errors.New("password policy: SymbolSet has a space, control or non-ASCII character; use printable ASCII punctuation such as " + DefaultSymbolSet)
		case strings.IndexByte(lowerChars+upperChars+digitChars, c) >= 0:
			return fmt.Errorf("password policy: SymbolSet has the letter or digit %q; use the Lower, Upper and Digits classes for those", c)
		case seen[c]:
			return fmt.Errorf("password policy: SymbolSet has %q twice; list each symbol once", c)
		}
		seen[c] = true
	}
	return nil
}

// Generate draws a password from r (crypto/rand when nil) under p. Every
// character is uniform over the alphabet (rejection sampling, no modulo
// bias), and a draw that misses an enabled class is thrown away whole and
// redrawn, so the result is uniform over all passwords the policy allows.
// The same reader bytes always give the same password.
func Generate(r io.Reader, p Policy) (String, error) {
	if err := p.Validate(); err != nil {
		return String{}, err
	}
	if r == nil {
		r = rand.Reader
	}
	classes := p.classes()
	alphabet := strings.Join(classes, "")
	l := p.length()
	out := make([]byte, l)
	buf := make([]byte, l)
	// Plaintext should not linger on the heap longer than the String.
	defer clear(out)
	defer clear(buf)
	for range generateAttempts {
		if err := drawUniform(r, alphabet, out, buf); err != nil {
			return String{}, err
		}
		if hasEveryClass(out, classes) {
			return New(string(out)), nil
		}
	}
	return String{}, fmt.Errorf("generate password: %d draws in a row missed a character class; the random source is broken or not random", generateAttempts)
}

// drawUniform fills out with characters of alphabet (at most 256). A byte
// is used only below the largest multiple of len(alphabet) that fits in a
// byte; the bytes above it would make the first characters likelier.
func drawUniform(r io.Reader, alphabet string, out, buf []byte) error {
	n := len(alphabet)
	limit := 256 - 256%n
	for i := 0; i < len(out); {
		chunk := buf[:len(out)-i]
		if _, err := io.ReadFull(r, chunk); err != nil {
			return fmt.Errorf("generate password: read random bytes: %w", err)
		}
		for _, b := range chunk {
			if int(b) < limit {
				out[i] = alphabet[int(b)%n]
				i++
			}
		}
	}
	return nil
}

func hasEveryClass(pw []byte, classes []string) bool {
	for _, c := range classes {
		found := false
		for _, b := range pw {
			if strings.IndexByte(c, b) >= 0 {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}
