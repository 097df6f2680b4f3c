package connstr

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/rotorhq/rotor/internal/secret"
)

func TestParseURL(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   string
		want Conn
	}{
		{
			name: "neon",
			in:   "postgresql://alex:AbC123dEf@ep-cool-darkness-a1b2c3d4.us-east-2.aws.neon.tech/dbname?sslmode=require&channel_binding=require",
			want: Conn{Scheme: "postgresql", User: "alex", Password: secret.New("AbC123dEf"),
				Host: "ep-cool-darkness-a1b2c3d4.us-east-2.aws.neon.tech", Database: "dbname",
				Params: []Param{{"sslmode", "require"}, {"channel_binding", "require"}}},
		},
		{
			name: "short scheme, port, surrounding whitespace",
			in:   "  postgres://u:p@db.example.com:6543/app\n",
			want: Conn{Scheme: "postgres", User: "u", Password: secret.New("p"), Host: "db.example.com", Port: "6543", Database: "app"},
		},
		{
			name: "percent-encoded user, password and database",
			in:   "postgresql://us%40er:p%40ss%2Fw%3Ford%25%20%2B@h/my%20db",
			want: Conn{Scheme: "postgresql", User: "us@er", Password: secret.New("p@ss/w?ord% +"), Host: "h", Database: "my db"},
		},
		{
			name: "unambiguous raw characters in the password",
			in:   "postgresql://u:a:b!$&'()*+,;= c[]@h/d",
			want: Conn{Scheme: "postgresql", User: "u", Password: secret.New("a:b!$&'()*+,;= c[]"), Host: "h", Database: "d"},
		},
		{
			name: "empty password and user only",
			in:   "postgresql://u@h",
			want: Conn{Scheme: "postgresql", User: "u", Host: "h"},
		},
		{
			name: "password without user",
			in:   "postgresql://:pw@h",
			want: Conn{Scheme: "postgresql", Password: secret.New("pw"), Host: "h"},
		},
		{
			name: "IPv6 with port",
			in:   "postgresql://[::1]:5432/db",
			want: Conn{Scheme: "postgresql", Host: "::1", Port: "5432", Database: "db"},
		},
		{
			name: "IPv6 with zone",
			in:   "postgresql://[fe80::1%25eth0]/db",
			want: Conn{Scheme: "postgresql", Host: "fe80::1%eth0", Database: "db"},
		},
		{
			name: "multi-host with ports",
			in:   "postgresql://u:p@h1:5432,h2:5433,[::1]:5434/db?target_session_attrs=read-write",
			want: Conn{Scheme: "postgresql", User: "u", Password: secret.New("p"), Host: "h1,h2,::1", Port: "5432,5433,5434",
				Database: "db", Params: []Param{{"target_session_attrs", "read-write"}}},
		},
		{
			name: "multi-host with one port missing",
			in:   "postgresql://h1:5432,h2/db",
			want: Conn{Scheme: "postgresql", Host: "h1,h2", Port: "5432,", Database: "db"},
		},
		{
			name: "multi-host without ports",
			in:   "postgresql://h1,h2",
			want: Conn{Scheme: "postgresql", Host: "h1,h2"},
		},
		{
			name: "empty host means the unix socket default",
			in:   "postgresql:///db",
			want: Conn{Scheme: "postgresql", Database: "db"},
		},
		{
			name: "nothing but the scheme",
			in:   "postgresql://",
			want: Conn{Scheme: "postgresql"},
		},
		{
			name: "port without host",
			in:   "postgresql://:5433/db",
			want: Conn{Scheme: "postgresql", Port: "5433", Database: "db"},
		},
		{
			name: "encoded unix socket directory as host",
			in:   "postgresql://%2Fvar%2Frun%2Fpostgresql/db",
			want: Conn{Scheme: "postgresql", Host: "/var/run/postgresql", Database: "db"},
		},
		{
			name: "host, port, user, password and dbname in the query override",
			in:   "postgresql://a@x:1/y?host=%2Ftmp&port=5433&user=b&password=s%26c&dbname=z&sslmode=disable",
			want: Conn{Scheme: "postgresql", User: "b", Password: secret.New("s&c"), Host: "/tmp", Port: "5433",
				Database: "z", Params: []Param{{"sslmode", "disable"}}},
		},
		{
			name: "repeated keys, empty values, plus sign, encoded keys, stray separators",
			in:   "postgresql://h/?options=-c%20a%3Db&a=1&&a=2&x=&app+name=a+b&k%3D=v=w&",
			want: Conn{Scheme: "postgresql", Host: "h", Params: []Param{
				{"options", "-c a=b"}, {"a", "1"}, {"a", "2"}, {"x", ""}, {"app+name", "a+b"}, {"k=", "v=w"}}},
		},
		{
			name: "query without database",
			in:   "postgresql://h?sslmode=verify-full",
			want: Conn{Scheme: "postgresql", Host: "h", Params: []Param{{"sslmode", "verify-full"}}},
		},
		{
			name: "'@' after the host is fine when nothing could be a password",
			in:   "postgresql://u@h/d@b?application_name=me@example",
			want: Conn{Scheme: "postgresql", User: "u", Host: "h", Database: "d@b", Params: []Param{{"application_name", "me@example"}}},
		},
		{
			name: "non-ASCII everywhere",
			in:   "postgresql://jos%C3%A9:p%C3%A4ss@h/d%C3%BC",
			want: Conn{Scheme: "postgresql", User: "josé", Password: secret.New("päss"), Host: "h", Database: "dü"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := Parse(tt.in)
			require.NoError(t, err)
			want := tt.want
			requireConn(t, &want, got)
		})
	}
}

