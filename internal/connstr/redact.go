package connstr

import (
	"cmp"
	"slices"
	"strings"
)

// Redact hides passwords in arbitrary text, for logs and for `rotor connstr
// redact`. Its contract is that no secret survives, and that every byte
// that is not part of one comes back unchanged: the password in the user
// information of a URL of any scheme (postgresql://u:…@, mysql://, redis://:…@,
// https://user:token@), the value of every password=… keyword (PGPASSWORD=…,
// ?password=…, password='…', DB_PASSWORD="…"), and the value of every JSON
// key that names a password ("password": "…", also inside a JSON string as
// \"password\":\"…\"). Each becomes REDACTED.
//
// Where the text is ambiguous the whole region that might be a password
// goes, even if that takes the host with it: in a URL, everything between
// the user's ':' and the last '@' that could end the user information. A
// URL found inside free text is scanned to the end of its line or the next
// URL, so a password holding a newline or a URL of its own is only caught
// when s is the whole connection string; the same goes for a raw '@' in a
// user name, or in a password that also holds whitespace or quotes
// ("postgresql://u:p@ss word@h" reads as the password "p"). The price of
// never guessing is paid by innocent text: in "http://h:8080/x, mail a@b"
// the port up to the '@' goes, since "8080/x, mail a" could be a mistyped
// password.
func Redact(s string) string { return replaceSpans(s, redactSpans(s)) }

// redactSpans returns the byte ranges of s that Redact replaces.
func redactSpans(s string) []span {
	var spans []span
	whole := false
	if c, err := Parse(s); err == nil && c.Form == FormURL {
		// A URL that parses has its password where Parse found it (even
		// across a newline), and its query read the way Parse reads it, so
		// a percent-encoded key (pass%77ord=) is caught too.
		spans = parsedURLSpans(s)
	} else {
		// One broken URL: its password may hold what would end a URL in
		// free text.
		start, _ := nextScheme(s, 0)
		whole = start >= 0 && strings.TrimLeft(s[:start], dsnSpace) == ""
	}
	spans = append(spans, urlSpans(s, whole)...)
	spans = append(spans, keywordSpans(s, whole)...)
	return append(spans, jsonSpans(s)...)
}

// span is a byte range [start, end) of text to replace.
type span struct{ start, end int }

