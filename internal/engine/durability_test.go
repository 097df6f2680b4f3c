package engine_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/rotorhq/rotor/internal/engine"
	"github.com/rotorhq/rotor/internal/pgtest"
	"github.com/rotorhq/rotor/internal/provider"
	"github.com/rotorhq/rotor/internal/provider/postgres"
	"github.com/rotorhq/rotor/internal/store"
)

// syncWatch records every write the engine makes and whether it waited
// for the disk. A deferred write becomes durable with the next durable one
// ("Deferred writes" in package store), so at any moment the writes up to
// the last durable one are on disk and the rest may not be.
type syncWatch struct {
	store.Store
	mu      sync.Mutex
	writes  []string // "AppendStep apply started", "InsertVersion", …
	durable int      // writes[:durable] are on disk
	waited  []string // the writes that waited for the disk themselves
}

func (w *syncWatch) note(what string, deferred bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.writes = append(w.writes, what)
	if !deferred {
		w.durable = len(w.writes)
		w.waited = append(w.waited, what)
	}
}

// onDisk reports whether the last write named what is on disk.
func (w *syncWatch) onDisk(what string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	for i := len(w.writes) - 1; i >= 0; i-- {
		if w.writes[i] == what {
			return i < w.durable
		}
	}
	return false
}

func (w *syncWatch) AcquireLease(ctx context.Context, p store.AcquireLeaseParams) (*store.Lease, error) {
	w.note("AcquireLease", p.Deferred)
	return w.Store.AcquireLease(ctx, p)
}

func (w *syncWatch) ReleaseLease(ctx context.Context, p store.ReleaseLeaseParams) error {
	w.note("ReleaseLease", p.Deferred)
	return w.Store.ReleaseLease(ctx, p)
}

func (w *syncWatch) RenewLease(ctx context.Context, p store.RenewLeaseParams) (*store.Lease, error) {
	w.note("RenewLease", false)
	return w.Store.RenewLease(ctx, p)
}

func (w *syncWatch) InsertRotation(ctx context.Context, p store.InsertRotationParams) (*store.Rotation, error) {
	w.note("InsertRotation", p.Deferred)
	return w.Store.InsertRotation(ctx, p)
}

func (w *syncWatch) StartRotation(ctx context.Context, p store.StartRotationParams) (*store.Rotation, *store.Lease, error) {
	w.note("StartRotation", p.Rotation.Deferred)
	return w.Store.StartRotation(ctx, p)
}

func (w *syncWatch) UpdateRotation(ctx context.Context, p store.UpdateRotationParams) (*store.Rotation, error) {
	what := "UpdateRotation"
	switch {
	case p.Rollback != nil:
		what += " rollback"
	case p.ToVersionID != nil:
		what += " pending"
	case p.AppliedAt != nil:
		what += " applied"
	}
	w.note(what, p.Deferred)
	return w.Store.UpdateRotation(ctx, p)
}

func (w *syncWatch) InsertVersion(ctx context.Context, p store.InsertVersionParams) (*store.Version, error) {
	what := "InsertVersion"
	if p.Pending != nil {
		what += " pending"
		if p.Pending.Rollback != nil {
			what += " with rollback"
		}
	}
	w.note(what+opens(p.Open), p.Deferred)
	return w.Store.InsertVersion(ctx, p)
}

func (w *syncWatch) ReplacePendingSecret(ctx context.Context, p store.ReplacePendingSecretParams) error {
	w.note("ReplacePendingSecret", false)
	return w.Store.ReplacePendingSecret(ctx, p)
}

func (w *syncWatch) AppendStep(ctx context.Context, p store.AppendStepParams) (*store.Step, error) {
	what := fmt.Sprintf("AppendStep %s %s", p.Name, p.Status) + opens(p.Open)
	for _, d := range p.Deliveries {
		what += " +" + d.Target + " " + string(d.State)
	}
	if !p.AppliedAt.IsZero() {
		what += " +applied"
	}
	w.note(what, p.Deferred)
	return w.Store.AppendStep(ctx, p)
}

func (w *syncWatch) UpsertDelivery(ctx context.Context, p store.UpsertDeliveryParams) (*store.Delivery, error) {
	w.note("UpsertDelivery "+string(p.State), p.Deferred)
	return w.Store.UpsertDelivery(ctx, p)
}

