package neonfake_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/rotorhq/rotor/internal/pgtest"
	"github.com/rotorhq/rotor/internal/provider/neon/neonfake"
	"github.com/rotorhq/rotor/internal/secret"
)

// endpointURL is how a client reaches host (an endpoint host of the fake)
// as role: through Route, over TLS that verifies the fake's certificate,
// with channel binding, as Neon's connection strings ask.
func (p *project) endpointURL(host, role string, pw secret.String, db string) secret.String {
	p.t.Helper()
	ip, port, ok := p.s.Route(host)
	require.True(p.t, ok, "host %s is no endpoint of the fake", host)
	q := url.Values{"sslmode": {"verify-full"}, "sslrootcert": {p.s.CACertFile}, "channel_binding": {"require"}}
	u := url.URL{Scheme: "postgresql", User: url.UserPassword(role, pw.Reveal()), Host: net.JoinHostPort(ip, strconv.Itoa(port)), Path: "/" + db, RawQuery: q.Encode()}
	return secret.New(u.String())
}

// viaProxy is the owner's way in through the read_write endpoint.
func (p *project) viaProxy(role string, pw secret.String) secret.String {
	return p.endpointURL(p.branch.Host, role, pw, p.db)
}

func pgCode(t *testing.T, err error) *pgconn.PgError {
	t.Helper()
	var pgErr *pgconn.PgError
	require.True(t, errors.As(err, &pgErr), "want a server error, got %v", err)
	return pgErr
}

func TestProxyLogsInWithChannelBinding(t *testing.T) {
	t.Parallel()
	p := newProject(t, neonfake.Config{})
	ctx := t.Context()

	conn := pgtest.Connect(ctx, t, p.viaProxy(p.owner, p.ownerPW))
	var user string
	require.NoError(t, conn.QueryRow(ctx, "SELECT current_user").Scan(&user))
	require.Equal(t, p.owner, user, "channel_binding=require: pgx insisted on SCRAM-SHA-256-PLUS and checked the binding")

	// By the endpoint's own name: the certificate covers
	// *.<region>.aws.neon.tech.
	ip, port, _ := p.s.Route(p.branch.Host)
	cfg, err := pgx.ParseConfig("postgresql://" + p.branch.Host + ":" + strconv.Itoa(port) + "/" + p.db +
		"?sslmode=verify-full&channel_binding=require&sslrootcert=" + url.QueryEscape(p.s.CACertFile))
	require.NoError(t, err)
	cfg.User, cfg.Password = p.owner, p.ownerPW.Reveal()
	cfg.LookupFunc = func(context.Context, string) ([]string, error) { return []string{ip}, nil }
	byName, err := pgx.ConnectConfig(ctx, cfg)
	require.NoError(t, err)
	require.NoError(t, byName.Close(ctx))

	// A cancel request reaches the session's server process. It is sent
	// until the query ends, as one sent before the query starts is lost.
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-done:
				return
			case <-time.After(100 * time.Millisecond):
				_ = conn.PgConn().CancelRequest(ctx)
			}
		}
	}()
	_, err = conn.Exec(ctx, "SELECT pg_sleep(60)")
	close(done)
	require.Equal(t, "57014", pgCode(t, err).Code)

	err = pgtest.CanLogin(ctx, p.viaProxy(p.owner, secret.New("not-the-password")))
	require.Equal(t, "28P01", pgCode(t, err).Code)
	require.Contains(t, err.Error(), "password authentication failed for user '"+p.owner+"'")
	err = pgtest.CanLogin(ctx, p.viaProxy("nobody_"+strings.ToLower(pgtest.UniqueName(t, "x")), p.ownerPW))
	require.Equal(t, "28P01", pgCode(t, err).Code, "an unknown role looks like a wrong password")
	c := p.branch.Cluster
	err = pgtest.CanLogin(ctx, p.viaProxy(c.SuperUser, c.SuperPassword()))
	require.Equal(t, "28P01", pgCode(t, err).Code, "nobody logs in as the superuser that plays cloud_admin")

	plain := strings.Replace(p.viaProxy(p.owner, p.ownerPW).Reveal(), "sslmode=verify-full", "sslmode=disable", 1)
	plain = strings.Replace(plain, "channel_binding=require", "channel_binding=disable", 1)
	err = pgtest.CanLogin(ctx, secret.New(plain))
	require.ErrorContains(t, err, "connection is insecure (try using `sslmode=require`)")
}

