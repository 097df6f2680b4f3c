package dotenv

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"slices"
	"sort"

	"github.com/joho/godotenv"

	"github.com/rotorhq/rotor/internal/target"
)

var (
	// ErrSyntax: the existing file is not valid dotenv; rotor does not
	// guess what a broken file meant.
	ErrSyntax = errors.New("not valid dotenv syntax")
	// ErrUnrepresentable: a value holds characters that no quoting reads
	// back unchanged in both godotenv and Node's dotenv.
	ErrUnrepresentable = fmt.Errorf("value not representable in dotenv syntax: %w", target.ErrInvalid)
)

// validKey reports whether k is in the intersection of what godotenv,
// Node's dotenv and POSIX shells accept as a variable name: letters,
// digits and '_', not starting with a digit.
func validKey(k string) bool {
	if k == "" || '0' <= k[0] && k[0] <= '9' {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

// Editor rewrites the values of some keys in a dotenv file and keeps every
// other byte.
type Editor struct {
	// Quote chooses the quoting of written values; "" means QuoteAuto.
	Quote Quote
}

// Edit is Editor{Quote: QuoteAuto}.Edit.
func Edit(content []byte, values map[string]string, keys []string) ([]byte, error) {
	return Editor{Quote: QuoteAuto}.Edit(content, values, keys)
}

// Edit returns content with each key in values set to its value.
//
// Only the values of managed keys change: comments, blank lines, order,
// "export " prefixes, CRLF line endings, inline comments after a value and
// every other statement stay byte for byte. A value is replaced wherever
// godotenv sees its key, quoted or not, spanning lines or not.
//
// A key that appears several times is updated everywhere. godotenv and
// Node's dotenv both keep the last occurrence, but shells, Docker's
// --env-file and hand-written loaders differ, and a stale first copy would
// be a password that outlives its rotation.
//
// Keys missing from the file are appended at its end in keys order (then
// any keys of values missing from keys, sorted), after a line break if the
// file does not end with one, using the file's own line ending.
//
// The result is parsed back with godotenv before it is returned, and each
// managed key must read back exactly. Errors never contain a value or any
// text of content; they carry line numbers instead.
func (e Editor) Edit(content []byte, values map[string]string, keys []string) ([]byte, error) {
	q, err := e.quote()
	if err != nil {
		return nil, err
	}
	order, err := managedOrder(values, keys)
	if err != nil {
		return nil, err
	}
	written := make(map[string]string, len(order))
	for _, k := range order {
		if written[k], err = quoteValue(k, values[k], q); err != nil {
			return nil, err
		}
	}

	folded, orig := foldCRLF(content)
	stmts, err := scan(folded)
	if err != nil {
		return nil, err
	}
	if _, err := godotenv.UnmarshalBytes(content); err != nil {
		// godotenv's message quotes the file, which may hold secrets.
		return nil, fmt.Errorf("godotenv cannot parse the existing file but rotor's reader can, which is a bug in rotor; please report it, and check the file's syntax meanwhile: %w", ErrSyntax)
	}

	var out bytes.Buffer
	out.Grow(len(content) + 256)
	last := 0
	seen := make(map[string]bool, len(order))
	for _, st := range stmts {
		if st.key == "" {
			return nil, fmt.Errorf("line %d holds text without '=', which godotenv reads as a value with no name; remove it or turn it into KEY=value: %w", st.line, ErrSyntax)
		}
		w, ok := written[st.key]
		if !ok {
			continue
		}
		seen[st.key] = true
		start, end := orig[st.valueStart], orig[st.valueEnd]
		out.Write(content[last:start])
		out.WriteString(w)
		last = end
	}
	out.Write(content[last:])

	eol := lineEnding(content)
	needsBreak := len(content) > 0 && !bytes.HasSuffix(content, []byte("\n"))
	for _, k := range order {
		if seen[k] {
			continue
		}
		if needsBreak {
			out.WriteString(eol)
			needsBreak = false
		}
		out.WriteString(k + "=" + written[k] + eol)
	}

	result := out.Bytes()
	if err := readsBack(result, order, values); err != nil {
		return nil, err
	}
	return result, nil
}

// Check reports what Edit of an empty file would say of value under key,
// without the file: the value quoted the editor's way must read back
// unchanged with godotenv. Loading a config checks every value with
// several sample passwords.
func (e Editor) Check(key, value string) error {
	q, err := e.quote()
	if err != nil {
		return err
	}
	if err := checkKeys([]string{key}); err != nil {
		return err
	}
	w, err := quoteValue(key, value, q)
	if err != nil {
		return err
	}
	return readsBack([]byte(key+"="+w+"\n"), []string{key}, map[string]string{key: value})
}

// quote is the editor's quoting, auto when unset.
func (e Editor) quote() (Quote, error) {
	q := cmp.Or(e.Quote, QuoteAuto)
	if !q.valid() {
		return "", fmt.Errorf("quote %q is not one of auto, single, double; fix the target's quote option: %w", q, target.ErrInvalid)
	}
	return q, nil
}

// readsBack parses an edited file with godotenv and requires each of keys
// to hold its value.
func readsBack(result []byte, keys []string, values map[string]string) error {
	got, err := godotenv.UnmarshalBytes(result)
	if err != nil {
		return fmt.Errorf("the edited file would not parse with godotenv, so it was not written; this is a bug in rotor, please report it: %w", ErrSyntax)
	}
	for _, k := range keys {
		if got[k] != values[k] {
			return fmt.Errorf("the edited file would not read back the new value of %s, so it was not written; this is a bug in rotor, please report it: %w", k, ErrUnrepresentable)
		}
	}
	return nil
}

// checkKeys refuses a key that is not a name both godotenv and Node's
// dotenv read back.
func checkKeys(keys []string) error {
	for _, k := range keys {
		if !validKey(k) {
			return fmt.Errorf("key %q is not a name both godotenv and Node's dotenv accept (letters, digits and '_', not starting with a digit); rename it in the target's values: %w", k, target.ErrInvalid)
		}
	}
	return nil
}

// managedOrder returns the keys to write: keys first, in order and without
// repeats, then keys of values that keys does not list, sorted so that the
// file's layout does not depend on map order.
func managedOrder(values map[string]string, keys []string) ([]string, error) {
	order := make([]string, 0, len(values))
	for _, k := range keys {
		if _, ok := values[k]; !ok {
			return nil, fmt.Errorf("key %s is listed but has no value; this is a bug in the caller: %w", k, target.ErrInvalid)
		}
		if !slices.Contains(order, k) {
			order = append(order, k)
		}
	}
	var extra []string
	for k := range values {
		if !slices.Contains(order, k) {
			extra = append(extra, k)
		}
	}
	sort.Strings(extra)
	order = append(order, extra...)
	if err := checkKeys(order); err != nil {
		return nil, err
	}
	return order, nil
}

// lineEnding returns the file's line ending, judged by its first line.
func lineEnding(content []byte) string {
	if i := bytes.IndexByte(content, '\n'); i > 0 && content[i-1] == '\r' {
		return "\r\n"
	}
	return "\n"
}

// Parse reads a dotenv file the way godotenv v1.5.1 does (last occurrence
// of a key wins, $VAR expanded outside single quotes). Its errors carry a
// line number but, unlike godotenv's, no text of the file.
func Parse(content []byte) (map[string]string, error) {
	m, err := godotenv.UnmarshalBytes(content)
	if err == nil {
		return m, nil
	}
	folded, _ := foldCRLF(content)
	if _, err := scan(folded); err != nil {
		return nil, err
	}
	return nil, fmt.Errorf("the file does not parse as dotenv; check its syntax: %w", ErrSyntax)
}
