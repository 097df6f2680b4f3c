package github

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

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

// apiError maps a failed call. Rate limits are always retryable: GitHub
// refused before doing anything. Other transient failures are retryable
// only when the call is safe to repeat (idempotent). A call that got no
// answer keeps the retryability webapi gave it (retryable when idempotent
// or never sent).
func (t *Target) apiError(action string, err error, idempotent bool) error {
	var se *webapi.StatusError
	if !errors.As(err, &se) {
		return err
	}
	need := t.permission()
	switch {
	case strings.HasPrefix(action, "dispatch") || strings.HasPrefix(action, "look up workflow"):
		need = dispatchPermission
	case strings.HasPrefix(action, "read workflow run") || strings.HasPrefix(action, "list runs"):
		need = runsPermission
	}
	e := &webapi.StatusError{Target: t.desc, API: "GitHub", Action: action, Status: se.Status, Message: se.Message, Header: se.Header}
	if limit, wait := t.rateLimit(se); limit != "" {
		e.Hint = limit
		return &target.RetryableError{Err: e, RetryAfter: wait}
	}
	switch s := e.Status; {
	case s == http.StatusUnauthorized:
		e.Kind = target.ErrAuth
		e.Hint = "GitHub rejected the token; check that the variable behind token: (e.g. ${GITHUB_TOKEN}) holds a valid, unexpired token with " + need
	case s == http.StatusForbidden:
		e.Kind = target.ErrAuth
		e.Hint = "the token lacks a permission: it needs " + need
		if accepted := se.Header.Get("X-Accepted-GitHub-Permissions"); accepted != "" {
			e.Hint += " (GitHub accepts: " + accepted + ")"
		}
	case s == http.StatusNotFound:
		e.Kind = target.ErrNotFound
		e.Hint = "GitHub answers 404 also when the token cannot see the destination; check repo/environment/org and that the token's repository access includes it"
	case webapi.Transient(s):
		if idempotent {
			return &target.RetryableError{Err: e, RetryAfter: webapi.RetryAfter(se.Header, t.now())}
		}
		e.Hint = "the run may or may not have started; check the repository's Actions tab before dispatching again"
	default:
		e.Kind = target.ErrInvalid
	}
	return e
}

// rateLimit tells GitHub's rate limits apart from other refusals
// (targets-api.md §5): the primary limit is a 403 or 429 with
// X-RateLimit-Remaining: 0, to wait out until X-RateLimit-Reset; the
// secondary one a 403 or 429 with Retry-After, or whose message names it.
// It returns the hint and the wait, or "" for any other refusal.
func (t *Target) rateLimit(se *webapi.StatusError) (string, time.Duration) {
	if se.Status != http.StatusForbidden && se.Status != http.StatusTooManyRequests {
		return "", 0
	}
	h := se.Header
	wait := webapi.RetryAfter(h, t.now())
	switch {
	case h.Get("Retry-After") != "" || strings.Contains(strings.ToLower(se.Message), "secondary rate limit"):
		return "GitHub's secondary rate limit (too many requests at once); rotor retries after the wait GitHub asks for", wait
	case h.Get("X-RateLimit-Remaining") == "0":
		reset := t.now().Add(wait).UTC().Format(time.RFC3339)
		if n, err := strconv.ParseInt(h.Get("X-RateLimit-Reset"), 10, 64); err == nil {
			reset = time.Unix(n, 0).UTC().Format(time.RFC3339)
		}
		return "the token's API rate limit is used up until " + reset + "; rotor retries after it resets", wait
	}
	return "", 0
}
