package console_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/rotorhq/rotor/internal/engine"
	"github.com/rotorhq/rotor/internal/testdeps"
)

// One Chromium for the whole package: starting it costs more than most
// tests, so every test opens a tab in a browser context of its own (its
// own cookies) in the one browser, which TestMain closes.
var browser struct {
	once   sync.Once
	ctx    context.Context
	cancel context.CancelFunc
	err    error
}

func closeBrowser() {
	if browser.cancel != nil {
		browser.cancel()
	}
}

// screenshots, when set, makes the browser tests write the console's
// screenshots into docs/console (make console-screenshots); otherwise
// tests never touch tracked files.
var screenshots = os.Getenv("ROTOR_CONSOLE_SCREENSHOTS") == "1"

const shotsDir = "../../../docs/console"

// tab is one browser tab on the console of w, with its own cookie jar.
type tab struct {
	t   *testing.T
	w   *world
	ctx context.Context
}

// newTab opens a headless tab width×height px wide; it needs Chromium
// (testdeps.Browser skips or fails without one, like a missing
// PostgreSQL).
func newTab(t *testing.T, w *world, width, height int64) *tab {
	t.Helper()
	path := testdeps.Browser(t)
	browser.once.Do(func() {
		opts := append(slices.Clone(chromedp.DefaultExecAllocatorOptions[:]), chromedp.ExecPath(path),
			chromedp.DisableGPU, chromedp.WindowSize(1024, 768), chromedp.Flag("hide-scrollbars", true))
		if os.Geteuid() == 0 { // Chromium refuses to sandbox itself as root (CI containers)
			opts = append(opts, chromedp.NoSandbox)
		}
		actx, acancel := chromedp.NewExecAllocator(context.Background(), opts...)
		bctx, bcancel := chromedp.NewContext(actx)
		browser.ctx, browser.cancel = bctx, func() { bcancel(); acancel() }
		browser.err = chromedp.Do(bctx) // starts the browser
	})
	require.NoError(t, browser.err, "start Chromium at %s", path)
	ctx, cancel := chromedp.NewContext(browser.ctx, chromedp.WithNewBrowserContext())
	t.Cleanup(cancel)
	// A stuck page fails the test instead of hanging the package; no
	// assertion is about how long anything takes.
	ctx, cancelT := context.WithTimeout(ctx, 2*time.Minute)
	t.Cleanup(cancelT)
	p := &tab{t: t, w: w, ctx: ctx}
	p.do(chromedp.EmulateViewport(width, height))
	return p
}

func (p *tab) do(actions ...chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	require.NoError(p.t, chromedp.Do(p.ctx, actions...))
}

func eval[T any](p *tab, js string) T {
	p.t.Helper()
	v, err := chromedp.Run(p.ctx, chromedp.Evaluate[T](js, chromedp.EvalAwaitPromise))
	require.NoError(p.t, err, "evaluate %s", js)
	return v
}

// visit opens path and checks the page it lands on (see look).
func (p *tab) visit(path string) string {
	p.t.Helper()
	p.do(chromedp.Navigate(p.w.srv.URL + path))
	return p.look()
}

// look keeps the page's DOM for the leak scan and checks that every
// field has a label; it returns the DOM.
func (p *tab) look() string {
	p.t.Helper()
	html, err := chromedp.Run(p.ctx, chromedp.OuterHTML(chromedp.CSS("html")))
	require.NoError(p.t, err)
	p.w.keep([]byte(html))
	unlabelled := eval[[]string](p, `[...document.querySelectorAll("input:not([type=hidden]), select, textarea")]
		.filter(e => !(e.labels && e.labels.length) && !e.getAttribute("aria-label")).map(e => e.outerHTML)`)
	require.Empty(p.t, unlabelled, "every field has a label")
	return html
}

// click clicks sel and waits for next on the page it leads to.
func (p *tab) click(sel, next string) string {
	p.t.Helper()
	p.do(chromedp.Click(chromedp.CSS(sel)), chromedp.WaitVisible(chromedp.CSS(next)))
	return p.look()
}

