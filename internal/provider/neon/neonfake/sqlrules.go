package neonfake

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"
)

// What Neon refuses over SQL that stock PostgreSQL accepts, applied by the
// proxy to the statements a client sends (simple Query and extended-
// protocol Parse messages).
//
// Role passwords (neon-api.md §6): Neon's compute extension collects every
// CREATE/ALTER ROLE … PASSWORD of a transaction and sends the password to
// the control plane before the transaction commits; when the control plane
// answers other than 200 it raises `Received HTTP code <n> from control
// plane: <body>` (an elog ERROR, SQLSTATE XX000) and the transaction
// aborts (neondatabase/neon pgxn/neon/neon_ddl_handler.c). The control
// plane refuses hashed passwords ("Passwords must be supplied in plain
// text … Hashed passwords are not supported") and passwords below 60 bits
// of entropy (neon.com/docs/manage/roles). The fake replaces the offending
// statement with one that raises that error, so the real server never sees
// the password and aborts the transaction as Neon's would. One difference:
// inside an explicit transaction Neon raises the error at COMMIT, the fake
// at the statement; either way the transaction is rolled back and the
// role keeps its password. Role changes made inside functions or DO blocks
// are not seen (Neon's hook would see them).
//
// Read replicas (neon-api.md §6): a read_only endpoint is a hot standby;
// sessions through it run with default_transaction_read_only=on, and the
// proxy refuses what would turn that off, as a standby refuses read-write
// transactions ("cannot set transaction read-write mode during recovery").

// minEntropyBits is Neon's documented minimum for a password set over SQL.
const minEntropyBits = 60

// refusal is an error the proxy raises in place of a statement.
type refusal struct {
	code, message string
}

// statementRule decides about one statement; nil lets it through.
type statementRule func(toks []token) *refusal

// rewrite applies rule to every statement of sql and replaces each refused
// one with a statement that raises the refusal. ok reports a change.
func rewrite(sql string, rule statementRule) (string, bool) {
	toks := lex(sql)
	var out strings.Builder
	changed := false
	last := 0
	for _, stmt := range splitStatements(toks) {
		r := rule(stmt)
		if r == nil {
			continue
		}
		start, end := stmt[0].pos, stmt[len(stmt)-1].end
		out.WriteString(sql[last:start])
		out.WriteString(raiseStatement(r))
		last, changed = end, true
	}
	if !changed {
		return sql, false
	}
	out.WriteString(sql[last:])
	return out.String(), true
}

// isRefusal reports an error that raiseStatement raised.
func isRefusal(code, message string) bool {
	return (code == "XX000" && strings.HasPrefix(message, controlPlanePrefix)) || (code == "25006" && message == readWriteRefused)
}

const (
	controlPlanePrefix = "Received HTTP code 400 from control plane: "
	readWriteRefused   = "cannot set transaction read-write mode during recovery"
)

// raiseStatement is a DO block that raises r; the message never holds a
// password.
func raiseStatement(r *refusal) string {
	msg := strings.ReplaceAll(r.message, "'", "''")
	msg = strings.ReplaceAll(msg, "$", "")
	return "DO $neonfake$BEGIN RAISE EXCEPTION USING ERRCODE = '" + r.code + "', MESSAGE = '" + msg + "'; END$neonfake$"
}

