package config

import (
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/rotorhq/rotor/internal/connstr"
	"github.com/rotorhq/rotor/internal/provider"
	"github.com/rotorhq/rotor/internal/schedule"
	"github.com/rotorhq/rotor/internal/secret"
	"github.com/rotorhq/rotor/internal/template"
)

// Config is a loaded, validated configuration with defaults applied: plain
// specs, nothing live. Providers and targets are built from it elsewhere
// (internal/resolve), so reading a config never opens anything.
type Config struct {
	// Path is the config file's absolute path; Dir its directory, against
	// which targets resolve relative paths.
	Path, Dir string
	// File is the path as given, which every message names.
	File string
	// State is the store location: a file path (absolute) or a URL.
	State string
	// KeyFile is the absolute path of the key file used when ROTOR_KEY is unset.
	KeyFile     string
	Credentials []*Credential
	// Unset lists, sorted, the environment variables the file references
	// that are not set (only ParseOptions.AllowUnset lets a Config have
	// any without problems).
	Unset []string
}

// Credential is one managed connection string as configured.
type Credential struct {
	Name string
	Line int
	// Path names the credential in messages: credentials.app.
	Path string
	// Provider is nil only in a config with problems.
	Provider *Provider
	// Conn is how consumers connect (user and password are filled per
	// version); Pooled is the pooled variant, nil when there is none.
	Conn   *connstr.Conn
	Pooled *connstr.Conn
	// Discover is set when the file gives no connection.url: the provider
	// must then discover the endpoints (provider.Endpointer), which only a
	// built provider can tell.
	Discover bool
	// Unresolved is set when connection.url references an environment
	// variable that is not set (allowed with ParseOptions.AllowUnset):
	// Conn is then nil although the file gives a URL.
	Unresolved   bool
	Strategy     string
	Roles        []string
	Group        string
	Policy       secret.Policy
	ExpireAfter  time.Duration
	Schedule     *schedule.Schedule
	DrainTimeout time.Duration
	DrainPoll    time.Duration
	DrainGrace   time.Duration
	DrainQuiet   time.Duration
	DrainWait    time.Duration
	// DrainTerminate ends the old role's remaining sessions at the deadline
	// instead of leaving the old role in use.
	DrainTerminate bool
	Retire         string
	RetireMethod   provider.RetireMethod
	TestTimeout    time.Duration
	TestPooled     bool
	Concurrency    int
	Attempts       int
	MaxBackoff     time.Duration
	TargetTimeout  time.Duration
	Targets        []*Target
}

// Provider is a credential's database provider as configured.
type Provider struct {
	Type string
	// Line is where the provider's settings start; Path names them in
	// messages (credentials.app.provider).
	Line int
	Path string
	// Key is equal for providers written with identical settings, so that
	// credentials sharing them (typically all, through defaults:) can share
	// one provider and so one admin connection pool. It is a digest: it
	// holds no secret.
	Key     string
	Options Options
}

// Target is one configured target of a credential.
type Target struct {
	Name string
	Type string
	Line int
	// Path names the target in messages: credentials.app.targets[0] (env).
	Path string
	// Keys are the value names in file order and Values their templates,
	// Values[i] for Keys[i] (slices: a map per target cost a thousand
	// credentials 200 KB). In a config with problems, a value whose
	// template did not compile has a nil template.
	Keys   []string
	Values []*template.Template
	// ValuesLine is where values: is written, ValueLines[i] where Keys[i]'s
	// value is.
	ValuesLine int
	ValueLines []int
	// Incomplete is set when values: could not be read as written (its
	// problem is reported): Keys are not all the keys meant.
	Incomplete bool
	// Unresolved lists the keys whose template references an environment
	// variable that is not set (allowed with ParseOptions.AllowUnset).
	Unresolved []string
	// ReloadTimeout bounds the target's reload (reload_timeout).
	ReloadTimeout time.Duration
	Options       Options
}

// Options are a provider's or a target's own settings, kept as written so
// that whoever builds it decodes them into its own options type, with the
// same strictness and file:line messages as the rest of the file.
type Options struct {
	node *yaml.Node
	file string
	path string
	// unset are the environment variables the options reference that are
	// not set, in the order first referenced.
	unset []string
}

// options keeps own, a provider's or target's own settings, as Options.
func (d *decoder) options(own *yaml.Node, path string) Options {
	o := Options{node: own, file: d.file, path: path}
	var walk func(*yaml.Node)
	walk = func(n *yaml.Node) {
		if n.Kind == yaml.ScalarNode && len(d.unset) > 0 && strings.Contains(n.Value, "${") {
			for _, m := range envRef.FindAllStringSubmatch(n.Value, -1) {
				if name := m[1]; name != "" && d.unset[name] && !slices.Contains(o.unset, name) {
					o.unset = append(o.unset, name)
				}
			}
		}
		for _, c := range n.Content {
			walk(c)
		}
	}
	walk(own)
	return o
}

// Unset lists the environment variables the options reference that are
// not set (only a config parsed with ParseOptions.AllowUnset is built
// from options that reference any). Whatever is built from such options
// holds the references as written: it may be described, never used.
func (o Options) Unset() []string { return slices.Clone(o.unset) }

// Decode fills v, a pointer to a struct with yaml tags, from the options.
// An unknown key, a value of the wrong kind or a bad duration is an error;
// every problem is returned together as Errors, located in the file. No
// options written leaves v untouched.
func (o Options) Decode(v any) error {
	if o.Empty() {
		return nil
	}
	d := &decoder{file: o.file}
	if !d.decode(o.node, v, o.path) {
		return d.sorted()
	}
	return nil
}

// Empty reports whether no option was written.
func (o Options) Empty() bool { return o.node == nil || len(o.node.Content) == 0 }

// First returns the first option written and its line, for the message
// of a provider or target type that takes none.
func (o Options) First() (key string, line int) {
	if o.Empty() {
		return "", 0
	}
	return o.node.Content[0].Value, o.node.Content[0].Line
}

// ValidName reports whether s may name a credential or a target: 1 to 63
// letters, digits, '_', '.' and '-', starting with a letter or digit.
// (A loop, not a regexp: it runs for every credential and target of a
// config.)
func ValidName(s string) bool {
	if s == "" || len(s) > 63 || !isAlnum(s[0]) {
		return false
	}
	for i := 1; i < len(s); i++ {
		if c := s[i]; !isAlnum(c) && c != '_' && c != '.' && c != '-' {
			return false
		}
	}
	return true
}

// isAlnum reports whether c is an ASCII letter or digit.
func isAlnum(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}

// TargetCommonKeys are the keys every target entry takes; the rest of an
// entry is the target type's own options.
func TargetCommonKeys() []string { return append([]string(nil), targetCommonKeys...) }
