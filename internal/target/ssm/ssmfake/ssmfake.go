// Package ssmfake is a contract fake of AWS Systems Manager Parameter
// Store, limited to what the aws-ssm target uses. It follows
// ../shared/reference/targets-api.md §7 (X-Amz-Target AmazonSSM.*, PutParameter
// with Type SecureString and Overwrite, ParameterAlreadyExists without
// Overwrite, GetParameter WithDecryption answering
// {"Parameter":{Name,Type,Value,Version,LastModifiedDate,ARN}}) and the
// SDK's documentation of each operation (aws-sdk-go-v2 service/ssm
// api_op_*.go):
//
//   - every PutParameter makes a new version, even of the same value;
//   - a SecureString read without WithDecryption answers the ciphertext;
//   - names with '/' must be fully qualified (start with '/'), hold at most
//     15 levels, and may not start with aws or ssm;
//   - Standard-tier values hold at most 4096 characters;
//   - Tags together with Overwrite are refused;
//   - GetParameters takes at most 10 names and lists missing ones in
//     InvalidParameters;
//   - a missing parameter is ParameterNotFound, an unknown KMS key
//     InvalidKeyId, and concurrent updates of one parameter TooManyUpdates
//     (a fault knob, as is throttling).
//
// The protocol (JSON 1.1, errors, credential checks, faults) is awsfake's.
package ssmfake

import (
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rotorhq/rotor/internal/target/awsclient/awsfake"
)

// DefaultKey is the AWS managed key SecureString parameters use unless
// KeyId names another.
const DefaultKey = "alias/aws/ssm"

// Ciphertext is what a SecureString reads as without WithDecryption.
const Ciphertext = "AQICAHhfakeciphertextfakeciphertext=="

// Server is one fake Parameter Store endpoint.
type Server struct {
	*awsfake.Server

	mu       sync.Mutex
	params   map[string]*param
	keys     map[string]bool
	requests []Request
	clock    time.Time
}

// Request is what the fake saw of one call, without values.
type Request struct {
	Op             string
	Name           string
	Names          []string
	Type           string
	Overwrite      *bool
	KeyID          string
	WithDecryption bool
	Tier           string
	HasTags        bool
	Filters        []Filter
}

// Filter is one DescribeParameters ParameterFilters entry.
type Filter struct {
	Key    string
	Option string
	Values []string
}

// Parameter is a parameter's current state.
type Parameter struct {
	Type    string
	Value   string
	Version int64
	KeyID   string
}

type param struct {
	name, typ, keyID, tier string
	values                 []string // values[i] is version i+1
	modified               time.Time
}

// New starts a fake with no parameters that knows the default KMS key.
func New(t testing.TB) *Server {
	t.Helper()
	s := &Server{params: map[string]*param{}, keys: map[string]bool{DefaultKey: true}, clock: time.Date(2026, 8, 1, 12, 0, 0, 0, time.UTC)}
	s.Server = awsfake.New(t, "AmazonSSM", "ssm", map[string]awsfake.Handler{
		"PutParameter":       s.putParameter,
		"GetParameter":       s.getParameter,
		"GetParameters":      s.getParameters,
		"DescribeParameters": s.describeParameters,
	})
	return s
}

// AddKey makes a customer managed KMS key id (or alias) usable.
func (s *Server) AddKey(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keys[id] = true
}

// Seed stores a parameter version, bypassing the API.
func (s *Server) Seed(name, typ, value string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.params[name]
	if p == nil {
		p = &param{name: name, tier: "Standard"}
		s.params[name] = p
	}
	p.typ = typ
	if typ == "SecureString" && p.keyID == "" {
		p.keyID = DefaultKey
	}
	p.values = append(p.values, value)
	p.modified = s.tick()
}

// Get returns a parameter's current state.
func (s *Server) Get(name string) (Parameter, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.params[name]
	if p == nil {
		return Parameter{}, false
	}
	return Parameter{Type: p.typ, Value: p.values[len(p.values)-1], Version: int64(len(p.values)), KeyID: p.keyID}, true
}

// Names returns every parameter name, sorted.
func (s *Server) Names() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for n := range s.params {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

// Requests returns the calls that reached an operation, in order.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.requests)
}

func (s *Server) tick() time.Time {
	s.clock = s.clock.Add(time.Second)
	return s.clock
}

func arn(name string) string {
	if !strings.HasPrefix(name, "/") {
		name = "/" + name
	}
	return "arn:aws:ssm:" + awsfake.Region + ":" + awsfake.Account + ":parameter" + name
}

var nameChars = regexp.MustCompile(`^[a-zA-Z0-9_.\-/]+$`)

