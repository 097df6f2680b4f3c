package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/rotorhq/rotor/internal/config"
	"github.com/rotorhq/rotor/internal/engine"
	"github.com/rotorhq/rotor/internal/serve"
	"github.com/rotorhq/rotor/internal/serve/auth"
	"github.com/rotorhq/rotor/internal/store"
)

type credentialList struct {
	Credentials []*engine.CredentialStatus `json:"credentials"`
}

func (a *api) listCredentials(w http.ResponseWriter, r *http.Request, _ auth.Identity) {
	b := a.opts.Backend
	sts, err := b.Engine().StatusAll(r.Context(), b.Config().Credentials, engine.StatusOptions{})
	if err != nil {
		a.internalError(w, r, err)
		return
	}
	out := credentialList{Credentials: append([]*engine.CredentialStatus{}, sts...)}
	writeJSON(w, http.StatusOK, out)
}

// credential finds the path's credential in the config in force, or
// answers 404 naming the known ones.
func (a *api) credential(w http.ResponseWriter, r *http.Request) (*engine.Credential, bool) {
	cr, err := a.opts.Backend.Config().Credential(r.PathValue("name"))
	if err != nil {
		writeError(w, http.StatusNotFound, "unknown_credential", err.Error())
		return nil, false
	}
	return cr, true
}

func (a *api) getCredential(w http.ResponseWriter, r *http.Request, _ auth.Identity) {
	cr, ok := a.credential(w, r)
	if !ok {
		return
	}
	st, err := a.opts.Backend.Engine().Status(r.Context(), cr, engine.StatusOptions{})
	if err != nil {
		a.internalError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, st)
}

// plan is offline: a GET must not make rotor log in anywhere.
func (a *api) plan(w http.ResponseWriter, r *http.Request, _ auth.Identity) {
	cr, ok := a.credential(w, r)
	if !ok {
		return
	}
	p, err := a.opts.Backend.Engine().Plan(r.Context(), cr, engine.PlanOptions{Offline: true})
	if err != nil {
		a.internalError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, p)
}

// actionBody is the optional body of rotate, revoke and retire.
type actionBody struct {
	Reason string `json:"reason"`
	// Now (retire only) skips the wait for the evidence.
	Now bool `json:"now"`
}

func readAction(w http.ResponseWriter, r *http.Request) (actionBody, bool) {
	var body actionBody
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		writeError(w, http.StatusBadRequest, "bad_body", "could not read the body: "+err.Error())
		return body, false
	}
	if len(strings.TrimSpace(string(data))) == 0 {
		return body, true
	}
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil {
		writeError(w, http.StatusBadRequest, "bad_body", "the body must be a JSON object like {\"reason\": \"…\"} (retire also takes \"now\": true): "+err.Error())
		return body, false
	}
	return body, true
}

func (a *api) rotate(w http.ResponseWriter, r *http.Request, id auth.Identity) {
	a.enqueue(w, r, id, serve.KindRotate, engine.EventRotateRequested)
}

func (a *api) revoke(w http.ResponseWriter, r *http.Request, id auth.Identity) {
	a.enqueue(w, r, id, serve.KindRevoke, engine.EventRevokeRequested)
}

func (a *api) retire(w http.ResponseWriter, r *http.Request, id auth.Identity) {
	a.enqueue(w, r, id, serve.KindRetire, engine.EventRetireRequested)
}

func (a *api) enqueue(w http.ResponseWriter, r *http.Request, id auth.Identity, kind serve.Kind, event string) {
	cr, ok := a.credential(w, r)
	if !ok {
		return
	}
	body, ok := readAction(w, r)
	if !ok {
		return
	}
	if body.Now && kind != serve.KindRetire {
		writeError(w, http.StatusBadRequest, "bad_body", "\"now\" applies to retire only; leave it out")
		return
	}
	key := r.Header.Get("Idempotency-Key")
	if len(key) > 200 {
		writeError(w, http.StatusBadRequest, "bad_idempotency_key", "Idempotency-Key is longer than 200 characters; send a UUID")
		return
	}
	job, err := a.opts.Backend.Enqueue(r.Context(), serve.Request{Credential: cr.Name, Kind: kind, Trigger: serve.TriggerAPI,
		Actor: id.Name, IdempotencyKey: key, Reason: body.Reason, Now: body.Now})
	if errors.Is(err, serve.ErrUnknownCredential) {
		writeError(w, http.StatusNotFound, "unknown_credential", err.Error())
		return
	}
	if err != nil {
		a.internalError(w, r, err)
		return
	}
	a.audit(r.Context(), cr.Name, job.RotationID, event, id.Name, map[string]any{"job_id": job.ID, "kind": kind, "duplicate": job.Duplicate, "idempotency_key": key, "reason": body.Reason})
	writeJSON(w, http.StatusAccepted, job)
}

