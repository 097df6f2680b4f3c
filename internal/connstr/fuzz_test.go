package connstr

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/rotorhq/rotor/internal/secret"
)

// The fuzz targets run their seeds as ordinary tests; `go test -fuzz
// FuzzRoundTrip ./internal/connstr/` explores further, and any failing
// input it finds lands in testdata/fuzz/ to be checked in.

var (
	fuzzHosts = []string{
		"", "localhost", "db.example.com", "ep-cool-darkness-a1b2c3d4-pooler.us-east-2.aws.neon.tech",
		"::1", "10.0.0.1", "h1,h2", "h1,,h3", "/var/run/postgresql", "fe80::1%eth0", "münchen.example", "a b",
	}
	fuzzPorts = []string{"", "5432", "5432,5433", "6543,", ",", "1,65535,2"}
)

// fuzzKey keeps a fuzzed key usable as a Param: non-empty and not one of
// the keywords that map to fields.
func fuzzKey(k string) string {
	switch k {
	case "":
		return "k"
	case keyHost, keyPort, keyUser, keyPassword, keyDBName:
		return "x-" + k
	}
	return k
}

// FuzzRoundTrip proves Parse(c.URL()) == c for any user, password,
// database and parameters, that URL() holds only unreserved bytes, %XX and
// structural characters, and that Redacted and Redact do not depend on the
// password. Where the keys allow a keyword/value form, it proves the same
// for DSN().
func FuzzRoundTrip(f *testing.F) {
	seeds := []struct {
		user, pw, db, k1, v1, k2, v2 string
		host, port, scheme           uint8
	}{
		{"alex", "AbC123dEf", "neondb", "sslmode", "require", "channel_binding", "require", 3, 0, 0},
		{"u@s:e/r", `p@ss:w/o?r#d%'" \+&=`, "my db/x?y", "options", "-c search_path=a,b", "application_name", "a+b c", 2, 1, 1},
		{"", "", "", "", "", "", "", 0, 0, 0},
		{"", "only-password", "", "a", "1", "a", "2", 8, 1, 2},
		{"jösé", "päss\x00word\xff", "dü", "k", "%zz", "k2", "%41", 6, 3, 0},
		{"x", "a b\tc\nd", "d", "password", "nope", "host", "nope", 7, 4, 1},
		{"user", "REDACTED", "db", "k", "postgresql://u:p@h", "q", "'quoted'", 4, 1, 0},
		{"u", "ends-with-backslash\\", "d", "sp ace", "v", "eq=ual", "v", 9, 2, 0},
		{"u", "💥emoji-パスワード", "d", "k", "v", "k", "v", 10, 5, 2},
	}
	for _, s := range seeds {
		f.Add(s.user, s.pw, s.db, s.k1, s.v1, s.k2, s.v2, s.host, s.port, s.scheme)
	}
	f.Fuzz(func(t *testing.T, user, pw, db, k1, v1, k2, v2 string, hostSel, portSel, schemeSel uint8) {
		c := &Conn{
			Form:     FormURL,
			Scheme:   []string{"", "postgresql", "postgres"}[int(schemeSel)%3],
			User:     user,
			Password: secret.New(pw),
			Host:     fuzzHosts[int(hostSel)%len(fuzzHosts)],
			Port:     fuzzPorts[int(portSel)%len(fuzzPorts)],
			Database: db,
			Params:   []Param{{fuzzKey(k1), v1}, {fuzzKey(k2), v2}},
		}
		rotated := c.WithPassword(secret.New(rotate(pw)))

		u := c.URL().Reveal()
		for i := 0; i < len(u); i++ {
			ch := u[i]
			if ch == '%' {
				require.True(t, i+2 < len(u) && isHex(u[i+1]) && isHex(u[i+2]), "byte %d of URL(): bad escape", i)
				continue
			}
			require.True(t, isUnreserved(ch) || strings.IndexByte(":/@?=&,[]", ch) >= 0, "byte %d of URL() is %q", i, ch)
		}

		back, err := Parse(u)
		require.NoError(t, err)
		want := c.Clone()
		if want.Scheme == "" {
			want.Scheme = "postgresql"
		}
		requireConn(t, want, back)

		require.Equal(t, c.Redacted(), rotated.Redacted(), "Redacted() must not depend on the password")
		require.Equal(t, Redact(u), Redact(rotated.URL().Reveal()), "Redact(URL()) must not depend on the password")

		dsnKeysOK := true
		for _, p := range c.Params {
			dsnKeysOK = dsnKeysOK && !strings.ContainsAny(p.Key, dsnSpace+"=") && !strings.Contains(p.Key, "://")
		}
		kv := c.Clone()
		kv.Form, kv.Scheme = FormKeyValue, ""
		dsn := kv.DSN().Reveal()
		if dsnKeysOK && dsn != "" {
			back, err := Parse(dsn)
			require.NoError(t, err)
			requireConn(t, kv, back)
			kvRotated := kv.WithPassword(secret.New(rotate(pw)))
			require.Equal(t, kv.Redacted(), kvRotated.Redacted(), "keyword/value Redacted() must not depend on the password")
			requireNoLeakVsRotated(t, Redact(dsn), Redact(kvRotated.DSN().Reveal()), pw, "Redact(DSN())")
		}
	})
}

