package serve

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/riverdriver/riversqlite"
	"github.com/riverqueue/river/rivermigrate"
	"github.com/riverqueue/river/rivertype"

	"github.com/rotorhq/rotor/internal/store"
	"github.com/rotorhq/rotor/internal/store/postgres"
	"github.com/rotorhq/rotor/internal/store/sqlite"
)

// queue is what the service uses of a River client. *river.Client[TTx]
// has these methods for every driver's transaction type, so the service
// holds one queue and one code path serves PostgreSQL and SQLite; only
// opening (driver, migrations) differs.
type queue interface {
	Start(ctx context.Context) error
	Stop(ctx context.Context) error
	StopAndCancel(ctx context.Context) error
	Insert(ctx context.Context, args river.JobArgs, opts *river.InsertOpts) (*rivertype.JobInsertResult, error)
	JobGet(ctx context.Context, id int64) (*rivertype.JobRow, error)
	JobList(ctx context.Context, params *river.JobListParams) (*river.JobListResult, error)
}

// backing is one store's River side: how to build the client, migrate
// River's tables and check them.
type backing struct {
	// name is the driver ("postgres", "sqlite") for logs and errors.
	name string
	// schema is where River's tables go: rotor's own schema on
	// PostgreSQL, the main database of the state file on SQLite.
	schema string
	// open builds the client over the store's own connections.
	open func(cfg *river.Config) (queue, error)
	// migrate brings River's tables up to date; concurrent replicas are
	// serialized (an advisory lock on PostgreSQL, SQLite's write lock).
	migrate func(ctx context.Context) error
	// validate reports River migrations not yet applied.
	validate func(ctx context.Context) error
	// rescue makes running jobs retryable, River's own rescue operation
	// (see rescue.go for when rotor uses it).
	rescue func(ctx context.Context, p *riverdriver.JobRescueManyParams) error
}

// unwrapper is a store that wraps another (the CLI's --debug tracing).
type unwrapper interface{ Unwrap() store.Store }

// backingFor finds the River driver for st: River's tables live in the
// store itself, so a job and the journal it drives share one database.
func backingFor(st store.Store) (*backing, error) {
	for {
		u, ok := st.(unwrapper)
		if !ok {
			break
		}
		st = u.Unwrap()
	}
	switch s := st.(type) {
	case *postgres.Store:
		return pgBacking(s), nil
	case *sqlite.Store:
		return sqliteBacking(s), nil
	}
	return nil, fmt.Errorf("rotor serve runs on the SQLite or PostgreSQL store, not %T", st)
}

// migrationLock is the key of the advisory lock that serializes River's
// migrations across replicas starting at once (rotor's own migrations
// take another).
const migrationLock = 0x726f746f72 // "rotor"

func pgBacking(s *postgres.Store) *backing {
	pool := s.Pool()
	driver := riverpgxv5.New(pool)
	b := &backing{name: "postgres", schema: s.SchemaName()}
	b.open = func(cfg *river.Config) (queue, error) {
		cfg.Schema = b.schema
		return river.NewClient(driver, cfg)
	}
	b.migrate = func(ctx context.Context) error {
		m, err := rivermigrate.New(driver, &rivermigrate.Config{Schema: b.schema})
		if err != nil {
			return err
		}
		// Not one transaction: a migration that adds an enum value must
		// commit before the next uses it. A session lock on a connection of
		// its own keeps the replicas from migrating at once.
		conn, err := pool.Acquire(ctx)
		if err != nil {
			return err
		}
		defer conn.Release()
		if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock($1)`, migrationLock); err != nil {
			return fmt.Errorf("lock River's migrations: %w", err)
		}
		_, err = m.Migrate(ctx, rivermigrate.DirectionUp, nil)
		if _, uerr := conn.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1)`, migrationLock); uerr != nil {
			// A lock left behind would hold the next start: drop the
			// connection, which ends the session and its lock.
			if cerr := conn.Conn().Close(context.WithoutCancel(ctx)); cerr != nil {
				uerr = errors.Join(uerr, cerr)
			}
			err = errors.Join(err, fmt.Errorf("unlock River's migrations: %w", uerr))
		}
		return err
	}
	b.validate = validator(driver, b.schema)
	b.rescue = rescuer(driver, b.schema)
	return b
}

func sqliteBacking(s *sqlite.Store) *backing {
	db := s.DB()
	driver := riversqlite.New(db)
	b := &backing{name: "sqlite"}
	b.open = func(cfg *river.Config) (queue, error) { return river.NewClient(driver, cfg) }
	b.migrate = func(ctx context.Context) error {
		m, err := rivermigrate.New(driver, nil)
		if err != nil {
			return err
		}
		// The state file's connections begin IMMEDIATE: the transaction
		// holds the write lock from its start, so two processes never
		// migrate at once.
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		defer func() { _ = tx.Rollback() }()
		if _, err := m.MigrateTx(ctx, tx, rivermigrate.DirectionUp, nil); err != nil {
			return err
		}
		return tx.Commit()
	}
	b.validate = validator[*sql.Tx](driver, "")
	b.rescue = rescuer[*sql.Tx](driver, "")
	return b
}

func validator[TTx any](driver riverdriver.Driver[TTx], schema string) func(context.Context) error {
	return func(ctx context.Context) error {
		m, err := rivermigrate.New(driver, &rivermigrate.Config{Schema: schema})
		if err != nil {
			return err
		}
		res, err := m.Validate(ctx, nil)
		if err != nil {
			return err
		}
		if !res.OK {
			return errors.New("River's tables are not up to date: " + strings.Join(res.Messages, "; ") + "; restart rotor serve to migrate them")
		}
		return nil
	}
}

func rescuer[TTx any](driver riverdriver.Driver[TTx], schema string) func(context.Context, *riverdriver.JobRescueManyParams) error {
	return func(ctx context.Context, p *riverdriver.JobRescueManyParams) error {
		p.Schema = schema
		_, err := driver.GetExecutor().JobRescueMany(ctx, p)
		return err
	}
}
