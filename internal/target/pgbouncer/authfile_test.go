package pgbouncer_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/rotorhq/rotor/internal/target/pgbouncer"
)

func TestParseAuthFile(t *testing.T) {
	t.Parallel()
	type user struct {
		name, secret string
		line         int
	}
	tests := []struct {
		name    string
		content string
		want    []user
		broken  string // substring of the error; "" when the file is valid
	}{
		{name: "empty", content: ""},
		{name: "one entry", content: `"app" "pw"` + "\n", want: []user{{"app", "pw", 1}}},
		{name: "no final newline", content: `"app" "pw"`, want: []user{{"app", "pw", 1}}},
		{name: "comments, blank lines and indentation", content: "; users\n\n  \t\"a\" \"1\"\n;\"b\" \"2\"\n\"c\" \"3\"\n",
			want: []user{{"a", "1", 3}, {"c", "3", 5}}},
		{name: "doubled quotes", content: `"say ""hi""" "p""w"` + "\n", want: []user{{`say "hi"`, `p"w`, 1}}},
		{name: "rest of the line ignored", content: `"a" "1" "extra" and more` + "\n" + `"b"	"2"` + "\r\n",
			want: []user{{"a", "1", 1}, {"b", "2", 2}}},
		{name: "SCRAM verifier", content: `"app_blue" "SCRAM-SHA-256$4096:c2FsdA==$c3RvcmVk:c2VydmVy"` + "\n",
			want: []user{{"app_blue", "SCRAM-SHA-256$4096:c2FsdA==$c3RvcmVk:c2VydmVy", 1}}},
		{name: "empty user and secret", content: `"" ""` + "\n", want: []user{{"", "", 1}}},
		{name: "hash is not a comment", content: "\"a\" \"1\"\n# note\n\"b\" \"2\"\n", broken: "line 2 does not start with a double quote"},
		{name: "unquoted user", content: "app pw\n", broken: "line 1"},
		{name: "unterminated user", content: `"app pw` + "\n", broken: "closing quote is missing"},
		{name: "missing secret", content: `"app"` + "\n", broken: "secret after the user name is missing"},
		{name: "unterminated secret", content: `"app" "pw` + "\n", broken: "secret's closing quote is missing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			entries, err := pgbouncer.ParseAuthFile([]byte(tt.content))
			if tt.broken != "" {
				require.ErrorIs(t, err, pgbouncer.ErrBrokenFile)
				require.ErrorContains(t, err, tt.broken)
				return
			}
			require.NoError(t, err)
			got := make([]user, len(entries))
			for i, e := range entries {
				got[i] = user{e.User, e.Secret.Reveal(), e.Line}
			}
			if len(tt.want) == 0 {
				require.Empty(t, got)
				return
			}
			require.Equal(t, tt.want, got)
		})
	}
}

func TestSetEntry(t *testing.T) {
	t.Parallel()
	const v = "SCRAM-SHA-256$4096:bmV3$bmV3:bmV3"
	tests := []struct {
		name    string
		content string
		user    string
		want    string
		err     string
	}{
		{name: "empty file", content: "", user: "app", want: `"app" "` + v + `"` + "\n"},
		{name: "append after last line", content: "; list\n\"other\" \"x\"\n", user: "app",
			want: "; list\n\"other\" \"x\"\n\"app\" \"" + v + "\"\n"},
		{name: "append adds the missing newline", content: `"other" "x"`, user: "app",
			want: "\"other\" \"x\"\n\"app\" \"" + v + "\"\n"},
		{name: "replace in place, keeping indentation, the rest of the line and CRLF",
			content: "\"a\" \"1\"\r\n  \"app\"   \"old\" ; keep\r\n\"b\" \"2\"\r\n", user: "app",
			want: "\"a\" \"1\"\r\n  \"app\" \"" + v + "\" ; keep\r\n\"b\" \"2\"\r\n"},
		{name: "user with a quote", content: "\"o\"\"k\" \"old\"\n", user: `o"k`, want: "\"o\"\"k\" \"" + v + "\"\n"},
		{name: "user names are case-sensitive", content: "\"App\" \"old\"\n", user: "app",
			want: "\"App\" \"old\"\n\"app\" \"" + v + "\"\n"},
		{name: "commented-out entry is not the user's", content: ";\"app\" \"old\"\n", user: "app",
			want: ";\"app\" \"old\"\n\"app\" \"" + v + "\"\n"},
		{name: "duplicate user refused", content: "\"app\" \"1\"\n\"b\" \"2\"\n\"app\" \"3\"\n", user: "app",
			err: "listed 2 times (lines 1, 3)"},
		{name: "broken file refused", content: "\"a\" \"1\"\nnot quoted\n", user: "app", err: "line 2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			out, err := pgbouncer.SetEntry([]byte(tt.content), tt.user, v)
			if tt.err != "" {
				require.ErrorIs(t, err, pgbouncer.ErrBrokenFile)
				require.ErrorContains(t, err, tt.err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, string(out))
			// Whatever we write, PgBouncer's reading of it finds the user once.
			entries, err := pgbouncer.ParseAuthFile(out)
			require.NoError(t, err)
			n := 0
			for _, e := range entries {
				if e.User == tt.user {
					n++
					require.Equal(t, v, e.Secret.Reveal())
				}
			}
			require.Equal(t, 1, n)
		})
	}
}

// FuzzSetEntry: editing any file PgBouncer can read yields a file it can
// read, with the user's entry holding the new secret and every other
// entry unchanged.
func FuzzSetEntry(f *testing.F) {
	f.Add([]byte("; c\n\"a\" \"1\"\n  \"b\" \"2\" x\n"), "b", "new")
	f.Add([]byte(`"q""q" "s"`), `q"q`, `v"v`)
	f.Fuzz(func(t *testing.T, content []byte, user, secretText string) {
		before, err := pgbouncer.ParseAuthFile(content)
		if err != nil {
			return
		}
		out, err := pgbouncer.SetEntry(content, user, secretText)
		if err != nil {
			require.ErrorIs(t, err, pgbouncer.ErrBrokenFile)
			return
		}
		after, err := pgbouncer.ParseAuthFile(out)
		require.NoError(t, err)
		others := func(es []pgbouncer.Entry) []string {
			var s []string
			for _, e := range es {
				if e.User != user {
					s = append(s, e.User+"\x00"+e.Secret.Reveal())
				}
			}
			return s
		}
		require.Equal(t, others(before), others(after))
		n := 0
		for _, e := range after {
			if e.User == user {
				n++
				require.Equal(t, secretText, e.Secret.Reveal())
			}
		}
		require.Equal(t, 1, n)
	})
}
