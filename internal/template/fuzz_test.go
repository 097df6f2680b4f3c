package template_test

import (
	"strings"
	"testing"

	"github.com/rotorhq/rotor/internal/secret"
	"github.com/rotorhq/rotor/internal/template"
)

// FuzzCompile: any template text either fails to compile or renders; it
// never panics, and no error ever contains the password it was rendering.
func FuzzCompile(f *testing.F) {
	for _, seed := range []string{"{{.URL}}", "{{.Password}}", "{{.Nope}}", "{{", "x{{.User}}y", "{{.URL | urlquery}}", "{{template \"x\"}}", "{{.Password.X}}", "{{range .URL}}{{end}}"} {
		f.Add(seed)
	}
	const canary = "fuzz-canary-pw-9c2d"
	vars := template.Vars{URL: secret.New("postgresql://u:" + canary + "@h/db"), DirectURL: secret.New("d"), PooledURL: secret.New("p"),
		User: "u", Password: secret.New(canary), Host: "h", Port: "5432", Database: "db", ReplicaURL: secret.New("postgresql://u:" + canary + "@r/db")}
	f.Fuzz(func(t *testing.T, text string) {
		tpl, err := template.Compile(text)
		if err != nil {
			if strings.Contains(err.Error(), canary) {
				t.Fatal("compile error holds the password")
			}
			return
		}
		if _, err := tpl.Execute(vars); err != nil && strings.Contains(err.Error(), canary) {
			t.Fatal("render error holds the password")
		}
	})
}
