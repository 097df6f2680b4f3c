package config

import (
	"cmp"
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"

	"go.yaml.in/yaml/v3"

	"github.com/rotorhq/rotor/internal/template"
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
	// broken holds the paths whose value could not be read as written (a
	// value of the wrong kind, a bad duration); typos the paths of the
	// mappings that hold an unknown key. Checks that combine settings skip
	// those, so that one mistake is not reported again as its consequence
	// (a misspelt strategy: as a wrong number of roles).
	broken, typos map[string]bool
	// unset holds the environment variables referenced but not set; their
	// references stay in the values as written (see interpolate).
	unset map[string]bool

	// Memos of work that is the same for every credential of a large
	// config: the key of a provider mapping that defaults: gives them all,
	// and each distinct value template (usually one, "{{.URL}}").
	providerKeys map[*yaml.Node]string
	templates    map[string]compiledTemplate
}

type compiledTemplate struct {
	tpl *template.Template
	err error
}

// compile is template.Compile, once per distinct text: a Template is
// immutable once compiled, so targets can share one.
func (d *decoder) compile(text string) (*template.Template, error) {
	if c, ok := d.templates[text]; ok {
		return c.tpl, c.err
	}
	tpl, err := template.Compile(text)
	if d.templates == nil {
		d.templates = map[string]compiledTemplate{}
	}
	d.templates[text] = compiledTemplate{tpl, err}
	return tpl, err
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
// A value that does not fit is reported and left out; everything else is
// decoded all the same, so that the rest of the file is still checked and
// every problem comes out in one report. It reports whether n fitted.
func (d *decoder) decode(n *yaml.Node, out any, path string) bool {
	before := len(d.errs)
	d.check(n, reflect.TypeOf(out).Elem(), path)
	checked := len(d.errs) == before
	if err := n.Decode(out); err != nil && checked {
		// check knows no problem with n: these are yaml.v3's own (a word
		// where a number belongs), each on its own line.
		var te *yaml.TypeError
		if !errors.As(err, &te) {
			d.errorf(n, "%s: %s", pathOr(path), cleanYAMLError(err))
		}
		for _, msg := range typeErrors(te) {
			d.errs = append(d.errs, &Error{File: d.file, Line: cmp.Or(msg.line, n.Line), Msg: pathOr(path) + ": " + msg.text})
		}
		d.markBroken(path)
		return false
	}
	return checked
}

var typeErrorLine = regexp.MustCompile(`^line ([0-9]+): (.*)$`)

type located struct {
	line int
	text string
}

// typeErrors splits a yaml.v3 TypeError into its messages and their lines.
func typeErrors(te *yaml.TypeError) []located {
	if te == nil {
		return nil
	}
	out := make([]located, 0, len(te.Errors))
	for _, e := range te.Errors {
		if m := typeErrorLine.FindStringSubmatch(e); m != nil {
			line, _ := strconv.Atoi(m[1])
			out = append(out, located{line, m[2]})
			continue
		}
		out = append(out, located{0, e})
	}
	return out
}

func (d *decoder) markBroken(path string) {
	if d.broken == nil {
		d.broken = map[string]bool{}
	}
	d.broken[path] = true
}

func (d *decoder) markTypo(path string) {
	if d.typos == nil {
		d.typos = map[string]bool{}
	}
	d.typos[path] = true
}

// isBroken reports whether a value at path, or inside it, could not be
// read as written; with typos, also whether a mapping there held an
// unknown key.
func (d *decoder) isBroken(path string, typos bool) bool {
	if under(d.broken, path) {
		return true
	}
	return typos && under(d.typos, path)
}

// under reports whether set holds path or a path inside it.
func under(set map[string]bool, path string) bool {
	for p := range set {
		if p == path || strings.HasPrefix(p, path+".") || strings.HasPrefix(p, path+"[") {
			return true
		}
	}
	return false
}

// holdsUnset reports whether s, a value after interpolation, still holds
// the reference to a variable that is not set.
func (d *decoder) holdsUnset(s string) bool {
	for name := range d.unset {
		if strings.Contains(s, "${"+name+"}") {
			return true
		}
	}
	return false
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
			d.markBroken(path)
		} else if _, err := ParseDuration(n.Value); err != nil {
			d.errorf(n, "%s: %v", pathOr(path), err)
			d.markBroken(path)
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
			d.markBroken(path)
			return
		}
		fields := yamlFields(t)
		seen := map[string]bool{}
		repeated := false
		defer func() {
			if repeated {
				dropRepeats(n)
			}
		}()
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if seen[k.Value] {
				d.errorf(k, "%s is set twice", join(path, k.Value))
				repeated = true
				continue
			}
			seen[k.Value] = true
			f, ok := fields[k.Value]
			if !ok {
				d.errorf(k, "unknown key %q in %s (known: %s)", k.Value, pathOr(path), strings.Join(sortedKeys(fields), ", "))
				d.markTypo(path)
				continue
			}
			d.check(v, f.Type, join(path, k.Value))
		}
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			d.errorf(n, "%s must be a mapping (key: value lines)", pathOr(path))
			d.markBroken(path)
			return
		}
		seen := map[string]bool{}
		repeated := false
		defer func() {
			if repeated {
				dropRepeats(n)
			}
		}()
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			if seen[k.Value] {
				d.errorf(k, "%s is set twice", join(path, k.Value))
				repeated = true
				continue
			}
			seen[k.Value] = true
			d.check(n.Content[i+1], t.Elem(), join(path, k.Value))
		}
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			d.errorf(n, "%s must be a list", pathOr(path))
			d.markBroken(path)
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
			d.markBroken(path)
			return
		}
		if want := scalarKind(t); want != "" && n.Decode(reflect.New(t).Interface()) != nil {
			d.errorf(n, "%s must be %s, not %q", pathOr(path), want, n.Value)
			d.markBroken(path)
		}
	}
}

// scalarKind names what a scalar of type t must hold, for those yaml.v3
// refuses to convert ("" for strings, which take anything).
func scalarKind(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a whole number"
	case reflect.Float32, reflect.Float64:
		return "a number"
	}
	return ""
}

// dropRepeats removes from the mapping n the second and later copies of
// a key it sets twice, once check has reported them: yaml.v3 would refuse
// the whole mapping over one, and the rest of it is still to be read.
func dropRepeats(n *yaml.Node) {
	seen := map[string]bool{}
	kept := n.Content[:0:0]
	for i := 0; i+1 < len(n.Content); i += 2 {
		if k := n.Content[i]; !seen[k.Value] {
			seen[k.Value] = true
			kept = append(kept, k, n.Content[i+1])
		}
	}
	if len(kept) != len(n.Content) {
		n.Content = kept
	}
}

var unmarshalerType = reflect.TypeOf((*yaml.Unmarshaler)(nil)).Elem()

// fieldsByType caches yamlFields: check asks it for every mapping of
// every credential, and a type's fields never change.
var fieldsByType sync.Map // reflect.Type → map[string]reflect.StructField

// yamlFields maps the yaml keys of struct type t to its fields. The map is
// shared: read it, never change it.
func yamlFields(t reflect.Type) map[string]reflect.StructField {
	if m, ok := fieldsByType.Load(t); ok {
		return m.(map[string]reflect.StructField)
	}
	m := buildYAMLFields(t)
	fieldsByType.Store(t, m)
	return m
}

func buildYAMLFields(t reflect.Type) map[string]reflect.StructField {
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
