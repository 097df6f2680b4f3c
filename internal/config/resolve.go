package config

import (
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/rotorhq/rotor/internal/connstr"
	"github.com/rotorhq/rotor/internal/provider"
	"github.com/rotorhq/rotor/internal/schedule"
	"github.com/rotorhq/rotor/internal/secret"
	"github.com/rotorhq/rotor/internal/target"
	"github.com/rotorhq/rotor/internal/template"
)

// Registry is how the config layer finds provider and target factories
// without importing every implementation (cli passes the builtin ones).
type Registry struct {
	Provider   func(typ string) (provider.Factory, error)
	Target     func(typ string) (target.Factory, error)
	HTTPClient *http.Client
	Getenv     func(string) string
	Now        func() time.Time
}

// Config is a loaded, validated configuration with defaults applied.
type Config struct {
	// Path is the config file's absolute path; Dir its directory.
	Path, Dir string
	// State is the store location: a file path (absolute) or a URL.
	State string
	// KeyFile is the absolute path of the key file used when ROTOR_KEY is unset.
	KeyFile     string
	Credentials []*Credential
	file        string
	providers   map[string]provider.Provider
}

// Credential returns the credential named name, or an error listing the
// known names.
func (c *Config) Credential(name string) (*Credential, error) {
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
	for _, p := range c.providers {
		p.Close()
	}
	return nil
}

