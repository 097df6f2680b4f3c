package dotenv

import (
	"bytes"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/joho/godotenv"
	"github.com/stretchr/testify/require"
)

// scanSeeds are dotenv files covering godotenv's quirks; FuzzScan and
// FuzzEdit start from them.
var scanSeeds = []string{
	"",
	"A=1",
	"A=1\nB=2\n",
	"# comment\n\nA=1 # inline\n#B=2\n",
	"export A=1\nexport\tB='2'\n",
	"export=1\nexportA=2\n",
	"A = 1 \nB:2\nC: '3'\n",
	"A='multi\nline'\nB=\"multi\nline \\\"q\\\" \\n\"\n",
	"A=\"x\r\ny\"\r\nB=2\r\n",
	"A=a #b #c\nB=a#b\nC= #x\n",
	"A='1' B=\"2\" C=3\n",
	"A=\nB=\n",
	"A=",
	"A.B_c9=1\n",
	"ключ=значение\n",
	"A=`backtick`\n",
	"A='ends with backslash\\' still'\n",
	"A=$HOME ${B} $(C) \\$D\nE=\"$A\"\nF='$A'\n",
	"A=1\rB=2\r",
	"\ufeffA=1\n",
	"A=\"unterminated\n",
	"A B=1\n",
	"A-B=1\n",
	"just text",
	"export ",
	"A=\u00a0x\u00a0\n",
	"A=x\u0085#y\n",
	"\u0085A=1\n",
}

func FuzzScan(f *testing.F) {
	for _, s := range scanSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, content []byte) {
		want, gerr := godotenv.UnmarshalBytes(content)
		folded, orig := foldCRLF(content)
		stmts, serr := scan(folded)
		require.Equal(t, gerr == nil, serr == nil, "scan and godotenv must agree on whether the file parses (godotenv error: %v, scan error: %v)", gerr != nil, serr)
		if serr != nil {
			require.ErrorIs(t, serr, ErrSyntax)
			return
		}

		keys := map[string]bool{}
		last := map[string]statement{}
		for _, st := range stmts {
			keys[st.key] = true
			last[st.key] = st
			require.Equal(t, string(folded[st.valueStart:st.valueEnd]),
				strings.ReplaceAll(string(content[orig[st.valueStart]:orig[st.valueEnd]]), "\r\n", "\n"),
				"offsets must map back to the same bytes of the original file")
		}
		require.Equal(t, slices.Sorted(maps.Keys(want)), slices.Sorted(maps.Keys(keys)), "scan must find the keys godotenv finds")

		for key, st := range last {
			span := folded[st.valueStart:st.valueEnd]
			if bytes.ContainsRune(span, '$') || bytes.Contains(span, []byte("\r\n")) {
				// Expansion depends on earlier statements, and a "\r\n"
				// left after folding would be folded again.
				continue
			}
			got := ""
			if len(span) > 0 {
				// The trailing " #" keeps godotenv from cutting an
				// unquoted span at an earlier " #" it holds.
				alone, err := godotenv.UnmarshalBytes(append(append([]byte("X="), span...), " #\n"...))
				require.NoError(t, err, "a value span must parse on its own")
				got = alone["X"]
			}
			require.True(t, got == want[key], "the value span of the last %q must be exactly what godotenv read", key)
		}
	})
}

func TestFoldCRLF(t *testing.T) {
	t.Parallel()

	tests := []struct {
		in, folded string
		orig       []int
	}{
		{in: "", folded: "", orig: []int{0}},
		{in: "a\r\nb", folded: "a\nb", orig: []int{0, 1, 3, 4}},
		{in: "\r\r\n\n", folded: "\r\n\n", orig: []int{0, 1, 3, 4}},
		{in: "a\r", folded: "a\r", orig: []int{0, 1, 2}},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			t.Parallel()
			folded, orig := foldCRLF([]byte(tt.in))
			require.Equal(t, tt.folded, string(folded))
			require.Equal(t, tt.orig, orig)
		})
	}
}

func TestScanErrorsNameLinesNotContent(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name, content, wantMsg string
	}{
		{"unterminated double quote", "A=1\n\nB=\"secret-canary\n", `line 3: the double-quoted value is never closed`},
		{"unterminated single quote", "A='secret-canary\\'\n", `line 1: the single-quoted value is never closed (or its closing quote follows a backslash)`},
		{"bad key character", "A=1\nsecret-canary=2\n", `line 2: a key holds a character other than`},
		{"unquoted value on two lines", "A=1\nB=\"x\"\nsecret canary\n", `line 3: a key holds a character other than`},
		{"dangling export", "A=1\nexport ", `line 2: "export" is not followed by an assignment`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, gerr := godotenv.UnmarshalBytes([]byte(tt.content))
			require.Error(t, gerr, "the case must be invalid for godotenv too")
			folded, _ := foldCRLF([]byte(tt.content))
			_, err := scan(folded)
			require.ErrorIs(t, err, ErrSyntax)
			require.ErrorContains(t, err, tt.wantMsg)
			require.NotContains(t, err.Error(), "canary")
		})
	}
}
