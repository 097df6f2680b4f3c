package template_test

import (
	"encoding/base64"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/rotorhq/rotor/internal/secret"
	"github.com/rotorhq/rotor/internal/template"
)

// canary is the password in every rendering; no error may ever show it.
const canary = "CANARY-pw-7f3a9&x/y"

func vars() template.Vars {
	enc := url.QueryEscape(canary)
	return template.Vars{
		URL:        secret.New("postgresql://app_blue:" + enc + "@db.internal:5432/app?sslmode=require"),
		DirectURL:  secret.New("postgresql://app_blue:" + enc + "@db.internal:5432/app?sslmode=require&direct=1"),
		PooledURL:  secret.New("postgresql://app_blue:" + enc + "@pool.internal:6432/app?sslmode=require"),
		User:       "app_blue",
		Password:   secret.New(canary),
		Host:       "db.internal",
		Port:       "5432",
		Database:   "app",
		ReplicaURL: secret.New("postgresql://app_blue:" + enc + "@replica.internal:5432/app?sslmode=require"),
	}
}

func render1(t *testing.T, text string) string {
	t.Helper()
	tpl, err := template.Compile(text)
	require.NoError(t, err)
	require.Equal(t, text, tpl.Text())
	out, err := tpl.Execute(vars())
	require.NoError(t, err)
	return out.Reveal()
}

func TestEveryField(t *testing.T) {
	t.Parallel()
	v := vars()
	want := map[string]string{
		"URL":        v.URL.Reveal(),
		"DirectURL":  v.DirectURL.Reveal(),
		"PooledURL":  v.PooledURL.Reveal(),
		"User":       "app_blue",
		"Password":   canary,
		"Host":       "db.internal",
		"Port":       "5432",
		"Database":   "app",
		"ReplicaURL": v.ReplicaURL.Reveal(),
	}
	require.Len(t, template.Fields, len(want), "a new field needs a case here")
	for _, field := range template.Fields {
		t.Run(field, func(t *testing.T) {
			t.Parallel()
			w, ok := want[field]
			require.True(t, ok, "no expectation for .%s", field)
			require.Equal(t, w, render1(t, "{{."+field+"}}"))
		})
	}
}

func TestTemplates(t *testing.T) {
	t.Parallel()
	tests := []struct {
		text, want string
	}{
		{text: "constant", want: "constant"},
		{text: "{{.User}}@{{.Host}}:{{.Port}}/{{.Database}}", want: "app_blue@db.internal:5432/app"},
		{text: "{{ .Password }}", want: canary},
		{text: "{{.Password | urlquery}}", want: url.QueryEscape(canary)},
		{text: "{{urlquery .Password}}", want: url.QueryEscape(canary)},
		{text: `{{printf "%s?application_name=web" .PooledURL}}`, want: vars().PooledURL.Reveal() + "?application_name=web"},
		{text: "{{.User | printf \"%q\"}}", want: `"app_blue"`},
		{text: "{{.Password | len}}", want: "19"},
		{text: "{{.Password | js}}", want: `CANARY-pw-7f3a9\u0026x/y`},
		{text: "{{.Password | html}}", want: "CANARY-pw-7f3a9&amp;x/y"},
		{text: `{{if eq .Port "5432"}}default{{else}}custom{{end}}`, want: "default"},
		{text: "{{with .Database}}db={{.}}{{end}}", want: "db=app"},
		{text: "{{- .User -}}  ", want: "app_blue"},
	}
	for _, tt := range tests {
		t.Run(tt.text, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tt.want, render1(t, tt.text))
		})
	}
}