// TestHashedPasswordRefused: over SQL, a verifier is refused with the
// control plane's error, in the simple and the extended protocol, alone,
// among other statements and in a transaction, and the role keeps its
// password.
func TestHashedPasswordRefused(t *testing.T) {
	t.Parallel()
	p := newProject(t, neonfake.Config{})
	ctx := t.Context()
	next := secret.New("Next-" + pgtest.UniqueName(t, "pw"))
	scram, err := secret.SCRAMVerifier(nil, next)
	require.NoError(t, err)
	md5 := "md5" + strings.Repeat("3f", 16)
	conn := pgtest.Connect(ctx, t, p.viaProxy(p.owner, p.ownerPW))
	role := pgx.Identifier{p.owner}.Sanitize()

	check := func(err error) {
		t.Helper()
		pgErr := pgCode(t, err)
		require.Equal(t, "XX000", pgErr.Code)
		require.Contains(t, pgErr.Message, "from control plane")
		require.Contains(t, pgErr.Message, "hashed passwords are not supported")
		require.Empty(t, pgErr.Where, "Neon's error comes from C code, with no PL/pgSQL context")
		require.NotContains(t, err.Error(), scram.Reveal())
		require.NotContains(t, err.Error(), md5)
	}
	_, err = conn.Exec(ctx, "ALTER ROLE "+role+" WITH PASSWORD '"+scram.Reveal()+"'")
	check(err)
	_, err = conn.Exec(ctx, "SELECT 1; ALTER USER "+role+" ENCRYPTED PASSWORD '"+md5+"'")
	check(err)
	err = conn.PgConn().ExecParams(ctx, "ALTER ROLE "+role+" PASSWORD '"+scram.Reveal()+"'", nil, nil, nil, nil).Read().Err
	check(err)

	tx, err := conn.Begin(ctx)
	require.NoError(t, err)
	_, err = tx.Exec(ctx, "ALTER ROLE "+role+" PASSWORD '"+scram.Reveal()+"'")
	check(err)
	_, err = tx.Exec(ctx, "SELECT 1")
	require.Equal(t, "25P02", pgCode(t, err).Code, "the transaction is aborted, as Neon's is")
	require.NoError(t, tx.Rollback(ctx))

	created := strings.ToLower(pgtest.UniqueName(t, "made"))
	_, err = conn.Exec(ctx, "CREATE ROLE "+created+" LOGIN PASSWORD '"+scram.Reveal()+"'")
	check(err)
	var exists bool
	require.NoError(t, conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)", created).Scan(&exists))
	require.False(t, exists)

	// The session is still usable, the old password still logs in and
	// the one the verifier was made from does not.
	_, err = conn.Exec(ctx, "SELECT 1")
	require.NoError(t, err)
	require.NoError(t, pgtest.CanLogin(ctx, p.viaProxy(p.owner, p.ownerPW)))
	require.Error(t, pgtest.CanLogin(ctx, p.viaProxy(p.owner, next)))
}

func TestPlaintextPasswordStrength(t *testing.T) {
	t.Parallel()
	p := newProject(t, neonfake.Config{})
	ctx := t.Context()
	conn := pgtest.Connect(ctx, t, p.viaProxy(p.owner, p.ownerPW))
	role := pgx.Identifier{p.owner}.Sanitize()

	weak := secret.New("password1")
	_, err := conn.Exec(ctx, "ALTER ROLE "+role+" PASSWORD '"+weak.Reveal()+"'")
	pgErr := pgCode(t, err)
	require.Equal(t, "XX000", pgErr.Code)
	require.Contains(t, pgErr.Message, "too weak")
	require.NotContains(t, err.Error(), weak.Reveal())
	require.Error(t, pgtest.CanLogin(ctx, p.viaProxy(p.owner, weak)))
	require.NoError(t, pgtest.CanLogin(ctx, p.viaProxy(p.owner, p.ownerPW)))

	strong, err := secret.Generate(nil, secret.DefaultPolicy())
	require.NoError(t, err)
	_, err = conn.Exec(ctx, "ALTER ROLE "+role+" PASSWORD "+quoteLiteral(strong.Reveal()))
	require.NoError(t, err)
	require.NoError(t, pgtest.CanLogin(ctx, p.viaProxy(p.owner, strong)))
	require.Error(t, pgtest.CanLogin(ctx, p.viaProxy(p.owner, p.ownerPW)))
	// The server hashed it: what it stores is a verifier.
	var stored string
	admin := pgtest.Connect(ctx, t, p.branch.Cluster.AdminURL("postgres"))
	require.NoError(t, admin.QueryRow(ctx, "SELECT rolpassword FROM pg_authid WHERE rolname = $1", p.owner).Scan(&stored))
	require.True(t, strings.HasPrefix(stored, "SCRAM-SHA-256$"))
}

