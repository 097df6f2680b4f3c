// Package neon is the `neon` database provider: a role's password on one
// or more branches of a Neon project, changed over SQL or through the Neon
// API, with the consumer endpoints discovered from the API.
//
//	provider:
//	  type: neon
//	  api_key: ${NEON_API_KEY}
//	  project_id: round-sound-12345678
//	  branches: [main]          # default: the project's default branch; or a list, or `all`
//	  database: neondb          # default: the default branch's only database
//	  method: sql               # or api
//	  admin_role: neondb_owner  # default: the database's owner
//	  admin_password: ${NEON_ADMIN_PASSWORD}  # default: asked of the API (connection_uri)
//	  sslmode: verify-full      # of the admin connection; verify-ca, or require (api only)
//	  sslrootcert: /etc/ssl/neon-ca.pem      # default: the system's trusted roots
//
// Methods (docs/neon.md weighs them):
//
//   - sql (default) runs ALTER ROLE … WITH LOGIN PASSWORD '<plaintext>' on
//     every branch, as the admin role; no connection is dropped. Neon
//     refuses hashed passwords over SQL ("Passwords must be supplied in
//     plain text … Hashed passwords are not supported",
//     neon.com/docs/manage/roles; neon-api.md §6): its compute forwards
//     role passwords to the control plane before commit. So this is the one
//     place rotor sends a plaintext password to a server, and it does so
//     only over TLS that verifies the server (sslmode verify-full or
//     verify-ca), in its own autocommit statement, with statement logging
//     switched off for that session where the admin may
//     (postgres.SetPlaintextPassword). A compute may abort after it
//     forwarded the change (neon-api.md §6), so every change is proven by
//     logging in with the new password before SetPassword returns.
//   - api resets the password with POST …/roles/{role}/reset_password,
//     which generates the password (returned in SetPasswordResponse.Password
//     for the engine to store at once), waits for the operations, and then
//     sets LOGIN and VALID UNTIL over SQL. Neon drops every connection to
//     the compute endpoint, of every role, when a reset applies. A reset
//     cannot set a chosen password, so rollback and Snapshot are
//     unsupported.
//
// The admin role may be the role a credential rotates (Neon's database
// owner, which applications often connect as). The provider then switches
// to the new password itself the moment it has set it, and the engine
// tells it the stored passwords to log in with (provider.SelfManager), so
// admin_password is needed at most for the first rotation.
//
// A role's password is per branch: a child branch keeps the old password
// after a reset on its parent. SetPassword, Retire, Sessions, Terminate,
// EnsureRoles and Parity cover every configured branch; the first is the
// default branch when it is configured (else the first named), and only
// its password is the credential's: in api mode the other branches get
// fresh passwords nobody knows, since Neon generates one per reset.
// Report warns about branches that hold a credential's role but are not
// configured.
package neon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"regexp"
	"strings"
	"sync"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/rotorhq/rotor/internal/connstr"
	"github.com/rotorhq/rotor/internal/provider"
	"github.com/rotorhq/rotor/internal/provider/neon/neonapi"
	"github.com/rotorhq/rotor/internal/provider/postgres"
	"github.com/rotorhq/rotor/internal/secret"
)

// Methods.
const (
	MethodSQL = "sql"
	MethodAPI = "api"
)

// APIHostEnv overrides the API base URL, as it does for neonctl.
const APIHostEnv = "NEON_API_HOST"

// Options is the provider's config block (see the package comment).
type Options struct {
	APIKey    string   `yaml:"api_key"`
	APIURL    string   `yaml:"api_url"`
	ProjectID string   `yaml:"project_id"`
	Branches  Branches `yaml:"branches"`
	Database  string   `yaml:"database"`
	Method    string   `yaml:"method"`
	AdminRole string   `yaml:"admin_role"`
	// AdminPassword is admin_role's password; without it the provider asks
	// the API for the role's connection URI, which needs the project to
	// store passwords (it does unless store_passwords was turned off).
	AdminPassword string `yaml:"admin_password"`
	// ConnectTimeout bounds each admin connection attempt (default 15s: a
	// suspended compute takes a moment to wake up).
	ConnectTimeout string `yaml:"connect_timeout"`
	// OperationTimeout bounds the wait for Neon's operations, and for a
	// branch locked by other operations (423), default 5m.
	OperationTimeout string `yaml:"operation_timeout"`
	// SSLMode is the admin connection's sslmode: verify-full (default) or
	// verify-ca; require (no certificate check) only with method api,
	// since method sql sends the new password in plaintext over it.
	SSLMode string `yaml:"sslmode"`
	// SSLRootCert is the CA file that verifies the server (default: the
	// system's trusted roots, which sign Neon's certificates).
	SSLRootCert string `yaml:"sslrootcert"`
}

