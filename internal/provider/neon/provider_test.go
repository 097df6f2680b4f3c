package neon_test

import (
	"errors"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/rotorhq/rotor/internal/connstr"
	"github.com/rotorhq/rotor/internal/pgtest"
	"github.com/rotorhq/rotor/internal/provider"
	pbuiltin "github.com/rotorhq/rotor/internal/provider/builtin"
	"github.com/rotorhq/rotor/internal/provider/neon"
	"github.com/rotorhq/rotor/internal/provider/neon/neonapi"
	"github.com/rotorhq/rotor/internal/provider/neon/neonfake"
	"github.com/rotorhq/rotor/internal/resolve"
	"github.com/rotorhq/rotor/internal/secret"
	tbuiltin "github.com/rotorhq/rotor/internal/target/builtin"
)

func TestNew(t *testing.T) {
	t.Parallel()
	const key = "napi_s3cr3t_leak"
	base := "api_key: " + key + "\nproject_id: round-sound-12345678\n"
	tests := []struct {
		name    string
		config  string
		wantErr string
	}{
		{"minimal", base, ""},
		{"everything", base + "api_url: https://neon.example/api/v2\nbranches: [main, br-x]\ndatabase: neondb\nmethod: api\nadmin_role: neondb_owner\nadmin_password: pw\nconnect_timeout: 20s\noperation_timeout: 10m", ""},
		{"all branches", base + "branches: all", ""},
		{"missing api_key", "project_id: round-sound-12345678", "api_key is required"},
		{"missing project_id", "api_key: " + key, "project_id is required"},
		{"bad project_id", "api_key: " + key + "\nproject_id: Round_Sound", `project_id "Round_Sound" is not a Neon project id`},
		{"bad method", base + "method: magic", `method "magic" is unknown`},
		{"branches scalar", base + "branches: main", "branches must be a list of branch names or ids"},
		{"all inside a list", base + "branches: [main, all]", "`all` stands alone"},
		{"empty branch name", base + "branches: [\"\"]", "empty name"},
		{"bad api_url", base + "api_url: console.neon.tech", "must be an http(s) URL"},
		{"bad connect_timeout", base + "connect_timeout: soon", `connect_timeout "soon"`},
		{"bad operation_timeout", base + "operation_timeout: -1m", `operation_timeout "-1m"`},
		{"unknown key", base + "api_token: x", "api_token"},
		{"sslmode verify-ca", base + "sslmode: verify-ca\nsslrootcert: /etc/ssl/neon.pem", ""},
		{"sslmode require with api", base + "method: api\nsslmode: require", ""},
		{"sslmode require with sql", base + "sslmode: require", "sslmode require does not check the server's certificate, and method sql sends the new password in plaintext"},
		{"sslmode require by default method", base + "method: sql\nsslmode: require", "remove sslmode (verify-full is the default"},
		{"sslmode disable", base + "method: api\nsslmode: disable", `sslmode "disable" is not allowed`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p, err := neon.New(provider.Params{Decode: strictDecode(tt.config)})
			if tt.wantErr == "" {
				require.NoError(t, err, "a factory must not do I/O")
				require.NoError(t, p.Close())
				return
			}
			require.ErrorContains(t, err, tt.wantErr)
			require.NotContains(t, err.Error(), key)
		})
	}
}

func TestAPIURLPrecedence(t *testing.T) {
	t.Parallel()
	base := "api_key: k\nproject_id: p-1\n"
	env := func(v string) func(string) string {
		return func(k string) string {
			if k == neon.APIHostEnv {
				return v
			}
			return ""
		}
	}
	tests := []struct {
		name, config, env, want string
	}{
		{"default", base, "", ""},
		{"NEON_API_HOST", base, "https://env.example/api/v2", "https://env.example/api/v2"},
		{"api_url wins", base + "api_url: https://opt.example/api/v2", "https://env.example/api/v2", "https://opt.example/api/v2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p, err := neon.FactoryForTest(nil, env(tt.env), nil, nil)(provider.Params{Decode: strictDecode(tt.config)})
			require.NoError(t, err)
			require.Equal(t, tt.want, neon.BaseURL(p))
		})
	}
}

