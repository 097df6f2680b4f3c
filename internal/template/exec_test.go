package template

import (
	"net/url"
	"strings"
	"testing"
	texttemplate "text/template"
	"text/template/parse"

	"github.com/rotorhq/rotor/internal/secret"
)

// These tests hold the executor to text/template's behaviour: the same
// text on the same data must render the same bytes, and fail where
// text/template fails.

const diffCanary = "diff-canary-pw-4e1b"

func diffVars(password string) Vars {
	enc := url.QueryEscape(diffCanary)
	return Vars{
		URL:        secret.New("postgresql://app_blue:" + enc + "@db.internal:5432/app?sslmode=require"),
		DirectURL:  secret.New("postgresql://app_blue:" + enc + "@db.internal:5432/app"),
		PooledURL:  secret.New("postgresql://app_blue:" + enc + "@pool.internal:6432/app"),
		User:       "app_blue",
		Password:   secret.New(password),
		Host:       "db.internal",
		Port:       "5432",
		Database:   "app",
		ReplicaURL: secret.New("postgresql://app_blue:" + enc + "@replica.internal:5432/app"),
	}
}

// sameAsTextTemplate parses and runs text with both engines on d and
// fails the test where they differ.
func sameAsTextTemplate(t *testing.T, text string, d map[string]string) {
	t.Helper()
	ref, refErr := texttemplate.New(mainName).Option("missingkey=error").Parse(text)
	trees, err := parseText(text)
	if (refErr == nil) != (err == nil) {
		t.Fatalf("parse %q: text/template: %v; ours: %v", text, refErr, err)
	}
	if err != nil {
		return
	}
	var want strings.Builder
	refErr = ref.Execute(&want, d)
	got, err := execute(trees, d)
	switch {
	case refErr != nil && err == nil:
		t.Fatalf("execute %q: text/template fails (%v); ours renders %q", text, refErr, got)
	case refErr == nil && err != nil:
		t.Fatalf("execute %q: text/template renders %q; ours fails: %v", text, want.String(), err)
	case err == nil && got != want.String():
		t.Fatalf("execute %q:\ntext/template: %q\nours:          %q", text, want.String(), got)
	}
}

