package template

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"text/template/parse"
	"unicode"
	"unicode/utf8"
)

// This file holds text/template's predefined functions (its funcs.go),
// over the values exec.go describes.

// builtin is a predefined function by the shape of text/template's
// signature for it: fixed parameters, then perhaps a variadic one.
type builtin struct {
	fixed    int
	variadic bool
	fn       func(args []any) (any, error) // nil for and, or: see andOr
}

var builtins = map[string]builtin{
	"and":      {fixed: 1, variadic: true},
	"or":       {fixed: 1, variadic: true},
	"call":     {fixed: 1, variadic: true, fn: call},
	"html":     {variadic: true, fn: escaper(htmlEscape)},
	"js":       {variadic: true, fn: escaper(jsEscape)},
	"urlquery": {variadic: true, fn: escaper(url.QueryEscape)},
	"index":    {fixed: 1, variadic: true, fn: index},
	"slice":    {fixed: 1, variadic: true, fn: slice},
	"len":      {fixed: 1, fn: length},
	"not":      {fixed: 1, fn: func(a []any) (any, error) { return !isTrue(a[0]), nil }},
	"print":    {variadic: true, fn: func(a []any) (any, error) { return fmt.Sprint(a...), nil }},
	"printf":   {fixed: 1, variadic: true, fn: func(a []any) (any, error) { return fmt.Sprintf(a[0].(string), a[1:]...), nil }},
	"println":  {variadic: true, fn: func(a []any) (any, error) { return fmt.Sprintln(a...), nil }},
	"eq":       {fixed: 1, variadic: true, fn: func(a []any) (any, error) { return eq(a[0], a[1:]...) }},
	"ne":       {fixed: 2, fn: compare(ne)},
	"lt":       {fixed: 2, fn: compare(lt)},
	"le":       {fixed: 2, fn: compare(le)},
	"gt":       {fixed: 2, fn: compare(gt)},
	"ge":       {fixed: 2, fn: compare(ge)},
}

// parseFuncs declares the builtins to the parser, as text/template does,
// so that any other function name fails at Compile.
var parseFuncs = func() map[string]any {
	m := make(map[string]any, len(builtins))
	for name := range builtins {
		m[name] = true // the parser checks only for a non-nil entry
	}
	return m
}()

// evalFunction calls a builtin with the operands after its name in args
// and the piped-in final value last (text/template's evalCall). Errors
// from the function itself point at cmd, the whole call.
func (s *state) evalFunction(dot any, n *parse.IdentifierNode, cmd parse.Node, args []parse.Node, final any) (any, error) {
	f, ok := builtins[n.Ident]
	if !ok {
		return nil, s.errorf(n, "%q is not a defined function", n.Ident)
	}
	if len(args) > 0 {
		args = args[1:] // the function's own name
	}
	numIn := len(args)
	if final != missing {
		numIn++
	}
	switch {
	case f.variadic && numIn < f.fixed:
		return nil, s.errorf(n, "wrong number of args for %s: want at least %d got %d", n.Ident, f.fixed, numIn)
	case !f.variadic && numIn != f.fixed:
		return nil, s.errorf(n, "wrong number of args for %s: want %d got %d", n.Ident, f.fixed, numIn)
	case f.fn == nil:
		return s.andOr(dot, n.Ident == "or", args, final)
	}
	argv, err := s.evalArgs(dot, n, args, final)
	if err != nil {
		return nil, err
	}
	v, err := f.fn(argv)
	if err != nil {
		return nil, s.errorf(cmd, "error calling %s: %v", n.Ident, err)
	}
	return v, nil
}

// andOr returns the first argument that decides the result, evaluating
// no further ones; if none does, the last argument, or the piped-in value
// unexamined (text/template's special case in evalCall).
func (s *state) andOr(dot any, or bool, args []parse.Node, final any) (any, error) {
	var v any
	for _, a := range args {
		var err error
		if v, err = s.evalArg(dot, a); err != nil {
			return nil, err
		}
		if isTrue(v) == or {
			return v, nil
		}
	}
	if final != missing {
		v = final
	}
	return v, nil
}

