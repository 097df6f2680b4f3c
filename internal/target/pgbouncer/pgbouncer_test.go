package pgbouncer_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/rotorhq/rotor/internal/pgbouncertest"
	"github.com/rotorhq/rotor/internal/pgcluster"
	"github.com/rotorhq/rotor/internal/pgtest"
	"github.com/rotorhq/rotor/internal/secret"
	"github.com/rotorhq/rotor/internal/target"
	"github.com/rotorhq/rotor/internal/target/pgbouncer"
	"github.com/rotorhq/rotor/internal/target/targettest"
)

func TestMain(m *testing.M) {
	code := pgtest.Main(m)
	if sharedBouncer != nil {
		_ = sharedBouncer.Stop(context.Background())
	}
	os.Exit(code)
}

var (
	sharedOnce    sync.Once
	sharedBouncer *pgbouncertest.Bouncer
	sharedErr     error
)

// shared is one bouncer for the tests that only need an admin console to
// RELOAD (the conformance suite); tests that log in start their own.
func shared(t *testing.T) *pgbouncertest.Bouncer {
	t.Helper()
	cl := pgtest.Shared(t)
	sharedOnce.Do(func() {
		sharedBouncer, sharedErr = pgbouncertest.Start(context.Background(), pgbouncertest.Options{ServerHost: cl.Host, ServerPort: cl.Port})
	})
	if sharedErr != nil {
		pgbouncertest.SkipOrFail(t, sharedErr)
	}
	return sharedBouncer
}

// newTarget builds a target from YAML options, as the config layer would.
func newTarget(t *testing.T, options string) (target.Target, error) {
	t.Helper()
	return pgbouncer.New(target.Params{
		Name:    "bouncer",
		BaseDir: t.TempDir(),
		Decode: func(v any) error {
			dec := yaml.NewDecoder(strings.NewReader(options))
			dec.KnownFields(true)
			err := dec.Decode(v)
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		},
	})
}

func mustTarget(t *testing.T, options string) *pgbouncer.Target {
	t.Helper()
	tg, err := newTarget(t, options)
	require.NoError(t, err)
	return tg.(*pgbouncer.Target)
}

func options(authFile string, admin secret.String) string {
	if admin.IsZero() {
		return fmt.Sprintf("auth_file: %q\nreload: false\n", authFile)
	}
	return fmt.Sprintf("auth_file: %q\nadmin_url: %q\n", authFile, admin.Reveal())
}

func TestNewValidatesOptions(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		options string
		want    string
	}{
		{"no auth_file", "reload: false\n", "has no auth_file"},
		{"reload without admin_url", "auth_file: /x/userlist.txt\n", "has no admin_url"},
		{"admin_url not a URL", "auth_file: /x/u.txt\nadmin_url: 'postgresql://a:b@host:notaport/pgbouncer'\n", "admin_url does not parse"},
		{"admin_url not the console", "auth_file: /x/u.txt\nadmin_url: postgresql://admin@127.0.0.1:6432/app\n", `the admin console is the database "pgbouncer"`},
		{"unknown option", "auth_file: /x/u.txt\nreload: false\npath: /y\n", "field path not found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := newTarget(t, tt.options)
			require.ErrorContains(t, err, tt.want)
		})
	}

	t.Run("relative auth_file resolves against the config directory", func(t *testing.T) {
		t.Parallel()
		tg := mustTarget(t, "auth_file: pgbouncer/userlist.txt\nreload: false\n")
		require.True(t, filepath.IsAbs(tg.Info().Destination))
		require.True(t, strings.HasSuffix(tg.Info().Destination, "/pgbouncer/userlist.txt"))
	})
	t.Run("admin_url password never in the error", func(t *testing.T) {
		t.Parallel()
		_, err := newTarget(t, "auth_file: /x/u.txt\nadmin_url: 'postgresql://a:canaryPW42@host:notaport/pgbouncer'\n")
		require.Error(t, err)
		require.Empty(t, secret.Leaks([]byte(err.Error()), secret.New("canaryPW42")))
	})
}

// conformance wraps the target the way the engine drives it: every Put
// becomes a PublishVerifier carrying the verifier of the values'
// password. A verifier derived from the values (fixed salt) keeps the
// suite's "same values, no change" and "new values, change" cases
// meaningful.
type conformance struct{ *pgbouncer.Target }

