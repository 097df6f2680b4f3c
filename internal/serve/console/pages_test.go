package console

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	nethtml "golang.org/x/net/html"

	"github.com/rotorhq/rotor/internal/engine"
	"github.com/rotorhq/rotor/internal/provider"
	"github.com/rotorhq/rotor/internal/serve"
	"github.com/rotorhq/rotor/internal/serve/auth"
	"github.com/rotorhq/rotor/internal/store"
)

// sample is one page as a visitor with session se sees it.
type sample struct {
	name string
	se   *session // nil: signed out
	p    page
}

// samplePages is every page, in the variants its markup branches on,
// with every string that comes from data passed through x: the identity
// for realistic pages, or a function returning a hostile value.
func samplePages(x func(string) string) []sample {
	t0 := time.Date(2026, 12, 4, 6, 0, 0, 0, time.UTC)
	at := func(m int) time.Time { return t0.Add(time.Duration(m) * time.Minute) }
	ptr := func(t time.Time) *time.Time { return &t }
	as := func(name string, scope auth.Scope) *session {
		return &session{id: auth.Identity{Name: x(name), Scope: scope}, csrf: x(strings.Repeat("ab", 32))}
	}
	admin, rotator, viewer := as("ops", auth.ScopeAdmin), as("ci", auth.ScopeRotate), as("viewer", auth.ScopeRead)

	sess := []provider.Session{
		{PID: 4100, Database: x("app"), ApplicationName: x("worker"), ClientAddr: x("10.0.0.7"), BackendStart: at(-120), State: x("idle")},
		{PID: 4101, Database: x("app"), BackendStart: at(-60), State: x("active")},
	}
	targets := []engine.TargetStatus{
		{Name: x("env"), Type: x("dotenv"), Destination: x("/srv/app/.env"), State: store.DeliveryState(x("verified")), Attempts: 1},
		{Name: x("github"), Type: x("github"), Destination: x("org/app"), State: store.DeliveryState(x("failed")), Attempts: 5,
			Error: x("github: PUT secret DATABASE_URL: 403 Resource not accessible by integration")},
	}
	pending := &engine.PendingRetirement{RotationID: 7, Role: x("app_green"), Status: store.Status(x("switched")),
		SwitchedAt: at(-60), GraceUntil: at(60), Deadline: at(24 * 60), LastLogin: ptr(at(-30)),
		RetiresWhen: x("retires when its 1 session(s) end (worker from 10.0.0.7), then it stays quiet for 5m"), Sessions: sess[:1]}
	full := &engine.CredentialStatus{Name: x("app"), Strategy: engine.StrategyDual, Role: x("app_blue"), Version: 3,
		Fingerprint: x("hmac-sha256:3f9a1c0e"), ActivatedAt: ptr(at(-3 * 24 * 60)), Age: 72 * time.Hour, Schedule: x("every 30d"),
		NextDue: ptr(at(27 * 24 * 60)), Due: true, Targets: targets, PendingRetirement: pending, OldSessions: sess[1:],
		Warnings: []string{x("could not ask the database who still uses the old role: timeout")},
		Last:     &engine.RotationSummary{ID: 7, Status: store.Status(x("switched")), Error: x("confirm: drain timed out")}}
	never := &engine.CredentialStatus{Name: x("fresh"), Strategy: x("single"), Schedule: x("manual"), Targets: targets[:1]}
	stopped := &engine.CredentialStatus{Name: x("broken"), Strategy: x("single"), Role: x("broken"), Version: 1, Schedule: x("every 7d"),
		Active: &engine.RotationSummary{ID: 9, Step: x("publish"), Error: x("env: read-only file system")}, Targets: targets[1:]}
	running := &engine.CredentialStatus{Name: x("busy"), Strategy: x("single"), Version: 2, Schedule: x("every 7d"),
		Active: &engine.RotationSummary{ID: 10, Step: x("apply")}}
	healthy := &engine.CredentialStatus{Name: x("quiet"), Strategy: engine.StrategyDual, Role: x("quiet_blue"), Version: 4,
		Age: 90 * time.Minute, Schedule: x("every 30d"), NextDue: ptr(at(30 * 24 * 60)), Targets: targets[:1],
		Last: &engine.RotationSummary{ID: 12, Status: store.Status(x("switched"))},
		PendingRetirement: &engine.PendingRetirement{RotationID: 12, Role: x("quiet_green"), Status: store.Status(x("switched")),
			RetiresWhen: x("retires once the grace ends")}}

	rot := &store.Rotation{ID: 7, Credential: x("app"), Status: store.Status(x("switched")), Strategy: x("dual"), Trigger: x("api"),
		Revoke: true, Step: x("confirm"), Error: x("confirm: drain timed out"), Outcome: x("switched to app_blue"), StartedAt: at(-70), FinishedAt: at(-60)}
	journaled := &rotationView{Rotation: rot,
		Steps: []stepLine{
			{Name: x("prepare"), Status: store.StepStatus(x("done")), At: at(-69), Detail: x(`{"version":3}`), Tries: 1},
			{Name: x("publish"), Status: store.StepStatus(x("failed")), At: at(-65), Detail: x("env: read-only"), Tries: 2},
			{Name: x("confirm"), Status: store.StepStatus(x("started")), At: at(-61), Tries: 1},
		},
		Deliveries: []*store.Delivery{
			{Target: x("env"), State: store.DeliveryState(x("verified")), Attempts: 1, Fingerprint: x("hmac-sha256:3f9a"), UpdatedAt: at(-64)},
			{Target: x("github"), State: store.DeliveryState(x("failed")), Attempts: 5, Error: x("403 Forbidden"), UpdatedAt: at(-63)},
		}}
	empty := &rotationView{Rotation: &store.Rotation{ID: 11, Credential: x("app"), Status: store.Status(x("active")),
		Strategy: x("single"), Trigger: x("schedule"), StartedAt: at(-1)}}

	credential := &credentialPage{head: head{Title: x("app")}, S: full, Health: x("failing"), Sessions: oldSessions(full), Latest: journaled,
		Versions: []*store.Version{
			{Seq: 3, Role: x("app_blue"), Stage: store.Stage(x("current")), Fingerprint: x("hmac-sha256:3f9a"), CreatedAt: at(-70), ActivatedAt: at(-62)},
			{Seq: 2, Role: x("app_green"), Stage: store.Stage(x("previous")), Fingerprint: x("hmac-sha256:77aa"), CreatedAt: at(-900), ActivatedAt: at(-890), RetiredAt: at(-62)},
		},
		Rotations: []*store.Rotation{rot, {ID: 3, Status: store.Status(x("succeeded")), Trigger: x("schedule"), Step: x("finish"), StartedAt: at(-900)}},
		Plan: &engine.Plan{Strategy: x("dual"), Provider: x("postgres"), FromRole: x("app_blue"), ToRole: x("app_green"),
			Resume:   &engine.RotationSummary{ID: 9},
			Actions:  []string{x("create a password for app_green"), x("write it to 2 targets")},
			Warnings: []string{x("github cannot be read back")},
			Targets: []engine.PlanTarget{
				{Name: x("env"), Type: x("dotenv"), Destination: x("/srv/app/.env"), Keys: []string{x("DATABASE_URL"), x("PGPASSWORD")}, Reload: true, ReadBack: true},
				{Name: x("github"), Type: x("github"), Destination: x("org/app")},
			}},
		PlanError: x("plan: the provider is unreachable")}
	bare := &credentialPage{head: head{Title: x("fresh")}, S: never, Health: x("never"),
		Plan: &engine.Plan{Strategy: x("single"), Provider: x("postgres"), ToRole: x("fresh")}}

	// Dual, nobody on the old role, and no plan: the sessions section says
	// none, and the plan section is empty.
	quiet := &credentialPage{head: head{Title: x("quiet")}, S: healthy, Health: x("healthy"), PlanError: x("no plan")}

	overview := overviewData([]*engine.CredentialStatus{full, never, stopped, running, healthy}, "", "", "health")
	filtered := overviewData([]*engine.CredentialStatus{full, never}, "", "", "name")
	filtered.Rows, filtered.Q, filtered.Health, filtered.Sort = nil, x("zzz"), x("overdue"), x("name")

	finished := ptr(at(-1))
	job := &jobPage{head: head{Title: x("Job 12 — rotate app")}, J: &serve.Job{ID: 12, Credential: x("app"), Kind: serve.Kind(x("rotate")),
		Actor: x("ops"), State: x("running"), CreatedAt: at(-2), FinishedAt: finished, Duplicate: true,
		Errors: []string{x("attempt 1: publish: env: read-only")}}, R: journaled, Live: true}
	queued := &jobPage{head: head{Title: x("Job 13"), Refresh: 3}, J: &serve.Job{ID: 13, Credential: x("app"), Kind: serve.Kind(x("retire")),
		Actor: x("ci"), State: x("available"), CreatedAt: at(0)}}

	audit := &auditPage{head: head{Title: x("Audit log")}, Credentials: []*engine.Credential{{Name: x("app")}, {Name: x("broken")}},
		Credential: x("app"), Actor: x("ops"), Since: x("24h"), Until: x("1h"), Result: x("requested"),
		Events: []engine.HistoryEvent{
			{At: x("2026-12-04T06:00:00Z"), Credential: x("app"), RotationID: 7, Event: x("console.rotate_requested"), Result: x("requested"),
				Actor: x("ops"), Detail: json.RawMessage(x(`{"reason":"quarterly","via":"console"}`))},
			{At: x("2026-12-04T05:00:00Z"), Credential: x("broken"), Event: x("credential.checked"), Actor: x("schedule"), Detail: json.RawMessage(x("{}"))},
		}}
	badAudit := &auditPage{head: head{Title: x("Audit log")}, Credentials: audit.Credentials, Since: x("yesterdayish"),
		Error: x(`Since: "yesterdayish" is not a duration or a time`)}

	return []sample{
		{"signin", nil, &signinPage{Next: x("/credentials/app")}},
		{"signin refused", nil, &signinPage{Next: x("/"), Error: x("That token is not one rotor serve knows.")}},
		{"error signed out", nil, &errorPage{head: head{Title: x("Unauthorized")}, Message: x("You are not signed in.")}},
		{"error", viewer, &errorPage{head: head{Title: x("Not Found")}, Message: x("No page at /nope. Start from the overview.")}},
		{"overview", admin, overview},
		{"overview filtered to nothing", viewer, filtered},
		{"credential", admin, credential},
		{"credential rotate token", rotator, credential},
		{"credential never rotated", viewer, bare},
		{"credential dual, nobody on the old role", viewer, quiet},
		{"confirm rotate", rotator, &confirmPage{head: head{Title: x("Rotate now — app")}, Name: x("app"), Action: x("rotate"),
			Label: x("Rotate now"), Says: x("rotor makes a new password for app, … (dual).")}},
		{"confirm revoke", admin, &confirmPage{head: head{Title: x("Revoke — app")}, Name: x("app"), Action: "revoke",
			Label: x("Revoke (leaked password)"), Says: x("rotor rotates app at once …")}},
		{"confirm retire", admin, &confirmPage{head: head{Title: x("Retire — app")}, Name: x("app"), Action: x("retire"),
			Label: x("Retire the old role"), Says: x(`Tick "now" to skip the wait.`), Retire: true}},
		{"job", admin, job},
		{"job queued", rotator, queued},
		{"rotation live", viewer, &rotationPage{head: head{Title: x("Rotation 11 — app"), Refresh: 5}, R: empty, Live: true}},
		{"rotation", viewer, &rotationPage{head: head{Title: x("Rotation 7 — app")}, R: journaled}},
		{"audit", admin, audit},
		{"audit refused", admin, badAudit},
		{"audit empty", viewer, &auditPage{head: head{Title: x("Audit log")}}},
	}
}

