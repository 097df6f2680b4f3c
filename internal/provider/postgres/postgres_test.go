package postgres_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/rotorhq/rotor/internal/pgcluster"
	"github.com/rotorhq/rotor/internal/pgtest"
	"github.com/rotorhq/rotor/internal/provider"
	"github.com/rotorhq/rotor/internal/provider/postgres"
	"github.com/rotorhq/rotor/internal/provider/providertest"
	"github.com/rotorhq/rotor/internal/secret"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

func TestConformance(t *testing.T) {
	t.Parallel()
	providertest.Exercise(t, providertest.Harness{New: newEnv})
}

// newEnv binds a provider to a fresh database on the shared cluster, with
// the superuser as admin.
func newEnv(t *testing.T) providertest.Env {
	t.Helper()
	return envFor(t, pgtest.Shared(t), nil)
}

// envFor binds a provider to a fresh database on c. admin, when set,
// replaces the superuser as the provider's identity.
func envFor(t *testing.T, c *pgcluster.Cluster, admin func(db string) secret.String) providertest.Env {
	t.Helper()
	db, adminURL := pgtest.NewDatabaseOn(t, c)
	providerURL := adminURL
	if admin != nil {
		providerURL = admin(db)
	}
	p, err := postgres.Open(t.Context(), providerURL)
	require.NoError(t, err)
	t.Cleanup(func() { _ = p.Close() })
	return providertest.Env{
		Provider: p,
		Database: db,
		AdminURL: adminURL,
		LoginURL: func(role string, pw secret.String) secret.String {
			return c.URL(role, pw, db, "channel_binding=require")
		},
		CreateRole: func(t *testing.T, name string, pw secret.String) { pgtest.NewRole(t, c, name, pw) },
	}
}

func strictDecode(doc string) func(any) error {
	return func(v any) error {
		dec := yaml.NewDecoder(strings.NewReader(doc))
		dec.KnownFields(true)
		return dec.Decode(v)
	}
}

func TestNew(t *testing.T) {
	t.Parallel()
	const leak = "s3cr3t-Leak"
	tests := []struct {
		name    string
		config  string
		wantErr string
		wantIs  error
	}{
		{"minimal", "admin_url: postgresql://admin:" + leak + "@127.0.0.1:1/db", "", nil},
		{"all options", "admin_url: postgresql://admin:" + leak + "@127.0.0.1:1/db\nconnect_timeout: 3s\nstatement_timeout: 1m", "", nil},
		{"keyword DSN", "admin_url: host=127.0.0.1 port=1 user=admin password=" + leak, "", nil},
		{"missing admin_url", "connect_timeout: 3s", "admin_url is required", provider.ErrInvalid},
		{"bad connect_timeout", "admin_url: postgresql://a@h/db\nconnect_timeout: soon", `connect_timeout "soon"`, provider.ErrInvalid},
		{"negative statement_timeout", "admin_url: postgresql://a@h/db\nstatement_timeout: -1s", "statement_timeout", provider.ErrInvalid},
		{"malformed URL", "admin_url: postgresql://admin:" + leak + "@[::1/db", "not a valid connection string", provider.ErrInvalid},
		{"bad sslmode", "admin_url: postgresql://admin:" + leak + "@h/db?sslmode=sometimes", "not a valid connection string", provider.ErrInvalid},
		{"unknown key", "admin_url: postgresql://a@h/db\nadmin_password: x", "admin_password", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p, err := postgres.New(provider.Params{Decode: strictDecode(tt.config)})
			if tt.wantErr == "" {
				require.NoError(t, err, "a factory must not connect")
				require.NoError(t, p.Close())
				return
			}
			require.ErrorContains(t, err, tt.wantErr)
			require.NotContains(t, err.Error(), leak)
			if tt.wantIs != nil {
				require.ErrorIs(t, err, tt.wantIs)
			}
		})
	}
}

