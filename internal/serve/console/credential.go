package console

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/rotorhq/rotor/internal/engine"
	"github.com/rotorhq/rotor/internal/provider"
	"github.com/rotorhq/rotor/internal/serve"
	"github.com/rotorhq/rotor/internal/serve/auth"
	"github.com/rotorhq/rotor/internal/store"
)

// credentialOf finds the path's credential in the config in force, or
// answers 404 naming the problem.
func (c *console) credentialOf(w http.ResponseWriter, r *http.Request) (*engine.Credential, bool) {
	cr, err := c.opts.Backend.Config().Credential(r.PathValue("name"))
	if err != nil {
		c.fail(w, r, http.StatusNotFound, err.Error())
		return nil, false
	}
	return cr, true
}

// credentialPage is everything about one credential: its status (S),
// the sessions on its old role, its latest rotation's journal, its
// versions and rotations, and what its next rotation would do.
type credentialPage struct {
	head
	S         *engine.CredentialStatus
	Health    string
	Sessions  []provider.Session
	Latest    *rotationView // nil: never rotated
	Versions  []*store.Version
	Rotations []*store.Rotation
	Plan      *engine.Plan
	PlanError string
}

// confirmPage asks before an action; only its form posts.
type confirmPage struct {
	head
	Name   string
	Action string // rotate, revoke or retire: the path it posts to
	Label  string
	Says   string // what will happen
	Retire bool
}

func (c *console) credential(w http.ResponseWriter, r *http.Request, se *session) {
	cr, ok := c.credentialOf(w, r)
	if !ok {
		return
	}
	b, ctx := c.opts.Backend, r.Context()
	st, err := b.Engine().Status(ctx, cr, engine.StatusOptions{})
	if err != nil {
		c.internalError(w, r, err)
		return
	}
	// One credential, looked at on purpose: worth asking the database who
	// still uses its old role, as `rotor status --live` does.
	st = c.liveStatus(ctx, cr, st)
	versions, err := b.Store().ListVersions(ctx, store.ListVersionsParams{Credential: cr.Name, Limit: 20})
	if err != nil {
		c.internalError(w, r, err)
		return
	}
	rots, err := b.Store().ListRotations(ctx, store.ListRotationsParams{Credential: cr.Name, Limit: 20})
	if err != nil {
		c.internalError(w, r, err)
		return
	}
	var latest *rotationView
	if len(rots) > 0 {
		if latest, err = c.rotationDetail(r, rots[0]); err != nil {
			c.internalError(w, r, err)
			return
		}
	}
	plan, err := b.Engine().Plan(ctx, cr, engine.PlanOptions{Offline: true})
	var planErr string
	if err != nil {
		planErr = err.Error()
	}
	c.render(w, r, http.StatusOK, se, &credentialPage{head: head{Title: cr.Name}, S: st, Health: health(st),
		Versions: versions, Rotations: rots, Latest: latest, Plan: plan, PlanError: planErr,
		Sessions: oldSessions(st)})
}

// actions are what the credential page's buttons ask for, with the scope
// each needs and what the confirmation page says will happen.
var actions = map[string]struct {
	kind  serve.Kind
	scope auth.Scope
	label string
	says  string
}{
	"rotate": {serve.KindRotate, auth.ScopeRotate, "Rotate now",
		"rotor makes a new password for %s, sets it on the database, logs in with it, writes it to every target (%s) and reloads them. The old password keeps working until the rotation finishes as its strategy (%s) says."},
	"revoke": {serve.KindRevoke, auth.ScopeAdmin, "Revoke (leaked password)",
		"rotor rotates %s at once and, after writing the new password to every target (%s), ends every session of the old password and makes it unusable. Use it when the password leaked: programs still on the old password lose their connections. Strategy: %s."},
	"retire": {serve.KindRetire, auth.ScopeAdmin, "Retire the old role",
		"rotor retires the old role of %s's last rotation once the evidence says nothing uses it (targets: %s; strategy %s). Tick \"now\" to skip the wait: sessions still on the old role are ended."},
}

func targetNames(cr *engine.Credential) string {
	var names []string
	for _, t := range cr.Targets {
		names = append(names, t.Name)
	}
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}

func (c *console) confirm(w http.ResponseWriter, r *http.Request, se *session) {
	cr, ok := c.credentialOf(w, r)
	if !ok {
		return
	}
	a, ok := actions[r.PathValue("action")]
	if !ok {
		c.fail(w, r, http.StatusNotFound, fmt.Sprintf("%q is not an action; use rotate, revoke or retire.", r.PathValue("action")))
		return
	}
	if !se.id.Allows(a.scope) {
		c.fail(w, r, http.StatusForbidden, "Token "+se.id.Name+" has scope "+se.id.Scope.String()+"; "+r.PathValue("action")+" needs "+a.scope.String()+".")
		return
	}
	c.render(w, r, http.StatusOK, se, &confirmPage{head: head{Title: a.label + " — " + cr.Name}, Name: cr.Name,
		Action: r.PathValue("action"), Label: a.label, Says: fmt.Sprintf(a.says, cr.Name, targetNames(cr), cr.Strategy),
		Retire: a.kind == serve.KindRetire})
}

// action enqueues a job with the signed-in token's name as its actor and
// shows the job's page.
func (c *console) action(kind serve.Kind) handler {
	return func(w http.ResponseWriter, r *http.Request, se *session) {
		cr, ok := c.credentialOf(w, r)
		if !ok {
			return
		}
		reason := strings.TrimSpace(r.PostFormValue("reason"))
		if len(reason) > 500 {
			c.fail(w, r, http.StatusBadRequest, "The reason is longer than 500 characters; shorten it.")
			return
		}
		now := r.PostFormValue("now") == "on"
		if now && kind != serve.KindRetire {
			c.fail(w, r, http.StatusBadRequest, "\"now\" applies to retire only.")
			return
		}
		ctx := r.Context()
		job, err := c.opts.Backend.Enqueue(ctx, serve.Request{Credential: cr.Name, Kind: kind, Trigger: serve.TriggerAPI,
			Actor: se.id.Name, Reason: reason, Now: now})
		if errors.Is(err, serve.ErrUnknownCredential) {
			c.fail(w, r, http.StatusNotFound, err.Error())
			return
		}
		if err != nil {
			c.internalError(w, r, err)
			return
		}
		c.auditRequest(r, cr.Name, job, kind, se.id.Name, reason)
		http.Redirect(w, r, fmt.Sprintf("/jobs/%d", job.ID), http.StatusSeeOther)
	}
}

// auditRequest records who asked, like the API does. A failure is only
// logged: the job is queued, and an error page would make them ask again.
func (c *console) auditRequest(r *http.Request, credential string, job *serve.Job, kind serve.Kind, actor, reason string) {
	d, _ := json.Marshal(map[string]any{"job_id": job.ID, "kind": kind, "duplicate": job.Duplicate, "reason": reason, "via": "console"})
	detail := string(d)
	if _, err := c.opts.Backend.Store().AppendAudit(r.Context(), store.AppendAuditParams{Credential: credential, RotationID: job.RotationID,
		Event: "console." + string(kind) + "_requested", Actor: actor, Detail: detail, Now: time.Now().UTC()}); err != nil {
		c.log.Error("audit a console action", "credential", credential, "actor", actor, "error", err.Error())
	}
}
