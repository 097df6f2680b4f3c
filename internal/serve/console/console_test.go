package console_test

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestSignInAndSignOut(t *testing.T) {
	w := newWorld(t, worldOptions{secure: true})
	defer w.scan()
	c := w.client()

	r := c.get("/")
	require.Equal(t, http.StatusSeeOther, r.status)
	require.Equal(t, "/signin?next=%2F", r.header.Get("Location"))
	r = c.get("/signin")
	require.Equal(t, http.StatusOK, r.status)
	require.Contains(t, r.body, `<label for="token">API token</label>`)
	require.Contains(t, r.header.Get("Content-Security-Policy"), "script-src 'self'")
	require.NotContains(t, r.header.Get("Content-Security-Policy"), "unsafe-inline")

	r = c.post("/signin", url.Values{"token": {"wrong-token-0123456789abcdefgh"}})
	require.Equal(t, http.StatusUnauthorized, r.status)
	require.Contains(t, r.body, "not one rotor serve knows")
	require.NotContains(t, r.body, "wrong-token-0123456789abcdefgh")

	r = c.post("/signin", url.Values{"token": {adminTok}, "next": {"//evil.example/"}})
	require.Equal(t, http.StatusSeeOther, r.status)
	require.Equal(t, "/", r.header.Get("Location"), "a sign-in never sends you off the console")
	ck := r.header.Get("Set-Cookie")
	for _, attr := range []string{"rotor_session=", "HttpOnly", "Secure", "SameSite=Strict", "Path=/"} {
		require.Contains(t, ck, attr)
	}
	require.NotContains(t, ck, adminTok)

	csrf := c.csrf()
	r = c.post("/signout", url.Values{"csrf": {csrf}})
	require.Equal(t, http.StatusSeeOther, r.status)
	require.Contains(t, r.header.Get("Set-Cookie"), "Max-Age=0")
	// The old session id is dead on the server, not only in the jar.
	c2 := w.client()
	u, _ := url.Parse(w.srv.URL)
	sid := strings.TrimPrefix(strings.SplitN(ck, ";", 2)[0], "rotor_session=")
	c2.hc.Jar.SetCookies(u, []*http.Cookie{{Name: "rotor_session", Value: sid}})
	r = c2.get("/")
	require.Equal(t, http.StatusSeeOther, r.status)
}

func TestPagesAndRotate(t *testing.T) {
	w := newWorld(t, worldOptions{})
	defer w.scan()
	c := w.client()
	csrf := c.signIn(adminTok)

	r := c.get("/")
	require.Equal(t, http.StatusOK, r.status)
	require.Contains(t, r.body, `href="/credentials/app"`)
	require.Contains(t, r.body, `href="/credentials/broken"`)
	require.Contains(t, r.body, "0 healthy")
	require.Contains(t, r.body, "2 never rotated")
	r = c.get("/?q=brok")
	require.NotContains(t, r.body, `href="/credentials/app"`)
	require.Contains(t, r.body, `href="/credentials/broken"`)

	r = c.get("/credentials/app")
	require.Equal(t, http.StatusOK, r.status, r.body)
	require.Contains(t, r.body, `href="/credentials/app/confirm/rotate"`)
	require.Contains(t, r.body, `href="/credentials/app/confirm/revoke"`)
	require.Contains(t, r.body, "Plan of the next rotation")
	require.NotContains(t, r.body, "could not ask the database", "the page's live status read the database")
	r = c.get("/credentials/nope")
	require.Equal(t, http.StatusNotFound, r.status)

	r = c.get("/credentials/app/confirm/rotate")
	require.Equal(t, http.StatusOK, r.status)
	require.Contains(t, r.body, "makes a new password for app")
	require.Contains(t, r.body, `action="/credentials/app/rotate"`)
	require.Contains(t, r.body, `value="`+csrf+`"`)

	r = c.post("/credentials/app/rotate", url.Values{"csrf": {csrf}, "reason": {"quarterly"}})
	require.Equal(t, http.StatusSeeOther, r.status, r.body)
	job := w.done(jobOf(t, r))
	r = c.get(r.header.Get("Location"))
	require.Equal(t, http.StatusOK, r.status)
	require.Contains(t, r.body, `data-state="completed"`)
	require.Contains(t, r.body, "asked by ops")
	require.Contains(t, r.body, `<span class="badge d-verified">verified</span>`)
	require.NotContains(t, r.body, "http-equiv", "a finished job does not refresh itself")
	w.currentURL()

	require.NotZero(t, job.RotationID)
	r = c.get(fmt.Sprintf("/rotations/%d", job.RotationID))
	require.Equal(t, http.StatusOK, r.status)
	require.Contains(t, r.body, "Status <strong>succeeded</strong>")
	// One line per step, each done: the engine never journals finish as
	// done (the rotation's status says it ended), and the page no longer
	// shows a trailing "finish started" after the end.
	require.NotContains(t, r.body, `s-started`)
	for _, step := range []string{"prepare", "apply", "test", "publish", "confirm", "finish"} {
		require.Equal(t, 1, strings.Count(r.body, `<span class="badge s-done">done</span> `+step+` `), step)
	}
	r = c.get("/rotations/99")
	require.Equal(t, http.StatusNotFound, r.status)

	r = c.get("/")
	require.Contains(t, r.body, "1 healthy")

	r = c.get("/credentials/app")
	require.Contains(t, r.body, "Versions")
	require.Regexp(t, `<td>1</td><td><code>[^<]+</code></td><td>current</td><td><code>[0-9a-zA-Z:_-]+</code></td>`, r.body)

	r = c.get("/audit?actor=ops")
	require.Equal(t, http.StatusOK, r.status)
	require.Contains(t, r.body, "console.rotate_requested")
	require.Contains(t, r.body, "quarterly")
	r = c.get("/audit?actor=nobody")
	require.Contains(t, r.body, "No events match.")
	r = c.get("/audit?result=bogus")
	require.Equal(t, http.StatusBadRequest, r.status)
	require.Contains(t, r.body, "is not one of")
	r = c.get("/audit?since=yesterdayish")
	require.Equal(t, http.StatusBadRequest, r.status)
	r = c.get("/audit?credential=app&since=1h")
	require.Equal(t, http.StatusOK, r.status)
	require.Contains(t, r.body, "console.rotate_requested")
	r = c.get("/audit?credential=app&until=1h")
	require.Equal(t, http.StatusOK, r.status)
	require.Contains(t, r.body, "No events match.", "everything happened within the hour")
	r = c.get("/audit?since=1h&until=2h")
	require.Equal(t, http.StatusBadRequest, r.status)
	require.Contains(t, r.body, "swap them")
}