func TestUnreachable(t *testing.T) {
	t.Parallel()
	pw := secret.New("unreachable-Pw-7")
	p, err := postgres.New(provider.Params{Decode: strictDecode("admin_url: postgresql://admin:" + pw.Reveal() + "@127.0.0.1:1/db?connect_timeout=5")})
	require.NoError(t, err)
	t.Cleanup(func() { _ = p.Close() })

	_, err = p.Check(t.Context(), provider.CheckRequest{})
	require.ErrorIs(t, err, provider.ErrUnavailable)
	require.ErrorContains(t, err, "check admin_url")
	require.NotContains(t, err.Error(), pw.Reveal())

	_, err = postgres.Open(t.Context(), secret.New("postgresql://admin:"+pw.Reveal()+"@127.0.0.1:1/db"))
	require.ErrorIs(t, err, provider.ErrUnavailable)
	require.NotContains(t, err.Error(), pw.Reveal())
}

func TestWrongAdminPassword(t *testing.T) {
	t.Parallel()
	c := pgtest.Shared(t)
	wrong := secret.New("wrong-Admin-Pw-3")
	_, err := postgres.Open(t.Context(), c.URL(c.SuperUser, wrong, "postgres"))
	require.ErrorIs(t, err, provider.ErrPermission)
	require.ErrorContains(t, err, "password")
	require.NotContains(t, err.Error(), wrong.Reveal())
}

func TestClosed(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	require.NoError(t, env.Provider.Close())
	_, err := env.Provider.Check(t.Context(), provider.CheckRequest{})
	require.ErrorContains(t, err, "after Close")
}

// TestSetPasswordRefusesNonVerifiers proves the provider never sends what
// the server would hash as a plaintext password.
func TestSetPasswordRefusesNonVerifiers(t *testing.T) {
	t.Parallel()
	env, ctx := newEnv(t), t.Context()
	role, pw := pgtest.UniqueName(t, "plain"), secret.New("original-Pw-1")
	env.CreateRole(t, role, pw)
	tests := []struct {
		name     string
		verifier string
	}{
		{"none", ""},
		{"plaintext", "hunter2-Plain-Text"},
		{"broken SCRAM", "SCRAM-SHA-256$4096:c2FsdA==$not-base64:x"},
		{"md5 too short", "md5abc"},
		{"quote injection", "SCRAM-SHA-256$4096:c2FsdA==$a:b'; DROP ROLE x; --"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := env.Provider.SetPassword(ctx, provider.SetPasswordRequest{Role: role, Verifier: secret.New(tt.verifier)})
			require.ErrorIs(t, err, provider.ErrInvalid)
			if tt.verifier != "" {
				require.NotContains(t, err.Error(), tt.verifier)
			}
		})
	}
	t.Cleanup(func() {
		require.NoError(t, pgtest.CanLogin(context.Background(), env.LoginURL(role, pw)), "a refused request must leave the password alone")
	})
}

// A mark asked for with the password is written in the same transaction;
// one the server refuses leaves the password set and says it was not
// written, so that the caller writes it (and warns) as before.
func TestSetPasswordWritesTheMarkWithIt(t *testing.T) {
	t.Parallel()
	env, ctx := newEnv(t), t.Context()
	role := pgtest.UniqueName(t, "marked")
	env.CreateRole(t, role, secret.New("x-Pw-1"))
	mk := env.Provider.(provider.Marker)
	for i, tt := range []struct {
		mark   string
		marked bool
		want   string
	}{
		{"rotor:v1 store=abc credential=app version=3", true, "rotor:v1 store=abc credential=app version=3"},
		// A NUL byte is refused by the server in any text value.
		{"rotor:v1 store=abc\x00", false, "rotor:v1 store=abc credential=app version=3"},
	} {
		pw := secret.New(fmt.Sprintf("next-Pw-%d-%s", i, strings.Repeat("x", 20)))
		v, err := secret.SCRAMVerifier(nil, pw)
		require.NoError(t, err)
		resp, err := env.Provider.SetPassword(ctx, provider.SetPasswordRequest{Role: role, Verifier: v, Password: pw, Mark: tt.mark})
		require.NoError(t, err, "a mark must not fail a password change")
		require.Equal(t, tt.marked, resp.Marked)
		require.NoError(t, pgtest.CanLogin(ctx, env.LoginURL(role, pw)), "the password is set either way")
		got, err := mk.ReadMark(ctx, provider.ReadMarkRequest{Role: role})
		require.NoError(t, err)
		require.Equal(t, tt.want, got.Mark)
	}
	_, err := mk.ReadMark(ctx, provider.ReadMarkRequest{Role: role + "_gone"})
	require.ErrorIs(t, err, provider.ErrRoleNotFound)
	require.ErrorContains(t, err, "does not exist")
}

