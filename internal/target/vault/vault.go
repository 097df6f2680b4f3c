// Package vault is the HashiCorp Vault KV v2 target: it keeps some keys of
// one KV v2 secret up to date and leaves the secret's other keys alone
// (targets-api.md §8).
//
// A KV v2 write replaces the whole data map, so Put never writes blindly:
// it reads the current version, changes only the managed keys and writes
// back with cas=<that version> (or, with method: patch, sends a JSON merge
// patch of just those keys, also guarded by cas). When another writer got
// in between, Vault answers "check-and-set parameter did not match the
// current version" and Put reads again; nothing is lost either way, which
// is what makes Put safe to retry.
package vault

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rotorhq/rotor/internal/secret"
	"github.com/rotorhq/rotor/internal/target"
	"github.com/rotorhq/rotor/internal/target/webapi"
)

// Type is the registry name of this target.
const Type = "vault"

// Write methods.
const (
	MethodCAS   = "cas"
	MethodPatch = "patch"
)

// casAttempts bounds how often Put re-reads after losing a check-and-set
// race; a path rewritten that often is better retried later by the engine.
const casAttempts = 5

// Options are the target's own config keys.
type Options struct {
	// Address is Vault's URL; default $VAULT_ADDR.
	Address string `yaml:"address"`
	// Token authenticates; write token: ${VAULT_TOKEN}. Default $VAULT_TOKEN.
	Token string `yaml:"token"`
	// Namespace is the Enterprise/HCP namespace; default $VAULT_NAMESPACE.
	Namespace string `yaml:"namespace"`
	// Mount is the KV v2 mount; default "secret".
	Mount string `yaml:"mount"`
	// Path is the secret's path inside the mount, e.g. "apps/web".
	Path string `yaml:"path"`
	// Method is "cas" (read, then write with check-and-set; default) or
	// "patch" (HTTP PATCH merge, which needs the patch capability).
	Method string `yaml:"method"`
}

// Target keeps values in one KV v2 secret.
type Target struct {
	name      string
	address   string
	token     string
	namespace string
	mount     string
	path      string
	method    string
	http      *http.Client
	getenv    func(string) string
	now       func() time.Time

	mu     sync.Mutex
	client *client
}

// New builds a Vault target from its options. It does no I/O: the client,
// which reads Vault's TLS settings (VAULT_CACERT, …), is built on first use.
func New(p target.Params) (target.Target, error) {
	opts := Options{Mount: "secret", Method: MethodCAS}
	if err := p.DecodeOptions(Type, &opts); err != nil {
		return nil, err
	}
	getenv := p.Env()
	desc := p.Describe(Type)

	address := strings.TrimRight(cmp.Or(opts.Address, getenv("VAULT_ADDR")), "/")
	if address == "" {
		return nil, fmt.Errorf("%s has no address; add address: https://vault.example.com:8200 or export VAULT_ADDR: %w", desc, target.ErrInvalid)
	}
	if u, err := url.Parse(address); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("%s: address %q is not an http(s) URL; write it like https://vault.example.com:8200: %w", desc, address, target.ErrInvalid)
	}
	mount := strings.Trim(opts.Mount, "/")
	if mount == "" {
		return nil, fmt.Errorf("%s: mount is empty; name the KV v2 mount, e.g. mount: secret: %w", desc, target.ErrInvalid)
	}
	if strings.HasSuffix(mount, "/data") || strings.HasSuffix(mount, "/metadata") {
		return nil, fmt.Errorf("%s: mount %q ends in the API's data/ segment; give the mount alone (e.g. secret) and the rest as path: %w", desc, mount, target.ErrInvalid)
	}
	path := strings.Trim(opts.Path, "/")
	if path == "" {
		return nil, fmt.Errorf("%s has no path; add the secret's path inside the mount, e.g. path: apps/web: %w", desc, target.ErrInvalid)
	}
	if first, _, _ := strings.Cut(path, "/"); first == "data" || first == "metadata" {
		return nil, fmt.Errorf("%s: path %q starts with %s/, which the API adds itself; drop it (path: %s): %w", desc, path, first, strings.TrimPrefix(path, first+"/"), target.ErrInvalid)
	}
	for seg := range strings.SplitSeq(path, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return nil, fmt.Errorf("%s: path %q has an empty, . or .. segment; write it like apps/web: %w", desc, path, target.ErrInvalid)
		}
	}
	if opts.Method != MethodCAS && opts.Method != MethodPatch {
		return nil, fmt.Errorf("%s: method %q is not one of cas, patch; use cas unless the token has the patch capability and no read-then-write: %w", desc, opts.Method, target.ErrInvalid)
	}
	now := p.Clock()
	return &Target{
		name:      p.Name,
		address:   address,
		token:     cmp.Or(opts.Token, getenv("VAULT_TOKEN")),
		namespace: strings.Trim(cmp.Or(opts.Namespace, getenv("VAULT_NAMESPACE")), "/"),
		mount:     mount,
		path:      path,
		method:    opts.Method,
		http:      p.HTTPClient,
		getenv:    getenv,
		now:       now,
	}, nil
}

