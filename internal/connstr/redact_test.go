package connstr

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/rotorhq/rotor/internal/secret"
)

func TestRedact(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   string
		pw   string // must not survive
		want string
	}{
		{
			name: "whole URL is normalised",
			in:   "postgres://alex:AbC123dEf@ep-x.neon.tech:5432/db?sslmode=require",
			pw:   "AbC123dEf",
			want: "postgres://alex:REDACTED@ep-x.neon.tech:5432/db?sslmode=require",
		},
		{
			name: "whole DSN keeps its layout",
			in:   "host=h\tpassword = 'a b c d' user=u",
			pw:   "a b c d",
			want: "host=h\tpassword = 'REDACTED' user=u",
		},
		{
			name: "DSN whose value is a URL",
			in:   "DATABASE_URL=postgresql://u:Secr3tpw@h/db",
			pw:   "Secr3tpw",
			want: "DATABASE_URL=postgresql://u:REDACTED@h/db",
		},
		{
			name: "unencoded '@' in the password: up to the last '@'",
			in:   "postgresql://u:p@ss@w0rd@h/db",
			pw:   "p@ss@w0rd",
			want: "postgresql://u:REDACTED@h/db",
		},
		{
			name: "unencoded '/' and newline in a broken whole URL",
			in:   "postgresql://u:pa/s\ns@h/db?x=1",
			pw:   "pa/s\ns",
			want: "postgresql://u:REDACTED@h/db?x=1",
		},
		{
			name: "free text with two URLs and a query password",
			in:   "old postgresql://a:pw-one1@h1/db new 'postgres://b:pw-two2@h2/db?password=pw-three' done",
			pw:   "pw-one1",
			want: "old postgresql://a:REDACTED@h1/db new 'postgres://b:REDACTED@h2/db?password=REDACTED' done",
		},
		{
			name: "free text, password with a space",
			in:   "connecting to postgresql://u:12345 67@h/db failed",
			pw:   "12345 67",
			want: "connecting to postgresql://u:REDACTED@h/db failed",
		},
		{
			name: "free text, later '@' on the line wins over a clean-looking port",
			in:   "url=postgresql://h:5432/db owner bob@corp\nnext line me@x",
			want: "url=postgresql://h:REDACTED@corp\nnext line me@x",
		},
		{
			name: "free text, URL without password untouched",
			in:   "see postgresql://u@h:5432/db and mail me@example.com",
			want: "see postgresql://u@h:5432/db and mail me@example.com",
		},
		{
			name: "env file keywords",
			in:   "PGHOST=h\nPGPASSWORD=hunter22\nDB_PASSWORD = \"x y z\"\npasswordless=true\n",
			pw:   "hunter22",
			want: "PGHOST=h\nPGPASSWORD=REDACTED\nDB_PASSWORD = \"REDACTED\"\npasswordless=true\n",
		},
		{
			name: "keyword with escapes and unterminated quote",
			in:   `x password=a\ bcde y password='rest of \' text`,
			pw:   `a\ bcde`,
			want: `x password=REDACTED y password='REDACTED`,
		},
		{
			name: "mixed case scheme in free text",
			in:   "got PostgreSQL://u:Zz9876Zz@h",
			pw:   "Zz9876Zz",
			want: "got PostgreSQL://u:REDACTED@h",
		},
		{
			name: "no secrets",
			in:   "nothing to see here: postgres docs",
			want: "nothing to see here: postgres docs",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := Redact(tt.in)
			requireNoLeak(t, got, tt.pw, "Redact")
			require.Equal(t, tt.want, got)
			require.Equal(t, got, Redact(got), "Redact is idempotent")
		})
	}
}

// TestConnNeverPrintsPassword covers every way a Conn is commonly turned
// into text.
func TestConnNeverPrintsPassword(t *testing.T) {
	t.Parallel()
	const pw = "Tr0ub4dor&3-horse"
	conns := map[string]*Conn{
		"url": {User: "u", Password: secret.New(pw), Host: "h", Database: "d", Params: []Param{{"sslmode", "require"}}},
		"dsn": {Form: FormKeyValue, User: "u", Password: secret.New(pw), Host: "h", Database: "d"},
	}
	render := map[string]func(c *Conn) string{
		"Redacted": func(c *Conn) string { return c.Redacted() },
		"String":   func(c *Conn) string { return c.String() },
		"%v":       func(c *Conn) string { return fmt.Sprintf("%v", c) },
		"%+v":      func(c *Conn) string { return fmt.Sprintf("%+v", c) },
		"%s":       func(c *Conn) string { return fmt.Sprintf("%s", c) },
		"%#v":      func(c *Conn) string { return fmt.Sprintf("%#v", c) },
		"value %v": func(c *Conn) string { return fmt.Sprintf("%v", *c) },
		"value %+v": func(c *Conn) string {
			return fmt.Sprintf("%+v", *c)
		},
		"value %#v": func(c *Conn) string { return fmt.Sprintf("%#v", *c) },
		"json": func(c *Conn) string {
			b, err := json.Marshal(c)
			require.NoError(t, err)
			return string(b)
		},
		"slog": func(c *Conn) string {
			var buf bytes.Buffer
			slog.New(slog.NewJSONHandler(&buf, nil)).Info("x", "conn", c, "value", *c)
			return buf.String()
		},
	}
	for cname, c := range conns {
		for rname, r := range render {
			t.Run(cname+"/"+rname, func(t *testing.T) {
				t.Parallel()
				out := r(c)
				require.NotEmpty(t, out)
				requireNoLeak(t, out, pw, rname)
				requireNoLeak(t, out, escape(pw), rname)
			})
		}
	}
}