func TestCompileErrors(t *testing.T) {
	t.Parallel()
	const known = "(known: .URL, .DirectURL, .PooledURL, .User, .Password, .Host, .Port, .Database, .ReplicaURL)"
	tests := []struct {
		text, wantErr string
	}{
		{text: "", wantErr: `empty template; write e.g. "{{.URL}}"`},
		{text: "  \n\t", wantErr: "empty template"},
		{text: "{{.Passwrod}}", wantErr: "bad template: unknown field .Passwrod " + known},
		{text: "{{.url}}", wantErr: "bad template: unknown field .url " + known},
		{text: "{{.User}}:{{.Pasword}}", wantErr: "unknown field .Pasword " + known},
		{text: "{{if .Nope}}x{{end}}", wantErr: "unknown field .Nope"},
		{text: "{{.Password | urlqurey}}", wantErr: `bad template: 1: function "urlqurey" not defined`},
		{text: "{{.URL", wantErr: "bad template: 1: unclosed action"},
		{text: "{{end}}", wantErr: "bad template: 1: unexpected {{end}}"},
		{text: "{{.URL.Host}}", wantErr: "can't evaluate field Host in type string"},
		{text: `{{template "other"}}`, wantErr: `template "other" not defined`},
	}
	for _, tt := range tests {
		t.Run(tt.text, func(t *testing.T) {
			t.Parallel()
			tpl, err := template.Compile(tt.text)
			require.ErrorContains(t, err, tt.wantErr)
			require.Nil(t, tpl)
			require.NotContains(t, err.Error(), "template: value:", "the template's internal name is noise")
		})
	}
}

// TestErrorsNeverShowThePassword renders templates that fail only with the
// real values (the compile-time probe passes) and checks that no error
// carries the password in any form.
func TestErrorsNeverShowThePassword(t *testing.T) {
	t.Parallel()
	forms := []string{canary, url.QueryEscape(canary), url.PathEscape(canary), base64.StdEncoding.EncodeToString([]byte(canary)), "CANARY"}
	tests := []string{
		`{{if gt (len .Password) 5}}{{slice .Password 0 99}}{{end}}`,
		`{{if gt (len .Password) 5}}{{index .Password 99}}{{end}}`,
		`{{if gt (len .URL) 5}}{{slice .URL 3 1}}{{end}}`,
		`{{if ne .Password "pw"}}{{call .Password}}{{end}}`,
		`{{if ne .Password "pw"}}{{.Password.Field}}{{end}}`,
		`{{if ne .Password "pw"}}{{lt .Password 3}}{{end}}`,
		`{{if ne .Password "pw"}}{{index . .Password}}{{.Nope}}{{end}}`,
		`{{if ne .URL "u"}}{{template .Password}}{{end}}`,
	}
	for _, text := range tests {
		t.Run(text, func(t *testing.T) {
			t.Parallel()
			tpl, err := template.Compile(text)
			if err != nil {
				// Some forms are caught at compile time already; the
				// probe holds no real password either way.
				for _, f := range forms {
					require.NotContains(t, err.Error(), f)
				}
				return
			}
			out, err := tpl.Execute(vars())
			require.Error(t, err)
			require.True(t, out.IsZero(), "a failed render returns nothing")
			for _, f := range forms {
				require.NotContains(t, err.Error(), f)
			}
			require.True(t, strings.HasPrefix(err.Error(), "bad template: "), err.Error())
		})
	}
}

// TestErrorAfterRenderedPassword: a template that has already written the
// password and then fails returns nothing, and its error shows no value,
// where text/template's messages quote them ("range can't iterate over
// <password>", "non-function <url> of type string", an index that is a byte
// of the password).
func TestErrorAfterRenderedPassword(t *testing.T) {
	t.Parallel()
	forms := []string{canary, url.QueryEscape(canary), "CANARY", "app_blue"}
	tests := []struct{ text, wantErr string }{
		{`{{.Password}}{{.URL}}{{if ne .Password "pw"}}{{range .Password}}{{end}}{{end}}`, "range can't iterate over type string"},
		{`{{.Password}}{{if ne .Password "pw"}}{{.URL | call}}{{end}}`, "error calling call: non-function of type string"},
		{`{{.URL}}{{if ne .Password "pw"}}{{eq . .}}{{end}}`, "error calling eq: non-comparable type map[string]string"},
		{`{{.URL}}{{if ne .Password "pw"}}{{if eq . .User}}{{end}}{{end}}`, "incompatible types for comparison: map[string]string and string"},
		{`{{.Password}}{{if ne .Password "pw"}}{{index .Password (index .Password 0)}}{{end}}`, "error calling index: index out of range"},
		{`{{.Password}}{{if ne .Password "pw"}}{{slice .Password (index .Password 1)}}{{end}}`, "error calling slice: index out of range"},
		{`{{range $i, $e := len .User}}{{end}}`, "can't use int to iterate over more than one variable"},
	}
	for _, tt := range tests {
		t.Run(tt.text, func(t *testing.T) {
			t.Parallel()
			tpl, err := template.Compile(tt.text)
			if err == nil {
				var out secret.String
				out, err = tpl.Execute(vars())
				require.True(t, out.IsZero(), "a failed render returns nothing")
			}
			require.Error(t, err)
			require.True(t, strings.HasSuffix(err.Error(), tt.wantErr), err.Error())
			for _, f := range forms {
				require.NotContains(t, err.Error(), f)
			}
		})
	}
}