// Branches is `branches:`: a list of branch names or ids, or `all`.
type Branches struct {
	All   bool
	Names []string
}

// UnmarshalYAML takes `all` or a list of names.
func (b *Branches) UnmarshalYAML(n *yaml.Node) error {
	switch {
	case n.Kind == yaml.ScalarNode && n.Value == "all":
		*b = Branches{All: true}
		return nil
	case n.Kind == yaml.SequenceNode:
		var names []string
		if err := n.Decode(&names); err != nil {
			return fmt.Errorf("line %d: branches must be a list of branch names or ids, or all", n.Line)
		}
		for _, name := range names {
			if strings.TrimSpace(name) == "" {
				return fmt.Errorf("line %d: branches has an empty name; write each branch's name or id", n.Line)
			}
			if name == "all" {
				return fmt.Errorf("line %d: `all` stands alone: write branches: all, not a list holding it", n.Line)
			}
		}
		*b = Branches{Names: names}
		return nil
	}
	return fmt.Errorf("line %d: branches must be a list of branch names or ids (e.g. [main, preview]) or all, not %q", n.Line, n.Value)
}

// String is how the selection reads in messages.
func (b Branches) String() string {
	switch {
	case b.All:
		return "all"
	case len(b.Names) == 0:
		return "the default branch"
	}
	return strings.Join(b.Names, ", ")
}

const (
	defaultConnectTimeout = "15s"
	maxIdentifierLength   = 63
	defaultSSLMode        = "verify-full"
)

// projectIDRE: at most 60 of these, checked apart (a bounded repetition
// compiles to one copy per character, paid at every start of rotor).
var projectIDRE = regexp.MustCompile(`^[a-z0-9-]+$`)

// Neon is the provider. Build it with New.
type Neon struct {
	api            *neonapi.Client
	project        string
	selection      Branches
	database       string
	method         string
	adminRole      string
	adminPassword  secret.String
	connectTimeout string
	sslMode        string
	sslRootCert    string
	logger         *slog.Logger

	// route maps an endpoint host to the address to dial instead; tests
	// point it at the clusters that play Neon's computes.
	route func(host string) (ip string, port int, ok bool)

	mu     sync.Mutex
	state  *state
	closed bool
	// stored are the admin passwords the engine knows (SelfManager),
	// tried before admin_password.
	stored []secret.String
	// needReplica: a template of a credential on this provider uses
	// {{.ReplicaURL}} (RequireReplica).
	needReplica bool
}

// state is what the API told us on first use.
type state struct {
	// branches are the configured branches, the primary one first.
	branches  []*branch
	database  string
	adminRole string
}

type branch struct {
	id, name  string
	isDefault bool

	mu        sync.Mutex
	endpoints []neonapi.Endpoint
	listed    bool
	adminURL  secret.String
	pg        *postgres.Postgres
	// adminPW is the password rotor itself gave the admin role on this
	// branch; it is tried first.
	adminPW secret.String
}

func (b *branch) String() string { return fmt.Sprintf("%s (%s)", b.name, b.id) }

// New is the provider.Factory for `type: neon`. It validates the config
// and does no I/O.
func New(p provider.Params) (provider.Provider, error) {
	return newProvider(p, os.Getenv)
}

