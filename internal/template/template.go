// Package template turns a target's value templates ("{{.URL}}") into the
// values written for one credential version.
//
// Templates are Go text/template with a fixed set of fields. A field that
// does not exist is an error when the config is loaded, never an empty
// string written to production.
package template

import (
	"bytes"
	"errors"
	"fmt"
	"regexp"
	"strings"
	texttemplate "text/template"

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
}

// Fields lists the names a template may use, for messages and docs.
var Fields = []string{"URL", "DirectURL", "PooledURL", "User", "Password", "Host", "Port", "Database"}

// Template is one compiled value template.
type Template struct {
	text string
	t    *texttemplate.Template
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
	tpl := &Template{text: text, t: t}
	probe := Vars{URL: secret.New("u"), DirectURL: secret.New("d"), PooledURL: secret.New("p"),
		User: "u", Password: secret.New("pw"), Host: "h", Port: "5432", Database: "db"}
	if _, err := tpl.Execute(probe); err != nil {
		return nil, err
	}
	return tpl, nil
}

// Text returns the template source (secret-free by construction).
func (t *Template) Text() string { return t.text }

// Execute renders the template. Errors never include rendered text.
func (t *Template) Execute(v Vars) (secret.String, error) {
	data := map[string]string{
		"URL":       v.URL.Reveal(),
		"DirectURL": v.DirectURL.Reveal(),
		"PooledURL": v.PooledURL.Reveal(),
		"User":      v.User,
		"Password":  v.Password.Reveal(),
		"Host":      v.Host,
		"Port":      v.Port,
		"Database":  v.Database,
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