func TestFailedTargetShown(t *testing.T) {
	w := newWorld(t, worldOptions{})
	defer w.scan()
	c := w.client()
	csrf := c.signIn(rotateTok)
	r := c.post("/credentials/broken/rotate", url.Values{"csrf": {csrf}})
	require.Equal(t, http.StatusSeeOther, r.status, r.body)
	w.done(jobOf(t, r))
	r = c.get(r.header.Get("Location"))
	require.Contains(t, r.body, `<span class="badge d-failed">failed</span>`)
	require.Contains(t, r.body, "broken.env")
	r = c.get("/")
	require.Contains(t, r.body, "1 failing")
	require.Contains(t, r.body, `class="row-failing"`)
	// A rotate token sees rotate but not revoke or retire.
	r = c.get("/credentials/broken")
	require.Contains(t, r.body, "/confirm/rotate")
	require.NotContains(t, r.body, "/confirm/revoke")
	r = c.post("/credentials/broken/revoke", url.Values{"csrf": {csrf}})
	require.Equal(t, http.StatusForbidden, r.status)
}

func TestCSRFAndCrossSite(t *testing.T) {
	w := newWorld(t, worldOptions{})
	defer w.scan()
	c := w.client()
	csrf := c.signIn(adminTok)

	r := c.post("/credentials/app/rotate", url.Values{})
	require.Equal(t, http.StatusForbidden, r.status)
	require.Contains(t, r.body, "security token")
	r = c.post("/credentials/app/rotate", url.Values{"csrf": {strings.Repeat("0", 64)}})
	require.Equal(t, http.StatusForbidden, r.status)
	r = c.do("POST", "/credentials/app/rotate", url.Values{"csrf": {csrf}}, map[string]string{"Origin": "https://evil.example"})
	require.Equal(t, http.StatusForbidden, r.status)
	require.Contains(t, r.body, "another site")
	r = c.do("POST", "/credentials/app/rotate", url.Values{"csrf": {csrf}}, map[string]string{"Sec-Fetch-Site": "cross-site"})
	require.Equal(t, http.StatusForbidden, r.status)
	r = c.do("POST", "/signin", url.Values{"token": {adminTok}}, map[string]string{"Origin": "https://evil.example"})
	require.Equal(t, http.StatusForbidden, r.status)
	// Without a session a POST is refused outright.
	r = w.client().post("/credentials/app/rotate", url.Values{"csrf": {csrf}})
	require.Equal(t, http.StatusUnauthorized, r.status)

	jobs, err := w.b.Jobs(t.Context(), "", 0)
	require.NoError(t, err)
	require.Empty(t, jobs, "no refused POST queued a job")
}

