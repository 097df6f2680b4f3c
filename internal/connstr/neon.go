package connstr

import (
	"errors"
	"fmt"
	"strings"
)

// ErrNotNeonHost is wrapped when a pooled host is asked of a host whose
// pooled name cannot be derived.
var ErrNotNeonHost = errors.New("not a Neon endpoint host")

const (
	neonDomain       = ".neon.tech"
	neonEndpointTag  = "ep-"
	neonPoolerSuffix = "-pooler"
)

// IsNeonHost reports whether host is a single Neon endpoint hostname: made
// of letters, digits, dots and hyphens, under neon.tech, with a first label
// that starts with "ep-". Other Neon domains (neon.build, local test hosts)
// are left out on purpose: for those, configure pooled_host explicitly.
func IsNeonHost(host string) bool {
	h := asciiLower(host)
	if !strings.HasSuffix(h, neonDomain) || strings.Contains(h, "..") {
		return false
	}
	for i := 0; i < len(h); i++ {
		ch := h[i]
		if !('a' <= ch && ch <= 'z' || '0' <= ch && ch <= '9' || ch == '.' || ch == '-') {
			return false
		}
	}
	label, _, _ := strings.Cut(h, ".")
	return strings.HasPrefix(label, neonEndpointTag) && len(label) > len(neonEndpointTag)
}

// PooledHost returns the pooled hostname of a Neon endpoint: "-pooler"
// goes right after the endpoint id (the first label). A host that is
// already pooled is returned unchanged.
func PooledHost(host string) (string, error) {
	if !IsNeonHost(host) {
		return "", fmt.Errorf("host %q is not a Neon endpoint host (ep-….neon.tech), so its pooled host cannot be derived"+
			" — set pooled_host explicitly: %w", host, ErrNotNeonHost)
	}
	label, rest, _ := strings.Cut(host, ".")
	if isPoolerLabel(label) {
		return host, nil
	}
	return label + neonPoolerSuffix + "." + rest, nil
}

// DirectHost strips "-pooler" from the first label of a Neon endpoint
// host. Any other host is returned unchanged: outside Neon, a "-pooler" in
// a name is not ours to interpret.
func DirectHost(host string) string {
	if !IsNeonHost(host) {
		return host
	}
	label, rest, _ := strings.Cut(host, ".")
	if !isPoolerLabel(label) {
		return host
	}
	return label[:len(label)-len(neonPoolerSuffix)] + "." + rest
}

// isPoolerLabel requires an endpoint id before the suffix, so that a label
// such as "ep--pooler" is not stripped down to a bare "ep-".
func isPoolerLabel(label string) bool {
	l := asciiLower(label)
	return strings.HasSuffix(l, neonPoolerSuffix) && len(l) > len(neonEndpointTag)+len(neonPoolerSuffix)
}

// Pooled returns a copy whose hosts are the Neon pooled hosts. It fails
// when any host is not a Neon endpoint host.
func (c *Conn) Pooled() (*Conn, error) {
	hosts := strings.Split(c.Host, ",")
	for i, h := range hosts {
		p, err := PooledHost(h)
		if err != nil {
			return nil, err
		}
		hosts[i] = p
	}
	return c.WithHost(strings.Join(hosts, ",")), nil
}

// Direct returns a copy whose Neon hosts are direct (not pooled) hosts.
func (c *Conn) Direct() *Conn {
	hosts := strings.Split(c.Host, ",")
	for i, h := range hosts {
		hosts[i] = DirectHost(h)
	}
	return c.WithHost(strings.Join(hosts, ","))
}

// asciiLower lowers ASCII letters only, byte for byte, so that indexes into
// the result are indexes into the input (strings.ToLower can change the
// length of invalid or special UTF-8).
func asciiLower(s string) string {
	for i := 0; i < len(s); i++ {
		if 'A' <= s[i] && s[i] <= 'Z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if 'A' <= b[j] && b[j] <= 'Z' {
					b[j] += 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return s
}
