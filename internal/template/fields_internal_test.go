package template

import (
	"testing"

	"github.com/rotorhq/rotor/internal/secret"
)

// FuzzFieldsRenderAsData: a template rendered with only the fields it
// names (Execute) gives the same text, or the same error, as with every
// field (data). The seeds run in every `go test`.
func FuzzFieldsRenderAsData(f *testing.F) {
	for _, seed := range []string{
		"{{.URL}}", "{{.Password}}", "{{.Nope}}", "x{{.User}}y{{.Host}}:{{.Port}}/{{.Database}}",
		"{{.URL | urlquery}}", "{{printf \"%v\" .}}", "{{printf \"%T\" $}}", "{{.}}", "{{$}}", "{{len .}}",
		"{{index . \"Password\"}}", "{{index $ \"User\"}}", "{{range $k, $v := .}}{{$k}}={{$v}};{{end}}",
		"{{with .PooledURL}}{{.}}{{end}}", "{{$.DirectURL}}", "{{$x := .URL}}{{$x}}",
		"{{define \"a\"}}{{.Password}}{{end}}{{template \"a\" .}}", "{{define \"a\"}}{{.User}}{{end}}{{template \"a\" $}}",
		"{{define \"a\"}}[{{.}}]{{end}}{{template \"a\" .URL}}", "{{if .ReplicaURL}}{{.ReplicaURL}}{{else}}none{{end}}",
		"{{.Password.X}}", "{{range .URL}}{{end}}", "{{eq .User \"u\"}}", "{{html .Password}} {{js .User}}",
		"{{.DirectURL}}", "{{.PooledURL}}", "{{.User}}", "{{.Host}}", "{{.Port}}", "{{.Database}}", "{{.ReplicaURL}}",
		"{{- .URL -}}", " {{.URL}}", "{{.URL}}{{/* c */}}", "{{(.URL)}}", "{{.URL | print}}",
	} {
		f.Add(seed)
	}
	vars := Vars{URL: secret.New("postgresql://u:pw@h/db"), DirectURL: secret.New("postgresql://u:pw@d/db"),
		PooledURL: secret.New("postgresql://u:pw@p/db"), User: "u", Password: secret.New("p&w<\"x"), Host: "h",
		Port: "5432", Database: "db", ReplicaURL: secret.New("postgresql://u:pw@r/db")}
	f.Fuzz(func(t *testing.T, text string) {
		tpl, err := Compile(text)
		if err != nil {
			return
		}
		got, gotErr := tpl.Execute(vars)
		want, wantErr := execute(tpl.trees, data(vars))
		if (gotErr == nil) != (wantErr == nil) {
			t.Fatalf("%q: error %v with the named fields, %v with all", text, gotErr, wantErr)
		}
		if gotErr == nil && got.Reveal() != want {
			t.Fatalf("%q: %q with the named fields, %q with all", text, got.Reveal(), want)
		}
	})
}

// TestOnlyField: exactly the templates that are one {{.F}} render without
// executing; FuzzFieldsRenderAsData proves they render the same.
func TestOnlyField(t *testing.T) {
	for text, want := range map[string]string{
		"{{.URL}}": "URL", "{{.Password}}": "Password", "{{ .User }}": "User", "{{- .Host -}}": "Host",
		"{{.URL}}x": "", " {{.URL}}": "", "{{.URL | urlquery}}": "", "{{$x := .URL}}{{$x}}": "", "{{(.URL)}}": "",
		"{{.URL}}{{/* c */}}": "URL", "{{$.URL}}": "", "{{.}}": "", "{{define \"a\"}}{{.URL}}{{end}}{{template \"a\" .}}": "",
	} {
		tpl, err := Compile(text)
		if err != nil {
			t.Fatalf("%q: %v", text, err)
		}
		if tpl.only != want {
			t.Errorf("%q: only = %q, want %q", text, tpl.only, want)
		}
	}
}
