// Package console is the web console of `rotor serve`: server-rendered
// pages over the same Backend and tokens as the API.
//
// Pages are Go functions (pages.go) writing through a small escaping
// writer (html.go), not html/template, whose executor would switch off
// the linker's dead-method elimination for the whole binary. Assets are
// embedded, and a strict Content-Security-Policy allows no inline script
// or style. Everything works as plain links and forms; the one script
// (static/live.js) only adds live progress over server-sent events on a
// job's page, which without it refreshes itself with
// <meta http-equiv="refresh">.
package console

import (
	"embed"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"time"

	"github.com/rotorhq/rotor/internal/serve"
	"github.com/rotorhq/rotor/internal/serve/auth"
)

// Options configure the console.
type Options struct {
	Backend serve.Backend
	Tokens  *auth.Tokens
	// Secure marks the session cookie Secure (the service listens with TLS).
	Secure bool
	Logger *slog.Logger
	// SessionTTL is how long a sign-in lasts without use; default 12h.
	SessionTTL time.Duration
	// Now is the clock (tests); default time.Now.
	Now func() time.Time
	// Done, once closed, ends every live stream: the service is stopping,
	// and http.Server.Shutdown would otherwise wait on open streams until
	// its deadline and fail.
	Done <-chan struct{}
}

//go:embed static
var staticFS embed.FS

// csp allows only the console's own script, style and images: no inline
// script, no inline style, no framing, forms posting only to itself.
const csp = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; " +
	"form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

type console struct {
	opts     Options
	log      *slog.Logger
	sessions *sessions
}

// New returns the console's handler; the service mounts it at "/" (every
// path not taken by /api/, /hooks/, /metrics, /healthz, /readyz).
func New(opts Options) http.Handler {
	c := &console{opts: opts, log: opts.Logger}
	if c.log == nil {
		c.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if c.opts.Tokens == nil {
		c.opts.Tokens = &auth.Tokens{}
	}
	if c.opts.Now == nil {
		c.opts.Now = time.Now
	}
	if c.opts.SessionTTL <= 0 {
		c.opts.SessionTTL = 12 * time.Hour
	}
	c.sessions = newSessions(c.opts.Now, c.opts.SessionTTL)

	mux := http.NewServeMux()
	static, _ := fs.Sub(staticFS, "static")
	mux.Handle("GET /static/", http.StripPrefix("/static/", cacheStatic(http.FileServerFS(static))))
	mux.HandleFunc("GET /signin", c.signInPage)
	mux.HandleFunc("POST /signin", c.signIn)
	mux.Handle("POST /signout", c.with(auth.ScopeRead, c.signOut))
	read, rotate, admin := auth.ScopeRead, auth.ScopeRotate, auth.ScopeAdmin
	mux.Handle("GET /{$}", c.with(read, c.overview))
	mux.Handle("GET /credentials/{name}", c.with(read, c.credential))
	mux.Handle("GET /credentials/{name}/confirm/{action}", c.with(read, c.confirm))
	mux.Handle("POST /credentials/{name}/rotate", c.with(rotate, c.action(serve.KindRotate)))
	mux.Handle("POST /credentials/{name}/revoke", c.with(admin, c.action(serve.KindRevoke)))
	mux.Handle("POST /credentials/{name}/retire", c.with(admin, c.action(serve.KindRetire)))
	mux.Handle("GET /jobs/{id}", c.with(read, c.job))
	mux.Handle("GET /rotations/{id}", c.with(read, c.rotation))
	mux.Handle("GET /events", c.with(read, c.events))
	mux.Handle("GET /audit", c.with(read, c.audit))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		c.fail(w, r, http.StatusNotFound, "No page at "+r.URL.Path+". Start from the overview.")
	})
	return securityHeaders(mux)
}

// securityHeaders sets what every response carries, assets and errors too.
func securityHeaders(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("Content-Security-Policy", csp)
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("X-Frame-Options", "DENY")
		hd.Set("Referrer-Policy", "same-origin")
		h.ServeHTTP(w, r)
	})
}

func cacheStatic(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=3600")
		h.ServeHTTP(w, r)
	})
}