func newPW(t *testing.T) (secret.String, secret.String) {
	t.Helper()
	pw := secret.New("Pw-" + pgtest.UniqueName(t, "x") + "@:/%")
	v, err := secret.SCRAMVerifier(nil, pw)
	require.NoError(t, err)
	return pw, v
}

func TestAPIMethodReturnsNeonsPassword(t *testing.T) {
	t.Parallel()
	w := newWorld(t, neonfake.Config{})
	role, old := pgtest.UniqueName(t, "app"), secret.New("Old-pw-"+pgtest.UniqueName(t, "x"))
	pgtest.NewRole(t, w.main.Cluster, role, old)
	p := w.newProvider(neon.MethodAPI)
	asked, v := newPW(t)

	resp, err := p.SetPassword(t.Context(), provider.SetPasswordRequest{Role: role, Password: asked, Verifier: v})
	require.NoError(t, err)
	require.False(t, resp.Password.IsZero())
	require.False(t, resp.Password.Equal(asked), "Neon chooses the password")
	require.True(t, resp.Password.Equal(w.fake.StoredPassword("main", role)))
	require.Equal(t, "reset through the Neon API on branch main (password returned)", resp.Detail)
	require.NoError(t, w.login(role, resp.Password))
	require.Error(t, w.login(role, asked))
	require.Error(t, w.login(role, old))
	// The operations were waited for before SetPassword returned.
	for _, st := range w.fake.OperationStatuses() {
		require.True(t, strings.HasSuffix(st, ":finished"), st)
	}
}

func TestAPIMethodCannotRollBack(t *testing.T) {
	t.Parallel()
	w := newWorld(t, neonfake.Config{})
	p := w.newProvider(neon.MethodAPI)
	_, v := newPW(t)
	_, err := p.SetPassword(t.Context(), provider.SetPasswordRequest{Role: w.owner, Verifier: v})
	require.ErrorIs(t, err, provider.ErrUnsupported)
	require.ErrorContains(t, err, "cannot put a given password back")
	require.NotContains(t, err.Error(), v.Reveal())
	_, err = p.Snapshot(t.Context(), provider.SnapshotRequest{Role: w.owner})
	require.ErrorIs(t, err, provider.ErrUnsupported)
	require.Empty(t, w.fake.Requests(), "both refuse before any request")
}

// TestAPIResetDropsConnections shows the trade-off between the methods: a
// reset through the API drops the compute's connections, ALTER ROLE over
// SQL leaves them alone.
func TestAPIResetDropsConnections(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		method   string
		survives bool
	}{{neon.MethodSQL, true}, {neon.MethodAPI, false}} {
		t.Run(tt.method, func(t *testing.T) {
			t.Parallel()
			w := newWorld(t, neonfake.Config{})
			role, bystander := pgtest.UniqueName(t, "app"), pgtest.UniqueName(t, "other")
			pw, _ := newPW(t)
			pgtest.NewRole(t, w.main.Cluster, role, pw)
			pgtest.NewRole(t, w.main.Cluster, bystander, pw)
			conn := pgtest.Connect(t.Context(), t, w.viaEndpoint(bystander, pw))
			next, v := newPW(t)
			_, err := w.newProvider(tt.method).SetPassword(t.Context(), provider.SetPasswordRequest{Role: role, Password: next, Verifier: v})
			require.NoError(t, err)
			_, err = conn.Exec(t.Context(), "SELECT 1")
			if tt.survives {
				require.NoError(t, err)
			} else {
				require.Error(t, err)
			}
		})
	}
}

