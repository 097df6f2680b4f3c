package postgres

import "github.com/jackc/pgx/v5/pgxpool"

// Pool is the store's connection pool, for `rotor serve`: River's tables
// live in the same database and schema (SchemaName), so one URL, one pool
// and one set of credentials serve both.
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// SchemaName is the schema that holds rotor's tables, unquoted.
func (s *Store) SchemaName() string { return s.schemaName }
