// Package resolve turns a config into what the engine runs on: for each
// credential spec that config read, a live provider and live targets from
// the registries, handed over as an engine.Credential. The CLI resolves
// its config once per command; `rotor serve` will on every reload.
//
// What a provider's or a target's factory refuses (an unknown option, a
// value name the target cannot hold) is a problem of the config file, so
// it is reported like config's own: located, in file order, all in one
// report with them.
package resolve

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/rotorhq/rotor/internal/config"
	"github.com/rotorhq/rotor/internal/engine"
	"github.com/rotorhq/rotor/internal/provider"
	"github.com/rotorhq/rotor/internal/secret"
	"github.com/rotorhq/rotor/internal/target"
)

// Registry is where providers and targets come from, and what they are
// given to work with.
type Registry struct {
	// Provider and Target find a factory by type; an unknown type fails
	// with the known ones (the CLI passes provider/builtin and
	// target/builtin).
	Provider   func(typ string) (provider.Factory, error)
	Target     func(typ string) (target.Factory, error)
	HTTPClient *http.Client
	Getenv     func(string) string
	Now        func() time.Time
	// Logger, when set (rotor --debug), is given to every provider.
	Logger *slog.Logger
}

// Config is a config with every credential built. Close releases the
// providers.
type Config struct {
	// Path is the config file's absolute path; Dir its directory.
	Path, Dir string
	// State is the store location: a file path (absolute) or a URL.
	State string
	// KeyFile is the absolute path of the key file used when ROTOR_KEY is unset.
	KeyFile     string
	Credentials []*engine.Credential
	// Unset lists the environment variables the credentials reference
	// that are not set; only LoadOffline and ParseOffline accept any.
	Unset     []string
	file      string
	providers []provider.Provider
}

// Load reads a config file and builds its credentials. lookupEnv
// resolves ${VAR} references in the file. Every problem found, in the file
// or by a factory, is returned together as config.Errors.
func Load(path string, lookupEnv func(string) (string, bool), reg Registry) (*Config, error) {
	data, err := config.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(path, data, lookupEnv, reg)
}

// Parse is Load on bytes already read; path is used for messages and to
// resolve relative paths.
func Parse(path string, data []byte, lookupEnv func(string) (string, bool), reg Registry) (*Config, error) {
	spec, err := config.Parse(path, data, lookupEnv)
	return build(spec, err, reg)
}

// LoadOffline is Load for commands that contact neither the database nor
// a target (status, history, validate --offline, plan --offline): they
// need no connection secrets, so a ${VAR} under credentials: or defaults:
// that is not set is no problem (Config.Unset lists them). Everything
// else is checked as by Load. A provider whose settings reference such a
// variable is one that fails every call, naming the variable; a target's
// own problems that the variable may cause are not judged. Such a Config
// may be described, never used to rotate.
func LoadOffline(path string, lookupEnv func(string) (string, bool), reg Registry) (*Config, error) {
	data, err := config.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return ParseOffline(path, data, lookupEnv, reg)
}

// ParseOffline is LoadOffline on bytes already read.
func ParseOffline(path string, data []byte, lookupEnv func(string) (string, bool), reg Registry) (*Config, error) {
	spec, err := config.ParseWith(path, data, lookupEnv, config.ParseOptions{AllowUnset: true})
	return build(spec, err, reg)
}

// build builds spec's credentials even when config found problems in it,
// so that the factories' problems join config's in one report. It
// consumes spec: each of spec.Credentials is dropped once built.
func build(spec *config.Config, err error, reg Registry) (*Config, error) {
	var problems config.Errors
	if err != nil && (spec == nil || !errors.As(err, &problems)) {
		return nil, err
	}
	b := &builder{reg: reg, spec: spec, shared: map[string]provider.Provider{}, passwords: samplePasswords{}, problems: problems}
	c := &Config{Path: spec.Path, Dir: spec.Dir, State: spec.State, KeyFile: spec.KeyFile, file: spec.File}
	seen := map[written]writer{}
	for i, cs := range spec.Credentials {
		cr := b.credential(cs)
		b.checkAcross(seen, cs, cr)
		c.Credentials = append(c.Credentials, cr)
		// Built and checked: what the credential needs of its spec it
		// holds itself, so a file of thousands of credentials never holds
		// every spec and every built credential at once.
		spec.Credentials[i] = nil
	}
	c.providers = b.built
	c.Unset = spec.Unset
	if len(b.problems) > 0 {
		b.problems.Sort()
		if err := c.Close(); err != nil {
			return nil, errors.Join(b.problems, err)
		}
		return nil, b.problems
	}
	return c, nil
}

