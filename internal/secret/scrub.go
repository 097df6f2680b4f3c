package secret

import (
	"bytes"
	"cmp"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// Names of the forms a secret can leak in, as Leaks reports them.
const (
	FormRaw            = "raw"
	FormPercentEncoded = "percent-encoded" // url.QueryEscape, PathEscape, userinfo
	FormEscaped        = "escaped"         // JSON, Go %q, libpq keyword DSN, SQL literal
	FormHex            = "hex"
	FormBase64         = "base64" // standard or URL alphabet, also inside a longer base64 text
)

// formOrder is the order Leaks reports forms in.
var formOrder = []string{FormRaw, FormPercentEncoded, FormEscaped, FormHex, FormBase64}

type form struct{ name, text string }

// minBase64Fragment keeps fragment matching for secrets long enough that
// the fragment cannot turn up in unrelated base64 by chance.
const minBase64Fragment = 8

// forms lists the spellings of one secret that can end up in logs, errors
// and files: each encoding a connection string, a config format or an API
// body applies on the way. Spellings identical to an earlier one are
// dropped, so a password of letters and digits has only a few.
func forms(plain string) []form {
	if plain == "" {
		return nil
	}
	// url.UserPassword escapes the password for userinfo; url.User escapes
	// the same text as a user name, which is stricter about ':'.
	userinfo, _ := strings.CutPrefix(url.UserPassword("", plain).String(), ":")
	fs := []form{
		{FormRaw, plain},
		{FormPercentEncoded, url.QueryEscape(plain)},
		{FormPercentEncoded, url.PathEscape(plain)},
		{FormPercentEncoded, userinfo},
		{FormPercentEncoded, url.User(plain).String()},
		{FormEscaped, jsonEscaped(plain, true)},
		{FormEscaped, jsonEscaped(plain, false)},
		{FormEscaped, unquote(strconv.Quote(plain))},
		{FormEscaped, unquote(strconv.QuoteToASCII(plain))},
		{FormEscaped, strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(plain)},
		{FormEscaped, strings.ReplaceAll(plain, `'`, `''`)},
		{FormHex, hex.EncodeToString([]byte(plain))},
		{FormHex, strings.ToUpper(hex.EncodeToString([]byte(plain)))},
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding} {
		fs = append(fs,
			form{FormBase64, enc.EncodeToString([]byte(plain))},
			form{FormBase64, enc.WithPadding(base64.NoPadding).EncodeToString([]byte(plain))})
		// Inside a longer base64 text (a Basic auth header, a Kubernetes
		// Secret, a JSON blob), the secret starts at one of three offsets
		// modulo 3 and its edges share characters with the neighbouring
		// bytes; the characters in between depend on the secret alone.
		for offset := range 3 {
			if f := base64Fragment(enc, plain, offset); len(f) >= minBase64Fragment {
				fs = append(fs, form{FormBase64, f})
			}
		}
	}
	seen := make(map[string]bool, len(fs))
	return slices.DeleteFunc(fs, func(f form) bool {
		dup := seen[f.text]
		seen[f.text] = true
		return dup
	})
}

// base64Fragment is the part of the encoding of (offset unknown bytes ‖
// plain ‖ more unknown bytes) that only plain decides: the characters whose
// six bits all fall inside plain.
func base64Fragment(enc *base64.Encoding, plain string, offset int) string {
	padded := append(make([]byte, offset), plain...)
	text := enc.WithPadding(base64.NoPadding).EncodeToString(padded)
	first := (8*offset + 5) / 6
	end := 8 * len(padded) / 6
	if first >= end {
		return ""
	}
	return text[first:end]
}

func jsonEscaped(s string, html bool) string {
	var b bytes.Buffer
	e := json.NewEncoder(&b)
	e.SetEscapeHTML(html)
	_ = e.Encode(s) // a string always encodes
	return unquote(strings.TrimSuffix(b.String(), "\n"))
}

// unquote drops the surrounding quotes but keeps the escapes inside.
func unquote(quoted string) string { return quoted[1 : len(quoted)-1] }

// ScrubString replaces every spelling of each non-empty secret in s (raw,
// percent-encoded as in URLs, escaped as in JSON, Go, DSNs and SQL, hex,
// base64 — see Leaks) with Redacted. Longer spellings go first, so that a
// secret containing another secret is replaced whole.
func ScrubString(s string, secrets ...String) string {
	var texts []string
	for _, sec := range secrets {
		for _, f := range forms(sec.Reveal()) {
			texts = append(texts, f.text)
		}
	}
	slices.SortFunc(texts, func(a, b string) int {
		return cmp.Or(cmp.Compare(len(b), len(a)), strings.Compare(a, b))
	})
	// One pass per spelling rather than one strings.Replacer: a Replacer
	// takes the leftmost match, which may be a short secret overlapping the
	// start of a longer one and leave the rest of the longer one in place.
	for _, t := range slices.Compact(texts) {
		s = strings.ReplaceAll(s, t, Redacted)
	}
	return s
}

// Scrub returns err with every spelling of secrets removed from its
// message. If nothing changes, it returns err itself; otherwise an error
// whose Error() is scrubbed and that unwraps to err, so errors.Is and
// errors.As still work. What errors.As hands back is the original, with
// the secret in it: scrub again before printing it.
func Scrub(err error, secrets ...String) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	scrubbed := ScrubString(msg, secrets...)
	if scrubbed == msg {
		return err
	}
	return &scrubbedError{msg: scrubbed, err: err}
}

type scrubbedError struct {
	msg string
	err error
}

func (e *scrubbedError) Error() string { return e.msg }
func (e *scrubbedError) Unwrap() error { return e.err }

// Leaks reports in which forms (FormRaw, FormPercentEncoded, FormEscaped,
// FormHex, FormBase64) any of the non-empty secrets appears in haystack, or
// nil when none does. It is for tests that assert output is clean: pass one
// secret per call to learn which one leaked.
func Leaks(haystack []byte, secrets ...String) []string {
	found := make(map[string]bool)
	for _, sec := range secrets {
		for _, f := range forms(sec.Reveal()) {
			if !found[f.name] && bytes.Contains(haystack, []byte(f.text)) {
				found[f.name] = true
			}
		}
	}
	var names []string
	for _, name := range formOrder {
		if found[name] {
			names = append(names, name)
		}
	}
	return names
}
