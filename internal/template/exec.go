package template

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"text/template/parse"
)

// This file executes parse trees the way text/template's exec.go does,
// for the only data rotor passes: a map of field name to string. It
// exists because text/template's executor calls reflect.Value.MethodByName,
// which turns off the linker's dead-method elimination for the whole
// binary. Comments name the text/template function each piece mirrors.
//
// Values are nil, string, bool, int, uint8 (a byte of an indexed string),
// float64, complex128 and map[string]string (the data): the dynamic types
// text/template holds for such data, so fmt prints them identically
// (%T included).
//
// Error messages follow text/template's but never quote a value, only
// types and template source: values are rendered text, and rendered text
// holds passwords.

// mainName is the name text/template gave the template; parse errors and
// locations start with it, and messages drop it.
const mainName = "value"

// maxExecDepth is text/template's limit on nested {{template}} calls, so
// that runaway recursion fails the same way instead of overflowing.
const maxExecDepth = 100000

// noValue is how text/template prints a nil (printValue, evalArgs).
const noValue = "<no value>"

// missingValue marks "nothing piped in" where a pipeline stage's previous
// value would go (text/template's missingVal).
type missingValue struct{}

var missing any = missingValue{}

// errBreak and errContinue unwind to the enclosing range, as text/template's
// walkBreak and walkContinue panics do.
var (
	errBreak    = errors.New("break")
	errContinue = errors.New("continue")
)

type variable struct {
	name  string
	value any
}

// state is one execution of one tree; a {{template}} call runs in a new
// state sharing the output.
type state struct {
	trees map[string]*parse.Tree
	tree  *parse.Tree // executing, for error locations
	out   *strings.Builder
	vars  []variable // push-down stack; $ at the bottom
	depth int
}

// execute renders the main tree of trees with data as dot and $.
func execute(trees map[string]*parse.Tree, data map[string]string) (string, error) {
	s := &state{trees: trees, tree: trees[mainName], out: new(strings.Builder), vars: []variable{{"$", data}}}
	if s.tree == nil || s.tree.Root == nil {
		return "", fmt.Errorf("%q is an incomplete or empty template", mainName)
	}
	if err := s.walk(data, s.tree.Root); err != nil {
		return "", err
	}
	return s.out.String(), nil
}

// errorf reports a failure at node n as text/template's state.errorf does,
// with the template's name dropped from the location.
func (s *state) errorf(n parse.Node, format string, args ...any) error {
	location, context := s.tree.ErrorContext(n)
	location = strings.TrimPrefix(location, mainName+":")
	return fmt.Errorf("%s: executing %q at <%s>: %s", location, s.tree.Name, context, fmt.Sprintf(format, args...))
}

// unknownField is text/template's "map has no entry for key" under
// missingkey=error, said in rotor's words.
func unknownField(name string) error {
	return fmt.Errorf("unknown field .%s (known: .%s)", name, strings.Join(Fields, ", ."))
}

func (s *state) mark() int               { return len(s.vars) }
func (s *state) pop(mark int)            { s.vars = s.vars[:mark] }
func (s *state) push(name string, v any) { s.vars = append(s.vars, variable{name, v}) }

// lookup finds the innermost variable called name. The parser has
// checked every use against the scopes, so failing here is a bug.
func (s *state) lookup(n parse.Node, name string) (*variable, error) {
	for i := len(s.vars) - 1; i >= 0; i-- {
		if s.vars[i].name == name {
			return &s.vars[i], nil
		}
	}
	return nil, s.errorf(n, "undefined variable: %s", name)
}

// setVar is an assignment, $x = v.
func (s *state) setVar(n parse.Node, name string, v any) error {
	x, err := s.lookup(n, name)
	if err == nil {
		x.value = v
	}
	return err
}