func validName(name string) *awsfake.Error {
	switch {
	case name == "" || len(name) > 1011:
		return awsfake.Errorf("ValidationException", "Parameter name must be between 1 and 1011 characters.")
	case !nameChars.MatchString(name):
		return awsfake.Errorf("ValidationException", "Parameter name must only contain letters, numbers, and the symbols .-_/")
	case strings.Contains(name, "/") && !strings.HasPrefix(name, "/"):
		return awsfake.Errorf("ValidationException", "Parameter name must be a fully qualified name.")
	case strings.Count(name, "/") > 15:
		return awsfake.Errorf("HierarchyLevelLimitExceededException", "A hierarchy can have a maximum of 15 levels.")
	}
	first := strings.ToLower(strings.TrimPrefix(name, "/"))
	if strings.HasPrefix(first, "aws") || strings.HasPrefix(first, "ssm") {
		return awsfake.Errorf("ValidationException", `Parameter name: can't be prefixed with "aws" or "ssm" (case-insensitive).`)
	}
	return nil
}

type tag struct{ Key, Value string }

type putParameterIn struct {
	Name        string
	Value       *string
	Type        string
	Overwrite   *bool
	KeyId       string
	Tier        string
	Tags        []tag
	Description string
	DataType    string
}

func (s *Server) putParameter(body []byte) (any, *awsfake.Error) {
	var in putParameterIn
	if err := awsfake.Decode(body, &in); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests = append(s.requests, Request{Op: "PutParameter", Name: in.Name, Type: in.Type, Overwrite: in.Overwrite, KeyID: in.KeyId, Tier: in.Tier, HasTags: in.Tags != nil})
	if err := validName(in.Name); err != nil {
		return nil, err
	}
	if in.Value == nil {
		return nil, awsfake.Errorf("ValidationException", "1 validation error detected: Value at 'value' failed to satisfy constraint: Member must not be null")
	}
	limit := 4096
	if in.Tier == "Advanced" {
		limit = 8192
	}
	if n := len([]rune(*in.Value)); n > limit || n == 0 {
		return nil, awsfake.Errorf("ValidationException", "Standard tier parameters support a maximum parameter value of 4096 characters. To create a larger parameter value, upgrade the parameter to use the advanced-parameter tier.")
	}
	overwrite := in.Overwrite != nil && *in.Overwrite
	if overwrite && in.Tags != nil {
		return nil, awsfake.Errorf("ValidationException", "Invalid request: tags and overwrite can't be used together. To create a parameter with tags, please remove overwrite flag. To update tags for an existing parameter, please use AddTagsToResource or RemoveTagsFromResource.")
	}
	switch in.Type {
	case "String", "StringList", "SecureString":
	case "":
		if s.params[in.Name] == nil {
			return nil, awsfake.Errorf("ValidationException", "A parameter type is required when you create a parameter.")
		}
	default:
		return nil, awsfake.Errorf("ValidationException", "1 validation error detected: Value at 'type' failed to satisfy constraint: Member must satisfy enum value set: [SecureString, StringList, String]")
	}
	if in.KeyId != "" && in.Type != "SecureString" {
		return nil, awsfake.Errorf("ValidationException", "KeyId is required for SecureString type parameter only.")
	}
	if in.KeyId != "" && !s.keys[in.KeyId] {
		return nil, awsfake.Errorf("InvalidKeyId", "The KMS key ID or alias is not valid or does not exist.")
	}
	p := s.params[in.Name]
	if p != nil && !overwrite {
		return nil, awsfake.Errorf("ParameterAlreadyExists", "The parameter already exists. To overwrite this value, set the overwrite option in the request to true.")
	}
	if p == nil {
		p = &param{name: in.Name, tier: "Standard"}
		s.params[in.Name] = p
	}
	if in.Type != "" {
		p.typ = in.Type
	}
	switch {
	case p.typ != "SecureString":
		p.keyID = ""
	case in.KeyId != "":
		p.keyID = in.KeyId
	case p.keyID == "":
		p.keyID = DefaultKey
	}
	p.values = append(p.values, *in.Value)
	p.modified = s.tick()
	return map[string]any{"Version": len(p.values), "Tier": p.tier}, nil
}

func (p *param) answer(decrypt bool) map[string]any {
	v := p.values[len(p.values)-1]
	if p.typ == "SecureString" && !decrypt {
		v = Ciphertext
	}
	return map[string]any{
		"Name": p.name, "Type": p.typ, "Value": v, "Version": len(p.values),
		"LastModifiedDate": float64(p.modified.Unix()), "ARN": arn(p.name), "DataType": "text",
	}
}

