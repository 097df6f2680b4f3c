//go:build unix

package e2e_test

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/rotorhq/rotor/internal/engine"
	"github.com/rotorhq/rotor/internal/pgtest"
	"github.com/rotorhq/rotor/internal/store"
)

// journaledSteps are the steps with a BeforeStep hook, in order (lock is
// taken before the journal exists).
var journaledSteps = engine.Steps[1:]

// defaultRandomKills is how many random-time kills a plain `go test` runs;
// ROTOR_SOAK_KILLS overrides it (`make soak` asks for 200).
const defaultRandomKills = 10

// crashStores are the state stores the matrix runs on: both unless
// ROTOR_SOAK_STORES (a comma-separated list; `make soak SOAK_STORES=…`)
// names fewer.
func crashStores(t *testing.T) []string {
	v := os.Getenv("ROTOR_SOAK_STORES")
	if v == "" {
		return []string{"sqlite", "postgres"}
	}
	var out []string
	for _, s := range strings.Split(v, ",") {
		s = strings.TrimSpace(s)
		require.Contains(t, []string{"sqlite", "postgres"}, s, "ROTOR_SOAK_STORES=%q: name sqlite, postgres or both", v)
		out = append(out, s)
	}
	return out
}

// TestCrashMatrix SIGKILLs `rotor rotate` at every step boundary of both
// strategies and at random moments, on each state store (the SQLite file,
// and a PostgreSQL store shared through ROTOR_STATE_URL), and checks after
// each kill, before anything resumes, that the database still accepts a
// password the store holds; then that `rotor resume` finishes the rotation
// with a .env that logs in and the old credential retired.
func TestCrashMatrix(t *testing.T) {
	random := defaultRandomKills
	if v := os.Getenv("ROTOR_SOAK_KILLS"); v != "" {
		n, err := strconv.Atoi(v)
		require.NoError(t, err, "ROTOR_SOAK_KILLS must be a number")
		require.GreaterOrEqual(t, n, 0, "ROTOR_SOAK_KILLS")
		random = n
	}
	for _, kind := range crashStores(t) {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			for i, strategy := range []string{"single", "dual"} {
				share := random / 2
				if i == 0 {
					share += random % 2
				}
				t.Run(strategy, func(t *testing.T) {
					t.Parallel()
					crashMatrix(t, kind, strategy, share)
				})
			}
		})
	}
}

func crashMatrix(t *testing.T, kind, strategy string, randomKills int) {
	w := newWorld(t, nil, credSpec{name: "app", strategy: strategy, many: true})
	if kind == "postgres" {
		sharedStore(t, w)
	}
	if strategy == "dual" {
		w.mustRotor(t, "setup-roles", "app")
	}
	// Clean rotations first: a current version to fall back on, and (from
	// the next three, with a role to retire in dual) how long a rotation
	// typically takes, which bounds the random kill delays.
	w.mustRotor(t, "rotate", "app")
	cur := w.requireSettled(t, "app", nil)
	var took []time.Duration
	for range 3 {
		start := time.Now()
		w.mustRotor(t, "rotate", "app")
		took = append(took, time.Since(start))
		cur = w.requireSettled(t, "app", cur)
	}
	slices.Sort(took)
	typical := took[1]

	began := time.Now()
	kills := 0
	landed := map[string]int{}
	for _, step := range journaledSteps {
		ok := t.Run("before-"+step, func(t *testing.T) {
			r := w.rotor(t, []string{"ROTOR_TEST_CRASH_AT=" + step}, "rotate", "app")
			require.True(t, r.killed, "the hook must SIGKILL rotor before %s; it exited %d:\n%s", step, r.code, w.scrub(r.output()))
			kills++
			s := w.requireCrashSafe(t, "app", cur)
			require.Len(t, s.active, 1, "the killed rotation stays active: %s", s.describe())
			requireStoppedBefore(t, s, step)
			require.True(t, w.unfinishedShown(t, "app"), "`rotor status` must report the unfinished rotation")
			cur = w.resumeSame(t, "app", cur, s)
		})
		if !ok {
			return
		}
	}

	// Random kills are counted when they land; a rotation that finishes
	// before its kill is checked too, and another one is tried.
	landedRandom := 0
	for i := 0; landedRandom < randomKills; i++ {
		require.Less(t, i, 3*randomKills+10, "most random kills came too late; the clean rotation took %s", typical)
		ok := t.Run(fmt.Sprintf("random-%03d", i), func(t *testing.T) {
			// Every other run stalls before one step, so kills also land
			// where that step's window would otherwise be too narrow to hit.
			var env []string
			window := typical
			if i%2 == 1 {
				step := journaledSteps[rand.N(len(journaledSteps))]
				env = []string{"ROTOR_TEST_PAUSE_AT=" + step + ":200ms"}
				window += 200 * time.Millisecond
			}
			p := w.start(t, env, "rotate", "app")
			time.Sleep(rand.N(window))
			p.kill()
			r := w.finish(p)
			if !r.killed {
				require.Equal(t, 0, r.code, "rotate was not killed, so it must have succeeded:\n%s", w.scrub(r.output()))
				landed["missed: finished before the kill"]++
				cur = w.requireSettled(t, "app", cur)
				return
			}
			kills++
			landedRandom++
			s := w.requireCrashSafe(t, "app", cur)
			landed[killPoint(s, cur)]++
			require.Equal(t, len(s.active) == 1, w.unfinishedShown(t, "app"), "`rotor status` must report an unfinished rotation exactly when there is one")

			// Every third time, recovery itself is killed too.
			if i%3 == 2 && len(s.active) == 1 {
				p := w.start(t, nil, "resume")
				time.Sleep(rand.N(typical))
				p.kill()
				if r := w.finish(p); r.killed {
					kills++
					landed["during resume"]++
					w.requireCrashSafe(t, "app", cur)
				} else {
					require.Equal(t, 0, r.code, "resume was not killed, so it must have succeeded:\n%s", w.scrub(r.output()))
				}
			}
			cur = w.resumeSame(t, "app", cur, s)
		})
		if !ok {
			return
		}
	}
	points := slices.Sorted(maps.Keys(landed))
	var b strings.Builder
	for _, k := range points {
		fmt.Fprintf(&b, "\n  %4d  %s", landed[k], k)
	}
	t.Logf("%s store, %s: %d SIGKILLs (%d at step boundaries, %d at random times of rotate, %d of resume), 0 invariant violations, %s; "+
		"a clean rotation took %s; temporary files left by a kill: %d; random kills landed:%s",
		kind, strategy, kills, len(journaledSteps), landedRandom, landed["during resume"], time.Since(began).Round(time.Millisecond),
		typical.Round(time.Millisecond), w.strayTemps, b.String())
}

