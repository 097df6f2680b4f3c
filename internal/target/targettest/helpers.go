package targettest

import (
	"maps"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/rotorhq/rotor/internal/secret"
	"github.com/rotorhq/rotor/internal/target"
)

// DecodeYAML is a target.Params.Decode for options written as YAML,
// strict as the config loader is: an unknown key is an error.
func DecodeYAML(src string) func(v any) error {
	return func(v any) error {
		dec := yaml.NewDecoder(strings.NewReader(src))
		dec.KnownFields(true)
		return dec.Decode(v)
	}
}

// PutRequest writes values as version 1 of rotation "1". Keys are keys
// when given, else the value keys sorted, so a test never depends on map
// order.
func PutRequest(values map[string]string, keys ...string) target.PutRequest {
	req := target.PutRequest{Values: map[string]secret.String{}, Keys: keys, RotationID: "1", Version: 1}
	for k, v := range values {
		req.Values[k] = secret.New(v)
	}
	if len(keys) == 0 {
		req.Keys = slices.Sorted(maps.Keys(values))
	}
	return req
}

// MapEnv is a target.Params.Getenv that sees only env.
func MapEnv(env map[string]string) func(string) string {
	return func(k string) string { return env[k] }
}
