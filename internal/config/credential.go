package config

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/rotorhq/rotor/internal/connstr"
	"github.com/rotorhq/rotor/internal/provider"
	"github.com/rotorhq/rotor/internal/schedule"
	"github.com/rotorhq/rotor/internal/secret"
)

func (c *Config) build(d *decoder, doc *yaml.Node, f *File, written map[*yaml.Node]string) {
	if vn := valueOf(doc, "version"); vn == nil {
		d.errorf(nil, "no version: line; add version: 1 at the top")
	} else if f.Version != 1 && !d.isBroken("version", false) {
		d.errorf(vn, "version: %d is not supported; this rotor reads version: 1", f.Version)
	}
	c.State = f.State
	if sn := valueOf(doc, "state"); sn != nil && sn.Kind == yaml.ScalarNode {
		raw, ok := written[sn]
		if !ok {
			raw = sn.Value
		}
		if (strings.HasPrefix(raw, "postgres://") || strings.HasPrefix(raw, "postgresql://")) && holdsSecret("admin_url", raw) {
			d.errorf(sn, "state holds a password in the config file; write the URL without it (state: postgres://rotor@db.internal/rotor?sslmode=verify-full) "+
				"and give the password in PGPASSWORD or ~/.pgpass, or write state: ${ROTOR_STATE_URL}, or leave state out and set ROTOR_STATE_URL")
		}
	}
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
		// What the credential keeps of its subtree (its provider's and
		// targets' own options) it holds itself; the rest is garbage once
		// it is read, so a file of thousands of credentials never holds
		// its whole tree and its whole Config at once.
		n.Content[i], n.Content[i+1] = nil, nil
		if !ValidName(k.Value) {
			d.errorf(k, "credential name %q must start with a letter or digit and hold only letters, digits, '_', '.', '-'", k.Value)
			continue
		}
		if line, dup := seen[k.Value]; dup {
			d.errorf(k, "credential %s is defined twice (first at line %d); names must be unique", k.Value, line)
			continue
		}
		seen[k.Value] = k.Line
		// A credential with problems is read as far as it goes and kept:
		// its other settings, its provider and its targets are still
		// checked, so that their problems join the same report.
		var cc CredentialConfig
		d.decode(v, &cc, "credentials."+k.Value)
		c.Credentials = append(c.Credentials, d.credential(k, &cc, &f.Defaults, written))
	}
}

// section reads the parts of one credential: what the credential says,
// what defaults: says where it is silent, and where to report problems.
type section struct {
	d *decoder
	// key is the credential's name in the file: problems of the credential
	// as a whole point there.
	key     *yaml.Node
	path    string
	cc, def *CredentialConfig
	written map[*yaml.Node]string
}

func (d *decoder) credential(key *yaml.Node, cc, def *CredentialConfig, written map[*yaml.Node]string) *Credential {
	s := &section{d: d, key: key, path: "credentials." + key.Value, cc: cc, def: def, written: written}
	cr := &Credential{Name: key.Value, Line: key.Line, Path: s.path}
	for _, read := range []func(*Credential){
		s.provider, s.roles, s.connection, s.password, s.schedule, s.retirement, s.testing, s.publishing, s.targets,
	} {
		read(cr)
	}
	return cr
}

func (s *section) errorf(format string, args ...any) { s.d.errorf(s.key, format, args...) }

// broken reports whether one of the credential's settings named by keys,
// or the same one in defaults:, could not be read as written. A check
// that uses such a setting is skipped: its problem is already reported,
// and what the check would see is not what the file says.
func (s *section) broken(keys ...string) bool {
	for _, k := range keys {
		if s.d.isBroken(s.path+"."+k, true) || s.d.isBroken("defaults."+k, true) {
			return true
		}
	}
	return false
}

// typo reports whether the credential, or defaults:, holds an unknown key,
// which may be a setting misspelt: a check that a setting is missing is
// then skipped, the unknown key being the problem to report.
func (s *section) typo() bool {
	return s.d.typos[s.path] || s.d.typos["defaults"]
}

// provider reads provider:, whose type's own options stay raw for the
// provider's factory to decode.
func (s *section) provider(cr *Credential) {
	n := firstNode(&s.cc.Provider, &s.def.Provider)
	if n == nil {
		if !s.typo() {
			s.errorf("%s has no provider; add provider: {type: postgres, admin_url: ${ROTOR_ADMIN_URL}}", s.path)
		}
		return
	}
	path := s.path + ".provider"
	if n.Kind != yaml.MappingNode {
		s.d.errorf(n, "%s must be a mapping with at least type:", path)
		return
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
		s.d.errorf(n, "%s has no type; add type: postgres (or neon)", path)
		return
	}
	s.d.literalSecrets(own, path, typ, s.written)
	cr.Provider = &Provider{Type: typ, Line: n.Line, Path: path, Key: s.d.providerKey(n, typ, own), Options: s.d.options(own, path)}
}

