package neon

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/rotorhq/rotor/internal/connstr"
	"github.com/rotorhq/rotor/internal/provider"
	"github.com/rotorhq/rotor/internal/provider/neon/neonapi"
	"github.com/rotorhq/rotor/internal/provider/postgres"
	"github.com/rotorhq/rotor/internal/secret"
)

// The admin connection: who rotor logs in as on each branch, and with
// which password. A Neon config has no admin_url, so every piece of
// advice names admin_role and admin_password instead.

// hints words the postgres provider's advice for a Neon config.
func (n *Neon) hints(st *state) postgres.Hints {
	return postgres.Hints{
		AdminLogin: fmt.Sprintf("check admin_role (%s) and admin_password in the neon provider: admin_password must be that role's current password "+
			"(leave it out for rotor to ask the Neon API, which works while the project stores passwords)", st.adminRole),
		AdminReach:     "check that the branch's compute endpoint is up (Neon console → Branches), and raise connect_timeout if it is waking from suspend",
		AdminPrivilege: fmt.Sprintf("admin_role %s may not do this; use the database owner Neon created (a member of neon_superuser) as admin_role", st.adminRole),
		MissingRole:    "create it in the Neon console (Branches → Roles & Databases) or with CREATE ROLE, or fix the role name in the config",
		AdminTLS: "the compute's certificate did not verify against the neon provider's sslrootcert (by default the system's trusted roots, which sign Neon's certificates): " +
			"set sslrootcert to the CA that signs it, or sslmode: verify-ca if the host name differs (a private link)",
	}
}

// adminCandidate is one password to try for the admin role.
type adminCandidate struct {
	pw   secret.String
	from string
}

// AdminRole is the role the provider logs in as (SelfManager).
func (n *Neon) AdminRole(ctx context.Context) (string, error) {
	st, err := n.resolve(ctx)
	if err != nil {
		return "", err
	}
	return st.adminRole, nil
}

// UseAdminPasswords makes later admin connections try these passwords,
// in order, before admin_password and the API's stored password
// (SelfManager): the engine passes the current (and pending) version's
// password when the admin role is a role it rotates, since an environment
// variable goes stale at the first rotation. A password rotor set itself
// during this process still comes first.
func (n *Neon) UseAdminPasswords(passwords []secret.String) {
	var kept []secret.String
	for _, pw := range passwords {
		if !pw.IsZero() && !slices.ContainsFunc(kept, pw.Equal) {
			kept = append(kept, pw)
		}
	}
	n.mu.Lock()
	same := slices.EqualFunc(kept, n.stored, func(a, b secret.String) bool { return a.Equal(b) })
	n.stored = kept
	st := n.state
	n.mu.Unlock()
	if same || st == nil {
		return
	}
	for _, b := range st.branches {
		b.mu.Lock()
		own := !b.adminPW.IsZero()
		b.mu.Unlock()
		if !own {
			b.forgetAdmin()
		}
	}
}

