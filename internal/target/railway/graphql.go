package railway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/rotorhq/rotor/internal/secret"
	"github.com/rotorhq/rotor/internal/target"
	"github.com/rotorhq/rotor/internal/target/webapi"
)

// The operations rotor sends. Values travel only in GraphQL variables,
// never inside the query text, so nothing needs escaping.
const (
	upsertMutation    = `mutation rotorUpsert($input: VariableCollectionUpsertInput!) { variableCollectionUpsert(input: $input) }`
	variablesQuery    = `query rotorVariables($projectId: String!, $environmentId: String!, $serviceId: String, $unrendered: Boolean) { variables(projectId: $projectId, environmentId: $environmentId, serviceId: $serviceId, unrendered: $unrendered) }`
	deployMutation    = `mutation rotorDeploy($serviceId: String!, $environmentId: String!) { serviceInstanceDeployV2(serviceId: $serviceId, environmentId: $environmentId) }`
	deploymentQuery   = `query rotorDeployment($id: String!) { deployment(id: $id) { id status } }`
	projectTokenQuery = `query rotorProjectToken { projectToken { projectId environmentId } }`
)

type gqlAnswer struct {
	Data   json.RawMessage `json:"data"`
	Errors []struct {
		Message    string `json:"message"`
		Extensions struct {
			Code string `json:"code"`
		} `json:"extensions"`
	} `json:"errors"`
}

// graphql sends one operation and decodes its data into out. Transient
// failures are retryable when the operation is idempotent (an upsert, a
// read); rate limits always are, as Railway refused before doing anything.
func (t *Target) graphql(ctx context.Context, op, query string, vars map[string]any, out any, secrets []secret.String, idempotent bool) error {
	body := map[string]any{"query": query}
	if vars != nil {
		body["variables"] = vars
	}
	resp, err := t.api.Do(ctx, webapi.Request{Method: http.MethodPost, Path: t.path, Body: body, Secrets: secrets, Retryable: true})
	if err != nil {
		return t.httpError(op, err, idempotent)
	}
	var ans gqlAnswer
	if err := json.Unmarshal(resp.Body, &ans); err != nil {
		return fmt.Errorf("%s: Railway %s: the answer is not GraphQL JSON; check api_url: %w", t.desc, op, target.ErrInvalid)
	}
	if len(ans.Errors) > 0 {
		e := &webapi.StatusError{Target: t.desc, API: "Railway", Operation: op, Status: resp.Status}
		msgs := make([]string, 0, len(ans.Errors))
		rateLimited := false
		for _, ge := range ans.Errors {
			msgs = append(msgs, ge.Message)
			lower, code := strings.ToLower(ge.Message), strings.ToUpper(ge.Extensions.Code)
			switch {
			case strings.Contains(lower, "not authorized") || strings.Contains(lower, "unauthorized") || code == "UNAUTHENTICATED" || code == "FORBIDDEN":
				e.Kind = target.ErrAuth
			case strings.Contains(lower, "rate limit") || strings.Contains(lower, "too many requests") || code == "RATE_LIMITED" || code == "TOO_MANY_REQUESTS":
				rateLimited = true
			case e.Kind == nil && strings.Contains(lower, "not found"):
				e.Kind = target.ErrNotFound
			}
		}
		e.Message = secret.ScrubString(webapi.Shorten(strings.Join(msgs, "; ")), secrets...)
		if rateLimited && e.Kind == nil {
			e.Hint = rateLimitHint
			return &target.RetryableError{Err: e, RetryAfter: webapi.RetryAfter(resp.Header, t.api.Now())}
		}
		if e.Kind == nil {
			e.Kind = target.ErrInvalid
		}
		e.Hint = t.hintFor(e.Kind)
		return e
	}
	if len(ans.Data) == 0 || string(ans.Data) == "null" {
		return fmt.Errorf("%s: Railway %s answered neither data nor errors; check api_url: %w", t.desc, op, target.ErrInvalid)
	}
	if err := json.Unmarshal(ans.Data, out); err != nil {
		return fmt.Errorf("%s: Railway %s: unexpected data (not what the public API documents); check api_url: %w", t.desc, op, target.ErrInvalid)
	}
	return nil
}

const rateLimitHint = "Railway's API rate limit (requests per hour depend on the plan); rotor retries after the wait Railway asks for"

// httpError restates a non-2xx answer as the failed operation, with a hint, keeping it
// retryable when webapi said so. Network errors pass through: webapi
// already named the target and marked them retryable.
func (t *Target) httpError(op string, err error, idempotent bool) error {
	var re *target.RetryableError
	isRetryable := errors.As(err, &re)
	var se *webapi.StatusError
	if !errors.As(err, &se) {
		if isRetryable && !idempotent {
			return re.Err // the request may have arrived
		}
		return err
	}
	e := &webapi.StatusError{Target: t.desc, API: "Railway", Operation: op, Status: se.Status, Message: se.Message, Kind: se.Kind}
	switch {
	case e.Kind != nil:
		e.Hint = t.hintFor(e.Kind)
	case se.Status == http.StatusTooManyRequests:
		e.Hint = rateLimitHint
	case !idempotent:
		isRetryable = false
		e.Hint = "Railway may or may not have started the deployment; check the service's deployments before redeploying"
	}
	if isRetryable {
		return &target.RetryableError{Err: e, RetryAfter: re.RetryAfter}
	}
	return e
}

func (t *Target) hintFor(kind error) string {
	switch kind {
	case target.ErrAuth:
		return t.authHint()
	case target.ErrNotFound:
		return "check project_id, environment_id and service_id (Cmd/Ctrl+K → Copy … ID in the Railway dashboard)"
	}
	return ""
}
