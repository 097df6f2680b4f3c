package console

import (
	"bytes"
	"fmt"
	"net/http"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	"github.com/rotorhq/rotor/internal/provider"
	"github.com/rotorhq/rotor/internal/serve/auth"
)

// page is one page's data. It gives the layout its title and refresh
// (head, embedded), and writes its own part of <main>.
type page interface {
	title() string
	refresh() int
	content(h html, v *view)
}

// head is what a page tells the layout.
type head struct {
	Title string
	// Refresh, while what the page shows is still running, makes the page
	// reload itself every Refresh seconds without JavaScript; 0: never.
	Refresh int
}

func (hd head) title() string { return hd.Title }
func (hd head) refresh() int  { return hd.Refresh }

// view is what every page's layout needs, and what some pages' content
// needs of the session (the CSRF token for a form, the buttons a scope
// allows).
type view struct {
	Title   string
	Refresh int
	Signed  bool
	Who     string
	Scope   string
	CanRot  bool
	CanAdm  bool
	CSRF    string
}

// render writes a page whole or not at all: a page that fails halfway
// must not leave half a page with a 200.
func (c *console) render(w http.ResponseWriter, r *http.Request, status int, se *session, p page) {
	v := viewOf(se, p)
	body, err := renderPage(&v, p)
	if err != nil {
		c.log.Error("console: render", "path", r.URL.Path, "error", err.Error())
		http.Error(w, "the page could not be rendered; see the service log", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// viewOf is the layout's view of p for the session se (nil: signed out).
func viewOf(se *session, p page) view {
	v := view{Title: p.title(), Refresh: p.refresh()}
	if se != nil {
		v.Signed, v.Who, v.Scope, v.CSRF = true, se.id.Name, se.id.Scope.String(), se.csrf
		v.CanRot, v.CanAdm = se.id.Allows(auth.ScopeRotate), se.id.Allows(auth.ScopeAdmin)
	}
	return v
}

// renderPage is p in the layout. Writing into a buffer cannot fail, so a
// failure is a bug in a page (a nil it did not expect): its panic comes
// back as the error, and the visitor gets a 500 instead of a dropped
// connection.
func renderPage(v *view, p page) (body []byte, err error) {
	defer func() {
		if e := recover(); e != nil {
			err = fmt.Errorf("%T: %v\n%s", p, e, debug.Stack())
		}
	}()
	var buf bytes.Buffer
	layout(html{&buf}, v, p)
	return buf.Bytes(), nil
}

// errorPage says what went wrong and what to do next.
type errorPage struct {
	head
	Message string
}

// fail answers with an error page that says what to do next.
func (c *console) fail(w http.ResponseWriter, r *http.Request, status int, msg string) {
	var se *session
	if ck, err := r.Cookie(cookieName); err == nil {
		se, _ = c.sessions.get(ck.Value)
	}
	c.render(w, r, status, se, &errorPage{head: head{Title: http.StatusText(status)}, Message: msg})
}

// internalError logs the cause (engine and store errors are secret-free
// where they arise) and shows it.
func (c *console) internalError(w http.ResponseWriter, r *http.Request, err error) {
	c.log.Error("console request failed", "method", r.Method, "path", r.URL.Path, "error", err.Error())
	c.fail(w, r, http.StatusInternalServerError, "Reading the state failed: "+err.Error())
}

// when is a time as the pages show it, in UTC to the minute; the zero
// time (not yet, never) is a dash.
func when(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return t.UTC().Format("2006-01-02 15:04 UTC")
}

// whenSet is when for a time that may be unset.
func whenSet(t *time.Time) string {
	if t == nil {
		return "—"
	}
	return when(*t)
}

// humanDuration is an age in its largest whole unit; none is a dash.
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