func (p *tab) location() string {
	p.t.Helper()
	u, err := chromedp.Run(p.ctx, chromedp.Location())
	require.NoError(p.t, err)
	return strings.TrimPrefix(u, p.w.srv.URL)
}

func (p *tab) signIn(token string) {
	p.t.Helper()
	p.visit("/signin")
	p.do(chromedp.SendKeys(chromedp.ID("token"), token))
	p.click(`form.stack button[type=submit]`, "#summary")
	require.Equal(p.t, "/", p.location())
}

// shot writes the page as docs/console/name.png when screenshots are
// asked for: 1024 px wide, PNG.
func (p *tab) shot(name string) {
	p.t.Helper()
	if !screenshots {
		return
	}
	// The top of a long page, at most 1,500 px, keeps each file small.
	h := min(eval[int64](p, `document.documentElement.scrollHeight`), 1500)
	p.do(chromedp.EmulateViewport(1024, h))
	png, err := chromedp.Run(p.ctx, chromedp.CaptureScreenshot())
	require.NoError(p.t, err)
	p.do(chromedp.EmulateViewport(1024, 768))
	require.Less(p.t, len(png), 300<<10, "%s.png stays under 300 KB", name)
	require.NoError(p.t, os.WriteFile(filepath.Join(shotsDir, name+".png"), png, 0o644))
	p.t.Logf("wrote %s.png (%d KB)", name, len(png)>>10)
}

func (w *world) jobCount() int {
	w.t.Helper()
	jobs, err := w.b.Jobs(w.t.Context(), "", 0)
	require.NoError(w.t, err)
	return len(jobs)
}

