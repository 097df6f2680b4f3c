package neon

import (
	"fmt"
	"math"
	"unicode"
	"unicode/utf8"

	"github.com/rotorhq/rotor/internal/provider"
	"github.com/rotorhq/rotor/internal/secret"
)

// Neon's rule for passwords set over SQL (neon.com/docs/manage/roles;
// neon-api.md §6): at least 60 bits of entropy, and no character repeated
// more than twice in a row. Neon does not publish how it estimates the
// entropy, so CheckPassword uses an estimate meant to be no more generous
// than any reasonable one:
//
//   - the pool is the sum of the sizes of the character classes the
//     password uses: lowercase letters 26, uppercase 26, digits 10, other
//     printable ASCII 33, anything else (non-ASCII) 100;
//   - only characters that differ from the one before count ("aab" counts
//     two), since a repeat adds next to nothing;
//   - bits = counted characters × log2(pool).
//
// A 12-character password of mixed-case letters and digits without
// repeats gives 71 bits; rotor's default (32 of them) about 190; ten
// lowercase letters 47, which is refused. Neon's own generated passwords
// (npg_ and 12 letters and digits) give 105.
const (
	minEntropyBits = 60
	maxRun         = 2
)

// EntropyBits is the estimate above.
func EntropyBits(pw string) float64 {
	var lower, upper, digit, symbol, other bool
	counted := 0
	var prev rune = -1
	for _, r := range pw {
		switch {
		case r >= 'a' && r <= 'z':
			lower = true
		case r >= 'A' && r <= 'Z':
			upper = true
		case r >= '0' && r <= '9':
			digit = true
		case r < utf8.RuneSelf && unicode.IsPrint(r) && r != ' ':
			symbol = true
		default:
			other = true
		}
		if r != prev {
			counted++
		}
		prev = r
	}
	pool := 0
	for _, c := range []struct {
		used bool
		size int
	}{{lower, 26}, {upper, 26}, {digit, 10}, {symbol, 33}, {other, 100}} {
		if c.used {
			pool += c.size
		}
	}
	if pool < 2 {
		return 0
	}
	return float64(counted) * math.Log2(float64(pool))
}

// CheckPassword refuses a password Neon would refuse over SQL
// (provider.PasswordChecker). The error never quotes the password.
func (n *Neon) CheckPassword(pw secret.String) error {
	return checkStrength(pw)
}

func checkStrength(pw secret.String) error {
	s := pw.Reveal()
	run, longest := 0, 0
	var prev rune = -1
	for _, r := range s {
		if r == prev {
			run++
		} else {
			run = 1
		}
		longest = max(longest, run)
		prev = r
	}
	if longest > maxRun {
		return fmt.Errorf("neon provider: Neon refuses passwords with a character repeated more than %d times in a row, and this one has a run of %d: %w", maxRun, longest, provider.ErrInvalid)
	}
	if bits := EntropyBits(s); bits < minEntropyBits {
		return fmt.Errorf("neon provider: Neon refuses passwords below %d bits of entropy, and this one has about %.0f (%d characters); use a longer password from more character classes: %w",
			minEntropyBits, bits, utf8.RuneCountInString(s), provider.ErrInvalid)
	}
	return nil
}
