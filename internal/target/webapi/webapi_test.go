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
	"github.com/rotorhq/rotor/internal/target/webapi/fakefaults"
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

// A request that reached the server and then lost its answer may be sent
// again only when the caller says it is idempotent; one that was refused
// never arrived, so it may always be sent again.
func TestNetworkErrorIsRetryableOnlyWhenSafe(t *testing.T) {
	t.Parallel()
	var re *target.RetryableError

	refused := &webapi.Client{BaseURL: "http://" + closedPort(t), Target: "t"}
	for _, idempotent := range []bool{true, false} {
		_, err := refused.Do(t.Context(), webapi.Request{Method: "POST", Path: "/deploys", Retryable: idempotent})
		require.True(t, target.NotSent(err), "a refused connection is a request never sent: %v", err)
		require.ErrorAs(t, err, &re, "never sent, so safe to send again (idempotent=%v)", idempotent)
		require.ErrorAs(t, webapi.OnlyRateLimitRetries(err), &re, "a deploy that never left may be sent again")
	}

	// The server reads the request, then drops the connection unanswered.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			c.Close()
		}
	}))
	t.Cleanup(srv.Close)
	dropped := &webapi.Client{BaseURL: srv.URL, Target: "t"}
	_, err := dropped.Do(t.Context(), webapi.Request{Method: "PUT", Path: "/var", Retryable: true})
	require.False(t, target.NotSent(err), "the request arrived: %v", err)
	require.ErrorAs(t, err, &re, "an idempotent write may be sent again")
	require.False(t, errors.As(webapi.OnlyRateLimitRetries(err), &re), "a deploy that arrived may be under way")
	_, err = dropped.Do(t.Context(), webapi.Request{Method: "POST", Path: "/deploys"})
	require.Error(t, err)
	require.False(t, errors.As(err, &re), "not idempotent and it arrived: not retryable")
}

func TestOnlyRateLimitRetriesKeeps429(t *testing.T) {
	t.Parallel()
	for status, keep := range map[int]bool{429: true, 500: false, 503: false} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Retry-After", "3")
			w.WriteHeader(status)
		}))
		c := &webapi.Client{BaseURL: srv.URL, Target: "t"}
		_, err := c.Do(t.Context(), webapi.Request{Method: "POST", Path: "/deploys", Retryable: true})
		srv.Close()
		var re *target.RetryableError
		require.Equal(t, keep, errors.As(webapi.OnlyRateLimitRetries(err), &re), "status %d", status)
		var se *webapi.StatusError
		require.ErrorAs(t, webapi.OnlyRateLimitRetries(err), &se, "the answer stays in the error")
	}
}

// closedPort is a loopback address nothing listens on.
func closedPort(t *testing.T) string {
	addr, err := fakefaults.ClosedAddr()
	require.NoError(t, err)
	return addr
}

func TestClientHeaderAndErrorText(t *testing.T) {
	t.Parallel()
	const body = `{"message":"Validation Failed","errors":[{"field":"ref","code":"invalid"}]}`
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The client's own headers replace the defaults.
		require.Equal(t, []string{"application/vnd.example+json"}, r.Header.Values("Accept"))
		require.Equal(t, "2022-11-28", r.Header.Get("X-Api-Version"))
		w.Header().Set("X-Remaining", "0")
		w.WriteHeader(http.StatusUnprocessableEntity)
		w.Write([]byte(body))
	}))
	defer srv.Close()
	c := &webapi.Client{
		HTTP: srv.Client(), BaseURL: srv.URL, Target: `test target "x"`,
		Header: http.Header{"accept": {"application/vnd.example+json"}, "X-Api-Version": {"2022-11-28"}},
		ErrorText: func(body []byte) (string, string) {
			return "E1", "parsed " + string(body)
		},
	}
	_, err := c.Do(t.Context(), webapi.Request{Method: "GET", Path: "/x"})
	var se *webapi.StatusError
	require.ErrorAs(t, err, &se)
	require.Equal(t, "E1", se.Code)
	require.Equal(t, "parsed "+body, se.Message)
	require.Equal(t, "0", se.Header.Get("X-Remaining"), "the answer's headers travel with the refusal")
	require.ErrorIs(t, err, target.ErrInvalid)
}