// TestBrowser drives the console of a real service in Chromium, one
// signed-in operator through its steps in order (each step builds on the
// state the one before left), then a read-only viewer and a phone.
func TestBrowser(t *testing.T) {
	w := newWorld(t, worldOptions{})
	defer w.scan()
	p := newTab(t, w, 1024, 768)

	t.Run("sign in and see every credential", func(t *testing.T) {
		p.t = t
		p.signIn(adminTok)
		names := eval[[]string](p, `[...document.querySelectorAll("table.creds tbody th a")].map(a => a.textContent)`)
		var want []string
		for _, cr := range w.b.Config().Credentials {
			want = append(want, cr.Name)
		}
		require.ElementsMatch(t, want, names)
		require.Contains(t, eval[string](p, `document.getElementById("summary").textContent`), "2 never rotated")
	})

	t.Run("rotate and watch it finish live", func(t *testing.T) {
		p.t = t
		w.gate.hold(engine.StepPublish, engine.StepConfirm)
		p.visit("/credentials/app")
		p.click(`a[href="/credentials/app/confirm/rotate"]`, "#confirm")
		require.Contains(t, eval[string](p, `document.querySelector("p.what").textContent`), "makes a new password for app")
		p.click("#confirm", "#live-events")
		require.Regexp(t, `^/jobs/\d+$`, p.location())
		// Everything the live list shows goes to sessionStorage too, which
		// outlives the reload the "end" event makes.
		require.True(t, eval[bool](p, `(() => {
			const l = document.getElementById("live-events");
			new MutationObserver(() => sessionStorage.setItem("seen",
				JSON.stringify([...l.children].map(li => li.textContent)))).observe(l, {childList: true});
			return true;
		})()`))
		select {
		case uri := <-w.streams:
			require.Contains(t, uri, "/events?credential=app&job=")
		case <-p.ctx.Done():
			t.Fatal("the job page never opened its event stream")
		}
		w.gate.release(engine.StepPublish)
		// publish runs while confirm is held: its progress arrives live.
		p.do(chromedp.Poll[chromedp.Void](`[...document.querySelectorAll("#live-events li")].some(li => li.textContent.startsWith("publish: done"))`))
		require.True(t, eval[bool](p, `document.getElementById("live") !== null`), "the progress came without a reload")
		require.Equal(t, "running", eval[string](p, `document.querySelector("#job-state strong").textContent`))
		p.shot("rotation-live")
		w.gate.release(engine.StepConfirm)
		// The "end" event reloads the page, which then reads the store.
		p.do(chromedp.WaitVisible(chromedp.CSS(`#job-state[data-state="completed"]`)))
		html := p.look()
		require.NotContains(t, html, `id="live"`, "a finished job's page does not follow it any more")
		require.NotContains(t, html, "s-started", "no step is left started")
		require.Contains(t, html, `<span class="badge s-done">done</span> finish`)
		var seen []string
		require.NoError(t, json.Unmarshal([]byte(eval[string](p, `sessionStorage.getItem("seen") || "[]"`)), &seen))
		all := strings.Join(seen, "\n")
		require.Contains(t, all, "publish · env: ", "the target's progress came over the stream")
		require.Contains(t, all, "confirm: done", "progress after the stream opened arrived without a reload")
		w.currentURL()
		p.visit("/credentials/app")
		p.shot("credential")
	})

	t.Run("see a failed target's error", func(t *testing.T) {
		p.t = t
		p.visit("/credentials/broken")
		p.click(`a[href="/credentials/broken/confirm/rotate"]`, "#confirm")
		p.click("#confirm", "#job-state")
		// The page follows the job until it is over, then shows the outcome.
		p.do(chromedp.WaitNotPresent(chromedp.ID("live")), chromedp.WaitVisible(chromedp.CSS(".badge.d-failed")))
		p.look()
		p.visit("/credentials/broken")
		msg := eval[string](p, `[...document.querySelectorAll("#tg ~ .table-wrap td.error-text, section td.error-text")].map(e => e.textContent).join("\n")`)
		require.Contains(t, msg, "broken.env", "the target's error names the file it could not write")
		require.Contains(t, eval[string](p, `document.querySelector("h1 .badge").textContent`), "failing")
		p.shot("failure")
		// The schedule (every 0s, run at start) may have queued its own
		// rotation of broken, which waited for the lease and now resumes
		// the failed one: while it runs the row says "running: publish".
		// What must show once nothing runs is where the rotation stopped.
		var row string
		for deadline := time.Now().Add(20 * time.Second); ; {
			p.visit("/")
			row = eval[string](p, `document.querySelector("tr.row-failing").textContent`)
			if strings.Contains(row, "stopped at publish") || time.Now().After(deadline) {
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
		require.Contains(t, row, "broken.env")
		require.Contains(t, eval[string](p, `document.getElementById("summary").textContent`), "1 failing")
		require.Contains(t, row, "stopped at publish")
		p.shot("overview")
	})

	t.Run("a forged cross-site POST is refused", func(t *testing.T) {
		p.t = t
		before := w.jobCount()
		target := w.srv.URL + "/credentials/app/rotate"
		evil := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
			field := ""
			if tok := r.URL.Query().Get("csrf"); tok != "" {
				field = `<input type="hidden" name="csrf" value="` + tok + `">`
			}
			rw.Header().Set("Content-Type", "text/html")
			fmt.Fprintf(rw, `<!doctype html><title>win a prize</title><form id="f" method="post" action="%s">%s</form>
<script>document.getElementById("f").submit()</script>`, target, field)
		}))
		defer evil.Close()
		// Another origin on the same host (same site: the cookie goes
		// along), with no token and with a made-up one: Origin gives it away.
		for _, q := range []string{"", "?csrf=" + strings.Repeat("0", 64)} {
			p.do(chromedp.Navigate(evil.URL+q), chromedp.WaitVisible(chromedp.CSS("p.error")))
			require.Equal(t, "/credentials/app/rotate", p.location())
			require.Contains(t, eval[string](p, `document.querySelector("p.error").textContent`), "another site")
			p.look()
		}
		// Another site (localhost is not 127.0.0.1): SameSite=Strict keeps
		// the session cookie home, so the console sees no session at all.
		other := strings.Replace(evil.URL, "127.0.0.1", "localhost", 1)
		p.do(chromedp.Navigate(other), chromedp.WaitVisible(chromedp.CSS("p.error")))
		require.Contains(t, eval[string](p, `document.querySelector("p.error").textContent`), "not signed in")
		p.look()
		// The console's own page without the form's token.
		p.visit("/credentials/app")
		status := eval[int](p, `fetch("/credentials/app/rotate", {method: "POST", body: new URLSearchParams({reason: "no token"})}).then(r => r.status)`)
		require.Equal(t, http.StatusForbidden, status)
		require.Equal(t, before, w.jobCount(), "no forged POST queued a job")
	})

	t.Run("a read-only token sees no buttons and cannot post", func(t *testing.T) {
		v := newTab(t, w, 1024, 768)
		v.signIn(readTok)
		before := w.jobCount()
		for _, path := range []string{"/", "/credentials/app", "/credentials/broken", "/audit"} {
			v.visit(path)
			buttons := eval[[]string](v, `[...document.querySelectorAll("a.button, form[method=post]:not(.signout)")].map(e => e.outerHTML)`)
			require.Empty(t, buttons, path)
		}
		v.visit("/credentials/app/confirm/rotate")
		require.Contains(t, eval[string](v, `document.querySelector("p.error").textContent`), "has scope read")
		v.visit("/credentials/app")
		for _, a := range []string{"rotate", "revoke", "retire"} {
			status := eval[int](v, `fetch("/credentials/app/`+a+`", {method: "POST",
				body: new URLSearchParams({csrf: document.querySelector("input[name=csrf]").value})}).then(r => r.status)`)
			require.Equal(t, http.StatusForbidden, status, a)
		}
		require.Equal(t, before, w.jobCount())
	})

	t.Run("without JavaScript", func(t *testing.T) {
		n := newTab(t, w, 1024, 768)
		n.do(chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			_, err := cdp.Call(ctx, tg, emulation.SetScriptExecutionDisabled, emulation.SetScriptExecutionDisabledParams{Value: true})
			return err
		}))
		n.signIn(adminTok)
		n.visit("/credentials/app")
		n.click(`a[href="/credentials/app/confirm/rotate"]`, "#confirm")
		w.gate.hold()
		html := n.click("#confirm", "#job-state")
		// Plain forms did it; no script ran (live.js would have changed the
		// note), and the page refreshes itself (<noscript> meta refresh)
		// until the job is over.
		require.Contains(t, html, `<meta http-equiv="refresh" content="3">`)
		note, err := chromedp.Run(n.ctx, chromedp.Text(chromedp.ID("live-note")))
		require.NoError(t, err)
		require.Contains(t, note, "this page refreshes itself")
		w.gate.release()
		n.do(chromedp.WaitVisible(chromedp.CSS(`#job-state[data-state="completed"]`)))
		html = n.look()
		require.NotContains(t, html, "http-equiv", "a finished job's page stops refreshing")
		require.Contains(t, html, `<span class="badge s-done">done</span> finish`)
		w.currentURL()
	})

	t.Run("375 px wide, by keyboard", func(t *testing.T) {
		m := newTab(t, w, 375, 812)
		m.signIn(adminTok)
		for _, path := range []string{"/", "/credentials/app", "/audit"} {
			m.visit(path)
			fits := eval[[]int](m, `[document.documentElement.scrollWidth, window.innerWidth]`)
			require.LessOrEqual(t, fits[0], fits[1], "%s scrolls sideways at 375 px", path)
		}
		// Tab from the top: the skip link first, and every stop shows a
		// focus ring.
		m.visit("/")
		for i := range 6 {
			m.do(chromedp.KeyEvent("\t"))
			f := eval[map[string]string](m, `(() => { const e = document.activeElement, s = getComputedStyle(e);
				return {tag: e.tagName, text: e.textContent.trim().slice(0, 30), style: s.outlineStyle, width: s.outlineWidth}; })()`)
			if i == 0 {
				require.Equal(t, "Skip to content", f["text"])
			}
			require.NotEqual(t, "BODY", f["tag"], "stop %d", i)
			require.NotEqual(t, "none", f["style"], "stop %d (%s %q) shows focus", i, f["tag"], f["text"])
			require.NotEqual(t, "0px", f["width"], "stop %d (%s %q) shows focus", i, f["tag"], f["text"])
		}
	})
}