// walk mirrors text/template's state.walk.
func (s *state) walk(dot any, node parse.Node) error {
	switch n := node.(type) {
	case *parse.ActionNode:
		// Variables declared here live until the enclosing {{end}}, and
		// a declaration prints nothing.
		v, err := s.evalPipeline(dot, n.Pipe)
		if err == nil && len(n.Pipe.Decl) == 0 {
			s.out.WriteString(printString(v))
		}
		return err
	case *parse.BreakNode:
		return errBreak
	case *parse.ContinueNode:
		return errContinue
	case *parse.CommentNode:
		return nil
	case *parse.IfNode:
		return s.walkIfOrWith(dot, &n.BranchNode, false)
	case *parse.WithNode:
		return s.walkIfOrWith(dot, &n.BranchNode, true)
	case *parse.ListNode:
		for _, c := range n.Nodes {
			if err := s.walk(dot, c); err != nil {
				return err
			}
		}
		return nil
	case *parse.RangeNode:
		return s.walkRange(dot, n)
	case *parse.TemplateNode:
		return s.walkTemplate(dot, n)
	case *parse.TextNode:
		s.out.Write(n.Text)
		return nil
	}
	return s.errorf(node, "unknown node: %s", node)
}

// printString is text/template's printValue: fmt's rendering, and
// "<no value>" for nil.
func printString(v any) string {
	if v == nil {
		return noValue
	}
	return fmt.Sprint(v)
}

// walkIfOrWith: the two differ only in that with sets dot.
func (s *state) walkIfOrWith(dot any, b *parse.BranchNode, with bool) error {
	defer s.pop(s.mark())
	v, err := s.evalPipeline(dot, b.Pipe)
	switch {
	case err != nil:
		return err
	case isTrue(v) && with:
		return s.walk(v, b.List)
	case isTrue(v):
		return s.walk(dot, b.List)
	case b.ElseList != nil:
		return s.walk(dot, b.ElseList)
	}
	return nil
}

// isTrue is text/template's isTrue: not the zero value of its type. Every
// value here has a truth value, so "if/with can't use" cannot happen.
func isTrue(v any) bool {
	switch v := v.(type) {
	case string:
		return v != ""
	case bool:
		return v
	case int:
		return v != 0
	case uint8:
		return v != 0
	case float64:
		return v != 0
	case complex128:
		return v != 0
	case map[string]string:
		return len(v) > 0
	}
	return false
}

// walkRange mirrors text/template's: integers count from 0 (Go 1.22), the
// map yields its values in key order, nil is empty, all else is an error.
func (s *state) walkRange(dot any, r *parse.RangeNode) error {
	defer s.pop(s.mark())
	v, err := s.evalPipeline(dot, r.Pipe)
	if err != nil {
		return err
	}
	ran := false
	err = s.rangeOver(r, v, func(key, elem any) error {
		ran = true
		return s.rangeIteration(r, key, elem)
	})
	if err == nil && !ran && r.ElseList != nil {
		err = s.walk(dot, r.ElseList)
	}
	if errors.Is(err, errBreak) {
		// text/template recovers a break anywhere under the range node,
		// even one in its else branch that belongs to an outer range.
		return nil
	}
	return err
}

// rangeOver calls body for each (key, elem) of v, stopping at an error.
func (s *state) rangeOver(r *parse.RangeNode, v any, body func(key, elem any) error) error {
	switch v := v.(type) {
	case int:
		return rangeInt(s, r, v, body)
	case uint8:
		return rangeInt(s, r, v, body)
	case map[string]string:
		for _, k := range slices.Sorted(maps.Keys(v)) {
			if err := body(k, v[k]); err != nil {
				return err
			}
		}
		return nil
	case nil:
		return nil // text/template: like an empty map
	}
	return s.errorf(r.Pipe, "range can't iterate over type %T", v)
}

// rangeInt passes no key, as text/template does for integers.
func rangeInt[T int | uint8](s *state, r *parse.RangeNode, n T, body func(key, elem any) error) error {
	if len(r.Pipe.Decl) > 1 {
		return s.errorf(r.Pipe, "can't use %T to iterate over more than one variable", n)
	}
	for i := T(0); i < n; i++ {
		if err := body(nil, i); err != nil {
			return err
		}
	}
	return nil
}