// Info implements target.Target.
func (t *Target) Info() target.Info {
	dest := fmt.Sprintf("vault %s/%s at %s", t.mount, t.path, t.address)
	if t.namespace != "" {
		dest += " (namespace " + t.namespace + ")"
	}
	return target.Info{Type: Type, Name: t.name, Destination: dest, Idempotent: true}
}

// Put implements target.Target: the managed keys get their values, every
// other key of the secret keeps its own, and nothing is written when the
// secret already holds the values.
func (t *Target) Put(ctx context.Context, req target.PutRequest) (target.PutResponse, error) {
	secrets := slices.Collect(maps.Values(req.Values))
	for range casAttempts {
		c, err := t.api()
		if err != nil {
			return target.PutResponse{}, err
		}
		cur, err := t.read(ctx, c)
		if err != nil {
			return target.PutResponse{}, t.fail("read", err, secrets)
		}
		if cur.holds(req.Values) {
			return target.PutResponse{Changed: false, Ref: "version " + strconv.Itoa(cur.version)}, nil
		}
		managed := map[string]any{}
		for k, v := range req.Values {
			managed[k] = v.Reveal()
		}
		var s *vaultSecret
		op := "write"
		if t.method == MethodPatch && cur.live {
			op = "patch"
			s, err = c.mergePatch(ctx, t.dataPath(), map[string]any{
				"options": map[string]any{"cas": cur.version}, "data": managed,
			})
		} else {
			// A deleted latest version's keys are gone; there is nothing
			// to carry over.
			data := maps.Clone(cur.data)
			if data == nil {
				data = map[string]any{}
			}
			maps.Copy(data, managed)
			s, err = c.write(ctx, t.dataPath(), map[string]any{
				"options": map[string]any{"cas": cur.version}, "data": data,
			})
		}
		if lostRace(err) {
			continue
		}
		if err != nil {
			return target.PutResponse{}, t.fail(op, err, secrets)
		}
		ref := "written"
		if v, ok := versionOf(s, false); ok {
			ref = "version " + strconv.Itoa(v)
		}
		return target.PutResponse{Changed: true, Ref: ref}, nil
	}
	return target.PutResponse{}, &target.RetryableError{Err: fmt.Errorf(
		"vault target %q: %s/%s changed under every one of %d check-and-set attempts; something else keeps writing it (nothing was lost; the write can be retried): %w",
		t.name, t.mount, t.path, casAttempts, target.ErrInvalid)}
}

// Check implements target.Checker. A path with no live version holds no
// keys.
func (t *Target) Check(ctx context.Context, req target.CheckRequest) (target.CheckResponse, error) {
	c, err := t.api()
	if err != nil {
		return target.CheckResponse{}, err
	}
	cur, err := t.read(ctx, c)
	if err != nil {
		return target.CheckResponse{}, t.fail("read", err, nil)
	}
	resp := target.CheckResponse{Values: map[string]secret.String{}}
	if !cur.live {
		resp.Notes = append(resp.Notes, fmt.Sprintf("%s/%s holds no live version", t.mount, t.path))
		return resp, nil
	}
	for _, k := range req.Keys {
		switch v := cur.data[k].(type) {
		case nil:
		case string:
			resp.Values[k] = secret.New(v)
		default:
			resp.Notes = append(resp.Notes, fmt.Sprintf("%s holds a %s, not a string", k, jsonKind(v)))
		}
	}
	return resp, nil
}