func (c conformance) Put(ctx context.Context, req target.PutRequest) (target.PutResponse, error) {
	h := sha256.New()
	for _, k := range req.Keys {
		fmt.Fprintf(h, "%s\x00%s\x00", k, req.Values[k].Reveal())
	}
	sum := h.Sum(nil)
	v, err := secret.SCRAMVerifierWithSalt(secret.New(hex.EncodeToString(sum)), sum[:16], secret.SCRAMIterations)
	if err != nil {
		return target.PutResponse{}, err
	}
	resp, err := c.Target.PublishVerifier(ctx, target.PublishVerifierRequest{
		Role: req.Role, Verifier: v, Values: req.Values, Keys: req.Keys, RotationID: req.RotationID, Version: req.Version,
	})
	return target.PutResponse{Changed: resp.Changed, Ref: resp.Ref}, err
}

func TestConformance(t *testing.T) {
	t.Parallel()
	b := shared(t)
	targettest.Exercise(t, targettest.Harness{
		New: func(t *testing.T) target.Target {
			path := filepath.Join(t.TempDir(), "userlist.txt")
			require.NoError(t, os.WriteFile(path, []byte("; PgBouncer users\n"), 0o640))
			return conformance{mustTarget(t, options(path, b.AdminURL()))}
		},
		// The auth_file holds a verifier, from which no value can be read.
		Unreadable: true,
		Seed: func(t *testing.T, tg target.Target, values map[string]secret.String) {
			path := tg.Info().Destination
			f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
			require.NoError(t, err)
			for _, k := range slices.Sorted(mapsKeys(values)) {
				_, err := f.WriteString(pgbouncertest.Entry(strings.ToLower(k), values[k].Reveal()))
				require.NoError(t, err)
			}
			require.NoError(t, f.Close())
		},
		Break: func(t *testing.T, tg target.Target) {
			path := tg.Info().Destination
			require.NoError(t, os.Remove(path))
			require.NoError(t, os.Mkdir(path, 0o700))
		},
	})
}

func mapsKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

func verifier(t *testing.T, pw secret.String) secret.String {
	t.Helper()
	v, err := secret.SCRAMVerifier(nil, pw)
	require.NoError(t, err)
	return v
}

func password(t *testing.T) secret.String {
	t.Helper()
	pw, err := secret.Generate(nil, secret.DefaultPolicy())
	require.NoError(t, err)
	return pw
}

// setPassword does what the postgres provider's apply step does: ALTER
// ROLE with a client-side verifier.
func setPassword(t *testing.T, cl *pgcluster.Cluster, db, role string, v secret.String) {
	t.Helper()
	conn := pgtest.Connect(t.Context(), t, cl.AdminURL(db))
	_, err := conn.Exec(t.Context(), "ALTER ROLE "+pgx.Identifier{role}.Sanitize()+" PASSWORD '"+v.Reveal()+"'")
	require.NoError(t, err)
}

func put(t *testing.T, tg target.Gatekeeper, role string, v secret.String) target.PublishVerifierResponse {
	t.Helper()
	resp, err := tg.PublishVerifier(t.Context(), target.PublishVerifierRequest{
		Values: map[string]secret.String{"DATABASE_URL": secret.New("unused")}, Keys: []string{"DATABASE_URL"},
		RotationID: "1", Version: 1, Role: role, Verifier: v,
	})
	require.NoError(t, err)
	return resp
}