// providerKey identifies a provider's settings (own, of type typ, read
// from n), so that credentials with identical ones share a provider. The
// key of one mapping is computed once: with the provider in defaults:,
// every credential of the file reads the same n.
func (d *decoder) providerKey(n *yaml.Node, typ string, own *yaml.Node) string {
	if k, ok := d.providerKeys[n]; ok {
		return k
	}
	key := typ
	if b, err := yaml.Marshal(own); err == nil {
		key += "\x00" + string(b)
	}
	sum := sha256.Sum256([]byte(key))
	k := hex.EncodeToString(sum[:])
	if d.providerKeys == nil {
		d.providerKeys = map[*yaml.Node]string{}
	}
	d.providerKeys[n] = k
	return k
}

// roles reads strategy:, role:, roles: and group:.
func (s *section) roles(cr *Credential) {
	cr.Strategy = firstString(s.cc.Strategy, s.def.Strategy, StrategyDual)
	cr.Group = firstString(s.cc.Group, s.def.Group, "")
	if s.typo() || s.broken("strategy", "role", "roles", "group") {
		// What is read is not what was meant: judging it would report the
		// same mistake again as a wrong role count.
		cr.Roles = firstSlice(s.cc.Roles, s.def.Roles, []string{firstString(s.cc.Role, s.def.Role, "")})
		return
	}
	// role and roles come as a pair: a credential that names its own roles
	// takes neither from defaults, so single and dual credentials can share
	// one defaults block.
	role, roles := s.cc.Role, s.cc.Roles
	if role == "" && len(roles) == 0 {
		role, roles = s.def.Role, s.def.Roles
	}
	switch cr.Strategy {
	case StrategySingle:
		if role == "" {
			s.errorf("%s uses strategy single and needs role: <the login role>", s.path)
		}
		if len(roles) > 0 {
			s.errorf("%s: roles: is for strategy dual; with single use role:", s.path)
		}
		cr.Roles = []string{role}
	case StrategyDual:
		if len(roles) != 2 || roles[0] == roles[1] || roles[0] == "" || roles[1] == "" {
			s.errorf("%s uses strategy dual and needs two different login roles: roles: [app_blue, app_green]", s.path)
		}
		if role != "" {
			s.errorf("%s: role: is for strategy single; with dual use roles: [a, b]", s.path)
		}
		cr.Roles = roles
		if cr.Group == "" && len(roles) == 2 && roles[0] != roles[1] {
			cr.Group = commonStem(roles[0], roles[1])
			if cr.Group == "" {
				s.errorf("%s: set group: <owner role> (the NOLOGIN role that owns the objects); it cannot be derived from %s and %s", s.path, roles[0], roles[1])
			}
		}
	default:
		s.errorf("%s: unknown strategy %q (known: dual, single)", s.path, cr.Strategy)
	}
	for _, r := range cr.Roles {
		if len(r) > 63 {
			s.errorf("%s: role name %q is longer than PostgreSQL's 63-byte limit", s.path, r)
		}
	}
}

// connection reads connection:. Without a url the provider has to
// discover the endpoints, which only the built provider can say it does.
func (s *section) connection(cr *Credential) {
	conn := firstPtr(s.cc.Connection, s.def.Connection)
	if s.broken("connection") {
		return
	}
	if conn == nil || conn.URL == "" {
		// Discovered by the provider, unless the setting is misspelt.
		cr.Discover = !s.typo()
		return
	}
	var err error
	if s.d.holdsUnset(conn.URL) {
		// Its environment variable is reported, or not needed by this
		// command: a sample stands in for what consumers will use.
		cr.Unresolved = true
	} else if cr.Conn, err = connstr.Parse(conn.URL); err != nil {
		s.errorf("%s.connection.url: %v", s.path, err)
	}
	if conn.PooledURL != "" && !s.d.holdsUnset(conn.PooledURL) {
		if cr.Pooled, err = connstr.Parse(conn.PooledURL); err != nil {
			s.errorf("%s.connection.pooled_url: %v", s.path, err)
		}
	}
}