// diffTexts are value templates as users write them, and the corners of
// text/template they lean on.
var diffTexts = []string{
	// Fields, pipelines, escapers.
	"{{.URL}}",
	"postgresql://{{.User}}:{{.Password | urlquery}}@{{.Host}}:{{.Port}}/{{.Database}}",
	"postgresql://{{.User}}:{{urlquery .Password}}@{{.Host}}/{{.Database}}?sslmode=require",
	`{{printf "%s?application_name=%s" .PooledURL "web"}}`,
	`{{.User | printf "%q"}}`,
	`{{printf "%v|%T|%d|%x" .Port .Port 42 .User}}`,
	`{{printf "%T %T %T %T %T %T" . 1 1.5 1i true (index .User 0)}}`,
	`{{printf "%d"}}{{printf "%s" 1}}{{printf "%s %s" nil}}`,
	`{{printf}}`, `{{printf 1}}`, `{{printf nil}}`, `{{printf .}}`, `{{.URL | printf}}`, `{{1 | printf}}`,
	`{{print 1 2 "a" "b" 3 nil}}|{{println .User 1}}|{{print}}`,
	"{{.Password | html}}|{{.Password | js}}|{{html}}|{{js 1 nil}}|{{urlquery nil}}|{{html . }}",
	`{{js "<a href='x'>\u2028\x01\u00e9\ufffd</a>=\\"}}{{html "\x00<&'\">"}}`,
	`{{.}}`, `{{$}}`, `{{print .}}`, `{{printf "%#v" .}}`,
	`{{.URL.Host}}`, `{{.Nope}}`, `{{$.Nope}}`, `{{.URL 1}}`, `{{"x" | .URL}}`, `{{. 1}}`, `{{"a" "b"}}`,
	`{{(.URL)}}`, `{{(.).User}}`, `{{(print .User).X}}`, `{{print.User}}`,
	// Conditionals.
	`{{if .ReplicaURL}}{{.ReplicaURL}}{{else}}{{.URL}}{{end}}`,
	`{{with .ReplicaURL}}{{.}}{{else with .PooledURL}}pooled={{.}}{{else}}{{.URL}}{{end}}`,
	`{{if eq .Port "5432"}}default{{else if eq .Port "6432"}}pgbouncer{{else}}custom{{end}}`,
	`{{if and .User .Password (not .ReplicaURL)}}a{{else if or "" 0 nil}}b{{else}}c{{end}}`,
	`{{and 1 0 2}}|{{and 1 2}}|{{or 0 "" 3}}|{{or 0 ""}}|{{and nil 1}}|{{or nil}}|{{.User | and 0}}|{{0 | or 1}}|{{"" | or 0}}`,
	`{{and 0 (call 1)}}{{or 1 .Nope}}`, `{{and 1 .Nope}}`, `{{and}}`, `{{or 0 .Nope}}`,
	`{{not 0}}{{not .}}{{not nil}}`, `{{not 1 2}}`,
	`{{if .}}map{{end}}{{if 0.0}}f{{end}}{{if 0i}}c{{end}}{{if 1i}}C{{end}}{{with $x := 0}}{{else}}{{$x}}{{end}}`,
	// Comparisons.
	`{{eq 1 1}}{{eq 1 2 1}}{{eq 1 1 "x"}}{{eq .User "app_blue"}}{{eq 1.5 1.5}}{{eq 1i 1i}}{{eq true true}}`,
	`{{eq nil nil}}{{eq . nil}}{{eq nil 1}}{{ne 1 2}}{{ne "a" "a"}}`,
	`{{eq 1 "1"}}`, `{{eq . .}}`, `{{eq . "x"}}`, `{{eq 1}}`, `{{eq 1 2 "x"}}`, `{{lt nil 1}}`, `{{lt . .}}`,
	`{{lt 1 2}}{{le 2 2}}{{gt 3 2}}{{ge 2 3}}{{lt "a" "b"}}{{lt 1.5 2.5}}{{gt .Port "1000"}}`,
	`{{lt true false}}`, `{{lt 1i 2i}}`, `{{lt 1 1.5}}`, `{{le 1 "x"}}`, `{{ge 1}}`,
	`{{eq (index .User 0) 97}}{{lt (index .User 0) 98}}{{lt 96 (index .User 0)}}{{lt -1 (index .User 0)}}{{eq -1 (index .User 0)}}{{ge (index .User 0) 97}}`,
	// len, index, slice.
	`{{len .Password}}|{{.URL | len}}|{{len .}}`, `{{len 1}}`, `{{len nil}}`,
	`{{index .User 0}}|{{index . "User"}}|{{index . "Nope"}}|{{index . "User" 1}}|{{index 1}}|{{index .}}`,
	`{{index .User 99}}`, `{{index .User -1}}`, `{{index .User "x"}}`, `{{index . 1}}`, `{{index nil}}`, `{{index .User 8}}`,
	`{{index .User 0 0}}`, `{{index .User nil}}`, `{{index . nil}}`, `{{index .User (index .User 0)}}`,
	`{{slice .Host 3}}|{{slice .Host 0 2}}|{{slice .Host}}|{{slice .Host 11}}|{{slice .Host 2 2}}`,
	`{{slice .Host 3 1}}`, `{{slice .Host 0 99}}`, `{{slice .Host 1 2 3}}`, `{{slice . 1}}`, `{{slice 1}}`, `{{slice nil}}`,
	`{{slice .Host 1 2 3 4}}`, `{{slice .Host 1.0}}`,
	// Numbers.
	`{{1}} {{-1}} {{1.5}} {{1e3}} {{0x10}} {{0o17}} {{0b101}} {{1_000}} {{'a'}} {{'\n'}} {{1i}} {{2+3i}} {{0x1p4}} {{1.0}} {{0.}}`,
	`{{18446744073709551615}}`, `{{9223372036854775807}}`, `{{-9223372036854775808}}`,
	// Variables.
	`{{$u := .User}}{{$p := .Password | urlquery}}{{$u}}:{{$p}}@{{$.Host}}`,
	`{{$x := 1}}{{if true}}{{$x = 2}}{{$y := 3}}{{end}}{{$x}}`,
	`{{$x := "a"}}{{with $x := "b"}}{{$x}}{{end}}{{$x}}`,
	`{{$x := .}}{{with .User}}{{$x.Host}}{{$.Port}}{{.}}{{end}}`,
	`{{$x := 1}}{{$x 2}}`, `{{$ := 1}}{{$}}`, `{{$x := 1}}{{$x.Y}}`,
	`{{print ($x := 2) $x}}{{$x}}`,
	// Range.
	`{{range 3}}{{.}}{{end}}|{{range $i := 3}}[{{$i}}]{{end}}|{{range 0}}x{{else}}none{{end}}|{{range -2}}x{{else}}neg{{end}}`,
	`{{range $k, $v := .}}{{$k}}={{$v}};{{end}}`,
	`{{range .}}{{.}},{{end}}`,
	`{{range $v := .}}{{$v}},{{end}}`,
	`{{range $i, $e := 3}}{{end}}`, `{{range .User}}{{end}}`, `{{range 1.5}}{{end}}`, `{{range true}}{{end}}`,
	`{{range nil}}x{{else}}nil{{end}}`, `{{range and nil}}x{{else}}nil{{end}}`,
	`{{define "n"}}{{range .}}x{{else}}nil{{end}}{{range $i, $e := .}}{{end}}{{end}}{{template "n"}}`,
	`{{range index .User 0}}{{if eq . 3}}{{break}}{{end}}{{printf "%T%v" . .}}{{end}}`,
	`{{range 5}}{{if eq . 1}}{{continue}}{{end}}{{if eq . 3}}{{break}}{{end}}{{.}}{{end}}`,
	`{{$x := 9}}{{range $x = 3}}{{end}}{{$x}}|{{range $x = 0}}{{end}}{{$x}}`,
	`{{$k := 0}}{{$v := 0}}{{range $k, $v = .}}{{end}}{{$k}}={{$v}}`,
	`{{range $i := 2}}{{$j := $i}}{{range 2}}{{$j}}{{.}}{{end}}{{end}}`,
	`{{$x := 1}}{{range $x = .}}{{end}}{{$x}}|{{range $i := 2}}{{$i = 5}}{{$i}}{{end}}`,
	`{{range $k, $v := .}}{{if eq $k "Host"}}{{break}}{{end}}{{$k}}{{end}}`,
	`{{with $x := 1}}{{$x}}{{end}}{{$x}}`, `{{define "a"}}{{break}}{{end}}`, `{{range 1}}{{define "a"}}{{end}}{{end}}`,
	`{{index .User (index "\x01" 0)}}{{slice .User (index "\x02" 0)}}{{eq (index .User 0) (index .Host 0)}}{{lt (index .User 0) (index .Host 0)}}`,
	`{{range $x := 0}}{{else}}{{$x}}{{end}}|{{with $x := .Nope}}{{else}}{{$x}}{{end}}`,
	`{{with $x := ""}}{{else}}[{{$x}}]{{end}}|{{if $y := 0}}{{else}}{{$y}}{{end}}`,
	`{{define "x"}}<{{.}}>{{end}}{{range 2}}{{template "x" $y := .}}{{$y}}{{end}}`,
	`{{range 2}}{{range 0}}{{else}}{{break}}{{end}}x{{end}}`,
	`{{range 3}}{{range 0}}{{else}}{{continue}}{{end}}x{{end}}`,
	`{{range $i := 2}}{{with $x := $i}}{{if $x}}{{break}}{{end}}{{end}}{{$i}}{{end}}`,
	// define, template, block.
	`{{define "u"}}{{.User}}@{{.Host}}{{end}}{{template "u" .}}`,
	`{{define "u"}}[{{.}}]{{end}}{{template "u" .Port}}{{template "u"}}{{template "u" 1}}`,
	`{{define "u"}}{{.X}}{{end}}{{template "u"}}`,
	`{{define "u"}}{{$}}{{end}}{{$x := 1}}{{template "u" .User}}`,
	`{{block "b" .}}default {{.Host}}{{end}}`,
	`{{define "value"}}defined{{end}}`,
	`{{define "value"}}defined{{end}}main`,
	`{{define "a"}}a{{template "b" .}}{{end}}{{define "b"}}b{{.Port}}{{end}}{{template "a" .}}`,
	`{{define "r"}}{{if .}}{{len .}}{{template "r" (slice . 1)}}{{end}}{{end}}{{template "r" .Port}}`,
	`{{define "r"}}{{template "r"}}{{end}}{{template "r"}}`,
	`{{template "value"}}`,
	`{{template "x" $y := 1}}{{$y}}`,
	`{{define "x"}}{{end}}{{template "x" $y := 1}}{{$y}}`,
	`{{template "other"}}`,
	// Comments, trim markers, text.
	"{{/* a comment */}}a {{- /* trimmed */ -}} b",
	"  {{- .User -}}  \n {{ .Host }}",
	"line1\n{{.User}}\n{{- .Host}}\n",
	// call and friends.
	`{{call .URL}}`, `{{call nil}}`, `{{call}}`, `{{.URL | call}}`, `{{if false}}{{call 1}}{{end}}ok`,
	`{{nil}}`, `{{len}}`, `{{not}}`, `{{ne 1}}`, `{{print nil | len}}`, `{{html | len}}{{html | print}}`,
}