// requireCrashSafe asserts what must hold right after a kill, before any
// resume: the store is consistent, and the database accepts at least one of
// the store's current and pending passwords (once there is a current one;
// before is nil for a first rotation). A journaled apply means the
// pending password is set; in dual the current role keeps working until
// the finish step retires it. It returns the snapshot it checked.
func (w *world) requireCrashSafe(t *testing.T, cred string, before *version) snapshot {
	t.Helper()
	ctx := t.Context()
	s := w.inspect(t, cred)
	require.LessOrEqual(t, len(s.current), 1, "at most one current version: %s", s.describe())
	require.LessOrEqual(t, len(s.pending), 1, "at most one pending version: %s", s.describe())
	require.LessOrEqual(t, len(s.active), 1, "at most one unfinished rotation: %s", s.describe())
	if before != nil {
		require.Len(t, s.current, 1, "a kill never loses the current version: %s", s.describe())
		require.GreaterOrEqual(t, s.current[0].Seq, before.seq)
	}

	curErr := fmt.Errorf("no current version")
	if len(s.current) == 1 {
		cur := s.current[0]
		pw, ok := s.secrets[cur.ID]
		require.True(t, ok, "the current version's secret must not be wiped")
		curErr = w.login(ctx, cur.Role, pw)
	}
	pendErr := fmt.Errorf("no pending version")
	if len(s.pending) == 1 {
		p := s.pending[0]
		pw, ok := s.secrets[p.ID]
		require.True(t, ok, "the pending version's secret must not be wiped")
		pendErr = w.login(ctx, p.Role, pw)
	}
	// (Before the first rotation finishes there is no current version: the
	// role's password is whatever it was before rotor.)
	require.True(t, len(s.current) == 0 || curErr == nil || pendErr == nil,
		"the database accepts neither the current nor the pending password (%s)\ncurrent: %v\npending: %v", s.describe(), curErr, pendErr)
	if len(s.active) == 1 && s.journaled(engine.StepApply, store.StepDone) {
		require.NoError(t, pendErr, "apply is journaled as done, so the database must accept the pending password (%s)", s.describe())
	}
	if w.creds[cred].strategy == "dual" && len(s.current) == 1 && !(len(s.active) == 1 && s.journaled(engine.StepFinish, store.StepStarted)) {
		require.NoError(t, curErr, "dual: the current role must keep working until the finish step retires it (%s)", s.describe())
	}
	w.requireTargetsSafe(t, cred, s)
	w.sweepKilledTempFiles(t, cred)
	return s
}

// requireTargetsSafe checks every copy a kill left: each holds the
// store's current or pending password and nothing else, and a copy that
// consumers would use right now works — in dual every copy (the old role
// keeps working until every copy has moved), in single every copy that
// already holds the new password (the others hold the one ALTER ROLE
// replaced: the single strategy's window).
func (w *world) requireTargetsSafe(t *testing.T, cred string, s snapshot) {
	t.Helper()
	if len(s.current) == 0 {
		return // the first rotation: copies hold what was there before rotor
	}
	ctx := t.Context()
	known := map[int64]*store.Version{s.current[0].ID: s.current[0]}
	for _, p := range s.pending {
		known[p.ID] = p
	}
	for _, f := range w.creds[cred].files {
		conn, url := w.fileConn(t, f)
		if conn == nil {
			continue // a target written for the first time by this rotation
		}
		var holds *store.Version
		for id, v := range known {
			if v.Role == conn.User && s.secrets[id].Equal(conn.Password) {
				holds = v
			}
		}
		require.NotNil(t, holds, "%s holds a password that is neither the store's current nor its pending one (%s)", f, s.describe())
		if w.creds[cred].strategy == "dual" || holds.Stage == store.StagePending {
			require.NoError(t, pgtest.CanLogin(ctx, url), "%s (version %d, %s) must log in (%s)", f, holds.Seq, holds.Stage, s.describe())
		}
	}
}

