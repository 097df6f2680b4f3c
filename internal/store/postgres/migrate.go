package postgres

import (
	"context"
	"embed"
	"fmt"
	"hash/fnv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/rotorhq/rotor/internal/store"
)

//go:embed migrations/*.sql
var migrationFS embed.FS

// migrations returns the embedded migrations in order.
func migrations() ([]store.Migration, error) { return store.ReadMigrations(migrationFS, "migrations") }

// migrateLockKey is the advisory lock that serializes migrations of one
// schema: processes migrating other schemas of the database do not wait.
func migrateLockKey(schema string) int64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte("rotor migrate " + schema))
	return int64(h.Sum64())
}

// migrate applies, in one transaction holding a transaction advisory lock,
// every migration the schema lacks. DDL is transactional in PostgreSQL,
// so a failure leaves the schema as it was, and a second process opening
// at the same time waits for the lock and then finds nothing to do.
func migrate(ctx context.Context, pool *pgxpool.Pool, schema string) error {
	ms, err := migrations()
	if err != nil {
		return err
	}
	ident := pgx.Identifier{schema}.Sanitize()
	tx, err := pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, migrateLockKey(schema)); err != nil {
		return fmt.Errorf("migrate: take the migration lock: %w", err)
	}
	// Checked before CREATE SCHEMA IF NOT EXISTS, which needs CREATE on the
	// database even when the schema exists: a role given only its schema
	// must still be able to open the store.
	var exists bool
	if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)`, schema).Scan(&exists); err != nil {
		return fmt.Errorf("migrate: look for schema: %w", err)
	}
	if !exists {
		if _, err := tx.Exec(ctx, `CREATE SCHEMA `+ident); err != nil {
			return fmt.Errorf("migrate: create schema (the role needs CREATE on the database, or create the schema for it): %w", err)
		}
	}
	if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS `+ident+`.schema_migrations (
		version    integer PRIMARY KEY,
		name       text NOT NULL,
		applied_at timestamptz NOT NULL
	)`); err != nil {
		return fmt.Errorf("migrate: create schema_migrations: %w", err)
	}
	var current int
	if err := tx.QueryRow(ctx, `SELECT COALESCE(MAX(version), 0) FROM `+ident+`.schema_migrations`).Scan(&current); err != nil {
		return fmt.Errorf("migrate: read schema version: %w", err)
	}
	if current > len(ms) {
		return fmt.Errorf("schema %s has version %d but this rotor knows only up to %d; upgrade rotor (every process sharing this store must run a rotor at least as new as the newest one that opened it)",
			schema, current, len(ms))
	}
	if current == len(ms) {
		return nil
	}
	// Migration files use unqualified names.
	if _, err := tx.Exec(ctx, `SELECT set_config('search_path', $1, true)`, ident); err != nil {
		return fmt.Errorf("migrate: set search_path: %w", err)
	}
	for _, m := range ms[current:] {
		if _, err := tx.Exec(ctx, m.SQL); err != nil {
			return fmt.Errorf("migration %s: %w", m.Name, err)
		}
		// applied_at is bookkeeping for operators, so the wall clock is fine.
		if _, err := tx.Exec(ctx, `INSERT INTO `+ident+`.schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)`,
			m.Version, m.Name, time.Now()); err != nil {
			return fmt.Errorf("migration %s: record: %w", m.Name, err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("migrate: commit: %w", err)
	}
	return nil
}
