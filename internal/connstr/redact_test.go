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
			name: "whole URL",
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
		// The examples of issue 13: everything but the secret byte-identical.
		{
			name: "URL followed by keyword/value text",
			in:   "postgresql://u:pw@h/db sslmode=require password=kv2secret",
			pw:   "kv2secret",
			want: "postgresql://u:REDACTED@h/db sslmode=require password=REDACTED",
		},
		{
			name: "mysql URL",
			in:   "mysql://u:s3cr3t@h/db",
			pw:   "s3cr3t",
			want: "mysql://u:REDACTED@h/db",
		},
		{
			name: "redis URL with a password and no user",
			in:   "redis://:s3cr3t@h:6379",
			pw:   "s3cr3t",
			want: "redis://:REDACTED@h:6379",
		},
		{
			name: "https URL with a token",
			in:   "https://user:ghp_token1@host/x",
			pw:   "ghp_token1",
			want: "https://user:REDACTED@host/x",
		},
		{
			name: "JSON object",
			in:   `{"user":"u","password":"s3cr3t"}`,
			pw:   "s3cr3t",
			want: `{"user":"u","password":"REDACTED"}`,
		},
		{
			name: "JSON with spaces, an escaped quote, a prefixed key and a number",
			in:   "{\"DB_PASSWORD\" : \"a\\\"b\\\\\", \"pin\": 1, \"password\": 987654, \"password_set\": true}\n",
			pw:   `a\"b`,
			want: "{\"DB_PASSWORD\" : \"REDACTED\", \"pin\": 1, \"password\": REDACTED, \"password_set\": true}\n",
		},
		{
			name: "JSON inside a JSON string",
			in:   `{"msg":"{\"password\":\"s3\\\"cr3t\"}","level":"info"}`,
			pw:   `s3\\\"cr3t`,
			want: `{"msg":"{\"password\":\"REDACTED\"}","level":"info"}`,
		},
		{
			name: "multi-host URL keeps its host list",
			in:   "postgresql://u:pw4321@h1,h2:5433/db",
			pw:   "pw4321",
			want: "postgresql://u:REDACTED@h1,h2:5433/db",
		},
		{
			name: "trailing newline and parameters kept as written",
			in:   "postgresql://u:pw4321@h/db?application_name=a%20b&sslmode=require\n",
			pw:   "pw4321",
			want: "postgresql://u:REDACTED@h/db?application_name=a%20b&sslmode=require\n",
		},
		{
			name: "percent-encoded password key in a whole URL",
			in:   "postgresql://h/db?pass%77ord=s3cr3t&sslpassword=k3y-pass",
			pw:   "s3cr3t",
			want: "postgresql://h/db?pass%77ord=REDACTED&sslpassword=REDACTED",
		},
		{
			name: "URL password across a newline in a URL that parses",
			in:   "postgresql://u:pa\nss99@h/db",
			pw:   "pa\nss99",
			want: "postgresql://u:REDACTED@h/db",
		},
		{
			name: "URLs of several schemes in free text",
			in:   "git remote https://bot:tok-123@github.com/o/r.git; cache rediss://:r3d1s@c:6380 ok",
			pw:   "tok-123",
			want: "git remote https://bot:REDACTED@github.com/o/r.git; cache rediss://:REDACTED@c:6380 ok",
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
