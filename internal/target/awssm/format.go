package awssm

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/rotorhq/rotor/internal/secret"
	"github.com/rotorhq/rotor/internal/target"
)

// Formats of the SecretString.
const (
	// FormatTemplate stores the target's values as the fields of a JSON
	// object, what the AWS console calls a key/value secret.
	FormatTemplate = "template"
	// FormatRDSJSON stores the structure AWS documents for RDS and
	// RDS Proxy credentials: username, password, host, port (a number),
	// dbname and engine ("postgres" unless the values set it).
	FormatRDSJSON = "rds-json"
)

// rdsFields are the values format: rds-json needs, named as in the JSON
// they become, so the config reads like what ends up in the secret.
var rdsFields = []string{"username", "password", "host", "port", "dbname"}

// maxSecretString is Secrets Manager's limit on SecretString, in bytes.
const maxSecretString = 65536

// document is a SecretString as a JSON object. Fields rotor does not
// manage keep their JSON text exactly.
type document map[string]json.RawMessage

// parseDocument reads the current SecretString. An empty secret (no
// version yet) is an empty object.
func parseDocument(current *string) (document, error) {
	doc := document{}
	if current == nil {
		return doc, nil
	}
	if err := json.Unmarshal([]byte(*current), &doc); err != nil || doc == nil {
		// The value may be a bare password: never quote it back.
		return nil, fmt.Errorf("its current value is not a JSON object, and rotor only writes fields of one (it does not replace a whole value it cannot read): %w", target.ErrInvalid)
	}
	return doc, nil
}

// checkKeys: format rds-json needs a value for every field of rdsFields.
func checkKeys(format string, keys []string) error {
	if format != FormatRDSJSON {
		return nil
	}
	var missing []string
	for _, f := range rdsFields {
		if !slices.Contains(keys, f) {
			missing = append(missing, f)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("format rds-json needs values named %s; missing: %s (see docs/targets/aws-secrets-manager.md): %w",
			strings.Join(rdsFields, ", "), strings.Join(missing, ", "), target.ErrInvalid)
	}
	return nil
}

// compose merges values into the current document and encodes it
// deterministically (sorted fields), so a retry sends the same bytes
// under the same ClientRequestToken.
func compose(format string, doc document, values map[string]secret.String) (string, error) {
	out := maps.Clone(doc)
	if out == nil {
		out = document{}
	}
	if format == FormatRDSJSON {
		if err := checkKeys(format, slices.Collect(maps.Keys(values))); err != nil {
			return "", err
		}
		if _, ok := values["engine"]; !ok {
			out["engine"] = json.RawMessage(`"postgres"`)
		}
	}
	for _, k := range slices.Sorted(maps.Keys(values)) {
		v := values[k].Reveal()
		if !utf8.ValidString(v) {
			return "", fmt.Errorf("the value of %s is not valid UTF-8, which a SecretString cannot hold: %w", k, target.ErrInvalid)
		}
		if err := checkValue(format, k, v); err != nil {
			return "", err
		}
		if format == FormatRDSJSON && k == "port" {
			out[k] = json.RawMessage(v)
			continue
		}
		out[k] = jsonString(v)
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	// <, > and & stay readable in the console; the value is the same.
	enc.SetEscapeHTML(false)
	if err := enc.Encode(out); err != nil {
		return "", fmt.Errorf("encode the secret: %w", err)
	}
	s := strings.TrimSuffix(b.String(), "\n")
	if len(s) > maxSecretString {
		return "", fmt.Errorf("the secret would be %d bytes, over Secrets Manager's limit of %d: %w", len(s), maxSecretString, target.ErrInvalid)
	}
	return s, nil
}

// checkValue: format rds-json writes port as a number.
func checkValue(format, k, v string) error {
	if format == FormatRDSJSON && k == "port" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 65535 || strconv.Itoa(n) != v {
			return fmt.Errorf("format rds-json writes port as a number, but the rendered port is not one from 1 to 65535; render it with {{.Port}}: %w", target.ErrInvalid)
		}
	}
	return nil
}

func jsonString(v string) json.RawMessage {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v) // a valid UTF-8 string always encodes
	return bytes.TrimSuffix(b.Bytes(), []byte("\n"))
}

// field reads one field back as text: strings as they are, numbers (an
// rds-json port) in their JSON spelling. ok is false for a missing field;
// kind names what the field holds when it is neither.
func field(doc document, k string) (v string, ok bool, kind string) {
	raw, present := doc[k]
	if !present {
		return "", false, ""
	}
	var x any
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&x); err != nil {
		return "", false, "invalid JSON"
	}
	switch x := x.(type) {
	case string:
		return x, true, ""
	case json.Number:
		return x.String(), true, ""
	case nil:
		return "", false, "null"
	case bool:
		return "", false, "a boolean"
	case map[string]any:
		return "", false, "an object"
	default:
		return "", false, "a list"
	}
}

// holds reports whether doc already stores every value (and, for rds-json,
// an engine), so that Put can skip the write.
func holds(format string, doc document, values map[string]secret.String) bool {
	if format == FormatRDSJSON {
		if _, ok := values["engine"]; !ok {
			if e, ok, _ := field(doc, "engine"); !ok || e != "postgres" {
				return false
			}
		}
	}
	for k, want := range values {
		got, ok, _ := field(doc, k)
		if !ok || !want.Equal(secret.New(got)) {
			return false
		}
		// A port stored as a string must become a number.
		if format == FormatRDSJSON && k == "port" && bytes.HasPrefix(bytes.TrimSpace(doc[k]), []byte{'"'}) {
			return false
		}
	}
	return true
}

// escapedForms are the spellings of values inside a JSON document that is
// itself JSON-escaped in an API error; scrubbing them too keeps an echoed
// SecretString out of error messages.
func escapedForms(values map[string]secret.String, doc string) []secret.String {
	out := make([]secret.String, 0, 2*len(values)+1)
	for _, v := range values {
		out = append(out, v, secret.New(strings.Trim(string(jsonString(v.Reveal())), `"`)))
	}
	if doc != "" {
		out = append(out, secret.New(doc))
	}
	return out
}
