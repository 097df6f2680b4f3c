package engine

import (
	"context"
	"fmt"
	"net"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/rotorhq/rotor/internal/connstr"
	"github.com/rotorhq/rotor/internal/secret"
)

// DialPostgres logs in with url and runs SELECT 1, the way a consumer
// proves a connection string works. Errors are scrubbed of the URL.
func DialPostgres(ctx context.Context, url secret.String) error {
	return DialPostgresAfter(ctx, url, nil)
}

// DialPostgresAfter is DialPostgres in two halves: it connects at once
// (TCP, and TLS when the URL asks for it, each fallback of sslmode=prefer
// alike) but sends the startup message, and so names the role and logs
// in, only once ready is closed; a nil ready does not wait. The server
// checks the password when it gets that message, so a login connected
// before the password changed still proves the new one. A connection
// closed while it waits leaves no trace in the server's log: PostgreSQL
// does not report a client that sent nothing after TLS.
func DialPostgresAfter(ctx context.Context, url secret.String, ready <-chan struct{}) error {
	secrets := []secret.String{url}
	if c, err := connstr.Parse(url.Reveal()); err == nil {
		secrets = append(secrets, c.Password)
	}
	cfg, err := pgx.ParseConfig(url.Reveal())
	if err != nil {
		return fmt.Errorf("parse connection string: %w", secret.Scrub(err, secrets...))
	}
	cfg.RuntimeParams["application_name"] = "rotor-test"
	// One query, no arguments, then the connection closes: pgx's statement
	// and description caches (two maps sized for 512 entries, made at
	// connect) would only be garbage for the batch's collector.
	cfg.StatementCacheCapacity, cfg.DescriptionCacheCapacity = 0, 0
	cfg.DefaultQueryExecMode = pgx.QueryExecModeSimpleProtocol
	if ready != nil {
		cfg.AfterNetConnect = func(ctx context.Context, _ *pgconn.Config, nc net.Conn) (net.Conn, error) {
			select {
			case <-ready:
				return nc, nil
			case <-ctx.Done():
				// pgx closes the connection it is given back with the error.
				return nc, context.Cause(ctx)
			}
		}
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return secret.Scrub(err, secrets...)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var one int
	if err := conn.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil {
		return secret.Scrub(err, secrets...)
	}
	return nil
}
