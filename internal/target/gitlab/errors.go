package gitlab

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/rotorhq/rotor/internal/target"
	"github.com/rotorhq/rotor/internal/target/webapi"
)

// apiError maps a failed call. 429 is always retryable: GitLab refused
// before doing anything. 5xx is retryable only when the call is safe to
// repeat. A call that got no answer keeps the retryability webapi gave it
// (retryable when idempotent or never sent).
func (t *Target) apiError(action string, err error, idempotent bool) error {
	var se *webapi.StatusError
	if !errors.As(err, &se) {
		return err
	}
	e := &webapi.StatusError{Target: t.desc, API: "GitLab", Action: action, Status: se.Status, Message: se.Message, Header: se.Header}
	switch status := se.Status; {
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
		return &target.RetryableError{Err: e, RetryAfter: webapi.RetryAfter(se.Header, t.now())}
	case webapi.Transient(status):
		if idempotent {
			return &target.RetryableError{Err: e, RetryAfter: webapi.RetryAfter(se.Header, t.now())}
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
