package neon_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/rotorhq/rotor/internal/pgtest"
	"github.com/rotorhq/rotor/internal/provider"
	"github.com/rotorhq/rotor/internal/provider/neon"
	"github.com/rotorhq/rotor/internal/provider/neon/neonapi"
	"github.com/rotorhq/rotor/internal/provider/neon/neonfake"
	"github.com/rotorhq/rotor/internal/secret"
)

// requireNoLeak scans everything rotor produced around a call — the
// provider's log lines, every request the fake saw (paths and queries),
// and the given texts — for any spelling of the secrets.
func (w *world) requireNoLeak(t *testing.T, texts []string, secrets ...secret.String) {
	t.Helper()
	hay := append([]byte(strings.Join(texts, "\n")), w.logs.Bytes()...)
	for _, e := range w.fake.Requests() {
		hay = append(hay, []byte("\n"+e.Method+" "+e.Path+"?"+e.Query)...)
	}
	for i, s := range secrets {
		require.Empty(t, secret.Leaks(hay, s), "secret %d leaked", i)
	}
}

// viaEndpoint is a consumer's connection string through the main
// branch's endpoint (the fake's proxy), as Neon gives it.
func (w *world) viaEndpoint(role string, pw secret.String) secret.String {
	w.t.Helper()
	return w.routed(secret.New("postgresql://" + url.PathEscape(role) + ":" + url.QueryEscape(pw.Reveal()) + "@" + w.main.Host + "/" + w.db + "?sslmode=require&channel_binding=require"))
}

func strongPW(t *testing.T) secret.String {
	t.Helper()
	pw, err := neon.StrongRandomPassword()
	require.NoError(t, err)
	return pw
}

// TestSQLMethodKeepsSessions: over SQL the plaintext changes the password,
// proven by a login, while sessions already open — of another role and of
// the rotated role itself — carry on; nothing goes through the API's
// reset, and the plaintext is in no detail, error or log line.
func TestSQLMethodKeepsSessions(t *testing.T) {
	t.Parallel()
	w := newWorld(t, neonfake.Config{})
	role, bystander := pgtest.UniqueName(t, "app"), pgtest.UniqueName(t, "other")
	old := strongPW(t)
	pgtest.NewRole(t, w.main.Cluster, role, old)
	pgtest.NewRole(t, w.main.Cluster, bystander, old)
	other := pgtest.Connect(t.Context(), t, w.viaEndpoint(bystander, old))
	own := pgtest.Connect(t.Context(), t, w.viaEndpoint(role, old))

	p := w.newProvider(neon.MethodSQL, "database: "+w.db)
	next := strongPW(t)
	v, err := secret.SCRAMVerifier(nil, next)
	require.NoError(t, err)
	resp, err := p.SetPassword(t.Context(), provider.SetPasswordRequest{Role: role, Password: next, Verifier: v})
	require.NoError(t, err)
	require.True(t, resp.Password.IsZero(), "rotor chose the password")
	require.Contains(t, resp.Detail, "plaintext password set over verified TLS and proven by a login on branch main")
	require.Contains(t, resp.Detail, "may not switch log_statement", "the owner is no superuser")

	var one int
	require.NoError(t, other.QueryRow(t.Context(), "SELECT 1").Scan(&one), "another role's session survives")
	require.NoError(t, own.QueryRow(t.Context(), "SELECT 1").Scan(&one), "the rotated role's own session survives")
	require.NoError(t, w.login(role, next))
	require.Error(t, w.login(role, old))
	for _, e := range w.fake.Requests() {
		require.NotContains(t, e.Path, "reset_password")
	}

	// Errors carry no password either: a missing role, and a branch-wide
	// refusal (the admin may not alter a superuser).
	_, ghostErr := p.SetPassword(t.Context(), provider.SetPasswordRequest{Role: pgtest.UniqueName(t, "ghost"), Password: next, Verifier: v})
	require.ErrorIs(t, ghostErr, provider.ErrRoleNotFound)
	require.ErrorContains(t, ghostErr, "create it in the Neon console")
	require.NotContains(t, ghostErr.Error(), "setup-roles")
	su := pgtest.UniqueName(t, "su")
	pgtest.NewRole(t, w.main.Cluster, su, old)
	super := pgtest.Connect(t.Context(), t, w.main.Cluster.AdminURL(w.db))
	_, err = super.Exec(t.Context(), "ALTER ROLE "+su+" SUPERUSER")
	require.NoError(t, err)
	_, suErr := p.SetPassword(t.Context(), provider.SetPasswordRequest{Role: su, Password: next, Verifier: v})
	require.ErrorIs(t, suErr, provider.ErrPermission)
	require.ErrorContains(t, suErr, "admin_role "+w.owner+" may not do this")
	w.requireNoLeak(t, []string{resp.Detail, ghostErr.Error(), fmt.Sprintf("%+v", suErr)}, next, old, w.ownerPW)
}

