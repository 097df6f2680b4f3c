package console_test

import (
	"net/http"
	"net/url"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
)

// TestPendingRetirementSessions: after a dual credential's second
// rotation its old role stays pending retirement (grace 10m); a program
// still connected as that role shows on the overview and the credential
// page, as the database reports it.
func TestPendingRetirementSessions(t *testing.T) {
	w := newWorld(t, worldOptions{dual: true})
	defer w.scan()
	c := w.client()
	csrf := c.signIn(rotateTok)
	env := w.sw.EnvFile("blue-green")

	r := c.post("/credentials/blue-green/rotate", url.Values{"csrf": {csrf}})
	require.Equal(t, http.StatusSeeOther, r.status, r.body)
	w.done(jobOf(t, r))
	first := w.currentURLOf(env)

	// A consumer that has not moved yet: connected with the first string.
	u, err := url.Parse(first)
	require.NoError(t, err)
	q := u.Query()
	q.Set("application_name", "billing-worker")
	u.RawQuery = q.Encode()
	conn, err := pgx.Connect(t.Context(), u.String())
	require.NoError(t, err)
	defer conn.Close(t.Context())

	r = c.post("/credentials/blue-green/rotate", url.Values{"csrf": {csrf}})
	require.Equal(t, http.StatusSeeOther, r.status, r.body)
	w.done(jobOf(t, r))
	second := w.currentURLOf(env)
	require.NotEqual(t, first, second)
	old := u.User.Username()

	r = c.get("/")
	require.Equal(t, http.StatusOK, r.status)
	require.Contains(t, r.body, "<code>"+old+"</code> pending: retires when")
	require.Contains(t, r.body, "1 session(s) on the old role:</strong> billing-worker from")

	r = c.get("/credentials/blue-green")
	require.Equal(t, http.StatusOK, r.status)
	require.Contains(t, r.body, "Pending retirement")
	require.Contains(t, r.body, "Evidence: switched")
	require.Contains(t, r.body, "Sessions on an old role")
	require.Contains(t, r.body, "<td>billing-worker</td>")
}