// An admin connection the server ended while it sat in the pool (a
// restart, an administrator's terminate) is not pinged again when it was
// used a moment ago: the call that finds it dead runs again on a fresh one.
func TestPooledConnectionEndedByTheServer(t *testing.T) {
	t.Parallel()
	env, ctx := newEnv(t), t.Context()
	role := pgtest.UniqueName(t, "cut")
	env.CreateRole(t, role, secret.New("x-Pw-1"))
	admin := pgtest.Connect(ctx, t, env.AdminURL)
	for i := range 3 {
		_, err := env.Provider.Snapshot(ctx, provider.SnapshotRequest{Role: role})
		require.NoError(t, err)
		var ended int
		require.NoError(t, admin.QueryRow(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
			WHERE datname = $1 AND application_name = 'rotor' AND pid <> pg_backend_pid()`, env.Database).Scan(&ended))
		require.Positive(t, ended, "the provider's pooled connection")
		pw := secret.New(fmt.Sprintf("after-cut-Pw-%d-%s", i, strings.Repeat("y", 16)))
		v, err := secret.SCRAMVerifier(nil, pw)
		require.NoError(t, err)
		_, err = env.Provider.SetPassword(ctx, provider.SetPasswordRequest{Role: role, Verifier: v, Password: pw})
		require.NoError(t, err, "the pooled connection was cut; the call runs again on a new one")
		require.NoError(t, pgtest.CanLogin(ctx, env.LoginURL(role, pw)))
	}
}

func TestSetPasswordAcceptsMD5Verifier(t *testing.T) {
	t.Parallel()
	env, ctx := newEnv(t), t.Context()
	role := pgtest.UniqueName(t, "md5")
	env.CreateRole(t, role, secret.New("x-Pw-1"))
	md5 := secret.New("md5" + strings.Repeat("0123456789abcdef", 2))
	_, err := env.Provider.SetPassword(ctx, provider.SetPasswordRequest{Role: role, Verifier: md5})
	require.NoError(t, err)
	snap, err := env.Provider.Snapshot(ctx, provider.SnapshotRequest{Role: role})
	require.NoError(t, err)
	require.True(t, snap.Verifier.Equal(md5), "a snapshot of an md5 role must be restorable")
}

func TestInvalidRoleNames(t *testing.T) {
	t.Parallel()
	env, ctx := newEnv(t), t.Context()
	pw := secret.New("x-Pw-1")
	v, err := secret.SCRAMVerifier(nil, pw)
	require.NoError(t, err)
	tests := []struct{ name, role string }{
		{"empty", ""},
		{"64 bytes, which PostgreSQL would truncate", strings.Repeat("r", 64)},
		{"NUL byte", "a\x00b"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			calls := map[string]func() error{
				"SetPassword": func() error {
					_, err := env.Provider.SetPassword(ctx, provider.SetPasswordRequest{Role: tt.role, Verifier: v})
					return err
				},
				"Snapshot": func() error {
					_, err := env.Provider.Snapshot(ctx, provider.SnapshotRequest{Role: tt.role})
					return err
				},
				"Retire": func() error {
					_, err := env.Provider.Retire(ctx, provider.RetireRequest{Role: tt.role, Method: provider.RetireNoLogin})
					return err
				},
				"Sessions": func() error {
					_, err := env.Provider.Sessions(ctx, provider.SessionsRequest{Role: tt.role})
					return err
				},
				"Terminate": func() error {
					_, err := env.Provider.Terminate(ctx, provider.TerminateRequest{Role: tt.role})
					return err
				},
				"EnsureRoles": func() error {
					_, err := env.Provider.EnsureRoles(ctx, provider.EnsureRolesRequest{Group: "g", Logins: []string{tt.role}})
					return err
				},
				"Parity": func() error {
					_, err := env.Provider.Parity(ctx, provider.ParityRequest{Roles: []string{tt.role}})
					return err
				},
				"Check": func() error {
					_, err := env.Provider.Check(ctx, provider.CheckRequest{Roles: []string{tt.role}})
					return err
				},
			}
			for name, call := range calls {
				require.ErrorIs(t, call(), provider.ErrInvalid, name)
			}
		})
	}
}

// TestLimitedAdmins runs the provider as admins with less than superuser
// power and checks that each call fails with the sentinel the engine acts
// on, or succeeds where PostgreSQL allows it.
func TestLimitedAdmins(t *testing.T) {
	t.Parallel()
	c := pgtest.Shared(t)
	tests := []struct {
		name          string
		attributes    string
		wantSet       error
		wantCheckNote string
	}{
		{"CREATEROLE", "CREATEROLE", nil, "is not a superuser"},
		{"no privileges", "", provider.ErrPermission, "neither SUPERUSER nor CREATEROLE"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			admin, adminPW := pgtest.UniqueName(t, "admin"), secret.New("admin-Pw-1")
			pgtest.NewRole(t, c, admin, adminPW)
			if tt.attributes != "" {
				super := pgtest.Connect(ctx, t, c.AdminURL("postgres"))
				_, err := super.Exec(ctx, "ALTER ROLE "+pgx.Identifier{admin}.Sanitize()+" "+tt.attributes)
				require.NoError(t, err)
			}
			env := envFor(t, c, func(db string) secret.String { return c.URL(admin, adminPW, db) })
			role, pw := pgtest.UniqueName(t, "target"), secret.New("target-Pw-1")
			env.CreateRole(t, role, pw)

			next := secret.New("next-Pw-2")
			v, err := secret.SCRAMVerifier(nil, next)
			require.NoError(t, err)
			_, err = env.Provider.SetPassword(ctx, provider.SetPasswordRequest{Role: role, Password: next, Verifier: v})
			if tt.wantSet == nil {
				require.NoError(t, err)
				require.NoError(t, pgtest.CanLogin(ctx, env.LoginURL(role, next)))
			} else {
				require.ErrorIs(t, err, tt.wantSet)
				require.NotContains(t, err.Error(), v.Reveal())
				require.NoError(t, pgtest.CanLogin(ctx, env.LoginURL(role, pw)))
			}

			_, err = env.Provider.Snapshot(ctx, provider.SnapshotRequest{Role: role})
			require.ErrorIs(t, err, provider.ErrUnsupported)

			check, err := env.Provider.Check(ctx, provider.CheckRequest{Roles: []string{role}})
			require.NoError(t, err)
			require.Contains(t, strings.Join(check.Notes, "\n"), tt.wantCheckNote)
		})
	}
}

func TestTerminateWithoutPermission(t *testing.T) {
	t.Parallel()
	c := pgtest.Shared(t)
	ctx := t.Context()
	admin, adminPW := pgtest.UniqueName(t, "weak"), secret.New("weak-Pw-1")
	pgtest.NewRole(t, c, admin, adminPW)
	env := envFor(t, c, func(db string) secret.String { return c.URL(admin, adminPW, db) })
	role, pw := pgtest.UniqueName(t, "victim"), secret.New("victim-Pw-1")
	env.CreateRole(t, role, pw)
	conn := pgtest.Connect(ctx, t, env.LoginURL(role, pw))

	// Without pg_read_all_stats the admin sees the session but not its
	// details; it must still be listed, or draining would look finished.
	sessions, err := env.Provider.Sessions(ctx, provider.SessionsRequest{Role: role, StartedBefore: time.Now()})
	require.NoError(t, err)
	require.Len(t, sessions.Sessions, 1)
	require.Equal(t, int(conn.PgConn().PID()), sessions.Sessions[0].PID)

	check, err := env.Provider.Check(ctx, provider.CheckRequest{Roles: []string{role}})
	require.NoError(t, err)
	notes := strings.Join(check.Notes, "\n")
	require.Contains(t, notes, "pg_read_all_stats")
	require.Contains(t, notes, "pg_signal_backend")

	_, err = env.Provider.Terminate(ctx, provider.TerminateRequest{Role: role})
	require.ErrorIs(t, err, provider.ErrPermission)
	require.ErrorContains(t, err, "pg_signal_backend")
	_, err = conn.Exec(ctx, "SELECT 1")
	require.NoError(t, err)
}

func TestEnsureRolesRefusesConflicts(t *testing.T) {
	t.Parallel()
	c := pgtest.Shared(t)
	tests := []struct {
		name    string
		setup   string // run as superuser; {group}, {login}, {other} are quoted names
		req     func(group, login, other, db string) provider.EnsureRolesRequest
		wantErr string
	}{
		{
			name:    "group has LOGIN",
			setup:   "CREATE ROLE {group} LOGIN",
			wantErr: "has LOGIN",
		},
		{
			name:    "login already points at another group",
			setup:   "CREATE ROLE {other} NOLOGIN; CREATE ROLE {login} LOGIN; ALTER ROLE {login} SET role = {other}",
			wantErr: "RESET role",
		},
		{
			name: "missing database",
			req: func(group, login, _, _ string) provider.EnsureRolesRequest {
				return provider.EnsureRolesRequest{Group: group, Logins: []string{login}, Database: "no_such_db_rotor"}
			},
			wantErr: `database "no_such_db_rotor" does not exist`,
		},
		{
			name: "login named twice",
			req: func(group, login, _, _ string) provider.EnsureRolesRequest {
				return provider.EnsureRolesRequest{Group: group, Logins: []string{login, login}}
			},
			wantErr: "named twice",
		},
		{
			name: "login is the group",
			req: func(group, _, _, _ string) provider.EnsureRolesRequest {
				return provider.EnsureRolesRequest{Group: group, Logins: []string{group}}
			},
			wantErr: "named twice",
		},
		{
			name: "no logins",
			req: func(group, _, _, _ string) provider.EnsureRolesRequest {
				return provider.EnsureRolesRequest{Group: group}
			},
			wantErr: "no login roles",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			env, ctx := newEnv(t), t.Context()
			group, login, other := pgtest.UniqueName(t, "grp"), pgtest.UniqueName(t, "login"), pgtest.UniqueName(t, "other")
			dropAtCleanup(t, c, group, login, other)
			if tt.setup != "" {
				admin := pgtest.Connect(ctx, t, env.AdminURL)
				sql := strings.NewReplacer("{group}", quote(group), "{login}", quote(login), "{other}", quote(other)).Replace(tt.setup)
				_, err := admin.Exec(ctx, sql)
				require.NoError(t, err)
			}
			req := provider.EnsureRolesRequest{Group: group, Logins: []string{login}}
			if tt.req != nil {
				req = tt.req(group, login, other, env.Database)
			}
			_, err := env.Provider.EnsureRoles(ctx, req)
			require.ErrorIs(t, err, provider.ErrInvalid)
			require.ErrorContains(t, err, tt.wantErr)

			// One transaction: a refused run leaves no half-made layout.
			check, err := env.Provider.Check(ctx, provider.CheckRequest{Roles: req.Logins})
			require.NoError(t, err)
			if tt.setup == "" {
				for _, l := range req.Logins {
					require.Contains(t, strings.Join(check.Notes, "\n"), l+`" does not exist`)
				}
			}
		})
	}
}

