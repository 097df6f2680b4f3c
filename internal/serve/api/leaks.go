package api

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"strings"

	"github.com/rotorhq/rotor/internal/engine"
	"github.com/rotorhq/rotor/internal/secret"
	"github.com/rotorhq/rotor/internal/serve"
	"github.com/rotorhq/rotor/internal/serve/auth"
)

// LeakResult says what a leak report matched, never the secret itself.
type LeakResult struct {
	Matched bool `json:"matched"`
	// Credential, Role, Version and Stage name the version the secret is.
	Credential string `json:"credential,omitempty"`
	Role       string `json:"role,omitempty"`
	Version    int64  `json:"version,omitempty"`
	Stage      string `json:"stage,omitempty"`
	// Job is the revoke job started for it.
	Job     *serve.Job `json:"job,omitempty"`
	Message string     `json:"message"`
}

type leakBody struct {
	Secret string `json:"secret"`
}

func (a *api) leak(w http.ResponseWriter, r *http.Request, id auth.Identity) {
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		writeError(w, http.StatusBadRequest, "bad_body", "could not read the body")
		return
	}
	var body leakBody
	// The decoder's errors can quote the input: none is passed on.
	if err := json.Unmarshal(data, &body); err != nil || strings.TrimSpace(body.Secret) == "" {
		writeError(w, http.StatusBadRequest, "bad_body", `send {"secret": "<the leaked password or connection string>"}`)
		return
	}
	a.respondToLeak(w, r, id.Name, "api", secret.New(body.Secret))
}

// respondToLeak matches the leaked secret and, on a match, asks for a
// revoke job of its credential; the API and the GitHub receiver share it.
func (a *api) respondToLeak(w http.ResponseWriter, r *http.Request, actor, source string, leaked secret.String) {
	b := a.opts.Backend
	m, err := b.Engine().MatchLeak(r.Context(), b.Config().Credentials, leaked)
	if err != nil {
		a.internalError(w, r, secret.Scrub(err, leaked))
		return
	}
	if m == nil {
		a.audit(r.Context(), "", 0, engine.EventLeakUnmatched, actor, map[string]any{"source": source})
		writeJSON(w, http.StatusOK, LeakResult{Message: "the secret matches no current or previous version of any credential; nothing was revoked"})
		return
	}
	job, err := b.Enqueue(r.Context(), serve.Request{Credential: m.Credential, Kind: serve.KindRevoke, Trigger: serve.TriggerLeak,
		Actor: actor, Reason: "leak reported (" + source + ")"})
	if err != nil {
		a.internalError(w, r, secret.Scrub(err, leaked))
		return
	}
	a.audit(r.Context(), m.Credential, job.RotationID, engine.EventLeakMatched, actor, map[string]any{"source": source, "role": m.Role,
		"version": m.Version, "stage": m.Stage, "job_id": job.ID})
	writeJSON(w, http.StatusAccepted, leakResult(m, job))
}

func leakResult(m *engine.LeakMatch, job *serve.Job) LeakResult {
	return LeakResult{Matched: true, Credential: m.Credential, Role: m.Role, Version: m.Version, Stage: string(m.Stage), Job: job,
		Message: "the secret is version " + string(m.Stage) + " of " + m.Credential + "; a revoke rotation was asked for"}
}

// githubAlert is the part of a secret_scanning_alert delivery rotor reads.
type githubAlert struct {
	Action string `json:"action"`
	Alert  struct {
		Number     int    `json:"number"`
		SecretType string `json:"secret_type"`
		Secret     string `json:"secret"`
	} `json:"alert"`
}

// github receives GitHub's secret_scanning_alert webhook. The signature is
// the only authentication, so it is checked, in constant time, before the
// body is looked at.
func (a *api) github(w http.ResponseWriter, r *http.Request) {
	if a.opts.GitHubWebhookSecret.IsZero() {
		writeError(w, http.StatusNotFound, "disabled", "the GitHub receiver is off; set ROTOR_GITHUB_WEBHOOK_SECRET to turn it on")
		return
	}
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		writeError(w, http.StatusBadRequest, "bad_body", "could not read the body")
		return
	}
	if !validSignature(a.opts.GitHubWebhookSecret, data, r.Header.Get("X-Hub-Signature-256")) {
		writeError(w, http.StatusUnauthorized, "bad_signature", "X-Hub-Signature-256 does not match the body; check the webhook secret on GitHub and in ROTOR_GITHUB_WEBHOOK_SECRET")
		return
	}
	switch ev := r.Header.Get("X-GitHub-Event"); ev {
	case "ping":
		writeJSON(w, http.StatusOK, map[string]string{"message": "pong"})
		return
	case "secret_scanning_alert":
	default:
		writeJSON(w, http.StatusOK, map[string]string{"message": "event " + ev + " ignored; rotor acts on secret_scanning_alert only"})
		return
	}
	var alert githubAlert
	if err := json.Unmarshal(data, &alert); err != nil {
		writeError(w, http.StatusBadRequest, "bad_body", "the delivery is not a secret_scanning_alert JSON object")
		return
	}
	switch alert.Action {
	case "created", "reopened", "publicly_leaked":
	default:
		writeJSON(w, http.StatusOK, map[string]string{"message": "action " + alert.Action + " ignored"})
		return
	}
	if strings.TrimSpace(alert.Alert.Secret) == "" {
		writeError(w, http.StatusUnprocessableEntity, "no_secret", "the alert carries no secret field; nothing to match")
		return
	}
	a.respondToLeak(w, r, "github-secret-scanning", "github", secret.New(alert.Alert.Secret))
}

func validSignature(key secret.String, body []byte, header string) bool {
	hexSig, ok := strings.CutPrefix(header, "sha256=")
	if !ok {
		return false
	}
	got, err := hex.DecodeString(hexSig)
	if err != nil {
		return false
	}
	mac := hmac.New(sha256.New, []byte(key.Reveal()))
	mac.Write(body)
	return hmac.Equal(got, mac.Sum(nil))
}