// Validate implements target.Validator: the token is valid, its policy
// grants what Put needs on the path, and the path's metadata is readable.
// It writes nothing.
func (t *Target) Validate(ctx context.Context, _ target.ValidateRequest) (target.ValidateResponse, error) {
	c, err := t.api()
	if err != nil {
		return target.ValidateResponse{}, err
	}
	var resp target.ValidateResponse
	self, err := c.read(ctx, "auth/token/lookup-self")
	if err != nil {
		var re *responseError
		if errors.As(err, &re) && re.StatusCode == http.StatusForbidden {
			return resp, fmt.Errorf("vault target %q: %s rejected the token (expired, revoked, or from another namespace); create a new one and export it as VAULT_TOKEN: %w", t.name, t.address, target.ErrAuth)
		}
		return resp, t.fail("look up the token", err, nil)
	}
	if self != nil && self.Data != nil {
		if ttl, ok := self.Data["ttl"].(json.Number); ok {
			if secs, err := ttl.Int64(); err == nil && secs > 0 {
				resp.Notes = append(resp.Notes, fmt.Sprintf("the token expires in %s; rotations after that fail until it is renewed", time.Duration(secs)*time.Second))
			}
		}
	}

	need := []string{"read"}
	if t.method == MethodPatch {
		need = append(need, "patch")
	} else {
		need = append(need, "update")
	}
	caps, err := c.capabilitiesSelf(ctx, t.dataPath())
	switch {
	case err != nil:
		resp.Notes = append(resp.Notes, "could not ask Vault for the token's capabilities (sys/capabilities-self); the first rotation will tell")
	case slices.Contains(caps, "root"):
	default:
		var missing []string
		for _, n := range need {
			if !slices.Contains(caps, n) {
				missing = append(missing, n)
			}
		}
		if len(missing) > 0 {
			return resp, fmt.Errorf("vault target %q: the token's policy lacks %s on %s (it has: %s); grant it as shown in docs/targets/vault.md: %w",
				t.name, strings.Join(missing, ", "), t.dataPath(), strings.Join(caps, ", "), target.ErrAuth)
		}
		if !slices.Contains(caps, "create") {
			resp.Notes = append(resp.Notes, "the token cannot create "+t.dataPath()+"; that is fine only while the secret exists")
		}
	}

	md, err := c.read(ctx, t.mount+"/metadata/"+t.path)
	switch {
	case err != nil:
		return resp, t.fail("read the metadata of", err, nil)
	case md == nil || md.Data == nil:
		resp.Notes = append(resp.Notes, fmt.Sprintf("%s/%s does not exist yet; the first rotation creates it", t.mount, t.path))
	default:
		if v, ok := md.Data["current_version"].(json.Number); ok {
			resp.Notes = append(resp.Notes, fmt.Sprintf("%s/%s is at version %s", t.mount, t.path, v))
		}
	}
	return resp, nil
}

// current is what the path holds now.
type current struct {
	// version is the latest version's number, 0 when there is none; it is
	// the cas for the next write.
	version int
	// live is false when there is no version or the latest was deleted.
	live bool
	data map[string]any
}

func (c current) holds(values map[string]secret.String) bool {
	if !c.live {
		return false
	}
	for k, v := range values {
		s, ok := c.data[k].(string)
		if !ok || !secret.New(s).Equal(v) {
			return false
		}
	}
	return true
}

func (t *Target) read(ctx context.Context, c *client) (current, error) {
	s, err := c.read(ctx, t.dataPath())
	if err != nil {
		return current{}, err
	}
	if s == nil || s.Data == nil {
		return current{}, nil
	}
	v, _ := versionOf(s, true)
	data, _ := s.Data["data"].(map[string]any)
	return current{version: v, live: data != nil, data: data}, nil
}

// versionOf reads the version number from a read (nested under metadata)
// or a write response (top level).
func versionOf(s *vaultSecret, nested bool) (int, bool) {
	if s == nil || s.Data == nil {
		return 0, false
	}
	md := s.Data
	if nested {
		md, _ = s.Data["metadata"].(map[string]any)
	}
	n, ok := md["version"].(json.Number)
	if !ok {
		return 0, false
	}
	v, err := strconv.Atoi(n.String())
	return v, err == nil
}

func (t *Target) dataPath() string { return t.mount + "/data/" + t.path }

