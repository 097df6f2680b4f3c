// Package config loads rotor.yaml: strict YAML (an unknown key is an error
// with file:line), ${ENV} interpolation for secrets, defaults, and
// validation of everything that can be checked without I/O — strategies,
// schedules, templates. It produces plain specs and builds nothing: each
// provider's and target's own options are kept as written (Options) for
// its factory to decode, as strictly and as located (internal/resolve).
package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// DefaultFile is the config file name `rotor` looks for.
const DefaultFile = "rotor.yaml"

// Strategy names (DESIGN.md "Strategies").
const (
	StrategySingle = "single"
	StrategyDual   = "dual"
)

// Retire policies for the old role of a dual rotation.
const (
	RetireImmediately  = "immediately"
	RetireNextRotation = "next-rotation"
)

// File is the whole config file as written.
type File struct {
	Version     int              `yaml:"version"`
	State       string           `yaml:"state"`
	KeyFile     string           `yaml:"key_file"`
	Defaults    CredentialConfig `yaml:"defaults"`
	Credentials yaml.Node        `yaml:"credentials"`
}

// CredentialConfig is one credential as written; every field is optional
// in `defaults:`.
type CredentialConfig struct {
	Provider     yaml.Node       `yaml:"provider"`
	Connection   *Connection     `yaml:"connection"`
	Strategy     string          `yaml:"strategy"`
	Role         string          `yaml:"role"`
	Roles        []string        `yaml:"roles"`
	Group        string          `yaml:"group"`
	Password     *PasswordPolicy `yaml:"password"`
	ExpireAfter  *Duration       `yaml:"expire_after"`
	Schedule     *Schedule       `yaml:"schedule"`
	Drain        *Drain          `yaml:"drain"`
	Retire       string          `yaml:"retire"`
	RetireMethod string          `yaml:"retire_method"`
	Test         *TestConfig     `yaml:"test"`
	Publish      *Publish        `yaml:"publish"`
	Targets      []yaml.Node     `yaml:"targets"`
}

// Connection says how consumers reach the database. The user and password
// in these URLs are ignored: rotor fills in the role and the version's
// password.
type Connection struct {
	URL       string `yaml:"url"`
	PooledURL string `yaml:"pooled_url"`
}

// PasswordPolicy mirrors secret.Policy.
type PasswordPolicy struct {
	Length  int   `yaml:"length"`
	Lower   *bool `yaml:"lower"`
	Upper   *bool `yaml:"upper"`
	Digits  *bool `yaml:"digits"`
	Symbols *bool `yaml:"symbols"`
}

// Schedule says when a credential is due (DESIGN.md "engine").
type Schedule struct {
	Every  Duration `yaml:"every"`
	Cron   string   `yaml:"cron"`
	Window string   `yaml:"window"`
	Jitter Duration `yaml:"jitter"`
}

// Drain is how long a dual rotation waits for the old role's sessions.
type Drain struct {
	Timeout   Duration `yaml:"timeout"`
	Poll      Duration `yaml:"poll"`
	Grace     Duration `yaml:"grace"`
	Quiet     Duration `yaml:"quiet"`
	Wait      Duration `yaml:"wait"`
	Terminate *bool    `yaml:"terminate"`
}

// TestConfig tunes the test step.
type TestConfig struct {
	Timeout Duration `yaml:"timeout"`
	Pooled  *bool    `yaml:"pooled"`
}

// Publish tunes the publish step.
type Publish struct {
	Concurrency int      `yaml:"concurrency"`
	Attempts    int      `yaml:"attempts"`
	MaxBackoff  Duration `yaml:"max_backoff"`
	Timeout     Duration `yaml:"timeout"`
}

// TargetConfig is the part of a target entry that every target shares;
// the rest of the entry is the target type's own options.
type TargetConfig struct {
	Name          string            `yaml:"name"`
	Type          string            `yaml:"type"`
	Values        map[string]string `yaml:"values"`
	ReloadTimeout Duration          `yaml:"reload_timeout"`
}

var targetCommonKeys = []string{"name", "type", "values", "reload_timeout"}

// ReadFile reads a config file, with the message rotor gives for a
// missing one.
func ReadFile(path string) ([]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("config file %s not found; create one with `rotor init` or pass --config", path)
		}
		return nil, fmt.Errorf("read config: %w", err)
	}
	return data, nil
}

// Parse reads and validates a config file's contents; path is used for
// messages and to resolve relative paths. getenv resolves ${VAR}
// references (os.LookupEnv in production). Every problem found is returned
// together as Errors, in file order.
//
// When the file has problems, the Config returned with them (nil if the
// file could not be decoded that far) holds the specs that could be read,
// so that the caller who builds providers and targets from them can add
// its own problems to the same report (internal/resolve does). Such a
// Config is incomplete: use it for nothing else.
func Parse(path string, data []byte, getenv func(string) (string, bool)) (*Config, error) {
	return ParseWith(path, data, getenv, ParseOptions{})
}

