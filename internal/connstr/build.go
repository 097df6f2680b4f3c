package connstr

import (
	"strings"

	"github.com/rotorhq/rotor/internal/secret"
)

// redactedMarker replaces the password in Redacted output. It is made of
// unreserved characters only, so it needs no escaping in either form.
const redactedMarker = "REDACTED"

// URL returns the connection string in URL form. Every byte of user,
// password, database and parameters that is not unreserved is
// percent-encoded; '+' and space included, because libpq reads '+' as a
// plus and pgx (net/url) reads it as a space.
func (c *Conn) URL() secret.String { return secret.New(c.buildURL(false)) }

// DSN returns the connection string in keyword/value form. Values are
// single-quoted when empty or when they hold whitespace, a quote or a
// backslash. Param keys are written as they are; they must be libpq
// keywords (no whitespace, no '=').
func (c *Conn) DSN() secret.String { return secret.New(c.buildDSN(false)) }

func (c *Conn) buildURL(redact bool) string {
	pw := c.Password.Reveal()
	var b strings.Builder
	b.Grow(c.urlSize(pw))
	if c.Scheme == "postgres" {
		b.WriteString("postgres://")
	} else {
		b.WriteString("postgresql://")
	}

	if c.User != "" || pw != "" {
		b.WriteString(escape(c.User))
		if pw != "" {
			b.WriteByte(':')
			if redact {
				b.WriteString(redactedMarker)
			} else {
				b.WriteString(escape(pw))
			}
		}
		b.WriteByte('@')
	}

	// One host and port, the common case, need no slices on the heap.
	var oneHost, onePort [1]string
	hosts := splitList(c.Host, oneHost[:])
	var ports []string
	if c.Port != "" {
		ports = splitList(c.Port, onePort[:])
	}
	inAuthority := authorityCanHold(hosts, ports)
	if inAuthority {
		for i, h := range hosts {
			if i > 0 {
				b.WriteByte(',')
			}
			if strings.IndexByte(h, ':') >= 0 {
				b.WriteByte('[')
				b.WriteString(h)
				b.WriteByte(']')
			} else {
				b.WriteString(h)
			}
			// Every element gets its ':' once any port is set, even an
			// empty one: that is how "5432," survives a round trip, and
			// net/url (pgx) rejects "h1:5432,h2" but accepts "h1:5432,h2:".
			if ports != nil {
				b.WriteByte(':')
				b.WriteString(ports[i])
			}
		}
	}

	if c.Database != "" {
		b.WriteByte('/')
		b.WriteString(escape(c.Database))
	}

	sep := byte('?')
	param := func(k, v string) {
		b.WriteByte(sep)
		sep = '&'
		b.WriteString(escape(k))
		b.WriteByte('=')
		b.WriteString(escape(v))
	}
	if !inAuthority {
		if c.Host != "" {
			param(keyHost, c.Host)
		}
		if c.Port != "" {
			param(keyPort, c.Port)
		}
	}
	for _, p := range c.Params {
		v := p.Value
		if redact && secretParam(p.Key) {
			v = redactedMarker
		}
		param(p.Key, v)
	}
	return b.String()
}

// urlSize bounds the length of the URL of c with password pw, so that
// building it grows its buffer once: every byte it writes may be
// percent-encoded (three bytes).
func (c *Conn) urlSize(pw string) int {
	n := len("postgresql://") + 3*(len(c.User)+len(pw)+len(c.Database)+len(c.Host)+len(c.Port)) + len(":@/?host=&port=[]")
	for _, p := range c.Params {
		n += 2 + 3*(len(p.Key)+len(p.Value))
	}
	return n
}

// splitList is strings.Split(s, ","), except that a single element goes
// into one, the caller's array, instead of a new slice.
func splitList(s string, one []string) []string {
	if strings.IndexByte(s, ',') < 0 {
		one[0] = s
		return one
	}
	return strings.Split(s, ",")
}

// secretParam reports whether a parameter holds a secret of its own (the
// client key's passphrase), which Redacted must hide like the password.
func secretParam(key string) bool {
	return strings.EqualFold(key, "sslpassword")
}

// authorityCanHold reports whether the hosts and ports can be written as
// host:port,host:port. Anything else (unix socket directories, IPv6 zones,
// non-ASCII names, one port for several hosts) goes to ?host=&port=, which
// every client reads and which percent-encodes cleanly.
func authorityCanHold(hosts, ports []string) bool {
	if ports != nil && len(ports) != len(hosts) {
		return false
	}
	for _, h := range hosts {
		if h != "" && !isRegName(h) && !isIPv6Literal(h) {
			return false
		}
	}
	for _, p := range ports {
		for i := 0; i < len(p); i++ {
			if p[i] < '0' || p[i] > '9' {
				return false
			}
		}
	}
	return true
}

