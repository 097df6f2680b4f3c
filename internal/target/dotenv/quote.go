package dotenv

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// Quote is how Edit writes values.
//
// A value must read back byte for byte in both parsers rotor's users run:
// Go's github.com/joho/godotenv v1.5.1 and Node's dotenv 16 (motdotla). They
// disagree, so only their common ground is written:
//
//   - Single quotes are literal in both. Edit puts no ' in them (godotenv
//     ends the value at a ' unless a backslash precedes it, and strips
//     quotes at either end), no line break (Node folds "\r" into "\n"; a
//     raw "\n" would read back, but one statement per line keeps the file
//     usable by line-based tools such as docker --env-file and systemd)
//     and no trailing backslash (godotenv then misses the closing quote).
//   - Double quotes turn \n and \r into line breaks in both, and that is
//     all they share: godotenv unescapes every other \X and expands $VAR,
//     ${VAR} and $(VAR); Node does neither. So a double-quoted value cannot
//     hold ", \ or a $ that godotenv would expand.
//   - Unquoted values are never written: godotenv expands $VAR and Node
//     cuts them at #.
type Quote string

const (
	// QuoteAuto writes single quotes when the value allows them, else
	// double quotes, else fails.
	QuoteAuto Quote = "auto"
	// QuoteSingle always writes single quotes, or fails.
	QuoteSingle Quote = "single"
	// QuoteDouble always writes double quotes, or fails.
	QuoteDouble Quote = "double"
)

func (q Quote) valid() bool {
	switch q {
	case QuoteAuto, QuoteSingle, QuoteDouble:
		return true
	}
	return false
}

// urlHint ends every "cannot represent" error: a percent-encoded URL holds
// none of the characters that cause trouble.
const urlHint = `render the percent-encoded connection string ("{{.URL}}") instead of the raw password ("{{.Password}}"), or change the template`

// quoteValue returns v written as a dotenv value in mode q. Errors name the
// key and the kind of character at fault, never the value.
func quoteValue(key, v string, q Quote) (string, error) {
	if !utf8.ValidString(v) {
		return "", fmt.Errorf("the value for %s is not valid UTF-8, which Node's dotenv would not read back unchanged; %s: %w", key, urlHint, ErrUnrepresentable)
	}
	if strings.ContainsRune(v, 0) {
		return "", fmt.Errorf("the value for %s contains a NUL byte, which no environment variable can hold; %s: %w", key, urlHint, ErrUnrepresentable)
	}
	single := singleObstacle(v)
	double := doubleObstacle(v)
	switch {
	case q == QuoteSingle && single != "":
		return "", fmt.Errorf("the value for %s contains %s, so it cannot be single-quoted (quote: single); set quote: auto or double, or %s: %w", key, single, urlHint, ErrUnrepresentable)
	case q == QuoteDouble && double != "":
		return "", fmt.Errorf("the value for %s contains %s, so it cannot be double-quoted in a way godotenv and Node's dotenv both read back (quote: double); set quote: auto or single, or %s: %w", key, double, urlHint, ErrUnrepresentable)
	case q == QuoteAuto && single != "" && double != "":
		return "", fmt.Errorf("the value for %s cannot be written so that godotenv and Node's dotenv both read it back: it contains %s, which rules out single quotes, and %s, which rules out double quotes; %s: %w", key, single, double, urlHint, ErrUnrepresentable)
	case q == QuoteSingle || (q == QuoteAuto && single == ""):
		return "'" + v + "'", nil
	}
	r := strings.NewReplacer("\n", `\n`, "\r", `\r`)
	return `"` + r.Replace(v) + `"`, nil
}

// singleObstacle names what keeps v out of single quotes, or "".
func singleObstacle(v string) string {
	switch {
	case strings.Contains(v, "'"):
		return "a single quote (')"
	case strings.ContainsAny(v, "\n\r"):
		return "a line break"
	case strings.HasSuffix(v, `\`):
		return `a trailing backslash (\)`
	}
	return ""
}

// doubleObstacle names what keeps v out of double quotes, or "".
func doubleObstacle(v string) string {
	switch {
	case strings.Contains(v, `"`):
		return `a double quote (")`
	case strings.Contains(v, `\`):
		return `a backslash (\)`
	case expandsInGodotenv(v):
		return "a $ followed by a variable name, which godotenv would expand and Node would not"
	}
	return ""
}

// expandsInGodotenv reports whether godotenv v1.5.1 would replace part of
// v (free of backslashes) when double-quoted: a $ followed by an optional
// "(", an optional "{" and then one of [A-Z0-9_].
func expandsInGodotenv(v string) bool {
	for i := 0; i < len(v); i++ {
		if v[i] != '$' {
			continue
		}
		j := i + 1
		if j < len(v) && v[j] == '(' {
			j++
		}
		if j < len(v) && v[j] == '{' {
			j++
		}
		if j < len(v) && isExpandName(v[j]) {
			return true
		}
	}
	return false
}

func isExpandName(c byte) bool {
	return c == '_' || ('A' <= c && c <= 'Z') || ('0' <= c && c <= '9')
}