// Credential returns the credential named name, or an error listing the
// known names.
func (c *Config) Credential(name string) (*engine.Credential, error) {
	for _, cr := range c.Credentials {
		if cr.Name == name {
			return cr, nil
		}
	}
	names := make([]string, len(c.Credentials))
	for i, cr := range c.Credentials {
		names[i] = cr.Name
	}
	return nil, fmt.Errorf("no credential %q in %s (known: %s)", name, c.file, strings.Join(names, ", "))
}

// Close releases every provider the config built.
func (c *Config) Close() error {
	var errs []error
	for _, p := range c.providers {
		if err := p.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	c.providers = nil
	return errors.Join(errs...)
}

type builder struct {
	reg  Registry
	spec *config.Config
	// shared holds the providers built so far by their settings' key:
	// credentials written with identical provider settings share one.
	shared map[string]provider.Provider
	built  []provider.Provider
	// passwords are the sample passwords values are checked with.
	passwords samplePasswords
	problems  config.Errors
}

func (b *builder) errorf(line int, format string, args ...any) {
	b.problems = append(b.problems, &config.Error{File: b.spec.File, Line: line, Msg: fmt.Sprintf(format, args...)})
}

// decoder is the Decode a factory is given: the options' own problems are
// recorded, located, and the factory gets errReported to stop on.
func (b *builder) decoder(opts config.Options, decoded *bool) func(v any) error {
	return func(v any) error {
		*decoded = true
		if err := opts.Decode(v); err != nil {
			var located config.Errors
			if !errors.As(err, &located) {
				return err
			}
			b.problems = append(b.problems, located...)
			return errReported
		}
		return nil
	}
}

func (b *builder) credential(s *config.Credential) *engine.Credential {
	cr := &engine.Credential{
		Name: s.Name, Line: s.Line,
		Conn: s.Conn, Pooled: s.Pooled,
		Strategy: s.Strategy, Roles: s.Roles, Group: s.Group,
		Policy: s.Policy, ExpireAfter: s.ExpireAfter, Schedule: s.Schedule,
		DrainTimeout: s.DrainTimeout, DrainPoll: s.DrainPoll, DrainGrace: s.DrainGrace, DrainQuiet: s.DrainQuiet, DrainWait: s.DrainWait,
		DrainTerminate: s.DrainTerminate,
		Retire:         s.Retire, RetireMethod: s.RetireMethod,
		TestTimeout: s.TestTimeout, TestPooled: s.TestPooled,
		Concurrency: s.Concurrency, Attempts: s.Attempts, MaxBackoff: s.MaxBackoff, TargetTimeout: s.TargetTimeout,
	}
	if s.Provider != nil {
		cr.ProviderType = s.Provider.Type
		cr.Provider = b.provider(s.Provider)
	}
	if _, discovers := cr.Provider.(provider.Endpointer); s.Discover && cr.Provider != nil && !discovers && !isUnresolved(cr.Provider) {
		b.errorf(s.Line, "%s has no connection.url; say how consumers reach the database, e.g. postgresql://db.internal:5432/app?sslmode=require", s.Path)
	}
	samples := newSamples(s, b.passwords)
	for _, ts := range s.Targets {
		if t := b.target(ts, samples); t != nil {
			cr.Targets = append(cr.Targets, t)
		}
	}
	return cr
}

func (b *builder) provider(s *config.Provider) provider.Provider {
	if p, ok := b.shared[s.Key]; ok {
		return p
	}
	factory, err := b.reg.Provider(s.Type)
	if err != nil {
		b.errorf(s.Line, "%s: %v", s.Path, err)
		return nil
	}
	decoded := false
	unset := b.noteUnset(s.Options)
	p, err := factory(provider.Params{Decode: b.decoder(s.Options, &decoded), HTTPClient: b.reg.HTTPClient, Now: b.reg.Now, Logger: b.reg.Logger})
	if len(unset) > 0 && !errors.Is(err, errReported) {
		// Built from ${VAR} references as written: what the factory says
		// of them means nothing, and the provider must never connect.
		if err == nil {
			p.Close()
		}
		p = &unresolvedProvider{vars: unset, path: s.Path}
		b.shared[s.Key] = p
		return p
	}
	if err != nil {
		if !errors.Is(err, errReported) {
			b.errorf(s.Line, "%s: %s", s.Path, plain(err))
		}
		return nil
	}
	b.built = append(b.built, p) // closed with the others
	if key, line := s.Options.First(); !decoded && key != "" {
		// A factory that never decodes its options would otherwise make a
		// misspelt key vanish without a word.
		b.errorf(line, "unknown key %q in %s (known: type): the %s provider takes no options of its own", key, s.Path, s.Type)
		return nil
	}
	b.shared[s.Key] = p
	return p
}

func (b *builder) target(s *config.Target, samples *samples) *engine.Target {
	factory, err := b.reg.Target(s.Type)
	if err != nil {
		b.errorf(s.Line, "%s: %v", s.Path, err)
		return nil
	}
	decoded := false
	unset := b.noteUnset(s.Options)
	impl, err := factory(target.Params{
		Name:       s.Name,
		Decode:     b.decoder(s.Options, &decoded),
		BaseDir:    b.spec.Dir,
		HTTPClient: b.reg.HTTPClient,
		Getenv:     b.reg.Getenv,
		Now:        b.reg.Now,
	})
	if err != nil && len(unset) > 0 && !errors.Is(err, errReported) {
		// What the factory refused may be the ${VAR} reference standing
		// in for a variable that is not set: describe the target only.
		impl, err = &unresolvedTarget{name: s.Name, typ: s.Type, vars: unset}, nil
	}
	if err != nil {
		if !errors.Is(err, errReported) {
			b.errorf(s.Line, "%s: %s", s.Path, plain(err))
		}
		return nil
	}
	if key, line := s.Options.First(); !decoded && key != "" {
		b.errorf(line, "unknown key %q in %s (known: %s): the %s target takes no options of its own", key, s.Path, strings.Join(config.TargetCommonKeys(), ", "), s.Type)
		return nil
	}
	// A value whose template did not compile is already reported; the
	// target judges the names only once they are all there.
	caps := target.Discover(impl)
	if kc := caps.KeyChecker; kc != nil && !slices.Contains(s.Values, nil) && !s.Incomplete {
		if err := kc.CheckKeys(s.Keys); err != nil {
			b.errorf(s.ValuesLine, "%s.values: %s", s.Path, plain(err))
			return nil
		}
	}
	if vc := caps.ValueChecker; vc != nil && len(unset) == 0 {
		b.checkValues(s, vc, samples)
	}
	return &engine.Target{Name: s.Name, Type: s.Type, Line: s.Line, Keys: s.Keys, Values: s.Values, ReloadTimeout: s.ReloadTimeout, Impl: impl}
}

// checkValues renders each value of s with every sample version and asks
// the target whether it could write it, so that a template the target
// would refuse at publish — once the password has changed — is a problem
// of the file instead.
func (b *builder) checkValues(s *config.Target, vc target.ValueChecker, samples *samples) {
	for i, k := range s.Keys {
		tpl := s.Values[i]
		if tpl == nil || slices.Contains(s.Unresolved, k) {
			continue // reported, or not renderable without its variable
		}
		if err := samples.check(tpl, func(v secret.String) error { return vc.CheckValue(k, v) }); err != nil {
			b.errorf(cmp.Or(s.ValueLines[i], s.ValuesLine), "%s.values.%s: %s (found by rendering it with a sample password; a rotation would stop at publish, after the password changed)", s.Path, k, plain(err))
		}
	}
}

// noteUnset lists the variables opts reference that are not set.
func (b *builder) noteUnset(opts config.Options) []string { return opts.Unset() }

// plain is err's message without the sentinel that ends it (": target
// refused the request"), which tells code what kind of failure it is but
// tells a reader of rotor.yaml nothing.
func plain(err error) string {
	msg := err.Error()
	for _, s := range []error{target.ErrInvalid, target.ErrNotFound, target.ErrAuth, provider.ErrInvalid} {
		if errors.Is(err, s) {
			msg = strings.TrimSuffix(msg, ": "+s.Error())
		}
	}
	return msg
}

var errReported = &reportedError{}

type reportedError struct{}

func (*reportedError) Error() string { return "invalid options (see above)" }
