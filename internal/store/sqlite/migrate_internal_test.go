package sqlite

import (
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/rotorhq/rotor/internal/store"
)

// writeSchema creates a state file with the first n migrations and the
// statements after them, as a rotor that knew only those would have left it.
func writeSchema(t *testing.T, n int, stmts ...string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "state.db")
	db, err := sql.Open("sqlite", path)
	require.NoError(t, err)
	ms, err := migrations()
	require.NoError(t, err)
	all := []string{`CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL) STRICT`}
	for _, m := range ms[:n] {
		all = append(all, m.SQL, fmt.Sprintf(`INSERT INTO schema_migrations VALUES (%d, '%s', 0)`, m.Version, m.Name))
	}
	for _, stmt := range append(all, stmts...) {
		_, err := db.ExecContext(t.Context(), stmt)
		require.NoError(t, err, stmt)
	}
	require.NoError(t, db.Close())
	require.NoError(t, os.Chmod(path, 0o600))
	return path
}

// TestMigratesToPlainRowids: a state file of schema 4 (AUTOINCREMENT ids)
// keeps every row and id through the rebuild, numbers on from the largest
// id afterwards, has no AUTOINCREMENT left, and still enforces foreign keys
// on every connection of the pool.
func TestMigratesToPlainRowids(t *testing.T) {
	t.Parallel()
	path := writeSchema(t, 4,
		`INSERT INTO leases (name, holder, expires_at, token) VALUES ('credential/app-db', 'old', 4102444800000000000, 7)`,
		`INSERT INTO rotations (id, credential, status, strategy, triggered_by, revoke, step, started_at, updated_at, finished_at, applied_at, outcome)
			VALUES (40, 'app-db', 'succeeded', 'single', 'manual', 0, 'finish', 1, 2, 3, 2, 'app-db now uses role app')`,
		`INSERT INTO versions (id, credential, seq, role, stage, rotation_id, sealed, fingerprint, created_at, activated_at)
			VALUES (90, 'app-db', 3, 'app', 'current', 40, x'0102', 'fp-3', 1, 3)`,
		`UPDATE rotations SET to_version_id = 90 WHERE id = 40`,
		`INSERT INTO steps (id, rotation_id, name, status, detail, at) VALUES (500, 40, 'prepare', 'started', '', 1), (501, 40, 'prepare', 'done', 'role app', 2)`,
		`INSERT INTO deliveries (rotation_id, credential, target, state, fingerprint, attempts, error, detail, updated_at)
			VALUES (40, 'app-db', 'env', 'verified', 'fp', 1, '', '', 3)`,
		`INSERT INTO audit (id, at, credential, rotation_id, event, actor, detail) VALUES (800, 3, 'app-db', 40, 'rotation.succeeded', 'test', '{}')`,
	)
	s, err := Open(t.Context(), path)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, s.Close()) })
	ctx := t.Context()

	var tables []string
	rows, err := s.db.QueryContext(ctx, `SELECT name FROM sqlite_schema WHERE type = 'table' AND sql LIKE '%AUTOINCREMENT%'`)
	require.NoError(t, err)
	for rows.Next() {
		var name string
		require.NoError(t, rows.Scan(&name))
		tables = append(tables, name)
	}
	require.NoError(t, rows.Err())
	require.Empty(t, tables, "tables still declared AUTOINCREMENT")
	var leftovers int
	require.NoError(t, s.db.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_schema WHERE name LIKE '%_new'`).Scan(&leftovers))
	require.Zero(t, leftovers)

	// Every row and id came through.
	rots, err := s.ListRotations(ctx, store.ListRotationsParams{Credential: "app-db"})
	require.NoError(t, err)
	require.Len(t, rots, 1)
	require.Equal(t, int64(40), rots[0].ID)
	require.Equal(t, int64(90), rots[0].ToVersionID)
	require.Equal(t, "app-db now uses role app", rots[0].Outcome)
	require.Equal(t, time.Unix(0, 2).UTC(), rots[0].AppliedAt.UTC())
	v, err := s.GetVersion(ctx, store.GetVersionParams{ID: 90})
	require.NoError(t, err)
	require.Equal(t, []byte{1, 2}, v.Sealed)
	require.Equal(t, store.StageCurrent, v.Stage)
	steps, err := s.ListSteps(ctx, store.ListStepsParams{RotationID: 40})
	require.NoError(t, err)
	require.Len(t, steps, 2)
	require.Equal(t, int64(501), steps[1].ID)
	require.Equal(t, "role app", steps[1].Detail)
	ds, err := s.ListDeliveries(ctx, store.ListDeliveriesParams{RotationID: 40})
	require.NoError(t, err)
	require.Len(t, ds, 1)
	events, err := s.ListAudit(ctx, store.ListAuditParams{Credential: "app-db"})
	require.NoError(t, err)
	require.Len(t, events, 1)
	require.Equal(t, int64(800), events[0].ID)
	l, err := s.GetLease(ctx, store.GetLeaseParams{Name: "credential/app-db"})
	require.NoError(t, err)
	require.Equal(t, int64(7), l.Token)

	// New rows number on from the largest id.
	now := time.Unix(10, 0)
	r, err := s.InsertRotation(ctx, store.InsertRotationParams{Credential: "app-db", Strategy: "single", Trigger: "manual", FromVersionID: 90, Now: now,
		Audit: &store.AppendAuditParams{Event: "rotation.started", Actor: "test"}})
	require.NoError(t, err)
	require.Equal(t, int64(41), r.ID)
	st, err := s.AppendStep(ctx, store.AppendStepParams{RotationID: r.ID, Name: "prepare", Status: store.StepStarted, Now: now})
	require.NoError(t, err)
	require.Equal(t, int64(502), st.ID)
	nv, err := s.InsertVersion(ctx, store.InsertVersionParams{Credential: "app-db", Role: "app", Stage: store.StagePending, RotationID: r.ID, Sealed: []byte{3}, Fingerprint: "fp-4", Now: now})
	require.NoError(t, err)
	require.Equal(t, int64(91), nv.ID)
	events, err = s.ListAudit(ctx, store.ListAuditParams{Credential: "app-db"})
	require.NoError(t, err)
	require.Len(t, events, 2)
	require.ElementsMatch(t, []int64{800, 801}, []int64{events[0].ID, events[1].ID})

	// The migration's own connection, with foreign keys off, was closed:
	// every connection the pool hands out enforces them.
	for range 3 {
		conn, err := s.db.Conn(ctx)
		require.NoError(t, err)
		defer func() { require.NoError(t, conn.Close()) }()
		var on int
		require.NoError(t, conn.QueryRowContext(ctx, `PRAGMA foreign_keys`).Scan(&on))
		require.Equal(t, 1, on)
	}
	_, err = s.db.ExecContext(ctx, `INSERT INTO steps (rotation_id, name, status, detail, at) VALUES (9999, 'x', 'started', '', 0)`)
	require.Error(t, err, "a step of a rotation that does not exist")
}

// TestRebuildRefusesBrokenForeignKeys: a file whose rows point at nothing
// (edited by hand while foreign keys were off) fails the rebuild, which
// then changes nothing and names the row.
func TestRebuildRefusesBrokenForeignKeys(t *testing.T) {
	t.Parallel()
	path := writeSchema(t, 4,
		`PRAGMA foreign_keys = OFF`,
		`INSERT INTO steps (id, rotation_id, name, status, detail, at) VALUES (5, 77, 'prepare', 'started', '', 1)`,
	)
	_, err := Open(t.Context(), path)
	require.ErrorContains(t, err, "0005_plain_rowids.sql")
	require.ErrorContains(t, err, "row 5 of steps points at a missing row of rotations")

	db, err := sql.Open("sqlite", path)
	require.NoError(t, err)
	defer func() { require.NoError(t, db.Close()) }()
	var version int
	require.NoError(t, db.QueryRowContext(t.Context(), `SELECT max(version) FROM schema_migrations`).Scan(&version))
	require.Equal(t, 4, version, "the failed migration is not recorded")
	var autoinc int
	require.NoError(t, db.QueryRowContext(t.Context(), `SELECT count(*) FROM sqlite_schema WHERE sql LIKE '%AUTOINCREMENT%'`).Scan(&autoinc))
	require.Equal(t, 4, autoinc, "the tables are as they were")
}

// TestBaselineIsTheMigrations: a new file, which starts from the baseline,
// has the schema that applying the migrations one by one leaves: the same
// tables (strict, with rowids), columns with their types, defaults and
// keys, foreign keys, indexes with their columns and conditions, the same
// recorded migrations and a store id. Only SQLite's own sqlite_sequence,
// left behind by the AUTOINCREMENT tables of 0001, is not in the baseline.
func TestBaselineIsTheMigrations(t *testing.T) {
	t.Parallel()
	ms, err := migrations()
	require.NoError(t, err)
	require.GreaterOrEqual(t, len(ms), baselineVersion)

	stepwise := writeSchema(t, baselineVersion)
	fresh := filepath.Join(t.TempDir(), "state.db")
	s, err := Open(t.Context(), fresh)
	require.NoError(t, err)
	require.NoError(t, s.Close())
	// The rest of the migrations apply to both alike; a later one that
	// changes what the baseline made is then compared too.
	s, err = Open(t.Context(), stepwise)
	require.NoError(t, err)
	require.NoError(t, s.Close())

	want, got := describeSchema(t, stepwise), describeSchema(t, fresh)
	require.NotEmpty(t, got)
	require.Equal(t, want, got)

	db, err := sql.Open("sqlite", fresh)
	require.NoError(t, err)
	defer func() { require.NoError(t, db.Close()) }()
	var names []string
	rows, err := db.QueryContext(t.Context(), `SELECT version, name FROM schema_migrations ORDER BY version`)
	require.NoError(t, err)
	for rows.Next() {
		var v int
		var name string
		require.NoError(t, rows.Scan(&v, &name))
		require.Equal(t, len(names)+1, v)
		names = append(names, name)
	}
	require.NoError(t, rows.Err())
	var wantNames []string
	for _, m := range ms {
		wantNames = append(wantNames, m.Name)
	}
	require.Equal(t, wantNames, names, "every migration is recorded, as if applied")
	var id string
	require.NoError(t, db.QueryRowContext(t.Context(), `SELECT value FROM store_meta WHERE key = 'id'`).Scan(&id))
	require.Regexp(t, `^[0-9a-f]{32}$`, id)
}

// describeSchema lists what a state file's schema is made of, one line per
// fact, in a stable order.
func describeSchema(t *testing.T, path string) []string {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	require.NoError(t, err)
	defer func() { require.NoError(t, db.Close()) }()
	ctx := t.Context()
	query := func(q string, args ...any) [][]any {
		rows, err := db.QueryContext(ctx, q, args...)
		require.NoError(t, err, q)
		defer func() { require.NoError(t, rows.Close()) }()
		cols, err := rows.Columns()
		require.NoError(t, err)
		var out [][]any
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			require.NoError(t, rows.Scan(ptrs...))
			out = append(out, vals)
		}
		require.NoError(t, rows.Err())
		return out
	}
	var facts []string
	note := func(prefix string, rows [][]any) {
		for _, r := range rows {
			facts = append(facts, fmt.Sprint(prefix, r))
		}
	}
	tables := query(`SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name`)
	note("table ", tables)
	for _, tr := range tables {
		name := tr[0].(string)
		note(name+" list ", query(`SELECT type, ncol, wr, strict FROM pragma_table_list(?)`, name))
		note(name+" column ", query(`SELECT cid, name, type, "notnull", dflt_value, pk, hidden FROM pragma_table_xinfo(?) ORDER BY cid`, name))
		note(name+" fk ", query(`SELECT id, seq, "table", "from", "to", on_update, on_delete, match FROM pragma_foreign_key_list(?) ORDER BY id, seq`, name))
		indexes := query(`SELECT name, "unique", origin, partial FROM pragma_index_list(?) ORDER BY name`, name)
		for _, ir := range indexes {
			idx := ir[0].(string)
			if strings.HasPrefix(idx, "sqlite_autoindex_") {
				ir = append([]any{"autoindex"}, ir[1:]...) // numbered in creation order
			}
			facts = append(facts, fmt.Sprint(name+" index ", ir))
			for _, c := range query(`SELECT seqno, cid, name, "desc", coll, "key" FROM pragma_index_xinfo(?) ORDER BY seqno`, idx) {
				facts = append(facts, fmt.Sprint(name+" index column ", ir[0], c))
			}
		}
	}
	// A partial index's condition is only in its SQL; the table's is
	// rewritten by a rename, and pragmas describe it instead.
	note("index sql ", query(`SELECT name, sql FROM sqlite_schema WHERE type = 'index' AND sql IS NOT NULL ORDER BY name`))
	note("other ", query(`SELECT type, name FROM sqlite_schema WHERE type NOT IN ('table', 'index') ORDER BY name`))
	return facts
}
