package connstr

import (
	"cmp"
	"slices"
	"strings"
)

// Redact hides PostgreSQL passwords in arbitrary text, for logs and for
// `rotor connstr redact`. A string that parses as one URL comes back as its
// Redacted form; anything else keeps its layout and is scanned for
// postgres:// and postgresql:// URLs and for password=… keywords
// (PGPASSWORD=…, ?password=…, password='…'), whose values become REDACTED.
//
// Where the text is ambiguous the whole region that might be a password
// goes, even if that takes the host with it: in a URL, everything between
// the user's ':' and the last '@' that could end the user information. A
// URL found inside free text is scanned to the end of its line or the next
// URL, so a password holding a newline or a URL of its own is only caught
// when s is the whole connection string; the same goes for a raw '@' in a
// user name, or in a password that also holds whitespace or quotes
// ("postgresql://u:p@ss word@h" reads as the password "p").
func Redact(s string) string {
	// Only a URL is rewritten from its parsed form; keyword/value text keeps
	// its layout (an env file can parse as one), and the keyword scan below
	// reads password values the way libpq does.
	if c, err := Parse(s); err == nil && c.Form == FormURL {
		// The parsed form still goes through the scanner: a Param value
		// may itself hold a URL with a password.
		return redactText(c.Redacted(), false)
	}
	t := strings.Trim(s, dsnSpace)
	whole := strings.HasPrefix(t, schemeLong) || strings.HasPrefix(t, schemeShort)
	return redactText(s, whole)
}

// span is a byte range [start, end) of text to replace.
type span struct{ start, end int }

// redactText replaces the spans both scanners find in s. Both read the
// original text and their spans are merged, so that one scanner's
// over-reach cannot hide what the other would have found.
func redactText(s string, whole bool) string {
	spans := append(urlSpans(s, whole), keywordSpans(s, whole)...)
	if len(spans) == 0 {
		return s
	}
	slices.SortFunc(spans, func(x, y span) int { return cmp.Compare(x.start, y.start) })
	merged := spans[:1]
	for _, sp := range spans[1:] {
		if last := &merged[len(merged)-1]; sp.start <= last.end {
			last.end = max(last.end, sp.end)
			continue
		}
		merged = append(merged, sp)
	}
	var b strings.Builder
	copied := 0
	for _, sp := range merged {
		b.WriteString(s[copied:sp.start])
		b.WriteString(redactedMarker)
		copied = sp.end
	}
	b.WriteString(s[copied:])
	return b.String()
}

// urlSpans finds the passwords in the user information of URLs. whole says
// s is one broken URL, so its user information may run across lines and
// words.
func urlSpans(s string, whole bool) []span {
	lower := asciiLower(s)
	var spans []span
	i := 0
	first := true
	for {
		start, n := nextScheme(lower, i)
		if start < 0 {
			break
		}
		a := start + n
		// A broken whole URL is one user information up to its last '@',
		// even if the password seems to hold another URL or a newline.
		greedy := whole && first
		first = false
		segEnd := len(s)
		if !greedy {
			if next, _ := nextScheme(lower, a); next >= 0 {
				segEnd = next
			}
			if nl := strings.IndexByte(s[a:segEnd], '\n'); nl >= 0 {
				segEnd = a + nl
			}
		}
		at := userinfoEnd(s[a:segEnd], greedy)
		if at < 0 {
			i = a
			continue
		}
		if colon := strings.IndexByte(s[a:a+at], ':'); colon >= 0 && colon+1 < at {
			spans = append(spans, span{a + colon + 1, a + at})
		}
		i = a + at
	}
	return spans
}

// nextScheme finds the next postgres:// or postgresql:// in lowered text
// and returns its index and length, or -1.
func nextScheme(lower string, from int) (int, int) {
	for from < len(lower) {
		k := strings.Index(lower[from:], "postgres")
		if k < 0 {
			return -1, 0
		}
		k += from
		switch {
		case strings.HasPrefix(lower[k:], schemeLong):
			return k, len(schemeLong)
		case strings.HasPrefix(lower[k:], schemeShort):
			return k, len(schemeShort)
		}
		from = k + 1
	}
	return -1, 0
}

