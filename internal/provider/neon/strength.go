package neon

import (
	"fmt"
	"math"
	"unicode/utf8"

	"github.com/rotorhq/rotor/internal/provider"
	"github.com/rotorhq/rotor/internal/secret"
)

// Neon's rule for passwords set over SQL (neon.com/docs/manage/roles;
// neon-api.md §6): at least 60 bits of entropy, and no character repeated
// more than twice in a row. Neon does not publish how it estimates the
// entropy (its guidance: 12 or more characters of mixed classes, no
// sequences, no runs), so CheckPassword uses an estimate meant to be no
// more generous than any reasonable one, the Neon fake's included:
//
//   - the pool is the sum of the sizes of the character classes the
//     password uses: lowercase letters 26, uppercase 26, digits 10, other
//     printable ASCII (space included) 33, and one per distinct other
//     character;
//   - a character counts only if it differs from the one before ("aab"
//     counts two) and does not continue an ascending or descending run of
//     letters or digits beyond its second character ("abcd" counts two);
//   - bits = counted characters × log2(pool).
//
// A 12-character password of mixed-case letters and digits without
// repeats or runs gives 71 bits; rotor's default (32 of them) about 190;
// ten lowercase letters 47, which is refused. Neon's own generated
// passwords (npg_ and 12 letters and digits) give about 105.
const (
	minEntropyBits = 60
	maxRun         = 2
)

// EntropyBits is the estimate above.
func EntropyBits(pw string) float64 {
	var lower, upper, digit, symbol bool
	other := map[rune]bool{}
	runes := []rune(pw)
	for _, r := range runes {
		switch {
		case r >= 'a' && r <= 'z':
			lower = true
		case r >= 'A' && r <= 'Z':
			upper = true
		case r >= '0' && r <= '9':
			digit = true
		case r >= ' ' && r <= '~':
			symbol = true
		default:
			other[r] = true
		}
	}
	pool := len(other)
	for _, c := range []struct {
		used bool
		size int
	}{{lower, 26}, {upper, 26}, {digit, 10}, {symbol, 33}} {
		if c.used {
			pool += c.size
		}
	}
	if pool < 2 {
		return 0
	}
	counted, seq, step := 0, 1, rune(0)
	for i, r := range runes {
		if i == 0 {
			counted++
			continue
		}
		d := r - runes[i-1]
		switch {
		case (d == 1 || d == -1) && alnum(r) && alnum(runes[i-1]) && d == step:
			seq++
		case (d == 1 || d == -1) && alnum(r) && alnum(runes[i-1]):
			seq, step = 2, d
		default:
			seq, step = 1, 0
		}
		if d == 0 || seq > 2 {
			continue
		}
		counted++
	}
	return float64(counted) * math.Log2(float64(pool))
}

func alnum(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9'
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
