package sqlite_test

import (
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/rotorhq/rotor/internal/store"
	"github.com/rotorhq/rotor/internal/store/sqlite"
	"github.com/rotorhq/rotor/internal/store/storetest"
)

func open(t testing.TB, path string) *sqlite.Store {
	t.Helper()
	s, err := sqlite.Open(t.Context(), path)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, s.Close()) })
	return s
}

func TestConformance(t *testing.T) {
	t.Parallel()
	storetest.Exercise(t, func(t *testing.T) store.Store {
		return open(t, filepath.Join(t.TempDir(), "state.db"))
	})
}

// The whole contract again with the pool as the CLI caps it, and tighter
// (one reader beside the writer): every method, the concurrent ones
// included, must finish without waiting on a connection it holds.
func TestConformanceWithOneReader(t *testing.T) {
	t.Parallel()
	storetest.Exercise(t, func(t *testing.T) store.Store {
		s := open(t, filepath.Join(t.TempDir(), "state.db"))
		s.LimitReaders(1)
		return s
	})
}

// A scratch store (what a read-only command reads before any state file
// exists) answers every read as a new file does, and refuses every write
// without changing anything.
func TestScratchReadsAsANewFileAndRefusesWrites(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	file := open(t, filepath.Join(t.TempDir(), "state.db"))
	scratch, err := sqlite.OpenScratch(ctx)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, scratch.Close()) })
	for _, st := range []store.Store{file, scratch} {
		l, err := st.GetLease(ctx, store.GetLeaseParams{Name: "app"})
		require.Nil(t, l)
		require.ErrorIs(t, err, store.ErrNotFound)
		vs, err := st.ListVersions(ctx, store.ListVersionsParams{Credential: "app"})
		require.NoError(t, err)
		require.Empty(t, vs)
		rs, err := st.ListRotations(ctx, store.ListRotationsParams{Credential: "app", Active: true})
		require.NoError(t, err)
		require.Empty(t, rs)
		ds, err := st.ListDeliveries(ctx, store.ListDeliveriesParams{Credential: "app"})
		require.NoError(t, err)
		require.Empty(t, ds)
		as, err := st.ListAudit(ctx, store.ListAuditParams{Credential: "app"})
		require.NoError(t, err)
		require.Empty(t, as)
	}
	fi, err := file.Info(ctx)
	require.NoError(t, err)
	si, err := scratch.Info(ctx)
	require.NoError(t, err)
	require.Equal(t, fi.SchemaVersion, si.SchemaVersion, "the scratch store has the file's schema")
	fs, err := file.Export(ctx, store.ExportParams{})
	require.NoError(t, err)
	ss, err := scratch.Export(ctx, store.ExportParams{})
	require.NoError(t, err)
	fs.ID, ss.ID = "", ""
	require.Equal(t, fs, ss)

	now := time.Unix(1_700_000_000, 0)
	_, err = scratch.AcquireLease(ctx, store.AcquireLeaseParams{Name: "app", Holder: "h", TTL: time.Minute, Now: now})
	require.ErrorContains(t, err, "no state file exists yet")
	_, err = scratch.AppendAudit(ctx, store.AppendAuditParams{Credential: "app", Event: "x", Now: now})
	require.ErrorContains(t, err, "no state file exists yet")
	as, err := scratch.ListAudit(ctx, store.ListAuditParams{Credential: "app"})
	require.NoError(t, err)
	require.Empty(t, as, "a refused write changes nothing")
}

// Each scratch store is a database of its own, in memory only, and its
// contents go when it is closed.
func TestScratchStoresAreSeparateAndLeaveNoFile(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	wd, err := os.Getwd()
	require.NoError(t, err)
	before, err := os.ReadDir(wd)
	require.NoError(t, err)
	a, err := sqlite.OpenScratch(ctx)
	require.NoError(t, err)
	b, err := sqlite.OpenScratch(ctx)
	require.NoError(t, err)
	ia, err := a.Info(ctx)
	require.NoError(t, err)
	ib, err := b.Info(ctx)
	require.NoError(t, err)
	require.NotEqual(t, ia.ID, ib.ID, "two scratch stores are two databases")
	require.Equal(t, "sqlite", ia.Driver)
	require.NoError(t, a.Close())
	require.NoError(t, b.Close())
	_, err = a.Info(ctx)
	require.Error(t, err, "a closed scratch store answers no more")
	after, err := os.ReadDir(wd)
	require.NoError(t, err)
	require.Equal(t, len(before), len(after), "a scratch store writes no file")
}