func newProvider(p provider.Params, getenv func(string) string) (*Neon, error) {
	var o Options
	if p.Decode != nil {
		if err := p.Decode(&o); err != nil {
			return nil, fmt.Errorf("neon provider config: %w", err)
		}
	}
	bad := func(format string, args ...any) error {
		return fmt.Errorf("neon provider config: "+format+": %w", append(args, provider.ErrInvalid)...)
	}
	switch {
	case o.APIKey == "":
		return nil, bad("api_key is required; create a key in the Neon console (Account settings → API keys) and write api_key: ${NEON_API_KEY}")
	case o.ProjectID == "":
		return nil, bad("project_id is required; copy it from the Neon console (Project settings), e.g. project_id: round-sound-12345678")
	case len(o.ProjectID) > 60 || !projectIDRE.MatchString(o.ProjectID):
		return nil, bad("project_id %q is not a Neon project id (lowercase letters, digits and '-', at most 60); copy it from Project settings", o.ProjectID)
	}
	method := o.Method
	if method == "" {
		method = MethodSQL
	}
	if method != MethodSQL && method != MethodAPI {
		return nil, bad("method %q is unknown; use sql (ALTER ROLE with the plaintext password over verified TLS, keeps connections) or api (Neon's reset_password, drops every connection of the compute)", o.Method)
	}
	if o.AdminRole != "" && len(o.AdminRole) > maxIdentifierLength {
		return nil, bad("admin_role %q is longer than PostgreSQL's 63-byte limit", o.AdminRole)
	}
	sslMode := o.SSLMode
	if sslMode == "" {
		sslMode = defaultSSLMode
	}
	switch {
	case sslMode == "verify-full" || sslMode == "verify-ca":
	case sslMode == "require" && method == MethodAPI:
	case sslMode == "require":
		return nil, bad("sslmode require does not check the server's certificate, and method sql sends the new password in plaintext over the admin connection (Neon refuses hashed passwords); " +
			"remove sslmode (verify-full is the default and works with Neon's certificates), set sslmode: verify-ca with sslrootcert, or use method: api")
	default:
		return nil, bad("sslmode %q is not allowed for the admin connection; use verify-full (the default) or verify-ca (or require with method: api)", o.SSLMode)
	}
	timeout := o.ConnectTimeout
	if timeout == "" {
		timeout = defaultConnectTimeout
	}
	if d, err := time.ParseDuration(timeout); err != nil || d <= 0 {
		return nil, bad("connect_timeout %q is not a positive duration; write it like 15s", o.ConnectTimeout)
	}
	api := &neonapi.Client{APIKey: secret.New(o.APIKey), HTTP: p.HTTPClient, Now: p.Now, UserAgent: "rotor (neon provider)"}
	api.OperationTimeout = neonapi.DefaultOperationTimeout
	if o.OperationTimeout != "" {
		d, err := time.ParseDuration(o.OperationTimeout)
		if err != nil || d <= 0 {
			return nil, bad("operation_timeout %q is not a positive duration; write it like 5m", o.OperationTimeout)
		}
		api.OperationTimeout = d
	}
	base := o.APIURL
	if base == "" {
		base = getenv(APIHostEnv)
	}
	if base != "" {
		if !strings.HasPrefix(base, "https://") && !strings.HasPrefix(base, "http://") {
			return nil, bad("api_url %q must be an http(s) URL such as %s", base, neonapi.DefaultBaseURL)
		}
		api.BaseURL = base
	}
	if api.HTTP == nil {
		api.HTTP = &http.Client{Timeout: time.Minute}
	}
	n := &Neon{
		api: api, project: o.ProjectID, selection: o.Branches, database: o.Database, method: method,
		adminRole: o.AdminRole, adminPassword: secret.New(o.AdminPassword), connectTimeout: timeout,
		sslMode: sslMode, sslRootCert: o.SSLRootCert, logger: p.Logger,
	}
	if n.logger == nil {
		n.logger = slog.Default()
	}
	api.OnRetry = n.logRetry
	return n, nil
}

// logRetry is one log line per wait for the Neon API, so that a branch
// busy for minutes does not look like a hang.
func (n *Neon) logRetry(ev neonapi.RetryEvent) {
	attrs := []any{"project", n.project, "request", ev.Method + " " + ev.Path, "attempt", ev.Attempt,
		"wait", ev.Wait.Round(time.Millisecond).String(), "elapsed", ev.Elapsed.Round(time.Millisecond).String()}
	switch {
	case ev.Status == http.StatusLocked:
		n.logger.Info("neon: the branch is busy with other operations (423 Locked); waiting to retry",
			append(attrs, "message", ev.Message, "gives_up_after", ev.Limit.String())...)
	case ev.Status != 0:
		n.logger.Info(fmt.Sprintf("neon: %d %s; waiting to retry", ev.Status, http.StatusText(ev.Status)), append(attrs, "message", ev.Message)...)
	default:
		n.logger.Info("neon: no answer from the Neon API; waiting to retry", append(attrs, "error", ev.Message)...)
	}
}

