// Package template turns a target's value templates ("{{.URL}}") into the
// values written for one credential version.
//
// Templates are Go text/template with a fixed set of fields: parsed by
// text/template/parse and run by this package's executor (exec.go), which
// behaves as text/template's on this data without linking it. A field that
// does not exist is an error when the config is loaded, never an empty
// string written to production; so is a field that exists but has no
// value for the credential (.ReplicaURL without a read replica) when the
// template is rendered.
package template

import (
	"errors"
	"fmt"
	"strings"
	"text/template/parse"

	"github.com/rotorhq/rotor/internal/secret"
)

// Vars are the fields a template may use. Fields holding the password are
// secret.String; templates see them through their Reveal method only via
// the renderer, so the plaintext is produced in exactly one place.
type Vars struct {
	URL       secret.String
	DirectURL secret.String
	PooledURL secret.String
	User      string
	Password  secret.String
	Host      string
	Port      string
	Database  string
	// ReplicaURL is a read replica's connection string (Neon: the
	// branch's read_only endpoint); zero when the credential has none.
	ReplicaURL secret.String
}

// Fields lists the names a template may use, for messages and docs.
var Fields = []string{"URL", "DirectURL", "PooledURL", "User", "Password", "Host", "Port", "Database", "ReplicaURL"}

// ReplicaField is the field only some credentials can fill.
const ReplicaField = "ReplicaURL"

// Template is one compiled value template.
type Template struct {
	text  string
	trees map[string]*parse.Tree // by name: mainName and each {{define}}
	uses  map[string]bool
	// whole says the template uses the dot or $ as a value ({{.}},
	// {{printf "%v" .}}, {{template "x" .}}), not only fields of it:
	// then every field is revealed for a rendering, else only those it
	// names.
	whole bool
	// only is the field a template that is nothing but {{.F}} names: it
	// renders as that field's value, with nothing to execute.
	only string
}

// probe fills every field, so that Compile can prove a template renders.
var probe = Vars{URL: secret.New("u"), DirectURL: secret.New("d"), PooledURL: secret.New("p"),
	User: "u", Password: secret.New("pw"), Host: "h", Port: "5432", Database: "db", ReplicaURL: secret.New("r")}

// Compile parses a template and proves it renders with every field set.
func Compile(text string) (*Template, error) {
	if strings.TrimSpace(text) == "" {
		return nil, errors.New("empty template; write e.g. \"{{.URL}}\"")
	}
	trees, err := parseText(text)
	if err != nil {
		return nil, err
	}
	tpl := &Template{text: text, trees: trees, uses: map[string]bool{}}
	for _, tree := range trees {
		collectFields(tree.Root, tpl.uses)
		tpl.whole = tpl.whole || usesWhole(tree.Root)
	}
	if _, err := tpl.Execute(probe); err != nil {
		return nil, err
	}
	tpl.only = onlyField(trees)
	return tpl, nil
}

// onlyField is the field F of a template that is exactly one {{.F}}, and
// "" for any other: most values are "{{.URL}}", and rendering one is then
// a copy of the field, no revealed copy of the secret, no data and no
// output buffer. The probe has proven F is a field.
func onlyField(trees map[string]*parse.Tree) string {
	tree := trees[mainName]
	if len(trees) != 1 || tree == nil || tree.Root == nil || len(tree.Root.Nodes) != 1 {
		return ""
	}
	a, ok := tree.Root.Nodes[0].(*parse.ActionNode)
	if !ok || a.Pipe == nil || len(a.Pipe.Decl) > 0 || len(a.Pipe.Cmds) != 1 || len(a.Pipe.Cmds[0].Args) != 1 {
		return ""
	}
	f, ok := a.Pipe.Cmds[0].Args[0].(*parse.FieldNode)
	if !ok || len(f.Ident) != 1 {
		return ""
	}
	return f.Ident[0]
}

// parseText parses as text/template's Parse does: the builtin functions
// declared, so an unknown one is an error here, and the template named
// mainName.
func parseText(text string) (map[string]*parse.Tree, error) {
	trees, err := parse.Parse(mainName, text, "", "", parseFuncs)
	if err != nil {
		// "template: value:1: ..." names nothing the user wrote.
		msg := strings.TrimPrefix(err.Error(), "template: ")
		return nil, fmt.Errorf("bad template: %s", strings.TrimPrefix(msg, mainName+":"))
	}
	return trees, nil
}

// Text returns the template source (secret-free by construction).
func (t *Template) Text() string { return t.text }

// Uses reports whether the template names field (e.g. ReplicaField)
// anywhere, in a branch taken or not.
func (t *Template) Uses(field string) bool { return t.uses[field] }

// collectFields records the first name of every field reference (.X,
// .X.Y, $.X) under n.
func collectFields(n parse.Node, into map[string]bool) {
	visit(n, func(n parse.Node) {
		switch n := n.(type) {
		case *parse.FieldNode:
			if len(n.Ident) > 0 {
				into[n.Ident[0]] = true
			}
		case *parse.VariableNode:
			// $.X is the root's field X wherever the dot has moved.
			if len(n.Ident) > 1 && n.Ident[0] == "$" {
				into[n.Ident[1]] = true
			}
		}
	})
}

