package storecopy_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/rotorhq/rotor/internal/pgtest"
	"github.com/rotorhq/rotor/internal/store"
	"github.com/rotorhq/rotor/internal/store/postgres"
	"github.com/rotorhq/rotor/internal/store/sqlite"
	"github.com/rotorhq/rotor/internal/store/storecopy"
	"github.com/rotorhq/rotor/internal/store/storetest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

func newSQLite(t *testing.T) store.Store {
	t.Helper()
	s, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "state.db"))
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	return s
}

func newPostgres(t *testing.T) store.Store {
	t.Helper()
	_, url := pgtest.NewDatabase(t)
	s, err := postgres.Open(t.Context(), postgres.Options{URL: url})
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	return s
}

// later is after every lease Fill takes has expired.
var later = time.Date(2040, 1, 1, 0, 0, 0, 0, time.UTC)

// TestCopy moves a filled store into an empty one of each driver: the
// copy exports exactly what the source does, store id included, and every
// sealed version was handed to CheckSealed with its bytes unchanged.
func TestCopy(t *testing.T) {
	t.Parallel()
	for name, newTarget := range map[string]func(*testing.T) store.Store{"sqlite": newSQLite, "postgres": newPostgres} {
		t.Run("sqlite to "+name, func(t *testing.T) {
			t.Parallel()
			from, to := newSQLite(t), newTarget(t)
			storetest.Fill(t, from)
			want, err := from.Export(t.Context(), store.ExportParams{})
			require.NoError(t, err)
			sealed := map[int64][]byte{}
			for _, v := range want.Versions {
				if v.Sealed != nil {
					sealed[v.ID] = v.Sealed
				}
			}
			require.NotEmpty(t, sealed)

			opened := map[int64][]byte{}
			rep, err := storecopy.Copy(t.Context(), from, to, storecopy.Options{Now: later, CheckSealed: func(v *store.Version) error {
				opened[v.ID] = v.Sealed
				return nil
			}})
			require.NoError(t, err)
			require.Equal(t, sealed, opened, "every sealed version of the copy is checked, byte-identical to the source's")
			require.Equal(t, len(sealed), rep.Sealed)
			require.Equal(t, want.ID, rep.ID)

			got, err := to.Export(t.Context(), store.ExportParams{})
			require.NoError(t, err)
			require.Equal(t, want, got)
			in, err := to.Info(t.Context())
			require.NoError(t, err)
			require.Equal(t, want.ID, in.ID, "role marks name the store id, so it moves along")

			sums, err := storecopy.Digest(want)
			require.NoError(t, err)
			require.Equal(t, sums, rep.Tables)
			require.Len(t, rep.Tables, 6)
			for _, tb := range rep.Tables {
				require.Positive(t, tb.Rows, tb.Name)
				require.Len(t, tb.SHA256, 64, tb.Name)
			}
		})
	}
}

func TestDigestSeesEveryField(t *testing.T) {
	t.Parallel()
	s := newSQLite(t)
	storetest.Fill(t, s)
	snap, err := s.Export(t.Context(), store.ExportParams{})
	require.NoError(t, err)
	base, err := storecopy.Digest(snap)
	require.NoError(t, err)

	changes := map[string]func(){
		"a sealed byte": func() {
			for _, v := range snap.Versions {
				if v.Sealed != nil {
					v.Sealed[1] ^= 1
					return
				}
			}
			t.Fatal("no sealed version")
		},
		"a nanosecond":        func() { snap.Steps[0].At = snap.Steps[0].At.Add(1) },
		"a lease token":       func() { snap.Leases[0].Token++ },
		"a delivery's target": func() { snap.Deliveries[0].Target += "x" },
	}
	for what, change := range changes {
		fresh, err := s.Export(t.Context(), store.ExportParams{})
		require.NoError(t, err)
		snap = fresh
		change()
		sums, err := storecopy.Digest(snap)
		require.NoError(t, err)
		require.NotEqual(t, base, sums, "changing %s must change a digest", what)
	}
}

func TestCopyRefusesHeldLease(t *testing.T) {
	t.Parallel()
	from, to := newSQLite(t), newSQLite(t)
	storetest.Fill(t, from)
	// Fill's lease on app-db runs from 01:07 to 02:07 UTC; Other's
	// ended at 01:20.
	_, err := storecopy.Copy(t.Context(), from, to, storecopy.Options{Now: time.Date(2031, 4, 5, 1, 30, 0, 0, time.UTC)})
	require.ErrorIs(t, err, storecopy.ErrBusy)
	require.ErrorContains(t, err, "lease app-db is held by holder-a")
	snap, err := to.Export(t.Context(), store.ExportParams{})
	require.NoError(t, err)
	require.Empty(t, snap.Versions, "nothing was written")
}

func TestCopyRefusesNonEmptyTarget(t *testing.T) {
	t.Parallel()
	from, to := newSQLite(t), newPostgres(t)
	storetest.Fill(t, from)
	_, err := to.AppendAudit(t.Context(), store.AppendAuditParams{Event: "x", Now: later})
	require.NoError(t, err)
	_, err = storecopy.Copy(t.Context(), from, to, storecopy.Options{Now: later})
	require.ErrorIs(t, err, store.ErrNotEmpty)
}

func TestCopyFailsWhenSealedDoesNotOpen(t *testing.T) {
	t.Parallel()
	from, to := newSQLite(t), newSQLite(t)
	storetest.Fill(t, from)
	wrongKey := errors.New("wrong key")
	_, err := storecopy.Copy(t.Context(), from, to, storecopy.Options{Now: later, CheckSealed: func(*store.Version) error { return wrongKey }})
	require.ErrorIs(t, err, wrongKey)
	require.ErrorContains(t, err, "empty it", "the message says the target now holds rows")
}

// writesAfterExport is a source that another rotor writes to right after
// the copy read it.
type writesAfterExport struct {
	store.Store
	wrote bool
}

func (w *writesAfterExport) Export(ctx context.Context, p store.ExportParams) (*store.Snapshot, error) {
	snap, err := w.Store.Export(ctx, p)
	if err == nil && !w.wrote {
		w.wrote = true
		_, err = w.AppendAudit(ctx, store.AppendAuditParams{Event: "rotation.started", Now: later})
	}
	return snap, err
}

func TestCopyNoticesSourceChange(t *testing.T) {
	t.Parallel()
	src, to := newSQLite(t), newSQLite(t)
	storetest.Fill(t, src)
	_, err := storecopy.Copy(t.Context(), &writesAfterExport{Store: src}, to, storecopy.Options{Now: later})
	require.ErrorIs(t, err, storecopy.ErrMismatch)
	require.ErrorContains(t, err, "changed while it was copied")
	require.ErrorContains(t, err, "table audit")
}

// tamperingTarget returns a copy that differs from what was imported, as
// a driver that mangled a value would.
type tamperingTarget struct{ store.Store }

func (s tamperingTarget) Export(ctx context.Context, p store.ExportParams) (*store.Snapshot, error) {
	snap, err := s.Store.Export(ctx, p)
	if err == nil && len(snap.Versions) > 1 {
		snap.Versions[1].Fingerprint += "!"
	}
	return snap, err
}

func TestCopyNoticesMangledRow(t *testing.T) {
	t.Parallel()
	from, to := newSQLite(t), newSQLite(t)
	storetest.Fill(t, from)
	_, err := storecopy.Copy(t.Context(), from, tamperingTarget{to}, storecopy.Options{Now: later})
	require.ErrorIs(t, err, storecopy.ErrMismatch)
	require.ErrorContains(t, err, "table versions: row 2 of 5 differs")
}