func TestSameAsTextTemplate(t *testing.T) {
	t.Parallel()
	noReplica := diffVars(diffCanary)
	noReplica.ReplicaURL = secret.String{}
	datas := map[string]map[string]string{
		"real":       data(diffVars(diffCanary)),
		"probe":      data(probe),
		"no replica": data(noReplica),
		"specials":   data(diffVars("p@ss w/ørd&<'\"=\x00\x01\xff")),
	}
	for _, text := range diffTexts {
		for name, d := range datas {
			t.Run(name+"/"+text, func(t *testing.T) {
				t.Parallel()
				sameAsTextTemplate(t, text, d)
			})
		}
	}
}

// FuzzExecute compares the executor with text/template on arbitrary
// template text and an arbitrary password: the same bytes where
// text/template renders, an error where it fails. Compile must accept
// exactly what parses and renders with the probe, and no error may show a
// password the template text does not itself contain.
func FuzzExecute(f *testing.F) {
	for _, text := range diffTexts {
		f.Add(text, "pw")
	}
	f.Fuzz(func(t *testing.T, text, password string) {
		if tooCostly(text) {
			t.Skip("would keep text/template busy")
		}
		v := diffVars(password)
		sameAsTextTemplate(t, text, data(probe))
		sameAsTextTemplate(t, text, data(v))

		tpl, err := Compile(text)
		trees, parseErr := parseText(text)
		wantOK := strings.TrimSpace(text) != "" && parseErr == nil
		if wantOK {
			_, probeErr := execute(trees, data(probe))
			wantOK = probeErr == nil
		}
		if (err == nil) != wantOK {
			t.Fatalf("Compile(%q): %v, want success %v", text, err, wantOK)
		}
		if err != nil {
			return
		}
		out, err := tpl.Execute(v)
		if err == nil {
			return
		}
		if !out.IsZero() {
			t.Fatal("a failed render returned text")
		}
		if strings.Contains(err.Error(), diffCanary) && !strings.Contains(text, diffCanary) {
			t.Fatalf("render error shows the password: %v", err)
		}
	})
}

// tooCostly spots text that would run either engine for long: big loop
// counts, huge printf widths, nested loops.
func tooCostly(text string) bool {
	trees, err := parseText(text)
	if err != nil {
		return false
	}
	ranges, costly := 0, false
	for _, tree := range trees {
		visit(tree.Root, func(n parse.Node) {
			switch n := n.(type) {
			case *parse.RangeNode:
				ranges++
			case *parse.NumberNode:
				costly = costly || n.IsInt && (n.Int64 > 999 || n.Int64 < -999)
			case *parse.StringNode:
				costly = costly || hasDigitRun(n.Text, 4)
			}
		})
	}
	return costly || ranges > 2
}

func hasDigitRun(s string, n int) bool {
	run := 0
	for _, c := range []byte(s) {
		if c < '0' || c > '9' {
			run = 0
		} else if run++; run >= n {
			return true
		}
	}
	return false
}
