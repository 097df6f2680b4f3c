// Package gatekeepertest is the conformance suite every target.Gatekeeper
// must pass, against a real gatekeeper in front of a real PostgreSQL
// server (STYLE.md habit 8): what it checks is that consumers get in, or
// are kept out, exactly as the engine relies on.
//
//	func TestGatekeeperConformance(t *testing.T) {
//		gatekeepertest.Exercise(t, gatekeepertest.Harness{New: …, NewRole: …, …})
//	}
//
// Each subtest builds its own gatekeeper with Harness.New and runs in
// parallel, so New must return one that nothing else reloads meanwhile
// (PgBouncer's RELOAD disturbs logins in flight). A gatekeeper passes
// targettest.Exercise as well, through a harness that publishes values
// the way the engine does.
package gatekeepertest

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/rotorhq/rotor/internal/secret"
	"github.com/rotorhq/rotor/internal/target"
)

// Harness tells Exercise how to build the gatekeeper and reach the server
// behind it. Every field is required.
type Harness struct {
	// New returns a fresh gatekeeper in front of the server.
	New func(t *testing.T) target.Gatekeeper
	// NewRole creates a login role on the server (any password) and
	// returns its name; the role is dropped when the test ends.
	NewRole func(t *testing.T) string
	// SetServerVerifier sets role's SCRAM verifier on the server, as the
	// apply step does.
	SetServerVerifier func(t *testing.T, role string, v secret.String)
	// Login connects through gk as role with pw and runs a query.
	Login func(t *testing.T, gk target.Gatekeeper, role string, pw secret.String) error
	// Session opens a session through gk as role that stays open until
	// the test ends.
	Session func(t *testing.T, gk target.Gatekeeper, role string, pw secret.String)
}