// rangeIteration is text/template's oneIteration: set the range
// variables, run the body, drop what the body declared.
func (s *state) rangeIteration(r *parse.RangeNode, key, elem any) error {
	mark := s.mark()
	defer s.pop(mark)
	decl := r.Pipe.Decl
	switch {
	case len(decl) == 0:
	case r.Pipe.IsAssign && len(decl) > 1:
		if err := s.setVar(r, decl[0].Ident[0], key); err != nil {
			return err
		}
		if err := s.setVar(r, decl[1].Ident[0], elem); err != nil {
			return err
		}
	case r.Pipe.IsAssign:
		if err := s.setVar(r, decl[0].Ident[0], elem); err != nil {
			return err
		}
	case len(decl) > 1:
		// Declared on top of the stack by evalPipeline: key below elem.
		s.vars[mark-2].value, s.vars[mark-1].value = key, elem
	default:
		s.vars[mark-1].value = elem
	}
	if err := s.walk(elem, r.List); !errors.Is(err, errContinue) {
		return err
	}
	return nil
}

// walkTemplate runs a {{template}} call: the callee sees only $, set to
// the pipeline's value; variables the pipeline declares stay with the
// caller.
func (s *state) walkTemplate(dot any, t *parse.TemplateNode) error {
	tree := s.trees[t.Name]
	if tree == nil {
		return s.errorf(t, "template %q not defined", t.Name)
	}
	if s.depth == maxExecDepth {
		return s.errorf(t, "exceeded maximum template depth (%v)", maxExecDepth)
	}
	dot, err := s.evalPipeline(dot, t.Pipe)
	if err != nil {
		return err
	}
	callee := &state{trees: s.trees, tree: tree, out: s.out, vars: []variable{{"$", dot}}, depth: s.depth + 1}
	return callee.walk(dot, tree.Root)
}

// evalPipeline feeds each command's value to the next as its final
// argument, then declares or assigns the pipeline's variables.
func (s *state) evalPipeline(dot any, pipe *parse.PipeNode) (any, error) {
	if pipe == nil {
		return nil, nil
	}
	v := missing
	for _, cmd := range pipe.Cmds {
		var err error
		if v, err = s.evalCommand(dot, cmd, v); err != nil {
			return nil, err
		}
	}
	for _, d := range pipe.Decl {
		if !pipe.IsAssign {
			s.push(d.Ident[0], v)
		} else if err := s.setVar(d, d.Ident[0], v); err != nil {
			return nil, err
		}
	}
	return v, nil
}

func (s *state) evalCommand(dot any, cmd *parse.CommandNode, final any) (any, error) {
	switch n := cmd.Args[0].(type) {
	case *parse.FieldNode:
		return s.evalFields(n, dot, n.Ident, cmd.Args, final)
	case *parse.ChainNode:
		return s.evalChain(dot, n, cmd.Args, final)
	case *parse.IdentifierNode:
		return s.evalFunction(dot, n, cmd, cmd.Args, final)
	case *parse.VariableNode:
		return s.evalVariable(n, cmd.Args, final)
	case *parse.NilNode:
		return nil, s.errorf(n, "nil is not a command")
	}
	if err := s.notAFunction(cmd.Args[0], cmd.Args, final); err != nil {
		return nil, err
	}
	return s.evalArg(dot, cmd.Args[0])
}

// notAFunction: only functions take arguments; args[0], if any, is n.
func (s *state) notAFunction(n parse.Node, args []parse.Node, final any) error {
	if len(args) > 1 || final != missing {
		return s.errorf(n, "can't give argument to non-function %s", n)
	}
	return nil
}

