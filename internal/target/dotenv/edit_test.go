package dotenv_test

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/rotorhq/rotor/internal/target"
	"github.com/rotorhq/rotor/internal/target/dotenv"
)

const url1 = "postgres://app:pw1@host/db?sslmode=require"

func TestEdit(t *testing.T) {
	t.Parallel()

	one := map[string]string{"DATABASE_URL": url1}
	tests := []struct {
		name    string
		quote   dotenv.Quote
		content string
		values  map[string]string
		keys    []string
		want    string
	}{
		{
			name:    "empty file",
			content: "",
			want:    "DATABASE_URL='" + url1 + "'\n",
		},
		{
			name:    "missing key appended after a line break the file lacks",
			content: "A=1",
			want:    "A=1\nDATABASE_URL='" + url1 + "'\n",
		},
		{
			name:    "last line is a comment without line break",
			content: "# tail",
			want:    "# tail\nDATABASE_URL='" + url1 + "'\n",
		},
		{
			name:    "comments, blank lines, order and inline comment kept",
			content: "# app\n\nA=1\nDATABASE_URL=old # primary\n\n# tail\nB=\"two\"\n",
			want:    "# app\n\nA=1\nDATABASE_URL='" + url1 + "' # primary\n\n# tail\nB=\"two\"\n",
		},
		{
			name:    "export prefix kept",
			content: "export DATABASE_URL=old\nexport A=1\n",
			want:    "export DATABASE_URL='" + url1 + "'\nexport A=1\n",
		},
		{
			name:    "CRLF kept and used for appended keys",
			content: "A=1\r\nDATABASE_URL=old\r\n",
			values:  map[string]string{"DATABASE_URL": url1, "PGPASSWORD": "pw1"},
			keys:    []string{"DATABASE_URL", "PGPASSWORD"},
			want:    "A=1\r\nDATABASE_URL='" + url1 + "'\r\nPGPASSWORD='pw1'\r\n",
		},
		{
			name:    "CRLF blank lines only",
			content: "\r\n\r\n",
			want:    "\r\n\r\nDATABASE_URL='" + url1 + "'\r\n",
		},
		{
			name:    "single-quoted old value",
			content: "DATABASE_URL='old'\nA=1\n",
			want:    "DATABASE_URL='" + url1 + "'\nA=1\n",
		},
		{
			name:    "double-quoted old value with escapes",
			content: "DATABASE_URL=\"o\\\"l\\nd\" # c\nA=1\n",
			want:    "DATABASE_URL='" + url1 + "' # c\nA=1\n",
		},
		{
			name:    "multi-line double-quoted old value replaced whole",
			content: "A=1\nDATABASE_URL=\"line1\nline2\nline3\"\nB=2\n",
			want:    "A=1\nDATABASE_URL='" + url1 + "'\nB=2\n",
		},
		{
			name:    "multi-line single-quoted old value in a CRLF file",
			content: "DATABASE_URL='l1\r\nl2'\r\nB=2\r\n",
			want:    "DATABASE_URL='" + url1 + "'\r\nB=2\r\n",
		},
		{
			name:    "backtick-quoted old value",
			content: "DATABASE_URL=`old`\n",
			want:    "DATABASE_URL='" + url1 + "'\n",
		},
		{
			name:    "blanks around the separator kept",
			content: "DATABASE_URL =  old  \t\n",
			want:    "DATABASE_URL =  '" + url1 + "'  \t\n",
		},
		{
			name:    "YAML-style separator kept",
			content: "DATABASE_URL: old\n",
			want:    "DATABASE_URL: '" + url1 + "'\n",
		},
		{
			name:    "empty old value",
			content: "DATABASE_URL=\nA=1\n",
			want:    "DATABASE_URL='" + url1 + "'\nA=1\n",
		},
		{
			name:    "empty old value at the end of the file",
			content: "DATABASE_URL=",
			want:    "DATABASE_URL='" + url1 + "'",
		},
		{
			name:    "every occurrence of a repeated key updated",
			content: "DATABASE_URL=a\nA=1\nexport DATABASE_URL='b'\n",
			want:    "DATABASE_URL='" + url1 + "'\nA=1\nexport DATABASE_URL='" + url1 + "'\n",
		},
		{
			name:    "similar names untouched",
			content: "DATABASE_URL_OLD=x\nMY_DATABASE_URL=y\n#DATABASE_URL=z\n",
			want:    "DATABASE_URL_OLD=x\nMY_DATABASE_URL=y\n#DATABASE_URL=z\nDATABASE_URL='" + url1 + "'\n",
		},
		{
			name:    "a key inside another key's multi-line value is not a statement",
			content: "A=\"x\nDATABASE_URL=fake\n\"\n",
			want:    "A=\"x\nDATABASE_URL=fake\n\"\nDATABASE_URL='" + url1 + "'\n",
		},
		{
			name:    "a reference to the managed key is kept as written",
			content: "DATABASE_URL=old\nCOPY=${DATABASE_URL}\n",
			want:    "DATABASE_URL='" + url1 + "'\nCOPY=${DATABASE_URL}\n",
		},
		{
			name:    "two statements on one line",
			content: "A='1' DATABASE_URL='old' # c\n",
			want:    "A='1' DATABASE_URL='" + url1 + "' # c\n",
		},
		{
			name:    "unchanged value rewrites to identical bytes",
			content: "# c\nDATABASE_URL='" + url1 + "'\n",
			want:    "# c\nDATABASE_URL='" + url1 + "'\n",
		},
		{
			name:    "appended in keys order, then the rest sorted",
			content: "A=1\n",
			values:  map[string]string{"Z_EXTRA": "z", "B_KEY": "b", "A_KEY": "a", "M_EXTRA": "m"},
			keys:    []string{"B_KEY", "A_KEY"},
			want:    "A=1\nB_KEY='b'\nA_KEY='a'\nM_EXTRA='m'\nZ_EXTRA='z'\n",
		},
		{
			name:    "single quote in the value: double quotes",
			content: "DATABASE_URL=old\n",
			values:  map[string]string{"DATABASE_URL": "postgres://app:it's@h/db"},
			want:    "DATABASE_URL=\"postgres://app:it's@h/db\"\n",
		},
		{
			name:   "line breaks in the value: escaped in double quotes",
			values: map[string]string{"DATABASE_URL": "a\nb\r\nc"},
			want:   "DATABASE_URL=\"a\\nb\\r\\nc\"\n",
		},
		{
			name:   "characters that need no escaping in single quotes",
			values: map[string]string{"DATABASE_URL": `a$B ${C} #d "e" \f` + "`g`"},
			want:   "DATABASE_URL='a$B ${C} #d \"e\" \\f`g`'\n",
		},
		{
			name:    "quote: double",
			quote:   dotenv.QuoteDouble,
			content: "DATABASE_URL='old'\n",
			values:  map[string]string{"DATABASE_URL": "a $b $ #c 'd'"},
			want:    "DATABASE_URL=\"a $b $ #c 'd'\"\n",
		},
		{
			name:    "quote: single",
			quote:   dotenv.QuoteSingle,
			content: "DATABASE_URL=\"old\"\n",
			values:  map[string]string{"DATABASE_URL": "a $B"},
			want:    "DATABASE_URL='a $B'\n",
		},
		{
			name:   "empty value",
			values: map[string]string{"DATABASE_URL": ""},
			want:   "DATABASE_URL=''\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			values, keys := tt.values, tt.keys
			if values == nil {
				values = one
			}
			if keys == nil && len(values) == 1 {
				for k := range values {
					keys = []string{k}
				}
			}
			got, err := dotenv.Editor{Quote: tt.quote}.Edit([]byte(tt.content), values, keys)
			require.NoError(t, err)
			requireSameFile(t, []byte(tt.want), got)

			parsed, err := dotenv.Parse(got)
			require.NoError(t, err)
			for k, v := range values {
				require.True(t, parsed[k] == v, "%s must read back exactly", k)
			}
			again, err := dotenv.Editor{Quote: tt.quote}.Edit(got, values, keys)
			require.NoError(t, err)
			requireSameFile(t, got, again)
		})
	}
}