// TestRenderedValueIsSecret: the result is a redacting string, so printing
// it by accident shows nothing.
func TestRenderedValueIsSecret(t *testing.T) {
	t.Parallel()
	tpl, err := template.Compile("{{.URL}}")
	require.NoError(t, err)
	out, err := tpl.Execute(vars())
	require.NoError(t, err)
	require.NotContains(t, out.String(), "CANARY")
	require.Contains(t, out.Reveal(), url.QueryEscape(canary))
}

// TestExecuteIsReusable: one compiled template renders many versions,
// concurrently (targets publish in parallel).
func TestExecuteIsReusable(t *testing.T) {
	t.Parallel()
	tpl, err := template.Compile("{{.User}}:{{.Password}}")
	require.NoError(t, err)
	users := []string{"app_blue", "app_green", "app_blue"}
	type result struct {
		want, got string
		err       error
	}
	results := make(chan result, len(users))
	for _, u := range users {
		go func() {
			v := vars()
			v.User = u
			out, err := tpl.Execute(v)
			results <- result{want: u + ":" + canary, got: out.Reveal(), err: err}
		}()
	}
	for range users {
		r := <-results
		require.NoError(t, r.err)
		require.Equal(t, r.want, r.got)
	}
}

// TestReplicaURL: a template that names .ReplicaURL, in any branch, fails
// to render for a credential without a read replica, rather than write an
// empty string; others render as before.
func TestReplicaURL(t *testing.T) {
	t.Parallel()
	none := vars()
	none.ReplicaURL = secret.String{}
	tests := []struct {
		text string
		uses bool
	}{
		{"{{.ReplicaURL}}", true},
		{"{{if .User}}{{.ReplicaURL}}{{end}}", true},
		{"{{if not .User}}{{.ReplicaURL}}{{else}}{{.URL}}{{end}}", true},
		{"{{with .ReplicaURL}}{{.}}{{end}}", true},
		{"{{.ReplicaURL | urlquery}}", true},
		{"{{printf \"%s\" .ReplicaURL}}", true},
		{"{{with .User}}{{$.ReplicaURL}}{{end}}", true},
		{"{{define \"r\"}}{{.ReplicaURL}}{{end}}{{template \"r\" .}}", true},
		{"{{.URL}}", false},
		{"ReplicaURL {{.PooledURL}}", false},
	}
	for _, tt := range tests {
		t.Run(tt.text, func(t *testing.T) {
			t.Parallel()
			tpl, err := template.Compile(tt.text)
			require.NoError(t, err)
			require.Equal(t, tt.uses, tpl.Uses(template.ReplicaField))
			_, err = tpl.Execute(vars())
			require.NoError(t, err)
			out, err := tpl.Execute(none)
			if !tt.uses {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, template.ErrNoReplica)
			require.ErrorContains(t, err, "Add Read Replica")
			require.True(t, out.IsZero())
			require.NotContains(t, err.Error(), canary)
		})
	}
	require.Equal(t, vars().ReplicaURL.Reveal(), render1(t, "{{.ReplicaURL}}"))
}
