package dotenv_test

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"strings"
	"testing"

	"github.com/joho/godotenv"
	"github.com/stretchr/testify/require"

	"github.com/rotorhq/rotor/internal/target/dotenv"
)

const fuzzKey = "DATABASE_URL"

// fuzzForms are ways the managed key may already be written; %s is the old
// value. head and tail are the bytes around the value that must survive.
var fuzzForms = []struct{ format, head, tail string }{
	{"DATABASE_URL=%s\n", "DATABASE_URL=", "\n"},
	{"export DATABASE_URL='%s'\n", "export DATABASE_URL=", "\n"},
	{"DATABASE_URL=\"%s\" # note\n", "DATABASE_URL=", " # note\n"},
	{"DATABASE_URL : '%s'\r\n", "DATABASE_URL : ", "\r\n"},
	{"", "", ""}, // absent: appended
}

// FuzzEdit checks Edit's promises on arbitrary files and values:
//
//   - the managed key reads back (godotenv) as the new value;
//   - every other key reads back as before;
//   - outside the managed statement, every byte is kept;
//   - the only errors are a value no quoting can carry (ErrUnrepresentable)
//     or a file rotor refuses to edit (ErrSyntax), and neither quotes the
//     value.
//
// The file is before + the managed statement in one of fuzzForms + after,
// so the bytes that must not move are known; before alone is also edited
// as a free-form file, where the key may appear anywhere.
func FuzzEdit(f *testing.F) {
	befores := []string{"", "A=1\n", "# c\r\nexport B='x y'\r\n\r\n", "C=\"multi\nline\" D=4", "E=$HOME #c\n", "DATABASE_URL=old\nDATABASE_URL='older'\n", "F=`x`"}
	afters := []string{"", "G=7\n", "# end", "H=\"${G}\"\nI='$G'\n"}
	values := []string{"", "postgres://u:p%40w@h/db?sslmode=require", "it's", "a\nb", `say "hi"`, "$HOME", `x\`, "p#ss w$rd", `'"`, "ü€\u2028"}
	for i, b := range befores {
		for j, a := range afters {
			form := uint8((i + j) % len(fuzzForms))
			f.Add([]byte(b), []byte(a), form, values[(i+1)%len(values)], values[(i*len(afters)+j)%len(values)])
		}
	}

	f.Fuzz(func(t *testing.T, before, after []byte, form uint8, oldValue, newValue string) {
		editFreeForm(t, before, newValue)

		fm := fuzzForms[int(form)%len(fuzzForms)]
		if bytes.Contains(before, []byte(fuzzKey)) || bytes.Contains(after, []byte(fuzzKey)) {
			return
		}
		b := before
		if len(b) > 0 && !bytes.HasSuffix(b, []byte("\n")) {
			b = append(bytes.Clone(b), '\n')
		}
		stmt := ""
		if fm.format != "" {
			stmt = fmt.Sprintf(fm.format, oldValue)
		}
		file := append(append(bytes.Clone(b), stmt...), after...)

		parsedBefore, err1 := godotenv.UnmarshalBytes(b)
		parsedAfter, err2 := godotenv.UnmarshalBytes(after)
		parsed, err3 := godotenv.UnmarshalBytes(file)
		if err1 != nil || err2 != nil || err3 != nil {
			return
		}
		old, present := parsed[fuzzKey]
		if present != (stmt != "") || (present && old != oldValue) {
			return // the statement did not come out as intended
		}
		wantKeys := maps.Clone(parsedBefore)
		maps.Copy(wantKeys, parsedAfter)
		if present {
			wantKeys[fuzzKey] = ""
		}
		if !sameKeys(wantKeys, parsed) || hasKey(parsed, "") {
			return // before, statement and after ran into each other
		}

		out, err := dotenv.Edit(file, map[string]string{fuzzKey: newValue}, []string{fuzzKey})
		if err != nil {
			require.ErrorIs(t, err, dotenv.ErrUnrepresentable)
			requireNoLeak(t, err, newValue)
			return
		}
		got, err := godotenv.UnmarshalBytes(out)
		require.NoError(t, err, "the edited file must parse")
		require.True(t, got[fuzzKey] == newValue, "the managed key must read back as the new value")
		for k, v := range parsed {
			if k != fuzzKey {
				require.True(t, got[k] == v, "unmanaged key %q must read back unchanged", k)
			}
		}
		require.True(t, sameKeys(withKey(parsed, fuzzKey), got), "no key may appear or vanish")

		var value []byte
		if stmt == "" {
			require.True(t, bytes.HasPrefix(out, file), "appending must keep the whole file")
			rest := out[len(file):]
			eol := "\n"
			if i := bytes.IndexByte(file, '\n'); i > 0 && file[i-1] == '\r' {
				eol = "\r\n"
			}
			if len(file) > 0 && !bytes.HasSuffix(file, []byte("\n")) {
				require.True(t, bytes.HasPrefix(rest, []byte(eol)), "a line break must separate the appended key")
				rest = rest[len(eol):]
			}
			require.True(t, bytes.HasPrefix(rest, []byte(fuzzKey+"=")) && bytes.HasSuffix(rest, []byte(eol)), "the appended statement must be KEY=value and a line break")
			value = rest[len(fuzzKey)+1 : len(rest)-len(eol)]
		} else {
			prefix := append(bytes.Clone(b), fm.head...)
			suffix := append([]byte(fm.tail), after...)
			require.True(t, bytes.HasPrefix(out, prefix), "bytes before the managed value must be kept")
			require.True(t, bytes.HasSuffix(out, suffix), "bytes after the managed value must be kept")
			require.GreaterOrEqual(t, len(out), len(prefix)+len(suffix))
			value = out[len(prefix) : len(out)-len(suffix)]
		}
		require.NotContains(t, string(value), "\n", "a written value must stay on one line")
		require.True(t, len(value) >= 2 && (value[0] == '\'' || value[0] == '"') && value[len(value)-1] == value[0], "a written value must be quoted")
	})
}

// editFreeForm edits an arbitrary file in which the managed key may
// appear anywhere, any number of times.
func editFreeForm(t *testing.T, content []byte, value string) {
	t.Helper()
	parsed, perr := godotenv.UnmarshalBytes(content)
	out, err := dotenv.Edit(content, map[string]string{fuzzKey: value}, []string{fuzzKey})
	if err != nil {
		switch {
		case errors.Is(err, dotenv.ErrUnrepresentable):
		case errors.Is(err, dotenv.ErrSyntax):
			require.True(t, perr != nil || hasKey(parsed, ""), "only a file godotenv rejects, or one with a line without '=', may be refused")
		default:
			require.Fail(t, "unexpected error kind", "%v", err)
		}
		requireNoLeak(t, err, value)
		return
	}
	require.NoError(t, perr, "a file godotenv rejects must be refused")
	got, err := godotenv.UnmarshalBytes(out)
	require.NoError(t, err, "the edited file must parse")
	require.True(t, got[fuzzKey] == value, "the managed key must read back as the new value")
	// Another key may expand $DATABASE_URL and so legitimately change.
	if !bytes.Contains(content, []byte("$")) {
		for k, v := range parsed {
			if k != fuzzKey {
				require.True(t, got[k] == v, "unmanaged key %q must read back unchanged", k)
			}
		}
	}
	require.True(t, sameKeys(withKey(parsed, fuzzKey), got), "no key may appear or vanish")
}

func requireNoLeak(t *testing.T, err error, value string) {
	t.Helper()
	// Short values are substrings of any message by chance.
	if len(strings.TrimSpace(value)) >= 12 {
		require.NotContains(t, err.Error(), value, "errors must not contain the value")
	}
}

func sameKeys(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k := range a {
		if _, ok := b[k]; !ok {
			return false
		}
	}
	return true
}

func hasKey(m map[string]string, k string) bool {
	_, ok := m[k]
	return ok
}

func withKey(m map[string]string, k string) map[string]string {
	m = maps.Clone(m)
	m[k] = ""
	return m
}

// FuzzCheckIsEditOfEmpty: Check, which loading a config runs on every
// value with sample passwords, says what Edit of an empty file says of
// the same key, value and quoting: both accept, or both refuse with the
// same message.
func FuzzCheckIsEditOfEmpty(f *testing.F) {
	for _, v := range []string{"", "postgres://u:p%40w@h/db", "it's", "a\nb", `say "hi"`, "$HOME", "x${Y}", `x\`, `'"`, "ü€\u2028", "\x00", "\xff"} {
		for q := range uint8(4) {
			f.Add(fuzzKey, v, q)
		}
	}
	f.Add("1BAD", "x", uint8(0))
	quotes := []dotenv.Quote{"", dotenv.QuoteAuto, dotenv.QuoteSingle, dotenv.QuoteDouble, "backtick"}
	f.Fuzz(func(t *testing.T, key, value string, q uint8) {
		e := dotenv.Editor{Quote: quotes[int(q)%len(quotes)]}
		_, editErr := e.Edit(nil, map[string]string{key: value}, []string{key})
		checkErr := e.Check(key, value)
		if editErr == nil {
			require.NoError(t, checkErr)
			return
		}
		require.EqualError(t, checkErr, editErr.Error())
	})
}