func TestParityFindsEachKindOfDifference(t *testing.T) {
	t.Parallel()
	c := pgtest.Shared(t)
	tests := []struct {
		name string
		// setup runs as superuser in the test's database; {blue}, {green},
		// {db} and {extra} are quoted names. Only blue gets something.
		setup string
		want  string
	}{
		{"attribute", "ALTER ROLE {blue} CREATEDB", "{green} lacks attribute CREATEDB that {blue} has"},
		{"connection limit", "ALTER ROLE {blue} CONNECTION LIMIT 5", "{green} has connection limit none but {blue} has 5"},
		{"membership", "CREATE ROLE {extra}; GRANT {extra} TO {blue}", "{green} lacks membership in role {extra} that {blue} has"},
		{"setting", "ALTER ROLE {blue} SET search_path = audit", "{green} lacks setting search_path=audit that {blue} has"},
		{"setting in one database", "ALTER ROLE {blue} IN DATABASE {db} SET work_mem = '8MB'", "{green} lacks setting work_mem=8MB in database {db} that {blue} has"},
		{"table", "CREATE TABLE orders (id int); GRANT SELECT ON orders TO {blue}", "{green} lacks SELECT on table public.orders that {blue} has"},
		{"view", "CREATE VIEW v AS SELECT 1 AS one; GRANT SELECT ON v TO {blue}", "{green} lacks SELECT on view public.v that {blue} has"},
		{"column", "CREATE TABLE t (id int, secret text); GRANT SELECT (id) ON t TO {blue}", "{green} lacks SELECT on column public.t.id that {blue} has"},
		{"sequence", "CREATE SEQUENCE seq; GRANT USAGE ON SEQUENCE seq TO {blue}", "{green} lacks USAGE on sequence public.seq that {blue} has"},
		{"schema", "CREATE SCHEMA audit; GRANT USAGE ON SCHEMA audit TO {blue}", "{green} lacks USAGE on schema audit that {blue} has"},
		{"database", "GRANT CREATE ON DATABASE {db} TO {blue}", "{green} lacks CREATE on database {db} that {blue} has"},
		{"function", "CREATE FUNCTION f(n int) RETURNS int LANGUAGE sql AS 'SELECT n'; REVOKE EXECUTE ON FUNCTION f(int) FROM PUBLIC; GRANT EXECUTE ON FUNCTION f(int) TO {blue}", "{green} lacks EXECUTE on function public.f(n integer) that {blue} has"},
		{"grant option", "CREATE TABLE t (id int); GRANT SELECT ON t TO {green}; GRANT SELECT ON t TO {blue} WITH GRANT OPTION", "{green} lacks the grant option for SELECT on table public.t that {blue} has"},
		{"ownership", "CREATE TABLE mine (id int); ALTER TABLE mine OWNER TO {blue}", "{green} lacks ownership of table public.mine that {blue} has"},
		{"green has more", "CREATE TABLE orders (id int); GRANT INSERT ON orders TO {green}", "{blue} lacks INSERT on table public.orders that {green} has"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			env, ctx := newEnv(t), t.Context()
			group, blue, green, extra := pgtest.UniqueName(t, "app"), pgtest.UniqueName(t, "blue"), pgtest.UniqueName(t, "green"), pgtest.UniqueName(t, "extra")
			dropAtCleanup(t, c, group, blue, green, extra)
			_, err := env.Provider.EnsureRoles(ctx, provider.EnsureRolesRequest{Group: group, Logins: []string{blue, green}, Database: env.Database})
			require.NoError(t, err)

			admin := pgtest.Connect(ctx, t, env.AdminURL)
			quoted := strings.NewReplacer("{blue}", quote(blue), "{green}", quote(green), "{db}", quote(env.Database), "{extra}", quote(extra))
			_, err = admin.Exec(ctx, quoted.Replace(tt.setup))
			require.NoError(t, err)

			got, err := env.Provider.Parity(ctx, provider.ParityRequest{Roles: []string{blue, green}})
			require.NoError(t, err)
			plain := strings.NewReplacer("{blue}", blue, "{green}", green, "{db}", env.Database, "{extra}", extra)
			require.Equal(t, []string{plain.Replace(tt.want)}, got.Differences)
		})
	}
}

