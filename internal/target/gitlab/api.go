package gitlab

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/rotorhq/rotor/internal/secret"
	"github.com/rotorhq/rotor/internal/target/webapi"
)

// Variable types (targets-api.md §6, docs.gitlab.com/api/project_level_variables).
const (
	envVarType = "env_var"
	fileType   = "file"
)

// maintainer is GitLab's access level for the Maintainer role, the least
// that may manage a project's CI/CD variables.
const maintainer = 40

// Pipeline statuses Reload acts on (docs.gitlab.com/api/pipelines).
const (
	pipelineSuccess  = "success"
	pipelineFailed   = "failed"
	pipelineCanceled = "canceled"
	pipelineSkipped  = "skipped"
	pipelineManual   = "manual"
)

// The parts of GitLab's answers and requests rotor uses
// (docs.gitlab.com/api: project_level_variables, group_level_variables,
// projects, groups, commits, pipelines).
type (
	// variable is a project or group variable as GitLab shows it; a
	// hidden one's value is null, which decodes to "".
	variable struct {
		Value        string `json:"value"`
		VariableType string `json:"variable_type"`
		Protected    bool   `json:"protected"`
		Masked       bool   `json:"masked"`
		Hidden       bool   `json:"hidden"`
		Raw          bool   `json:"raw"`
		Scope        string `json:"environment_scope"`
	}
	// variableWrite is the body of a create (with Key) or an update
	// (with Filter, which picks the variable of the scope).
	variableWrite struct {
		Key              string       `json:"key,omitempty"`
		Value            string       `json:"value"`
		VariableType     string       `json:"variable_type"`
		Protected        bool         `json:"protected"`
		Masked           bool         `json:"masked"`
		MaskedAndHidden  bool         `json:"masked_and_hidden,omitempty"`
		Raw              bool         `json:"raw"`
		EnvironmentScope string       `json:"environment_scope"`
		Filter           *scopeFilter `json:"filter,omitempty"`
	}
	scopeFilter struct {
		EnvironmentScope string `json:"environment_scope"`
	}
	accessLevel struct {
		AccessLevel int `json:"access_level"`
	}
	project struct {
		Permissions *struct {
			ProjectAccess *accessLevel `json:"project_access"`
			GroupAccess   *accessLevel `json:"group_access"`
		} `json:"permissions"`
	}
	pipelineRequest struct {
		Ref string `json:"ref"`
	}
	pipeline struct {
		ID     int64  `json:"id"`
		Status string `json:"status"`
		WebURL string `json:"web_url"`
	}
)

// newClient is the REST client for base, the api_url. GitLab takes the
// token in PRIVATE-TOKEN.
func newClient(desc, base string, token secret.String, hc *http.Client, now func() time.Time) *webapi.Client {
	return &webapi.Client{
		HTTP:      hc,
		BaseURL:   strings.TrimSuffix(base, "/"),
		Auth:      func(r *http.Request) { r.Header.Set("PRIVATE-TOKEN", token.Reveal()) },
		Target:    desc,
		Now:       now,
		UserAgent: "rotor",
		ErrorText: errorText,
	}
}

// call sends one request and decodes a 2xx answer's JSON into out (when
// out is non-nil). action says what rotor was doing, for the error;
// idempotent says whether a transient failure may be retried.
func (t *Target) call(ctx context.Context, method, path string, body, out any, action string, idempotent bool, secrets []secret.String) error {
	resp, err := t.client.Do(ctx, webapi.Request{Method: method, Path: path, Body: body, Secrets: secrets, Retryable: idempotent})
	if err != nil {
		return t.apiError(action, err, idempotent)
	}
	if out != nil {
		return t.client.Decode(resp, out)
	}
	return nil
}

// get is call for a read, which may always be retried.
func (t *Target) get(ctx context.Context, path string, out any, action string) error {
	return t.call(ctx, http.MethodGet, path, nil, out, action, true, []secret.String{t.token})
}

// notFound says GitLab answered 404.
func notFound(err error) bool {
	var se *webapi.StatusError
	return errors.As(err, &se) && se.Status == http.StatusNotFound
}

// ownerPath is /projects/:id or /groups/:id, with a path id URL-encoded
// as GitLab wants it (acme%2Fapp).
func (t *Target) ownerPath() string {
	if t.group {
		return "/groups/" + url.PathEscape(t.ref)
	}
	return "/projects/" + url.PathEscape(t.ref)
}

// variablePath is one variable.
func (t *Target) variablePath(key string) string {
	return t.ownerPath() + "/variables/" + url.PathEscape(key)
}

// filterQuery picks the variable of the configured scope among variables
// of the same key in other scopes, for a GET.
func (t *Target) filterQuery() string {
	return "?" + url.Values{"filter[environment_scope]": {t.scope}}.Encode()
}

// errorText reads GitLab's error bodies: {"message":"…"},
// {"message":{"field":["…"]}} (validation) or {"error":"…"}; anything
// else is shown as text.
func errorText(body []byte) (code, message string) {
	var v struct {
		Message any    `json:"message"`
		Error   string `json:"error"`
	}
	if json.Unmarshal(body, &v) != nil {
		return "", webapi.ShortenLine(string(body))
	}
	switch m := v.Message.(type) {
	case string:
		return "", webapi.ShortenLine(m)
	case map[string]any:
		fields := slices.Sorted(maps.Keys(m))
		parts := make([]string, 0, len(fields))
		for _, f := range fields {
			var texts []string
			if list, ok := m[f].([]any); ok {
				for _, x := range list {
					texts = append(texts, fmt.Sprint(x))
				}
			} else {
				texts = append(texts, fmt.Sprint(m[f]))
			}
			parts = append(parts, f+": "+strings.Join(texts, ", "))
		}
		return "", webapi.ShortenLine(strings.Join(parts, "; "))
	}
	return "", webapi.ShortenLine(v.Error)
}
