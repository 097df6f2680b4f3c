package console

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/rotorhq/rotor/internal/engine"
	"github.com/rotorhq/rotor/internal/provider"
	"github.com/rotorhq/rotor/internal/serve/auth"
	"github.com/rotorhq/rotor/internal/store"
)

// fakeStatuses are n credentials' statuses as the store would give them:
// every fourth overdue, every seventh with a failed target, every
// eleventh switched with its old role's retirement pending and a session
// still on it; three targets each.
func fakeStatuses(n int) []*engine.CredentialStatus {
	now := time.Date(2026, 12, 4, 6, 0, 0, 0, time.UTC)
	out := make([]*engine.CredentialStatus, n)
	for i := range out {
		act := now.Add(-time.Duration(i%40) * 24 * time.Hour)
		next := act.Add(30 * 24 * time.Hour)
		st := &engine.CredentialStatus{Name: fmt.Sprintf("app-%04d", i), Strategy: "dual", Role: fmt.Sprintf("app_%04d_blue", i),
			Version: int64(i%9 + 1), Fingerprint: "hmac-sha256:3f9a1c0e", ActivatedAt: &act, Age: now.Sub(act),
			Schedule: "every 30d", NextDue: &next, Due: i%4 == 0,
			Last: &engine.RotationSummary{ID: int64(i + 1), Status: store.StatusSucceeded}}
		for _, t := range []string{"vercel", "github", "env"} {
			ts := engine.TargetStatus{Name: t, Type: t, Destination: "project " + st.Name, State: store.DeliveryVerified, Attempts: 1}
			if i%7 == 0 && t == "github" {
				ts.State, ts.Attempts, ts.Error = store.DeliveryFailed, 5, "github: PUT secret DATABASE_URL: 403 Resource not accessible by integration"
			}
			st.Targets = append(st.Targets, ts)
		}
		if i%11 == 0 {
			st.Last.Status = store.StatusSwitched
			st.PendingRetirement = &engine.PendingRetirement{RotationID: int64(i + 1), Role: fmt.Sprintf("app_%04d_green", i),
				Status: store.StatusSwitched, SwitchedAt: now.Add(-time.Hour), GraceUntil: now.Add(time.Hour), Deadline: now.Add(24 * time.Hour),
				RetiresWhen: "retires when its 1 session(s) end (worker from 10.0.0.7), then it stays quiet for 5m",
				Sessions:    []provider.Session{{PID: 4000 + i, Database: "app", ApplicationName: "worker", ClientAddr: "10.0.0.7", BackendStart: now.Add(-2 * time.Hour), State: "idle"}}}
		}
		out[i] = st
	}
	return out
}

func testConsole() *console {
	return &console{log: slog.New(slog.NewTextHandler(io.Discard, nil))}
}

func adminSession() *session {
	return &session{id: auth.Identity{Name: "ops", Scope: auth.ScopeAdmin}, csrf: strings.Repeat("ab", 32)}
}

func TestOverviewRows(t *testing.T) {
	c := testConsole()
	rec := httptest.NewRecorder()
	c.render(rec, httptest.NewRequest("GET", "/", nil), http.StatusOK, adminSession(), overviewData(fakeStatuses(23), "", "", "health"))
	require.Equal(t, http.StatusOK, rec.Code)
	body := rec.Body.String()
	// 0, 7, 14, 21 fail; 4, 8, 12, 16, 20 (not failing) are overdue.
	require.Contains(t, body, "<strong>23</strong> credentials")
	require.Contains(t, body, "14 healthy")
	require.Contains(t, body, "5 overdue")
	require.Contains(t, body, "4 failing")
	require.Less(t, strings.Index(body, "app-0021"), strings.Index(body, "app-0004"), "failing sorts before overdue")
	require.Less(t, strings.Index(body, "app-0020"), strings.Index(body, "app-0001"), "overdue sorts before healthy")
	require.Contains(t, body, `<span class="badge d-failed">failed</span> github`)
	require.Contains(t, body, `github: <span class="error-text">github: PUT secret DATABASE_URL: 403`, "a failed target says why")
	// app-0011's old role is pending retirement with a session on it.
	require.Contains(t, body, "<code>app_0011_green</code> pending: retires when its 1 session(s) end")
	require.Contains(t, body, "1 session(s) on the old role:</strong> worker from 10.0.0.7")

	rec = httptest.NewRecorder()
	c.render(rec, httptest.NewRequest("GET", "/", nil), http.StatusOK, adminSession(), overviewData(fakeStatuses(23), "001", "overdue", "name"))
	body = rec.Body.String()
	require.Contains(t, body, `href="/credentials/app-0012"`)
	require.Contains(t, body, `href="/credentials/app-0016"`)
	require.NotContains(t, body, `href="/credentials/app-0011"`, "healthy ones are filtered out")
	require.NotContains(t, body, `href="/credentials/app-0004"`, "names without 001 are filtered out")
	require.Less(t, strings.Index(body, "app-0012"), strings.Index(body, "app-0016"))
	require.Contains(t, body, "<strong>23</strong> credentials", "the summary counts them all")
}