// TestSQLMethodWeakPasswordRefused: Neon's control plane refuses a weak
// password (the fake raises its error); nothing changes, and the error
// says what to fix without quoting the password.
func TestSQLMethodWeakPasswordRefused(t *testing.T) {
	t.Parallel()
	w := newWorld(t, neonfake.Config{})
	role, old := pgtest.UniqueName(t, "app"), strongPW(t)
	pgtest.NewRole(t, w.main.Cluster, role, old)
	p := w.newProvider(neon.MethodSQL, "database: "+w.db)
	weak := secret.New("abcdefgh")
	require.Error(t, p.(provider.PasswordChecker).CheckPassword(weak), "the engine never draws it")
	_, err := p.SetPassword(t.Context(), provider.SetPasswordRequest{Role: role, Password: weak})
	require.ErrorIs(t, err, provider.ErrInvalid)
	require.ErrorContains(t, err, "Neon refused the password")
	require.ErrorContains(t, err, "control plane")
	require.NoError(t, w.login(role, old), "the role keeps its password")
	require.Error(t, w.login(role, weak))
	w.requireNoLeak(t, []string{fmt.Sprintf("%+v", err)}, weak, old, w.ownerPW)
}

// TestSQLMethodCannotRestoreAVerifier: a rollback that has only a
// verifier cannot be sent to Neon.
func TestSQLMethodCannotRestoreAVerifier(t *testing.T) {
	t.Parallel()
	w := newWorld(t, neonfake.Config{})
	p := w.newProvider(neon.MethodSQL)
	v, err := secret.SCRAMVerifier(nil, strongPW(t))
	require.NoError(t, err)
	_, err = p.SetPassword(t.Context(), provider.SetPasswordRequest{Role: w.owner, Verifier: v})
	require.ErrorIs(t, err, provider.ErrUnsupported)
	require.ErrorContains(t, err, "passwords over SQL in plaintext only")
	require.NotContains(t, err.Error(), v.Reveal())
	_, err = p.Snapshot(t.Context(), provider.SnapshotRequest{Role: w.owner})
	require.ErrorIs(t, err, provider.ErrUnsupported)
	require.Empty(t, w.fake.Requests(), "both refuse before any request")
}

// TestAdminConnectionVerifiesTheServer: without the CA that signs the
// compute's certificate, the admin connection is refused before any
// password is sent, and the error says what to set.
func TestAdminConnectionVerifiesTheServer(t *testing.T) {
	t.Parallel()
	w := newWorld(t, neonfake.Config{})
	role, old := pgtest.UniqueName(t, "app"), strongPW(t)
	pgtest.NewRole(t, w.main.Cluster, role, old)
	// No sslrootcert: the system's roots, which do not know the cluster's.
	yaml := strings.Join([]string{"api_key: " + w.fake.APIKey, "api_url: " + w.fake.URL, "project_id: " + w.fake.ProjectID, "database: " + w.db}, "\n")
	p, err := neon.FactoryForTest(w.fake.Route, nil, quick, w.logs)(provider.Params{Decode: strictDecode(yaml)})
	require.NoError(t, err)
	t.Cleanup(func() { _ = p.Close() })
	next := strongPW(t)
	_, err = p.SetPassword(t.Context(), provider.SetPasswordRequest{Role: role, Password: next})
	require.ErrorIs(t, err, provider.ErrUnavailable)
	require.ErrorContains(t, err, "set sslrootcert to the CA that signs it")
	require.NoError(t, w.login(role, old), "nothing changed")
	w.requireNoLeak(t, []string{err.Error()}, next, w.ownerPW)
}

