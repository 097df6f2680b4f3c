package target

import (
	"context"

	"github.com/rotorhq/rotor/internal/secret"
)

// Gatekeeper is a target that consumers authenticate through (PgBouncer's
// auth_file): it holds the role's SCRAM verifier rather than values, and
// while it holds the wrong one it refuses consumers the database would
// accept. The engine drives it through this protocol instead of Put:
//
//   - PublishVerifier before any other target is written, and — dual
//     strategy — before the login test (so the test logs in through it as
//     consumers do); single strategy, before the server's password changes
//     (apply), followed by Settle.
//   - RestoreVerifier when a single-strategy rotation is rolled back or
//     abandoned after the gatekeeper got the new verifier.
//   - ListClients whenever the engine asks who is still logged in as a
//     role (the dual strategy's drain, the busy-role check).
//
// The engine never calls Put on a gatekeeper. Reload, Check and Validate
// keep their Target meanings. A second gatekeeper (Odyssey, PgCat) is one
// more implementation that passes gatekeepertest.Exercise.
type Gatekeeper interface {
	Target

	// PublishVerifier makes the gatekeeper let req.Role in with the
	// password whose SCRAM verifier is req.Verifier, and has it take
	// effect (PgBouncer: RELOAD) before it returns. It must be idempotent:
	// repeating a request leaves the gatekeeper as after the first and
	// reports Changed=false. Entries of other roles stay as they are, so
	// with the dual strategy the old role keeps working until it is
	// retired on the server. A zero Verifier (a provider that sets the
	// password itself) is an error. Errors never contain the verifier or
	// a value.
	PublishVerifier(ctx context.Context, req PublishVerifierRequest) (PublishVerifierResponse, error)

	// RestoreVerifier gives req.Role back the verifier the server holds
	// again after a rollback, with the same effect and idempotency as
	// PublishVerifier.
	RestoreVerifier(ctx context.Context, req RestoreVerifierRequest) (RestoreVerifierResponse, error)

	// Settle returns once the gatekeeper no longer lets any consumer of
	// req.Role through with the previous password (PgBouncer: no client
	// waiting for a server connection, no server login under way), or
	// with ctx's error. A client already admitted against the old entry
	// would fail its server login once the server's password changes.
	Settle(ctx context.Context, req SettleRequest) (SettleResponse, error)

	// ListClients lists the clients logged in as req.Role that the
	// database may not see: waiting for a server connection, or idle
	// between transactions, they hold no server session.
	ListClients(ctx context.Context, req ListClientsRequest) (ListClientsResponse, error)
}

type PublishVerifierRequest struct {
	// Role is the login role the verifier belongs to.
	Role string
	// Verifier is the SCRAM verifier set (or about to be set) on the
	// server for Role.
	Verifier secret.String
	// Values and Keys are the target's rendered values, as Put would get
	// them, for a gatekeeper that keeps connection settings of its own;
	// PgBouncer's auth_file has no room for them.
	Values map[string]secret.String
	Keys   []string
	// RotationID and Version identify what is being published.
	RotationID string
	Version    int64
}

type PublishVerifierResponse struct {
	// Changed is false when the gatekeeper already held this verifier.
	Changed bool
	// Ref is a backend-side reference, recorded in the journal.
	Ref string
}

type RestoreVerifierRequest struct {
	Role string
	// Verifier is what the server holds for Role again.
	Verifier secret.String
}

type RestoreVerifierResponse struct {
	Changed bool
}

type SettleRequest struct {
	Role string
}

type SettleResponse struct{}

type ListClientsRequest struct {
	Role string
}

type ListClientsResponse struct {
	Clients []ClientSession
}

// ClientSession is one client logged in through a gatekeeper.
type ClientSession struct {
	ApplicationName string
	ClientAddr      string
	Database        string
	State           string
}
