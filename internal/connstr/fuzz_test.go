package connstr

import (
	"encoding/json"
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
		Redact(host) // arbitrary input must not panic
		if err == nil {
			requireReparses(t, c)
			if p := c.Password.Reveal(); len(p) >= 4 {
				rot := c.WithPassword(secret.New(rotate(p)))
				require.Equal(t, c.Redacted(), rot.Redacted(), "Redacted() must not depend on the password")
				// Redact keeps the input's bytes, so both sides are
				// written by URL() to differ in the password alone.
				require.Equal(t, Redact(c.URL().Reveal()), Redact(rot.URL().Reveal()), "Redact must not depend on the password")
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

// redactForm writes a secret into text the way programs and people print
// one. It returns the text and the byte range the secret, as written
// (percent-encoded, quoted, JSON-escaped), takes in it; ok is false when
// the secret cannot be written that way (an unquoted value with a space).
type redactForm func(user, pw string) (text string, start, end int, ok bool)

// around writes pw between pre and post.
func around(pre, pw, post string) (string, int, int, bool) {
	return pre + pw + post, len(pre), len(pre) + len(pw), true
}

// plainValueOK reports whether pw can be written unquoted after "=": no
// whitespace, and no quote at either end, where it would read as quoting.
func plainValueOK(pw string) bool {
	return !strings.ContainsAny(pw, dsnSpace) && !opensQuote(pw) &&
		!strings.HasSuffix(pw, "'") && !strings.HasSuffix(pw, `"`)
}

// jsonText is s as the inside of a JSON string.
func jsonText(s string) string {
	b, err := json.Marshal(s)
	if err != nil {
		panic(err) // a string always marshals
	}
	return string(b[1 : len(b)-1])
}

// backslashQuoted escapes q and backslashes, as libpq's '…' and a .env's "…"
// read them.
func backslashQuoted(s string, q byte) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == q || s[i] == '\\' {
			b.WriteByte('\\')
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

var redactSchemes = []string{"postgresql", "postgres", "PostgreSQL", "mysql", "redis", "rediss", "https", "http", "amqp", "mongodb+srv", "sqlserver"}

var redactForms = []redactForm{
	func(user, pw string) (string, int, int, bool) {
		return around("postgresql://"+escape(user)+":", escape(pw), "@h1,h2:5433/db?sslmode=require")
	},
	func(user, pw string) (string, int, int, bool) {
		return around("redis://:", escape(pw), "@cache:6379/0")
	},
	func(user, pw string) (string, int, int, bool) {
		return around("https://"+escape(user)+":", escape(pw), "@git.example.com/org/repo.git")
	},
	func(user, pw string) (string, int, int, bool) {
		return around("postgres://"+escape(user)+"@h/db?sslmode=require&password=", escape(pw), "&application_name=api")
	},
	func(user, pw string) (string, int, int, bool) {
		if !plainValueOK(pw) {
			return "", 0, 0, false
		}
		return around("host=h user=u password=", pw, " dbname=d")
	},
	func(user, pw string) (string, int, int, bool) {
		return around("host=h password = '", backslashQuoted(pw, '\''), "' dbname=d")
	},
	func(user, pw string) (string, int, int, bool) {
		if !plainValueOK(pw) {
			return "", 0, 0, false
		}
		return around("PGPASSWORD=", pw, "")
	},
	func(user, pw string) (string, int, int, bool) {
		return around(`DB_PASSWORD="`, backslashQuoted(pw, '"'), `"`)
	},
	func(user, pw string) (string, int, int, bool) {
		return around(`{"user":"`+jsonText(user)+`","password":"`, jsonText(pw), `","port":5432}`)
	},
	func(user, pw string) (string, int, int, bool) {
		return around(`{"PGPASSWORD": "`, jsonText(pw), `"}`)
	},
	func(user, pw string) (string, int, int, bool) {
		// JSON printed inside a JSON string, as structured logs do.
		return around(`{"msg":"{\"db_password\":\"`, jsonText(jsonText(pw)), `\"}"}`)
	},
	func(user, pw string) (string, int, int, bool) {
		// A raw password in a URL, readable only while it holds nothing
		// that ends a URL's user information in free text.
		if strings.ContainsAny(pw, wordBreaks+"/?#@") || strings.Contains(pw, "://") {
			return "", 0, 0, false
		}
		return around("mysql://"+escape(user)+":", pw, "@db:3306/app")
	},
}

// FuzzRedact proves Redact's contract on generated text: a secret written
// in any of redactForms, between arbitrary text, is replaced in full — the
// output contains neither the secret nor its written form — and, when the
// text around holds nothing that looks like another secret, every other
// byte comes back unchanged.
func FuzzRedact(f *testing.F) {
	seeds := []struct {
		before, pw, after, user string
	}{
		{"connecting to", "Tr0ub4dor&3", "failed: timeout", "app"},
		{"", "s", "", ""},
		{"x", "p@ss:w/o?r#d%'\" \\+&=", "y", "u@s:e/r"},
		{"log", "line\nbreak\r\n\ttab", "end", "u"},
		{"{", `"},"password":"`, "}", "u"},
		{"see https://example.com and", "💥パスワード\x00\xff", "mail me@example.com", "jösé"},
		{"postgresql://h:5432/db owner", "abc\\", "bob@corp", "u"},
		{"", "password=inner", "password=outer", "u"},
		{"a'", "'quoted'", `"b`, "u"},
	}
	for _, s := range seeds {
		for form := range redactForms {
			f.Add(s.before, s.pw, s.after, s.user, uint8(form), uint8(form))
		}
	}
	seps := []string{" ", "\n", "\t", "\r\n"}
	f.Fuzz(func(t *testing.T, before, pw, after, user string, form, sep uint8) {
		if pw == "" {
			return
		}
		emb, pwStart, pwEnd, ok := redactForms[int(form)%len(redactForms)](user, pw)
		if !ok {
			return
		}
		pre := before + seps[int(sep)%len(seps)]
		in := pre + emb + seps[int(sep/4)%len(seps)] + after
		start, end := len(pre)+pwStart, len(pre)+pwEnd
		written := in[start:end]

		covered := false
		for _, sp := range mergeSpans(redactSpans(in)) {
			covered = covered || sp.start <= start && end <= sp.end
		}
		require.True(t, covered, "the secret (bytes %d to %d of %d) is not redacted in full", start, end, len(in))

		out := Redact(in)
		// The output is the input's other bytes and markers; where the
		// secret also occurs outside its place, it is no leak.
		var sentinel string
		for b := 0; b < 256 && sentinel == ""; b++ {
			if strings.IndexByte(pw, byte(b)) < 0 && strings.IndexByte(written, byte(b)) < 0 {
				sentinel = string([]byte{byte(b)})
			}
		}
		if sentinel != "" {
			elsewhere := in[:start] + sentinel + in[end:]
			outS := strings.ReplaceAll(out, redactedMarker, sentinel)
			for _, secretForm := range []string{pw, written} {
				if !strings.Contains(elsewhere, secretForm) {
					requireNoLeak(t, outS, secretForm, "Redact")
				}
			}
		}

		// Nothing else looks like a secret: only the secret changes.
		plain := func(s string) bool {
			l := asciiLower(s)
			return !strings.Contains(l, "://") && !strings.Contains(l, "password") && !strings.ContainsAny(l, "@\"'\\")
		}
		if strings.TrimLeft(before, dsnSpace) != "" && plain(before) && plain(after) && plain(pw) && plain(user) {
			want := in[:start] + redactedMarker + in[end:]
			if want != out {
				// Offsets only: the output may hold the secret.
				diff := 0
				for diff < min(len(want), len(out)) && want[diff] == out[diff] {
					diff++
				}
				require.Fail(t, "bytes other than the secret changed",
					"first difference at byte %d (want %d bytes, got %d; the secret was at %d to %d)", diff, len(want), len(out), start, end)
			}
		}
	})
}
