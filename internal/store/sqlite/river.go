package sqlite

import "database/sql"

// DB is the state file's handle, for `rotor serve`: River's tables live in
// the same file, so a job and the journal share its durability and its
// locking (busy timeout, immediate transactions).
func (s *Store) DB() *sql.DB { return s.db }