func TestEditErrors(t *testing.T) {
	t.Parallel()

	const canary = "canary7f3a"
	tests := []struct {
		name    string
		quote   dotenv.Quote
		content string
		values  map[string]string
		keys    []string
		wantIs  []error
		wantMsg []string
	}{
		{
			name:    "both quote kinds",
			values:  map[string]string{"DATABASE_URL": `pw'` + canary + `"x`},
			wantIs:  []error{dotenv.ErrUnrepresentable, target.ErrInvalid},
			wantMsg: []string{"the value for DATABASE_URL cannot be written so that godotenv and Node's dotenv both read it back", "a single quote (')", `a double quote (")`, `"{{.URL}}"`, `"{{.Password}}"`},
		},
		{
			name:    "single quote and backslash",
			values:  map[string]string{"DATABASE_URL": `pw'` + canary + `\x`},
			wantIs:  []error{dotenv.ErrUnrepresentable},
			wantMsg: []string{"a single quote (')", `a backslash (\)`},
		},
		{
			name:    "single quote and a variable",
			values:  map[string]string{"DATABASE_URL": `pw'` + canary + `$HOME`},
			wantIs:  []error{dotenv.ErrUnrepresentable},
			wantMsg: []string{"a single quote (')", "a $ followed by a variable name"},
		},
		{
			name:    "single quote and ${variable}",
			values:  map[string]string{"DATABASE_URL": `pw'` + canary + `${_X}`},
			wantIs:  []error{dotenv.ErrUnrepresentable},
			wantMsg: []string{"a $ followed by a variable name"},
		},
		{
			name:    "single quote and $(variable)",
			values:  map[string]string{"DATABASE_URL": `pw'` + canary + `$(9)`},
			wantIs:  []error{dotenv.ErrUnrepresentable},
			wantMsg: []string{"a $ followed by a variable name"},
		},
		{
			name:    "line break and double quote",
			values:  map[string]string{"DATABASE_URL": "pw\n" + canary + `"`},
			wantIs:  []error{dotenv.ErrUnrepresentable},
			wantMsg: []string{"a line break", `a double quote (")`},
		},
		{
			name:    "trailing backslash",
			values:  map[string]string{"DATABASE_URL": canary + `\`},
			wantIs:  []error{dotenv.ErrUnrepresentable},
			wantMsg: []string{`a trailing backslash (\)`, `a backslash (\)`},
		},
		{
			name:    "quote: single with a single quote",
			quote:   dotenv.QuoteSingle,
			values:  map[string]string{"DATABASE_URL": canary + "'"},
			wantIs:  []error{dotenv.ErrUnrepresentable},
			wantMsg: []string{"cannot be single-quoted (quote: single); set quote: auto or double"},
		},
		{
			name:    "quote: double with a variable",
			quote:   dotenv.QuoteDouble,
			values:  map[string]string{"DATABASE_URL": canary + "$A"},
			wantIs:  []error{dotenv.ErrUnrepresentable},
			wantMsg: []string{"cannot be double-quoted", "(quote: double); set quote: auto or single"},
		},
		{
			name:    "invalid UTF-8",
			values:  map[string]string{"DATABASE_URL": canary + "\xff"},
			wantIs:  []error{dotenv.ErrUnrepresentable},
			wantMsg: []string{"is not valid UTF-8"},
		},
		{
			name:    "NUL byte",
			values:  map[string]string{"DATABASE_URL": canary + "\x00"},
			wantIs:  []error{dotenv.ErrUnrepresentable},
			wantMsg: []string{"contains a NUL byte"},
		},
		{
			name:    "unknown quote mode",
			quote:   "backtick",
			values:  map[string]string{"DATABASE_URL": canary},
			wantIs:  []error{target.ErrInvalid},
			wantMsg: []string{`quote "backtick" is not one of auto, single, double`},
		},
		{
			name:    "key starting with a digit",
			values:  map[string]string{"1URL": canary},
			wantIs:  []error{target.ErrInvalid},
			wantMsg: []string{`key "1URL" is not a name both godotenv and Node's dotenv accept`},
		},
		{
			name:    "key with a dash",
			values:  map[string]string{"DATABASE-URL": canary},
			wantIs:  []error{target.ErrInvalid},
			wantMsg: []string{`key "DATABASE-URL" is not a name`},
		},
		{
			name:    "listed key without a value",
			values:  map[string]string{"DATABASE_URL": canary},
			keys:    []string{"DATABASE_URL", "PGPASSWORD"},
			wantIs:  []error{target.ErrInvalid},
			wantMsg: []string{"key PGPASSWORD is listed but has no value"},
		},
		{
			name:    "existing file with an unterminated quote",
			content: "A=1\n\nOTHER=\"" + canary + "\n",
			values:  map[string]string{"DATABASE_URL": "x"},
			wantIs:  []error{dotenv.ErrSyntax},
			wantMsg: []string{"line 3: the double-quoted value is never closed"},
		},
		{
			name:    "existing file with a line without '='",
			content: "A=1\n" + canary,
			values:  map[string]string{"DATABASE_URL": "x"},
			wantIs:  []error{dotenv.ErrSyntax},
			wantMsg: []string{"line 2 holds text without '='"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			keys := tt.keys
			if keys == nil {
				for k := range tt.values {
					keys = append(keys, k)
				}
			}
			got, err := dotenv.Editor{Quote: tt.quote}.Edit([]byte(tt.content), tt.values, keys)
			require.Error(t, err)
			require.Nil(t, got)
			for _, is := range tt.wantIs {
				require.ErrorIs(t, err, is)
			}
			for _, msg := range tt.wantMsg {
				require.ErrorContains(t, err, msg)
			}
			require.NotContains(t, err.Error(), canary, "errors must not quote values or file content")
		})
	}
}

func TestParse(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name    string
		content string
		want    map[string]string
		wantMsg string
	}{
		{name: "empty", content: "", want: map[string]string{}},
		{
			name:    "last occurrence wins, like godotenv and Node",
			content: "A=1\nA=2\n",
			want:    map[string]string{"A": "2"},
		},
		{
			name:    "expansion outside single quotes",
			content: "A=x\nB=$A\nC='$A'\nD=\"$A\"\n",
			want:    map[string]string{"A": "x", "B": "x", "C": "$A", "D": "x"},
		},
		{
			name:    "error names the line, not the content",
			content: "A=1\nB='canary7f3a\n",
			wantMsg: "line 2: the single-quoted value is never closed",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := dotenv.Parse([]byte(tt.content))
			if tt.wantMsg != "" {
				require.ErrorIs(t, err, dotenv.ErrSyntax)
				require.ErrorContains(t, err, tt.wantMsg)
				require.NotContains(t, err.Error(), "canary")
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
		})
	}
}

// requireSameFile compares two dotenv files without printing them: they
// hold secrets in real use, and a position is enough to find the fault.
func requireSameFile(t *testing.T, want, got []byte) {
	t.Helper()
	if bytes.Equal(want, got) {
		return
	}
	i := 0
	for i < len(want) && i < len(got) && want[i] == got[i] {
		i++
	}
	line := bytes.Count(want[:i], []byte("\n")) + 1
	require.Fail(t, "files differ", "first difference at byte %d (line %d); want %d bytes, got %d bytes", i, line, len(want), len(got))
}

// Examples double as documentation of the quoting rules.
func ExampleEdit() {
	in := []byte("# database\nexport DATABASE_URL=postgres://old@host/db # primary\nLOG_LEVEL=info\n")
	out, err := dotenv.Edit(in, map[string]string{
		"DATABASE_URL": "postgres://app:s3cr%40t@host/db",
		"PGPASSWORD":   "it's",
	}, []string{"DATABASE_URL", "PGPASSWORD"})
	if err != nil {
		panic(err)
	}
	fmt.Print(string(out))
	// Output:
	// # database
	// export DATABASE_URL='postgres://app:s3cr%40t@host/db' # primary
	// LOG_LEVEL=info
	// PGPASSWORD="it's"
}