// rolePasswordRule refuses a CREATE/ALTER ROLE|USER|GROUP whose PASSWORD
// is a hash or too weak.
func rolePasswordRule(toks []token) *refusal {
	if len(toks) < 3 || (!toks[0].is("create") && !toks[0].is("alter")) ||
		(!toks[1].is("role") && !toks[1].is("user") && !toks[1].is("group")) {
		return nil
	}
	// CREATE/ALTER USER MAPPING FOR … OPTIONS (password '…') is a foreign
	// server's password, not a role's.
	if len(toks) > 3 && toks[2].is("mapping") && toks[3].is("for") {
		return nil
	}
	role := toks[2].value
	for i := 3; i < len(toks); i++ {
		t := toks[i]
		if t.is("set") || t.is("reset") || t.is("rename") {
			return nil
		}
		if !t.is("password") || i+1 >= len(toks) || toks[i+1].kind != tokString {
			continue
		}
		pw := toks[i+1].value
		switch {
		case isHashedPassword(pw):
			return &refusal{code: "XX000", message: fmt.Sprintf(
				controlPlanePrefix+"role %q: hashed passwords are not supported; passwords must be supplied in plain text", role)}
		case entropyBits(pw) < minEntropyBits:
			return &refusal{code: "XX000", message: fmt.Sprintf(
				controlPlanePrefix+"role %q: the password is too weak: it has about %d bits of entropy and at least %d are required", role, int(entropyBits(pw)), minEntropyBits)}
		}
	}
	return nil
}

// isHashedPassword reports what PostgreSQL itself takes for an already
// hashed password: a SCRAM-SHA-256 verifier, or md5 and 32 hex digits.
func isHashedPassword(pw string) bool {
	if strings.HasPrefix(pw, "SCRAM-SHA-256$") {
		return true
	}
	if len(pw) != 35 || !strings.HasPrefix(pw, "md5") {
		return false
	}
	for _, c := range pw[3:] {
		if !strings.ContainsRune("0123456789abcdef", c) {
			return false
		}
	}
	return true
}

// entropyBits estimates a password's strength the way this fake defines
// it (Neon does not publish its formula; its guidance is 12+ characters
// of mixed classes, no sequences, no runs): every character contributes
// log2 of the pool its classes span — lower case 26, upper case 26,
// digits 10, ASCII punctuation and space 33, and one per distinct other
// character — except that a character repeating the one before it for a
// third time or more, or continuing an ascending or descending run
// ("abc", "321") beyond its second character, contributes nothing.
func entropyBits(pw string) float64 {
	var lower, upper, digit, punct bool
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
			punct = true
		default:
			other[r] = true
		}
	}
	pool := len(other)
	for _, c := range []struct {
		on   bool
		size int
	}{{lower, 26}, {upper, 26}, {digit, 10}, {punct, 33}} {
		if c.on {
			pool += c.size
		}
	}
	if pool < 2 {
		return 0
	}
	counted := 0
	run, seq, step := 1, 1, rune(0)
	for i, r := range runes {
		if i > 0 {
			d := r - runes[i-1]
			if d == 0 {
				run++
			} else {
				run = 1
			}
			if (d == 1 || d == -1) && d == step && alnum(r) && alnum(runes[i-1]) {
				seq++
			} else if (d == 1 || d == -1) && alnum(r) && alnum(runes[i-1]) {
				seq, step = 2, d
			} else {
				seq, step = 1, 0
			}
		}
		if run > 2 || seq > 2 {
			continue
		}
		counted++
	}
	return float64(counted) * math.Log2(float64(pool))
}