// TestRotationThroughPgBouncer is the target's purpose: after Put (which
// reloads), a client logs in through PgBouncer with the new password; with
// two roles both entries stay, so the old role keeps working until it is
// retired on the server; and the rest of the file never changes.
func TestRotationThroughPgBouncer(t *testing.T) {
	t.Parallel()
	cl := pgtest.Shared(t)
	db, _ := pgtest.NewDatabase(t)
	b := pgbouncertest.StartTB(t, pgbouncertest.Options{ServerHost: cl.Host, ServerPort: cl.Port})
	ctx := t.Context()
	blue, green := pgtest.UniqueName(t, "blue"), pgtest.UniqueName(t, "green")
	pgtest.NewRole(t, cl, blue, password(t))
	pgtest.NewRole(t, cl, green, password(t))

	// Lines PgBouncer ignores or that belong to others must survive as
	// they are, byte for byte.
	orig, err := os.ReadFile(b.AuthFile)
	require.NoError(t, err)
	orig = append(orig, "\n; managed by hand below\n  \"someone\" \"md5abc\" trailing words\n"...)
	require.NoError(t, os.WriteFile(b.AuthFile, orig, 0o640))
	require.NoError(t, b.ChownToServer(b.AuthFile))
	fi, err := os.Stat(b.AuthFile)
	require.NoError(t, err)

	tg := mustTarget(t, options(b.AuthFile, b.AdminURL()))
	login := func(role string, pw secret.String) error { return pgtest.CanLogin(ctx, b.URL(role, pw, db)) }

	pwBlue := password(t)
	vBlue := verifier(t, pwBlue)
	setPassword(t, cl, db, blue, vBlue)
	require.Error(t, login(blue, pwBlue), "not in the auth_file yet")
	require.True(t, put(t, tg, blue, vBlue).Changed)
	require.NoError(t, login(blue, pwBlue), "Put reloads PgBouncer, so the new password works through it at once")

	pwGreen := password(t)
	vGreen := verifier(t, pwGreen)
	setPassword(t, cl, db, green, vGreen)
	require.True(t, put(t, tg, green, vGreen).Changed)
	require.NoError(t, login(green, pwGreen))
	require.NoError(t, login(blue, pwBlue), "dual: the old role's entry stays until the role is retired")

	// Rotating blue changes only blue's line.
	before, err := os.ReadFile(b.AuthFile)
	require.NoError(t, err)
	pwBlue2 := password(t)
	vBlue2 := verifier(t, pwBlue2)
	setPassword(t, cl, db, blue, vBlue2)
	require.True(t, put(t, tg, blue, vBlue2).Changed)
	require.NoError(t, login(blue, pwBlue2))
	require.Error(t, login(blue, pwBlue), "the previous password of the rotated role no longer works")
	require.NoError(t, login(green, pwGreen))
	after, err := os.ReadFile(b.AuthFile)
	require.NoError(t, err)
	require.Equal(t, strings.Replace(string(before), vBlue.Reveal(), vBlue2.Reveal(), 1), string(after))
	require.True(t, strings.HasPrefix(string(after), string(orig)), "every line the target does not manage is byte-identical")

	// Same verifier again: nothing written; mode and owner were kept by
	// every write (PgBouncer's user must go on reading the file).
	beforeNoop := stat(t, b.AuthFile)
	require.False(t, put(t, tg, blue, vBlue2).Changed)
	afterNoop := stat(t, b.AuthFile)
	require.Equal(t, beforeNoop.Ino, afterNoop.Ino, "a no-op Put must not replace the file")
	origStat := fi.Sys().(*syscall.Stat_t)
	require.Equal(t, fi.Mode().Perm(), os.FileMode(afterNoop.Mode).Perm())
	require.Equal(t, []uint32{origStat.Uid, origStat.Gid}, []uint32{afterNoop.Uid, afterNoop.Gid})
}

func stat(t *testing.T, path string) *syscall.Stat_t {
	t.Helper()
	fi, err := os.Stat(path)
	require.NoError(t, err)
	return fi.Sys().(*syscall.Stat_t)
}