// quoteLiteral quotes s whatever it holds, as E'…' when it has
// backslashes.
func quoteLiteral(s string) string {
	q := "'" + strings.ReplaceAll(s, "'", "''") + "'"
	if strings.Contains(s, `\`) {
		return "E" + strings.ReplaceAll(q, `\`, `\\`)
	}
	return q
}

// TestResetDropsEverySession: when a reset applies, every session of the
// compute ends — another role's, through the endpoint on another
// database, and direct ones — but not a session on the read replica.
func TestResetDropsEverySession(t *testing.T) {
	t.Parallel()
	s := neonfake.Start(t, neonfake.Config{})
	b, err := s.AddBranch(t.Context(), neonfake.BranchSpec{Name: "main", Cluster: pgtest.Shared(t), ReadReplica: true})
	require.NoError(t, err)
	db, owner := pgtest.UniqueName(t, "neondb"), pgtest.UniqueName(t, "owner")
	ownerPW, err := s.AddDatabase(t.Context(), b.ID, db, owner)
	require.NoError(t, err)
	p := &project{t: t, s: s, branch: b, db: db, owner: owner, ownerPW: ownerPW}
	ctx := t.Context()
	other, otherPW := pgtest.UniqueName(t, "other"), secret.New("Other-"+pgtest.UniqueName(t, "pw"))
	pgtest.NewRole(t, b.Cluster, other, otherPW)

	sessions := map[string]*pgx.Conn{
		"another role through the endpoint":   pgtest.Connect(ctx, t, p.viaProxy(other, otherPW)),
		"the owner through the pooled host":   pgtest.Connect(ctx, t, p.endpointURL(b.EndpointID+"-pooler"+strings.TrimPrefix(b.Host, b.EndpointID), owner, ownerPW, db)),
		"through the endpoint on postgres":    pgtest.Connect(ctx, t, p.endpointURL(b.Host, other, otherPW, "postgres")),
		"straight to the branch's database":   pgtest.Connect(ctx, t, b.Cluster.URL(other, otherPW, db)),
		"through the read_only endpoint (ro)": pgtest.Connect(ctx, t, p.endpointURL(b.ReplicaHost, other, otherPW, db)),
	}
	reset := p.call(http.MethodPost, p.rolePath(owner)+"/reset_password", nil)
	require.Equal(t, http.StatusOK, reset.status)
	for name, conn := range sessions {
		_, err := conn.Exec(ctx, "SELECT 1")
		require.NoError(t, err, "%s: sessions live until the operations finish", name)
	}
	p.pollUntilDone(reset.body["operations"].([]any))
	for name, conn := range sessions {
		_, err := conn.Exec(ctx, "SELECT 1")
		if strings.HasSuffix(name, "(ro)") {
			require.NoError(t, err, "%s: a replica is a compute of its own", name)
			continue
		}
		require.Error(t, err, "%s: Neon drops every connection of the compute", name)
	}
	pw := secret.New(field(t, reset.body, "role", "password").(string))
	require.NoError(t, pgtest.CanLogin(ctx, p.viaProxy(owner, pw)))
}

func TestReadReplica(t *testing.T) {
	t.Parallel()
	s := neonfake.Start(t, neonfake.Config{})
	b, err := s.AddBranch(t.Context(), neonfake.BranchSpec{Name: "main", Cluster: pgtest.Shared(t), ReadReplica: true})
	require.NoError(t, err)
	db, owner := pgtest.UniqueName(t, "neondb"), pgtest.UniqueName(t, "owner")
	ownerPW, err := s.AddDatabase(t.Context(), b.ID, db, owner)
	require.NoError(t, err)
	p := &project{t: t, s: s, branch: b, db: db, owner: owner, ownerPW: ownerPW}
	ctx := t.Context()

	eps := p.call(http.MethodGet, "/branches/"+b.ID+"/endpoints", nil)
	require.Equal(t, http.StatusOK, eps.status)
	types := map[string]string{}
	for _, e := range eps.body["endpoints"].([]any) {
		m := e.(map[string]any)
		types[m["host"].(string)] = m["type"].(string)
	}
	require.Equal(t, map[string]string{b.Host: "read_write", b.ReplicaHost: "read_only"}, types)
	q := url.Values{"database_name": {db}, "role_name": {owner}, "endpoint_id": {b.ReplicaID}}
	uri := p.call(http.MethodGet, "/connection_uri?"+q.Encode(), nil)
	require.Equal(t, http.StatusOK, uri.status)
	u, err := url.Parse(uri.body["uri"].(string))
	require.NoError(t, err)
	require.Equal(t, b.ReplicaHost, u.Host)
	_, rwPort, _ := s.Route(b.Host)
	_, roPort, _ := s.Route(b.ReplicaHost)
	require.NotEqual(t, rwPort, roPort, "the replica has a host of its own")

	table := pgx.Identifier{pgtest.UniqueName(t, "t")}.Sanitize()
	rw := pgtest.Connect(ctx, t, p.viaProxy(owner, ownerPW))
	_, err = rw.Exec(ctx, "CREATE TABLE "+table+" (n int)")
	require.NoError(t, err)
	_, err = rw.Exec(ctx, "INSERT INTO "+table+" VALUES (1)")
	require.NoError(t, err)

	ro := pgtest.Connect(ctx, t, p.endpointURL(b.ReplicaHost, owner, ownerPW, db))
	var n int
	require.NoError(t, ro.QueryRow(ctx, "SELECT count(*) FROM "+table).Scan(&n))
	require.Equal(t, 1, n, "the replica serves the branch's data")
	_, err = ro.Exec(ctx, "INSERT INTO "+table+" VALUES (2)")
	require.Equal(t, "25006", pgCode(t, err).Code)
	for _, sql := range []string{"SET default_transaction_read_only = off", "BEGIN READ WRITE"} {
		_, err = ro.Exec(ctx, sql)
		require.Equal(t, "25006", pgCode(t, err).Code, sql)
	}
	_, err = ro.Exec(ctx, "INSERT INTO "+table+" VALUES (3)")
	require.Equal(t, "25006", pgCode(t, err).Code, "still read-only")

	// Nor can the startup message turn it off.
	cfg, err := pgx.ParseConfig(p.endpointURL(b.ReplicaHost, owner, ownerPW, db).Reveal())
	require.NoError(t, err)
	cfg.RuntimeParams["options"] = "-c default_transaction_read_only=off"
	cfg.RuntimeParams["default_transaction_read_only"] = "off"
	conn, err := pgx.ConnectConfig(ctx, cfg)
	require.NoError(t, err)
	defer conn.Close(ctx)
	var mode string
	require.NoError(t, conn.QueryRow(ctx, "SHOW transaction_read_only").Scan(&mode))
	require.Equal(t, "on", mode)
	require.NoError(t, rw.QueryRow(ctx, "SELECT count(*) FROM "+table).Scan(&n))
	require.Equal(t, 1, n)
}

// clock is a settable time source.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }

func (c *clock) Advance(d time.Duration) { c.mu.Lock(); defer c.mu.Unlock(); c.now = c.now.Add(d) }

func TestBusyBranchStaysLocked(t *testing.T) {
	t.Parallel()
	clk := &clock{now: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	p := newProject(t, neonfake.Config{Now: clk.Now})
	_, err := p.s.Busy("main", 10*time.Second)
	require.NoError(t, err)
	reset := func() answer { return p.call(http.MethodPost, p.rolePath(p.owner)+"/reset_password", nil) }

	for _, step := range []time.Duration{0, 3 * time.Second, 6 * time.Second} {
		clk.Advance(step)
		a := reset()
		require.Equal(t, http.StatusLocked, a.status, "locked %s before the end", step)
		require.Equal(t, "project already has running conflicting operations, scheduling of new ones is prohibited", a.body["message"])
		require.Equal(t, "", a.body["code"])
		require.Equal(t, "req-"+strings.ToLower(t.Name()), a.body["request_id"])
	}
	require.NoError(t, pgtest.CanLogin(t.Context(), p.viaProxy(p.owner, p.ownerPW)), "nothing changed while locked")
	clk.Advance(time.Second) // 10 s after Busy
	a := reset()
	require.Equal(t, http.StatusOK, a.status)
}

func TestOperationDuration(t *testing.T) {
	t.Parallel()
	clk := &clock{now: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	p := newProject(t, neonfake.Config{Now: clk.Now, OpDuration: 10 * time.Second})
	reset := p.call(http.MethodPost, p.rolePath(p.owner)+"/reset_password", nil)
	require.Equal(t, http.StatusOK, reset.status)
	ops := reset.body["operations"].([]any)
	status := func() string {
		id := ops[len(ops)-1].(map[string]any)["id"].(string)
		return field(t, p.call(http.MethodGet, "/operations/"+id, nil).body, "operation", "status").(string)
	}
	for range 5 {
		require.NotEqual(t, "finished", status(), "requests alone do not finish it")
	}
	require.Equal(t, http.StatusLocked, p.call(http.MethodPost, p.rolePath(p.owner)+"/reset_password", nil).status)
	require.NoError(t, pgtest.CanLogin(t.Context(), p.viaProxy(p.owner, p.ownerPW)), "the old password works until it finishes")
	clk.Advance(10 * time.Second)
	require.Equal(t, []string{"finished", "finished"}, p.pollUntilDone(ops))
	require.Error(t, pgtest.CanLogin(t.Context(), p.viaProxy(p.owner, p.ownerPW)))
}