// sweepKilledTempFiles checks what a kill between atomicfile's CreateTemp
// and its rename leaves behind: the temporary file with the new value in
// it. It must be as private as the target (0600), and the next write of
// the file (the resume) removes it, which the strict no-stray-files check
// after resume proves.
func (w *world) sweepKilledTempFiles(t *testing.T, cred string) {
	t.Helper()
	stray, err := filepath.Glob(filepath.Join(filepath.Dir(w.envPath(cred)), ".*.rotor-*.tmp"))
	require.NoError(t, err)
	for _, f := range stray {
		fi, err := os.Stat(f)
		require.NoError(t, err)
		require.Equal(t, os.FileMode(0o600), fi.Mode().Perm(), "a temporary file left by a kill must be private: %s", f)
		w.strayTemps++
	}
}

// requireStoppedBefore: a kill before step leaves the journal ending with
// the step before it done (nothing at all before prepare).
func requireStoppedBefore(t *testing.T, s snapshot, step string) {
	t.Helper()
	i := slices.Index(journaledSteps, step)
	if i == 0 {
		require.Empty(t, s.journal, "killed before prepare: nothing journaled yet")
		return
	}
	require.NotEmpty(t, s.journal, "killed before %s: %s", step, s.describe())
	last := s.journal[len(s.journal)-1]
	require.Equal(t, journaledSteps[i-1]+":done", last.Name+":"+string(last.Status), "killed before %s: %s", step, s.describe())
}

// killPoint names where in a rotation a kill landed, from the journal.
func killPoint(s snapshot, before *version) string {
	switch {
	case len(s.active) == 0 && s.current[0].Seq > before.seq:
		return "after the rotation was committed"
	case len(s.active) == 0:
		return "before a rotation was started"
	case len(s.journal) == 0:
		return "after the rotation was started, before prepare"
	}
	last := s.journal[len(s.journal)-1]
	if last.Status == store.StepDone {
		return "after " + last.Name
	}
	return "during " + last.Name
}

// resume runs `rotor resume`, which must exit 0 and leave the credential
// settled, and `rotor status` no longer reporting an unfinished rotation.
func (w *world) resume(t *testing.T, cred string, before *version) *version {
	t.Helper()
	r := w.rotor(t, nil, "resume")
	require.Equal(t, 0, r.code, "rotor resume:\n%s", w.scrub(r.output()))
	now := w.requireSettled(t, cred, before)
	require.False(t, w.unfinishedShown(t, cred), "`rotor status` must not report an unfinished rotation after resume")
	return now
}

// resumeSame resumes after a kill and checks that recovery finished the
// rotation the kill interrupted with the password that rotation had
// generated: a pending version at the kill becomes the current one, same
// role, same password — never a second password for the same step.
func (w *world) resumeSame(t *testing.T, cred string, before *version, killed snapshot) *version {
	t.Helper()
	now := w.resume(t, cred, before)
	if len(killed.pending) == 1 {
		p := killed.pending[0]
		require.Equal(t, p.Seq, now.seq, "resume must finish version %d, the one the killed rotation prepared", p.Seq)
		require.Equal(t, p.Role, now.role)
		require.True(t, killed.secrets[p.ID].Equal(now.pw), "resume must publish the password generated before the kill")
	}
	return now
}

// TestCrashHook checks the test hook the matrix relies on: the n-th
// arrival at a step is the one that dies, and a misspelt step fails the
// run loudly instead of silently never crashing.
func TestCrashHook(t *testing.T) {
	t.Parallel()
	w := newWorld(t, nil, credSpec{name: "a", strategy: "single"}, credSpec{name: "b", strategy: "single"})

	r := w.rotor(t, []string{"ROTOR_TEST_CRASH_AT=publish:2"}, "rotate", "a", "b")
	require.True(t, r.killed, "the second arrival at publish must die:\n%s", w.scrub(r.output()))
	w.requireSettled(t, "a", nil)
	s := w.requireCrashSafe(t, "b", nil)
	requireStoppedBefore(t, s, engine.StepPublish)
	w.resume(t, "b", nil)

	r = w.rotor(t, []string{"ROTOR_TEST_CRASH_AT=publsh"}, "rotate", "a")
	require.Equal(t, exitError, r.code, w.scrub(r.output()))
	require.Contains(t, r.stderr, `unknown step "publsh"`)
	w.resume(t, "a", nil)
}