// ParseOptions change what Parse accepts.
type ParseOptions struct {
	// AllowUnset is for commands that contact neither a database nor a
	// target (status, history, validate --offline, plan --offline): a
	// ${VAR} under credentials: or defaults: that is not set is then no
	// error. The reference stays in the value as written, and the options
	// holding it say so (Options.Unset), so that nothing built from them
	// is ever used as if it were complete. state: and key_file: still
	// need theirs: those commands read the store.
	AllowUnset bool
}

// ParseWith is Parse with options.
func ParseWith(path string, data []byte, getenv func(string) (string, bool), opts ParseOptions) (*Config, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("config path: %w", err)
	}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		line, msg := yamlSyntaxError(err)
		return nil, &Error{File: path, Line: line, Msg: "not valid YAML: " + msg}
	}
	if root.Kind == 0 || len(root.Content) == 0 || root.Content[0].Tag == "!!null" {
		return nil, &Error{File: path, Msg: "the file is empty; start from `rotor init`"}
	}
	d := &decoder{file: path}
	doc := d.expandAliases(root.Content[0])
	if len(d.errs) > 0 {
		return nil, d.sorted()
	}
	if doc.Kind != yaml.MappingNode {
		d.errorf(doc, "the document must be a mapping (key: value lines), starting with version: 1")
		return nil, d.sorted()
	}
	dropExtensions(doc)
	written := d.interpolate(doc, getenv, func(key string) bool {
		return opts.AllowUnset && (key == "credentials" || key == "defaults")
	})
	// Whatever the document-level problems (an unknown key, a variable not
	// set), the credentials are still read: one report holds everything.
	var f File
	d.decode(doc, &f, "")
	c := &Config{Path: abs, Dir: filepath.Dir(abs), File: path}
	c.build(d, doc, &f, written)
	for name := range d.unset {
		c.Unset = append(c.Unset, name)
	}
	slices.Sort(c.Unset)
	if len(d.errs) > 0 {
		return c, d.sorted()
	}
	return c, nil
}

var yamlSyntaxRE = regexp.MustCompile(`^yaml: (?:line ([0-9]+): )?`)

// yamlParserProblems are the messages of yaml.v3's parser, as opposed to
// its scanner. yaml.v3 reports a parser problem's line counting from 0
// (a scanner problem's from 1), and none at all for the first line.
var yamlParserProblems = []string{
	"did not find expected <stream-start>", "did not find expected <document start>",
	"did not find expected node content", "did not find expected key",
	"did not find expected '-' indicator", "did not find expected ',' or ']'",
	"did not find expected ',' or '}'", "found incompatible YAML document",
	"found duplicate %YAML directive", "found duplicate %TAG directive",
	"found undefined tag handle",
}

// yamlReaderProblems are yaml.v3's complaints about the bytes themselves,
// which carry no line.
var yamlReaderProblems = []string{
	"control characters are not allowed", "invalid Unicode character",
	"invalid leading UTF-8 octet", "invalid trailing UTF-8 octet",
	"incomplete UTF-8 octet sequence", "invalid length of a UTF-8 sequence",
	"incomplete UTF-16 character", "incomplete UTF-16 surrogate pair",
	"expected low surrogate area", "unexpected low surrogate area",
}

// yamlSyntaxError returns the 1-based line of a yaml.Unmarshal syntax error
// (0 when unknown) and its message without yaml.v3's "yaml: line N:" prefix.
func yamlSyntaxError(err error) (int, string) {
	s := err.Error()
	m := yamlSyntaxRE.FindStringSubmatch(s)
	if m == nil {
		return 0, s
	}
	msg := s[len(m[0]):]
	line := 0
	switch {
	case m[1] != "":
		line, _ = strconv.Atoi(m[1])
		if slices.Contains(yamlParserProblems, msg) {
			line++
		}
	case !slices.Contains(yamlReaderProblems, msg) && !strings.HasPrefix(msg, "input error"):
		line = 1 // yaml.v3 leaves out a line it counts as 0
	}
	return line, msg
}

// splitTarget separates a target entry into its shared part and a mapping
// node holding only the type's own options.
func splitTarget(n *yaml.Node) (common, own *yaml.Node) {
	common = &yaml.Node{Kind: yaml.MappingNode, Line: n.Line, Column: n.Column}
	own = &yaml.Node{Kind: yaml.MappingNode, Line: n.Line, Column: n.Column}
	for i := 0; i+1 < len(n.Content); i += 2 {
		dst := own
		if slices.Contains(targetCommonKeys, n.Content[i].Value) {
			dst = common
		}
		dst.Content = append(dst.Content, n.Content[i], n.Content[i+1])
	}
	return common, own
}
