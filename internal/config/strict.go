package config

import (
	"cmp"
	"fmt"
	"reflect"
	"slices"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Error is a configuration problem located in a file. Its message reads
// "rotor.yaml:12: <problem>; <hint>", the shape editors and CI logs link.
type Error struct {
	File string
	Line int
	Msg  string
}

func (e *Error) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	}
	return fmt.Sprintf("%s: %s", e.File, e.Msg)
}

// Errors is every problem found in one file, reported together so a user
// fixes them in one pass.
type Errors []*Error

func (es Errors) Error() string {
	parts := make([]string, len(es))
	for i, e := range es {
		parts[i] = e.Error()
	}
	return strings.Join(parts, "\n")
}

// Sort puts the problems in file order, problems of the whole file first,
// so a report reads top to bottom whatever order checks ran in.
func (es Errors) Sort() {
	slices.SortStableFunc(es, func(a, b *Error) int { return cmp.Compare(a.Line, b.Line) })
}

// decoder decodes YAML nodes into structs strictly: a key that no field
// names is an error with its line, listing the keys that are allowed.
// yaml.v3's KnownFields exists only on Decoder, and re-encoding a subtree to
// use it would lose the original line numbers, hence this walker.
type decoder struct {
	file string
	errs Errors
}

// sorted returns the errors in file order.
func (d *decoder) sorted() Errors {
	d.errs.Sort()
	return d.errs
}

func (d *decoder) errorf(n *yaml.Node, format string, args ...any) {
	line := 0
	if n != nil {
		line = n.Line
	}
	d.errs = append(d.errs, &Error{File: d.file, Line: line, Msg: fmt.Sprintf(format, args...)})
}

var (
	durationType = reflect.TypeOf(Duration(0))
	nodeType     = reflect.TypeOf(yaml.Node{})
)

// decode checks n against out's type (unknown keys, kinds) and then lets
// yaml.v3 fill it. path names the position for messages ("credentials.app").
func (d *decoder) decode(n *yaml.Node, out any, path string) bool {
	before := len(d.errs)
	d.check(n, reflect.TypeOf(out).Elem(), path)
	if len(d.errs) > before {
		return false
	}
	if err := n.Decode(out); err != nil {
		d.errorf(n, "%s: %s", pathOr(path), cleanYAMLError(err))
		return false
	}
	return true
}

func (d *decoder) check(n *yaml.Node, t reflect.Type, path string) {
	if n == nil {
		return
	}
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == nodeType {
		return // kept raw; decoded later by whoever owns it
	}
	if t == durationType {
		if n.Kind != yaml.ScalarNode {
			d.errorf(n, "%s must be a duration like 90s, 15m, 12h or 30d", pathOr(path))
		} else if _, err := ParseDuration(n.Value); err != nil {
			d.errorf(n, "%s: %v", pathOr(path), err)
		}
		return
	}
	if t.Implements(unmarshalerType) || reflect.PointerTo(t).Implements(unmarshalerType) {
		return // the type validates itself
	}
	switch t.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			d.errorf(n, "%s must be a mapping (key: value lines)", pathOr(path))
			return
		}
		fields := yamlFields(t)
		seen := map[string]bool{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if seen[k.Value] {
				d.errorf(k, "%s is set twice", join(path, k.Value))
				continue
			}
			seen[k.Value] = true
			f, ok := fields[k.Value]
			if !ok {
				d.errorf(k, "unknown key %q in %s (known: %s)", k.Value, pathOr(path), strings.Join(sortedKeys(fields), ", "))
				continue
			}
			d.check(v, f.Type, join(path, k.Value))
		}
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			d.errorf(n, "%s must be a mapping (key: value lines)", pathOr(path))
			return
		}
		seen := map[string]bool{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			if seen[k.Value] {
				d.errorf(k, "%s is set twice", join(path, k.Value))
				continue
			}
			seen[k.Value] = true
			d.check(n.Content[i+1], t.Elem(), join(path, k.Value))
		}
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			d.errorf(n, "%s must be a list", pathOr(path))
			return
		}
		for i, c := range n.Content {
			d.check(c, t.Elem(), fmt.Sprintf("%s[%d]", pathOr(path), i))
		}
	case reflect.Interface:
		// yaml.Node or any: kept raw, checked by whoever decodes it.
	default:
		if n.Kind != yaml.ScalarNode {
			d.errorf(n, "%s must be a single value, not a %s", pathOr(path), kindName(n.Kind))
		}
	}
}

var unmarshalerType = reflect.TypeOf((*yaml.Unmarshaler)(nil)).Elem()

func yamlFields(t reflect.Type) map[string]reflect.StructField {
	out := map[string]reflect.StructField{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := f.Tag.Get("yaml")
		name, opts, _ := strings.Cut(tag, ",")
		if name == "-" {
			continue
		}
		if strings.Contains(opts, "inline") {
			for k, v := range yamlFields(f.Type) {
				out[k] = v
			}
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		out[name] = f
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func pathOr(path string) string {
	if path == "" {
		return "the document"
	}
	return path
}

func kindName(k yaml.Kind) string {
	switch k {
	case yaml.MappingNode:
		return "mapping"
	case yaml.SequenceNode:
		return "list"
	default:
		return "value"
	}
}

// cleanYAMLError strips yaml.v3's "yaml: unmarshal errors:\n  line N:"
// framing; the caller adds file:line itself.
func cleanYAMLError(err error) string {
	s := err.Error()
	s = strings.TrimPrefix(s, "yaml: unmarshal errors:\n")
	s = strings.TrimSpace(s)
	if strings.HasPrefix(s, "line ") {
		if _, rest, ok := strings.Cut(s, ": "); ok {
			s = rest
		}
	}
	return s
}
