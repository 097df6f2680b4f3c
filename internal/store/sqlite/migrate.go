package sqlite

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"embed"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/rotorhq/rotor/internal/store"
)

//go:embed migrations/*.sql
var migrationFS embed.FS

// baseline is the schema at baselineVersion, for a database that has none
// of it yet.
//
//go:embed baseline.sql
var baseline string

// baselineVersion is the last migration baseline includes.
const baselineVersion = 5

// migrations returns the embedded migrations in order.
func migrations() ([]store.Migration, error) { return store.ReadMigrations(migrationFS, "migrations") }

// migrate applies the migrations this binary knows and the file lacks, each
// in its own BEGIN IMMEDIATE transaction that re-checks the version, so two
// processes opening a new file at once apply each migration exactly once.
// A new file gets the baseline, the schema of the first baselineVersion
// migrations, in one such transaction instead.
func migrate(ctx context.Context, db *sql.DB) error {
	ms, err := migrations()
	if err != nil {
		return err
	}
	if _, err := db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    INTEGER PRIMARY KEY,
		name       TEXT NOT NULL,
		applied_at INTEGER NOT NULL
	) STRICT`); err != nil {
		return fmt.Errorf("create schema_migrations: %w", err)
	}
	current, err := schemaVersion(ctx, db)
	if err != nil {
		return err
	}
	if current > len(ms) {
		return newerSchemaError(current, len(ms))
	}
	if current == 0 {
		// A new database: the baseline in one transaction instead of the
		// migrations it includes.
		if err := applyBaseline(ctx, db, ms[:baselineVersion], len(ms)); err != nil {
			return err
		}
		current = baselineVersion
	}
	for _, m := range ms[current:] {
		if err := applyMigration(ctx, db, m, len(ms)); err != nil {
			return err
		}
	}
	return nil
}

// rebuildsTables marks a migration that rebuilds tables, SQLite's way of
// changing a column's definition: create the new table, copy the rows,
// drop the old one, rename. Dropping a table that others reference needs
// foreign keys off, which SQLite changes only outside a transaction, so
// such a migration runs on a connection of its own with them off, and
// commits only if foreign_key_check finds nothing.
const rebuildsTables = "-- rotor: rebuilds tables\n"

func applyMigration(ctx context.Context, db *sql.DB, m store.Migration, known int) (err error) {
	conn, err := db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("migration %s: %w", m.Name, err)
	}
	rebuild := strings.HasPrefix(m.SQL, rebuildsTables)
	defer func() {
		if !rebuild {
			err = errors.Join(err, conn.Close())
			return
		}
		// Never hand the pool a connection whose foreign keys may be off:
		// database/sql closes, instead of keeping, one whose Raw returns
		// ErrBadConn.
		if rerr := conn.Raw(func(any) error { return driver.ErrBadConn }); !errors.Is(rerr, driver.ErrBadConn) {
			err = errors.Join(err, rerr)
		}
	}()
	if rebuild {
		if _, err := conn.ExecContext(ctx, `PRAGMA foreign_keys = OFF`); err != nil {
			return fmt.Errorf("migration %s: turn foreign keys off: %w", m.Name, err)
		}
	}
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("migration %s: %w", m.Name, err)
	}
	defer func() { _ = tx.Rollback() }()

	// Another process may have migrated since the unlocked read in migrate.
	current, err := lockedVersion(ctx, tx, known)
	if err != nil {
		return err
	}
	if current >= m.Version {
		return nil
	}
	if _, err := tx.ExecContext(ctx, m.SQL); err != nil {
		return fmt.Errorf("migration %s: %w", m.Name, err)
	}
	if rebuild {
		if err := foreignKeysHold(ctx, tx); err != nil {
			return fmt.Errorf("migration %s: %w", m.Name, err)
		}
	}
	// applied_at is bookkeeping for operators, not state the engine reads,
	// so the wall clock is fine here.
	if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`,
		m.Version, m.Name, time.Now().UnixNano()); err != nil {
		return fmt.Errorf("migration %s: record: %w", m.Name, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("migration %s: commit: %w", m.Name, err)
	}
	return nil
}

// applyBaseline creates the schema of the migrations in ms at once, and
// records each of them as applied. Like applyMigration it re-checks the
// version inside its transaction: another process may have started the
// same new file.
func applyBaseline(ctx context.Context, db *sql.DB, ms []store.Migration, known int) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("create the schema: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	current, err := lockedVersion(ctx, tx, known)
	if err != nil {
		return err
	}
	if current > 0 {
		return nil // the migrations that are left apply one by one
	}
	if _, err := tx.ExecContext(ctx, baseline); err != nil {
		return fmt.Errorf("create the schema: %w", err)
	}
	now := time.Now().UnixNano()
	for _, m := range ms {
		if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`,
			m.Version, m.Name, now); err != nil {
			return fmt.Errorf("create the schema: record %s: %w", m.Name, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("create the schema: commit: %w", err)
	}
	return nil
}

// foreignKeysHold fails, naming the first, if any row's foreign key points
// at nothing.
func foreignKeysHold(ctx context.Context, tx *sql.Tx) error {
	rows, err := tx.QueryContext(ctx, `PRAGMA foreign_key_check`)
	if err != nil {
		return fmt.Errorf("check foreign keys: %w", err)
	}
	defer func() { _ = rows.Close() }()
	if rows.Next() {
		var (
			table, parent string
			rowid         sql.NullInt64
			fk            int64
		)
		if err := rows.Scan(&table, &rowid, &parent, &fk); err != nil {
			return fmt.Errorf("check foreign keys: %w", err)
		}
		return fmt.Errorf("row %d of %s points at a missing row of %s", rowid.Int64, table, parent)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("check foreign keys: %w", err)
	}
	return nil
}

func schemaVersion(ctx context.Context, q querier) (int, error) {
	var v int
	if err := q.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&v); err != nil {
		return 0, fmt.Errorf("read schema version: %w", err)
	}
	return v, nil
}

// lockedVersion is the schema version read inside a migration's
// transaction, refused if it is newer than the known migrations.
func lockedVersion(ctx context.Context, tx *sql.Tx, known int) (int, error) {
	current, err := schemaVersion(ctx, tx)
	if err != nil {
		return 0, err
	}
	if current > known {
		return 0, newerSchemaError(current, known)
	}
	return current, nil
}

func newerSchemaError(current, known int) error {
	return fmt.Errorf("state file has schema version %d but this rotor knows only up to %d; upgrade rotor", current, known)
}
