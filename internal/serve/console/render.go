package console

import (
	"bytes"
	"fmt"
	"html/template"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/rotorhq/rotor/internal/provider"
	"github.com/rotorhq/rotor/internal/serve/auth"
)

// pages are the parsed templates, one set per page over the shared layout.
type pages struct {
	byName map[string]*template.Template
}

var funcs = template.FuncMap{
	"when": func(t any) string {
		switch v := t.(type) {
		case time.Time:
			if v.IsZero() {
				return "—"
			}
			return v.UTC().Format("2006-01-02 15:04 UTC")
		case *time.Time:
			if v == nil || v.IsZero() {
				return "—"
			}
			return v.UTC().Format("2006-01-02 15:04 UTC")
		}
		return fmt.Sprint(t)
	},
	"age":      humanDuration,
	"sessions": describeSessions,
	"lower":    strings.ToLower,
}

func mustParsePages() *pages {
	p := &pages{byName: map[string]*template.Template{}}
	for _, name := range []string{"signin", "error", "overview", "credential", "confirm", "job", "rotation", "audit"} {
		t := template.Must(template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/journal.html", "templates/"+name+".html"))
		p.byName[name] = t
	}
	return p
}

// view is what every page's layout needs.
type view struct {
	Title   string
	Signed  bool
	Who     string
	Scope   string
	CanRot  bool
	CanAdm  bool
	CSRF    string
	Refresh int // seconds; 0: no meta refresh
	Data    any
}

// render writes a page whole or not at all: a template error halfway
// must not leave half a page with a 200.
func (c *console) render(w http.ResponseWriter, r *http.Request, status int, name string, se *session, data any) {
	v := view{Data: data}
	if se != nil {
		v.Signed, v.Who, v.Scope, v.CSRF = true, se.id.Name, se.id.Scope.String(), se.csrf
		v.CanRot, v.CanAdm = se.id.Allows(auth.ScopeRotate), se.id.Allows(auth.ScopeAdmin)
	}
	if m, ok := data.(map[string]any); ok {
		if t, ok := m["Title"].(string); ok {
			v.Title = t
		}
		if n, ok := m["Refresh"].(int); ok {
			v.Refresh = n
		}
	}
	var buf bytes.Buffer
	if err := c.pages.byName[name].Execute(&buf, v); err != nil {
		c.log.Error("console: render", "page", name, "error", err.Error())
		http.Error(w, "the page could not be rendered; see the service log", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// fail answers with an error page that says what to do next.
func (c *console) fail(w http.ResponseWriter, r *http.Request, status int, msg string) {
	var se *session
	if ck, err := r.Cookie(cookieName); err == nil {
		se, _ = c.sessions.get(ck.Value)
	}
	c.render(w, r, status, "error", se, map[string]any{"Title": http.StatusText(status), "Status": status, "Message": msg})
}

// internalError logs the cause (engine and store errors are secret-free
// where they arise) and shows it.
func (c *console) internalError(w http.ResponseWriter, r *http.Request, err error) {
	c.log.Error("console request failed", "method", r.Method, "path", r.URL.Path, "error", err.Error())
	c.fail(w, r, http.StatusInternalServerError, "Reading the state failed: "+err.Error())
}

func humanDuration(d time.Duration) string {
	if d <= 0 {
		return "—"
	}
	switch {
	case d >= 48*time.Hour:
		return fmt.Sprintf("%dd", int(d.Hours()/24))
	case d >= time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	case d >= time.Minute:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	}
	return fmt.Sprintf("%ds", int(d.Seconds()))
}

// describeSessions says who is on a role in one line: each application
// and client, counted, as the CLI says it.
func describeSessions(ss []provider.Session) string {
	counts := map[string]int{}
	var keys []string
	for _, s := range ss {
		app, from := s.ApplicationName, s.ClientAddr
		if app == "" {
			app = "(no application_name)"
		}
		if from == "" {
			from = "local socket"
		}
		k := app + " from " + from
		if counts[k] == 0 {
			keys = append(keys, k)
		}
		counts[k]++
	}
	slices.Sort(keys)
	for i, k := range keys {
		if counts[k] > 1 {
			keys[i] = fmt.Sprintf("%s ×%d", k, counts[k])
		}
	}
	return strings.Join(keys, ", ")
}
