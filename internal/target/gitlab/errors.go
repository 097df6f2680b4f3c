package gitlab

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"

	gl "gitlab.com/gitlab-org/api/client-go"

	"github.com/rotorhq/rotor/internal/secret"
	"github.com/rotorhq/rotor/internal/target"
	"github.com/rotorhq/rotor/internal/target/webapi"
)

func statusOf(r *gl.Response) int {
	if r == nil || r.Response == nil {
		return 0
	}
	return r.StatusCode
}

// apiError maps a client-go error. 429 is always retryable: GitLab
// refused before doing anything. 5xx is retryable only when the call is
// safe to repeat.
func (t *Target) apiError(action string, resp *gl.Response, err error, idempotent bool, secrets []secret.String) error {
	status := statusOf(resp)
	if status == 0 {
		// Transport errors and cancellations carry no GitLab answer.
		return fmt.Errorf("%s: %s: %w", t.desc, action, secret.Scrub(err, secrets...))
	}
	e := &webapi.StatusError{Target: t.desc, API: "GitLab", Action: action, Status: status}
	var er *gl.ErrorResponse
	if errors.As(err, &er) {
		e.Message = secret.ScrubString(shorten(messageOf(er)), secrets...)
	}
	retryAfter := func() time.Duration { return webapi.RetryAfter(resp.Header, t.now()) }
	switch {
	case status == http.StatusUnauthorized:
		e.Kind = target.ErrAuth
		e.Hint = "GitLab rejected the token; check that the variable behind token: (e.g. ${GITLAB_TOKEN}) holds a valid, unexpired access token with the api scope"
	case status == http.StatusForbidden:
		e.Kind = target.ErrAuth
		e.Hint = "the token needs the api scope and the Maintainer role on the project (Owner on a group) to manage CI/CD variables"
		switch {
		case strings.HasPrefix(action, "start a pipeline"):
			e.Hint = "the token needs the api scope and at least the Developer role, with permission to run pipelines on the ref"
		case strings.HasPrefix(action, "read pipeline"):
			e.Hint = "the token needs the api scope and a role that may see the project's pipelines (Reporter or higher)"
		}
	case status == http.StatusNotFound:
		e.Kind = target.ErrNotFound
		e.Hint = "check project/group (numeric id or full path like group/app); GitLab also answers 404 when the token cannot see it"
	case status == http.StatusConflict:
		e.Kind = target.ErrInvalid
		e.Hint = fmt.Sprintf("the key exists in several environment scopes and this GitLab ignored filter[environment_scope]=%s (the filter needs GitLab 16.9+, Premium for groups); keep one scope per key or remove the duplicates", t.scope)
	case status == http.StatusTooManyRequests:
		e.Hint = "GitLab's rate limit; rotor retries after the wait GitLab asks for"
		return &target.RetryableError{Err: e, RetryAfter: retryAfter()}
	case webapi.Transient(status):
		if idempotent {
			return &target.RetryableError{Err: e, RetryAfter: retryAfter()}
		}
		e.Hint = "the pipeline may or may not have been created; check the project's pipelines before starting another"
	case t.masked && strings.Contains(e.Message, "value: is invalid"):
		e.Kind = target.ErrInvalid
		e.Hint = "GitLab refused to mask the value; older GitLab versions mask only values of letters, digits and _ + = / @ : . ~ - even for raw variables, so set masked: false here and mask a separate key holding only the password (PGPASSWORD: \"{{.Password}}\")"
	case strings.Contains(e.Message, "has already been taken"):
		e.Kind = target.ErrInvalid
		e.Hint = "a variable with this key and environment scope already exists"
	default:
		e.Kind = target.ErrInvalid
	}
	return e
}

// messageOf reads GitLab's error body: {"message":"…"},
// {"message":{"field":["…"]}} or {"error":"…"}.
func messageOf(er *gl.ErrorResponse) string {
	var body struct {
		Message any    `json:"message"`
		Error   string `json:"error"`
	}
	if json.Unmarshal(er.Body, &body) != nil {
		return er.Message
	}
	switch m := body.Message.(type) {
	case string:
		return m
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
		return strings.Join(parts, "; ")
	}
	return body.Error
}

func shorten(s string) string {
	return webapi.Shorten(strings.Join(strings.Fields(s), " "))
}
