package github

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	gh "github.com/google/go-github/v84/github"

	"github.com/rotorhq/rotor/internal/secret"
	"github.com/rotorhq/rotor/internal/target"
	"github.com/rotorhq/rotor/internal/target/webapi"
)

// permission names what the token needs for the secrets of this target.
func (t *Target) permission() string {
	switch t.scope {
	case scopeEnv:
		return "the repository permissions Environments and Secrets: read and write (classic token: repo scope)"
	case scopeOrg:
		return "the organization permission Secrets: read and write (classic token: admin:org scope)"
	}
	return "the repository permission Secrets: read and write (classic token: repo scope)"
}

const (
	dispatchPermission = "the repository permission Actions: read and write (classic token: repo scope)"
	runsPermission     = "the repository permission Actions: read (classic token: repo scope)"
)

// apiError maps a go-github error. Rate limits are always retryable:
// GitHub refused before doing anything. Other transient failures are
// retryable only when the call is safe to repeat (idempotent).
func (t *Target) apiError(action string, resp *gh.Response, err error, idempotent bool, secrets []secret.String) error {
	need := t.permission()
	switch {
	case strings.HasPrefix(action, "dispatch") || strings.HasPrefix(action, "look up workflow"):
		need = dispatchPermission
	case strings.HasPrefix(action, "read workflow run") || strings.HasPrefix(action, "list runs"):
		need = runsPermission
	}
	e := &webapi.StatusError{Target: t.desc, API: "GitHub", Action: action}
	var (
		rle *gh.RateLimitError
		are *gh.AbuseRateLimitError
		er  *gh.ErrorResponse
	)
	switch {
	case errors.As(err, &rle):
		e.Status, e.Message = statusOf(rle.Response), secret.ScrubString(rle.Message, secrets...)
		e.Hint = "the token's API rate limit is used up until " + rle.Rate.Reset.UTC().Format(time.RFC3339) + "; rotor retries after it resets"
		return &target.RetryableError{Err: e, RetryAfter: max(rle.Rate.Reset.Sub(t.now()), 0)}
	case errors.As(err, &are):
		e.Status, e.Message = statusOf(are.Response), secret.ScrubString(are.Message, secrets...)
		e.Hint = "GitHub's secondary rate limit (too many requests at once); rotor retries after the wait GitHub asks for"
		var wait time.Duration
		if are.RetryAfter != nil {
			wait = max(*are.RetryAfter, 0)
		}
		return &target.RetryableError{Err: e, RetryAfter: wait}
	case errors.As(err, &er):
		e.Status = statusOf(er.Response)
		e.Message = secret.ScrubString(errorText(er), secrets...)
		switch s := e.Status; {
		case s == http.StatusUnauthorized:
			e.Kind = target.ErrAuth
			e.Hint = "GitHub rejected the token; check that the variable behind token: (e.g. ${GITHUB_TOKEN}) holds a valid, unexpired token with " + need
		case s == http.StatusForbidden:
			e.Kind = target.ErrAuth
			e.Hint = "the token lacks a permission: it needs " + need
			if er.Response != nil {
				if accepted := er.Response.Header.Get("X-Accepted-GitHub-Permissions"); accepted != "" {
					e.Hint += " (GitHub accepts: " + accepted + ")"
				}
			}
		case s == http.StatusNotFound:
			e.Kind = target.ErrNotFound
			e.Hint = "GitHub answers 404 also when the token cannot see the destination; check repo/environment/org and that the token's repository access includes it"
		case webapi.Transient(s):
			if idempotent {
				var wait time.Duration
				if er.Response != nil {
					wait = webapi.RetryAfter(er.Response.Header, t.now())
				}
				return &target.RetryableError{Err: e, RetryAfter: wait}
			}
			e.Hint = "the run may or may not have started; check the repository's Actions tab before dispatching again"
		default:
			e.Kind = target.ErrInvalid
		}
		return e
	}
	// Transport errors and cancellations: go-github already said which
	// request; only the values need removing.
	return fmt.Errorf("%s: %s: %w", t.desc, action, secret.Scrub(err, secrets...))
}

func statusOf(r *http.Response) int {
	if r == nil {
		return 0
	}
	return r.StatusCode
}

// errorText is GitHub's message plus its field errors, shortened.
func errorText(er *gh.ErrorResponse) string {
	parts := []string{strings.TrimSpace(er.Message)}
	for _, fe := range er.Errors {
		if fe.Message != "" {
			parts = append(parts, fe.Message)
		} else if fe.Field != "" {
			parts = append(parts, fe.Field+" "+fe.Code)
		}
	}
	msg := strings.Join(slices.DeleteFunc(parts, func(p string) bool { return p == "" }), "; ")
	msg = strings.Join(strings.Fields(msg), " ")
	if len(msg) > 300 {
		msg = msg[:300] + "…"
	}
	return msg
}