func TestOpenCreatesPrivateFiles(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "nested", "rotor")
	path := filepath.Join(dir, "state.db")
	s := open(t, path)
	// Force a write so the WAL exists and its mode can be checked too.
	_, err := s.AppendAudit(t.Context(), store.AppendAuditParams{Event: "x", Now: time.Now()})
	require.NoError(t, err)

	requireMode(t, dir, 0o700)
	requireMode(t, path, 0o600)
	requireMode(t, path+"-wal", 0o600)
}

func requireMode(t *testing.T, path string, want os.FileMode) {
	t.Helper()
	fi, err := os.Stat(path)
	require.NoError(t, err)
	require.Equal(t, want, fi.Mode().Perm(), "%s", path)
}

func TestOpenRefusesLooseFile(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "state.db")
	require.NoError(t, os.WriteFile(path, nil, 0o600))
	require.NoError(t, os.Chmod(path, 0o644))

	_, err := sqlite.Open(t.Context(), path)
	require.ErrorContains(t, err, fmt.Sprintf("state file %s is readable by others (mode 0644); chmod 600 %s", path, path))
	requireMode(t, path, 0o644) // refused, not silently fixed
}

func TestOpenRefusesNewerSchema(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "state.db")
	s, err := sqlite.Open(t.Context(), path)
	require.NoError(t, err)
	require.NoError(t, s.Close())

	db, err := sql.Open("sqlite", path)
	require.NoError(t, err)
	_, err = db.ExecContext(t.Context(), `INSERT INTO schema_migrations (version, name, applied_at) VALUES (999, '0999_future.sql', 0)`)
	require.NoError(t, err)
	require.NoError(t, db.Close())

	_, err = sqlite.Open(t.Context(), path)
	require.ErrorContains(t, err, "schema version 999")
	require.ErrorContains(t, err, "upgrade rotor")
}

func TestReopenKeepsData(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "state.db")
	s, err := sqlite.Open(t.Context(), path)
	require.NoError(t, err)
	v, err := s.InsertVersion(t.Context(), store.InsertVersionParams{
		Credential: "app-db", Role: "app", Stage: store.StageCurrent, Sealed: []byte{1, 2, 3}, Now: time.Unix(0, 1),
	})
	require.NoError(t, err)
	require.NoError(t, s.Close())

	s = open(t, path) // migrations are not re-applied to a current file
	got, err := s.GetVersion(t.Context(), store.GetVersionParams{ID: v.ID})
	require.NoError(t, err)
	require.Equal(t, v, got)
}

// Several processes may start on a new file at once: each migration must
// be applied exactly once and every Open must succeed.
func TestConcurrentOpenOfNewFile(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "state.db")
	const n = 4
	stores := make([]*sqlite.Store, n)
	errs := make([]error, n)
	done := make(chan struct{})
	for i := range n {
		go func() {
			defer func() { done <- struct{}{} }()
			stores[i], errs[i] = sqlite.Open(t.Context(), path)
		}()
	}
	for range n {
		<-done
	}
	for i := range n {
		require.NoError(t, errs[i])
		require.NoError(t, stores[i].Close())
	}
}

// Nanoseconds in an int64 span the years 1678 to 2262; anything else, and
// a missing clock, must fail loudly rather than wrap around.
func TestTimeOutOfRangeIsRefused(t *testing.T) {
	t.Parallel()
	s := open(t, filepath.Join(t.TempDir(), "state.db"))
	_, err := s.AcquireLease(t.Context(), store.AcquireLeaseParams{Name: "app-db", Holder: "a", TTL: time.Minute})
	require.ErrorContains(t, err, "outside the range")
	_, err = s.AppendAudit(t.Context(), store.AppendAuditParams{Event: "x", Now: time.Date(2300, 1, 1, 0, 0, 0, 0, time.UTC)})
	require.ErrorContains(t, err, "outside the range")
	_, err = s.AppendAudit(t.Context(), store.AppendAuditParams{Event: "x"})
	require.Error(t, err, "a zero time is NULL and at is NOT NULL")
}

