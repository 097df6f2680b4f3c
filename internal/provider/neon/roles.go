package neon

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/rotorhq/rotor/internal/provider"
	"github.com/rotorhq/rotor/internal/provider/postgres"
	"github.com/rotorhq/rotor/internal/secret"
)

// prefix labels per-branch findings once there is more than one branch.
func prefix(st *state, b *branch, s string) string {
	if len(st.branches) == 1 {
		return s
	}
	return "branch " + b.name + ": " + s
}

// Check resolves the project through the API and runs the postgres
// provider's checks on every configured branch, then says what the
// method will do: over SQL, whether statement logging can be switched off
// for the statement that carries the plaintext; over the API, that every
// connection of the compute is dropped. It fails when a template needs a
// read replica the branch does not have (RequireReplica).
func (n *Neon) Check(ctx context.Context, req provider.CheckRequest) (provider.CheckResponse, error) {
	for _, r := range req.Roles {
		if err := checkRoleName("check the neon provider", r); err != nil {
			return provider.CheckResponse{}, err
		}
	}
	st, err := n.resolve(ctx)
	if err != nil {
		return provider.CheckResponse{}, err
	}
	hints := n.hints(st)
	var resp provider.CheckResponse
	missing := false
	for i, b := range st.branches {
		pg, err := n.admin(ctx, st, b)
		if err != nil {
			return provider.CheckResponse{}, err
		}
		got, err := pg.Check(ctx, req)
		if err != nil {
			return provider.CheckResponse{}, fmt.Errorf("neon provider: on branch %s: %w", b, err)
		}
		if resp.ServerVersion == "" {
			resp.ServerVersion = got.ServerVersion + " on Neon (branch " + b.name + ")"
		}
		for _, note := range got.Notes {
			if strings.Contains(note, "is not a superuser, so old passwords cannot be snapshotted") {
				// Neon's roles never are, rotor sends no verifier to Neon, and
				// whether the statement is logged is said below.
				continue
			}
			if strings.Contains(note, hints.MissingRole) {
				missing = true
			}
			resp.Notes = append(resp.Notes, prefix(st, b, note))
		}
		if n.method == MethodSQL && i == 0 {
			q, err := pg.Quiet(ctx)
			if err != nil {
				return provider.CheckResponse{}, fmt.Errorf("neon provider: on branch %s: %w", b, err)
			}
			resp.Notes = append(resp.Notes, sqlMethodNote(st, q))
		}
	}
	if missing && len(req.Roles) > 1 {
		resp.Notes = append(resp.Notes, "for the dual strategy, `rotor setup-roles` creates the missing login roles (and their group) on every listed branch")
	}
	if n.method == MethodAPI {
		resp.Notes = append(resp.Notes, "method api resets the password through Neon's API: Neon chooses the password, and when the reset applies it drops every connection to the compute endpoint, "+
			"of every role, not only this credential's; a failed test cannot be rolled back. method sql (the default) keeps every connection")
	}
	for _, r := range req.Roles {
		if r != st.adminRole {
			continue
		}
		note := fmt.Sprintf("role %q is also the admin role rotor logs in as: rotor switches to each new password as soon as it has set it and keeps it in its store for the next rotation", r)
		if !n.adminPassword.IsZero() {
			note += ", so admin_password is only needed until the first rotation succeeds"
		}
		if n.method == MethodAPI && !n.adminPassword.IsZero() {
			note += "; with method api, if rotor were stopped between Neon's reset and storing Neon's answer, nobody would know the new password, and without stored passwords rotor could not log in again: method sql, where rotor stores the password before it sends it, has no such window"
		}
		if n.method == MethodAPI && len(st.branches) > 1 && !n.adminPassword.IsZero() {
			note += fmt.Sprintf("; with method api the branches other than %s get passwords nobody keeps, so without stored passwords rotor cannot log in there as %s after this process ends: use method sql", st.branches[0].name, r)
		}
		resp.Notes = append(resp.Notes, note)
	}
	replica, err := n.replicaOf(ctx, st.branches[0])
	if err != nil {
		return provider.CheckResponse{}, err
	}
	n.mu.Lock()
	need := n.needReplica
	n.mu.Unlock()
	switch {
	case replica != nil:
		resp.Notes = append(resp.Notes, fmt.Sprintf("read replica %s (%s) of branch %s is {{.ReplicaURL}}", replica.ID, replica.Host, st.branches[0].name))
	case need:
		return provider.CheckResponse{}, fmt.Errorf("neon provider: a value template uses {{.ReplicaURL}}, but branch %s has no read replica (no read_only compute endpoint): "+
			"add one in the Neon console (Branches → %s → Add Read Replica), or remove {{.ReplicaURL}} from the template: %w", st.branches[0], st.branches[0].name, provider.ErrInvalid)
	}
	return resp, nil
}