func (w *syncWatch) AppendAudit(ctx context.Context, p store.AppendAuditParams) (*store.AuditEvent, error) {
	w.note("AppendAudit "+p.Event, p.Deferred)
	return w.Store.AppendAudit(ctx, p)
}

func (w *syncWatch) FinishRotation(ctx context.Context, p store.FinishRotationParams) (*store.Rotation, error) {
	what := "FinishRotation" + opens(p.Open)
	if p.Release {
		what += " +release"
	}
	w.note(what, false)
	return w.Store.FinishRotation(ctx, p)
}

// opens names the started record a write carries (store.OpenStep).
func opens(o *store.OpenStep) string {
	if o == nil {
		return ""
	}
	return " +" + o.Name + " started"
}

func (w *syncWatch) FinishRetirement(ctx context.Context, p store.FinishRetirementParams) (*store.Rotation, error) {
	w.note("FinishRetirement", false)
	return w.Store.FinishRetirement(ctx, p)
}

// watchedProvider is the postgres provider (all its optional interfaces
// kept) with a look at the store just before each password change.
type watchedProvider struct {
	*postgres.Postgres
	beforeSet func()
}

func (p watchedProvider) SetPassword(ctx context.Context, req provider.SetPasswordRequest) (provider.SetPasswordResponse, error) {
	p.beforeSet()
	return p.Postgres.SetPassword(ctx, req)
}

// TestEveryActionFollowsADurableRecord: most of a rotation's records are
// deferred, so the check is that what a recovery after a power cut needs
// is on disk before each action outside the store — the pending version
// (and the password to roll back to) and the apply step's record before
// the database gets the new password; the publish step's record before a
// target gets a copy; the end of the rotation before the command returns.
func TestEveryActionFollowsADurableRecord(t *testing.T) {
	t.Parallel()
	for _, strategy := range []string{"single", "dual"} {
		t.Run(strategy, func(t *testing.T) {
			t.Parallel()
			b := setup(t, setupOpts{strategy: strategy, roles: rolesFor(t, strategy), memory: true})
			w := &syncWatch{Store: b.store}
			b.eng.Store = w
			cr := b.cred()
			var (
				mu      sync.Mutex
				missing []string
				sets    int
				puts    int
			)
			mustBeOnDisk := func(when string, records ...string) {
				for _, r := range records {
					if !w.onDisk(r) {
						missing = append(missing, r+" was not on disk "+when)
					}
				}
			}
			cr.Provider = watchedProvider{Postgres: cr.Provider.(*postgres.Postgres), beforeSet: func() {
				mu.Lock()
				defer mu.Unlock()
				sets++
				// The pending version, the rotation pointing at it and (single)
				// the password to roll back to are one write.
				want := []string{"InsertVersion pending", "AppendStep apply started"}
				if strategy == "single" {
					want[0] += " with rollback"
				}
				want[0] += " +prepare started"
				mustBeOnDisk("before the password changed", want...)
			}}
			b.mem.onPut = func() {
				mu.Lock()
				defer mu.Unlock()
				puts++
				mustBeOnDisk("before a target was written", "AppendStep publish started")
			}
			for i := range 2 {
				w.mu.Lock()
				w.writes, w.durable, w.waited = nil, 0, nil
				w.mu.Unlock()
				_, err := b.eng.Rotate(b.ctx, cr, engine.Options{})
				require.NoError(t, err)
				mu.Lock()
				// The finish lets the lease go in the same write, except
				// when the rotation switched (dual, from the second on)
				// and the retirement still needs it.
				switched := strategy == "dual" && i > 0
				finished := "FinishRotation +finish started"
				if !switched {
					finished += " +release"
				}
				mustBeOnDisk("when the rotation returned", finished)
				mu.Unlock()
				w.mu.Lock()
				t.Logf("rotation %d: %d writes, %d of them waited for the disk (%v): %v", i+1, len(w.writes), len(w.waited), w.waited, w.writes)
				// apply's and publish's started records and the finish
				// (and a dual rotation's retirement of the role before):
				// the rest rides on them.
				want := []string{"AppendStep apply started", "AppendStep publish started", finished}
				if switched {
					want = append(want, "FinishRetirement")
				}
				require.Equal(t, want, w.waited, "the writes that wait for the disk")
				require.Equal(t, switched, slices.Contains(w.writes, "ReleaseLease"), "a write of its own for the lease only when the rotation switched: %v", w.writes)
				require.Equal(t, "StartRotation", w.writes[0], "the lease comes with the rotation's row")
				require.NotContains(t, w.writes, "AcquireLease")
				_, err = b.store.GetLease(b.ctx, store.GetLeaseParams{Name: "credential/" + cr.Name})
				require.ErrorIs(t, err, store.ErrNotFound, "the lease is free once the rotation returned")
				// The steps that only read until their first write have
				// their started record ride with it, the apply time rides
				// with apply's done record, what confirm read back with its
				// done record, and publish's last record (the memory
				// target's reload: it is the only target that reloads)
				// with publish's: no write of their own.
				for _, carried := range []string{"AppendStep apply done +applied", "AppendStep test done +test started",
					"AppendStep publish done +mem reloaded", "AppendStep confirm done +confirm started +env verified +mem verified"} {
					require.Contains(t, w.writes, carried)
				}
				require.Equal(t, 3, slices.Index(w.writes, "AppendStep publish done +mem reloaded")-slices.Index(w.writes, "AppendStep publish started"),
					"between publish's started and done records only the two targets' writes: %v", w.writes)
				for _, own := range w.writes {
					require.NotRegexp(t, `^AppendStep (prepare|test|confirm|finish) started|^UpdateRotation|^UpsertDelivery verified`, own, "a write of its own")
				}
				w.mu.Unlock()
				// The journal still holds every step's start and end, in order.
				rots, err := b.store.ListRotations(b.ctx, store.ListRotationsParams{Credential: cr.Name, Limit: 1})
				require.NoError(t, err)
				require.Equal(t, everyStep, b.journal(t, rots[0].ID))
				require.False(t, rots[0].AppliedAt.IsZero(), "the rotation records when the password was set")
			}
			mu.Lock()
			defer mu.Unlock()
			require.Empty(t, missing)
			require.Equal(t, 2, sets, "one password change per rotation")
			require.Equal(t, 2, puts, "one write to the memory target per rotation")
		})
	}
}

