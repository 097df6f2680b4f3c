package console

import (
	"bytes"
	"embed"
	"fmt"
	"html/template"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	nethtml "golang.org/x/net/html"

	"github.com/rotorhq/rotor/internal/engine"
)

// The pages were html/template until the console dropped it from the
// binary (see html.go). testdata/legacy holds those templates as they
// were, so TestPagesAsTemplates can check that the Go pages say the same.
// A page that changes on purpose changes its template here too, or this
// test and testdata/legacy go.

//go:embed testdata/legacy/*.html
var legacyFS embed.FS

// legacyFuncs are the templates' helpers as they were.
var legacyFuncs = template.FuncMap{
	"when": func(t any) string {
		switch v := t.(type) {
		case time.Time:
			return when(v)
		case *time.Time:
			return whenSet(v)
		}
		return fmt.Sprint(t)
	},
	"age":      humanDuration,
	"sessions": describeSessions,
	"lower":    strings.ToLower,
}

// legacyView is what the templates were given: the layout's view, and
// the page's data under Data.
type legacyView struct {
	Title   string
	Signed  bool
	Who     string
	Scope   string
	CanRot  bool
	CanAdm  bool
	CSRF    string
	Refresh int
	Data    any
}

// legacyRender is p as its template rendered it.
func legacyRender(t *testing.T, v view, p page) string {
	t.Helper()
	name, data := legacyData(t, p)
	dir := "testdata/legacy/"
	tm, err := template.New("layout.html").Funcs(legacyFuncs).ParseFS(legacyFS, dir+"layout.html", dir+"journal.html", dir+name+".html")
	require.NoError(t, err)
	var b bytes.Buffer
	require.NoError(t, tm.Execute(&b, legacyView{Title: v.Title, Signed: v.Signed, Who: v.Who, Scope: v.Scope,
		CanRot: v.CanRot, CanAdm: v.CanAdm, CSRF: v.CSRF, Refresh: v.Refresh, Data: data}))
	return b.String()
}

// legacyData is p's template and its data as the template wants it: the
// page's fields, and the fixed choices the handlers used to pass along.
func legacyData(t *testing.T, p page) (string, any) {
	switch p := p.(type) {
	case *signinPage:
		return "signin", p
	case *errorPage:
		return "error", p
	case *overviewPage:
		return "overview", struct {
			*overviewPage
			Sorts, Healths []string
		}{p, sortOrder, healths}
	case *credentialPage:
		return "credential", p
	case *confirmPage:
		return "confirm", p
	case *jobPage:
		return "job", p
	case *rotationPage:
		return "rotation", p
	case *auditPage:
		return "audit", struct {
			*auditPage
			Results []string
		}{p, engine.Results}
	}
	t.Fatalf("no template for %T", p)
	return "", nil
}

// TestPagesAsTemplates renders every page both ways, with realistic and
// with hostile values, and compares what a browser would build of each:
// the same elements, attributes and text. Not compared: whitespace
// (runs of it count as one space), how a character is escaped (the
// templates wrote + as &#43;), and how a link's path is percent-escaped
// (the templates left a / ? or # in a name as it was, which split the
// link; the pages escape it inside its segment).
func TestPagesAsTemplates(t *testing.T) {
	values := []func(string) string{func(s string) string { return s }}
	for _, evil := range hostile {
		values = append(values, func(string) string { return evil })
	}
	for i, x := range values {
		for _, s := range samplePages(x) {
			t.Run(fmt.Sprintf("%s/values%d", s.name, i), func(t *testing.T) {
				v := viewOf(s.se, s.p)
				got, err := renderPage(&v, s.p)
				require.NoError(t, err)
				sameLines(t, tree(t, legacyRender(t, v, s.p)), tree(t, string(got)))
			})
		}
	}
}

// sameLines fails at the first line where got is not want, with the
// lines around it: a whole page each is too much to read.
func sameLines(t *testing.T, want, got string) {
	t.Helper()
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	for i := range max(len(w), len(g)) {
		if i < len(w) && i < len(g) && w[i] == g[i] {
			continue
		}
		around := func(ls []string) string { return strings.Join(ls[max(i-8, 0):min(i+4, len(ls))], "\n") }
		t.Fatalf("line %d differs; the template's:\n%s\n\nthe page's:\n%s", i+1, around(w), around(g))
	}
}

var spaces = regexp.MustCompile(`\s+`)

// tree is the document src as a browser builds it, one node a line.
func tree(t *testing.T, src string) string {
	t.Helper()
	doc, err := nethtml.Parse(strings.NewReader(src))
	require.NoError(t, err)
	var b strings.Builder
	var walk func(n *nethtml.Node, depth int)
	walk = func(n *nethtml.Node, depth int) {
		indent := strings.Repeat("  ", depth)
		switch n.Type {
		case nethtml.TextNode:
			fmt.Fprintf(&b, "%s%q\n", indent, spaces.ReplaceAllString(n.Data, " "))
		case nethtml.ElementNode:
			fmt.Fprintf(&b, "%s<%s", indent, n.Data)
			for _, a := range n.Attr {
				val := a.Val
				if a.Key == "href" || a.Key == "action" {
					if p, err := url.PathUnescape(val); err == nil {
						val = p
					}
				}
				fmt.Fprintf(&b, " %s=%q", a.Key, val)
			}
			b.WriteString(">\n")
		}
		for c := range n.ChildNodes() {
			walk(c, depth+1)
		}
	}
	walk(doc, 0)
	return b.String()
}
