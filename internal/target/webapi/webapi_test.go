package webapi_test

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/rotorhq/rotor/internal/secret"
	"github.com/rotorhq/rotor/internal/target"
	"github.com/rotorhq/rotor/internal/target/webapi"
)

func TestDoMapsStatuses(t *testing.T) {
	t.Parallel()
	canary := secret.New("pw-canary-9f8e7d")
	cases := []struct {
		name       string
		status     int
		header     map[string]string
		body       string
		retryable  bool
		sentinel   error
		retryAfter time.Duration
	}{
		{"unauthorized", 401, nil, `{"error":{"code":"forbidden","message":"bad token"}}`, true, target.ErrAuth, 0},
		{"not found", 404, nil, `{"message":"no such project"}`, true, target.ErrNotFound, 0},
		{"echoes the value", 400, nil, `{"error":{"message":"value pw-canary-9f8e7d is invalid"}}`, true, target.ErrInvalid, 0},
		{"rate limited", 429, map[string]string{"Retry-After": "7"}, `{"message":"slow down"}`, true, nil, 7 * time.Second},
		{"reset header", 429, map[string]string{"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "3"}, ``, true, nil, 3 * time.Second},
		{"server error", 503, nil, `oops`, true, nil, 0},
		{"server error not retryable", 500, nil, `oops`, false, nil, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				require.Equal(t, "Bearer tok", r.Header.Get("Authorization"))
				for k, v := range tc.header {
					w.Header().Set(k, v)
				}
				w.WriteHeader(tc.status)
				w.Write([]byte(tc.body))
			}))
			defer srv.Close()
			c := &webapi.Client{HTTP: srv.Client(), BaseURL: srv.URL, Auth: webapi.Bearer("tok"), Target: `test target "x"`}
			_, err := c.Do(t.Context(), webapi.Request{Method: "POST", Path: "/v1/x?teamId=1", Body: map[string]string{"value": canary.Reveal()}, Secrets: []secret.String{canary}, Retryable: tc.retryable})
			require.Error(t, err)
			require.Empty(t, secret.Leaks([]byte(err.Error()), canary), "error must not contain the value")
			require.NotContains(t, err.Error(), "teamId", "query strings stay out of errors")
			var re *target.RetryableError
			isRetry := errors.As(err, &re)
			require.Equal(t, tc.retryable && webapi.Transient(tc.status), isRetry)
			if isRetry {
				require.Equal(t, tc.retryAfter, re.RetryAfter)
			}
			if tc.sentinel != nil {
				require.ErrorIs(t, err, tc.sentinel)
			}
			var se *webapi.StatusError
			require.ErrorAs(t, err, &se)
			require.Equal(t, tc.status, se.Status)
		})
	}
}

func TestRetryAfterHTTPDate(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 26, 8, 0, 0, 0, time.UTC)
	h := http.Header{"Retry-After": {now.Add(90 * time.Second).Format(http.TimeFormat)}}
	require.Equal(t, 90*time.Second, webapi.RetryAfter(h, now))
	reset := now.Add(2 * time.Minute).Unix()
	h = http.Header{"Ratelimit-Remaining": {"0"}, "Ratelimit-Reset": {fmt.Sprint(reset)}}
	require.Equal(t, 2*time.Minute, webapi.RetryAfter(h, now))
	require.Zero(t, webapi.RetryAfter(http.Header{}, now))
}

func TestNetworkErrorIsRetryableOnlyWhenAllowed(t *testing.T) {
	t.Parallel()
	c := &webapi.Client{BaseURL: "http://127.0.0.1:1", Target: "t"}
	_, err := c.Do(t.Context(), webapi.Request{Method: "GET", Path: "/", Retryable: true})
	var re *target.RetryableError
	require.ErrorAs(t, err, &re)
	_, err = c.Do(t.Context(), webapi.Request{Method: "GET", Path: "/"})
	require.False(t, errors.As(err, &re))
}
