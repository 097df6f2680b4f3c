package connstr

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/rotorhq/rotor/internal/secret"
)

// ErrInvalid is wrapped by every Parse error.
var ErrInvalid = errors.New("invalid connection string")

// invalid builds a Parse error. It takes no input fragments on purpose:
// when a password is mistyped, any piece of the input (a "port", a "query
// key") may be part of it.
func invalid(msg string) error { return fmt.Errorf("%s: %w", msg, ErrInvalid) }

const (
	schemeLong  = "postgresql://"
	schemeShort = "postgres://"
)

// Parse reads a connection string in URL or keyword/value form. Leading and
// trailing whitespace is ignored. Where libpq would quietly read part of a
// mistyped password as a host, port, database or another keyword, Parse
// fails instead. Errors wrap ErrInvalid, say what is wrong and how to fix
// it, and never contain the input or the password.
func Parse(s string) (*Conn, error) {
	t := strings.Trim(s, dsnSpace)
	switch {
	case t == "":
		return nil, invalid("connection string is empty — set a postgresql:// URL or key=value pairs")
	case strings.HasPrefix(t, schemeLong):
		return parseURL("postgresql", t[len(schemeLong):])
	case strings.HasPrefix(t, schemeShort):
		return parseURL("postgres", t[len(schemeShort):])
	}
	if i := strings.Index(t, "://"); i >= 0 {
		if eq := strings.IndexByte(t, '='); eq < 0 || i < eq {
			return nil, invalid("unsupported URL scheme — write postgresql:// or postgres:// (lowercase)")
		}
	}
	if strings.IndexByte(t, '=') < 0 {
		return nil, invalid("not a connection string — expected a postgresql:// URL or key=value pairs")
	}
	return parseDSN(t)
}

func parseURL(scheme, rest string) (*Conn, error) {
	if strings.IndexByte(rest, '#') >= 0 {
		return nil, invalid("connection string contains '#', which URLs treat as the start of a fragment" +
			" — if the password or another value contains '#', percent-encode it as %23")
	}

	authEnd := strings.IndexAny(rest, "/?")
	if authEnd < 0 {
		authEnd = len(rest)
	}
	if err := checkTrailingAt(rest, authEnd); err != nil {
		return nil, err
	}

	c := &Conn{Form: FormURL, Scheme: scheme}
	hostPart := rest[:authEnd]
	if at := strings.LastIndexByte(hostPart, '@'); at >= 0 {
		userinfo := hostPart[:at]
		hostPart = hostPart[at+1:]
		if first := strings.IndexByte(userinfo, '@'); first >= 0 {
			if colon := strings.IndexByte(userinfo, ':'); colon >= 0 && colon < first {
				return nil, invalid("password contains '@' — percent-encode it as %40")
			}
			return nil, invalid("user name contains '@' — percent-encode it as %40")
		}
		user, pw, _ := strings.Cut(userinfo, ":")
		var ok bool
		if c.User, ok = unescape(user); !ok {
			return nil, invalid("user name contains a '%' that does not start a %XX escape — write '%' as %25")
		}
		pwPlain, ok := unescape(pw)
		if !ok {
			return nil, invalid("password contains a '%' that does not start a %XX escape — write '%' as %25")
		}
		c.Password = secret.New(pwPlain)
	}

	hosts, ports, err := parseHostList(hostPart)
	if err != nil {
		return nil, err
	}
	c.Host, c.Port = hosts, ports

	rest = rest[authEnd:]
	query := ""
	if q := strings.IndexByte(rest, '?'); q >= 0 {
		rest, query = rest[:q], rest[q+1:]
	}
	if rest != "" { // starts with '/'
		var ok bool
		if c.Database, ok = unescape(rest[1:]); !ok {
			return nil, invalid("database name contains a '%' that does not start a %XX escape — write '%' as %25")
		}
	}

	if err := parseQuery(c, query); err != nil {
		return nil, err
	}
	if err := validatePorts(c.Port); err != nil {
		return nil, err
	}
	return c, nil
}

// checkTrailingAt rejects an '@' after the authority when a ':' comes
// before it. Such a string has two readings — a password holding '/' or
// '?', or a database name or parameter holding '@' — and guessing wrong
// would send a piece of the password somewhere it gets printed.
func checkTrailingAt(rest string, authEnd int) error {
	lastAt := strings.LastIndexByte(rest, '@')
	if lastAt < authEnd || strings.IndexByte(rest[:lastAt], ':') < 0 {
		return nil
	}
	if strings.IndexByte(rest[:authEnd], '@') < 0 {
		ch, enc := "/", "%2F"
		if rest[authEnd] == '?' {
			ch, enc = "?", "%3F"
		}
		return invalid(fmt.Sprintf("the password seems to contain '%s' — percent-encode it as %s"+
			" (or, if the database name or a parameter contains '@', percent-encode that '@' as %%40)", ch, enc))
	}
	return invalid("'@' after the host is ambiguous — percent-encode '@' as %40 in the database name and parameters," +
		" and '/' as %2F and '?' as %3F in the password")
}