// hostile are values an attacker might give a credential's name, a
// target's error, an actor or a reason: markup, an attribute break-out
// either way, a script URL, and a path with its own query and fragment.
var hostile = []string{
	`<script>alert(1)</script>`,
	`"><img src=x onerror=alert(1)>`,
	`' onmouseover='x`,
	`javascript:alert(1)`,
	`a b/c?d#e`,
	`</title><script>alert(1)</script>`,
	`&amp; &lt;b&gt; &#34;`,
	`-->< !--`,
}

// TestPagesEscapeData renders every page with every string from data set
// to one hostile value at a time: the markup around it is the console's
// own (no element, attribute or link it did not write), the value reads
// back as it was, and links carry it as one percent-escaped segment.
func TestPagesEscapeData(t *testing.T) {
	for i, evil := range hostile {
		for _, s := range samplePages(func(string) string { return evil }) {
			t.Run(fmt.Sprintf("%s/hostile%d", s.name, i), func(t *testing.T) {
				t.Logf("every string from data: %q", evil)
				c := testConsole()
				rec := httptest.NewRecorder()
				c.render(rec, httptest.NewRequest("GET", "/", nil), http.StatusOK, s.se, s.p)
				require.Equal(t, http.StatusOK, rec.Code)
				body := rec.Body.String()
				doc, err := nethtml.Parse(strings.NewReader(body))
				require.NoError(t, err)

				var said []string // texts and attribute values, as a browser reads them
				scripts := 0
				for n := range doc.Descendants() {
					switch n.Type {
					case nethtml.TextNode:
						said = append(said, n.Data)
					case nethtml.ElementNode:
						require.Contains(t, consoleElements, n.Data, "an element the console does not write")
						if n.Data == "script" {
							scripts++
							require.Equal(t, []nethtml.Attribute{{Key: "src", Val: "/static/live.js"}, {Key: "defer"}}, n.Attr)
							require.Nil(t, n.FirstChild, "the script has no inline code")
						}
						for _, a := range n.Attr {
							said = append(said, a.Val)
							require.True(t, consoleAttribute(a.Key), "<%s %s=%q>: an attribute the console does not write", n.Data, a.Key, a.Val)
							if a.Key == "href" || a.Key == "action" {
								u, err := url.Parse(a.Val)
								require.NoError(t, err, a.Val)
								require.True(t, u.Scheme == "" && u.Host == "" && (strings.HasPrefix(a.Val, "/") || strings.HasPrefix(a.Val, "#")),
									"%s=%q stays on the console", a.Key, a.Val)
								require.False(t, strings.ContainsAny(strings.TrimPrefix(a.Val, "#"), "?#"),
									"%s=%q: data makes no query or fragment", a.Key, a.Val)
							}
						}
					}
				}
				require.Equal(t, 1, scripts, "only the console's own script")
				require.Contains(t, said, evil, "the value reads back as it was")
				if strings.Contains(body, `href="/credentials/`) {
					link := `href="/credentials/` + escapeText(url.PathEscape(evil))
					require.True(t, strings.Contains(body, link), "a link carries the name as one segment: %s", link)
				}
			})
		}
	}
}