// sqlMethodNote says how method sql sends the password and whether the
// statement stays out of the server's logs.
func sqlMethodNote(st *state, q postgres.QuietReport) string {
	note := "method sql sends the new password to Neon in plaintext, as Neon requires (it refuses hashed passwords), in an ALTER ROLE statement of its own over TLS that verifies the server; " +
		"no connection is dropped"
	if q.Complete() {
		return note + "; admin role " + st.adminRole + " may switch server-side statement logging off for that statement, and rotor does"
	}
	return note + fmt.Sprintf("; admin role %s may not switch %s off, so if the server logs statements (PostgreSQL's default, log_statement = none, does not), that one is logged too", st.adminRole, strings.Join(q.Left, ", "))
}

// RequireReplica makes Check fail when the primary branch has no read
// replica: the config renders {{.ReplicaURL}} for a credential on this
// provider. resolve calls it when it loads such a config.
func (n *Neon) RequireReplica() {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.needReplica = true
}

// EnsureRoles repairs the dual layout on every configured branch. Login
// roles that do not exist yet are first created LOGIN without any
// password (nobody can log in until the first rotation sets one), so that
// no password, hashed or not, is sent for them; the postgres provider then
// adds the group, memberships, settings and CONNECT. With no database in
// the request, the credential's Neon database gets CONNECT.
func (n *Neon) EnsureRoles(ctx context.Context, req provider.EnsureRolesRequest) (provider.EnsureRolesResponse, error) {
	op := fmt.Sprintf("set up group role %q with login roles %s", req.Group, strings.Join(req.Logins, ", "))
	if err := checkRoleName(op, req.Group); err != nil {
		return provider.EnsureRolesResponse{}, err
	}
	for _, l := range req.Logins {
		if err := checkRoleName(op, l); err != nil {
			return provider.EnsureRolesResponse{}, err
		}
		if l == req.Group {
			return provider.EnsureRolesResponse{}, fmt.Errorf("neon provider: %s: role %q is named twice; the group and each login role need distinct names: %w", op, l, provider.ErrInvalid)
		}
	}
	st, err := n.resolve(ctx)
	if err != nil {
		return provider.EnsureRolesResponse{}, err
	}
	if req.Database == "" {
		req.Database = st.database
	}
	var changes []string
	for _, b := range st.branches {
		pg, err := n.admin(ctx, st, b)
		if err != nil {
			return provider.EnsureRolesResponse{}, err
		}
		created, err := n.createLogins(ctx, st, b, req.Logins)
		if err != nil {
			return provider.EnsureRolesResponse{}, err
		}
		for _, c := range created {
			changes = append(changes, prefix(st, b, fmt.Sprintf("created login role %q without a password (the first rotation sets one)", c)))
		}
		got, err := pg.EnsureRoles(ctx, req)
		if err != nil {
			return provider.EnsureRolesResponse{}, fmt.Errorf("neon provider: on branch %s: %w", b, err)
		}
		for _, c := range got.Changes {
			changes = append(changes, prefix(st, b, c))
		}
	}
	return provider.EnsureRolesResponse{Changes: changes}, nil
}

// Parity compares the roles on every configured branch.
func (n *Neon) Parity(ctx context.Context, req provider.ParityRequest) (provider.ParityResponse, error) {
	st, err := n.resolve(ctx)
	if err != nil {
		return provider.ParityResponse{}, err
	}
	var diffs []string
	for _, b := range st.branches {
		pg, err := n.admin(ctx, st, b)
		if err != nil {
			return provider.ParityResponse{}, err
		}
		got, err := pg.Parity(ctx, req)
		if err != nil {
			return provider.ParityResponse{}, fmt.Errorf("neon provider: on branch %s: %w", b, err)
		}
		for _, d := range got.Differences {
			diffs = append(diffs, prefix(st, b, d))
		}
	}
	return provider.ParityResponse{Differences: diffs}, nil
}

// Sessions lists the role's sessions on every configured branch. A role
// missing from a branch other than the primary has no sessions there.
func (n *Neon) Sessions(ctx context.Context, req provider.SessionsRequest) (provider.SessionsResponse, error) {
	st, err := n.resolve(ctx)
	if err != nil {
		return provider.SessionsResponse{}, err
	}
	var all []provider.Session
	for i, b := range st.branches {
		pg, err := n.admin(ctx, st, b)
		if err != nil {
			return provider.SessionsResponse{}, err
		}
		got, err := pg.Sessions(ctx, req)
		switch {
		case err == nil:
			all = append(all, got.Sessions...)
		case i > 0 && errors.Is(err, provider.ErrRoleNotFound):
		default:
			return provider.SessionsResponse{}, fmt.Errorf("neon provider: on branch %s: %w", b, err)
		}
	}
	return provider.SessionsResponse{Sessions: all}, nil
}

