// Package postgres is the `postgres` database provider: it changes role
// passwords and watches sessions with SQL over an admin connection, on any
// PostgreSQL (self-hosted, RDS, Neon in SQL mode, …).
//
// Passwords reach the server only as SCRAM-SHA-256 verifiers computed by the
// caller, inside a transaction that, where the admin may, switches off
// statement logging so that not even the verifier lands in the server log.
package postgres

import (
	"context"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/rotorhq/rotor/internal/provider"
	"github.com/rotorhq/rotor/internal/secret"
)

// Options is the provider's config block.
//
//	provider:
//	  type: postgres
//	  admin_url: ${ADMIN_DATABASE_URL}
//	  connect_timeout: 10s
//	  statement_timeout: 30s
type Options struct {
	// AdminURL connects as a role that may ALTER ROLE the managed roles
	// (a superuser, or a role with CREATEROLE). Required.
	AdminURL string `yaml:"admin_url"`
	// ConnectTimeout bounds each connection attempt (default 10s, or the
	// URL's connect_timeout).
	ConnectTimeout string `yaml:"connect_timeout"`
	// StatementTimeout bounds each statement on the server (default: the
	// server's).
	StatementTimeout string `yaml:"statement_timeout"`
	// Hints word the advice in errors for a caller that builds the admin
	// connection itself (the neon provider), whose users never wrote an
	// admin_url. Not part of the config.
	Hints Hints `yaml:"-"`
}

// Hints are the pieces of advice that name the config; the zero value of
// each means the postgres provider's own wording.
type Hints struct {
	// AdminLogin follows a refused admin login.
	AdminLogin string
	// AdminReach follows an admin connection that could not be made.
	AdminReach string
	// AdminPrivilege follows a permission the admin role lacks.
	AdminPrivilege string
	// MissingRole follows "role … does not exist".
	MissingRole string
	// AdminTLS follows a server certificate that did not verify.
	AdminTLS string
}

func (h Hints) withDefaults() Hints {
	return Hints{
		AdminLogin:     orDefault(h.AdminLogin, "check the user and password in admin_url"),
		AdminReach:     orDefault(h.AdminReach, "check admin_url's host and port and that the server is up"),
		AdminPrivilege: orDefault(h.AdminPrivilege, "connect admin_url as a superuser or a role with CREATEROLE (and pg_signal_backend to end sessions)"),
		MissingRole:    orDefault(h.MissingRole, "create it (rotor setup-roles) or fix the role name"),
		AdminTLS:       orDefault(h.AdminTLS, "the server's certificate did not verify against admin_url's sslrootcert (or the system's trusted roots); point sslrootcert at the CA that signed it, or fix the host name"),
	}
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

const (
	defaultConnectTimeout = 10 * time.Second
	// A rotation needs one connection at a time; the spare ones let
	// Sessions polls and Terminate run beside it.
	maxConns        = 4
	applicationName = "rotor"
	// pgxDefaultCacheCapacity is what pgx.ParseConfig sets both caches to
	// when the URL does not; adminStatementCache is room for every
	// statement the provider prepares, twice over.
	pgxDefaultCacheCapacity = 512
	adminStatementCache     = 64
)

// Postgres is the provider. Build it with New (from config) or Open.
type Postgres struct {
	conns *conns
	// adminPassword is scrubbed from every error, in case a driver message
	// ever echoes it.
	adminPassword secret.String
	hints         Hints
	// noAuthid is set once the server refused this admin pg_authid:
	// ReadMark then stops asking for the Snapshot with the mark.
	noAuthid atomic.Bool
}

// New is the provider.Factory for `type: postgres`. It validates the config
// and does no network I/O; the first connection is made on first use.
func New(p provider.Params) (provider.Provider, error) {
	var o Options
	if p.Decode != nil {
		if err := p.Decode(&o); err != nil {
			return nil, fmt.Errorf("postgres provider config: %w", err)
		}
	}
	pg, err := newFromOptions(o)
	if err != nil {
		return nil, err
	}
	if p.Logger != nil {
		pg.conns.cfg.Tracer = &sqlTracer{log: p.Logger, scrub: pg.secrets}
	}
	return pg, nil
}

// Open builds a provider for adminURL and checks that it can connect.
func Open(ctx context.Context, adminURL secret.String) (*Postgres, error) {
	pg, err := newFromOptions(Options{AdminURL: adminURL.Reveal()})
	if err != nil {
		return nil, err
	}
	if err := pg.conns.with(ctx, func(conn *pgx.Conn) error { return conn.Ping(ctx) }); err != nil {
		pg.Close()
		return nil, pg.fail("connect to the admin database", "", err)
	}
	return pg, nil
}

func newFromOptions(o Options) (*Postgres, error) {
	if o.AdminURL == "" {
		return nil, fmt.Errorf("postgres provider config: admin_url is required; set it to the admin connection string, e.g. admin_url: ${ADMIN_DATABASE_URL}: %w", provider.ErrInvalid)
	}
	cfg, err := pgx.ParseConfig(o.AdminURL)
	if err != nil {
		// Not err itself: the driver's message may quote the URL, password
		// included, when the URL is malformed.
		return nil, fmt.Errorf("postgres provider config: admin_url is not a valid connection string; use postgresql://user:password@host:port/database?sslmode=require or key=value pairs: %w", provider.ErrInvalid)
	}
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = defaultConnectTimeout
	}
	if o.ConnectTimeout != "" {
		d, err := parsePositiveDuration("connect_timeout", o.ConnectTimeout)
		if err != nil {
			return nil, err
		}
		cfg.ConnectTimeout = d
	}
	if o.StatementTimeout != "" {
		d, err := parsePositiveDuration("statement_timeout", o.StatementTimeout)
		if err != nil {
			return nil, err
		}
		cfg.RuntimeParams["statement_timeout"] = strconv.FormatInt(d.Milliseconds(), 10)
	}
	// pgx sizes each connection's statement and description caches for 512
	// statements, made at connect and held for the connection's life. The
	// provider prepares some twenty (statements without arguments, such
	// as ALTER ROLE, go over the simple protocol and are not cached), and
	// the description cache serves only the describe-exec mode it does
	// not use. A URL's own statement_cache_capacity is kept, unless it
	// asks for 512, which pgx's parsed config cannot tell from its default.
	if cfg.StatementCacheCapacity == pgxDefaultCacheCapacity {
		cfg.StatementCacheCapacity = adminStatementCache
	}
	if cfg.DefaultQueryExecMode == pgx.QueryExecModeCacheStatement && cfg.DescriptionCacheCapacity == pgxDefaultCacheCapacity {
		cfg.DescriptionCacheCapacity = 0
	}
	// Makes rotor's own sessions recognisable in pg_stat_activity.
	if cfg.RuntimeParams["application_name"] == "" {
		cfg.RuntimeParams["application_name"] = applicationName
	}
	return &Postgres{conns: newConns(cfg, maxConns), adminPassword: secret.New(cfg.Password), hints: o.Hints.withDefaults()}, nil
}

func parsePositiveDuration(key, value string) (time.Duration, error) {
	d, err := time.ParseDuration(value)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("postgres provider config: %s %q is not a positive duration; write it like 10s or 1m: %w", key, value, provider.ErrInvalid)
	}
	return d, nil
}

// Close releases the admin connections. Later calls fail.
func (p *Postgres) Close() error {
	p.conns.close()
	return nil
}

var _ provider.Provider = (*Postgres)(nil)