func TestCheckNotes(t *testing.T) {
	t.Parallel()
	env, ctx := newEnv(t), t.Context()
	ok, nologin := pgtest.UniqueName(t, "ok"), pgtest.UniqueName(t, "nologin")
	env.CreateRole(t, ok, secret.New("ok-Pw-1"))
	env.CreateRole(t, nologin, secret.New("nologin-Pw-1"))
	_, err := env.Provider.Retire(ctx, provider.RetireRequest{Role: nologin, Method: provider.RetireNoLogin})
	require.NoError(t, err)

	got, err := env.Provider.Check(ctx, provider.CheckRequest{Roles: []string{ok, nologin}})
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(got.ServerVersion, "PostgreSQL "), got.ServerVersion)
	require.Equal(t, []string{`role "` + nologin + `" has no LOGIN; the next password change gives it back`}, got.Notes)
}

// TestConcurrentCalls shares one provider between goroutines; run with
// -race it checks the connection pool.
func TestConcurrentCalls(t *testing.T) {
	t.Parallel()
	env, ctx := newEnv(t), t.Context()
	const n = 8
	roles := make([]string, n)
	pws := make([]secret.String, n)
	for i := range n {
		roles[i], pws[i] = pgtest.UniqueName(t, "conc"), secret.New(pgtest.UniqueName(t, "Pw"))
		env.CreateRole(t, roles[i], secret.New("old-Pw-1"))
	}
	errs := make(chan error, n)
	for i := range n {
		go func() {
			v, err := secret.SCRAMVerifier(nil, pws[i])
			if err == nil {
				_, err = env.Provider.SetPassword(ctx, provider.SetPasswordRequest{Role: roles[i], Password: pws[i], Verifier: v})
			}
			if err == nil {
				_, err = env.Provider.Sessions(ctx, provider.SessionsRequest{Role: roles[i]})
			}
			errs <- err
		}()
	}
	for range n {
		require.NoError(t, <-errs)
	}
	for i := range n {
		require.NoError(t, pgtest.CanLogin(ctx, env.LoginURL(roles[i], pws[i])))
	}
}