// replaceSpans replaces the spans of s with the marker. The scanners all
// read the original text and their spans are merged, so that one scanner's
// over-reach cannot hide what another would have found.
func replaceSpans(s string, spans []span) string {
	if len(spans) == 0 {
		return s
	}
	merged := mergeSpans(spans)
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

// mergeSpans sorts spans and joins the ones that overlap or touch.
func mergeSpans(spans []span) []span {
	if len(spans) == 0 {
		return nil
	}
	slices.SortFunc(spans, func(x, y span) int { return cmp.Compare(x.start, y.start) })
	merged := []span{spans[0]}
	for _, sp := range spans[1:] {
		if last := &merged[len(merged)-1]; sp.start <= last.end {
			last.end = max(last.end, sp.end)
			continue
		}
		merged = append(merged, sp)
	}
	return merged
}

// urlSpans finds the passwords in the user information of URLs. whole says
// s is one URL that may be broken, so its user information may run across
// lines and words.
func urlSpans(s string, whole bool) []span {
	var spans []span
	i := 0
	first := true
	for {
		start, a := nextScheme(s, i)
		if start < 0 {
			break
		}
		// A broken whole URL is one user information up to its last '@',
		// even if the password seems to hold another URL or a newline.
		greedy := whole && first
		first = false
		segEnd := len(s)
		if !greedy {
			if next, _ := nextScheme(s, a); next >= 0 {
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

// nextScheme finds the next "scheme://" at or after from, with a scheme as
// RFC 3986 writes it (a letter, then letters, digits, '+', '-', '.'). It
// returns the index where the scheme starts and the index after "://", or
// -1, -1.
func nextScheme(s string, from int) (int, int) {
	for from < len(s) {
		k := strings.Index(s[from:], "://")
		if k < 0 {
			return -1, -1
		}
		k += from
		start := k
		for start > from && isSchemeByte(s[start-1]) {
			start--
		}
		for start < k && !isLetter(s[start]) {
			start++
		}
		if start < k {
			return start, k + len("://")
		}
		from = k + 1
	}
	return -1, -1
}

func isLetter(ch byte) bool { return 'a' <= ch && ch <= 'z' || 'A' <= ch && ch <= 'Z' }

func isSchemeByte(ch byte) bool {
	return isLetter(ch) || '0' <= ch && ch <= '9' || ch == '+' || ch == '-' || ch == '.'
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

// parsedURLSpans finds, in s, one URL that Parse accepts, the password in
// its user information and the values of the query parameters whose
// percent-decoded key is password or sslpassword, exactly where Parse reads
// them.
func parsedURLSpans(s string) []span {
	_, a := nextScheme(s, 0)
	if a < 0 {
		return nil
	}
	end := len(strings.TrimRight(s, dsnSpace))
	var spans []span
	authEnd := strings.IndexAny(s[a:end], "/?")
	if authEnd < 0 {
		authEnd = end
	} else {
		authEnd += a
	}
	if at := strings.LastIndexByte(s[a:authEnd], '@'); at >= 0 {
		if colon := strings.IndexByte(s[a:a+at], ':'); colon >= 0 && colon+1 < at {
			spans = append(spans, span{a + colon + 1, a + at})
		}
	}
	q := strings.IndexByte(s[authEnd:end], '?')
	if q < 0 {
		return spans
	}
	for i := authEnd + q + 1; i < end; {
		segEnd := strings.IndexByte(s[i:end], '&')
		if segEnd < 0 {
			segEnd = end
		} else {
			segEnd += i
		}
		if eq := strings.IndexByte(s[i:segEnd], '='); eq >= 0 {
			key, ok := unescape(s[i : i+eq])
			if ok && (key == keyPassword || secretParam(key)) && i+eq+1 < segEnd {
				spans = append(spans, span{i + eq + 1, segEnd})
			}
		}
		i = segEnd + 1
	}
	return spans
}

// jsonSpans finds the values of JSON keys that name a password
// ("password", "DB_PASSWORD", "password_hash"), and the same one level
// down, in JSON text held in a JSON string ({\"password\":\"…\"}), as logs
// often print it. A string value is taken to its closing quote (to the end
// if there is none); a bare value (a number) to the next ',', '}', ']' or
// whitespace. null, true and false are no secrets and stay.
func jsonSpans(s string) []span {
	const kw = "password"
	lower := asciiLower(s)
	var spans []span
	for i := 0; ; {
		k := strings.Index(lower[i:], kw)
		if k < 0 {
			break
		}
		k += i
		j := k + len(kw)
		i = j
		for j < len(s) && (isLetter(s[j]) || '0' <= s[j] && s[j] <= '9' || s[j] == '_' || s[j] == '-') {
			j++
		}
		quote := `"`
		if strings.HasPrefix(s[j:], `\"`) {
			quote = `\"`
		} else if !strings.HasPrefix(s[j:], quote) {
			continue
		}
		j = skipJSONSpace(s, j+len(quote))
		if j == len(s) || s[j] != ':' {
			continue
		}
		j = skipJSONSpace(s, j+1)
		if strings.HasPrefix(s[j:], quote) {
			start := j + len(quote)
			end := jsonStringEnd(s, start, quote != `"`)
			if end > start {
				spans = append(spans, span{start, end})
			}
			continue
		}
		end := j
		for end < len(s) && strings.IndexByte(",}]\"", s[end]) < 0 && !isSpace(s[end]) {
			end++
		}
		if v := s[j:end]; v != "" && v != "null" && v != "true" && v != "false" {
			spans = append(spans, span{j, end})
		}
	}
	return spans
}

func skipJSONSpace(s string, i int) int {
	for i < len(s) && isSpace(s[i]) {
		i++
	}
	return i
}

// jsonStringEnd returns the index of the quote that closes a JSON string
// starting at start, or len(s). In nested text (JSON inside a JSON string)
// the closing quote is written \" and a quote inside the value \\\", so a
// run of backslashes closes the value only when its length is 1 modulo 4.
func jsonStringEnd(s string, start int, nested bool) int {
	for i := start; i < len(s); {
		if s[i] == '"' && !nested {
			return i
		}
		if s[i] != '\\' {
			i++
			continue
		}
		run := 0
		for i+run < len(s) && s[i+run] == '\\' {
			run++
		}
		if i+run < len(s) && s[i+run] == '"' {
			if nested && run%4 == 1 {
				return i + run - 1
			}
			if !nested && run%2 == 0 {
				return i + run
			}
			i += run + 1
			continue
		}
		i += run
	}
	return len(s)
}