func TestParseDSN(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   string
		want Conn
	}{
		{
			name: "plain",
			in:   "host=localhost port=5432 user=app password=secret dbname=app sslmode=require",
			want: Conn{User: "app", Password: secret.New("secret"), Host: "localhost", Port: "5432", Database: "app",
				Params: []Param{{"sslmode", "require"}}},
		},
		{
			name: "quoted values with escapes and spaces around '='",
			in:   ` host = h  password = 'it\'s a \\ secret'   options='-c search_path=x' application_name=''`,
			want: Conn{Password: secret.New(`it's a \ secret`), Host: "h",
				Params: []Param{{"options", "-c search_path=x"}, {"application_name", ""}}},
		},
		{
			name: "backslash escapes in unquoted values, quote inside a value",
			in:   `password=a\ b\\c'd user=x`,
			want: Conn{User: "x", Password: secret.New(`a b\c'd`)},
		},
		{
			name: "value right after a closing quote, tabs and newlines",
			in:   "user='u'dbname=d\n\thost=/var/run/postgresql",
			want: Conn{User: "u", Host: "/var/run/postgresql", Database: "d"},
		},
		{
			name: "spaces around '=' and an empty quoted value",
			in:   "user = alice password= '' host =h",
			want: Conn{User: "alice", Host: "h"},
		},
		{
			name: "empty value at the end",
			in:   "host=h password=",
			want: Conn{Host: "h"},
		},
		{
			name: "multi-host, unknown and repeated keys kept in order, last field wins",
			in:   "host=a,b port=5432,5433 x=1 target_session_attrs=any x=2 dbname=one dbname=two",
			want: Conn{Host: "a,b", Port: "5432,5433", Database: "two",
				Params: []Param{{"x", "1"}, {"target_session_attrs", "any"}, {"x", "2"}}},
		},
		{
			name: "a URL as a value stays a value",
			in:   "fallback=postgresql://u@h/db",
			want: Conn{Params: []Param{{"fallback", "postgresql://u@h/db"}}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := Parse(tt.in)
			require.NoError(t, err)
			want := tt.want
			want.Form = FormKeyValue
			requireConn(t, &want, got)
		})
	}
}

