package console

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/rotorhq/rotor/internal/serve/auth"
)

// cookieName holds only a random session id; the token itself is never
// stored, not even hashed: the session maps to the token's name and scope.
const cookieName = "rotor_session"

type session struct {
	id      auth.Identity
	csrf    string
	expires time.Time
}

// sessions live in memory: a restart signs everyone out, which is the
// safe failure, and nothing secret is ever written anywhere.
type sessions struct {
	mu  sync.Mutex
	m   map[string]*session
	now func() time.Time
	ttl time.Duration
}

func newSessions(now func() time.Time, ttl time.Duration) *sessions {
	return &sessions{m: map[string]*session{}, now: now, ttl: ttl}
}

func randomID() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24+)
	return hex.EncodeToString(b)
}

func (s *sessions) create(id auth.Identity) (string, *session) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	for k, v := range s.m { // drop expired ones so the map stays small
		if now.After(v.expires) {
			delete(s.m, k)
		}
	}
	sid := randomID()
	se := &session{id: id, csrf: randomID(), expires: now.Add(s.ttl)}
	s.m[sid] = se
	return sid, se
}

// get finds a live session and extends it (sliding expiry).
func (s *sessions) get(sid string) (*session, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	se, ok := s.m[sid]
	if !ok {
		return nil, false
	}
	now := s.now()
	if now.After(se.expires) {
		delete(s.m, sid)
		return nil, false
	}
	se.expires = now.Add(s.ttl)
	cp := *se
	return &cp, true
}

func (s *sessions) delete(sid string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, sid)
}

func (c *console) setCookie(w http.ResponseWriter, value string, maxAge int) {
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: value, Path: "/", HttpOnly: true, Secure: c.opts.Secure,
		SameSite: http.SameSiteStrictMode, MaxAge: maxAge})
}

// sameOrigin refuses a POST another site's page made: a browser sends
// Origin on every POST, and Sec-Fetch-Site where it supports it. The CSRF
// token is the check that does not depend on either.
func sameOrigin(r *http.Request) bool {
	if s := r.Header.Get("Sec-Fetch-Site"); s != "" && s != "same-origin" && s != "none" {
		return false
	}
	o := r.Header.Get("Origin")
	if o == "" {
		return true
	}
	u, err := url.Parse(o)
	return err == nil && strings.EqualFold(u.Host, r.Host)
}

// page is an authenticated request's handler.
type handler func(w http.ResponseWriter, r *http.Request, se *session)

// with finds the request's session, checks its scope, and for a POST
// checks that it came from the console's own form.
func (c *console) with(scope auth.Scope, h handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ck, err := r.Cookie(cookieName)
		var se *session
		if err == nil {
			se, _ = c.sessions.get(ck.Value)
		}
		if se == nil {
			if r.Method == http.MethodGet && r.URL.Path != "/events" {
				http.Redirect(w, r, "/signin?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
				return
			}
			c.fail(w, r, http.StatusUnauthorized, "You are not signed in (or your session ended). Sign in with an API token.")
			return
		}
		if r.Method == http.MethodPost {
			if !sameOrigin(r) {
				c.log.Warn("console: cross-site POST refused", "path", r.URL.Path, "actor", se.id.Name)
				c.fail(w, r, http.StatusForbidden, "This request came from another site and was refused. Use the console's own buttons.")
				return
			}
			if subtle.ConstantTimeCompare([]byte(r.PostFormValue("csrf")), []byte(se.csrf)) != 1 {
				c.log.Warn("console: POST without a valid CSRF token refused", "path", r.URL.Path, "actor", se.id.Name)
				c.fail(w, r, http.StatusForbidden, "The form was missing its security token or it was stale. Reload the page and try again.")
				return
			}
		}
		if !se.id.Allows(scope) {
			c.fail(w, r, http.StatusForbidden, "Token "+se.id.Name+" has scope "+se.id.Scope.String()+"; this needs "+scope.String()+". Sign in with a token that has it.")
			return
		}
		if r.Method == http.MethodPost {
			c.log.Info("console call", "method", r.Method, "path", r.URL.Path, "actor", se.id.Name)
		}
		h(w, r, se)
	})
}

// safeNext keeps a post-sign-in redirect on the console itself.
func safeNext(next string) string {
	if !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.HasPrefix(next, "/\\") {
		return "/"
	}
	return next
}

// signinPage asks for a token; Next is where to go after.
type signinPage struct {
	head
	Next  string
	Error string
}

func (c *console) signInPage(w http.ResponseWriter, r *http.Request) {
	c.render(w, r, http.StatusOK, nil, &signinPage{head: head{Title: "Sign in"}, Next: safeNext(r.URL.Query().Get("next"))})
}

func (c *console) signIn(w http.ResponseWriter, r *http.Request) {
	next := safeNext(r.PostFormValue("next"))
	if !sameOrigin(r) {
		c.fail(w, r, http.StatusForbidden, "This sign-in came from another site and was refused. Sign in on the console's own page.")
		return
	}
	id, ok := c.opts.Tokens.Authenticate(strings.TrimSpace(r.PostFormValue("token")))
	if !ok {
		c.render(w, r, http.StatusUnauthorized, nil, &signinPage{head: head{Title: "Sign in"}, Next: next,
			Error: "That token is not one rotor serve knows. Paste a token from ROTOR_API_TOKENS (the part after NAME:SCOPE:)."})
		return
	}
	sid, _ := c.sessions.create(id)
	c.setCookie(w, sid, 0)
	c.log.Info("console sign-in", "actor", id.Name, "scope", id.Scope.String())
	http.Redirect(w, r, next, http.StatusSeeOther)
}

func (c *console) signOut(w http.ResponseWriter, r *http.Request, se *session) {
	if ck, err := r.Cookie(cookieName); err == nil {
		c.sessions.delete(ck.Value)
	}
	c.setCookie(w, "", -1)
	http.Redirect(w, r, "/signin", http.StatusSeeOther)
}