func TestReadOnlyToken(t *testing.T) {
	w := newWorld(t, worldOptions{})
	defer w.scan()
	c := w.client()
	csrf := c.signIn(readTok)
	for _, p := range []string{"/", "/credentials/app", "/audit"} {
		r := c.get(p)
		require.Equal(t, http.StatusOK, r.status, p)
		require.NotContains(t, r.body, "/confirm/", p)
		require.NotContains(t, r.body, "Rotate now", p)
	}
	r := c.get("/credentials/app/confirm/rotate")
	require.Equal(t, http.StatusForbidden, r.status)
	require.Contains(t, r.body, "has scope read")
	for _, a := range []string{"rotate", "revoke", "retire"} {
		r = c.post("/credentials/app/"+a, url.Values{"csrf": {csrf}})
		require.Equal(t, http.StatusForbidden, r.status, a)
	}
	jobs, err := w.b.Jobs(t.Context(), "", 0)
	require.NoError(t, err)
	require.Empty(t, jobs)
}

func TestEventsStream(t *testing.T) {
	w := newWorld(t, worldOptions{})
	defer w.scan()
	c := w.client()
	csrf := c.signIn(adminTok)

	// The rotation waits before publishing until the stream is open.
	w.gate.hold()
	r := c.post("/credentials/app/rotate", url.Values{"csrf": {csrf}})
	require.Equal(t, http.StatusSeeOther, r.status, r.body)
	id := jobOf(t, r)

	// A stream that never says the job ended fails here instead of
	// hanging the package.
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", fmt.Sprintf("%s/events?credential=app&job=%d", w.srv.URL, id), nil)
	require.NoError(t, err)
	resp, err := c.hc.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, "text/event-stream", resp.Header.Get("Content-Type"))
	sc := bufio.NewScanner(resp.Body)
	require.True(t, sc.Scan()) // the opening comment: subscribed
	w.gate.release()

	var got []string
	var event string
	for sc.Scan() {
		line := sc.Text()
		if e, ok := strings.CutPrefix(line, "event: "); ok {
			event = e
		}
		if data, ok := strings.CutPrefix(line, "data: "); ok {
			got = append(got, event+" "+data)
			w.keep([]byte(line))
		}
	}
	require.NoError(t, sc.Err(), "the stream ends by itself once the job is over")
	require.NotEmpty(t, got)
	all := strings.Join(got, "\n")
	require.Contains(t, all, `progress {"credential":"app"`)
	require.Contains(t, all, `"step":"publish","target":"env"`)
	require.Regexp(t, fmt.Sprintf(`end \{"job_id":%d,"rotation_id":\d+,"state":"completed"\}$`, id), got[len(got)-1])
	w.currentURL()

	// A stream of a job already over says so at once and ends.
	r = c.get(fmt.Sprintf("/events?job=%d", id))
	require.Equal(t, http.StatusOK, r.status)
	require.Contains(t, r.body, "event: end\n")
	r = c.get("/events?job=x")
	require.Equal(t, http.StatusBadRequest, r.status)
	require.Contains(t, r.body, "is not an id")

	// A stream that follows nothing lasts until the service stops.
	req, err = http.NewRequestWithContext(ctx, "GET", w.srv.URL+"/events", nil)
	require.NoError(t, err)
	resp2, err := c.hc.Do(req)
	require.NoError(t, err)
	defer resp2.Body.Close()
	sc = bufio.NewScanner(resp2.Body)
	require.True(t, sc.Scan())
	close(w.stop)
	for sc.Scan() {
	}
	require.NoError(t, sc.Err(), "the stream ended when the service stopped")

	// Without a session the stream is refused, not redirected.
	r = w.client().get("/events")
	require.Equal(t, http.StatusUnauthorized, r.status)
}

var jobLocation = regexp.MustCompile(`^/jobs/([0-9]+)$`)

// jobOf is the id of the job a console POST redirected to.
func jobOf(t *testing.T, r response) int64 {
	t.Helper()
	m := jobLocation.FindStringSubmatch(r.header.Get("Location"))
	require.NotNil(t, m, "redirected to a job page, not %q", r.header.Get("Location"))
	n, err := strconv.ParseInt(m[1], 10, 64)
	require.NoError(t, err)
	return n
}