// usesWhole reports whether n uses the dot or $ itself anywhere.
func usesWhole(n parse.Node) bool {
	whole := false
	visit(n, func(n parse.Node) {
		switch n := n.(type) {
		case *parse.DotNode:
			whole = true
		case *parse.VariableNode:
			whole = whole || len(n.Ident) == 1
		}
	})
	return whole
}

// visit calls f for n and every node below it, parents first. A missing
// list or pipeline (an absent else, a {{template}} without data) is
// skipped.
func visit(n parse.Node, f func(parse.Node)) {
	switch n := n.(type) {
	case *parse.ListNode:
		if n == nil {
			return
		}
		f(n)
		for _, c := range n.Nodes {
			visit(c, f)
		}
	case *parse.PipeNode:
		if n == nil {
			return
		}
		f(n)
		for _, c := range n.Cmds {
			visit(c, f)
		}
	case *parse.ActionNode:
		f(n)
		visit(n.Pipe, f)
	case *parse.CommandNode:
		f(n)
		for _, a := range n.Args {
			visit(a, f)
		}
	case *parse.ChainNode:
		f(n)
		visit(n.Node, f)
	case *parse.IfNode:
		f(n)
		visitBranch(&n.BranchNode, f)
	case *parse.RangeNode:
		f(n)
		visitBranch(&n.BranchNode, f)
	case *parse.WithNode:
		f(n)
		visitBranch(&n.BranchNode, f)
	case *parse.TemplateNode:
		f(n)
		visit(n.Pipe, f)
	default:
		f(n)
	}
}

func visitBranch(b *parse.BranchNode, f func(parse.Node)) {
	visit(b.Pipe, f)
	visit(b.List, f)
	visit(b.ElseList, f)
}

// ErrNoReplica: the template uses .ReplicaURL and the credential has no
// read replica.
var ErrNoReplica = errors.New("the template uses .ReplicaURL, but the credential has no read replica")

// Execute renders the template. Errors never include rendered text.
func (t *Template) Execute(v Vars) (secret.String, error) {
	if t.uses[ReplicaField] && v.ReplicaURL.IsZero() {
		return secret.String{}, fmt.Errorf("%w (for Neon: no read_only compute endpoint on the branch); add a read replica (Neon console: Branches → Add Read Replica) or remove {{.ReplicaURL}} from this value", ErrNoReplica)
	}
	if t.only != "" {
		if out, ok := secretField(v, t.only); ok {
			return out, nil
		}
	}
	var d map[string]string
	if t.whole {
		d = data(v)
	} else {
		d = t.fields(v)
	}
	out, err := execute(t.trees, d)
	if err != nil {
		return secret.String{}, fmt.Errorf("bad template: %w", err)
	}
	return secret.New(out), nil
}

// fields is data with only the fields the template names: each other
// field would be one more copy of a secret revealed for nothing (a
// 1,000-credential config renders every value with several sample
// passwords at load). A template that uses no more of the dot than the
// fields it names renders the same with either.
func (t *Template) fields(v Vars) map[string]string {
	d := make(map[string]string, len(t.uses))
	for f := range t.uses {
		if x, ok := field(v, f); ok {
			d[f] = x
		}
	}
	return d
}

// data is the dot and $ of a rendering. Its type is what text/template
// saw before, so %T and %v print alike.
func data(v Vars) map[string]string {
	d := make(map[string]string, len(Fields))
	for _, f := range Fields {
		d[f], _ = field(v, f)
	}
	return d
}

// secretField is v's field named f as a secret, without revealing it
// when it is one, and false for a name that is no field.
func secretField(v Vars, f string) (secret.String, bool) {
	if s, ok := secretOf(v, f); ok {
		return s, true
	}
	x, ok := plainOf(v, f)
	return secret.New(x), ok
}

// field is v's field named f, revealed, and false for a name that is no
// field.
func field(v Vars, f string) (string, bool) {
	if s, ok := secretOf(v, f); ok {
		return s.Reveal(), true
	}
	return plainOf(v, f)
}

// secretOf is v's field named f when it holds the password.
func secretOf(v Vars, f string) (secret.String, bool) {
	switch f {
	case "URL":
		return v.URL, true
	case "DirectURL":
		return v.DirectURL, true
	case "PooledURL":
		return v.PooledURL, true
	case "Password":
		return v.Password, true
	case "ReplicaURL":
		return v.ReplicaURL, true
	}
	return secret.String{}, false
}

// plainOf is v's field named f when it holds no secret.
func plainOf(v Vars, f string) (string, bool) {
	switch f {
	case "User":
		return v.User, true
	case "Host":
		return v.Host, true
	case "Port":
		return v.Port, true
	case "Database":
		return v.Database, true
	}
	return "", false
}