// wordBreaks end a URL inside free text.
const wordBreaks = dsnSpace + "\"'<>`"

// userinfoEnd returns the index of the '@' that ends a URL's user
// information within seg (the text after "://"), or -1. A clean word — one
// '@', inside the authority — is taken at its word. Anything else takes the
// last '@' of seg, over-redacting rather than guessing.
func userinfoEnd(seg string, greedy bool) int {
	if !greedy {
		w := strings.IndexAny(seg, wordBreaks)
		if w < 0 {
			w = len(seg)
		}
		word := seg[:w]
		authEnd := strings.IndexAny(word, "/?#")
		if authEnd < 0 {
			authEnd = len(word)
		}
		if at := strings.IndexByte(word, '@'); at >= 0 && at < authEnd && strings.Count(word, "@") == 1 {
			return at
		}
	}
	return strings.LastIndexByte(seg, '@')
}

// keywordSpans finds the value of every "password=" (any case, any
// prefix such as PG or DB_). In a URL query the value ends at '&' (in a
// whole broken URL, only at one that starts another key=value) and, in
// free text, at '#' or whitespace. Elsewhere it follows libpq: quoted, or
// up to whitespace with backslash escapes. An unterminated quote redacts to
// the end.
func keywordSpans(s string, whole bool) []span {
	const kw = "password"
	lower := asciiLower(s)
	// Every occurrence is measured on its own: a quoted value that runs too
	// far must not hide the next password= from the scan.
	var spans []span
	for i := 0; ; {
		k := strings.Index(lower[i:], kw)
		if k < 0 {
			break
		}
		k += i
		j := k + len(kw)
		i = j
		for j < len(s) && isSpace(s[j]) {
			j++
		}
		if j == len(s) || s[j] != '=' {
			continue
		}
		j++
		inQuery := k > 0 && (s[k-1] == '?' || s[k-1] == '&')
		start, end := j, j
		switch {
		case inQuery:
			// Parse has already turned a whole URL down, so a raw space or
			// '#' in it is more likely a mistyped password than the end.
			for end < len(s) && (whole || s[end] != '#' && !isSpace(s[end]) && !closesQuote(s, end)) {
				if s[end] == '&' {
					next := s[end+1:]
					if amp := strings.IndexByte(next, '&'); amp >= 0 {
						next = next[:amp]
					}
					// What follows is no key=value, so this '&' is
					// more likely part of the password.
					if !whole || strings.IndexByte(next, '=') >= 0 {
						break
					}
				}
				end++
			}
		default:
			for start < len(s) && isSpace(s[start]) {
				start++
			}
			end = start
			if start < len(s) && (s[start] == '\'' || s[start] == '"') {
				q := s[start]
				start++
				end = start
				for end < len(s) && s[end] != q {
					if s[end] == '\\' {
						end++
					}
					end++
				}
				// A closing quote glued to more text ('…'x) did not close
				// the password; take the rest of the word too.
				if end+1 < len(s) && !isSpace(s[end+1]) {
					end++
					for end < len(s) && !isSpace(s[end]) {
						end++
					}
				}
			} else {
				for end < len(s) && !isSpace(s[end]) && !closesQuote(s, end) {
					if s[end] == '\\' {
						end++
					}
					end++
				}
			}
			end = min(end, len(s))
		}
		if end > start {
			spans = append(spans, span{start, end})
		}
	}
	return spans
}

// closesQuote reports whether s[i] is a quote that ends the surrounding
// text's quoting ('…password=x' or "PGPASSWORD=x"): one followed by
// whitespace or the end. At worst a password ending in a quote keeps that
// one quote visible.
func closesQuote(s string, i int) bool {
	return (s[i] == '\'' || s[i] == '"') && (i+1 == len(s) || isSpace(s[i+1]))
}