// TestPublishFailureCarriesItsLastDelivery: publish's last record rides
// with its failed record as it does with its done record, so a target
// that refused the write is in the store, with its error, exactly when
// the step's failure is.
func TestPublishFailureCarriesItsLastDelivery(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{strategy: "single", roles: []string{pgtest.UniqueName(t, "app")}, memory: true})
	w := &syncWatch{Store: b.store}
	b.eng.Store = w
	b.mem.failPuts, b.mem.failErr = 1, errors.New("memory: 400 bad request")
	res, err := b.eng.Rotate(b.ctx, b.cred(), engine.Options{})
	require.Error(t, err)

	w.mu.Lock()
	writes := slices.Clone(w.writes)
	w.mu.Unlock()
	// The memory target reloads, but no reload runs after a failed
	// write: the last of the two writes is the step's last record.
	require.Equal(t, 1, countPrefixed(writes, "UpsertDelivery "), "one delivery on its own: %v", writes)
	require.Equal(t, 1, countPrefixed(writes, "AppendStep publish failed +"), "the other with the failed record: %v", writes)
	ds, err := b.store.ListDeliveries(b.ctx, store.ListDeliveriesParams{RotationID: res.RotationID})
	require.NoError(t, err)
	states := map[string]store.DeliveryState{}
	for _, d := range ds {
		states[d.Target] = d.State
		if d.Target == "mem" {
			require.Contains(t, d.Error, "400 bad request")
		}
	}
	require.Equal(t, map[string]store.DeliveryState{"env": store.DeliveryWritten, "mem": store.DeliveryFailed}, states)
	rots, err := b.store.ListRotations(b.ctx, store.ListRotationsParams{Credential: b.cred().Name, Active: true, Limit: 1})
	require.NoError(t, err)
	require.Len(t, rots, 1)
	require.Equal(t, engine.StepPublish, rots[0].Step)
	require.Contains(t, rots[0].Error, "400 bad request")

	// The resume writes only the target that failed.
	puts := b.mem.puts
	again := b.rotate(engine.Options{})
	require.Equal(t, store.StatusSucceeded, again.Status, again.Outcome)
	require.Equal(t, puts+1, b.mem.puts)
}