func TestCheckComparesTheVerifier(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "userlist.txt")
	require.NoError(t, os.WriteFile(path, nil, 0o600))
	tg := mustTarget(t, options(path, secret.String{}))
	keys := []string{"DATABASE_URL"}

	// Nothing written by this process: nothing to compare, but the file
	// must still be readable the way PgBouncer reads it.
	resp, err := tg.Check(t.Context(), target.CheckRequest{Keys: keys})
	require.NoError(t, err)
	require.Equal(t, keys, resp.Unreadable)
	require.Contains(t, strings.Join(resp.Notes, " "), "no entry was written by this process")

	v := verifier(t, password(t))
	put(t, tg, "app_blue", v)
	resp, err = tg.Check(t.Context(), target.CheckRequest{Keys: keys})
	require.NoError(t, err)
	require.Equal(t, keys, resp.Unreadable)
	require.Empty(t, resp.Values)
	require.Contains(t, strings.Join(resp.Notes, " "), "holds the verifier set on the server for role app_blue")
	require.Empty(t, secret.Leaks([]byte(strings.Join(resp.Notes, " ")), v))

	other := verifier(t, password(t))
	tests := []struct {
		name    string
		content string
		want    error
	}{
		{"another verifier", pgbouncertest.Entry("app_blue", other.Reveal()), pgbouncer.ErrMismatch},
		{"entry removed", pgbouncertest.Entry("app_green", v.Reveal()), pgbouncer.ErrMismatch},
		{"file broken", "app_blue " + v.Reveal() + "\n", pgbouncer.ErrBrokenFile},
	}
	for _, tt := range tests {
		require.NoError(t, os.WriteFile(path, []byte(tt.content), 0o600), tt.name)
		_, err := tg.Check(t.Context(), target.CheckRequest{Keys: keys})
		require.ErrorIs(t, err, tt.want, tt.name)
		require.Empty(t, secret.Leaks([]byte(err.Error()), v), tt.name)
		require.Empty(t, secret.Leaks([]byte(err.Error()), other), tt.name)
	}
}

func TestPutRefusals(t *testing.T) {
	t.Parallel()
	v := verifier(t, password(t))
	tests := []struct {
		name     string
		content  *string // nil: no file
		role     string
		verifier secret.String
		want     error
		msg      string
	}{
		{"no verifier (Neon API mode)", ptr(""), "app", secret.String{}, pgbouncer.ErrNoVerifier, "the database provider did not hand one over"},
		{"not a SCRAM verifier", ptr(""), "app", secret.New("md5deadbeef"), target.ErrInvalid, "not a SCRAM-SHA-256 verifier"},
		{"no role", ptr(""), "", v, target.ErrInvalid, "names no role"},
		{"missing file", nil, "app", v, target.ErrNotFound, "does not exist"},
		{"duplicate entry", ptr("\"app\" \"a\"\n\"app\" \"b\"\n"), "app", v, pgbouncer.ErrBrokenFile, "listed 2 times"},
		{"broken file", ptr("# not a comment for PgBouncer\n"), "app", v, pgbouncer.ErrBrokenFile, "line 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "userlist.txt")
			if tt.content != nil {
				require.NoError(t, os.WriteFile(path, []byte(*tt.content), 0o600))
			}
			tg := mustTarget(t, options(path, secret.String{}))
			_, err := tg.PublishVerifier(t.Context(), target.PublishVerifierRequest{Role: tt.role, Verifier: tt.verifier, Values: map[string]secret.String{"K": secret.New("canary-value")}, Keys: []string{"K"}})
			require.ErrorIs(t, err, tt.want)
			require.ErrorContains(t, err, tt.msg)
			require.ErrorContains(t, err, `pgbouncer target "bouncer"`)
			require.Empty(t, secret.Leaks([]byte(err.Error()), v))
			require.Empty(t, secret.Leaks([]byte(err.Error()), secret.New("canary-value")))
			if tt.content != nil {
				got, err := os.ReadFile(path)
				require.NoError(t, err)
				require.Equal(t, *tt.content, string(got), "a refused Put writes nothing")
			}
		})
	}
}

func ptr(s string) *string { return &s }