func quote(name string) string { return pgx.Identifier{name}.Sanitize() }

func dropAtCleanup(t *testing.T, c *pgcluster.Cluster, names ...string) {
	t.Helper()
	t.Cleanup(func() {
		for _, n := range names {
			if err := pgtest.DropRole(context.Background(), c, n); err != nil {
				t.Errorf("%v", err)
			}
		}
	})
}

// TestReadMarkTakesTheSnapshotWithIt: asked for, the Snapshot comes with
// the mark in one query for a superuser admin, the same as Snapshot's; a
// CREATEROLE admin, which may not read pg_authid, gets the mark alone (and
// Snapshot says why it cannot), and a missing role is still ErrRoleNotFound.
func TestReadMarkTakesTheSnapshotWithIt(t *testing.T) {
	t.Parallel()
	env, ctx := newEnv(t), t.Context()
	role := pgtest.UniqueName(t, "marked")
	pw := secret.New("Snap-Pw-1-" + strings.Repeat("y", 20))
	env.CreateRole(t, role, pw)
	v, err := secret.SCRAMVerifier(nil, pw)
	require.NoError(t, err)
	_, err = env.Provider.SetPassword(ctx, provider.SetPasswordRequest{Role: role, Verifier: v, Password: pw, Mark: "rotor:v1 store=abc credential=app version=1"})
	require.NoError(t, err)
	mk := env.Provider.(provider.Marker)

	got, err := mk.ReadMark(ctx, provider.ReadMarkRequest{Role: role, Snapshot: true})
	require.NoError(t, err)
	require.Equal(t, "rotor:v1 store=abc credential=app version=1", got.Mark)
	require.NotNil(t, got.Snapshot, "a superuser reads both at once")
	snap, err := env.Provider.Snapshot(ctx, provider.SnapshotRequest{Role: role})
	require.NoError(t, err)
	require.True(t, snap.Verifier.Equal(got.Snapshot.Verifier))
	require.True(t, got.Snapshot.Verifier.Equal(v))
	require.Equal(t, snap.Login, got.Snapshot.Login)
	plain, err := mk.ReadMark(ctx, provider.ReadMarkRequest{Role: role})
	require.NoError(t, err)
	require.Nil(t, plain.Snapshot, "not asked for")
	_, err = mk.ReadMark(ctx, provider.ReadMarkRequest{Role: role + "_gone", Snapshot: true})
	require.ErrorIs(t, err, provider.ErrRoleNotFound)

	c := pgtest.Shared(t)
	limited := pgtest.UniqueName(t, "admin")
	lpw := secret.New("Limited-admin-canary-7Qz")
	pgtest.NewRole(t, c, limited, lpw)
	super := pgtest.Connect(ctx, t, env.AdminURL)
	_, err = super.Exec(ctx, "ALTER ROLE "+quote(limited)+" CREATEROLE")
	require.NoError(t, err)
	lenv := envFor(t, c, func(db string) secret.String { return c.URL(limited, lpw, db) })
	lenv.CreateRole(t, role+"_l", pw)
	_, err = super.Exec(ctx, "COMMENT ON ROLE "+quote(role+"_l")+" IS 'rotor:v1 store=abc credential=other version=2'")
	require.NoError(t, err)
	lmk := lenv.Provider.(provider.Marker)
	for range 2 {
		got, err := lmk.ReadMark(ctx, provider.ReadMarkRequest{Role: role + "_l", Snapshot: true})
		require.NoError(t, err, "the mark alone, not an error")
		require.Equal(t, "rotor:v1 store=abc credential=other version=2", got.Mark)
		require.Nil(t, got.Snapshot)
	}
	_, err = lenv.Provider.Snapshot(ctx, provider.SnapshotRequest{Role: role + "_l"})
	require.ErrorIs(t, err, provider.ErrUnsupported)
}
