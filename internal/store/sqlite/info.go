package sqlite

import (
	"context"
	"fmt"

	"github.com/rotorhq/rotor/internal/store"
)

// Info implements store.Store.
func (s *Store) Info(ctx context.Context) (*store.Info, error) {
	in := &store.Info{Driver: "sqlite", Location: s.path}
	if err := s.db.QueryRowContext(ctx, `SELECT value FROM store_meta WHERE key = 'id'`).Scan(&in.ID); err != nil {
		return nil, fmt.Errorf("read the store's id: %w", mapErr(err))
	}
	v, err := schemaVersion(ctx, s.db)
	if err != nil {
		return nil, err
	}
	in.SchemaVersion = v
	return in, nil
}
