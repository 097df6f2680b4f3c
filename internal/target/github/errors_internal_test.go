package github

import (
	"errors"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/rotorhq/rotor/internal/target"
	"github.com/rotorhq/rotor/internal/target/webapi"
)

func TestErrorTextKeepsGitHubsFieldErrors(t *testing.T) {
	t.Parallel()
	for body, want := range map[string]string{
		`{"message":"Validation Failed","errors":[{"resource":"Secret","field":"visibility","code":"invalid"}]}`: "Validation Failed; visibility invalid",
		`{"message":"Validation Failed","errors":[{"message":"name is reserved"},"ref missing"]}`:                "Validation Failed; name is reserved; ref missing",
		`{"message":"Bad   credentials\n","documentation_url":"https://docs.github.com/rest"}`:                   "Bad credentials",
		"<html>\n  unicorn  </html>": "<html> unicorn </html>",
	} {
		_, got := errorText([]byte(body))
		require.Equal(t, want, got, body)
	}
}

// TestAPIErrorTellsRateLimitsApart follows targets-api.md §5: both limits
// come as 403 or 429, the primary with X-RateLimit-Remaining: 0, the
// secondary with Retry-After; a 403 without either is a permission.
func TestAPIErrorTellsRateLimitsApart(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 12, 5, 6, 0, 0, 0, time.UTC)
	tg := &Target{desc: `github-actions target "ci"`, now: func() time.Time { return now }}
	refusal := func(status int, msg string, h ...string) error {
		hdr := http.Header{}
		for i := 0; i+1 < len(h); i += 2 {
			hdr.Set(h[i], h[i+1])
		}
		return &webapi.StatusError{Target: tg.desc, Method: "PUT", Path: "/x", Status: status, Message: msg, Header: hdr}
	}
	reset := strconv.FormatInt(now.Add(90*time.Second).Unix(), 10)
	cases := []struct {
		name       string
		err        error
		idempotent bool
		retryAfter time.Duration // -1: not retryable
		kind       error
		text       string
	}{
		{"secondary as 403", refusal(403, "You have exceeded a secondary rate limit.", "Retry-After", "60"), false, time.Minute, nil, "secondary rate limit"},
		{"secondary without Retry-After", refusal(403, "You have exceeded a secondary rate limit.", "X-RateLimit-Remaining", "0", "X-RateLimit-Reset", reset), false, 90 * time.Second, nil, "secondary rate limit"},
		{"primary as 429", refusal(429, "API rate limit exceeded for user ID 1.", "X-RateLimit-Remaining", "0", "X-RateLimit-Reset", reset), false, 90 * time.Second, nil, "used up until 2026-12-05T06:01:30Z"},
		{"permission", refusal(403, "Resource not accessible by personal access token", "X-RateLimit-Remaining", "4000", "X-Accepted-GitHub-Permissions", "secrets=write"), true, -1, target.ErrAuth, "(GitHub accepts: secrets=write)"},
		{"server error, idempotent", refusal(502, "Server Error"), true, 0, nil, "GitHub answered 502"},
		{"server error, a dispatch", refusal(502, "Server Error"), false, -1, nil, "the run may or may not have started"},
		{"invalid", refusal(422, "Validation Failed; ref invalid"), true, -1, target.ErrInvalid, "write secret X: GitHub answered 422: Validation Failed; ref invalid"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := tg.apiError("write secret X", tc.err, tc.idempotent)
			require.ErrorContains(t, err, tc.text)
			var re *target.RetryableError
			if tc.retryAfter < 0 {
				require.False(t, errors.As(err, &re), "%v must not be retried", err)
			} else {
				require.ErrorAs(t, err, &re)
				require.Equal(t, tc.retryAfter, re.RetryAfter)
			}
			if tc.kind != nil {
				require.ErrorIs(t, err, tc.kind)
			}
		})
	}
}