func TestAdminConsoleErrors(t *testing.T) {
	t.Parallel()
	b := shared(t)
	path := filepath.Join(t.TempDir(), "userlist.txt")
	require.NoError(t, os.WriteFile(path, nil, 0o600))
	v := verifier(t, password(t))
	wrongPW := secret.New("wrong-" + hex.EncodeToString([]byte(t.Name())))

	t.Run("wrong admin password is ErrAuth", func(t *testing.T) {
		t.Parallel()
		tg := mustTarget(t, options(path, b.URL(pgbouncertest.AdminUser, wrongPW, "pgbouncer")))
		_, err := tg.PublishVerifier(t.Context(), target.PublishVerifierRequest{Role: "app_wrongpw", Verifier: v})
		require.ErrorIs(t, err, target.ErrAuth)
		require.ErrorContains(t, err, "admin_users")
		require.ErrorContains(t, err, "holds the new entry for role app_wrongpw, but PgBouncer was not told")
		require.Empty(t, secret.Leaks([]byte(err.Error()), wrongPW))
		require.Empty(t, secret.Leaks([]byte(err.Error()), v))
		_, err = tg.Validate(t.Context(), target.ValidateRequest{})
		require.ErrorIs(t, err, target.ErrAuth)
	})
	t.Run("user not in admin_users is ErrAuth", func(t *testing.T) {
		t.Parallel()
		tg := mustTarget(t, options(path, b.URL("nobody", wrongPW, "pgbouncer")))
		_, err := tg.Reload(t.Context(), target.ReloadRequest{})
		require.ErrorIs(t, err, target.ErrAuth)
		require.Empty(t, secret.Leaks([]byte(err.Error()), wrongPW))
	})
	t.Run("unreachable console is retryable", func(t *testing.T) {
		t.Parallel()
		tg := mustTarget(t, options(path, secret.New("postgresql://rotor_admin:"+wrongPW.Reveal()+"@127.0.0.1:1/pgbouncer?connect_timeout=5")))
		_, err := tg.Reload(t.Context(), target.ReloadRequest{})
		var re *target.RetryableError
		require.ErrorAs(t, err, &re)
		require.ErrorContains(t, err, "cannot reach the PgBouncer admin console at 127.0.0.1:1")
		require.Empty(t, secret.Leaks([]byte(err.Error()), wrongPW))
	})
}

func TestValidate(t *testing.T) {
	t.Parallel()
	b := shared(t)

	t.Run("the bouncer's own auth_file", func(t *testing.T) {
		t.Parallel()
		tg := mustTarget(t, options(b.AuthFile, b.AdminURL()))
		resp, err := tg.Validate(t.Context(), target.ValidateRequest{})
		require.NoError(t, err)
		notes := strings.Join(resp.Notes, "\n")
		require.Contains(t, notes, "lists")
		require.NotContains(t, notes, "but this target writes")
		require.NotContains(t, notes, "server_login_retry", "1 s is what rotor advises")
	})
	t.Run("PgBouncer's default server_login_retry is noted", func(t *testing.T) {
		t.Parallel()
		cl := pgtest.Shared(t)
		b15 := pgbouncertest.StartTB(t, pgbouncertest.Options{ServerHost: cl.Host, ServerPort: cl.Port,
			Settings: map[string]string{"server_login_retry": "15"}})
		resp, err := mustTarget(t, options(b15.AuthFile, b15.AdminURL())).Validate(t.Context(), target.ValidateRequest{})
		require.NoError(t, err)
		require.Contains(t, strings.Join(resp.Notes, "\n"), "server_login_retry is 15 s")
	})
	t.Run("another file than PgBouncer reads is noted", func(t *testing.T) {
		t.Parallel()
		path := filepath.Join(t.TempDir(), "userlist.txt")
		require.NoError(t, os.WriteFile(path, nil, 0o600))
		resp, err := mustTarget(t, options(path, b.AdminURL())).Validate(t.Context(), target.ValidateRequest{})
		require.NoError(t, err)
		require.Contains(t, strings.Join(resp.Notes, "\n"), "PgBouncer's auth_file is "+b.AuthFile+" but this target writes "+path)
	})
	t.Run("missing file", func(t *testing.T) {
		t.Parallel()
		_, err := mustTarget(t, options(filepath.Join(t.TempDir(), "nope.txt"), secret.String{})).Validate(t.Context(), target.ValidateRequest{})
		require.ErrorIs(t, err, target.ErrNotFound)
	})
	t.Run("broken file", func(t *testing.T) {
		t.Parallel()
		path := filepath.Join(t.TempDir(), "userlist.txt")
		require.NoError(t, os.WriteFile(path, []byte("\"a\" \"1\"\nb 2\n"), 0o600))
		_, err := mustTarget(t, options(path, secret.String{})).Validate(t.Context(), target.ValidateRequest{})
		require.ErrorIs(t, err, pgbouncer.ErrBrokenFile)
		require.ErrorContains(t, err, "line 2")
	})
}