func TestEndpoints(t *testing.T) {
	t.Parallel()
	fake := neonfake.Start(t, neonfake.Config{Region: "eu-central-1"})
	// A read replica listed first: the read_write endpoint must win.
	main, err := fake.AddBranch(t.Context(), neonfake.BranchSpec{Name: "main", Cluster: pgtest.Shared(t), ReadReplica: true})
	require.NoError(t, err)
	db := pgtest.UniqueName(t, "neondb")
	_, err = fake.AddDatabase(t.Context(), main.ID, db, pgtest.UniqueName(t, "owner"))
	require.NoError(t, err)
	w := &world{t: t, fake: fake, main: main, db: db, logs: &syncBuffer{}}
	// No database: the branch's only one is found.
	p := w.newProvider(neon.MethodSQL)

	got, err := p.(provider.Endpointer).Endpoints(t.Context(), provider.EndpointsRequest{})
	require.NoError(t, err)
	direct, err := connstr.Parse(got.Direct)
	require.NoError(t, err)
	require.Equal(t, main.Host, direct.Host)
	require.True(t, strings.HasSuffix(direct.Host, ".eu-central-1.aws.neon.tech"))
	require.Equal(t, "postgresql://"+main.Host+"/"+db+"?sslmode=require&channel_binding=require", got.Direct)
	require.Equal(t, "postgresql://"+main.EndpointID+"-pooler.eu-central-1.aws.neon.tech/"+db+"?sslmode=require&channel_binding=require", got.Pooled)
	replica, err := connstr.Parse(got.Replica)
	require.NoError(t, err, "main has a read replica")
	require.NotEqual(t, main.Host, replica.Host)
	require.True(t, strings.HasPrefix(replica.Host, "ep-"))
	_, _, routed := fake.Route(replica.Host)
	require.True(t, routed, "the replica's host is an endpoint of the project")
	require.Equal(t, db, replica.Database)
	v, _ := replica.Param("sslmode")
	require.Equal(t, "require", v)

	// Two databases: the provider cannot guess.
	_, err = fake.AddDatabase(t.Context(), main.ID, pgtest.UniqueName(t, "second"), pgtest.UniqueName(t, "owner"))
	require.NoError(t, err)
	_, err = w.newProvider(neon.MethodSQL).(provider.Endpointer).Endpoints(t.Context(), provider.EndpointsRequest{})
	require.ErrorIs(t, err, provider.ErrInvalid)
	require.ErrorContains(t, err, "set database:")
}

func TestAdminConnectionWithoutStoredPasswords(t *testing.T) {
	t.Parallel()
	w := newWorld(t, neonfake.Config{DisableStorePasswords: true})
	role, pw := pgtest.UniqueName(t, "app"), secret.New("Old-pw-"+pgtest.UniqueName(t, "x"))
	pgtest.NewRole(t, w.main.Cluster, role, pw)
	next, v := newPW(t)
	req := provider.SetPasswordRequest{Role: role, Password: next, Verifier: v}

	_, err := w.newProvider(neon.MethodSQL).SetPassword(t.Context(), req)
	require.ErrorIs(t, err, provider.ErrUnsupported)
	require.ErrorContains(t, err, "store_passwords is off")
	require.ErrorContains(t, err, "admin_password: ${NEON_ADMIN_PASSWORD}")

	// With the admin's password given, the URL is built from the endpoint.
	_, err = w.newProvider(neon.MethodSQL, "admin_password: "+w.ownerPW.Reveal()).SetPassword(t.Context(), req)
	require.NoError(t, err)
	require.NoError(t, w.login(role, next))
}

func TestAPIKeyRefused(t *testing.T) {
	t.Parallel()
	w := newWorld(t, neonfake.Config{})
	p, err := neon.FactoryForTest(w.fake.Route, nil, quick, w.logs)(provider.Params{Decode: strictDecode(
		"api_key: napi_revoked_key\napi_url: " + w.fake.URL + "\nproject_id: " + w.fake.ProjectID)})
	require.NoError(t, err)
	_, err = p.Check(t.Context(), provider.CheckRequest{})
	require.ErrorIs(t, err, provider.ErrPermission)
	require.ErrorIs(t, err, neonapi.ErrUnauthorized)
	require.ErrorContains(t, err, "401 Unauthorized")
	require.ErrorContains(t, err, "check that api_key (NEON_API_KEY)")
	require.NotContains(t, err.Error(), "napi_revoked_key")
	require.Len(t, w.fake.Requests(), 1, "401 is not retried")
}