// fuzzLayout writes a password into a connection string or into text the
// way people do, correctly or not.
type fuzzLayout struct {
	build func(user, pw, host, db, query string) string
	// placed reports whether the password sits where a reader would look
	// for it. When raw text around it rewrites the structure (a host "?"
	// starts the query early, user=\ escapes the space before "password=",
	// a raw password opens a quote) the password is just more text, and no
	// leak check applies. nil means always.
	placed func(user, pw, host string) bool
	// redactable reports whether Redact promises to catch this input
	// (see the limits in Redact's comment). nil means always.
	redactable func(user, pw string) bool
}

// rawURLPartsOK reports whether raw URL parts keep the URL's structure.
func rawURLPartsOK(parts ...string) bool {
	for _, p := range parts {
		if strings.ContainsAny(p, "/?#@") {
			return false
		}
	}
	return true
}

var fuzzLayouts = []fuzzLayout{
	{
		build: func(user, pw, host, db, query string) string {
			return "postgresql://" + escape(user) + ":" + escape(pw) + "@" + host + "/" + escape(db) + "?" + query
		},
		placed: func(_, _, host string) bool { return rawURLPartsOK(host) },
	},
	{
		build: func(user, pw, host, db, query string) string {
			return "postgresql://" + user + ":" + pw + "@" + host + "/" + db + "?" + query
		},
		placed: func(user, _, host string) bool { return rawURLPartsOK(user, host) },
	},
	{
		build: func(user, pw, host, db, query string) string {
			return "postgres://" + user + "@" + host + "/" + db + "?" + query + "&password=" + pw
		},
		// "&password=&a=b" holds an empty password by any reading.
		placed: func(user, pw, host string) bool { return rawURLPartsOK(user, host) && !strings.HasPrefix(pw, "&") },
	},
	{
		build: func(user, pw, host, db, query string) string {
			return "postgres://" + escape(user) + "@" + host + "/" + escape(db) + "?password=" + escape(pw) + "&" + query
		},
		placed: func(_, _, host string) bool { return rawURLPartsOK(host) },
	},
	{
		build: func(user, pw, host, db, query string) string {
			return "host=" + host + " user=" + quoteDSN(user) + " password=" + quoteDSN(pw) + " dbname=" + quoteDSN(db) + " " + query
		},
		placed: func(_, _, host string) bool { return !strings.ContainsAny(host, `\'`) },
	},
	{
		build: func(user, pw, host, db, query string) string {
			return "host=" + host + " user=" + user + " password=" + pw + " dbname=" + db + " " + query
		},
		placed: func(user, pw, host string) bool {
			return !strings.ContainsAny(user+host, `\'`) && !opensQuote(pw)
		},
	},
	{
		build: func(user, pw, host, db, query string) string {
			return "# app\nDATABASE_URL=postgresql://" + escape(user) + ":" + escape(pw) + "@" + host + "/" + db +
				"\nPGPASSWORD=" + pw + "\nPGUSER=" + user + "\n"
		},
		placed: func(_, pw, host string) bool { return rawURLPartsOK(host) && !opensQuote(pw) },
	},
	{
		build: func(user, pw, host, db, query string) string {
			return "error connecting to postgresql://" + user + ":" + pw + "@" + host + "/" + db + ": " + query
		},
		placed: func(user, _, host string) bool { return rawURLPartsOK(user, host) },
		redactable: func(user, pw string) bool {
			return !lineOrURLBreak(user) && !lineOrURLBreak(pw) &&
				(strings.IndexByte(pw, '@') < 0 || !strings.ContainsAny(pw, wordBreaks))
		},
	},
}

