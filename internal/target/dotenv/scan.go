package dotenv

import (
	"bytes"
	"fmt"
	"unicode"
	"unicode/utf8"
)

// statement is one KEY=value assignment as godotenv sees it, located by
// byte offsets so an edit can replace the value and keep every other byte.
type statement struct {
	key string
	// valueStart and valueEnd delimit the value as written: quotes
	// included, surrounding blanks and an inline comment excluded. An empty
	// value has valueStart == valueEnd at the place a value would go.
	valueStart, valueEnd int
	// line is the 1-based line the statement starts on, for messages.
	line int
}

// scan finds the statements of a dotenv file exactly where godotenv v1.5.1
// (the parser rotor reads files back with) finds them, so that editing a
// statement can never change how any other statement parses. It follows
// godotenv's parser step by step, including its quirks: keys may hold
// blanks, a quoted value ends at the first quote not preceded by a
// backslash, several statements may share a line after a quoted value.
// The fuzz test FuzzScan holds it to godotenv.
//
// Offsets are into src with "\r\n" already folded to "\n", as godotenv does
// first; see crlfIndex for mapping them back.
//
// Errors carry a line number and never any text from the file: a broken
// file may hold a secret exactly where the error is.
func scan(src []byte) ([]statement, error) {
	var stmts []statement
	pos := 0
	for {
		start, ok := statementStart(src, pos)
		if !ok {
			return stmts, nil
		}
		st, next, err := scanStatement(src, start)
		if err != nil {
			return nil, err
		}
		stmts = append(stmts, st)
		if next < 0 {
			return stmts, nil
		}
		pos = next
	}
}

// statementStart skips blanks and comment lines, as godotenv's
// getStatementStart does. Blanks here are unicode.IsSpace on decoded runes.
func statementStart(src []byte, pos int) (int, bool) {
	for {
		i := bytes.IndexFunc(src[pos:], func(r rune) bool { return !unicode.IsSpace(r) })
		if i < 0 {
			return 0, false
		}
		pos += i
		if src[pos] != '#' {
			return pos, true
		}
		nl := bytes.IndexByte(src[pos:], '\n')
		if nl < 0 {
			return 0, false
		}
		pos += nl
	}
}

// scanStatement reads the statement at pos and returns where scanning
// continues (-1 at the end of the file).
func scanStatement(src []byte, pos int) (statement, int, error) {
	st := statement{line: lineOf(src, pos)}

	pos = skipFunc(src, pos, isBlank)
	if rest := src[pos:]; bytes.HasPrefix(rest, []byte("export")) {
		after := pos + len("export")
		if r, _ := utf8.DecodeRune(src[after:]); after < len(src) && isBlank(r) {
			pos = skipFunc(src, after, isBlank)
		}
	}
	if pos == len(src) {
		return st, 0, fmt.Errorf("line %d: \"export\" is not followed by an assignment; remove it or add KEY=value: %w", st.line, ErrSyntax)
	}

	// godotenv walks the key byte by byte, so a multi-byte character is
	// judged by its individual bytes read as Latin-1 runes.
	keyEnd, sep := -1, -1
	for i := pos; i < len(src); i++ {
		c := src[i]
		r := rune(c)
		switch {
		case isBlank(r):
			continue
		case c == '=' || c == ':':
			keyEnd, sep = i, i
		case c == '_' || c == '.' || unicode.IsLetter(r) || unicode.IsNumber(r):
			continue
		default:
			return st, 0, fmt.Errorf("line %d: a key holds a character other than a letter, digit, '_' or '.' (or a value spans lines without quotes); fix the line: %w", lineOf(src, i), ErrSyntax)
		}
		break
	}
	valuePos := pos
	if sep >= 0 {
		st.key = string(bytes.TrimRightFunc(src[pos:keyEnd], unicode.IsSpace))
		valuePos = sep + 1
	}
	// Without '=' godotenv reads the whole rest as the value of an empty
	// key; mirror it so offsets stay aligned, and let Edit refuse it.
	valuePos = skipFunc(src, valuePos, isBlank)

	v := src[valuePos:]
	if len(v) > 0 && (v[0] == '"' || v[0] == '\'') {
		quote := v[0]
		for i := 1; i < len(v); i++ {
			if v[i] == quote && v[i-1] != '\\' {
				st.valueStart, st.valueEnd = valuePos, valuePos+i+1
				return st, valuePos + i + 1, nil
			}
		}
		kind := "double"
		if quote == '\'' {
			kind = "single"
		}
		return st, 0, fmt.Errorf("line %d: the %s-quoted value is never closed (or its closing quote follows a backslash); close the quote: %w", st.line, kind, ErrSyntax)
	}

	eol := bytes.IndexAny(v, "\n\r")
	if eol < 0 {
		eol = len(v)
	}
	line := v[:eol]
	// An inline comment is the last '#' that follows a blank and is not
	// the first character.
	end := len(line)
	prev := rune(-1)
	for i, w := 0, 0; i < len(line); i += w {
		var r rune
		r, w = utf8.DecodeRune(line[i:])
		if r == '#' && i > 0 && isBlank(prev) {
			end = i
		}
		prev = r
	}
	end = len(bytes.TrimRightFunc(line[:end], isBlank))
	st.valueStart, st.valueEnd = valuePos, valuePos+end
	if valuePos+eol == len(src) && eol == 0 {
		return st, -1, nil
	}
	return st, valuePos + eol, nil
}

// isBlank is godotenv's isSpace: blanks that do not end a line.
func isBlank(r rune) bool {
	switch r {
	case '\t', '\v', '\f', '\r', ' ', 0x85, 0xA0:
		return true
	}
	return false
}

func skipFunc(src []byte, pos int, f func(rune) bool) int {
	for pos < len(src) {
		r, w := utf8.DecodeRune(src[pos:])
		if !f(r) {
			break
		}
		pos += w
	}
	return pos
}

func lineOf(src []byte, pos int) int {
	return bytes.Count(src[:pos], []byte("\n")) + 1
}

// foldCRLF returns src with "\r\n" folded to "\n", as godotenv reads it,
// and for every offset of the folded text (and one past its end) the
// offset in src where the same character starts.
func foldCRLF(src []byte) (folded []byte, orig []int) {
	folded = make([]byte, 0, len(src))
	orig = make([]int, 0, len(src)+1)
	for i := 0; i < len(src); i++ {
		folded = append(folded, src[i])
		orig = append(orig, i)
		if src[i] == '\r' && i+1 < len(src) && src[i+1] == '\n' {
			// The folded "\n" stands for the whole "\r\n", so a value
			// ending before it ends before the "\r".
			folded[len(folded)-1] = '\n'
			i++
		}
	}
	orig = append(orig, len(src))
	return folded, orig
}