// evalArgs evaluates every argument in order; printf's format must be a
// string, everything else may be any value.
func (s *state) evalArgs(dot any, fn *parse.IdentifierNode, args []parse.Node, final any) ([]any, error) {
	format := fn.Ident == "printf"
	argv := make([]any, 0, len(args)+1)
	for i, a := range args {
		eval := s.evalArg
		if format && i == 0 {
			eval = s.evalStringArg
		}
		v, err := eval(dot, a)
		if err != nil {
			return nil, err
		}
		argv = append(argv, v)
	}
	if final == missing {
		return argv, nil
	}
	if format && len(args) == 0 {
		if err := s.wantString(fn, final); err != nil {
			return nil, err
		}
	}
	return append(argv, final), nil
}

// call fails as text/template's does for anything but a function value,
// and no value here is one.
func call(args []any) (any, error) {
	if args[0] == nil {
		return nil, errors.New("call of nil")
	}
	return nil, fmt.Errorf("non-function of type %T", args[0])
}

// index is x[i][j]...: a string yields a byte, the map a string ("" for
// a missing key: missingkey governs fields, not index).
func index(args []any) (any, error) {
	item := args[0]
	if item == nil {
		return nil, errors.New("index of untyped nil")
	}
	for _, ix := range args[1:] {
		switch v := item.(type) {
		case string:
			i, err := indexArg(ix, len(v)-1)
			if err != nil {
				return nil, err
			}
			item = v[i]
		case map[string]string:
			key, ok := ix.(string)
			if !ok {
				return nil, fmt.Errorf("index has type %T; should be string", ix)
			}
			item = v[key]
		default:
			return nil, fmt.Errorf("can't index item of type %T", item)
		}
	}
	return item, nil
}

// slice is s[i:j] of a string.
func slice(args []any) (any, error) {
	item, indexes := args[0], args[1:]
	if item == nil {
		return nil, errors.New("slice of untyped nil")
	}
	str, ok := item.(string)
	switch {
	case !ok:
		return nil, fmt.Errorf("can't slice item of type %T", item)
	case len(indexes) > 2:
		return nil, fmt.Errorf("cannot %d-index slice a string", len(indexes))
	}
	idx := [2]int{0, len(str)}
	for i, ix := range indexes {
		x, err := indexArg(ix, len(str))
		if err != nil {
			return nil, err
		}
		idx[i] = x
	}
	if idx[0] > idx[1] {
		return nil, errors.New("invalid slice index: low > high")
	}
	return str[idx[0]:idx[1]], nil
}

// indexArg checks an index against 0..max. Unlike text/template's, its
// messages leave out the index: it may be a byte of the password.
func indexArg(ix any, max int) (int, error) {
	var x int
	switch v := ix.(type) {
	case int:
		x = v
	case uint8:
		x = int(v)
	case nil:
		return 0, errors.New("cannot index slice/array with nil")
	default:
		return 0, fmt.Errorf("cannot index slice/array with type %T", ix)
	}
	if x < 0 || x > max {
		return 0, errors.New("index out of range")
	}
	return x, nil
}

func length(args []any) (any, error) {
	switch v := args[0].(type) {
	case string:
		return len(v), nil
	case map[string]string:
		return len(v), nil
	}
	return nil, fmt.Errorf("len of type %T", args[0])
}

// kind is text/template's basicKind classification; each kind is one Go
// type here, so equal kinds compare with ==.
type kind int

const (
	invalidKind kind = iota // nil or the data map
	boolKind
	complexKind
	intKind
	floatKind
	stringKind
	uintKind
)

func basicKind(v any) kind {
	switch v.(type) {
	case bool:
		return boolKind
	case complex128:
		return complexKind
	case int:
		return intKind
	case float64:
		return floatKind
	case string:
		return stringKind
	case uint8:
		return uintKind
	}
	return invalidKind
}

var errBadComparisonType = errors.New("invalid type for comparison")