// admin returns the branch's admin connection, built on first use.
func (n *Neon) admin(ctx context.Context, st *state, b *branch) (*postgres.Postgres, error) {
	b.mu.Lock()
	if b.pg != nil {
		defer b.mu.Unlock()
		return b.pg, nil
	}
	b.mu.Unlock()
	url, err := n.adminURL(ctx, st, b)
	if err != nil {
		return nil, err
	}
	o := postgres.Options{AdminURL: url.Reveal(), ConnectTimeout: n.connectTimeout, Hints: n.hints(st)}
	p, err := postgres.New(provider.Params{Logger: n.logger, Decode: func(v any) error {
		*(v.(*postgres.Options)) = o
		return nil
	}})
	if err != nil {
		if n.sslRootCert != "" {
			return nil, fmt.Errorf("neon provider: admin connection to branch %s: sslrootcert %q could not be read as a PEM certificate file; fix the path: %w", b, n.sslRootCert, provider.ErrInvalid)
		}
		return nil, fmt.Errorf("neon provider: admin connection to branch %s: %w", b, err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.pg != nil {
		_ = p.Close()
		return b.pg, nil
	}
	b.pg = p.(*postgres.Postgres)
	return b.pg, nil
}

// adminURL is admin_role's connection string for the branch, with the
// admin connection's TLS settings. The password is the first that logs
// in of: the one rotor set on this branch, the ones the engine gave
// (UseAdminPasswords), admin_password, and the one Neon stores (asked of
// connection_uri). With a single candidate nothing is tried ahead: the
// first real use reports a refusal.
func (n *Neon) adminURL(ctx context.Context, st *state, b *branch) (secret.String, error) {
	b.mu.Lock()
	cached, own := b.adminURL, b.adminPW
	b.mu.Unlock()
	if !cached.IsZero() {
		return cached, nil
	}
	n.mu.Lock()
	var cands []adminCandidate
	if !own.IsZero() {
		cands = append(cands, adminCandidate{own, "the password rotor set"})
	}
	for _, pw := range n.stored {
		cands = append(cands, adminCandidate{pw, "rotor's store"})
	}
	if !n.adminPassword.IsZero() {
		cands = append(cands, adminCandidate{n.adminPassword, "admin_password"})
	}
	n.mu.Unlock()
	var unique []adminCandidate
	for _, c := range cands {
		if !slices.ContainsFunc(unique, func(u adminCandidate) bool { return u.pw.Equal(c.pw) }) {
			unique = append(unique, c)
		}
	}
	cands = unique

	var chosen *connstr.Conn
	switch len(cands) {
	case 0:
		c, err := n.storedAdminConn(ctx, st, b)
		if err != nil {
			return secret.String{}, err
		}
		chosen = c
	case 1:
		c, err := n.candidateConn(ctx, st, b, cands[0].pw)
		if err != nil {
			return secret.String{}, err
		}
		chosen = c
	default:
		var refused []string
		for _, cand := range cands {
			c, err := n.candidateConn(ctx, st, b, cand.pw)
			if err != nil {
				return secret.String{}, err
			}
			err = n.tryLogin(ctx, c)
			if err == nil {
				chosen = c
				break
			}
			if !authRefused(err) {
				return secret.String{}, n.adminFail(st, b, err, cand.pw)
			}
			refused = append(refused, cand.from)
		}
		if chosen == nil {
			// Last, what Neon stores, if it stores passwords.
			if c, err := n.storedAdminConn(ctx, st, b); err == nil && n.tryLogin(ctx, c) == nil {
				chosen = c
				break
			}
			return secret.String{}, fmt.Errorf("neon provider: log in as admin role %q on branch %s: the server refused every password rotor knows for it (%s); "+
				"set admin_password to the role's current password (reset it in the Neon console if nobody knows it), or check admin_role: %w",
				st.adminRole, b, strings.Join(refused, ", "), provider.ErrPermission)
		}
	}
	url := chosen.URL()
	b.mu.Lock()
	defer b.mu.Unlock()
	b.adminURL = url
	return url, nil
}

// candidateConn is the admin connection string on the branch's endpoint
// with pw.
func (n *Neon) candidateConn(ctx context.Context, st *state, b *branch, pw secret.String) (*connstr.Conn, error) {
	ep, err := n.endpointOf(ctx, b)
	if err != nil {
		return nil, err
	}
	return n.adminTLS(consumerConn(ep.Host, st.database).WithUser(st.adminRole).WithPassword(pw)), nil
}

// storedAdminConn asks the API for admin_role's connection string, which
// carries the password Neon stores for it.
func (n *Neon) storedAdminConn(ctx context.Context, st *state, b *branch) (*connstr.Conn, error) {
	noStored := func(cause string) error {
		return fmt.Errorf("neon provider: get an admin connection to branch %s: %s; the project does not store role passwords (store_passwords is off), so rotor cannot ask Neon for %s's password: "+
			"set admin_password: ${NEON_ADMIN_PASSWORD} to that role's password (rotor keeps it itself after the first rotation if it rotates that role), or turn store_passwords on: %w",
			b, cause, st.adminRole, provider.ErrUnsupported)
	}
	uri, err := n.api.ConnectionURI(ctx, n.project, neonapi.ConnectionURIParams{BranchID: b.id, Database: st.database, Role: st.adminRole})
	if errors.Is(err, neonapi.ErrPrecondition) {
		return nil, noStored(err.Error())
	}
	if err != nil {
		return nil, n.apiFail(fmt.Sprintf("get the connection string of admin role %q on branch %s", st.adminRole, b), err, provider.ErrInvalid,
			"check admin_role and database, or set admin_password: ${NEON_ADMIN_PASSWORD}")
	}
	c, err := connstr.Parse(uri.Reveal())
	if err != nil {
		return nil, fmt.Errorf("neon provider: the admin connection string Neon returned for branch %s does not parse: %w", b, provider.ErrInvalid)
	}
	if c.Password.IsZero() {
		return nil, noStored("Neon's connection_uri holds no password")
	}
	return n.adminTLS(c), nil
}

// adminTLS sets the admin connection's sslmode and sslrootcert, and
// routes the host where tests want it.
func (n *Neon) adminTLS(c *connstr.Conn) *connstr.Conn {
	c = c.Clone()
	c.SetParam("sslmode", n.sslMode)
	if n.sslRootCert != "" {
		c.SetParam("sslrootcert", n.sslRootCert)
	}
	if n.route != nil {
		if ip, port, ok := n.route(c.Host); ok {
			c = c.WithHost(ip)
			c.Port = strconv.Itoa(port)
		}
	}
	return c
}

// tryLogin connects with c and closes the session.
func (n *Neon) tryLogin(ctx context.Context, c *connstr.Conn) error {
	cfg, err := pgx.ParseConfig(c.URL().Reveal())
	if err != nil {
		return fmt.Errorf("neon provider: the admin connection string does not parse (check sslrootcert): %w", provider.ErrInvalid)
	}
	if d, err := time.ParseDuration(n.connectTimeout); err == nil {
		cfg.ConnectTimeout = d
	}
	cfg.RuntimeParams["application_name"] = "rotor"
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return err
	}
	return conn.Close(context.WithoutCancel(ctx))
}

// authRefused reports a server that refused the password or the role.
func authRefused(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && strings.HasPrefix(pgErr.Code, "28")
}

// adminFail is a failed admin login, with Neon's advice.
func (n *Neon) adminFail(st *state, b *branch, err error, secrets ...secret.String) error {
	return sqlFail(fmt.Sprintf("log in as admin role %q on branch %s", st.adminRole, b), "", err, n.hints(st), secrets...)
}

// forgetAdmin drops the branch's admin connection, so that the next use
// chooses its password again.
func (b *branch) forgetAdmin() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.pg != nil {
		_ = b.pg.Close()
	}
	b.pg, b.adminURL = nil, secret.String{}
}

// switchAdmin makes pw the admin role's password on the branch, after
// rotor changed it: connections made from now on use it. Sessions already
// open stay (a password change ends none), but the pool is rebuilt so
// that no new connection is attempted with the old one.
func (b *branch) switchAdmin(pw secret.String) {
	b.forgetAdmin()
	b.mu.Lock()
	defer b.mu.Unlock()
	b.adminPW = pw
}

func (n *Neon) now() time.Time {
	if n.api.Now != nil {
		return n.api.Now()
	}
	return time.Now()
}

// sleep waits d, through the API client's sleep when tests set one.
func (n *Neon) sleep(ctx context.Context, d time.Duration) error {
	if n.api.Sleep != nil {
		return n.api.Sleep(ctx, d)
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