// resolve asks the API, once, for the configured branches, the database
// and the admin role. A failure is not cached: the next call asks again.
func (n *Neon) resolve(ctx context.Context) (*state, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return nil, errors.New("neon provider: used after Close; build a new provider")
	}
	if n.state != nil {
		return n.state, nil
	}
	all, err := n.api.ListBranches(ctx, n.project)
	if err != nil {
		return nil, n.apiFail(fmt.Sprintf("list the branches of Neon project %s", n.project), err, provider.ErrInvalid, "check project_id")
	}
	chosen, err := n.choose(all)
	if err != nil {
		return nil, err
	}
	st := &state{database: n.database, adminRole: n.adminRole}
	for _, b := range chosen {
		st.branches = append(st.branches, &branch{id: b.ID, name: b.Name, isDefault: b.Default || b.Primary})
	}
	primary := st.branches[0]
	if st.database == "" {
		dbs, err := n.api.ListDatabases(ctx, n.project, primary.id)
		if err != nil {
			return nil, n.apiFail("list the databases of branch "+primary.String(), err, provider.ErrInvalid, "")
		}
		names := make([]string, len(dbs))
		for i, d := range dbs {
			names[i] = d.Name
		}
		if len(dbs) != 1 {
			return nil, fmt.Errorf("neon provider: branch %s has %d databases (%s), so it is not clear which one this credential uses; set database: in the provider: %w",
				primary, len(dbs), strings.Join(names, ", "), provider.ErrInvalid)
		}
		st.database = dbs[0].Name
	}
	if st.adminRole == "" {
		db, err := n.api.GetDatabase(ctx, n.project, primary.id, st.database)
		if err != nil {
			return nil, n.apiFail(fmt.Sprintf("look up database %q on branch %s", st.database, primary), err, provider.ErrInvalid, "check database:")
		}
		st.adminRole = db.OwnerName
	}
	n.state = st
	return st, nil
}

// choose picks the configured branches from the project's, the primary
// one first: the default branch when it is among them.
func (n *Neon) choose(all []neonapi.Branch) ([]neonapi.Branch, error) {
	var chosen []neonapi.Branch
	switch {
	case n.selection.All:
		chosen = append(chosen, all...)
	case len(n.selection.Names) == 0:
		for _, b := range all {
			if b.Default || b.Primary {
				chosen = append(chosen, b)
			}
		}
		if len(chosen) == 0 {
			return nil, fmt.Errorf("neon provider: project %s reports no default branch; name the branches in branches: [...]: %w", n.project, provider.ErrInvalid)
		}
		chosen = chosen[:1]
	default:
		seen := map[string]bool{}
		for _, want := range n.selection.Names {
			found := false
			for _, b := range all {
				if (b.ID == want || b.Name == want) && !seen[b.ID] {
					chosen, seen[b.ID], found = append(chosen, b), true, true
					break
				}
			}
			if !found && !seen[want] {
				names := make([]string, len(all))
				for i, b := range all {
					names[i] = b.Name
				}
				return nil, fmt.Errorf("neon provider: project %s has no branch %q (branches: %s); fix branches: %w", n.project, want, strings.Join(names, ", "), provider.ErrInvalid)
			}
		}
	}
	if len(chosen) == 0 {
		return nil, fmt.Errorf("neon provider: project %s has no branches: %w", n.project, provider.ErrInvalid)
	}
	for i, b := range chosen {
		if b.Default || b.Primary {
			chosen[0], chosen[i] = chosen[i], chosen[0]
			break
		}
	}
	return chosen, nil
}

// listEndpoints returns the branch's endpoints, asked of the API once.
func (n *Neon) listEndpoints(ctx context.Context, b *branch) ([]neonapi.Endpoint, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.listed {
		return b.endpoints, nil
	}
	eps, err := n.api.ListBranchEndpoints(ctx, n.project, b.id)
	if err != nil {
		return nil, n.apiFail("list the endpoints of branch "+b.String(), err, provider.ErrInvalid, "")
	}
	b.endpoints, b.listed = eps, true
	return eps, nil
}