// Two handles on one file stand in for two rotor processes: each has its
// own connection pool, so only SQLite's file locking keeps them consistent.
func TestTwoHandlesShareState(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "state.db")
	a, b := open(t, path), open(t, path)
	ctx := t.Context()
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)

	r, err := a.InsertRotation(ctx, store.InsertRotationParams{Credential: "app-db", Strategy: "dual", Trigger: "manual", Now: now})
	require.NoError(t, err)
	got, err := b.ListRotations(ctx, store.ListRotationsParams{Credential: "app-db"})
	require.NoError(t, err)
	require.Equal(t, []*store.Rotation{r}, got)

	_, err = b.InsertRotation(ctx, store.InsertRotationParams{Credential: "app-db", Strategy: "dual", Trigger: "manual", Now: now})
	require.ErrorIs(t, err, store.ErrConflict)

	va, err := a.InsertVersion(ctx, store.InsertVersionParams{Credential: "app-db", Role: "app", Stage: store.StageRetired, Now: now})
	require.NoError(t, err)
	vb, err := b.InsertVersion(ctx, store.InsertVersionParams{Credential: "app-db", Role: "app", Stage: store.StageRetired, Now: now})
	require.NoError(t, err)
	require.Equal(t, va.Seq+1, vb.Seq)
}

func TestTwoHandlesRaceForLease(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "state.db")
	handles := []*sqlite.Store{open(t, path), open(t, path)}
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)

	const racers = 20
	errs := make([]error, racers)
	start := make(chan struct{})
	done := make(chan struct{})
	for i := range racers {
		go func() {
			defer func() { done <- struct{}{} }()
			<-start
			_, errs[i] = handles[i%2].AcquireLease(t.Context(), store.AcquireLeaseParams{
				Name: "app-db", Holder: fmt.Sprintf("process-%d", i), TTL: time.Minute, Now: now,
			})
		}()
	}
	close(start)
	for range racers {
		<-done
	}

	var won []int
	for i, err := range errs {
		if err == nil {
			won = append(won, i)
			continue
		}
		require.ErrorIs(t, err, store.ErrLeaseHeld)
	}
	require.Len(t, won, 1)
	for _, h := range handles {
		l, err := h.GetLease(t.Context(), store.GetLeaseParams{Name: "app-db"})
		require.NoError(t, err)
		require.Equal(t, fmt.Sprintf("process-%d", won[0]), l.Holder)
	}
}

// BenchmarkFinishRotation is one rotation's journal: the rotation, its
// version, eight step records and the finish, each its own commit.
func BenchmarkFinishRotation(b *testing.B) {
	for _, deferred := range []bool{false, true} {
		b.Run(fmt.Sprintf("deferred=%v", deferred), func(b *testing.B) {
			s := open(b, filepath.Join(b.TempDir(), "state.db"))
			ctx := b.Context()
			now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
			rotations := 0
			for b.Loop() {
				r, err := s.InsertRotation(ctx, store.InsertRotationParams{Credential: "app-db", Strategy: "dual", Trigger: "schedule", Now: now, Deferred: deferred})
				require.NoError(b, err)
				v, err := s.InsertVersion(ctx, store.InsertVersionParams{
					Credential: "app-db", Role: "app_blue", Stage: store.StagePending, RotationID: r.ID,
					Sealed: make([]byte, 96), Fingerprint: "fp", Now: now, Deferred: deferred,
				})
				require.NoError(b, err)
				_, err = s.UpdateRotation(ctx, store.UpdateRotationParams{ID: r.ID, ToVersionID: &v.ID, Now: now, Deferred: deferred})
				require.NoError(b, err)
				for _, step := range []string{"prepare", "apply", "test", "publish"} {
					for _, st := range []store.StepStatus{store.StepStarted, store.StepDone} {
						// As the engine does: the started records of apply
						// and publish wait for the disk (durableBefore).
						wait := st == store.StepStarted && (step == "apply" || step == "publish")
						_, err = s.AppendStep(ctx, store.AppendStepParams{RotationID: r.ID, Name: step, Status: st, Now: now, Deferred: deferred && !wait})
						require.NoError(b, err)
					}
				}
				_, err = s.FinishRotation(ctx, store.FinishRotationParams{
					ID: r.ID, Status: store.StatusSucceeded, Promote: true, Now: now,
					Audit: store.AppendAuditParams{Event: "rotation.succeeded"},
				})
				require.NoError(b, err)
				rotations++
			}
			b.ReportMetric(float64(rotations)/b.Elapsed().Seconds(), "rotations/s")
		})
	}
}

