//go:build unix

package e2e_test

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestDebugOutput: `rotor --debug` logs, through one structured logger,
// each SQL statement rotor sends (the password literal replaced), each
// HTTP request to a target (method, URL without its query secrets,
// status, duration, whether the status is retryable), the lease, each
// journal write and each login test — text by default, one JSON object
// per line with --json — and no secret: no password, token, header or
// webhook key.
func TestDebugOutput(t *testing.T) {
	t.Parallel()
	var hooks atomic.Int32
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		// The first delivery is refused as a rate limit, as a receiver
		// under load would; the retry succeeds.
		if hooks.Add(1) == 1 {
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusTooManyRequests)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(hook.Close)

	w := newWorld(t, nil, credSpec{name: "app", strategy: "single"})
	f, err := os.OpenFile(w.cfgPath, os.O_APPEND|os.O_WRONLY, 0)
	require.NoError(t, err)
	_, err = f.WriteString(`      - name: hook
        type: webhook
        url: ` + hook.URL + `/rotor?team=acme&token=${HOOK_QUERY_TOKEN}
        secret: ${WEBHOOK_SECRET}
        headers: {Authorization: "Bearer ${HOOK_TOKEN}"}
        values: {DATABASE_URL: "{{.URL}}"}
`)
	require.NoError(t, err)
	require.NoError(t, f.Close())
	const queryToken, headerToken, hookSecret = "qtok-4f1e9b2c77", "htok-8d0c3a5e11", "whsec-0123456789abcdef0123"
	env := []string{"HOOK_QUERY_TOKEN=" + queryToken, "HOOK_TOKEN=" + headerToken, "WEBHOOK_SECRET=" + hookSecret}

	r := w.rotor(t, env, "--debug", "rotate", "app")
	require.Equal(t, exitOK, r.code, w.scrub(r.output()))
	lines := strings.Split(r.stderr, "\n")
	has := func(parts ...string) bool {
		for _, l := range lines {
			if containsEvery(l, parts...) {
				return true
			}
		}
		return false
	}
	for _, want := range [][]string{
		{"level=DEBUG", "msg=sql", `sql="ALTER ROLE `, `PASSWORD '[REDACTED]'`, `result="ALTER ROLE; COMMENT; COMMIT"`},
		{"msg=sql", "FROM pg_authid WHERE rolname = $1", "args=1", "duration="},
		{"msg=http", "method=POST", `url="` + hook.URL + `/rotor?team=acme&token=REDACTED"`, "status=429", "retryable=true", "retry_after=1s", "duration="},
		{"msg=http", "method=POST", "status=204", "retryable=false"},
		{"msg=engine", "step=publish", "status=retry", "target=hook"},
		{"msg=lease", "op=acquire", "lease=credential/app", "token="},
		{"msg=lease", "op=release", "lease=credential/app"},
		{"msg=journal", "op=append_step", "step=apply", "status=done"},
		{"msg=journal", "op=upsert_delivery", "target=env", "state=verified"},
		{"msg=journal", "op=finish_rotation", "status=succeeded"},
		{`msg="login test"`, `url="postgresql://`, ":REDACTED@"},
	} {
		require.True(t, has(want...), "--debug logs a line with %q:\n%s", want, w.scrub(r.stderr))
	}
	for _, secretText := range []string{queryToken, headerToken, hookSecret} {
		require.NotContains(t, r.output(), secretText)
	}

	// With --json every debug line is a JSON object on stderr, stdout
	// still the one result document.
	r = w.rotor(t, env, "--debug", "--json", "rotate", "app")
	require.Equal(t, exitOK, r.code, w.scrub(r.output()))
	require.True(t, json.Valid([]byte(r.stdout)))
	sc := bufio.NewScanner(strings.NewReader(r.stderr))
	sc.Buffer(nil, 1<<20)
	msgs := map[string]bool{}
	for sc.Scan() {
		var line map[string]any
		require.NoError(t, json.Unmarshal(sc.Bytes(), &line), "a JSON log line: %s", w.scrub(sc.Text()))
		require.Equal(t, "DEBUG", line["level"])
		msgs[line["msg"].(string)] = true
	}
	for _, m := range []string{"sql", "http", "lease", "journal", "login test", "engine"} {
		require.True(t, msgs[m], "a %q line in the JSON log", m)
	}
	for _, secretText := range []string{queryToken, headerToken, hookSecret} {
		require.NotContains(t, r.output(), secretText)
	}
	w.requireNoLeaks(t, nil)
}

func containsEvery(s string, parts ...string) bool {
	for _, p := range parts {
		if !strings.Contains(s, p) {
			return false
		}
	}
	return true
}