// TestClients lists the clients PgBouncer holds for a role, which a dual
// rotation's drain needs (see Target.Clients).
func TestClients(t *testing.T) {
	t.Parallel()
	db, b, role, pw, tg := roleBehindBouncer(t, "client", nil)

	resp, err := tg.Clients(t.Context(), pgbouncer.ClientsRequest{Role: role})
	require.NoError(t, err)
	require.Empty(t, resp.Clients)

	conn := pgtest.Connect(t.Context(), t, b.URL(role, pw, db))
	_, err = conn.Exec(t.Context(), "SELECT 1")
	require.NoError(t, err)
	resp, err = tg.Clients(t.Context(), pgbouncer.ClientsRequest{Role: role})
	require.NoError(t, err)
	require.Len(t, resp.Clients, 1)
	require.Equal(t, db, resp.Clients[0].Database)
	require.Equal(t, "127.0.0.1", resp.Clients[0].Addr)

	_, err = tg.Clients(t.Context(), pgbouncer.ClientsRequest{Role: "nobody"})
	require.NoError(t, err)
	noAdmin := mustTarget(t, options(b.AuthFile, secret.String{}))
	_, err = noAdmin.Clients(t.Context(), pgbouncer.ClientsRequest{Role: role})
	require.ErrorContains(t, err, "set admin_url")
}

// TestSettleWaitsForWaitingClients: with one server connection per pool,
// a second client of the role waits in PgBouncer (cl_waiting). Settle
// must not return while it waits, and must return once it got through.
func TestSettleWaitsForWaitingClients(t *testing.T) {
	t.Parallel()
	db, b, role, pw, tg := roleBehindBouncer(t, "settle", map[string]string{"default_pool_size": "1", "pool_mode": "session"})
	ctx := t.Context()

	_, err := tg.Settle(ctx, target.SettleRequest{Role: role})
	require.NoError(t, err, "nobody waits: settled at once")

	first := pgtest.Connect(ctx, t, b.URL(role, pw, db)) // holds the pool's only server connection
	_, err = first.Exec(ctx, "SELECT 1")
	require.NoError(t, err)
	second := make(chan error, 1)
	go func() { second <- pgtest.CanLogin(ctx, b.URL(role, pw, db)) }()
	// Until the second client waits, Settle returns nil at once; then it
	// waits for it, up to its deadline.
	require.Eventually(t, func() bool {
		sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		_, err := tg.Settle(sctx, target.SettleRequest{Role: role})
		return err != nil && strings.Contains(err.Error(), "still pending")
	}, 30*time.Second, 20*time.Millisecond, "Settle must report the waiting client")

	require.NoError(t, first.Close(ctx)) // frees the server connection
	require.NoError(t, <-second, "the waiting client gets through")
	_, err = tg.Settle(ctx, target.SettleRequest{Role: role})
	require.NoError(t, err)
}

// TestReloadWaitsForServerLogins: a server login of the role that hangs
// (its database points at a server that accepts and never answers) is
// seen as pending (SHOW POOLS sv_login), and Put still reloads once the
// bounded wait is over rather than blocking the rotation.
func TestReloadWaitsForServerLogins(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { c.Close() }) // hold it open, say nothing
		}
	}()
	cl := pgtest.Shared(t)
	port := ln.Addr().(*net.TCPAddr).Port
	b := pgbouncertest.StartTB(t, pgbouncertest.Options{ServerHost: cl.Host, ServerPort: cl.Port,
		Databases: map[string]string{"silent": fmt.Sprintf("host=127.0.0.1 port=%d dbname=silent", port)},
		Settings:  map[string]string{"server_connect_timeout": "30", "server_tls_sslmode": "disable"}})
	role := pgtest.UniqueName(t, "hang")
	pw := password(t)
	v := verifier(t, pw)
	tg := mustTarget(t, options(b.AuthFile, b.AdminURL()))
	put(t, tg, role, v)
	ctx := t.Context()

	go func() {
		cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		_ = pgtest.CanLogin(cctx, b.URL(role, pw, "silent")) // waits on the silent server
	}()
	require.Eventually(t, func() bool {
		n, err := tg.PendingLogins(ctx, role)
		return err == nil && n == 1
	}, 30*time.Second, 20*time.Millisecond, "the hanging server login shows as sv_login")

	// A new verifier: Put waits for the login (up to its bound), then
	// reloads anyway; Reload then has nothing left to do.
	pw2 := password(t)
	put(t, tg, role, verifier(t, pw2))
	resp, err := tg.Reload(ctx, target.ReloadRequest{})
	require.NoError(t, err)
	require.Contains(t, resp.Detail, "reloaded when the entry was written")
}