// api returns the shared client, built on first use.
func (t *Target) api() (*client, error) {
	if t.token == "" {
		return nil, fmt.Errorf("vault target %q has no token; write token: ${VAULT_TOKEN} and export VAULT_TOKEN: %w", t.name, target.ErrAuth)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.client == nil {
		c, err := t.newClient()
		if err != nil {
			return nil, err
		}
		t.client = c
	}
	return t.client, nil
}

func (t *Target) newClient() (*client, error) {
	hc := t.http
	if hc == nil || hc.Transport == nil {
		// Vault's TLS settings apply to a transport of our own; a client
		// that brings its transport (tests, a proxy) keeps it.
		tlsCfg, err := tlsFromEnv(t.getenv)
		if err != nil {
			return nil, fmt.Errorf("vault target %q: Vault's TLS environment (VAULT_CACERT, VAULT_CLIENT_CERT, …) is unusable (%v); fix or unset it: %w", t.name, err, target.ErrInvalid)
		}
		tr := http.DefaultTransport.(*http.Transport).Clone()
		if tlsCfg != nil {
			tr.TLSClientConfig = tlsCfg
		}
		timeout := 60 * time.Second
		if hc != nil && hc.Timeout > 0 {
			timeout = hc.Timeout
		}
		hc = &http.Client{Transport: tr, Timeout: timeout}
	}
	// The engine retries, with backoff and the journal; nothing here
	// multiplies its attempts. VAULT_AGENT_ADDR is not read: it would
	// silently win over the configured address.
	return &client{http: hc, address: t.address, token: t.token, namespace: t.namespace}, nil
}

// lostRace reports a check-and-set mismatch, or a patch of a version that
// was deleted meanwhile: both mean "read again".
func lostRace(err error) bool {
	var re *responseError
	if !errors.As(err, &re) {
		return false
	}
	if re.StatusCode == http.StatusBadRequest {
		for _, e := range re.Errors {
			if strings.Contains(e, "check-and-set parameter did not match") {
				return true
			}
		}
	}
	return false
}

// fail turns a failed call into one that names the target, says what to
// do, carries a sentinel and holds no value.
func (t *Target) fail(op string, err error, secrets []secret.String) error {
	secrets = append(slices.Clip(secrets), secret.New(t.token))
	var re *responseError
	if !errors.As(err, &re) {
		// Transport errors stay in the chain: the engine retries net.Errors.
		return secret.Scrub(fmt.Errorf("vault target %q: %s %s/%s at %s: %w", t.name, op, t.mount, t.path, t.address, err), secrets...)
	}
	msg := secret.ScrubString(strings.TrimSpace(strings.Join(re.Errors, "; ")), secrets...)
	if len(msg) > 300 {
		msg = msg[:300] + "…"
	}
	text := fmt.Sprintf("vault target %q: %s %s/%s answered %d", t.name, op, t.mount, t.path, re.StatusCode)
	if msg != "" {
		text += " (" + msg + ")"
	}
	var kind error
	switch {
	case re.StatusCode == http.StatusUnauthorized || re.StatusCode == http.StatusForbidden:
		kind = target.ErrAuth
		text += fmt.Sprintf("; check that the token is valid (vault token lookup) and that its policy grants %s on %s and read on %s/metadata/%s (docs/targets/vault.md)",
			t.needs(), t.dataPath(), t.mount, t.path)
	case re.StatusCode == http.StatusNotFound:
		kind = target.ErrNotFound
		text += fmt.Sprintf("; check that %s is a KV version 2 mount (vault secrets list -detailed)", t.mount)
	case re.StatusCode == http.StatusTooManyRequests || re.StatusCode >= 500:
		return &target.RetryableError{Err: fmt.Errorf("%s: %w", text, errTransient), RetryAfter: webapi.RetryAfter(re.Header, t.now())}
	default:
		kind = target.ErrInvalid
	}
	return fmt.Errorf("%s: %w", text, kind)
}

var errTransient = errors.New("the server is throttling or unavailable")

func (t *Target) needs() string {
	if t.method == MethodPatch {
		return "create, read, patch"
	}
	return "create, read, update"
}

func jsonKind(v any) string {
	switch v.(type) {
	case json.Number:
		return "number"
	case bool:
		return "boolean"
	case map[string]any:
		return "object"
	case []any:
		return "list"
	}
	return "non-string value"
}

var (
	_ target.Target    = (*Target)(nil)
	_ target.Checker   = (*Target)(nil)
	_ target.Validator = (*Target)(nil)
)