// password reads password: and expire_after:.
func (s *section) password(cr *Credential) {
	cr.Policy = secret.DefaultPolicy()
	if pp := firstPtr(s.cc.Password, s.def.Password); pp != nil {
		if pp.Length != 0 {
			cr.Policy.Length = pp.Length
		}
		setBool(&cr.Policy.Lower, pp.Lower)
		setBool(&cr.Policy.Upper, pp.Upper)
		setBool(&cr.Policy.Digits, pp.Digits)
		setBool(&cr.Policy.Symbols, pp.Symbols)
	}
	if err := cr.Policy.Validate(); err != nil && !s.broken("password") {
		s.errorf("%s.password: %v", s.path, err)
	}
	if ea := firstPtr(s.cc.ExpireAfter, s.def.ExpireAfter); ea != nil {
		cr.ExpireAfter = ea.D()
	}
}

// schedule reads schedule:; none means manual rotations only.
func (s *section) schedule(cr *Credential) {
	sc := firstPtr(s.cc.Schedule, s.def.Schedule)
	if sc == nil {
		sc = &Schedule{}
	}
	parsed, err := schedule.Parse(sc.Every.D(), sc.Cron, sc.Window, sc.Jitter.D())
	if err != nil {
		if !s.broken("schedule") {
			s.errorf("%s.schedule: %v", s.path, err)
		}
	}
	cr.Schedule = parsed
}

// Retirement defaults (README "Retirement on evidence" says why).
const (
	// DefaultDrainGrace covers a consumer that read the old value just
	// before the switch and is still connecting, and the old replicas a
	// finished rollout still lets serve (Kubernetes gives a terminating
	// pod 30 s by default).
	DefaultDrainGrace = 30 * time.Second
	// DefaultDrainQuiet is how long the old role must show no session,
	// sampled every DefaultDrainPoll, before it is retired.
	DefaultDrainQuiet = 10 * time.Second
	DefaultDrainPoll  = 250 * time.Millisecond
	// DefaultDrainWait is how long `rotor rotate` waits for the evidence
	// before it ends as "switched, retirement pending".
	DefaultDrainWait = 2 * time.Minute
	// DefaultDrainTimeout is the deadline, from the switch, after which a
	// role still in use is reported instead of retired.
	DefaultDrainTimeout = time.Hour
	// DefaultReloadTimeout bounds one target's reload (a redeploy).
	DefaultReloadTimeout = 15 * time.Minute
)

// retirement reads drain:, retire: and retire_method:.
func (s *section) retirement(cr *Credential) {
	cr.DrainTimeout, cr.DrainPoll = DefaultDrainTimeout, DefaultDrainPoll
	cr.DrainGrace, cr.DrainQuiet, cr.DrainWait = DefaultDrainGrace, DefaultDrainQuiet, DefaultDrainWait
	if dr := firstPtr(s.cc.Drain, s.def.Drain); dr != nil {
		for _, f := range []struct {
			dst *time.Duration
			v   Duration
		}{{&cr.DrainTimeout, dr.Timeout}, {&cr.DrainPoll, dr.Poll}, {&cr.DrainGrace, dr.Grace}, {&cr.DrainQuiet, dr.Quiet}, {&cr.DrainWait, dr.Wait}} {
			if f.v != 0 {
				*f.dst = f.v.D()
			}
		}
		setBool(&cr.DrainTerminate, dr.Terminate)
	}
	drainBroken := s.broken("drain")
	if cr.DrainPoll > cr.DrainQuiet && cr.DrainQuiet > 0 && !drainBroken {
		s.errorf("%s.drain: poll (%s) is longer than quiet (%s), so the quiet period would rest on a single sample; make poll at most a tenth of quiet", s.path, cr.DrainPoll, cr.DrainQuiet)
	}
	if cr.DrainTimeout < cr.DrainGrace+cr.DrainQuiet && !drainBroken {
		s.errorf("%s.drain: timeout (%s) is shorter than grace + quiet (%s), so the old role could never be retired on evidence; raise timeout (it counts from the switch)", s.path, cr.DrainTimeout, cr.DrainGrace+cr.DrainQuiet)
	}
	cr.Retire = firstString(s.cc.Retire, s.def.Retire, RetireImmediately)
	if cr.Retire != RetireImmediately && cr.Retire != RetireNextRotation && !s.broken("retire") {
		s.errorf("%s: unknown retire %q (known: immediately, next-rotation)", s.path, cr.Retire)
	}
	cr.RetireMethod = provider.RetireMethod(firstString(s.cc.RetireMethod, s.def.RetireMethod, string(provider.RetireScramble)))
	if cr.RetireMethod != provider.RetireScramble && cr.RetireMethod != provider.RetireNoLogin && !s.broken("retire_method") {
		s.errorf("%s: unknown retire_method %q (known: nologin, password)", s.path, cr.RetireMethod)
	}
}