func alnum(r rune) bool {
	return (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9')
}

// readOnlyRule refuses what would make a session through a replica
// read-write: BEGIN/START TRANSACTION/SET TRANSACTION … READ WRITE, and
// SET of transaction_read_only or default_transaction_read_only to off
// (RESET and SET … DEFAULT go back to the startup value, on).
func readOnlyRule(toks []token) *refusal {
	deny := &refusal{code: "25006", message: readWriteRefused}
	if len(toks) < 2 || !(toks[0].is("begin") || toks[0].is("start") || toks[0].is("set")) {
		return nil
	}
	for i := 0; i+1 < len(toks); i++ {
		if toks[i].is("read") && toks[i+1].is("write") {
			return deny
		}
	}
	if !toks[0].is("set") {
		return nil
	}
	i := 1
	if toks[i].is("session") || toks[i].is("local") {
		i++
	}
	if i >= len(toks) || (!toks[i].is("transaction_read_only") && !toks[i].is("default_transaction_read_only")) {
		return nil
	}
	for _, t := range toks[i+1:] {
		switch strings.ToLower(t.value) {
		case "off", "false", "0", "no", "f", "n":
			return deny
		}
	}
	return nil
}

// A token of PostgreSQL's lexical structure, enough to find statements
// and literal values.
type tokenKind int

const (
	tokWord   tokenKind = iota // keyword or unquoted identifier
	tokQuoted                  // "quoted identifier"
	tokString                  // any string literal; value is decoded
	tokSemicolon
	tokOther
)

type token struct {
	kind     tokenKind
	value    string
	pos, end int
}

func (t token) is(word string) bool { return t.kind == tokWord && strings.EqualFold(t.value, word) }

func lex(sql string) []token {
	var toks []token
	i := 0
	for i < len(sql) {
		c := sql[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f':
			i++
		case strings.HasPrefix(sql[i:], "--"):
			for i < len(sql) && sql[i] != '\n' {
				i++
			}
		case strings.HasPrefix(sql[i:], "/*"):
			i = skipBlockComment(sql, i)
		case c == '\'':
			v, end := scanQuoted(sql, i, '\'', false)
			toks = append(toks, token{tokString, v, i, end})
			i = end
		case (c == 'E' || c == 'e') && i+1 < len(sql) && sql[i+1] == '\'':
			v, end := scanQuoted(sql, i+1, '\'', true)
			toks = append(toks, token{tokString, v, i, end})
			i = end
		case (c == 'N' || c == 'n') && i+1 < len(sql) && sql[i+1] == '\'':
			v, end := scanQuoted(sql, i+1, '\'', false)
			toks = append(toks, token{tokString, v, i, end})
			i = end
		case (c == 'U' || c == 'u') && strings.HasPrefix(sql[i+1:], "&'"):
			v, end := scanQuoted(sql, i+2, '\'', false)
			toks = append(toks, token{tokString, decodeUnicodeEscapes(v), i, end})
			i = end
		case (c == 'B' || c == 'b' || c == 'X' || c == 'x') && i+1 < len(sql) && sql[i+1] == '\'':
			_, end := scanQuoted(sql, i+1, '\'', false)
			toks = append(toks, token{tokOther, sql[i:end], i, end})
			i = end
		case c == '"':
			v, end := scanQuoted(sql, i, '"', false)
			toks = append(toks, token{tokQuoted, v, i, end})
			i = end
		case c == '$' && dollarTag(sql[i:]) != "":
			tag := dollarTag(sql[i:])
			body := i + len(tag)
			stop := strings.Index(sql[body:], tag)
			end := len(sql)
			v := sql[body:]
			if stop >= 0 {
				v, end = sql[body:body+stop], body+stop+len(tag)
			}
			toks = append(toks, token{tokString, v, i, end})
			i = end
		case c == ';':
			toks = append(toks, token{tokSemicolon, ";", i, i + 1})
			i++
		case identStart(c):
			j := i + 1
			for j < len(sql) && (identStart(sql[j]) || (sql[j] >= '0' && sql[j] <= '9') || sql[j] == '$') {
				j++
			}
			toks = append(toks, token{tokWord, sql[i:j], i, j})
			i = j
		default:
			toks = append(toks, token{tokOther, sql[i : i+1], i, i + 1})
			i++
		}
	}
	return toks
}

func identStart(c byte) bool {
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c >= 0x80
}

func skipBlockComment(sql string, i int) int {
	depth := 0
	for i < len(sql) {
		switch {
		case strings.HasPrefix(sql[i:], "/*"):
			depth++
			i += 2
		case strings.HasPrefix(sql[i:], "*/"):
			depth--
			i += 2
			if depth == 0 {
				return i
			}
		default:
			i++
		}
	}
	return i
}

// dollarTag returns the $tag$ that s starts with, or "".
func dollarTag(s string) string {
	if len(s) < 2 {
		return ""
	}
	if s[1] == '$' {
		return "$$"
	}
	if !identStart(s[1]) {
		return ""
	}
	for j := 2; j < len(s); j++ {
		switch {
		case s[j] == '$':
			return s[:j+1]
		case identStart(s[j]) || (s[j] >= '0' && s[j] <= '9'):
		default:
			return ""
		}
	}
	return ""
}

// scanQuoted reads a literal opening at sql[i] == q; doubled quotes stand
// for one, and escapes (E'…') are decoded.
func scanQuoted(sql string, i int, q byte, escapes bool) (string, int) {
	var b strings.Builder
	j := i + 1
	for j < len(sql) {
		c := sql[j]
		switch {
		case c == q && j+1 < len(sql) && sql[j+1] == q:
			b.WriteByte(q)
			j += 2
		case c == q:
			return b.String(), j + 1
		case escapes && c == '\\' && j+1 < len(sql):
			n := decodeEscape(sql[j+1:], &b)
			j += 1 + n
		default:
			b.WriteByte(c)
			j++
		}
	}
	return b.String(), j
}

// decodeEscape decodes the backslash escape that s (after the backslash)
// starts with, and returns how many bytes it took.
func decodeEscape(s string, b *strings.Builder) int {
	simple := map[byte]byte{'b': '\b', 'f': '\f', 'n': '\n', 'r': '\r', 't': '\t'}
	if v, ok := simple[s[0]]; ok {
		b.WriteByte(v)
		return 1
	}
	digits := func(max int, ok func(byte) bool, start int) string {
		j := start
		for j < len(s) && j-start < max && ok(s[j]) {
			j++
		}
		return s[start:j]
	}
	octal := func(c byte) bool { return c >= '0' && c <= '7' }
	hex := func(c byte) bool { return strings.IndexByte("0123456789abcdefABCDEF", c) >= 0 }
	switch {
	case octal(s[0]):
		d := digits(3, octal, 0)
		v, _ := strconv.ParseUint(d, 8, 8)
		b.WriteByte(byte(v))
		return len(d)
	case s[0] == 'x':
		if d := digits(2, hex, 1); d != "" {
			v, _ := strconv.ParseUint(d, 16, 8)
			b.WriteByte(byte(v))
			return 1 + len(d)
		}
	case s[0] == 'u' || s[0] == 'U':
		n := 4
		if s[0] == 'U' {
			n = 8
		}
		if d := digits(n, hex, 1); len(d) == n {
			v, _ := strconv.ParseUint(d, 16, 32)
			b.WriteRune(rune(v))
			return 1 + n
		}
	}
	_, size := utf8.DecodeRuneInString(s)
	b.WriteString(s[:size])
	return size
}

// decodeUnicodeEscapes decodes U&'…' escapes (\XXXX, \+XXXXXX, \\) with the
// default escape character.
func decodeUnicodeEscapes(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' {
			b.WriteByte(s[i])
			continue
		}
		switch {
		case strings.HasPrefix(s[i:], `\\`):
			b.WriteByte('\\')
			i++
		case strings.HasPrefix(s[i:], `\+`) && i+8 <= len(s):
			if v, err := strconv.ParseUint(s[i+2:i+8], 16, 32); err == nil {
				b.WriteRune(rune(v))
				i += 7
				continue
			}
			b.WriteByte('\\')
		case i+5 <= len(s):
			if v, err := strconv.ParseUint(s[i+1:i+5], 16, 32); err == nil {
				b.WriteRune(rune(v))
				i += 4
				continue
			}
			b.WriteByte('\\')
		default:
			b.WriteByte('\\')
		}
	}
	return b.String()
}

// splitStatements groups tokens into statements at semicolons.
func splitStatements(toks []token) [][]token {
	var out [][]token
	start := 0
	for i, t := range toks {
		if t.kind == tokSemicolon {
			if i > start {
				out = append(out, toks[start:i])
			}
			start = i + 1
		}
	}
	if start < len(toks) {
		out = append(out, toks[start:])
	}
	return out
}