type getParameterIn struct {
	Name           string
	WithDecryption *bool
}

func (s *Server) getParameter(body []byte) (any, *awsfake.Error) {
	var in getParameterIn
	if err := awsfake.Decode(body, &in); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	decrypt := in.WithDecryption != nil && *in.WithDecryption
	s.requests = append(s.requests, Request{Op: "GetParameter", Name: in.Name, WithDecryption: decrypt})
	p := s.params[in.Name]
	if p == nil {
		return nil, awsfake.Errorf("ParameterNotFound", "")
	}
	return map[string]any{"Parameter": p.answer(decrypt)}, nil
}

type getParametersIn struct {
	Names          []string
	WithDecryption *bool
}

func (s *Server) getParameters(body []byte) (any, *awsfake.Error) {
	var in getParametersIn
	if err := awsfake.Decode(body, &in); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	decrypt := in.WithDecryption != nil && *in.WithDecryption
	s.requests = append(s.requests, Request{Op: "GetParameters", Names: slices.Clone(in.Names), WithDecryption: decrypt})
	if len(in.Names) == 0 || len(in.Names) > 10 {
		return nil, awsfake.Errorf("ValidationException", "1 validation error detected: Value at 'names' failed to satisfy constraint: Member must have length less than or equal to 10")
	}
	found, invalid := []any{}, []string{}
	for _, n := range in.Names {
		if p := s.params[n]; p != nil {
			found = append(found, p.answer(decrypt))
		} else {
			invalid = append(invalid, n)
		}
	}
	return map[string]any{"Parameters": found, "InvalidParameters": invalid}, nil
}

type describeParametersIn struct {
	ParameterFilters []Filter
	MaxResults       *int
	NextToken        string
}

func (s *Server) describeParameters(body []byte) (any, *awsfake.Error) {
	var in describeParametersIn
	if err := awsfake.Decode(body, &in); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests = append(s.requests, Request{Op: "DescribeParameters", Filters: slices.Clone(in.ParameterFilters)})
	limit := 50
	if in.MaxResults != nil {
		if *in.MaxResults < 1 || *in.MaxResults > 50 {
			return nil, awsfake.Errorf("ValidationException", "MaxResults must be between 1 and 50.")
		}
		limit = *in.MaxResults
	}
	var names []string
	for n := range s.params {
		ok, err := matches(n, in.ParameterFilters)
		if err != nil {
			return nil, err
		}
		if ok {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	start := 0
	if in.NextToken != "" {
		n, err := strconv.Atoi(in.NextToken)
		if err != nil || n < 0 || n > len(names) {
			return nil, awsfake.Errorf("InvalidNextToken", "The specified token isn't valid.")
		}
		start = n
	}
	end := min(start+limit, len(names))
	out := []any{}
	for _, n := range names[start:end] {
		p := s.params[n]
		md := map[string]any{
			"Name": n, "Type": p.typ, "Version": len(p.values), "LastModifiedDate": float64(p.modified.Unix()),
			"ARN": arn(n), "Tier": p.tier, "DataType": "text",
		}
		if p.keyID != "" {
			md["KeyId"] = p.keyID
		}
		out = append(out, md)
	}
	resp := map[string]any{"Parameters": out}
	if end < len(names) {
		resp["NextToken"] = strconv.Itoa(end)
	}
	return resp, nil
}

func matches(name string, filters []Filter) (bool, *awsfake.Error) {
	for _, f := range filters {
		switch f.Key {
		case "Name":
			if f.Option != "" && f.Option != "Equals" {
				return false, awsfake.Errorf("InvalidFilterOption", "The filter option %q is not valid for key Name in this fake; use Equals.", f.Option)
			}
			if !slices.Contains(f.Values, name) {
				return false, nil
			}
		case "Path":
			if len(f.Values) != 1 {
				return false, awsfake.Errorf("InvalidFilterValue", "The Path filter takes one value.")
			}
			path := strings.TrimSuffix(f.Values[0], "/") + "/"
			rest, ok := strings.CutPrefix(name, path)
			switch {
			case !ok:
				return false, nil
			case f.Option == "Recursive":
			case f.Option == "" || f.Option == "OneLevel":
				if strings.Contains(rest, "/") {
					return false, nil
				}
			default:
				return false, awsfake.Errorf("InvalidFilterOption", "The filter option %q is not valid for key Path.", f.Option)
			}
		default:
			return false, awsfake.Errorf("InvalidFilterKey", "The filter key %q is not supported by this fake.", f.Key)
		}
	}
	return true, nil
}