// countPrefixed counts the writes that start with prefix.
func countPrefixed(writes []string, prefix string) int {
	n := 0
	for _, w := range writes {
		if strings.HasPrefix(w, prefix) {
			n++
		}
	}
	return n
}

// racingStore lets another rotation of the credential start and end
// between the engine's unlocked reads and its StartRotation, as another
// process's could.
type racingStore struct {
	*syncWatch
	raced bool
}

func (s *racingStore) StartRotation(ctx context.Context, p store.StartRotationParams) (*store.Rotation, *store.Lease, error) {
	if !s.raced {
		s.raced = true
		other, err := s.Store.InsertRotation(ctx, store.InsertRotationParams{Credential: p.Rotation.Credential, Strategy: p.Rotation.Strategy, Trigger: "manual", FromVersionID: p.Rotation.FromVersionID, Now: p.Rotation.Now})
		if err != nil {
			return nil, nil, err
		}
		if _, err := s.Store.FinishRotation(ctx, store.FinishRotationParams{ID: other.ID, Status: store.StatusAbandoned, Now: p.Rotation.Now,
			Audit: store.AppendAuditParams{Event: "rotation.abandoned", Actor: "other"}}); err != nil {
			return nil, nil, err
		}
	}
	return s.syncWatch.StartRotation(ctx, p)
}

// TestStaleStartTakesTheLeaseFirst: when what the engine read without the
// lease changed before its StartRotation, the write is refused and the
// rotation starts the careful way — the lease, the reads again, the row —
// and succeeds.
func TestStaleStartTakesTheLeaseFirst(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{strategy: "single", roles: []string{pgtest.UniqueName(t, "app")}})
	w := &racingStore{syncWatch: &syncWatch{Store: b.store}}
	b.eng.Store = w
	res, err := b.eng.Rotate(b.ctx, b.cred(), engine.Options{})
	require.NoError(t, err)
	require.Equal(t, store.StatusSucceeded, res.Status, res.Outcome)
	require.Equal(t, []string{"StartRotation", "AcquireLease", "InsertRotation"}, w.writes[:3])
	rots, err := b.store.ListRotations(b.ctx, store.ListRotationsParams{Credential: b.cred().Name})
	require.NoError(t, err)
	require.Len(t, rots, 2, "the other rotation and this one")
	require.Equal(t, res.RotationID, rots[0].ID)
	require.Equal(t, store.StatusAbandoned, rots[1].Status)

	// With nothing in between, the next rotation takes its lease with its
	// row again.
	w.writes = nil
	res, err = b.eng.Rotate(b.ctx, b.cred(), engine.Options{})
	require.NoError(t, err)
	require.Equal(t, store.StatusSucceeded, res.Status, res.Outcome)
	require.Equal(t, "StartRotation", w.writes[0])
	require.NotContains(t, w.writes, "AcquireLease")
	require.NotContains(t, w.writes, "InsertRotation")
}

// snapshotCounter counts the provider's Snapshot calls.
type snapshotCounter struct {
	*postgres.Postgres
	calls atomic.Int32
}

func (p *snapshotCounter) Snapshot(ctx context.Context, req provider.SnapshotRequest) (provider.SnapshotResponse, error) {
	p.calls.Add(1)
	return p.Postgres.Snapshot(ctx, req)
}

// TestPrepareReadsMarkAndSnapshotAtOnce: with a superuser admin, the mark
// that the drift check reads brings the role's Snapshot with it, which
// the drift check and the single strategy's rollback then use: prepare
// asks for no Snapshot of its own, on the first rotation or the second.
func TestPrepareReadsMarkAndSnapshotAtOnce(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{strategy: "single", roles: []string{pgtest.UniqueName(t, "app")}})
	cr := b.cred()
	counted := &snapshotCounter{Postgres: cr.Provider.(*postgres.Postgres)}
	cr.Provider = counted
	w := &syncWatch{Store: b.store}
	b.eng.Store = w
	for range 2 {
		w.writes = nil
		res, err := b.eng.Rotate(b.ctx, cr, engine.Options{})
		require.NoError(t, err)
		require.Equal(t, store.StatusSucceeded, res.Status, res.Outcome)
		require.Contains(t, w.writes, "InsertVersion pending with rollback +prepare started", "the password to roll back to was stored")
	}
	require.Zero(t, counted.calls.Load())
}
