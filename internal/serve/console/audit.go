package console

import (
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/rotorhq/rotor/internal/config"
	"github.com/rotorhq/rotor/internal/engine"
	"github.com/rotorhq/rotor/internal/store"
)

// auditPage is the audit log: the events the filters keep, or why the
// filters are wrong.
type auditPage struct {
	head
	// Credentials are the config's: the credential filter's choices.
	Credentials []*engine.Credential
	// Credential, Actor, Since, Until and Result are the filters as asked.
	Credential, Actor, Since, Until, Result string

	Error  string // what is wrong with the filters; no Events then
	Events []engine.HistoryEvent
}

// audit shows the audit log with the filters of `rotor history`
// (credential, since, result), the actor, and an end (until).
func (c *console) audit(w http.ResponseWriter, r *http.Request, se *session) {
	b := c.opts.Backend
	q := r.URL.Query()
	cred, actor, since, result := q.Get("credential"), strings.TrimSpace(q.Get("actor")), strings.TrimSpace(q.Get("since")), q.Get("result")
	until := strings.TrimSpace(q.Get("until"))
	data := &auditPage{head: head{Title: "Audit log"}, Credential: cred, Actor: actor, Since: since, Until: until, Result: result,
		Credentials: b.Config().Credentials}
	bad := func(msg string) {
		data.Error = msg
		c.render(w, r, http.StatusBadRequest, se, data)
	}
	p := store.ListAuditParams{Credential: cred, Limit: 200}
	if cred != "" {
		if _, err := b.Config().Credential(cred); err != nil {
			bad(err.Error())
			return
		}
	}
	if since != "" {
		t, err := config.ParseSince(since, time.Now().UTC())
		if err != nil {
			bad("Since: " + err.Error())
			return
		}
		p.Since = t
	}
	var before time.Time
	if until != "" {
		t, err := config.ParseSince(until, time.Now().UTC())
		if err != nil {
			bad("Until: " + err.Error())
			return
		}
		if !p.Since.IsZero() && t.Before(p.Since) {
			bad("Until (" + until + ") is before Since (" + since + "); swap them.")
			return
		}
		before = t
	}
	if result != "" {
		if !slices.Contains(engine.Results, result) {
			bad("Result " + result + " is not one of " + strings.Join(engine.Results, ", ") + ".")
			return
		}
		p.Events = engine.EventsWithResult(result)
	}
	if actor != "" || !before.IsZero() {
		p.Limit = 2000 // the store filters by neither actor nor end; read more, keep fewer
	}
	evs, err := b.Store().ListAudit(r.Context(), p)
	if err != nil {
		c.internalError(w, r, err)
		return
	}
	var out []engine.HistoryEvent
	for _, ev := range evs {
		if actor != "" && ev.Actor != actor {
			continue
		}
		if !before.IsZero() && ev.At.After(before) {
			continue
		}
		out = append(out, engine.HistoryEventOf(ev))
		if len(out) == 200 {
			break
		}
	}
	data.Events = out
	c.render(w, r, http.StatusOK, se, data)
}
