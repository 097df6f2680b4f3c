package loadsim

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/rotorhq/rotor/internal/pgtest"
	"github.com/rotorhq/rotor/internal/secret"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// waitFor is the generous bound on a condition that needs a few round
// trips to a local server; it bounds a hang, it times nothing.
const waitFor = 30 * time.Second

// fixture is a database with one role, its right URL and one with a wrong
// password.
func fixture(t *testing.T) (right, wrong string, wrongPassword secret.String, role string) {
	t.Helper()
	c := pgtest.Shared(t)
	db, _ := pgtest.NewDatabase(t)
	role = pgtest.UniqueName(t, "loadsim")
	pw, err := secret.Generate(nil, secret.DefaultPolicy())
	require.NoError(t, err)
	wrongPassword, err = secret.Generate(nil, secret.DefaultPolicy())
	require.NoError(t, err)
	pgtest.NewRole(t, c, role, pw)
	return c.URL(role, pw, db).Reveal(), c.URL(role, wrongPassword, db).Reveal(), wrongPassword, role
}

var errTest = errors.New("test failure")

// switchable is a Source whose value the test sets; reads counts the
// calls.
type switchable struct {
	v     atomic.Pointer[string]
	reads atomic.Int64
}

func (s *switchable) set(v string) { s.v.Store(&v) }
func (s *switchable) get() string {
	s.reads.Add(1)
	if p := s.v.Load(); p != nil {
		return *p
	}
	return ""
}

// start runs c until the test ends.
func start(t *testing.T, c Consumer) {
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	wg.Go(func() { c.Run(ctx) })
	t.Cleanup(func() { cancel(); wg.Wait() })
}

// TestRaceConnectsWithTheValueBeforeTheChange: each change of the source
// gives exactly one attempt, with the value read before the change — the
// right URL replaced by a wrong one logs in, the wrong one replaced by the
// right one does not — and the failure does not show the password.
func TestRaceConnectsWithTheValueBeforeTheChange(t *testing.T) {
	t.Parallel()
	right, wrong, wrongPassword, _ := fixture(t)
	src := &switchable{}
	src.set(right)
	r := &Race{Source: src.get, Delay: 50 * time.Millisecond}
	start(t, r)

	// The race must have read the first value (after its initial read)
	// before it changes.
	require.Eventually(t, func() bool { return src.reads.Load() >= 2 }, waitFor, time.Millisecond)
	src.set(wrong)
	require.Eventually(t, func() bool { return r.Attempts() == 1 }, waitFor, 5*time.Millisecond)
	src.set(right)
	require.Eventually(t, func() bool { return r.Attempts() == 2 }, waitFor, 5*time.Millisecond)

	s := r.Snapshot()
	require.EqualValues(t, 1, s.OK, "the right URL, read before it was replaced, logs in")
	require.EqualValues(t, 1, s.Failed, "the wrong URL, read before it was replaced, fails: %s", s.LastError)
	require.Equal(t, map[string]int64{"password authentication failed": 1}, s.Kinds)
	require.NotContains(t, s.LastError, wrongPassword.Reveal())
	require.Positive(t, s.ReadToLogin)
}

// TestPoolCountsSessionsTheServerEnds: sessions the server terminates are
// dropped sessions (pgxpool does not quietly replace them, because nothing
// pings first); new connections read the source again, so after it
// changes to a wrong password they are failed connections.
func TestPoolCountsSessionsTheServerEnds(t *testing.T) {
	t.Parallel()
	right, wrong, _, role := fixture(t)
	src := &switchable{}
	src.set(right)
	p := &Pool{Source: src.get, Size: 2, Lifetime: time.Hour}
	start(t, p)

	var total Stats
	add := func() Stats { total = Merge(total, p.Snapshot()); return total }
	require.Eventually(t, func() bool { return add().OK > 10 }, waitFor, 10*time.Millisecond)
	require.Zero(t, total.Failed+total.PoolDropped, total.LastError)

	admin := pgtest.Connect(t.Context(), t, pgtest.Shared(t).AdminURL("postgres"))
	var ended int
	require.NoError(t, admin.QueryRow(t.Context(),
		"SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1) t", role).Scan(&ended))
	require.Positive(t, ended)
	require.Eventually(t, func() bool { return add().PoolDropped > 0 }, waitFor, 10*time.Millisecond)
	require.Contains(t, total.Kinds, "session ended: "+kindOf(total.LastError))
	require.Zero(t, total.Failed, "a new connection with the right URL failed: %s", total.LastError)

	// The replacements log in with whatever the source says now. The pool
	// may still be replacing the sessions ended above, so end whatever it
	// holds until one replacement has tried the wrong URL.
	src.set(wrong)
	require.Eventually(t, func() bool {
		if _, err := admin.Exec(t.Context(), "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1", role); err != nil {
			t.Logf("terminate: %v", err)
		}
		return add().Kinds["password authentication failed"] > 0
	}, waitFor, 50*time.Millisecond)
	require.Positive(t, total.Failed)
}

// TestDotenvFileReadsTheCurrentFile: the source parses the file as
// godotenv does, each time it is called, and is empty for a missing file.
func TestDotenvFileReadsTheCurrentFile(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), ".env")
	src := DotenvFile(path, "DATABASE_URL")
	require.Empty(t, src())
	require.NoError(t, os.WriteFile(path, []byte("# app\nDATABASE_URL='postgresql://a:b@h/d?sslmode=require'\n"), 0o600))
	require.Equal(t, "postgresql://a:b@h/d?sslmode=require", src())
	require.NoError(t, os.WriteFile(path, []byte("DATABASE_URL=\"postgresql://c:d@h/d\"\n"), 0o600))
	require.Equal(t, "postgresql://c:d@h/d", src())
}

// TestCounterWindows: failures closer than burstGap are one window; a
// Snapshot resets everything.
func TestCounterWindows(t *testing.T) {
	t.Parallel()
	var c counter
	c.start()
	base := time.Now()
	for _, at := range []time.Duration{0, 100 * time.Millisecond, 200 * time.Millisecond, time.Second, 1100 * time.Millisecond} {
		c.failAt(base.Add(at), errTest, "")
	}
	s := c.snapshot()
	require.EqualValues(t, 5, s.Failed)
	require.Equal(t, 200*time.Millisecond, s.Window)
	require.Equal(t, map[string]int64{"test failure": 5}, s.Kinds)
	require.Zero(t, c.snapshot().Failed)
}