// BenchmarkEngineJournal is one single-strategy rotation's journal as the
// engine writes it for a credential with one .env target (the writes
// TestEveryActionFollowsADurableRecord in package engine lists): the lease
// with the rotation's row, every later write fenced, started records
// riding with the step's first write, the deliveries with the step
// records, ten writes of which three wait for the disk. Every rotation after the
// first also moves the previous version out.
func BenchmarkEngineJournal(b *testing.B) {
	s := open(b, filepath.Join(b.TempDir(), "state.db"))
	ctx := b.Context()
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	var after, current int64 // the latest rotation and current version
	cpu := processCPU(b)
	for b.Loop() {
		now = now.Add(time.Second)
		r, l, err := s.StartRotation(ctx, store.StartRotationParams{
			Lease: store.AcquireLeaseParams{Name: "credential/app-db", Holder: "bench", TTL: time.Minute, Now: now, Deferred: true},
			Rotation: store.InsertRotationParams{Credential: "app-db", Strategy: "single", Trigger: "manual", FromVersionID: current, Now: now,
				Audit: &store.AppendAuditParams{Event: "rotation.started"}, Deferred: true},
			After: after,
		})
		require.NoError(b, err)
		after = r.ID
		fence := l.Fence()
		v, err := s.InsertVersion(ctx, store.InsertVersionParams{
			Credential: "app-db", Role: "app", Stage: store.StagePending, RotationID: r.ID,
			Sealed: make([]byte, 96), Fingerprint: "fp", Now: now, Fence: fence, Deferred: true,
			Pending: &store.UpdateRotationParams{Rollback: make([]byte, 96), Now: now},
			Open:    &store.OpenStep{Name: "prepare", At: now},
		})
		require.NoError(b, err)
		delivery := func(state store.DeliveryState) []store.UpsertDeliveryParams {
			return []store.UpsertDeliveryParams{{RotationID: r.ID, Target: "env", State: state, Fingerprint: "fp", Attempts: 1, Now: now}}
		}
		for _, p := range []store.AppendStepParams{
			{Name: "prepare", Status: store.StepDone, Deferred: true},
			{Name: "apply", Status: store.StepStarted},
			{Name: "apply", Status: store.StepDone, AppliedAt: now, Deferred: true},
			{Name: "test", Status: store.StepDone, Open: &store.OpenStep{Name: "test", At: now}, Deferred: true},
			{Name: "publish", Status: store.StepStarted},
			{Name: "publish", Status: store.StepDone, Deliveries: delivery(store.DeliveryWritten), Deferred: true},
			{Name: "confirm", Status: store.StepDone, Open: &store.OpenStep{Name: "confirm", At: now}, Deliveries: delivery(store.DeliveryVerified), Deferred: true},
		} {
			p.RotationID, p.Fence, p.Now = r.ID, fence, now
			_, err = s.AppendStep(ctx, p)
			require.NoError(b, err)
		}
		_, err = s.FinishRotation(ctx, store.FinishRotationParams{
			ID: r.ID, Status: store.StatusSucceeded, Promote: true, RetirePrevious: true, Now: now, Fence: fence, Release: true,
			Open:  &store.OpenStep{Name: "finish", At: now},
			Audit: store.AppendAuditParams{Event: "rotation.succeeded"},
		})
		require.NoError(b, err)
		current = v.ID
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "rotations/s")
	// The fsyncs are wall time, not CPU: the CPU is what the writes cost.
	b.ReportMetric(float64((processCPU(b)-cpu).Microseconds())/float64(b.N), "cpu-µs/rotation")
}

