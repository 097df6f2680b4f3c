//go:build unix

package e2e_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/rotorhq/rotor/internal/secret"
)

// TestJSONNamesEverywhere walks the --json output of every command, in
// the states that fill in the most fields (a switched dual rotation with a
// consumer still on the old role, its retirement, an abandoned rotation, a
// failure), and checks that each document is one JSON value whose names
// are all snake_case, with objects nested rather than encoded in strings.
// docs/cli.md lists the fields.
func TestJSONNamesEverywhere(t *testing.T) {
	t.Parallel()
	w := newWorld(t, nil, credSpec{name: "app", strategy: "dual",
		extra: "    drain:\n      timeout: 1m\n      poll: 20ms\n      grace: 200ms\n      quiet: 100ms\n      wait: 400ms\n"})
	docs := map[string]string{}
	js := func(code int, args ...string) {
		t.Helper()
		r := w.rotor(t, nil, append([]string{"--json"}, args...)...)
		require.Equal(t, code, r.code, "rotor --json %s:\n%s", strings.Join(args, " "), w.scrub(r.output()))
		docs[strings.Join(args, " ")] = r.stdout
	}
	js(exitOK, "version")
	js(exitOK, "connstr", "parse", "postgresql://app:pw@h1:5432,h2:5433/db?sslmode=require&application_name=x")
	js(exitOK, "validate", "--offline")
	js(exitOK, "setup-roles", "app")
	js(exitOK, "validate")
	js(exitOK, "plan", "--offline")
	js(exitOK, "plan")
	js(exitOK, "rotate", "app")

	// A consumer that stays on the role the next rotation switches away
	// from: the rotation ends switched, and status --live lists it.
	_, url := w.envConn(t, "app")
	conn, err := pgx.Connect(t.Context(), url.Reveal()+"&application_name=legacy-cron")
	require.NoError(t, secret.Scrub(err, url))
	defer conn.Close(context.WithoutCancel(t.Context()))
	js(exitOK, "rotate", "app")
	require.Contains(t, docs["rotate app"], `"state": "pending"`)
	js(exitOK, "status")
	js(exitOK, "status", "--live")
	require.Contains(t, docs["status --live"], `"application_name": "legacy-cron"`, "the session is listed with its pg_stat_activity names")
	js(exitOK, "retire", "app", "--now")
	js(exitOK, "retire", "app")

	// An unfinished rotation that never published, abandoned.
	r := w.rotor(t, []string{"ROTOR_TEST_CRASH_AT=apply"}, "rotate", "app")
	require.True(t, r.killed, w.scrub(r.output()))
	js(exitOK, "resume", "--abandon", "app")
	js(exitOK, "resume")
	js(exitOK, "history")
	js(exitUsage, "rotate", "no-such-credential")
	js(exitUsage, "history", "--since", "yesterday")

	for cmd, doc := range docs {
		dec := json.NewDecoder(strings.NewReader(doc))
		var v any
		require.NoError(t, dec.Decode(&v), "rotor --json %s prints JSON:\n%s", cmd, doc)
		require.False(t, dec.More(), "rotor --json %s prints one document:\n%s", cmd, doc)
		for _, bad := range badNames(v, "") {
			t.Errorf("rotor --json %s: %s", cmd, bad)
		}
	}
	var failure map[string]any
	require.NoError(t, json.Unmarshal([]byte(docs["rotate no-such-credential"]), &failure))
	require.Equal(t, float64(exitUsage), failure["exit_code"])
	require.Equal(t, "bad usage or configuration: nothing was done", failure["meaning"])
	require.Contains(t, failure["error"], `no credential "no-such-credential"`)
	var hist []map[string]any
	require.NoError(t, json.Unmarshal([]byte(docs["history"]), &hist))
	events := map[string]bool{}
	for _, ev := range hist {
		events[ev["event"].(string)] = true
		_, isObject := ev["detail"].(map[string]any)
		require.True(t, isObject, "the detail of %s is an object", ev["event"])
	}
	for _, want := range []string{"roles.setup", "rotation.started", "delivery.written", "delivery.verified", "rotation.succeeded",
		"rotation.switched", "rotation.retirement_pending", "rotation.retired", "rotation.abandoned"} {
		require.True(t, events[want], "history --json has %s: %v", want, events)
	}
	w.requireNoLeaks(t, nil)
}

var snakeCase = regexp.MustCompile(`^[a-z][a-z0-9]*(_[a-z0-9]+)*$`)

// dataMaps are the objects whose keys are the user's data, not names of
// rotor's: a plan's values (the keys of the target's values:) and the
// parameters of a parsed connection string.
var dataMaps = regexp.MustCompile(`^(\[\]\.targets\[\]\.values|\.params)$`)

// badNames lists every name in v, at path, that is not snake_case, and
// every string that holds a JSON object or list (nested JSON in a string).
func badNames(v any, path string) []string {
	var bad []string
	switch x := v.(type) {
	case map[string]any:
		for k, c := range x {
			if !dataMaps.MatchString(path) && !snakeCase.MatchString(k) {
				bad = append(bad, fmt.Sprintf("%s: %q is not snake_case", path, k))
			}
			bad = append(bad, badNames(c, path+"."+k)...)
		}
	case []any:
		for _, c := range x {
			bad = append(bad, badNames(c, path+"[]")...)
		}
	case string:
		s := bytes.TrimSpace([]byte(x))
		if len(s) > 1 && (s[0] == '{' || s[0] == '[') && json.Valid(s) {
			bad = append(bad, fmt.Sprintf("%s holds JSON in a string: %s", path, x))
		}
	}
	return bad
}
