package pgbouncer

import (
	"bytes"
	"errors"
	"fmt"
	"strings"

	"github.com/rotorhq/rotor/internal/secret"
)

// ErrBrokenFile: PgBouncer would stop reading the auth_file before its
// end, so some users it lists are not loaded.
var ErrBrokenFile = errors.New("auth_file is not in PgBouncer's format")

// Entry is one user of an auth_file.
type Entry struct {
	User   string
	Secret secret.String
	// Line is the 1-based line the entry starts on.
	Line int
	// start and end delimit the entry's text, from the user's opening
	// quote to the secret's closing quote; the rest of the line, which
	// PgBouncer ignores, is not part of it.
	start, end int
}

// ParseAuthFile reads content the way PgBouncer's load_auth_file does:
// leading white space and empty lines are skipped, a line starting with
// ';' is a comment, every other line must start with a double-quoted user
// followed by a double-quoted secret ("" stands for one quote inside
// either) and the rest of the line is ignored. Where PgBouncer would log
// "broken auth file" and stop loading, ParseAuthFile returns ErrBrokenFile
// with the line number; errors never quote the file.
func ParseAuthFile(content []byte) ([]Entry, error) {
	var entries []Entry
	p := 0
	for p < len(content) {
		for p < len(content) && isSpace(content[p]) {
			p++
		}
		if p == len(content) {
			break
		}
		if content[p] == ';' {
			p = lineEnd(content, p)
			continue
		}
		line := lineOf(content, p)
		if content[p] != '"' {
			return nil, fmt.Errorf("line %d does not start with a double quote or ';', and PgBouncer stops reading there: %w", line, ErrBrokenFile)
		}
		start := p
		userEnd := findQuote(content, p+1, false)
		if userEnd < 0 {
			return nil, fmt.Errorf("line %d: the user name's closing quote is missing: %w", line, ErrBrokenFile)
		}
		pwStart := findQuote(content, userEnd+1, true)
		if pwStart < 0 {
			return nil, fmt.Errorf("line %d: the secret after the user name is missing (each line is \"user\" \"secret\"): %w", line, ErrBrokenFile)
		}
		pwEnd := findQuote(content, pwStart+1, false)
		if pwEnd < 0 {
			return nil, fmt.Errorf("line %d: the secret's closing quote is missing: %w", line, ErrBrokenFile)
		}
		entries = append(entries, Entry{
			User:   unquote(content[start+1 : userEnd]),
			Secret: secret.New(unquote(content[pwStart+1 : pwEnd])),
			Line:   line,
			start:  start,
			end:    pwEnd + 1,
		})
		p = lineEnd(content, pwEnd+1)
	}
	return entries, nil
}

// SetEntry returns content with user's entry holding secretText: the
// entry's text is replaced in place (what PgBouncer ignores after it on
// the line, and every other byte of the file, stays), or a line is
// appended when the user has none. A user listed twice is refused rather
// than guessed at.
func SetEntry(content []byte, user, secretText string) ([]byte, error) {
	entries, err := ParseAuthFile(content)
	if err != nil {
		return nil, err
	}
	var found []Entry
	for _, e := range entries {
		if e.User == user {
			found = append(found, e)
		}
	}
	text := quote(user) + " " + quote(secretText)
	switch len(found) {
	case 0:
		out := bytes.Clone(content)
		if len(out) > 0 && out[len(out)-1] != '\n' {
			out = append(out, '\n')
		}
		return append(out, text+"\n"...), nil
	case 1:
		e := found[0]
		out := make([]byte, 0, len(content)-(e.end-e.start)+len(text))
		out = append(out, content[:e.start]...)
		out = append(out, text...)
		return append(out, content[e.end:]...), nil
	}
	lines := make([]string, len(found))
	for i, e := range found {
		lines[i] = fmt.Sprint(e.Line)
	}
	return nil, fmt.Errorf("user %q is listed %d times (lines %s) and PgBouncer uses the last; delete all but one: %w",
		user, len(found), strings.Join(lines, ", "), ErrBrokenFile)
}

// findQuote mirrors PgBouncer's find_quote: the index of the next '"' at
// or after p; unless start, a doubled quote is an escaped one and skipped.
// -1 when there is none.
func findQuote(b []byte, p int, start bool) int {
	for {
		i := bytes.IndexByte(b[p:], '"')
		if i < 0 {
			return -1
		}
		p += i
		if !start && p+1 < len(b) && b[p+1] == '"' {
			p += 2
			continue
		}
		return p
	}
}

// unquote mirrors PgBouncer's copy_quoted: a quote is dropped and the
// byte after it kept, so "" becomes ".
func unquote(b []byte) string {
	var sb strings.Builder
	for i := 0; i < len(b); i++ {
		if b[i] == '"' {
			i++
			if i == len(b) {
				break
			}
		}
		sb.WriteByte(b[i])
	}
	return sb.String()
}

func quote(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

// isSpace is C's isspace in the "C" locale, which PgBouncer runs in.
func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r'
}

func lineEnd(b []byte, p int) int {
	if i := bytes.IndexByte(b[p:], '\n'); i >= 0 {
		return p + i
	}
	return len(b)
}

func lineOf(b []byte, p int) int { return bytes.Count(b[:p], []byte{'\n'}) + 1 }