// opensQuote reports whether a raw value starts a quoted one.
func opensQuote(v string) bool {
	v = strings.TrimLeft(v, dsnSpace)
	return strings.HasPrefix(v, "'") || strings.HasPrefix(v, `"`)
}

func lineOrURLBreak(s string) bool {
	return strings.Contains(s, "\n") || strings.Contains(asciiLower(s), "postgres")
}

// FuzzParse feeds Parse and Redact connection strings and text holding a
// password, written right and wrong. Nothing may panic; no error, no
// Redacted() and no Redact output may contain the password (4 bytes or
// more) — unless it also shows up when the password is swapped for
// rotate(password), in which case it came from elsewhere in the input.
// host is also parsed on its own, as arbitrary input.
func FuzzParse(f *testing.F) {
	seeds := []struct {
		user, pw, host, db, query string
	}{
		{"alex", "AbC123dEf", "ep-cool-darkness-a1b2c3d4.us-east-2.aws.neon.tech", "neondb", "sslmode=require"},
		{"u", "p@ss@word", "h", "db", "a=1"},
		{"u", "pa/ss?wo#rd", "h:5432", "db", "x=y@z"},
		{"u", "with space and 'quote'", "h1,h2", "d b", "options=-c%20x"},
		{"u", `back\slash\`, "[::1]:5432", "d", "application_name=a@b"},
		{"me@corp", "1234/5", "h", "d", ""},
		{"u", "%zz%41%", "h", "%", "%=%"},
		{"u", "line\nbreak\r\n", "h", "d", "k=v"},
		{"u", "password=inner", "h", "d", "password=other"},
		{"u", "postgresql://x:y@z", "postgres://a:b@c/d?password=e", "d", "q=postgresql://k:l@m"},
		{"u", "\x00\xff\xfe💥", "host=h password= port=0", "d", "&&=&"},
		{"u", "abcd", "postgresql://u:abcd@h:5432,[::1/d?x", "d", "x"},
		{"u", "hunter22", "user=u password='unterminated", "d", "x=1"},
	}
	for _, s := range seeds {
		for layout := range fuzzLayouts {
			f.Add(s.user, s.pw, s.host, s.db, s.query, uint8(layout))
		}
	}
	f.Fuzz(func(t *testing.T, user, pw, host, db, query string, layout uint8) {
		l := fuzzLayouts[int(layout)%len(fuzzLayouts)]
		pwRot := rotate(pw)
		in, inRot := l.build(user, pw, host, db, query), l.build(user, pwRot, host, db, query)

		c, err := Parse(in)
		cRot, errRot := Parse(inRot)
		out, outRot := Redact(in), Redact(inRot)
		if l.placed == nil || l.placed(user, pw, host) {
			requireNoLeakVsRotated(t, errString(err), errString(errRot), pw, "Parse error")
			requireNoLeakVsRotated(t, redactedString(c), redactedString(cRot), pw, "Redacted()")
			if l.redactable == nil || l.redactable(user, pw) {
				requireNoLeakVsRotated(t, out, outRot, pw, "Redact")
			}
		}
		if err == nil {
			requireReparses(t, c)
		}

		// host alone, as arbitrary input: the password is whatever Parse
		// found in it.
		c, err = Parse(host)
		out = Redact(host)
		if err == nil {
			requireReparses(t, c)
			if p := c.Password.Reveal(); len(p) >= 4 {
				rot := c.WithPassword(secret.New(rotate(p)))
				require.Equal(t, c.Redacted(), rot.Redacted(), "Redacted() must not depend on the password")
				if c.Form == FormURL {
					require.Equal(t, out, Redact(rot.URL().Reveal()), "Redact must not depend on the password")
				}
			}
		}
	})
}

// requireReparses checks that whatever Parse accepted, URL() writes back
// to the same Conn.
func requireReparses(t *testing.T, c *Conn) {
	t.Helper()
	back, err := Parse(c.URL().Reveal())
	require.NoError(t, err)
	want := c.Clone()
	want.Form = FormURL
	if want.Scheme == "" {
		want.Scheme = "postgresql"
	}
	requireConn(t, want, back)
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func redactedString(c *Conn) string {
	if c == nil {
		return ""
	}
	return c.Redacted()
}