// TestSelfManagedAdmin rotates the admin role itself, in a project that
// does not store passwords, so the only way in is the password rotor
// knows: the provider switches to it at once, and a later process logs
// in with what the engine tells it, not with the stale admin_password.
func TestSelfManagedAdmin(t *testing.T) {
	t.Parallel()
	for _, method := range []string{neon.MethodSQL, neon.MethodAPI} {
		t.Run(method, func(t *testing.T) {
			t.Parallel()
			w := newWorld(t, neonfake.Config{DisableStorePasswords: true})
			stale := "admin_password: " + w.ownerPW.Reveal()
			p := w.newProvider(method, "database: "+w.db, stale)
			sm := p.(provider.SelfManager)
			admin, err := sm.AdminRole(t.Context())
			require.NoError(t, err)
			require.Equal(t, w.owner, admin)
			bystander := pgtest.UniqueName(t, "other")
			pgtest.NewRole(t, w.main.Cluster, bystander, strongPW(t))

			next := strongPW(t)
			resp, err := p.SetPassword(t.Context(), provider.SetPasswordRequest{Role: w.owner, Password: next})
			require.NoError(t, err, "the SQL after the change logs in with the new password")
			if method == neon.MethodAPI {
				next = resp.Password
			}
			require.NoError(t, w.login(w.owner, next))
			require.Error(t, w.login(w.owner, w.ownerPW))
			// Later admin work in the same process uses the new password.
			_, err = p.Sessions(t.Context(), provider.SessionsRequest{Role: bystander})
			require.NoError(t, err)

			// A new process with the stale admin_password: refused, with
			// advice that names the neon provider's settings.
			later := w.newProvider(method, "database: "+w.db, stale)
			_, err = later.Check(t.Context(), provider.CheckRequest{Roles: []string{w.owner}})
			require.ErrorIs(t, err, provider.ErrPermission)
			require.ErrorContains(t, err, "check admin_role ("+w.owner+") and admin_password")
			require.NotContains(t, err.Error(), "admin_url")
			// Told the stored passwords (the engine passes current and
			// pending), it finds the one that works.
			later.(provider.SelfManager).UseAdminPasswords([]secret.String{strongPW(t), next})
			check, err := later.Check(t.Context(), provider.CheckRequest{Roles: []string{w.owner}})
			require.NoError(t, err)
			require.Contains(t, strings.Join(check.Notes, "\n"), "admin_password is only needed until the first rotation succeeds")
			// And none works: every source is named.
			none := w.newProvider(method, "database: "+w.db, stale)
			none.(provider.SelfManager).UseAdminPasswords([]secret.String{strongPW(t)})
			_, err = none.Check(t.Context(), provider.CheckRequest{})
			require.ErrorIs(t, err, provider.ErrPermission)
			require.ErrorContains(t, err, "refused every password rotor knows for it (rotor's store, admin_password)")
			w.requireNoLeak(t, []string{err.Error(), resp.Detail}, next, w.ownerPW)
		})
	}
}

// TestLockedLongerThanAttempts keeps the branch busy with another
// client's operation for two minutes of a clock that moves only when rotor
// sleeps: far beyond the six attempts (about four seconds) rotor used to
// give up after, well within operation_timeout. Every wait is logged.
func TestLockedLongerThanAttempts(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	w := newWorld(t, neonfake.Config{Now: clock})
	role := pgtest.UniqueName(t, "app")
	pgtest.NewRole(t, w.main.Cluster, role, strongPW(t))
	tune := func(c *neonapi.Client) {
		c.Now = clock
		c.Sleep = func(ctx context.Context, d time.Duration) error {
			mu.Lock()
			defer mu.Unlock()
			now = now.Add(d)
			return ctx.Err()
		}
	}
	p, err := neon.FactoryForTest(w.fake.Route, nil, tune, w.logs)(provider.Params{Decode: strictDecode(w.providerYAML(neon.MethodAPI, "database: "+w.db))})
	require.NoError(t, err)
	t.Cleanup(func() { _ = p.Close() })
	_, err = p.Check(t.Context(), provider.CheckRequest{})
	require.NoError(t, err)
	start := clock()
	const busy = 2 * time.Minute
	_, err = w.fake.Busy("main", busy)
	require.NoError(t, err)

	resp, err := p.SetPassword(t.Context(), provider.SetPasswordRequest{Role: role, Password: strongPW(t)})
	require.NoError(t, err)
	require.NoError(t, w.login(role, resp.Password))
	var resets []int
	for _, e := range w.fake.Requests() {
		if strings.HasSuffix(e.Path, "/reset_password") {
			resets = append(resets, e.Status)
		}
	}
	require.Greater(t, len(resets), neonapi.DefaultMaxAttempts, "more tries than the attempt limit")
	for _, st := range resets[:len(resets)-1] {
		require.Equal(t, http.StatusLocked, st)
	}
	require.Equal(t, http.StatusOK, resets[len(resets)-1])
	require.GreaterOrEqual(t, clock().Sub(start), busy, "the lock was waited out on the client's clock")
	logs := string(w.logs.Bytes())
	require.Equal(t, len(resets)-1, strings.Count(logs, "423 Locked"), "one log line per wait")
	require.Contains(t, logs, "gives_up_after=5m0s")

	// Busy for longer than operation_timeout: rotor gives up, and says so.
	_, err = w.fake.Busy("main", time.Hour)
	require.NoError(t, err)
	_, err = p.SetPassword(t.Context(), provider.SetPasswordRequest{Role: role, Password: strongPW(t)})
	require.ErrorIs(t, err, provider.ErrUnavailable)
	require.ErrorContains(t, err, "raise operation_timeout")
	w.requireNoLeak(t, []string{err.Error()}, resp.Password, w.ownerPW)
}