// consoleElements are the elements the pages write.
var consoleElements = []string{"html", "head", "meta", "noscript", "title", "link", "script", "body", "a", "header", "nav", "form",
	"input", "span", "button", "main", "h1", "h2", "h3", "p", "dl", "dt", "dd", "code", "strong", "ul", "ol", "li", "section",
	"div", "table", "caption", "thead", "tbody", "tr", "th", "td", "label", "select", "option", "br"}

// consoleAttribute says whether the pages write attribute key somewhere.
func consoleAttribute(key string) bool {
	return slices.Contains([]string{"lang", "charset", "name", "content", "http-equiv", "rel", "href", "src", "defer", "class", "id",
		"tabindex", "method", "action", "type", "value", "for", "role", "scope", "colspan", "selected", "maxlength", "autocomplete",
		"required", "autofocus"}, key) || strings.HasPrefix(key, "aria-") || strings.HasPrefix(key, "data-")
}

func escapeText(s string) string {
	var b strings.Builder
	_, _ = escaper.WriteString(&b, s)
	return b.String()
}

// TestRenderFailureIs500: a page that fails while it is written answers
// 500 with nothing of the page, and the cause goes to the log.
func TestRenderFailureIs500(t *testing.T) {
	var logs strings.Builder
	c := testConsole()
	c.log = slog.New(slog.NewTextHandler(&logs, nil))
	rec := httptest.NewRecorder()
	c.render(rec, httptest.NewRequest("GET", "/jobs/1", nil), http.StatusOK, adminSession(), &jobPage{}) // no job: a nil J
	require.Equal(t, http.StatusInternalServerError, rec.Code)
	require.NotContains(t, rec.Body.String(), "<html")
	require.Contains(t, rec.Body.String(), "see the service log")
	require.Contains(t, logs.String(), "nil pointer")
	require.Contains(t, logs.String(), fmt.Sprintf("%T", &jobPage{}))
}
