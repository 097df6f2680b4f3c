package connstr

import (
	"fmt"
	"log/slog"
	"strings"

	"github.com/rotorhq/rotor/internal/secret"
)

// Form is the notation a connection string was written in.
type Form int

const (
	// FormURL is postgresql://user:password@host:port/dbname?key=value.
	FormURL Form = iota
	// FormKeyValue is libpq's keyword/value form: host=h user=u dbname=d.
	FormKeyValue
)

// String implements fmt.Stringer.
func (f Form) String() string {
	switch f {
	case FormURL:
		return "url"
	case FormKeyValue:
		return "keyvalue"
	default:
		return fmt.Sprintf("Form(%d)", int(f))
	}
}

// MarshalText makes the form readable in JSON and YAML output.
func (f Form) MarshalText() ([]byte, error) { return []byte(f.String()), nil }

// Param is one connection parameter that has no field of its own in Conn
// (sslmode, channel_binding, options, application_name, …).
type Param struct {
	Key   string
	Value string
}

// The libpq keywords that map to Conn fields rather than to Params.
const (
	keyHost     = "host"
	keyPort     = "port"
	keyUser     = "user"
	keyPassword = "password"
	keyDBName   = "dbname"
)

// Conn is a parsed connection string. Params must not hold the keywords
// that have a field (host, port, user, password, dbname): Parse never puts
// them there, and a copy in Params would override the field when the string
// is read back.
type Conn struct {
	Form Form
	// Scheme is "postgresql" or "postgres" as written; URL writes
	// "postgresql" when it is anything else.
	Scheme   string
	User     string
	Password secret.String
	// Host is as given: one host, a comma-separated list, an IPv6 address
	// without brackets, a unix socket directory, or "" for the default.
	Host string
	// Port is "" for the default, or a comma-separated list that pairs
	// with Host (an element may be empty for that host's default).
	Port     string
	Database string
	// Params keeps the other parameters in their original order, repeated
	// keys included.
	Params []Param
}

// Clone returns a deep copy.
func (c *Conn) Clone() *Conn {
	if c == nil {
		return nil
	}
	cp := *c
	if c.Params != nil {
		cp.Params = append([]Param(nil), c.Params...)
	}
	return &cp
}

// Equal reports whether both hold the same connection string, password
// included (compared in constant time). Form and Scheme count.
func (c *Conn) Equal(o *Conn) bool {
	if c == nil || o == nil {
		return c == o
	}
	if c.Form != o.Form || c.Scheme != o.Scheme || c.User != o.User ||
		c.Host != o.Host || c.Port != o.Port || c.Database != o.Database ||
		len(c.Params) != len(o.Params) {
		return false
	}
	for i := range c.Params {
		if c.Params[i] != o.Params[i] {
			return false
		}
	}
	return c.Password.Equal(o.Password)
}

// Param returns the value of a libpq keyword. The field keywords (host,
// port, user, dbname) read the fields. For password it always returns
// ("", false): the password only leaves a Conn as a secret.String, through
// c.Password. When a key repeats, the last value wins, as in libpq.
func (c *Conn) Param(key string) (string, bool) {
	switch key {
	case keyHost:
		return c.Host, c.Host != ""
	case keyPort:
		return c.Port, c.Port != ""
	case keyUser:
		return c.User, c.User != ""
	case keyDBName:
		return c.Database, c.Database != ""
	case keyPassword:
		return "", false
	}
	for i := len(c.Params) - 1; i >= 0; i-- {
		if c.Params[i].Key == key {
			return c.Params[i].Value, true
		}
	}
	return "", false
}

// SetParam sets a libpq keyword. The field keywords set their field
// (password included, so that a keyword read from a config file lands in
// the secret). Any other key replaces the first occurrence in place and
// drops later repeats, so the value is unambiguous; a new key is appended.
func (c *Conn) SetParam(key, value string) {
	switch key {
	case keyHost:
		c.Host = value
		return
	case keyPort:
		c.Port = value
		return
	case keyUser:
		c.User = value
		return
	case keyDBName:
		c.Database = value
		return
	case keyPassword:
		c.Password = secret.New(value)
		return
	}
	found := false
	kept := c.Params[:0]
	for _, p := range c.Params {
		if p.Key == key {
			if found {
				continue
			}
			found = true
			p.Value = value
		}
		kept = append(kept, p)
	}
	if !found {
		kept = append(kept, Param{Key: key, Value: value})
	}
	c.Params = kept
}

// HostPort is one host of a connection string with its port; Port is ""
// for that host's default.
type HostPort struct {
	Host string `json:"host"`
	Port string `json:"port"`
}

// Hosts pairs each host of the host list with its port, as libpq does: one
// port applies to every host, otherwise the lists pair up element by
// element ("h1,h2:5433" is h1 on the default port and h2 on 5433, stored as
// Host "h1,h2" and Port ",5433"). It fails when the lists cannot pair up.
func (c *Conn) Hosts() ([]HostPort, error) {
	hosts := strings.Split(c.Host, ",")
	var ports []string
	if c.Port != "" {
		ports = strings.Split(c.Port, ",")
	}
	if len(ports) > 1 && len(ports) != len(hosts) {
		return nil, invalid(fmt.Sprintf("%d ports for %d hosts — give one port for all hosts, or one per host", len(ports), len(hosts)))
	}
	out := make([]HostPort, len(hosts))
	for i, h := range hosts {
		out[i].Host = h
		switch len(ports) {
		case 0:
		case 1:
			out[i].Port = ports[0]
		default:
			out[i].Port = ports[i]
		}
	}
	return out, nil
}

// WithUser returns a copy with another user.
func (c *Conn) WithUser(user string) *Conn {
	cp := c.Clone()
	cp.User = user
	return cp
}

// WithPassword returns a copy with another password.
func (c *Conn) WithPassword(p secret.String) *Conn {
	cp := c.Clone()
	cp.Password = p
	return cp
}

// WithHost returns a copy with another host (or host list). The port is
// kept.
func (c *Conn) WithHost(host string) *Conn {
	cp := c.Clone()
	cp.Host = host
	return cp
}

// Redacted returns the connection string in its own form (URL or
// keyword/value) with the password replaced by REDACTED. It is safe to log.
func (c *Conn) Redacted() string {
	if c == nil {
		return "<nil>"
	}
	if c.Form == FormKeyValue {
		return c.buildDSN(true)
	}
	return c.buildURL(true)
}

// String implements fmt.Stringer; it is Redacted.
func (c *Conn) String() string { return c.Redacted() }

// LogValue implements slog.LogValuer so that a logged Conn is redacted.
func (c *Conn) LogValue() slog.Value { return slog.StringValue(c.Redacted()) }

var (
	_ fmt.Stringer   = (*Conn)(nil)
	_ slog.LogValuer = (*Conn)(nil)
)
