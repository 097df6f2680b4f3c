// Package ssm is the AWS Systems Manager Parameter Store target: each key
// is one SecureString parameter, written with PutParameter and
// Overwrite: true (targets-api.md §7).
//
// Every PutParameter makes a new parameter version, even of the same value,
// so Put reads the parameters first (GetParameters WithDecryption) and
// writes only those whose value differs. Writing a value is idempotent: a
// retry writes the same value again at worst.
//
// Credentials come from the SDK's default chain (awsclient), never from
// rotor's config.
package ssm

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/rotorhq/rotor/internal/secret"
	"github.com/rotorhq/rotor/internal/target"
	"github.com/rotorhq/rotor/internal/target/awsclient"
)

// Type is the registry name of this target.
const Type = "aws-ssm"

// maxValue is the Standard tier's limit on a parameter value, in bytes.
const maxValue = 4096

// batch is how many names GetParameters takes at once.
const batch = 10

// Options are the target's own config keys.
type Options struct {
	// Parameters maps each key of values to its parameter name, e.g.
	// {DATABASE_URL: /app/prod/database_url}.
	Parameters map[string]string `yaml:"parameters"`
	// PathPrefix names each parameter <path_prefix>/<key> instead, e.g.
	// /app/prod → /app/prod/DATABASE_URL. Exactly one of the two is set.
	PathPrefix string `yaml:"path_prefix"`
	// KeyID is the KMS key (id, ARN or alias/…) SecureStrings are
	// encrypted with; default the account's aws/ssm key.
	KeyID string `yaml:"key_id"`
	// Region defaults to AWS_REGION and the profile's.
	Region string `yaml:"region"`
	// Endpoint replaces the regional endpoint (VPC endpoints, tests).
	Endpoint string `yaml:"endpoint"`
	// Profile selects a shared-config profile.
	Profile string `yaml:"profile"`
}

// Target keeps values in SecureString parameters.
type Target struct {
	name     string
	params   map[string]string
	prefix   string
	keyID    string
	region   string
	endpoint string
	getenv   func(string) string
	now      func() time.Time

	sdk *awsclient.Lazy[awsclient.JSONAPI]
}

var (
	regionRE    = regexp.MustCompile(`^[a-z]{2}(-[a-z]+)+-[0-9]+$`)
	paramNameRE = regexp.MustCompile(`^[a-zA-Z0-9_.\-/]+$`)
)

// New builds the target from its options. It does no I/O.
func New(p target.Params) (target.Target, error) {
	var opts Options
	if err := p.DecodeOptions(Type, &opts); err != nil {
		return nil, err
	}
	desc := p.Describe(Type)
	getenv := p.Env()
	t := &Target{
		name: p.Name, keyID: opts.KeyID, region: opts.Region, endpoint: strings.TrimRight(opts.Endpoint, "/"),
		getenv: getenv, now: p.Clock(),
	}
	switch {
	case len(opts.Parameters) > 0 && opts.PathPrefix != "":
		return nil, fmt.Errorf("%s has both parameters: and path_prefix:; keep one: %w", desc, target.ErrInvalid)
	case len(opts.Parameters) > 0:
		byName := map[string]string{}
		for _, k := range slices.Sorted(maps.Keys(opts.Parameters)) {
			n := opts.Parameters[k]
			if err := checkName(n); err != nil {
				return nil, fmt.Errorf("%s: parameters.%s: %w", desc, k, err)
			}
			if other, dup := byName[n]; dup {
				return nil, fmt.Errorf("%s: parameters.%s and parameters.%s both name %s; give each key its own parameter: %w", desc, other, k, n, target.ErrInvalid)
			}
			byName[n] = k
		}
		t.params = opts.Parameters
	case opts.PathPrefix != "":
		prefix := strings.TrimSuffix(opts.PathPrefix, "/")
		if !strings.HasPrefix(prefix, "/") {
			return nil, fmt.Errorf("%s: path_prefix %q must start with '/', e.g. /app/prod: %w", desc, opts.PathPrefix, target.ErrInvalid)
		}
		// Checked with a stand-in key: the rules are about the prefix.
		if err := checkName(prefix + "/KEY"); err != nil {
			return nil, fmt.Errorf("%s: path_prefix: %w", desc, err)
		}
		t.prefix = prefix
	default:
		return nil, fmt.Errorf("%s has neither parameters: nor path_prefix:; add parameters: {DATABASE_URL: /app/prod/database_url} or path_prefix: /app/prod: %w", desc, target.ErrInvalid)
	}
	if opts.Region != "" && !regionRE.MatchString(opts.Region) {
		return nil, fmt.Errorf("%s: region %q is not an AWS region name like us-east-1: %w", desc, opts.Region, target.ErrInvalid)
	}
	if t.endpoint != "" {
		if u, err := url.Parse(t.endpoint); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return nil, fmt.Errorf("%s: endpoint %q is not an http(s) URL; write it like https://vpce-0123.ssm.us-east-1.vpce.amazonaws.com: %w", desc, opts.Endpoint, target.ErrInvalid)
		}
	}
	// The SDK's generated SSM package is not used: it registers a schema
	// for every shape of the service at process start (awsclient.JSONAPI).
	t.sdk = &awsclient.Lazy[awsclient.JSONAPI]{
		Settings: awsclient.Settings{Region: t.region, Profile: opts.Profile, Getenv: getenv, HTTPClient: p.HTTPClient},
		Desc:     desc,
		Build: func(cfg aws.Config) *awsclient.JSONAPI {
			return awsclient.NewJSONAPI(cfg, awsclient.Endpoint(t.endpoint, "SSM", "ssm", cfg, getenv), "AmazonSSM", "ssm")
		},
	}
	return t, nil
}