func TestUnknownProject(t *testing.T) {
	t.Parallel()
	w := newWorld(t, neonfake.Config{})
	p, err := neon.FactoryForTest(w.fake.Route, nil, quick, w.logs)(provider.Params{Decode: strictDecode(
		"api_key: " + w.fake.APIKey + "\napi_url: " + w.fake.URL + "\nproject_id: no-such-project")})
	require.NoError(t, err)
	_, err = p.Check(t.Context(), provider.CheckRequest{})
	require.ErrorIs(t, err, provider.ErrInvalid)
	require.ErrorContains(t, err, "check project_id")
}

func TestCheck(t *testing.T) {
	t.Parallel()
	w := newWorld(t, neonfake.Config{})
	role := pgtest.UniqueName(t, "app")
	pgtest.NewRole(t, w.main.Cluster, role, secret.New("Pw-"+role))
	p := w.newProvider(neon.MethodSQL)
	got, err := p.Check(t.Context(), provider.CheckRequest{Roles: []string{"missing_role"}})
	require.NoError(t, err)
	notes := strings.Join(got.Notes, "\n")
	require.Contains(t, notes, `role "missing_role" does not exist; create it in the Neon console`)
	require.NotContains(t, notes, "setup-roles", "a single role is not created by setup-roles")

	got, err = p.Check(t.Context(), provider.CheckRequest{Roles: []string{role, w.owner}})
	require.NoError(t, err)
	require.Contains(t, got.ServerVersion, "on Neon (branch main)")
	notes = strings.Join(got.Notes, "\n")
	require.NotContains(t, notes, "SCRAM verifier", "no verifier goes to Neon")
	require.Contains(t, notes, "role \""+w.owner+"\" is also the admin role rotor logs in as: rotor switches to each new password")
	require.Contains(t, notes, "method sql sends the new password to Neon in plaintext, as Neon requires")
	require.Contains(t, notes, "over TLS that verifies the server")
	require.Contains(t, notes, "may not switch log_statement", "the owner is no superuser, so the check says logging stays as the server has it")
	require.NotContains(t, notes, "read replica", "main has none")
	require.NotContains(t, notes, `role "`+role+`"`)
	require.NotContains(t, notes, "drops every connection")

	// Two roles: a dual pair, which setup-roles creates.
	got, err = w.newProvider(neon.MethodAPI).Check(t.Context(), provider.CheckRequest{Roles: []string{"missing_blue", "missing_green"}})
	require.NoError(t, err)
	notes = strings.Join(got.Notes, "\n")
	require.Contains(t, notes, "`rotor setup-roles` creates the missing login roles")
	require.Contains(t, notes, "drops every connection to the compute endpoint, of every role")
	require.NotContains(t, notes, "sends the new password to Neon in plaintext")
}

func TestCheckRequiresReplica(t *testing.T) {
	t.Parallel()
	w := newWorld(t, neonfake.Config{})
	p := w.newProvider(neon.MethodSQL)
	_, err := p.Check(t.Context(), provider.CheckRequest{})
	require.NoError(t, err, "no template needs a replica yet")
	p.(interface{ RequireReplica() }).RequireReplica()
	_, err = p.Check(t.Context(), provider.CheckRequest{})
	require.ErrorIs(t, err, provider.ErrInvalid)
	require.ErrorContains(t, err, "uses {{.ReplicaURL}}, but branch main")
	require.ErrorContains(t, err, "has no read replica")
	require.ErrorContains(t, err, "Add Read Replica")

	fake := neonfake.Start(t, neonfake.Config{})
	main, err := fake.AddBranch(t.Context(), neonfake.BranchSpec{Name: "main", Cluster: pgtest.Shared(t), ReadReplica: true})
	require.NoError(t, err)
	db := pgtest.UniqueName(t, "neondb")
	_, err = fake.AddDatabase(t.Context(), main.ID, db, pgtest.UniqueName(t, "owner"))
	require.NoError(t, err)
	w2 := &world{t: t, fake: fake, main: main, db: db, logs: &syncBuffer{}}
	p = w2.newProvider(neon.MethodSQL)
	p.(interface{ RequireReplica() }).RequireReplica()
	got, err := p.Check(t.Context(), provider.CheckRequest{})
	require.NoError(t, err)
	require.Contains(t, strings.Join(got.Notes, "\n"), "read replica ep-")
	require.Contains(t, strings.Join(got.Notes, "\n"), "is {{.ReplicaURL}}")
}