func TestCheckPassword(t *testing.T) {
	t.Parallel()
	p := neon.Neon{}
	for _, weak := range []string{
		"short1A",                          // 7 × log2(62) ≈ 42 bits
		"abcdefghij",                       // 10 lowercase ≈ 47 bits
		"abababababab",                     // 12 × log2(26) ≈ 56 bits
		"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", // one character, and runs
		"Xq7vLp2mRt9wZaaa",                 // strong but for a run of three
		"Passsword-1234567",
		"Abcdefghijklmnopqrstuvwxyz", // a run of letters counts two
	} {
		require.Error(t, p.CheckPassword(secret.New(weak)), weak)
		require.NotContains(t, p.CheckPassword(secret.New(weak)).Error(), weak, "the error never quotes the password")
	}
	for _, ok := range []string{
		"npg_AbCdEfGhIjKl", // the form of Neon's own generated passwords
		"FLfASd8mbKO9",     // the example in Neon's API docs (12 alphanumerics)
		"Xq7vLp2mRt9wZaab",
	} {
		require.NoError(t, p.CheckPassword(secret.New(ok)), ok)
	}
	require.InDelta(t, 71.45, neon.EntropyBits("FLfASd8mbKO9"), 0.01)
}

// TestGeneratedPasswordsMeetNeonsRule draws many passwords under rotor's
// default policy. The entropy rule never refuses one: 32 characters
// without a run of three count at least 16 (every other one differs from
// the one before), 16 × log2(62) ≈ 95 bits, far above 60. The only ones
// refused hold a character three times in a row (about 0.8% of draws),
// which the engine draws again (PasswordChecker) and Retire's scrambling
// never returns.
func TestGeneratedPasswordsMeetNeonsRule(t *testing.T) {
	t.Parallel()
	p := neon.Neon{}
	const draws = 20000
	refused := 0
	for range draws {
		pw, err := secret.Generate(nil, secret.DefaultPolicy())
		require.NoError(t, err)
		require.Greater(t, neon.EntropyBits(pw.Reveal()), 95.0)
		err = p.CheckPassword(pw)
		require.Equal(t, hasRun(pw.Reveal(), 3), err != nil, "refused only for a run of three")
		if err != nil {
			refused++
		}
	}
	require.Less(t, refused, draws/50)
	for range 2000 {
		require.NoError(t, p.CheckPassword(strongPW(t)))
	}
}

func hasRun(s string, n int) bool {
	run := 0
	var prev rune = -1
	for _, r := range s {
		if r == prev {
			run++
		} else {
			run = 1
		}
		if run >= n {
			return true
		}
		prev = r
	}
	return false
}

func TestCheckWarnsOfAPISelfManagedWithoutStoredPasswords(t *testing.T) {
	t.Parallel()
	w := newWorld(t, neonfake.Config{DisableStorePasswords: true})
	got, err := w.newProvider(neon.MethodAPI, "admin_password: "+w.ownerPW.Reveal()).Check(t.Context(), provider.CheckRequest{Roles: []string{w.owner}})
	require.NoError(t, err)
	require.Contains(t, strings.Join(got.Notes, "\n"), "nobody would know the new password")
	got, err = w.newProvider(neon.MethodSQL, "admin_password: "+w.ownerPW.Reveal()).Check(t.Context(), provider.CheckRequest{Roles: []string{w.owner}})
	require.NoError(t, err)
	require.NotContains(t, strings.Join(got.Notes, "\n"), "nobody would know")
	w.requireNoLeak(t, got.Notes, w.ownerPW)
}