// audit records a change asked for through the API with the token's
// name. A failure is logged: the job is already queued, and refusing the
// answer would make the caller ask again.
func (a *api) audit(ctx context.Context, credential string, rotationID int64, event, actor string, detail map[string]any) {
	d, _ := json.Marshal(detail)
	if _, err := a.opts.Backend.Store().AppendAudit(ctx, store.AppendAuditParams{Credential: credential, RotationID: rotationID,
		Event: event, Actor: actor, Detail: string(d), Now: time.Now().UTC()}); err != nil {
		a.log.Error("audit an API call", "event", event, "credential", credential, "actor", actor, "error", err.Error())
	}
}

func pathID(w http.ResponseWriter, r *http.Request) (int64, bool) {
	n, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || n < 1 {
		writeError(w, http.StatusBadRequest, "bad_id", fmt.Sprintf("id %q: write a positive integer", r.PathValue("id")))
		return 0, false
	}
	return n, true
}

func (a *api) job(w http.ResponseWriter, r *http.Request, _ auth.Identity) {
	n, ok := pathID(w, r)
	if !ok {
		return
	}
	job, err := a.opts.Backend.Job(r.Context(), n)
	if errors.Is(err, serve.ErrNoJob) {
		writeError(w, http.StatusNotFound, "no_job", fmt.Sprintf("no job %d", n))
		return
	}
	if err != nil {
		a.internalError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, job)
}

// Rotation is a rotation as the API shows it, with its journal and its
// targets' deliveries when asked for one.
type Rotation struct {
	ID         int64        `json:"id"`
	Credential string       `json:"credential"`
	Status     store.Status `json:"status"`
	Strategy   string       `json:"strategy"`
	Trigger    string       `json:"trigger"`
	Revoke     bool         `json:"revoke"`
	Step       string       `json:"step"`
	Error      string       `json:"error,omitempty"`
	Outcome    string       `json:"outcome,omitempty"`
	StartedAt  time.Time    `json:"started_at"`
	UpdatedAt  time.Time    `json:"updated_at"`
	AppliedAt  *time.Time   `json:"applied_at,omitempty"`
	FinishedAt *time.Time   `json:"finished_at,omitempty"`
	Steps      []Step       `json:"steps,omitempty"`
	Targets    []Delivery   `json:"targets,omitempty"`
}

// Step is one journal entry.
type Step struct {
	Name   string           `json:"name"`
	Status store.StepStatus `json:"status"`
	Detail string           `json:"detail,omitempty"`
	At     time.Time        `json:"at"`
}

// Delivery is one target's state in one rotation, with its attempts.
type Delivery struct {
	Target      string              `json:"target"`
	State       store.DeliveryState `json:"state"`
	Fingerprint string              `json:"fingerprint,omitempty"`
	Attempts    int                 `json:"attempts"`
	Error       string              `json:"error,omitempty"`
	Detail      string              `json:"detail,omitempty"`
	UpdatedAt   time.Time           `json:"updated_at"`
}

func optTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

func rotationOf(r *store.Rotation) Rotation {
	return Rotation{ID: r.ID, Credential: r.Credential, Status: r.Status, Strategy: r.Strategy, Trigger: r.Trigger, Revoke: r.Revoke,
		Step: r.Step, Error: r.Error, Outcome: r.Outcome, StartedAt: r.StartedAt, UpdatedAt: r.UpdatedAt,
		AppliedAt: optTime(r.AppliedAt), FinishedAt: optTime(r.FinishedAt)}
}

type rotationList struct {
	Rotations []Rotation `json:"rotations"`
}