// checkName applies Parameter Store's naming rules, so a bad name fails
// at load time instead of in the middle of a rotation.
func checkName(n string) error {
	switch {
	case n == "" || len(n) > 1011:
		return fmt.Errorf("parameter name %q must be 1 to 1011 characters: %w", n, target.ErrInvalid)
	case !paramNameRE.MatchString(n):
		return fmt.Errorf("parameter name %q may only hold letters, digits and . - _ /: %w", n, target.ErrInvalid)
	case strings.Contains(n, "/") && !strings.HasPrefix(n, "/"):
		return fmt.Errorf("parameter name %q has a path but does not start with '/'; write /%s: %w", n, n, target.ErrInvalid)
	case strings.Contains(n, "//") || strings.HasSuffix(n, "/"):
		return fmt.Errorf("parameter name %q has an empty path segment: %w", n, target.ErrInvalid)
	case strings.Count(n, "/") > 15:
		return fmt.Errorf("parameter name %q is more than 15 levels deep: %w", n, target.ErrInvalid)
	}
	first := strings.ToLower(strings.TrimPrefix(n, "/"))
	if strings.HasPrefix(first, "aws") || strings.HasPrefix(first, "ssm") {
		return fmt.Errorf("parameter name %q starts with aws or ssm, which AWS reserves: %w", n, target.ErrInvalid)
	}
	return nil
}

// CheckKeys implements target.KeyChecker: every key needs a parameter,
// and one named after path_prefix must follow Parameter Store's rules.
func (t *Target) CheckKeys(keys []string) error {
	for _, k := range keys {
		n, ok := t.nameFor(k)
		if !ok {
			return fmt.Errorf("key %s has no parameter; add it to parameters: (e.g. %s: /app/prod/%s): %w", k, k, strings.ToLower(k), target.ErrInvalid)
		}
		if t.params == nil {
			if err := checkName(n); err != nil {
				return fmt.Errorf("key %s: %w", k, err)
			}
		}
	}
	return nil
}

// Info implements target.Target.
func (t *Target) Info() target.Info {
	region := cmp.Or(t.region, t.getenv("AWS_REGION"), t.getenv("AWS_DEFAULT_REGION"), "default region")
	where := t.prefix + "/*"
	if t.params != nil {
		where = strings.Join(slices.Sorted(maps.Values(t.params)), ", ")
	}
	dest := fmt.Sprintf("aws ssm parameters %s (%s)", where, region)
	if t.endpoint != "" {
		dest += " via " + t.endpoint
	}
	return target.Info{Type: Type, Name: t.name, Destination: dest, Idempotent: true}
}

func (t *Target) desc() string { return fmt.Sprintf("aws-ssm target %q", t.name) }

// nameFor is the parameter that holds key; ok is false for a key the
// parameters map does not list.
func (t *Target) nameFor(key string) (string, bool) {
	if t.params != nil {
		n, ok := t.params[key]
		return n, ok
	}
	return t.prefix + "/" + key, true
}

