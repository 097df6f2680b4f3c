package engine

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/rotorhq/rotor/internal/connstr"
	"github.com/rotorhq/rotor/internal/secret"
)

// DialPostgres logs in with url and runs SELECT 1, the way a consumer
// proves a connection string works. Errors are scrubbed of the URL.
func DialPostgres(ctx context.Context, url secret.String) error {
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