func queryLimit(w http.ResponseWriter, r *http.Request, def int) (int, bool) {
	s := r.URL.Query().Get("limit")
	if s == "" {
		return def, true
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > 1000 {
		writeError(w, http.StatusBadRequest, "bad_limit", fmt.Sprintf("limit %q: write a number from 1 to 1000", s))
		return 0, false
	}
	return n, true
}

// queryCredential reads ?credential=, which must name a configured
// credential when given.
func (a *api) queryCredential(w http.ResponseWriter, r *http.Request) (string, bool) {
	name := r.URL.Query().Get("credential")
	if name == "" {
		return "", true
	}
	if _, err := a.opts.Backend.Config().Credential(name); err != nil {
		writeError(w, http.StatusNotFound, "unknown_credential", err.Error())
		return "", false
	}
	return name, true
}

func (a *api) listRotations(w http.ResponseWriter, r *http.Request, _ auth.Identity) {
	name, ok := a.queryCredential(w, r)
	if !ok {
		return
	}
	limit, ok := queryLimit(w, r, 50)
	if !ok {
		return
	}
	rots, err := a.opts.Backend.Store().ListRotations(r.Context(), store.ListRotationsParams{Credential: name, Limit: limit})
	if err != nil {
		a.internalError(w, r, err)
		return
	}
	out := rotationList{Rotations: []Rotation{}}
	for _, rot := range rots {
		out.Rotations = append(out.Rotations, rotationOf(rot))
	}
	writeJSON(w, http.StatusOK, out)
}

func (a *api) getRotation(w http.ResponseWriter, r *http.Request, _ auth.Identity) {
	n, ok := pathID(w, r)
	if !ok {
		return
	}
	st := a.opts.Backend.Store()
	// The store has no lookup by id; rotations are few per credential
	// and listed from an index, so a scan is cheap enough here.
	rots, err := st.ListRotations(r.Context(), store.ListRotationsParams{})
	if err != nil {
		a.internalError(w, r, err)
		return
	}
	i := slices.IndexFunc(rots, func(x *store.Rotation) bool { return x.ID == n })
	if i < 0 {
		writeError(w, http.StatusNotFound, "no_rotation", fmt.Sprintf("no rotation %d", n))
		return
	}
	out := rotationOf(rots[i])
	steps, err := st.ListSteps(r.Context(), store.ListStepsParams{RotationID: n})
	if err != nil {
		a.internalError(w, r, err)
		return
	}
	for _, s := range steps {
		out.Steps = append(out.Steps, Step{Name: s.Name, Status: s.Status, Detail: s.Detail, At: s.At})
	}
	dels, err := st.ListDeliveries(r.Context(), store.ListDeliveriesParams{RotationID: n})
	if err != nil {
		a.internalError(w, r, err)
		return
	}
	for _, d := range dels {
		out.Targets = append(out.Targets, Delivery{Target: d.Target, State: d.State, Fingerprint: d.Fingerprint, Attempts: d.Attempts,
			Error: d.Error, Detail: d.Detail, UpdatedAt: d.UpdatedAt})
	}
	writeJSON(w, http.StatusOK, out)
}

// HistoryEvent is one audit event, as `rotor history --json` prints it.
type HistoryEvent = engine.HistoryEvent

type historyList struct {
	Events []HistoryEvent `json:"events"`
}

// history takes the filters of `rotor history`: credential, since (a
// duration back from now or a time), result, limit.
func (a *api) history(w http.ResponseWriter, r *http.Request, _ auth.Identity) {
	name, ok := a.queryCredential(w, r)
	if !ok {
		return
	}
	limit, ok := queryLimit(w, r, 50)
	if !ok {
		return
	}
	p := store.ListAuditParams{Credential: name, Limit: limit}
	if s := r.URL.Query().Get("since"); s != "" {
		t, err := config.ParseSince(s, time.Now().UTC())
		if err != nil {
			writeError(w, http.StatusBadRequest, "bad_since", "since "+err.Error())
			return
		}
		p.Since = t
	}
	if res := r.URL.Query().Get("result"); res != "" {
		if !slices.Contains(engine.Results, res) {
			writeError(w, http.StatusBadRequest, "bad_result", fmt.Sprintf("result %q: use one of %s", res, strings.Join(engine.Results, ", ")))
			return
		}
		p.Events = engine.EventsWithResult(res)
	}
	events, err := a.opts.Backend.Store().ListAudit(r.Context(), p)
	if err != nil {
		a.internalError(w, r, err)
		return
	}
	out := historyList{Events: []HistoryEvent{}}
	for _, ev := range events {
		out.Events = append(out.Events, engine.HistoryEventOf(ev))
	}
	writeJSON(w, http.StatusOK, out)
}