func isRegName(h string) bool {
	for i := 0; i < len(h); i++ {
		if !isUnreserved(h[i]) {
			return false
		}
	}
	return h != ""
}

func isIPv6Literal(h string) bool {
	if strings.IndexByte(h, ':') < 0 {
		return false
	}
	for i := 0; i < len(h); i++ {
		ch := h[i]
		if ch != ':' && ch != '.' && !isHex(ch) {
			return false
		}
	}
	return true
}

func (c *Conn) buildDSN(redact bool) string {
	var parts []string
	add := func(k, v string) { parts = append(parts, k+"="+quoteDSN(v)) }
	if c.Host != "" {
		add(keyHost, c.Host)
	}
	if c.Port != "" {
		add(keyPort, c.Port)
	}
	if c.User != "" {
		add(keyUser, c.User)
	}
	if !c.Password.IsZero() {
		if redact {
			add(keyPassword, redactedMarker)
		} else {
			add(keyPassword, c.Password.Reveal())
		}
	}
	if c.Database != "" {
		add(keyDBName, c.Database)
	}
	for _, p := range c.Params {
		v := p.Value
		if redact && secretParam(p.Key) {
			v = redactedMarker
		}
		add(p.Key, v)
	}
	return strings.Join(parts, " ")
}

// quoteDSN quotes only where libpq needs it, so simple values stay readable.
// Inside quotes only \ and ' are escaped: libpq and pgx agree on those two,
// but not on other backslash sequences.
func quoteDSN(v string) string {
	if v != "" && !strings.ContainsAny(v, dsnSpace+`'\`) {
		return v
	}
	var b strings.Builder
	b.Grow(len(v) + 2)
	b.WriteByte('\'')
	for i := 0; i < len(v); i++ {
		if v[i] == '\'' || v[i] == '\\' {
			b.WriteByte('\\')
		}
		b.WriteByte(v[i])
	}
	b.WriteByte('\'')
	return b.String()
}

// dsnSpace is what C isspace() accepts in the C locale, which is what libpq
// splits keyword/value pairs on.
const dsnSpace = " \t\n\v\f\r"

func isSpace(ch byte) bool { return strings.IndexByte(dsnSpace, ch) >= 0 }

func isUnreserved(ch byte) bool {
	return 'a' <= ch && ch <= 'z' || 'A' <= ch && ch <= 'Z' || '0' <= ch && ch <= '9' ||
		ch == '-' || ch == '.' || ch == '_' || ch == '~'
}

func isHex(ch byte) bool {
	return '0' <= ch && ch <= '9' || 'a' <= ch && ch <= 'f' || 'A' <= ch && ch <= 'F'
}

func unhex(ch byte) byte {
	switch {
	case '0' <= ch && ch <= '9':
		return ch - '0'
	case 'a' <= ch && ch <= 'f':
		return ch - 'a' + 10
	default:
		return ch - 'A' + 10
	}
}

// escape percent-encodes every byte that is not unreserved. It is stricter
// than RFC 3986 needs for userinfo or paths, on purpose: sub-delims such as
// '$', '&' or ';' mean something to shells, .env loaders and YAML, and a
// connection string travels through all of them.
func escape(s string) string {
	n := 0
	for i := 0; i < len(s); i++ {
		if !isUnreserved(s[i]) {
			n++
		}
	}
	if n == 0 {
		return s
	}
	const hexDigits = "0123456789ABCDEF"
	buf := make([]byte, 0, len(s)+2*n)
	for i := 0; i < len(s); i++ {
		ch := s[i]
		if isUnreserved(ch) {
			buf = append(buf, ch)
			continue
		}
		buf = append(buf, '%', hexDigits[ch>>4], hexDigits[ch&15])
	}
	return string(buf)
}

// unescape decodes %XX sequences and reports false on a '%' that does not
// start one. '+' stays a plus, as libpq reads it.
func unescape(s string) (string, bool) {
	if strings.IndexByte(s, '%') < 0 {
		return s, true
	}
	buf := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			buf = append(buf, s[i])
			continue
		}
		if i+2 >= len(s) || !isHex(s[i+1]) || !isHex(s[i+2]) {
			return "", false
		}
		buf = append(buf, unhex(s[i+1])<<4|unhex(s[i+2]))
		i += 2
	}
	return string(buf), true
}