// TestControlPlaneRefusal covers what Neon's compute raises when its
// control plane refuses a password set over SQL (pgxn/neon/
// control_plane_connector.c). A real PostgreSQL cannot refuse a verifier
// that way, so the message is built here as the postgres provider would
// pass it on.
func TestControlPlaneRefusal(t *testing.T) {
	t.Parallel()
	server := errors.New(`set password for role "app": Received HTTP code 400 from control plane: {"error":"password is not strong enough"} (SQLSTATE XX000)`)
	require.True(t, neon.ControlPlaneRefusal(server))
	require.False(t, neon.ControlPlaneRefusal(errors.New(`role "app" does not exist (SQLSTATE 42704)`)))
	err := neon.RefusedPassword(`set the password of role "app" on branch main (br-x)`, server)
	require.ErrorIs(t, err, provider.ErrInvalid)
	require.ErrorContains(t, err, "Neon refused the password")
	require.ErrorContains(t, err, "at least 60 bits of entropy")
	require.ErrorContains(t, err, "password: policy")
	require.NotContains(t, err.Error(), "never sends a plaintext", "the old wording is gone")
}

func TestRoleNamesInPaths(t *testing.T) {
	t.Parallel()
	w := newWorld(t, neonfake.Config{})
	role := `we/ird?na#me%` + pgtest.UniqueName(t, "")
	pgtest.NewRole(t, w.main.Cluster, role, secret.New("Pw-x-"+role))
	next, v := newPW(t)
	resp, err := w.newProvider(neon.MethodAPI).SetPassword(t.Context(), provider.SetPasswordRequest{Role: role, Password: next, Verifier: v})
	require.NoError(t, err)
	require.NoError(t, w.login(role, resp.Password))
	var paths []string
	for _, e := range w.fake.Requests() {
		if e.Status != http.StatusOK {
			paths = append(paths, e.Path)
		}
	}
	require.Empty(t, paths, "every request succeeded")
}

// TestExamplesLoad keeps examples/neon-*.yaml valid: they load with the
// neon provider registered, without any request (a factory does no I/O).
func TestExamplesLoad(t *testing.T) {
	t.Parallel()
	paths, err := filepath.Glob("../../../examples/neon-*.yaml")
	require.NoError(t, err)
	require.GreaterOrEqual(t, len(paths), 2)
	env := map[string]string{"NEON_API_KEY": "napi_example", "NEON_ADMIN_PASSWORD": "example"}
	lookup := func(typ string) (provider.Factory, error) {
		if typ == "neon" {
			return neon.New, nil
		}
		return pbuiltin.Lookup(typ)
	}
	for _, path := range paths {
		t.Run(filepath.Base(path), func(t *testing.T) {
			t.Parallel()
			cfg, err := resolve.Load(path, func(k string) (string, bool) { v, ok := env[k]; return v, ok },
				resolve.Registry{Provider: lookup, Target: tbuiltin.Lookup, Now: time.Now, Getenv: func(string) string { return "" }})
			require.NoError(t, err)
			defer cfg.Close()
			for _, cr := range cfg.Credentials {
				require.Equal(t, "neon", cr.ProviderType)
				require.Nil(t, cr.Conn, "the provider finds the hosts")
			}
		})
	}
}

