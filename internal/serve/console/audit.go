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

// audit shows the audit log with the filters of `rotor history`
// (credential, since, result) and the actor.
func (c *console) audit(w http.ResponseWriter, r *http.Request, se *session) {
	b := c.opts.Backend
	q := r.URL.Query()
	cred, actor, since, result := q.Get("credential"), strings.TrimSpace(q.Get("actor")), strings.TrimSpace(q.Get("since")), q.Get("result")
	data := map[string]any{"Title": "Audit log", "Credential": cred, "Actor": actor, "Since": since, "Result": result,
		"Results": engine.Results, "Credentials": b.Config().Credentials}
	bad := func(msg string) {
		data["Error"] = msg
		c.render(w, r, http.StatusBadRequest, "audit", se, data)
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
	if result != "" {
		if !slices.Contains(engine.Results, result) {
			bad("Result " + result + " is not one of " + strings.Join(engine.Results, ", ") + ".")
			return
		}
		p.Events = engine.EventsWithResult(result)
	}
	if actor != "" {
		p.Limit = 2000 // the store does not filter by actor; read more, keep fewer
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
		out = append(out, engine.HistoryEventOf(ev))
		if len(out) == 200 {
			break
		}
	}
	data["Events"] = out
	c.render(w, r, http.StatusOK, "audit", se, data)
}