// Credential is one managed connection string, resolved.
type Credential struct {
	Name         string
	Line         int
	ProviderType string
	Provider     provider.Provider
	// Conn is how consumers connect (user and password are filled per
	// version); Pooled is the pooled variant, nil when there is none.
	Conn         *connstr.Conn
	Pooled       *connstr.Conn
	Strategy     string
	Roles        []string
	Group        string
	Policy       secret.Policy
	ExpireAfter  time.Duration
	Schedule     *schedule.Schedule
	DrainTimeout time.Duration
	DrainPoll    time.Duration
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

// Target is one configured target of a credential.
type Target struct {
	Name   string
	Type   string
	Line   int
	Keys   []string
	Values map[string]*template.Template
	Impl   target.Target
}

var nameRE = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]*$`)

// ValidName reports whether s may name a credential or a target: 1 to 63
// letters, digits, '_', '.' and '-', starting with a letter or digit. (The
// length is checked apart from the pattern: a bounded repetition compiles
// to one copy per allowed character, paid at every start of rotor.)
func ValidName(s string) bool { return len(s) <= 63 && nameRE.MatchString(s) }

func (c *Config) build(d *decoder, doc *yaml.Node, f *File, written map[*yaml.Node]string, reg Registry) {
	if vn := valueOf(doc, "version"); vn == nil {
		d.errorf(nil, "no version: line; add version: 1 at the top")
	} else if f.Version != 1 {
		d.errorf(vn, "version: %d is not supported; this rotor reads version: 1", f.Version)
	}
	c.State = f.State
	if c.State == "" {
		c.State = ".rotor/state.db"
	}
	if !strings.Contains(c.State, "://") && !filepath.IsAbs(c.State) {
		c.State = filepath.Join(c.Dir, c.State)
	}
	c.KeyFile = f.KeyFile
	if c.KeyFile == "" {
		c.KeyFile = ".rotor/key"
	}
	if !filepath.IsAbs(c.KeyFile) {
		c.KeyFile = filepath.Join(c.Dir, c.KeyFile)
	}
	n := &f.Credentials
	switch {
	case n.Kind == 0:
		d.errorf(nil, "no credentials: section; add one (see `rotor init`)")
		return
	case n.Kind == yaml.ScalarNode && n.Tag == "!!null", n.Kind == yaml.MappingNode && len(n.Content) == 0:
		// A config that manages nothing is a mistake, not a quiet no-op for
		// `rotor rotate --all`.
		d.errorf(n, "credentials: is empty; add one (see `rotor init`)")
		return
	case n.Kind != yaml.MappingNode:
		d.errorf(n, "credentials must be a mapping of credential names to their settings")
		return
	}
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if !ValidName(k.Value) {
			d.errorf(k, "credential name %q must start with a letter or digit and hold only letters, digits, '_', '.', '-'", k.Value)
			continue
		}
		if line, dup := seen[k.Value]; dup {
			d.errorf(k, "credential %s is defined twice (first at line %d); names must be unique", k.Value, line)
			continue
		}
		seen[k.Value] = k.Line
		var cc CredentialConfig
		if !d.decode(v, &cc, "credentials."+k.Value) {
			continue
		}
		cr := c.credential(d, k, &cc, &f.Defaults, written, reg)
		if cr != nil {
			c.Credentials = append(c.Credentials, cr)
		}
	}
}

func (c *Config) credential(d *decoder, key *yaml.Node, cc, def *CredentialConfig, written map[*yaml.Node]string, reg Registry) *Credential {
	before := len(d.errs)
	path := "credentials." + key.Value
	cr := &Credential{Name: key.Value, Line: key.Line}

	// Provider.
	pn := firstNode(&cc.Provider, &def.Provider)
	if pn == nil {
		d.errorf(key, "%s has no provider; add provider: {type: postgres, admin_url: ${ROTOR_ADMIN_URL}}", path)
	} else {
		cr.ProviderType, cr.Provider = c.provider(d, pn, path+".provider", written, reg)
	}

	// Strategy and roles.
	cr.Strategy = firstString(cc.Strategy, def.Strategy, StrategyDual)
	cr.Group = firstString(cc.Group, def.Group, "")
	// role and roles come as a pair: a credential that names its own roles
	// takes neither from defaults, so single and dual credentials can share
	// one defaults block.
	role, roles := cc.Role, cc.Roles
	if role == "" && len(roles) == 0 {
		role, roles = def.Role, def.Roles
	}
	switch cr.Strategy {
	case StrategySingle:
		if role == "" {
			d.errorf(key, "%s uses strategy single and needs role: <the login role>", path)
		}
		if len(roles) > 0 {
			d.errorf(key, "%s: roles: is for strategy dual; with single use role:", path)
		}
		cr.Roles = []string{role}
	case StrategyDual:
		if len(roles) != 2 || roles[0] == roles[1] || roles[0] == "" || roles[1] == "" {
			d.errorf(key, "%s uses strategy dual and needs two different login roles: roles: [app_blue, app_green]", path)
		}
		if role != "" {
			d.errorf(key, "%s: role: is for strategy single; with dual use roles: [a, b]", path)
		}
		cr.Roles = roles
		if cr.Group == "" && len(roles) == 2 && roles[0] != roles[1] {
			cr.Group = commonStem(roles[0], roles[1])
			if cr.Group == "" {
				d.errorf(key, "%s: set group: <owner role> (the NOLOGIN role that owns the objects); it cannot be derived from %s and %s", path, roles[0], roles[1])
			}
		}
	default:
		d.errorf(key, "%s: unknown strategy %q (known: dual, single)", path, cr.Strategy)
	}
	for _, r := range cr.Roles {
		if len(r) > 63 {
			d.errorf(key, "%s: role name %q is longer than PostgreSQL's 63-byte limit", path, r)
		}
	}

	// Connection.
	conn := cc.Connection
	if conn == nil {
		conn = def.Connection
	}
	if conn == nil || conn.URL == "" {
		if cr.ProviderType != "neon" {
			d.errorf(key, "%s has no connection.url; say how consumers reach the database, e.g. postgresql://db.internal:5432/app?sslmode=require", path)
		}
	} else {
		var err error
		if cr.Conn, err = connstr.Parse(conn.URL); err != nil {
			d.errorf(key, "%s.connection.url: %v", path, err)
		}
		if conn.PooledURL != "" {
			if cr.Pooled, err = connstr.Parse(conn.PooledURL); err != nil {
				d.errorf(key, "%s.connection.pooled_url: %v", path, err)
			}
		}
	}

	// Password policy.
	cr.Policy = secret.DefaultPolicy()
	if pp := firstPtr(cc.Password, def.Password); pp != nil {
		if pp.Length != 0 {
			cr.Policy.Length = pp.Length
		}
		setBool(&cr.Policy.Lower, pp.Lower)
		setBool(&cr.Policy.Upper, pp.Upper)
		setBool(&cr.Policy.Digits, pp.Digits)
		setBool(&cr.Policy.Symbols, pp.Symbols)
	}
	if err := cr.Policy.Validate(); err != nil {
		d.errorf(key, "%s.password: %v", path, err)
	}
	if ea := firstPtr(cc.ExpireAfter, def.ExpireAfter); ea != nil {
		cr.ExpireAfter = ea.D()
	}

	// Schedule.
	sc := firstPtr(cc.Schedule, def.Schedule)
	if sc == nil {
		sc = &Schedule{}
	}
	s, err := schedule.Parse(sc.Every.D(), sc.Cron, sc.Window, sc.Jitter.D())
	if err != nil {
		d.errorf(key, "%s.schedule: %v", path, err)
	}
	cr.Schedule = s

	// Drain and retirement.
	cr.DrainTimeout, cr.DrainPoll = 5*time.Minute, 2*time.Second
	if dr := firstPtr(cc.Drain, def.Drain); dr != nil {
		if dr.Timeout != 0 {
			cr.DrainTimeout = dr.Timeout.D()
		}
		if dr.Poll != 0 {
			cr.DrainPoll = dr.Poll.D()
		}
		setBool(&cr.DrainTerminate, dr.Terminate)
	}
	cr.Retire = firstString(cc.Retire, def.Retire, RetireImmediately)
	if cr.Retire != RetireImmediately && cr.Retire != RetireNextRotation {
		d.errorf(key, "%s: unknown retire %q (known: immediately, next-rotation)", path, cr.Retire)
	}
	cr.RetireMethod = provider.RetireMethod(firstString(cc.RetireMethod, def.RetireMethod, string(provider.RetireScramble)))
	if cr.RetireMethod != provider.RetireScramble && cr.RetireMethod != provider.RetireNoLogin {
		d.errorf(key, "%s: unknown retire_method %q (known: nologin, password)", path, cr.RetireMethod)
	}

	// Test and publish tuning.
	cr.TestTimeout, cr.TestPooled = 15*time.Second, true
	if tc := firstPtr(cc.Test, def.Test); tc != nil {
		if tc.Timeout != 0 {
			cr.TestTimeout = tc.Timeout.D()
		}
		setBool(&cr.TestPooled, tc.Pooled)
	}
	cr.Concurrency, cr.Attempts, cr.MaxBackoff, cr.TargetTimeout = 8, 5, 30*time.Second, 60*time.Second
	if pc := firstPtr(cc.Publish, def.Publish); pc != nil {
		if pc.Concurrency < 0 || pc.Attempts < 0 {
			d.errorf(key, "%s.publish: concurrency and attempts must be positive", path)
		}
		if pc.Concurrency > 0 {
			cr.Concurrency = pc.Concurrency
		}
		if pc.Attempts > 0 {
			cr.Attempts = pc.Attempts
		}
		if pc.MaxBackoff != 0 {
			cr.MaxBackoff = pc.MaxBackoff.D()
		}
		if pc.Timeout != 0 {
			cr.TargetTimeout = pc.Timeout.D()
		}
	}

	// Targets.
	targets := cc.Targets
	if len(targets) == 0 {
		targets = def.Targets
	}
	seen := map[string]bool{}
	for i := range targets {
		t := c.target(d, &targets[i], fmt.Sprintf("%s.targets[%d]", path, i), written, reg)
		if t == nil {
			continue
		}
		if seen[t.Name] {
			d.errorf(&targets[i], "%s: two targets are named %q; names must be unique", path, t.Name)
			continue
		}
		seen[t.Name] = true
		cr.Targets = append(cr.Targets, t)
	}
	if len(d.errs) > before {
		return nil
	}
	return cr
}

// secretKeys must take their value from the environment: a token or a
// password typed into rotor.yaml ends up in git.
var secretKeys = map[string]bool{"admin_url": true, "token": true, "api_key": true, "secret": true, "password": true, "client_secret": true, "admin_password": true}

func (c *Config) provider(d *decoder, n *yaml.Node, path string, written map[*yaml.Node]string, reg Registry) (string, provider.Provider) {
	if n.Kind != yaml.MappingNode {
		d.errorf(n, "%s must be a mapping with at least type:", path)
		return "", nil
	}
	typ, own := "", &yaml.Node{Kind: yaml.MappingNode, Line: n.Line}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Value == "type" {
			typ = v.Value
			continue
		}
		own.Content = append(own.Content, k, v)
	}
	if typ == "" {
		d.errorf(n, "%s has no type; add type: postgres (or neon)", path)
		return "", nil
	}
	d.literalSecrets(own, path, typ, written)
	// Credentials with identical provider settings (typically all of them,
	// through defaults:) share one provider and so one admin connection pool.
	key := typ
	if b, err := yaml.Marshal(own); err == nil {
		key += "\x00" + string(b)
	}
	if p, ok := c.providers[key]; ok {
		return typ, p
	}
	factory, err := reg.Provider(typ)
	if err != nil {
		d.errorf(n, "%s: %v", path, err)
		return typ, nil
	}
	decoded := false
	p, err := factory(provider.Params{
		Decode:     func(v any) error { decoded = true; return d.decodeOwn(own, v, path) },
		HTTPClient: reg.HTTPClient,
		Now:        reg.Now,
	})
	if err != nil {
		if !errors.Is(err, errReported) {
			d.errorf(n, "%s: %s", path, plain(err))
		}
		return typ, nil
	}
	if !decoded && len(own.Content) > 0 {
		p.Close()
		d.errorf(own.Content[0], "unknown key %q in %s (known: type): the %s provider takes no options of its own", own.Content[0].Value, path, typ)
		return typ, nil
	}
	if c.providers == nil {
		c.providers = map[string]provider.Provider{}
	}
	c.providers[key] = p
	return typ, p
}

// literalSecrets reports every option of own, a provider's or a target's
// own options, that holds a secret typed into the file.
func (d *decoder) literalSecrets(own *yaml.Node, path, typ string, written map[*yaml.Node]string) {
	for i := 0; i+1 < len(own.Content); i += 2 {
		k, v := own.Content[i], own.Content[i+1]
		if !secretKeys[k.Value] || v.Kind != yaml.ScalarNode {
			continue
		}
		raw, ok := written[v]
		if !ok {
			raw = v.Value
		}
		if !holdsSecret(k.Value, raw) {
			continue
		}
		env := strings.ToUpper(strings.NewReplacer("-", "_", ".", "_").Replace(typ + "_" + k.Value))
		if k.Value == "admin_url" {
			env = "ROTOR_ADMIN_URL"
		}
		d.errorf(v, "%s.%s holds a secret in the config file; put it in an environment variable and write %s: ${%s}", path, k.Value, k.Value, env)
	}
}

// holdsSecret reports whether raw, a value as written in the file, would
// leak a secret: a token that does not come from the environment, or a
// connection URL whose password was typed in, even if other parts of it
// (postgres://admin:hunter2@${DB_HOST}/postgres) come from the environment.
func holdsSecret(key, raw string) bool {
	masked, refs := fromEnv(raw)
	if masked == "" {
		return false
	}
	if key != "admin_url" {
		return !refs
	}
	cs, err := connstr.Parse(masked)
	if err != nil {
		// Unparseable with the environment still to come: the provider
		// judges the value it gets. Unparseable as typed: it may well hold
		// a password, and the parse error must not be shown.
		return !refs
	}
	return !cs.Password.IsZero() && !strings.Contains(cs.Password.Reveal(), envMarker)
}

func (c *Config) target(d *decoder, n *yaml.Node, path string, written map[*yaml.Node]string, reg Registry) *Target {
	if n.Kind != yaml.MappingNode {
		d.errorf(n, "%s must be a mapping with name:, type: and values:", path)
		return nil
	}
	commonNode, own := splitTarget(n)
	var tc TargetConfig
	if !d.decode(commonNode, &tc, path) {
		return nil
	}
	if tc.Name == "" {
		d.errorf(n, "%s has no name; give it one, e.g. name: production-env", path)
		return nil
	}
	if !ValidName(tc.Name) {
		d.errorf(n, "%s: target name %q must hold only letters, digits, '_', '.', '-'", path, tc.Name)
		return nil
	}
	path = fmt.Sprintf("%s (%s)", path, tc.Name)
	d.literalSecrets(own, path, tc.Type, written)
	if tc.Type == "" {
		d.errorf(n, "%s has no type; add type: dotenv (or another target type)", path)
		return nil
	}
	if len(tc.Values) == 0 {
		d.errorf(n, "%s has no values; add values: {DATABASE_URL: \"{{.URL}}\"}", path)
		return nil
	}
	t := &Target{Name: tc.Name, Type: tc.Type, Line: n.Line, Values: map[string]*template.Template{}}
	valuesNode := findKey(commonNode, "values")
	for i := 0; i+1 < len(valuesNode.Content); i += 2 {
		k, v := valuesNode.Content[i], valuesNode.Content[i+1]
		tpl, err := template.Compile(v.Value)
		if err != nil {
			d.errorf(v, "%s.values.%s: %v", path, k.Value, err)
			continue
		}
		t.Keys = append(t.Keys, k.Value)
		t.Values[k.Value] = tpl
	}
	factory, err := reg.Target(tc.Type)
	if err != nil {
		d.errorf(n, "%s: %v", path, err)
		return nil
	}
	getenv := reg.Getenv
	decoded := false
	impl, err := factory(target.Params{
		Name:       tc.Name,
		Decode:     func(v any) error { decoded = true; return d.decodeOwn(own, v, path) },
		BaseDir:    c.Dir,
		HTTPClient: reg.HTTPClient,
		Getenv:     getenv,
		Now:        reg.Now,
	})
	if err != nil {
		if !errors.Is(err, errReported) {
			d.errorf(n, "%s: %s", path, plain(err))
		}
		return nil
	}
	if !decoded && len(own.Content) > 0 {
		// A factory that never decodes its options would otherwise make a
		// misspelt key vanish without a word.
		d.errorf(own.Content[0], "unknown key %q in %s (known: %s): the %s target takes no options of its own", own.Content[0].Value, path, strings.Join(targetCommonKeys, ", "), tc.Type)
		return nil
	}
	if kc := target.Discover(impl).KeyChecker; kc != nil && len(t.Keys) == len(valuesNode.Content)/2 {
		if err := kc.CheckKeys(t.Keys); err != nil {
			d.errorf(valuesNode, "%s.values: %s", path, plain(err))
			return nil
		}
	}
	t.Impl = impl
	return t
}

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

// decodeOwn is the Decode given to factories: strict, located errors. It
// returns a non-nil error when decoding failed so the factory stops; the
// located messages are already recorded in d.
func (d *decoder) decodeOwn(n *yaml.Node, v any, path string) error {
	if len(n.Content) == 0 {
		return nil
	}
	if !d.decode(n, v, path) {
		return errReported
	}
	return nil
}

var errReported = &reportedError{}

type reportedError struct{}

func (*reportedError) Error() string { return "invalid options (see above)" }

// valueOf returns the value node of key in the mapping n, or nil.
func valueOf(n *yaml.Node, key string) *yaml.Node {
	for i := 0; n != nil && i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}

func findKey(n *yaml.Node, key string) *yaml.Node {
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return &yaml.Node{Kind: yaml.MappingNode}
}

// firstNode returns the first node that was present in the file (yaml.v3
// leaves absent yaml.Node fields with Kind 0).
func firstNode(nodes ...*yaml.Node) *yaml.Node {
	for _, n := range nodes {
		if n.Kind != 0 {
			return n
		}
	}
	return nil
}

func firstPtr[T any](a, b *T) *T {
	if a != nil {
		return a
	}
	return b
}

func firstString(vals ...string) string {
	for _, v := range vals {
		if v != "" {
			return v
		}
	}
	return ""
}

func setBool(dst *bool, v *bool) {
	if v != nil {
		*dst = *v
	}
}

// commonStem derives the owner group from two login role names:
// app_blue and app_green give app.
func commonStem(a, b string) string {
	n := 0
	for n < len(a) && n < len(b) && a[n] == b[n] {
		n++
	}
	return strings.TrimRight(a[:n], "_-.")
}