// endpointOf returns the branch's read_write endpoint (the first enabled
// one when there is none), as neonctl picks it.
func (n *Neon) endpointOf(ctx context.Context, b *branch) (*neonapi.Endpoint, error) {
	eps, err := n.listEndpoints(ctx, b)
	if err != nil {
		return nil, err
	}
	var pick *neonapi.Endpoint
	for i := range eps {
		if eps[i].Disabled {
			continue
		}
		if eps[i].Type == neonapi.EndpointReadWrite {
			pick = &eps[i]
			break
		}
		if pick == nil {
			pick = &eps[i]
		}
	}
	if pick == nil {
		return nil, fmt.Errorf("neon provider: branch %s has no compute endpoint; add one in the Neon console (Branches → %s → Add compute): %w", b, b.name, provider.ErrInvalid)
	}
	return pick, nil
}

// replicaOf returns the branch's first enabled read_only endpoint (a read
// replica), nil when it has none.
func (n *Neon) replicaOf(ctx context.Context, b *branch) (*neonapi.Endpoint, error) {
	eps, err := n.listEndpoints(ctx, b)
	if err != nil {
		return nil, err
	}
	for i := range eps {
		if !eps[i].Disabled && eps[i].Type == neonapi.EndpointReadOnly {
			return &eps[i], nil
		}
	}
	return nil, nil
}

// consumerConn is how consumers reach the database on an endpoint host,
// the way Neon's own connection strings read.
func consumerConn(host, database string) *connstr.Conn {
	return &connstr.Conn{Form: connstr.FormURL, Scheme: "postgresql", Host: host, Database: database,
		Params: []connstr.Param{{Key: "sslmode", Value: "require"}, {Key: "channel_binding", Value: "require"}}}
}

// Close releases every admin connection.
func (n *Neon) Close() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.closed = true
	if n.state != nil {
		for _, b := range n.state.branches {
			b.forgetAdmin()
		}
	}
	return nil
}

// apiFail maps an API error to a provider sentinel. notFound is the
// sentinel for 404; hint, when set, is appended for it.
func (n *Neon) apiFail(op string, err error, notFound error, hint string) error {
	var (
		sentinel error
		advice   string
		opErr    *neonapi.OperationError
	)
	switch {
	case errors.Is(err, neonapi.ErrUnauthorized):
		sentinel, advice = provider.ErrPermission, "check that api_key (NEON_API_KEY) holds a valid Neon API key that was not revoked"
	case errors.Is(err, neonapi.ErrForbidden):
		sentinel, advice = provider.ErrPermission, "the API key may not act on project "+n.project+"; use a personal or organization key, or one scoped to this project"
	case errors.Is(err, neonapi.ErrNotFound):
		sentinel, advice = notFound, hint
	case errors.As(err, &opErr):
		sentinel, advice = provider.ErrUnavailable, "Neon could not apply the change; check the project's status in the Neon console, then run `rotor resume`"
	case errors.Is(err, neonapi.ErrLocked), errors.Is(err, neonapi.ErrRateLimited), errors.Is(err, neonapi.ErrUnavailable),
		errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		sentinel, advice = provider.ErrUnavailable, "Neon is busy or unreachable; try again later (`rotor resume` continues a rotation)"
	case errors.Is(err, neonapi.ErrPrecondition):
		sentinel = provider.ErrUnsupported
	case errors.Is(err, neonapi.ErrBadRequest), errors.Is(err, neonapi.ErrConflict):
		sentinel = provider.ErrInvalid
	}
	if sentinel == nil {
		return fmt.Errorf("neon provider: %s: %w", op, err)
	}
	if advice != "" {
		return fmt.Errorf("neon provider: %s: %w; %s: %w", op, err, advice, sentinel)
	}
	return fmt.Errorf("neon provider: %s: %w: %w", op, err, sentinel)
}

var (
	_ provider.Provider        = (*Neon)(nil)
	_ provider.Endpointer      = (*Neon)(nil)
	_ provider.Reporter        = (*Neon)(nil)
	_ provider.PasswordChecker = (*Neon)(nil)
	_ provider.SelfManager     = (*Neon)(nil)
)