// evalArg evaluates an operand where any value will do (text/template's
// evalArg for an interface or reflect.Value parameter).
func (s *state) evalArg(dot any, n parse.Node) (any, error) {
	switch n := n.(type) {
	case *parse.DotNode:
		return dot, nil
	case *parse.NilNode:
		return nil, nil
	case *parse.BoolNode:
		return n.True, nil
	case *parse.StringNode:
		return n.Text, nil
	case *parse.NumberNode:
		return s.idealConstant(n)
	case *parse.FieldNode:
		return s.evalFields(n, dot, n.Ident, nil, missing)
	case *parse.ChainNode:
		return s.evalChain(dot, n, nil, missing)
	case *parse.IdentifierNode:
		return s.evalFunction(dot, n, n, nil, missing)
	case *parse.VariableNode:
		return s.evalVariable(n, nil, missing)
	case *parse.PipeNode:
		return s.evalPipeline(dot, n)
	}
	return nil, s.errorf(n, "can't handle %s", n)
}

// evalStringArg evaluates printf's format: a string literal, or an
// operand whose value is a string (evalArg, validateType for string).
func (s *state) evalStringArg(dot any, n parse.Node) (any, error) {
	switch n.(type) {
	case *parse.NilNode, *parse.BoolNode, *parse.NumberNode:
		return nil, s.errorf(n, "expected string; found %s", n)
	}
	v, err := s.evalArg(dot, n)
	if err == nil {
		err = s.wantString(n, v)
	}
	if err != nil {
		return nil, err
	}
	return v, nil
}

func (s *state) wantString(n parse.Node, v any) error {
	if _, ok := v.(string); !ok {
		return s.errorf(n, "wrong type for value; expected string; got %T", v)
	}
	return nil
}

// idealConstant types a number literal as Go would an untyped constant
// (text/template's idealConstant, quirks included: 1e3 is a float, 'a'
// and 0x10 are ints).
func (s *state) idealConstant(n *parse.NumberNode) (any, error) {
	switch {
	case n.IsComplex:
		return n.Complex128, nil
	case n.IsFloat && !isHexInt(n.Text) && !isRuneInt(n.Text) && strings.ContainsAny(n.Text, ".eEpP"):
		return n.Float64, nil
	case n.IsInt && int64(int(n.Int64)) == n.Int64:
		return int(n.Int64), nil
	case n.IsInt || n.IsUint:
		return nil, s.errorf(n, "%s overflows int", n.Text)
	}
	return nil, nil
}

func isRuneInt(s string) bool { return len(s) > 0 && s[0] == '\'' }

func isHexInt(s string) bool {
	return len(s) > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X') && !strings.ContainsAny(s, "pP")
}

func (s *state) evalChain(dot any, n *parse.ChainNode, args []parse.Node, final any) (any, error) {
	if _, ok := n.Node.(*parse.NilNode); ok {
		return nil, s.errorf(n, "indirection through explicit nil in %s", n)
	}
	receiver, err := s.evalArg(dot, n.Node)
	if err != nil {
		return nil, err
	}
	return s.evalFields(n, receiver, n.Field, args, final)
}

func (s *state) evalVariable(n *parse.VariableNode, args []parse.Node, final any) (any, error) {
	x, err := s.lookup(n, n.Ident[0])
	if err != nil {
		return nil, err
	}
	if len(n.Ident) > 1 {
		return s.evalFields(n, x.value, n.Ident[1:], args, final)
	}
	if err := s.notAFunction(n, args, final); err != nil {
		return nil, err
	}
	return x.value, nil
}

// evalFields walks .X.Y from receiver. Only the data map has fields, and
// nothing has methods, so arguments are always an error
// (text/template's evalFieldChain and evalField).
func (s *state) evalFields(n parse.Node, receiver any, ident []string, args []parse.Node, final any) (any, error) {
	for i, name := range ident {
		m, ok := receiver.(map[string]string)
		switch {
		case receiver == nil:
			return nil, s.errorf(n, "nil data; no entry for key %q", name)
		case !ok:
			return nil, s.errorf(n, "can't evaluate field %s in type %T", name, receiver)
		case i == len(ident)-1 && (len(args) > 1 || final != missing):
			return nil, s.errorf(n, "%s is not a method but has arguments", name)
		}
		if receiver, ok = m[name]; !ok {
			return nil, unknownField(name)
		}
	}
	return receiver, nil
}