// testing reads test:.
func (s *section) testing(cr *Credential) {
	cr.TestTimeout, cr.TestPooled = 15*time.Second, true
	if tc := firstPtr(s.cc.Test, s.def.Test); tc != nil {
		if tc.Timeout != 0 {
			cr.TestTimeout = tc.Timeout.D()
		}
		setBool(&cr.TestPooled, tc.Pooled)
	}
}

// publishing reads publish:.
func (s *section) publishing(cr *Credential) {
	cr.Concurrency, cr.Attempts, cr.MaxBackoff, cr.TargetTimeout = 8, 5, 30*time.Second, 60*time.Second
	pc := firstPtr(s.cc.Publish, s.def.Publish)
	if pc == nil {
		return
	}
	if (pc.Concurrency < 0 || pc.Attempts < 0) && !s.broken("publish") {
		s.errorf("%s.publish: concurrency and attempts must be positive", s.path)
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

// targets reads targets:, each entry's type's own options left raw for
// the target's factory to decode.
func (s *section) targets(cr *Credential) {
	targets := s.cc.Targets
	if len(targets) == 0 {
		targets = s.def.Targets
	}
	seen := map[string]bool{}
	for i := range targets {
		t := s.target(&targets[i], fmt.Sprintf("%s.targets[%d]", s.path, i))
		if t == nil {
			continue
		}
		if seen[t.Name] {
			s.d.errorf(&targets[i], "%s: two targets are named %q; names must be unique", s.path, t.Name)
			continue
		}
		seen[t.Name] = true
		cr.Targets = append(cr.Targets, t)
	}
}

func (s *section) target(n *yaml.Node, path string) *Target {
	d := s.d
	if n.Kind != yaml.MappingNode {
		d.errorf(n, "%s must be a mapping with name:, type: and values:", path)
		return nil
	}
	commonNode, own := splitTarget(n)
	var tc TargetConfig
	d.decode(commonNode, &tc, path)
	if tc.Name == "" {
		if !d.isBroken(path+".name", false) {
			d.errorf(n, "%s has no name; give it one, e.g. name: production-env", path)
		}
		return nil
	}
	if !ValidName(tc.Name) {
		d.errorf(n, "%s: target name %q must hold only letters, digits, '_', '.', '-'", path, tc.Name)
		return nil
	}
	at := path
	path = fmt.Sprintf("%s (%s)", path, tc.Name)
	d.literalSecrets(own, path, tc.Type, s.written)
	if tc.Type == "" {
		if !d.isBroken(at+".type", false) {
			d.errorf(n, "%s has no type; add type: dotenv (or another target type)", path)
		}
		return nil
	}
	valuesBroken := d.isBroken(at+".values", false)
	if len(tc.Values) == 0 && !valuesBroken {
		d.errorf(n, "%s has no values; add values: {DATABASE_URL: \"{{.URL}}\"}", path)
		return nil
	}
	valuesNode := findKey(commonNode, "values")
	t := &Target{
		Name: tc.Name, Type: tc.Type, Line: n.Line, Path: path,
		ValuesLine:    valuesNode.Line,
		ReloadTimeout: cmpOrDuration(tc.ReloadTimeout.D(), DefaultReloadTimeout),
		Options:       d.options(own, path),
		// A values: that could not be read leaves the keys to judge
		// incomplete.
		Incomplete: valuesBroken,
	}
	if valuesNode.Kind != yaml.MappingNode {
		return t
	}
	for i := 0; i+1 < len(valuesNode.Content); i += 2 {
		k, v := valuesNode.Content[i], valuesNode.Content[i+1]
		if v.Kind != yaml.ScalarNode {
			continue // reported by decode
		}
		if d.holdsUnset(v.Value) {
			t.Unresolved = append(t.Unresolved, k.Value)
		}
		tpl, err := d.compile(v.Value)
		if err != nil {
			d.errorf(v, "%s.values.%s: %v", path, k.Value, err)
		}
		t.Keys, t.Values, t.ValueLines = append(t.Keys, k.Value), append(t.Values, tpl), append(t.ValueLines, v.Line)
	}
	return t
}

// secretKeys must take their value from the environment: a token or a
// password typed into rotor.yaml ends up in git.
var secretKeys = map[string]bool{"admin_url": true, "token": true, "api_key": true, "secret": true, "password": true, "client_secret": true, "admin_password": true}

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

func firstSlice[T any](vals ...[]T) []T {
	for _, v := range vals {
		if len(v) > 0 {
			return v
		}
	}
	return nil
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

func cmpOrDuration(v, def time.Duration) time.Duration {
	if v != 0 {
		return v
	}
	return def
}