// Put implements target.Target: every parameter whose value differs gets a
// new version; the others, and every parameter rotor does not manage, are
// left alone.
func (t *Target) Put(ctx context.Context, req target.PutRequest) (target.PutResponse, error) {
	keys := req.OrderedKeys()
	names := make([]string, 0, len(keys))
	if err := t.CheckKeys(keys); err != nil {
		return target.PutResponse{}, fmt.Errorf("%s: %w", t.desc(), err)
	}
	for _, k := range keys {
		n, _ := t.nameFor(k)
		if v := req.Values[k].Reveal(); v == "" || len(v) > maxValue {
			return target.PutResponse{}, fmt.Errorf("%s: the value of %s is %d bytes; a Standard-tier parameter holds 1 to %d: %w", t.desc(), k, len(v), maxValue, target.ErrInvalid)
		}
		names = append(names, n)
	}
	c, err := t.api(ctx)
	if err != nil {
		return target.PutResponse{}, err
	}
	secrets := valuesOf(req.Values)
	current, err := t.read(ctx, c, names, secrets)
	if err != nil {
		return target.PutResponse{}, err
	}
	var refs []string
	changed := false
	for i, k := range keys {
		n, v := names[i], req.Values[k]
		if cur, ok := current[n]; ok && cur.Type == secureString && v.Equal(secret.New(cur.Value)) {
			refs = append(refs, fmt.Sprintf("%s v%d", n, cur.Version))
			continue
		}
		var out struct{ Version int64 }
		err := c.Call(ctx, "PutParameter", putParameterInput{
			Name: n, Value: v.Reveal(), Type: secureString, Overwrite: true, KeyID: t.keyID,
		}, &out)
		if err != nil {
			// Parameters written before this one stay written; a retry
			// skips them as unchanged.
			return target.PutResponse{Changed: changed}, t.fail("PutParameter "+n, err, true, secrets)
		}
		changed = true
		refs = append(refs, fmt.Sprintf("%s v%d", n, out.Version))
	}
	return target.PutResponse{Changed: changed, Ref: strings.Join(refs, ", ")}, nil
}

// read returns the current parameters among names, by name.
func (t *Target) read(ctx context.Context, c *awsclient.JSONAPI, names []string, secrets []secret.String) (map[string]parameter, error) {
	out := map[string]parameter{}
	for chunk := range slices.Chunk(names, batch) {
		var resp struct{ Parameters []parameter }
		err := c.Call(ctx, "GetParameters", struct {
			Names          []string
			WithDecryption bool
		}{chunk, true}, &resp)
		if err != nil {
			return nil, t.fail("GetParameters "+strings.Join(chunk, ", "), err, true, secrets)
		}
		for _, p := range resp.Parameters {
			out[p.Name] = p
		}
	}
	return out, nil
}

// Check implements target.Checker. Missing parameters are absent.
func (t *Target) Check(ctx context.Context, req target.CheckRequest) (target.CheckResponse, error) {
	resp := target.CheckResponse{Values: map[string]secret.String{}}
	var names []string
	byName := map[string]string{}
	for _, k := range req.Keys {
		n, ok := t.nameFor(k)
		if !ok {
			resp.Notes = append(resp.Notes, "key "+k+" has no parameter in parameters:")
			continue
		}
		names = append(names, n)
		byName[n] = k
	}
	if len(names) == 0 {
		return resp, nil
	}
	c, err := t.api(ctx)
	if err != nil {
		return target.CheckResponse{}, err
	}
	current, err := t.read(ctx, c, names, nil)
	if err != nil {
		return target.CheckResponse{}, err
	}
	for _, n := range names {
		p, ok := current[n]
		if !ok {
			continue
		}
		resp.Values[byName[n]] = secret.New(p.Value)
		if p.Type != secureString {
			resp.Notes = append(resp.Notes, fmt.Sprintf("%s is a %s, not a SecureString; the next write makes it one", n, p.Type))
		}
	}
	return resp, nil
}