// roleBehindBouncer starts a bouncer (with extra settings) in front of a
// new database, creates a role whose verifier the server and the
// auth_file (written by the target) share, and returns them.
func roleBehindBouncer(t *testing.T, prefix string, settings map[string]string) (db string, b *pgbouncertest.Bouncer, role string, pw secret.String, tg *pgbouncer.Target) {
	t.Helper()
	cl := pgtest.Shared(t)
	db, _ = pgtest.NewDatabase(t)
	b = pgbouncertest.StartTB(t, pgbouncertest.Options{ServerHost: cl.Host, ServerPort: cl.Port, Settings: settings})
	role = pgtest.UniqueName(t, prefix)
	pw = password(t)
	pgtest.NewRole(t, cl, role, password(t))
	v := verifier(t, pw)
	setPassword(t, cl, db, role, v)
	tg = mustTarget(t, options(b.AuthFile, b.AdminURL()))
	put(t, tg, role, v)
	return db, b, role, pw, tg
}

// TestReloadTimesOutOnAFrozenConsole: PgBouncer is stopped (SIGSTOP), so
// the kernel still accepts connections to its port but nothing answers.
// Reload must give up when ctx ends and say so, wrapping ctx.Err().
func TestReloadTimesOutOnAFrozenConsole(t *testing.T) {
	t.Parallel()
	cl := pgtest.Shared(t)
	b := pgbouncertest.StartTB(t, pgbouncertest.Options{ServerHost: cl.Host, ServerPort: cl.Port})
	tg := mustTarget(t, options(b.AuthFile, b.AdminURL()))
	freeze(t, b)

	ctx, cancel := context.WithTimeout(t.Context(), 500*time.Millisecond)
	defer cancel()
	_, err := tg.Reload(ctx, target.ReloadRequest{RotationID: "1"})
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.ErrorContains(t, err, fmt.Sprintf(`pgbouncer target "bouncer": the PgBouncer admin console at 127.0.0.1:%d did not confirm RELOAD before the deadline`, b.Port))
	require.ErrorContains(t, err, "`rotor resume` sends RELOAD")
	require.Empty(t, secret.Leaks([]byte(err.Error()), b.AdminPassword()))
}

// TestReloadRefusedByTheConsole: a user the console lets in (stats_users)
// but that may not RELOAD gets ErrAuth naming admin_users.
func TestReloadRefusedByTheConsole(t *testing.T) {
	t.Parallel()
	cl := pgtest.Shared(t)
	const statsUser = "rotor_stats"
	b := pgbouncertest.StartTB(t, pgbouncertest.Options{ServerHost: cl.Host, ServerPort: cl.Port, Settings: map[string]string{"stats_users": statsUser}})
	pw := password(t)
	put(t, mustTarget(t, options(b.AuthFile, b.AdminURL())), statsUser, verifier(t, pw))

	tg := mustTarget(t, options(b.AuthFile, b.URL(statsUser, pw, "pgbouncer")))
	_, err := tg.Reload(t.Context(), target.ReloadRequest{RotationID: "1"})
	require.ErrorIs(t, err, target.ErrAuth)
	require.ErrorContains(t, err, "RELOAD on the admin console at 127.0.0.1:")
	require.ErrorContains(t, err, "list admin_url's user in PgBouncer's admin_users")
	var re *target.RetryableError
	require.False(t, errors.As(err, &re), "a refusal is not retried")
	require.Empty(t, secret.Leaks([]byte(err.Error()), pw))
}

// freeze stops b's PgBouncer process until the test ends.
func freeze(t *testing.T, b *pgbouncertest.Bouncer) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(b.Dir, "pgbouncer.pid"))
	require.NoError(t, err)
	pid, err := strconv.Atoi(strings.TrimSpace(string(raw)))
	require.NoError(t, err)
	require.NoError(t, syscall.Kill(pid, syscall.SIGSTOP))
	// Registered after StartTB's Stop, so it runs first: a stopped
	// process would not see Stop's SIGTERM.
	t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGCONT) })
}
