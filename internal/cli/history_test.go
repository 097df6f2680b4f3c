package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"github.com/stretchr/testify/require"

	"github.com/rotorhq/rotor/internal/engine"
	"github.com/rotorhq/rotor/internal/store"
	"github.com/rotorhq/rotor/internal/store/sqlite"
)

func TestHistoryFilterFlags(t *testing.T) {
	t.Parallel()
	now := time.Date(2025, 1, 6, 12, 0, 0, 0, time.UTC) // newTestFactory's clock
	tests := []struct {
		args  string
		want  HistoryOptions
		usage string
	}{
		{args: "", want: HistoryOptions{Limit: 50}},
		{args: "app", want: HistoryOptions{Name: "app", Limit: 50}},
		{args: "--credential app", want: HistoryOptions{Name: "app", Limit: 50}},
		{args: "app --credential app", want: HistoryOptions{Name: "app", Limit: 50}},
		{args: "--since 7d", want: HistoryOptions{Limit: 50, Since: now.Add(-7 * 24 * time.Hour)}},
		{args: "--since 90m -n 5", want: HistoryOptions{Limit: 5, Since: now.Add(-90 * time.Minute)}},
		{args: "--since 2025-01-02", want: HistoryOptions{Limit: 50, Since: time.Date(2025, 1, 2, 0, 0, 0, 0, time.UTC)}},
		{args: "--since 2025-01-02T03:04:05+01:00", want: HistoryOptions{Limit: 50, Since: time.Date(2025, 1, 2, 2, 4, 5, 0, time.UTC)}},
		{args: "--result failed", want: HistoryOptions{Limit: 50, Result: "failed"}},
		{args: "app --credential other", usage: "name the credential once: app or --credential other"},
		{args: "--since yesterday", usage: `--since "yesterday": write a duration back from now`},
		{args: "--result broken", usage: `--result "broken": use one of requested, started, resumed, retried, failed, succeeded, pending, attention, abandoned`},
		{args: "a b", usage: "accepts at most 1 arg(s)"},
	}
	for _, tt := range tests {
		t.Run(tt.args, func(t *testing.T) {
			t.Parallel()
			f, _ := newTestFactory(nil)
			var got *HistoryOptions
			err := execSub(t, f, func(f *Factory) *cobra.Command {
				return NewCmdHistory(f, func(o *HistoryOptions) error { got = o; return nil })
			}, strings.Fields(tt.args))
			if tt.usage != "" {
				requireUsage(t, err, tt.usage)
				require.Nil(t, got)
				return
			}
			require.NoError(t, err)
			got.F = nil
			require.True(t, tt.want.Since.Equal(got.Since), "since %v, want %v", got.Since, tt.want.Since)
			got.Since = tt.want.Since
			require.Equal(t, tt.want, *got)
		})
	}
}

// TestHistoryShowsAndFilters: history lists every kind of event the
// engine records, each with its result, nests the detail as an object in
// --json, and filters by credential, time and result in the store.
func TestHistoryShowsAndFilters(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "rotor.yaml")
	src := `version: 1
defaults:
  provider: {type: postgres, admin_url: "${ROTOR_ADMIN_URL}"}
  connection: {url: "postgresql://db.internal:5432/app?sslmode=require"}
  strategy: single
credentials:
  app:
    role: app
    targets: [{name: env, type: dotenv, path: .env, values: {DATABASE_URL: "{{.URL}}"}}]
  billing:
    role: billing
    targets: [{name: env, type: dotenv, path: b.env, values: {DATABASE_URL: "{{.URL}}"}}]
`
	require.NoError(t, os.WriteFile(path, []byte(src), 0o600))
	st, err := sqlite.Open(t.Context(), filepath.Join(dir, ".rotor", "state.db"))
	require.NoError(t, err)
	base := time.Date(2025, 1, 6, 11, 0, 0, 0, time.UTC)
	for i, ev := range []struct{ cred, event, detail string }{
		{"app", engine.EventStarted, `{"trigger":"manual","strategy":"single","revoke":false}`},
		{"app", engine.EventRetry, `{"target":"env","attempt":1,"error":"dotenv target \"env\": busy","retry_in":"200ms"}`},
		{"app", "delivery.failed", `{"target":"env","type":"dotenv","state":"failed","attempts":5,"error":"no space left"}`},
		{"app", engine.EventFailed, `{"step":"publish","error":"1 of 1 target(s) failed"}`},
		{"billing", engine.EventStarted, `{"trigger":"schedule"}`},
		{"app", engine.EventResumed, `{"from_step":"publish","last_status":"failed","interrupted":false}`},
		{"app", "delivery.written", `{"target":"env","type":"dotenv","state":"written","attempts":6,"changed":true}`},
		{"app", engine.EventSucceeded, `{"role":"app","version":1}`},
		{"app", engine.EventAbandoned, `{}`},
	} {
		_, err := st.AppendAudit(t.Context(), store.AppendAuditParams{Credential: ev.cred, RotationID: 1, Event: ev.event, Actor: "host", Detail: ev.detail, Now: base.Add(time.Duration(i) * time.Minute)})
		require.NoError(t, err)
	}
	require.NoError(t, st.Close())

	code, out, errOut := run(t, testEnv{}, "", "history", "app", "--config", path)
	require.Equal(t, ExitOK, code, errOut)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	require.Len(t, lines, 8, out)
	require.Contains(t, lines[0], "rotation.abandoned")
	require.Contains(t, lines[5], "delivery.failed              failed    attempts=5 error=\"no space left\" state=failed target=env type=dotenv")
	require.Contains(t, lines[3], "rotation.resumed             resumed   from_step=publish interrupted=false last_status=failed")
	require.Contains(t, lines[6], "delivery.retry               retried   attempt=1 error=")

	code, out, errOut = run(t, testEnv{}, "", "history", "--result", "failed", "--since", "58m", "--json", "--config", path)
	require.Equal(t, ExitOK, code, errOut)
	var got []map[string]any
	require.NoError(t, json.Unmarshal([]byte(out), &got))
	require.Len(t, got, 2, out)
	require.Equal(t, "rotation.failed", got[0]["event"])
	require.Equal(t, "failed", got[0]["result"])
	require.Equal(t, map[string]any{"step": "publish", "error": "1 of 1 target(s) failed"}, got[0]["detail"], "the detail is an object, not a string")
	require.Equal(t, "delivery.failed", got[1]["event"])
	require.Equal(t, "2025-01-06T11:02:00Z", got[1]["at"])
	for _, k := range []string{"id", "at", "credential", "rotation_id", "event", "result", "actor", "detail"} {
		require.Contains(t, got[0], k)
	}

	code, out, _ = run(t, testEnv{}, "", "history", "--credential", "billing", "--json", "--config", path)
	require.Equal(t, ExitOK, code)
	require.NoError(t, json.Unmarshal([]byte(out), &got))
	require.Len(t, got, 1)
	require.Equal(t, "billing", got[0]["credential"])
}
