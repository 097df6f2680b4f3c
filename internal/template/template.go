// Package template turns a target's value templates ("{{.URL}}") into the
// values written for one credential version.
//
// Templates are Go text/template with a fixed set of fields. A field that
// does not exist is an error when the config is loaded, never an empty
// string written to production; so is a field that exists but has no
// value for the credential (.ReplicaURL without a read replica) when the
// template is rendered.
package template

import (
	"bytes"
	"errors"
	"fmt"
	"regexp"
	"strings"
	texttemplate "text/template"
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
	text string
	t    *texttemplate.Template
	uses map[string]bool
}

// Compile parses a template and proves it renders with every field set.
func Compile(text string) (*Template, error) {
	if strings.TrimSpace(text) == "" {
		return nil, errors.New("empty template; write e.g. \"{{.URL}}\"")
	}
	t, err := texttemplate.New("value").Option("missingkey=error").Parse(text)
	if err != nil {
		return nil, fmt.Errorf("bad template: %s", cleanTemplateError(err))
	}
	tpl := &Template{text: text, t: t, uses: map[string]bool{}}
	for _, tree := range t.Templates() {
		if tree.Tree != nil {
			collectFields(tree.Tree.Root, tpl.uses)
		}
	}
	probe := Vars{URL: secret.New("u"), DirectURL: secret.New("d"), PooledURL: secret.New("p"),
		User: "u", Password: secret.New("pw"), Host: "h", Port: "5432", Database: "db", ReplicaURL: secret.New("r")}
	if _, err := tpl.Execute(probe); err != nil {
		return nil, err
	}
	return tpl, nil
}

// Text returns the template source (secret-free by construction).
func (t *Template) Text() string { return t.text }

// Uses reports whether the template names field (e.g. ReplicaField)
// anywhere, in a branch taken or not.
func (t *Template) Uses(field string) bool { return t.uses[field] }

// collectFields records the first name of every field reference (.X,
// .X.Y) under n.
func collectFields(n parse.Node, into map[string]bool) {
	switch n := n.(type) {
	case *parse.ListNode:
		if n == nil {
			return
		}
		for _, c := range n.Nodes {
			collectFields(c, into)
		}
	case *parse.ActionNode:
		collectFields(n.Pipe, into)
	case *parse.PipeNode:
		if n == nil {
			return
		}
		for _, c := range n.Cmds {
			collectFields(c, into)
		}
	case *parse.CommandNode:
		for _, a := range n.Args {
			collectFields(a, into)
		}
	case *parse.FieldNode:
		if len(n.Ident) > 0 {
			into[n.Ident[0]] = true
		}
	case *parse.ChainNode:
		collectFields(n.Node, into)
	case *parse.IfNode:
		collectBranch(&n.BranchNode, into)
	case *parse.RangeNode:
		collectBranch(&n.BranchNode, into)
	case *parse.WithNode:
		collectBranch(&n.BranchNode, into)
	case *parse.TemplateNode:
		collectFields(n.Pipe, into)
	}
}

func collectBranch(b *parse.BranchNode, into map[string]bool) {
	collectFields(b.Pipe, into)
	collectFields(b.List, into)
	if b.ElseList != nil {
		collectFields(b.ElseList, into)
	}
}

// ErrNoReplica: the template uses .ReplicaURL and the credential has no
// read replica.
var ErrNoReplica = errors.New("the template uses .ReplicaURL, but the credential has no read replica")

// Execute renders the template. Errors never include rendered text.
func (t *Template) Execute(v Vars) (secret.String, error) {
	if t.uses[ReplicaField] && v.ReplicaURL.IsZero() {
		return secret.String{}, fmt.Errorf("%w (for Neon: no read_only compute endpoint on the branch); add a read replica (Neon console: Branches → Add Read Replica) or remove {{.ReplicaURL}} from this value", ErrNoReplica)
	}
	data := map[string]string{
		"URL":        v.URL.Reveal(),
		"DirectURL":  v.DirectURL.Reveal(),
		"PooledURL":  v.PooledURL.Reveal(),
		"User":       v.User,
		"Password":   v.Password.Reveal(),
		"Host":       v.Host,
		"Port":       v.Port,
		"Database":   v.Database,
		"ReplicaURL": v.ReplicaURL.Reveal(),
	}
	var buf bytes.Buffer
	if err := t.t.Execute(&buf, data); err != nil {
		return secret.String{}, fmt.Errorf("bad template: %s", cleanTemplateError(err))
	}
	return secret.New(buf.String()), nil
}

var mapKeyRE = regexp.MustCompile(`map has no entry for key "([^"]*)"`)

// cleanTemplateError rewrites text/template's messages into ones that name
// the unknown field and list the known ones.
func cleanTemplateError(err error) string {
	s := err.Error()
	if m := mapKeyRE.FindStringSubmatch(s); m != nil {
		return fmt.Sprintf("unknown field .%s (known: .%s)", m[1], strings.Join(Fields, ", ."))
	}
	s = strings.TrimPrefix(s, "template: ")
	s = strings.TrimPrefix(s, "value:")
	return s
}