// Exercise runs the conformance suite against h.
func Exercise(t *testing.T, h Harness) {
	t.Helper()
	require.True(t, h.New != nil && h.NewRole != nil && h.SetServerVerifier != nil && h.Login != nil && h.Session != nil,
		"every gatekeepertest.Harness field is required")

	t.Run("PublishLetsTheNewPasswordIn", func(t *testing.T) {
		t.Parallel()
		gk, role := h.New(t), h.NewRole(t)
		pw, v := credential(t)
		h.SetServerVerifier(t, role, v)
		resp, err := publish(t, gk, role, v)
		require.NoError(t, err)
		require.True(t, resp.Changed, "a new verifier changes the gatekeeper")
		require.NoError(t, h.Login(t, gk, role, pw), "the new password logs in through the gatekeeper once published")

		resp, err = publish(t, gk, role, v)
		require.NoError(t, err, "publishing is idempotent")
		require.False(t, resp.Changed, "the same verifier again changes nothing")
		require.NoError(t, h.Login(t, gk, role, pw))
	})

	t.Run("OtherRolesKeepTheirEntry", func(t *testing.T) {
		t.Parallel()
		gk := h.New(t)
		blue, green := h.NewRole(t), h.NewRole(t)
		pwBlue, vBlue := credential(t)
		pwGreen, vGreen := credential(t)
		h.SetServerVerifier(t, blue, vBlue)
		h.SetServerVerifier(t, green, vGreen)
		for role, v := range map[string]secret.String{blue: vBlue, green: vGreen} {
			_, err := publish(t, gk, role, v)
			require.NoError(t, err)
		}
		pwBlue2, vBlue2 := credential(t)
		h.SetServerVerifier(t, blue, vBlue2)
		_, err := publish(t, gk, blue, vBlue2)
		require.NoError(t, err)
		require.NoError(t, h.Login(t, gk, blue, pwBlue2), "the rotated role logs in with its new password")
		require.NoError(t, h.Login(t, gk, green, pwGreen), "dual: the other role keeps working")
		require.Error(t, h.Login(t, gk, blue, pwBlue), "the rotated role's previous password no longer gets in")
	})

	t.Run("RestorePutsThePreviousVerifierBack", func(t *testing.T) {
		t.Parallel()
		gk, role := h.New(t), h.NewRole(t)
		pw1, v1 := credential(t)
		h.SetServerVerifier(t, role, v1)
		_, err := publish(t, gk, role, v1)
		require.NoError(t, err)
		// Single strategy: apply publishes first, then the server's change
		// fails or the test rolls back; the server keeps v1.
		_, v2 := credential(t)
		_, err = publish(t, gk, role, v2)
		require.NoError(t, err)
		require.Error(t, h.Login(t, gk, role, pw1), "holding another verifier than the server, the gatekeeper refuses the server's password")

		resp, err := gk.RestoreVerifier(t.Context(), target.RestoreVerifierRequest{Role: role, Verifier: v1})
		require.NoError(t, err)
		require.True(t, resp.Changed)
		require.NoError(t, h.Login(t, gk, role, pw1), "restored: the server's password gets in again")
		resp, err = gk.RestoreVerifier(t.Context(), target.RestoreVerifierRequest{Role: role, Verifier: v1})
		require.NoError(t, err, "restoring is idempotent")
		require.False(t, resp.Changed)
	})

	t.Run("RefusesWithoutVerifier", func(t *testing.T) {
		t.Parallel()
		gk, role := h.New(t), h.NewRole(t)
		pw, v := credential(t)
		h.SetServerVerifier(t, role, v)
		_, err := publish(t, gk, role, v)
		require.NoError(t, err)

		canary := secret.New("canary-value-gatekeeper")
		_, err = gk.PublishVerifier(t.Context(), target.PublishVerifierRequest{Role: role, Values: map[string]secret.String{"K": canary}, Keys: []string{"K"}})
		require.Error(t, err, "a provider that sets the password itself hands over no verifier")
		require.Empty(t, secret.Leaks([]byte(err.Error()), canary, v, pw))
		_, err = gk.RestoreVerifier(t.Context(), target.RestoreVerifierRequest{Role: role})
		require.Error(t, err)
		require.Empty(t, secret.Leaks([]byte(err.Error()), v, pw))
		require.NoError(t, h.Login(t, gk, role, pw), "a refused request leaves the entry as it was")
	})

	t.Run("SettleReturnsWhenNobodyWaits", func(t *testing.T) {
		t.Parallel()
		gk, role := h.New(t), h.NewRole(t)
		pw, v := credential(t)
		h.SetServerVerifier(t, role, v)
		_, err := publish(t, gk, role, v)
		require.NoError(t, err)
		require.NoError(t, h.Login(t, gk, role, pw))
		// Bounded only so a broken implementation fails instead of hanging.
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		defer cancel()
		_, err = gk.Settle(ctx, target.SettleRequest{Role: role})
		require.NoError(t, err)
	})

	t.Run("ListClientsSeesSessions", func(t *testing.T) {
		t.Parallel()
		gk := h.New(t)
		role, idle := h.NewRole(t), h.NewRole(t)
		pw, v := credential(t)
		h.SetServerVerifier(t, role, v)
		_, err := publish(t, gk, role, v)
		require.NoError(t, err)

		resp, err := gk.ListClients(t.Context(), target.ListClientsRequest{Role: role})
		require.NoError(t, err)
		require.Empty(t, resp.Clients, "nobody connected yet")
		h.Session(t, gk, role, pw)
		resp, err = gk.ListClients(t.Context(), target.ListClientsRequest{Role: role})
		require.NoError(t, err)
		require.Len(t, resp.Clients, 1, "the open session is listed")
		require.NotEmpty(t, resp.Clients[0].Database)
		resp, err = gk.ListClients(t.Context(), target.ListClientsRequest{Role: idle})
		require.NoError(t, err)
		require.Empty(t, resp.Clients, "another role's clients are not listed")
	})
}

func publish(t *testing.T, gk target.Gatekeeper, role string, v secret.String) (target.PublishVerifierResponse, error) {
	t.Helper()
	return gk.PublishVerifier(t.Context(), target.PublishVerifierRequest{
		Role: role, Verifier: v, Values: map[string]secret.String{"DATABASE_URL": secret.New("unused")}, Keys: []string{"DATABASE_URL"},
		RotationID: "1", Version: 1,
	})
}

// credential is a new password and its SCRAM verifier.
func credential(t *testing.T) (pw, v secret.String) {
	t.Helper()
	pw, err := secret.Generate(nil, secret.DefaultPolicy())
	require.NoError(t, err)
	v, err = secret.SCRAMVerifier(nil, pw)
	require.NoError(t, err)
	return pw, v
}