// eq reports a == b || a == c || ..., stopping at the first match, so a
// later incomparable argument goes unnoticed as in text/template.
func eq(a any, bs ...any) (bool, error) {
	if len(bs) == 0 {
		return false, errors.New("missing argument for comparison")
	}
	ka := basicKind(a)
	for _, b := range bs {
		kb := basicKind(b)
		var truth bool
		switch {
		case ka == kb && ka != invalidKind:
			truth = a == b
		case ka == intKind && kb == uintKind:
			truth = a.(int) == int(b.(uint8))
		case ka == uintKind && kb == intKind:
			truth = int(a.(uint8)) == b.(int)
		case a != nil && b != nil && ka != kb:
			return false, fmt.Errorf("incompatible types for comparison: %T and %T", a, b)
		case a != nil && b != nil:
			return false, errors.New("non-comparable type map[string]string")
		default: // nil equals only nil
			truth = a == nil && b == nil
		}
		if truth {
			return true, nil
		}
	}
	return false, nil
}

// lt reports a < b for two ordered values of one kind, integers of
// either sign mixing as in text/template.
func lt(a, b any) (bool, error) {
	ka, kb := basicKind(a), basicKind(b)
	switch {
	case ka == invalidKind || kb == invalidKind:
		return false, errBadComparisonType
	case ka == intKind && kb == uintKind:
		return a.(int) < int(b.(uint8)), nil
	case ka == uintKind && kb == intKind:
		return int(a.(uint8)) < b.(int), nil
	case ka != kb:
		return false, fmt.Errorf("incompatible types for comparison: %T and %T", a, b)
	}
	switch a := a.(type) {
	case int:
		return a < b.(int), nil
	case uint8:
		return a < b.(uint8), nil
	case float64:
		return a < b.(float64), nil
	case string:
		return a < b.(string), nil
	}
	return false, errBadComparisonType // bool, complex
}

func ne(a, b any) (bool, error) {
	equal, err := eq(a, b)
	return !equal, err
}

func le(a, b any) (bool, error) {
	if less, err := lt(a, b); less || err != nil {
		return less, err
	}
	return eq(a, b)
}

func gt(a, b any) (bool, error) {
	lessOrEqual, err := le(a, b)
	if err != nil {
		return false, err
	}
	return !lessOrEqual, nil
}

func ge(a, b any) (bool, error) {
	less, err := lt(a, b)
	if err != nil {
		return false, err
	}
	return !less, nil
}

func compare(op func(a, b any) (bool, error)) func([]any) (any, error) {
	return func(args []any) (any, error) { return op(args[0], args[1]) }
}

// escaper makes html, js or urlquery: escape fmt.Sprint of the arguments,
// where a lone string is taken as is and nil as "<no value>"
// (text/template's evalArgs).
func escaper(escape func(string) string) func([]any) (any, error) {
	return func(args []any) (any, error) {
		if len(args) == 1 {
			if s, ok := args[0].(string); ok {
				return escape(s), nil
			}
		}
		for i, a := range args {
			if a == nil {
				args[i] = noValue
			}
		}
		return escape(fmt.Sprint(args...)), nil
	}
}

// htmlEscape is text/template's HTMLEscapeString.
var htmlEscape = strings.NewReplacer(
	"\000", "\uFFFD", `"`, "&#34;", "'", "&#39;", "&", "&amp;", "<", "&lt;", ">", "&gt;",
).Replace

var jsEscapes = map[byte]string{
	'\\': `\\`, '\'': `\'`, '"': `\"`, '<': `\u003C`, '>': `\u003E`, '&': `\u0026`, '=': `\u003D`,
}

// jsEscape is text/template's JSEscapeString: quotes, backslash and HTML
// specials escaped, control characters and unprintable runes as \uXXXX,
// invalid UTF-8 passed through byte by byte.
func jsEscape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		c := s[i]
		if c >= utf8.RuneSelf {
			r, size := utf8.DecodeRuneInString(s[i:])
			if unicode.IsPrint(r) {
				b.WriteString(s[i : i+size])
			} else {
				fmt.Fprintf(&b, `\u%04X`, r)
			}
			i += size
			continue
		}
		if e, ok := jsEscapes[c]; ok {
			b.WriteString(e)
		} else if c < ' ' {
			fmt.Fprintf(&b, `\u%04X`, c)
		} else {
			b.WriteByte(c)
		}
		i++
	}
	return b.String()
}