// parseHostList reads host[:port],host[:port]… as libpq does: hosts are
// percent-decoded, IPv6 literals are bracketed, an element may be empty
// (that host's default). Port is "" unless some element has a ':'.
func parseHostList(s string) (host, port string, err error) {
	elems := strings.Split(s, ",")
	hosts := make([]string, len(elems))
	ports := make([]string, len(elems))
	anyPort := false
	for i, e := range elems {
		var h, p string
		hasPort := false
		if strings.HasPrefix(e, "[") {
			end := strings.IndexByte(e, ']')
			if end < 0 {
				return "", "", invalid("host starts with '[' but has no closing ']' — write IPv6 addresses as [::1]:5432")
			}
			h = e[1:end]
			if after := e[end+1:]; after != "" {
				if after[0] != ':' {
					return "", "", invalid("unexpected text after an IPv6 host's ']' — write it as [::1]:5432")
				}
				p, hasPort = after[1:], true
			}
		} else {
			var found bool
			h, p, found = strings.Cut(e, ":")
			hasPort = found
			if strings.IndexByte(p, ':') >= 0 {
				return "", "", invalid("host contains ':' — write IPv6 addresses in brackets, as [::1]:5432")
			}
			if strings.ContainsAny(h, "[]") {
				return "", "", invalid("host contains '[' or ']' — only IPv6 addresses are bracketed, as [::1]:5432")
			}
		}
		for j := 0; j < len(h); j++ {
			if h[j] <= ' ' || h[j] == 0x7f {
				return "", "", invalid("host contains whitespace or a control character — remove it")
			}
		}
		var ok bool
		if hosts[i], ok = unescape(h); !ok {
			return "", "", invalid("host contains a '%' that does not start a %XX escape — write '%' as %25")
		}
		ports[i] = p
		anyPort = anyPort || hasPort
	}
	host = strings.Join(hosts, ",")
	if anyPort {
		port = strings.Join(ports, ",")
	}
	return host, port, nil
}

func parseQuery(c *Conn, query string) error {
	n := 0
	for seg := range strings.SplitSeq(query, "&") {
		if seg == "" {
			continue
		}
		n++
		k, v, ok := strings.Cut(seg, "=")
		if !ok {
			return invalid(fmt.Sprintf("query parameter %d has no '=' — write key=value", n))
		}
		key, ok := unescape(k)
		if !ok {
			return invalid(fmt.Sprintf("query parameter %d has a '%%' in its name that does not start a %%XX escape — write '%%' as %%25", n))
		}
		if key == "" {
			return invalid(fmt.Sprintf("query parameter %d has an empty name — write key=value", n))
		}
		value, ok := unescape(v)
		if !ok {
			return invalid(fmt.Sprintf("query parameter %d has a '%%' in its value that does not start a %%XX escape — write '%%' as %%25", n))
		}
		c.setParamFromInput(key, value)
	}
	return nil
}

// setParamFromInput is SetParam for parsers: repeated keys are kept as they
// are, in order, instead of being collapsed.
func (c *Conn) setParamFromInput(key, value string) {
	switch key {
	case keyHost, keyPort, keyUser, keyDBName, keyPassword:
		c.SetParam(key, value)
	default:
		c.Params = append(c.Params, Param{Key: key, Value: value})
	}
}

func validatePorts(ports string) error {
	if ports == "" {
		return nil
	}
	for p := range strings.SplitSeq(ports, ",") {
		if p == "" {
			continue
		}
		ok := len(p) <= 5
		for i := 0; ok && i < len(p); i++ {
			ok = '0' <= p[i] && p[i] <= '9'
		}
		if ok {
			n, _ := strconv.Atoi(p)
			ok = n >= 1 && n <= 65535
		}
		if !ok {
			return invalid("port must be a number from 1 to 65535")
		}
	}
	return nil
}

// parseDSN follows libpq's conninfo_parse: pairs are separated by
// whitespace, whitespace around '=' is allowed, a value is either
// single-quoted (with \' and \\) or runs to the next whitespace (where a
// backslash escapes the next byte). One deliberate difference: libpq reads
// "user= password=x" as the user "password=x"; that is an error here.
func parseDSN(s string) (*Conn, error) {
	c := &Conn{Form: FormKeyValue}
	i, n := 0, 0
	skipSpace := func() {
		for i < len(s) && isSpace(s[i]) {
			i++
		}
	}
	for {
		skipSpace()
		if i == len(s) {
			break
		}
		n++
		start := i
		for i < len(s) && !isSpace(s[i]) && s[i] != '=' {
			i++
		}
		key := s[start:i]
		skipSpace()
		if i == len(s) || s[i] != '=' {
			return nil, invalid(fmt.Sprintf("keyword/value pair %d has no '=' — write key=value,"+
				" and single-quote values that contain spaces, as password='a b'", n))
		}
		if key == "" {
			return nil, invalid(fmt.Sprintf("keyword/value pair %d has no keyword before '=' — write key=value", n))
		}
		i++
		valueAt := i
		skipSpace()
		if i > valueAt && i < len(s) && s[i] != '\'' {
			next := s[i:]
			if end := strings.IndexAny(next, dsnSpace); end >= 0 {
				next = next[:end]
			}
			if strings.IndexByte(next, '=') >= 0 {
				// libpq would take the next pair as this value, and a
				// password could end up in a field that gets printed.
				return nil, invalid(fmt.Sprintf("keyword/value pair %d has no value but is followed by another pair"+
					" — write key='' for an empty value", n))
			}
		}

		var b strings.Builder
		if i < len(s) && s[i] == '\'' {
			i++
			closed := false
			for i < len(s) {
				ch := s[i]
				i++
				if ch == '\\' {
					if i < len(s) {
						b.WriteByte(s[i])
						i++
					}
					continue
				}
				if ch == '\'' {
					closed = true
					break
				}
				b.WriteByte(ch)
			}
			if !closed {
				return nil, invalid(fmt.Sprintf("the value of keyword/value pair %d has no closing quote"+
					" — end it with ' and write quotes inside as \\'", n))
			}
		} else {
			for i < len(s) && !isSpace(s[i]) {
				if s[i] == '\\' {
					i++
					if i == len(s) {
						break
					}
				}
				b.WriteByte(s[i])
				i++
			}
		}
		c.setParamFromInput(key, b.String())
	}
	if err := validatePorts(c.Port); err != nil {
		return nil, err
	}
	return c, nil
}
