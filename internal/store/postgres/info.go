package postgres

import (
	"context"
	"fmt"

	"github.com/rotorhq/rotor/internal/store"
)

// Info implements store.Store.
func (s *Store) Info(ctx context.Context) (*store.Info, error) {
	cfg := s.pool.Config().ConnConfig
	in := &store.Info{Driver: "postgres", Location: fmt.Sprintf("%s:%d/%s schema %s", cfg.Host, cfg.Port, cfg.Database, s.schema)}
	if err := s.pool.QueryRow(ctx, s.sql(`SELECT value FROM {schema}.store_meta WHERE key = 'id'`)).Scan(&in.ID); err != nil {
		return nil, fmt.Errorf("read the store's id: %w", mapErr(err))
	}
	if err := s.pool.QueryRow(ctx, s.sql(`SELECT COALESCE(MAX(version), 0) FROM {schema}.schema_migrations`)).Scan(&in.SchemaVersion); err != nil {
		return nil, fmt.Errorf("read the schema version: %w", mapErr(err))
	}
	return in, nil
}
