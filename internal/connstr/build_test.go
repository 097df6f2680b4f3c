package connstr

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/rotorhq/rotor/internal/secret"
)

func TestURL(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		conn     Conn
		pw       string
		want     string
		redacted string
	}{
		{
			name:     "neon with params in order",
			conn:     Conn{User: "alex", Host: "ep-x-pooler.us-east-2.aws.neon.tech", Database: "neondb", Params: []Param{{"sslmode", "require"}, {"channel_binding", "require"}}},
			pw:       "AbC123dEf",
			want:     "postgresql://alex:AbC123dEf@ep-x-pooler.us-east-2.aws.neon.tech/neondb?sslmode=require&channel_binding=require",
			redacted: "postgresql://alex:REDACTED@ep-x-pooler.us-east-2.aws.neon.tech/neondb?sslmode=require&channel_binding=require",
		},
		{
			name:     "reserved characters are encoded, sub-delims and '+' included",
			conn:     Conn{Scheme: "postgres", User: "a@b", Host: "h", Port: "5432", Database: "my db/x", Params: []Param{{"options", "-c search_path=a,b"}, {"k&", "1+1"}}},
			pw:       `p@ss:/?#[]!$&'()*+,;=% "\`,
			want:     "postgres://a%40b:p%40ss%3A%2F%3F%23%5B%5D%21%24%26%27%28%29%2A%2B%2C%3B%3D%25%20%22%5C@h:5432/my%20db%2Fx?options=-c%20search_path%3Da%2Cb&k%26=1%2B1",
			redacted: "postgres://a%40b:REDACTED@h:5432/my%20db%2Fx?options=-c%20search_path%3Da%2Cb&k%26=1%2B1",
		},
		{
			name:     "IPv6 and multi-host ports stay in the authority",
			conn:     Conn{Host: "h1,::1,h3", Port: "5432,,5434"},
			want:     "postgresql://h1:5432,[::1]:,h3:5434",
			redacted: "postgresql://h1:5432,[::1]:,h3:5434",
		},
		{
			name:     "unix socket directory goes to the query",
			conn:     Conn{User: "u", Host: "/var/run/postgresql", Port: "5433", Database: "d", Params: []Param{{"sslmode", "disable"}}},
			pw:       "pw",
			want:     "postgresql://u:pw@/d?host=%2Fvar%2Frun%2Fpostgresql&port=5433&sslmode=disable",
			redacted: "postgresql://u:REDACTED@/d?host=%2Fvar%2Frun%2Fpostgresql&port=5433&sslmode=disable",
		},
		{
			name:     "one port for several hosts goes to the query",
			conn:     Conn{Host: "a,b", Port: "6432"},
			want:     "postgresql://?host=a%2Cb&port=6432",
			redacted: "postgresql://?host=a%2Cb&port=6432",
		},
		{
			name:     "empty conn",
			conn:     Conn{},
			want:     "postgresql://",
			redacted: "postgresql://",
		},
		{
			name:     "password without user, unknown scheme replaced",
			conn:     Conn{Scheme: "mysql", Host: "h"},
			pw:       "x",
			want:     "postgresql://:x@h",
			redacted: "postgresql://:REDACTED@h",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := tt.conn.WithPassword(secret.New(tt.pw))
			requireSecret(t, tt.want, c.URL(), tt.pw)
			require.Equal(t, tt.redacted, c.Redacted())
			require.Equal(t, tt.redacted, c.String())
			for i, ch := range []byte(c.URL().Reveal()) {
				require.True(t, isUnreserved(ch) || ch == '%' || ch == ':' || ch == '/' || ch == '@' || ch == '?' ||
					ch == '=' || ch == '&' || ch == ',' || ch == '[' || ch == ']', "byte %d (%q) of URL()", i, ch)
			}

			back, err := Parse(c.URL().Reveal())
			require.NoError(t, err)
			want := c.Clone()
			want.Scheme = back.Scheme
			requireConn(t, want, back)
		})
	}
}

func TestDSN(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		conn     Conn
		pw       string
		want     string
		redacted string
	}{
		{
			name:     "fields first, then params in order",
			conn:     Conn{Form: FormKeyValue, User: "app", Host: "h1,h2", Port: "5432,5433", Database: "app", Params: []Param{{"sslmode", "require"}, {"x", "1"}}},
			pw:       "s3cretpw",
			want:     "host=h1,h2 port=5432,5433 user=app password=s3cretpw dbname=app sslmode=require x=1",
			redacted: "host=h1,h2 port=5432,5433 user=app password=REDACTED dbname=app sslmode=require x=1",
		},
		{
			name:     "quoting where needed",
			conn:     Conn{Form: FormKeyValue, User: "o'brien", Database: `a\b`, Params: []Param{{"options", "-c x=y"}, {"application_name", ""}}},
			pw:       "it's a secret",
			want:     `user='o\'brien' password='it\'s a secret' dbname='a\\b' options='-c x=y' application_name=''`,
			redacted: `user='o\'brien' password=REDACTED dbname='a\\b' options='-c x=y' application_name=''`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := tt.conn.WithPassword(secret.New(tt.pw))
			requireSecret(t, tt.want, c.DSN(), tt.pw)
			require.Equal(t, tt.redacted, c.Redacted())

			back, err := Parse(c.DSN().Reveal())
			require.NoError(t, err)
			requireConn(t, c, back)
		})
	}
}

func TestParamAndSetParam(t *testing.T) {
	t.Parallel()
	base := func() *Conn {
		return &Conn{User: "u", Password: secret.New("pw12"), Host: "h", Port: "5432", Database: "d",
			Params: []Param{{"sslmode", "require"}, {"a", "1"}, {"b", "2"}, {"a", "3"}}}
	}
	tests := []struct {
		name       string
		key, value string
		wantParams []Param
		check      func(t *testing.T, c *Conn)
	}{
		{
			name: "replace keeps position and drops repeats", key: "a", value: "9",
			wantParams: []Param{{"sslmode", "require"}, {"a", "9"}, {"b", "2"}},
		},
		{
			name: "append a new key", key: "application_name", value: "rotor",
			wantParams: []Param{{"sslmode", "require"}, {"a", "1"}, {"b", "2"}, {"a", "3"}, {"application_name", "rotor"}},
		},
		{
			name: "host sets the field", key: "host", value: "other",
			wantParams: base().Params,
			check:      func(t *testing.T, c *Conn) { require.Equal(t, "other", c.Host) },
		},
		{
			name: "dbname sets the field", key: "dbname", value: "x",
			wantParams: base().Params,
			check:      func(t *testing.T, c *Conn) { require.Equal(t, "x", c.Database) },
		},
		{
			name: "password sets the secret", key: "password", value: "newpw",
			wantParams: base().Params,
			check:      func(t *testing.T, c *Conn) { require.True(t, c.Password.Equal(secret.New("newpw"))) },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := base()
			c.SetParam(tt.key, tt.value)
			require.Equal(t, tt.wantParams, c.Params)
			if tt.check != nil {
				tt.check(t, c)
			}
			if tt.key != keyPassword {
				v, ok := c.Param(tt.key)
				require.True(t, ok)
				require.Equal(t, tt.value, v)
			}
		})
	}

	t.Run("lookups", func(t *testing.T) {
		t.Parallel()
		c := base()
		for _, tt := range []struct {
			key    string
			want   string
			wantOK bool
		}{
			{"a", "3", true}, // the last repeat wins, as in libpq
			{"sslmode", "require", true},
			{"missing", "", false},
			{"host", "h", true},
			{"port", "5432", true},
			{"user", "u", true},
			{"dbname", "d", true},
			{"password", "", false},
		} {
			v, ok := c.Param(tt.key)
			require.Equal(t, tt.wantOK, ok, tt.key)
			require.Equal(t, tt.want, v, tt.key)
		}
	})
}

func TestCloneAndWith(t *testing.T) {
	t.Parallel()
	orig := &Conn{User: "u", Password: secret.New("old-pass"), Host: "h", Params: []Param{{"sslmode", "require"}}}
	snapshot := orig.Clone()
	tests := []struct {
		name  string
		apply func(c *Conn) *Conn
		check func(t *testing.T, c *Conn)
	}{
		{"WithUser", func(c *Conn) *Conn { return c.WithUser("v") }, func(t *testing.T, c *Conn) { require.Equal(t, "v", c.User) }},
		{"WithHost", func(c *Conn) *Conn { return c.WithHost("h2") }, func(t *testing.T, c *Conn) { require.Equal(t, "h2", c.Host) }},
		{"WithPassword", func(c *Conn) *Conn { return c.WithPassword(secret.New("new-pass")) },
			func(t *testing.T, c *Conn) { require.True(t, c.Password.Equal(secret.New("new-pass"))) }},
		{"Clone then SetParam", func(c *Conn) *Conn { cp := c.Clone(); cp.SetParam("sslmode", "disable"); return cp },
			func(t *testing.T, c *Conn) { require.Equal(t, []Param{{"sslmode", "disable"}}, c.Params) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := tt.apply(orig)
			tt.check(t, got)
			require.NotSame(t, orig, got)
			require.True(t, orig.Equal(snapshot), "the original must not change")
		})
	}
	require.Nil(t, (*Conn)(nil).Clone())
}

func TestRedactedHidesSSLPassword(t *testing.T) {
	t.Parallel()
	for _, in := range []string{
		"postgresql://u@h/db?sslkey=k.pem&sslpassword=keypass123",
		"host=h user=u sslpassword=keypass123 dbname=db",
	} {
		c, err := Parse(in)
		require.NoError(t, err)
		require.NotContains(t, c.Redacted(), "keypass123")
		require.Contains(t, c.Redacted(), "sslpassword=")
	}
}