// Terminate ends the role's sessions on every configured branch.
func (n *Neon) Terminate(ctx context.Context, req provider.TerminateRequest) (provider.TerminateResponse, error) {
	st, err := n.resolve(ctx)
	if err != nil {
		return provider.TerminateResponse{}, err
	}
	total := 0
	for i, b := range st.branches {
		pg, err := n.admin(ctx, st, b)
		if err != nil {
			return provider.TerminateResponse{}, err
		}
		got, err := pg.Terminate(ctx, req)
		switch {
		case err == nil:
			total += got.Terminated
		case i > 0 && errors.Is(err, provider.ErrRoleNotFound):
		default:
			return provider.TerminateResponse{}, fmt.Errorf("neon provider: on branch %s: %w", b, err)
		}
	}
	return provider.TerminateResponse{Terminated: total}, nil
}

// withConn runs fn on a fresh admin connection to the branch, for the
// few statements the postgres provider has no call for. None of them
// carries a password.
func (n *Neon) withConn(ctx context.Context, st *state, b *branch, fn func(*pgx.Conn) error) error {
	url, err := n.adminURL(ctx, st, b)
	if err != nil {
		return err
	}
	cfg, err := pgx.ParseConfig(url.Reveal())
	if err != nil {
		return fmt.Errorf("neon provider: the admin connection string for branch %s does not parse: %w", b, provider.ErrInvalid)
	}
	if d, err := time.ParseDuration(n.connectTimeout); err == nil {
		cfg.ConnectTimeout = d
	}
	cfg.RuntimeParams["application_name"] = "rotor"
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return sqlFail("connect to branch "+b.String(), "", err, n.hints(st), url, secret.New(cfg.Password))
	}
	defer conn.Close(context.WithoutCancel(ctx))
	return fn(conn)
}

// createLogins creates the missing login roles with LOGIN and no password.
func (n *Neon) createLogins(ctx context.Context, st *state, b *branch, logins []string) ([]string, error) {
	var created []string
	err := n.withConn(ctx, st, b, func(conn *pgx.Conn) error {
		for _, l := range logins {
			var exists bool
			if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)`, l).Scan(&exists); err != nil {
				return sqlFail("look up role on branch "+b.String(), l, err, n.hints(st))
			}
			if exists {
				continue
			}
			if _, err := conn.Exec(ctx, "CREATE ROLE "+pgx.Identifier{l}.Sanitize()+" LOGIN"); err != nil {
				return sqlFail("create role on branch "+b.String(), l, err, n.hints(st))
			}
			created = append(created, l)
		}
		return nil
	})
	return created, err
}

// alterLogin gives the role LOGIN and its VALID UNTIL (infinity when nil,
// so that an older expiry cannot keep the new password from working).
func (n *Neon) alterLogin(ctx context.Context, st *state, b *branch, role string, validUntil *time.Time) error {
	until := "infinity"
	if validUntil != nil {
		until = validUntil.UTC().Format("2006-01-02T15:04:05.999999Z07:00")
	}
	return n.withConn(ctx, st, b, func(conn *pgx.Conn) error {
		_, err := conn.Exec(ctx, "ALTER ROLE "+pgx.Identifier{role}.Sanitize()+" WITH LOGIN VALID UNTIL '"+until+"'")
		if err != nil {
			return sqlFail("give role LOGIN and VALID UNTIL on branch "+b.String(), role, err, n.hints(st))
		}
		return nil
	})
}

// sqlFail maps a server error of rotor's own statements to a sentinel,
// with every given secret scrubbed from the wording and Neon's advice.
func sqlFail(op, role string, err error, h postgres.Hints, secrets ...secret.String) error {
	err = secret.Scrub(err, secrets...)
	var pgErr *pgconn.PgError
	var sentinel error
	advice := ""
	switch {
	case errors.As(err, &pgErr) && pgErr.Code == "42704":
		sentinel, advice = provider.ErrRoleNotFound, h.MissingRole
	case errors.As(err, &pgErr) && strings.HasPrefix(pgErr.Code, "28"):
		sentinel, advice = provider.ErrPermission, h.AdminLogin
	case errors.As(err, &pgErr) && pgErr.Code == "42501":
		sentinel, advice = provider.ErrPermission, h.AdminPrivilege
	case errors.As(err, &pgErr):
		return fmt.Errorf("neon provider: %s: %s (SQLSTATE %s)", op, secret.ScrubString(pgErr.Message, secrets...), pgErr.Code)
	default:
		sentinel, advice = provider.ErrUnavailable, h.AdminReach
	}
	if role != "" {
		op += fmt.Sprintf(" (role %q)", role)
	}
	msg := err.Error()
	if advice != "" {
		msg += "; " + advice
	}
	return fmt.Errorf("neon provider: %s: %s: %w", op, msg, sentinel)
}