// processCPU is the user and system time this process has used so far.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	require.NoError(b, syscall.Getrusage(syscall.RUSAGE_SELF, &ru))
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// TestMigratesAFileOfTheFirstSchema: a state file written by a rotor that
// knew only the first migration (an interrupted rotation in it) opens,
// gains rotations.applied_at, and its rotation reads back with AppliedAt
// zero — which tells the engine to fall back to the old journal.
func TestMigratesAFileOfTheFirstSchema(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "state.db")
	first, err := os.ReadFile("migrations/0001_initial.sql")
	require.NoError(t, err)
	db, err := sql.Open("sqlite", path)
	require.NoError(t, err)
	for _, stmt := range []string{
		string(first),
		`CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL) STRICT`,
		`INSERT INTO schema_migrations (version, name, applied_at) VALUES (1, '0001_initial.sql', 0)`,
		`INSERT INTO rotations (credential, status, strategy, triggered_by, revoke, step, started_at, updated_at) VALUES ('app-db', 'active', 'single', 'manual', 1, 'apply', 1, 1)`,
	} {
		_, err := db.ExecContext(t.Context(), stmt)
		require.NoError(t, err)
	}
	require.NoError(t, db.Close())
	require.NoError(t, os.Chmod(path, 0o600))

	s := open(t, path)
	rots, err := s.ListRotations(t.Context(), store.ListRotationsParams{Credential: "app-db", Active: true})
	require.NoError(t, err)
	require.Len(t, rots, 1)
	require.Equal(t, "apply", rots[0].Step)
	require.True(t, rots[0].AppliedAt.IsZero(), "no apply time was stored by the old rotor")

	applied := time.Date(2030, 1, 2, 3, 4, 5, 6, time.UTC)
	u, err := s.UpdateRotation(t.Context(), store.UpdateRotationParams{ID: rots[0].ID, AppliedAt: &applied, Now: applied})
	require.NoError(t, err)
	require.True(t, applied.Equal(u.AppliedAt), "the new column is written")
}

// TestMigratedLeaseGetsAToken: a lease held when the token migration runs
// gets token 1 (0 would be the unchecked fence), and its next change of
// hands a larger one.
func TestMigratedLeaseGetsAToken(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "state.db")
	db, err := sql.Open("sqlite", path)
	require.NoError(t, err)
	stmts := []string{`CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL) STRICT`}
	for i, name := range []string{"0001_initial.sql", "0002_rotation_applied_at.sql"} {
		body, err := os.ReadFile(filepath.Join("migrations", name))
		require.NoError(t, err)
		stmts = append(stmts, string(body), fmt.Sprintf(`INSERT INTO schema_migrations VALUES (%d, '%s', 0)`, i+1, name))
	}
	stmts = append(stmts, `INSERT INTO leases (name, holder, expires_at) VALUES ('credential/app-db', 'old', 100)`)
	for _, stmt := range stmts {
		_, err := db.ExecContext(t.Context(), stmt)
		require.NoError(t, err, stmt)
	}
	require.NoError(t, db.Close())
	require.NoError(t, os.Chmod(path, 0o600))

	s := open(t, path)
	l, err := s.GetLease(t.Context(), store.GetLeaseParams{Name: "credential/app-db"})
	require.NoError(t, err)
	require.Equal(t, "old", l.Holder)
	require.Equal(t, int64(1), l.Token)
	taken, err := s.AcquireLease(t.Context(), store.AcquireLeaseParams{Name: "credential/app-db", Holder: "new", TTL: time.Minute, Now: time.Unix(0, 100)})
	require.NoError(t, err)
	require.Equal(t, int64(2), taken.Token)
}

// BenchmarkOpenNew opens a store that does not exist yet: the scratch
// store a read-only command reads before the first rotation, and a new
// state file (migrated and synced on this machine's disk).
func BenchmarkOpenNew(b *testing.B) {
	b.Run("scratch", func(b *testing.B) {
		for b.Loop() {
			s, err := sqlite.OpenScratch(b.Context())
			require.NoError(b, err)
			require.NoError(b, s.Close())
		}
	})
	b.Run("file", func(b *testing.B) {
		dir := b.TempDir()
		i := 0
		for b.Loop() {
			i++
			s, err := sqlite.Open(b.Context(), filepath.Join(dir, fmt.Sprintf("state-%d.db", i)))
			require.NoError(b, err)
			require.NoError(b, s.Close())
		}
	})
}