// Validate implements target.Validator: the credentials resolve, the
// parameters can be described and, where they exist, read and decrypted.
// It writes nothing.
func (t *Target) Validate(ctx context.Context, _ target.ValidateRequest) (target.ValidateResponse, error) {
	c, err := t.api(ctx)
	if err != nil {
		return target.ValidateResponse{}, err
	}
	var resp target.ValidateResponse
	if t.params == nil {
		found, err := t.describe(ctx, c, parameterFilter{Key: "Path", Option: "OneLevel", Values: []string{t.prefix}})
		if err != nil {
			return resp, err
		}
		resp.Notes = append(resp.Notes, fmt.Sprintf("%d parameter(s) under %s; rotor writes %s/<key> for each key of values", len(found), t.prefix, t.prefix))
		return resp, nil
	}
	names := slices.Sorted(maps.Values(t.params))
	existing := map[string]parameterMetadata{}
	// A Name filter takes at most 50 values.
	for chunk := range slices.Chunk(names, 50) {
		found, err := t.describe(ctx, c, parameterFilter{Key: "Name", Option: "Equals", Values: chunk})
		if err != nil {
			return resp, err
		}
		for _, md := range found {
			existing[md.Name] = md
		}
	}
	var present []string
	for _, n := range names {
		md, ok := existing[n]
		switch {
		case !ok:
			resp.Notes = append(resp.Notes, n+" does not exist yet; the first rotation creates it")
			continue
		case md.Type != secureString:
			resp.Notes = append(resp.Notes, fmt.Sprintf("%s is a %s; the first rotation rewrites it as a SecureString", n, md.Type))
		case t.keyID != "" && md.KeyID != t.keyID:
			resp.Notes = append(resp.Notes, fmt.Sprintf("%s is encrypted with %s; the next write uses %s", n, md.KeyID, t.keyID))
		}
		present = append(present, n)
	}
	// Reading proves ssm:GetParameters and kms:Decrypt; the values are
	// dropped.
	if _, err := t.read(ctx, c, present, nil); err != nil {
		return resp, err
	}
	return resp, nil
}

func (t *Target) describe(ctx context.Context, c *awsclient.JSONAPI, f parameterFilter) ([]parameterMetadata, error) {
	var out []parameterMetadata
	in := describeParametersInput{ParameterFilters: []parameterFilter{f}}
	for range 1000 {
		var resp struct {
			Parameters []parameterMetadata
			NextToken  string
		}
		if err := c.Call(ctx, "DescribeParameters", in, &resp); err != nil {
			return nil, t.fail("DescribeParameters", err, false, nil)
		}
		out = append(out, resp.Parameters...)
		if resp.NextToken == "" {
			break
		}
		in.NextToken = resp.NextToken
	}
	return out, nil
}

// api returns the client, building it on first use.
func (t *Target) api(ctx context.Context) (*awsclient.JSONAPI, error) { return t.sdk.Get(ctx) }

func (t *Target) fail(what string, err error, retryable bool, secrets []secret.String) error {
	key := "the account's aws/ssm key"
	if t.keyID != "" {
		key = t.keyID
	}
	return awsclient.Error(t.desc()+": "+what, err, retryable, awsclient.Hints{
		Auth: "check the credentials (aws sts get-caller-identity) and that their IAM policy allows ssm:PutParameter, ssm:GetParameters and ssm:DescribeParameters on the parameters, and kms:Encrypt and kms:Decrypt on " +
			key + " (docs/targets/ssm.md)",
		NotFound: "check the parameter names and region",
	}, t.now(), secrets...)
}

func valuesOf(m map[string]secret.String) []secret.String {
	return slices.Collect(maps.Values(m))
}

// The shapes of the three calls, as the API reference names their
// members (docs.aws.amazon.com/systems-manager/latest/APIReference).
const secureString = "SecureString"

type putParameterInput struct {
	Name      string
	Value     string
	Type      string
	Overwrite bool
	KeyID     string `json:"KeyId,omitempty"`
}

// parameter is a GetParameters answer's Parameters entry.
type parameter struct {
	Name    string
	Type    string
	Value   string
	Version int64
}

// parameterMetadata is a DescribeParameters answer's Parameters entry.
type parameterMetadata struct {
	Name  string
	Type  string
	KeyID string `json:"KeyId"`
}

type parameterFilter struct {
	Key    string
	Option string
	Values []string
}

type describeParametersInput struct {
	ParameterFilters []parameterFilter
	NextToken        string `json:",omitempty"`
}

var (
	_ target.Target     = (*Target)(nil)
	_ target.KeyChecker = (*Target)(nil)
	_ target.Checker    = (*Target)(nil)
	_ target.Validator  = (*Target)(nil)
)
