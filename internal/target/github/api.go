package github

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/rotorhq/rotor/internal/secret"
	"github.com/rotorhq/rotor/internal/target/webapi"
)

// apiVersion is the REST API version rotor is written against
// (targets-api.md §5: X-GitHub-Api-Version: 2022-11-28).
const apiVersion = "2022-11-28"

// The parts of GitHub's answers rotor reads (docs.github.com/rest:
// actions/secrets, repos, actions/workflows, actions/workflow-runs).
type (
	publicKey struct {
		KeyID string `json:"key_id"`
		Key   string `json:"key"`
	}
	encryptedSecret struct {
		KeyID                 string  `json:"key_id"`
		EncryptedValue        string  `json:"encrypted_value"`
		Visibility            string  `json:"visibility,omitempty"`
		SelectedRepositoryIDs []int64 `json:"selected_repository_ids,omitempty"`
	}
	secretMeta struct {
		UpdatedAt time.Time `json:"updated_at"`
	}
	repository struct {
		ID int64 `json:"id"`
	}
	workflow struct {
		State string `json:"state"`
	}
	dispatchEvent struct {
		Ref string `json:"ref"`
		// ReturnRunDetails asks for the run's id in a 200 answer
		// (GitHub changelog 2026-02-19); nil leaves the key out.
		ReturnRunDetails *bool `json:"return_run_details,omitempty"`
	}
	runDetails struct {
		WorkflowRunID int64  `json:"workflow_run_id"`
		HTMLURL       string `json:"html_url"`
	}
	workflowRun struct {
		ID         int64  `json:"id"`
		Status     string `json:"status"`
		Conclusion string `json:"conclusion"`
		HTMLURL    string `json:"html_url"`
	}
	workflowRuns struct {
		WorkflowRuns []workflowRun `json:"workflow_runs"`
	}
)

// newClient is the REST client for base (the api_url, ending in /).
func newClient(desc, base string, token secret.String, hc *http.Client, now func() time.Time) *webapi.Client {
	return &webapi.Client{
		HTTP:      hc,
		BaseURL:   strings.TrimSuffix(base, "/"),
		Auth:      webapi.Bearer(token.Reveal()),
		Target:    desc,
		Now:       now,
		UserAgent: "rotor",
		Header: http.Header{
			"Accept":               {"application/vnd.github+json"},
			"X-Github-Api-Version": {apiVersion},
		},
		ErrorText: errorText,
	}
}

// call sends one request and decodes a 2xx answer's JSON into out (when
// out is non-nil and the answer has a body). action says what rotor was
// doing, for the error; idempotent says whether a transient failure may
// be retried.
func (t *Target) call(ctx context.Context, method, path string, body, out any, action string, idempotent bool, secrets []secret.String) (*webapi.Response, error) {
	resp, err := t.client.Do(ctx, webapi.Request{Method: method, Path: path, Body: body, Secrets: secrets, Retryable: idempotent})
	if err != nil {
		return nil, t.apiError(action, err, idempotent)
	}
	if out != nil && len(resp.Body) > 0 {
		if err := t.client.Decode(resp, out); err != nil {
			return nil, err
		}
	}
	return resp, nil
}

// get is call for a read, which may always be retried.
func (t *Target) get(ctx context.Context, path string, out any, action string) error {
	_, err := t.call(ctx, http.MethodGet, path, nil, out, action, true, []secret.String{t.token})
	return err
}

// secretsPath is where this target's secrets live:
// /repos/{o}/{r}/actions/secrets, /repos/{o}/{r}/environments/{env}/secrets
// or /orgs/{org}/actions/secrets.
func (t *Target) secretsPath() string {
	switch t.scope {
	case scopeEnv:
		return repoPath(t.owner, t.repo) + "/environments/" + url.PathEscape(t.env) + "/secrets"
	case scopeOrg:
		return "/orgs/" + url.PathEscape(t.org) + "/actions/secrets"
	}
	return repoPath(t.owner, t.repo) + "/actions/secrets"
}

func repoPath(owner, repo string) string {
	return "/repos/" + url.PathEscape(owner) + "/" + url.PathEscape(repo)
}

// workflowPath is the dispatch workflow's, by file name or numeric id.
func (t *Target) workflowPath() string {
	d := t.dispatch
	return repoPath(d.wfOwner, d.wfRepo) + "/actions/workflows/" + url.PathEscape(d.workflow)
}

// errorText is GitHub's message plus its field errors, shortened:
// {"message","documentation_url","errors":[{"resource","field","code"}
// or {"message"} or a string]}.
func errorText(body []byte) (code, message string) {
	var v struct {
		Message string            `json:"message"`
		Errors  []json.RawMessage `json:"errors"`
	}
	if json.Unmarshal(body, &v) != nil {
		return "", webapi.ShortenLine(string(body))
	}
	parts := []string{strings.TrimSpace(v.Message)}
	for _, raw := range v.Errors {
		var fe struct {
			Field, Code, Message string
		}
		var s string
		switch {
		case json.Unmarshal(raw, &s) == nil:
			parts = append(parts, s)
		case json.Unmarshal(raw, &fe) == nil && fe.Message != "":
			parts = append(parts, fe.Message)
		case fe.Field != "":
			parts = append(parts, fe.Field+" "+fe.Code)
		}
	}
	var kept []string
	for _, p := range parts {
		if p != "" {
			kept = append(kept, p)
		}
	}
	return "", webapi.ShortenLine(strings.Join(kept, "; "))
}