func TestParseErrors(t *testing.T) {
	t.Parallel()
	const pw = "Hunter2xyz"
	tests := []struct {
		name string
		in   string
		want string // substring of the error: the problem and its fix
	}{
		{"empty", "  \n", "connection string is empty"},
		{"no form", "just some words", "expected a postgresql:// URL or key=value pairs"},
		{"other scheme", "mysql://u:" + pw + "@h/db", "write postgresql:// or postgres://"},
		{"uppercase scheme", "POSTGRESQL://u:" + pw + "@h/db", "(lowercase)"},
		{"'@' in password", "postgresql://u:" + pw + "@x@h/db", "password contains '@' — percent-encode it as %40"},
		{"'@' in user", "postgresql://me@corp@h/db", "user name contains '@' — percent-encode it as %40"},
		{"'@' in user and password", "postgresql://me@corp:" + pw + "@h/db", "user name contains '@'"},
		{"'/' in password", "postgresql://u:" + pw + "/x@h/db", "password seems to contain '/' — percent-encode it as %2F"},
		{"'?' in password", "postgresql://u:" + pw + "?x@h/db", "password seems to contain '?' — percent-encode it as %3F"},
		{"'#' in password", "postgresql://u:" + pw + "#x@h/db", "percent-encode it as %23"},
		{"'/' in password that looks like a port", "postgresql://u:5432/" + pw + "@h/db", "percent-encode it as %2F"},
		{"'@' and '/' in password", "postgresql://u:" + pw + "@x/y@h/db", "'@' after the host is ambiguous"},
		{"'@' in a parameter after a port", "postgresql://h:5432/db?application_name=" + pw + "@x", "percent-encode that '@' as %40"},
		{"bad escape in password", "postgresql://u:" + pw + "%zz@h", "password contains a '%' that does not start a %XX escape — write '%' as %25"},
		{"bad escape in user", "postgresql://u%@h", "user name contains a '%'"},
		{"bad escape in database", "postgresql://h/d%4", "database name contains a '%'"},
		{"bad escape in host", "postgresql://h%g1/d", "host contains a '%'"},
		{"bad escape in query key", "postgresql://h/d?a%=1", "query parameter 1 has a '%' in its name"},
		{"bad escape in query value", "postgresql://h/d?a=1&password=" + pw + "%", "query parameter 2 has a '%' in its value"},
		{"query without '='", "postgresql://h/d?sslmode", "query parameter 1 has no '=' — write key=value"},
		{"query with empty key", "postgresql://h/d?=" + pw, "query parameter 1 has an empty name"},
		{"port zero", "postgresql://h:0/d", "port must be a number from 1 to 65535"},
		{"port too large", "postgresql://h:65536/d", "port must be a number from 1 to 65535"},
		{"port not a number", "postgresql://h:pg/d", "port must be a number"},
		{"port in query", "postgresql://h/d?port=5432,x", "port must be a number"},
		{"port in DSN", "host=h port=-1", "port must be a number"},
		{"unbracketed IPv6", "postgresql://::1/d", "write IPv6 addresses in brackets"},
		{"unclosed bracket", "postgresql://[::1/d", "has no closing ']'"},
		{"text after bracket", "postgresql://[::1]x/d", "unexpected text after an IPv6 host's ']'"},
		{"stray bracket", "postgresql://h]/d", "only IPv6 addresses are bracketed"},
		{"space in host", "postgresql://u:p@my host/d", "host contains whitespace"},
		{"unquoted space in DSN password", "host=h password=" + pw + " more user=u", "keyword/value pair 3 has no '='"},
		{"DSN without keyword", "host=h =" + pw, "pair 2 has no keyword before '='"},
		{"DSN empty value swallowing the next pair", "host=h user= password=" + pw, "pair 2 has no value but is followed by another pair — write key=''"},
		{"DSN unterminated quote", "host=h password='" + pw, "pair 2 has no closing quote — end it with '"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := Parse(tt.in)
			require.Error(t, err)
			require.Nil(t, c)
			require.ErrorIs(t, err, ErrInvalid)
			msg := err.Error()
			require.Contains(t, msg, tt.want)
			require.Equal(t, strings.ToLower(msg[:1]), msg[:1], "errors start lowercase")
			requireNoLeak(t, msg, pw, "error")
			requireNoLeak(t, msg, strings.TrimSpace(tt.in), "error (raw input)")
		})
	}
}

func TestHosts(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want []HostPort
	}{
		{"postgresql://u:pw@h1,h2:5433/db", []HostPort{{"h1", ""}, {"h2", "5433"}}},
		{"postgresql://h1:5432,h2/db", []HostPort{{"h1", "5432"}, {"h2", ""}}},
		{"postgresql://[::1]:6432,db.internal/db", []HostPort{{"::1", "6432"}, {"db.internal", ""}}},
		{"postgresql://h/db", []HostPort{{"h", ""}}},
		{"postgresql:///db", []HostPort{{"", ""}}},
		{"host=h1,h2 port=6432", []HostPort{{"h1", "6432"}, {"h2", "6432"}}},
		{"host=h1,h2,h3 port=1,,3", []HostPort{{"h1", "1"}, {"h2", ""}, {"h3", "3"}}},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			t.Parallel()
			c, err := Parse(tt.in)
			require.NoError(t, err)
			got, err := c.Hosts()
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
		})
	}
	t.Run("lists that do not pair up", func(t *testing.T) {
		t.Parallel()
		c, err := Parse("host=h1,h2,h3 port=1,2")
		require.NoError(t, err)
		_, err = c.Hosts()
		require.ErrorIs(t, err, ErrInvalid)
		require.ErrorContains(t, err, "2 ports for 3 hosts")
	})
}