// TestEndpointWithoutReplica: no read_only endpoint, no Replica.
func TestEndpointWithoutReplica(t *testing.T) {
	t.Parallel()
	w := newWorld(t, neonfake.Config{})
	got, err := w.newProvider(neon.MethodSQL, "database: "+w.db).(provider.Endpointer).Endpoints(t.Context(), provider.EndpointsRequest{})
	require.NoError(t, err)
	require.Empty(t, got.Replica)
	require.NotEmpty(t, got.Pooled)
}

// TestPooledHostFromEndpointID derives the pooled host as neonctl does,
// from the endpoint id the API returns, whatever the domain.
func TestPooledHostFromEndpointID(t *testing.T) {
	t.Parallel()
	tests := []struct{ id, host, pooled, direct string }{
		{"ep-cool-darkness-a1b2c3d4", "ep-cool-darkness-a1b2c3d4.us-east-2.aws.neon.tech", "ep-cool-darkness-a1b2c3d4-pooler.us-east-2.aws.neon.tech", "ep-cool-darkness-a1b2c3d4.us-east-2.aws.neon.tech"},
		{"ep-cool-darkness-a1b2c3d4", "ep-cool-darkness-a1b2c3d4.c-2.us-east-2.aws.neon.tech", "ep-cool-darkness-a1b2c3d4-pooler.c-2.us-east-2.aws.neon.tech", "ep-cool-darkness-a1b2c3d4.c-2.us-east-2.aws.neon.tech"},
		{"ep-quiet-fog-12345678", "ep-quiet-fog-12345678.eu-central-1.aws.neon.build", "ep-quiet-fog-12345678-pooler.eu-central-1.aws.neon.build", "ep-quiet-fog-12345678.eu-central-1.aws.neon.build"},
		{"ep-quiet-fog-12345678", "ep-quiet-fog-12345678.azure.neon.example", "ep-quiet-fog-12345678-pooler.azure.neon.example", "ep-quiet-fog-12345678.azure.neon.example"},
		{"ep-quiet-fog-12345678", "ep-quiet-fog-12345678-pooler.eu-central-1.aws.neon.build", "ep-quiet-fog-12345678-pooler.eu-central-1.aws.neon.build", "ep-quiet-fog-12345678.eu-central-1.aws.neon.build"},
		{"ep-quiet-fog-12345678", "db.private.example", "", "db.private.example"},
	}
	for _, tt := range tests {
		require.Equal(t, tt.pooled, neon.PooledHost(tt.id, tt.host), tt.host)
		require.Equal(t, tt.direct, neon.DirectHost(tt.id, tt.host), tt.host)
	}
}

// TestDescribeApply: plan must not claim, for the api method, a
// rotor-generated password, a SCRAM verifier or a rollback.
func TestDescribeApply(t *testing.T) {
	t.Parallel()
	base := "api_key: k\nproject_id: p-1\n"
	describe := func(config string) (string, string, string) {
		p, err := neon.New(provider.Params{Decode: strictDecode(base + config)})
		require.NoError(t, err)
		return p.(interface {
			DescribeApply(role string) (string, string, string)
		}).DescribeApply("app")
	}
	gen, apply, rollback := describe("method: api\nbranches: all")
	for _, s := range []string{gen, apply, rollback} {
		require.NotContains(t, s, "SCRAM")
		require.NotContains(t, s, "32-character")
	}
	require.Contains(t, gen, "have Neon generate the password")
	require.Contains(t, apply, "on branches all")
	require.Contains(t, apply, "drops every connection to the compute endpoint, of every role")
	require.Contains(t, rollback, "cannot be rolled back")

	gen, apply, rollback = describe("")
	require.Empty(t, gen, "rotor generates it, as the engine says")
	require.Contains(t, apply, "in plaintext, as Neon requires")
	require.Contains(t, apply, "over TLS that verifies the server")
	require.Contains(t, apply, "no connection is dropped")
	require.NotContains(t, apply, "SCRAM")
	require.Contains(t, rollback, "previous password back")
}
