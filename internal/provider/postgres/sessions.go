package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/rotorhq/rotor/internal/provider"
)

// sessionFilter selects the client sessions of role $1 other than the
// provider's own, optionally only those started before $2. An admin that is
// neither superuser nor in pg_read_all_stats sees other roles' sessions
// with backend_type and backend_start NULL; those are kept, because for
// draining an unknown session must count as a live, old one.
const sessionFilter = `
	FROM pg_stat_activity
	WHERE usename = $1
	  AND pid <> pg_backend_pid()
	  AND (backend_type = 'client backend' OR backend_type IS NULL)
	  AND ($2::timestamptz IS NULL OR backend_start IS NULL OR backend_start < $2::timestamptz)`

const (
	// terminateWait bounds how long Terminate waits for signalled backends
	// to exit; they normally go within milliseconds.
	terminateWait     = 10 * time.Second
	terminatePollBase = 5 * time.Millisecond
	terminatePollMax  = 100 * time.Millisecond
)

// Sessions lists the role's client sessions in every database.
func (p *Postgres) Sessions(ctx context.Context, req provider.SessionsRequest) (provider.SessionsResponse, error) {
	op := fmt.Sprintf("list sessions of role %q", req.Role)
	var sessions []provider.Session
	err := p.withRole(ctx, op, req.Role, func(conn *pgx.Conn) error {
		rows, err := conn.Query(ctx, `
			SELECT pid, coalesce(datname, ''), coalesce(application_name, ''),
			       coalesce(host(client_addr), ''), backend_start, coalesce(state, '')`+
			sessionFilter+`
			ORDER BY backend_start, pid`, req.Role, timeOrNil(req.StartedBefore))
		if err != nil {
			return err
		}
		sessions, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (provider.Session, error) {
			var (
				s     provider.Session
				start *time.Time
			)
			err := row.Scan(&s.PID, &s.Database, &s.ApplicationName, &s.ClientAddr, &start, &s.State)
			if start != nil {
				s.BackendStart = *start
			}
			return s, err
		})
		return err
	})
	if err != nil {
		return provider.SessionsResponse{}, err
	}
	return provider.SessionsResponse{Sessions: sessions}, nil
}

// Terminate signals the sessions Sessions would list and waits until their
// backends are gone, so that the caller can rely on them being over.
func (p *Postgres) Terminate(ctx context.Context, req provider.TerminateRequest) (provider.TerminateResponse, error) {
	op := fmt.Sprintf("end sessions of role %q", req.Role)
	var resp provider.TerminateResponse
	err := p.withRole(ctx, op, req.Role, func(conn *pgx.Conn) error {
		rows, err := conn.Query(ctx, `SELECT pid FROM (SELECT pid, pg_terminate_backend(pid) AS signalled`+
			sessionFilter+`) s WHERE signalled`, req.Role, timeOrNil(req.StartedBefore))
		if err != nil {
			return err
		}
		pids, err := pgx.CollectRows(rows, pgx.RowTo[int32])
		if err != nil {
			return err
		}
		resp.Terminated, err = waitGone(ctx, conn, pids)
		if err != nil {
			return fmt.Errorf("%s: %w; call Terminate again: %w", op, err, provider.ErrUnavailable)
		}
		return nil
	})
	return resp, err
}

// waitGone polls until the backends are gone and returns how many went.
func waitGone(ctx context.Context, conn *pgx.Conn, pids []int32) (int, error) {
	deadline := time.Now().Add(terminateWait)
	wait := terminatePollBase
	for {
		if len(pids) == 0 {
			return 0, nil
		}
		var left int
		if err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE pid = ANY($1::int4[])`, pids).Scan(&left); err != nil {
			return 0, err
		}
		if left == 0 {
			return len(pids), nil
		}
		if time.Now().After(deadline) {
			return len(pids) - left, fmt.Errorf("%d of %d signalled sessions were still running after %s", left, len(pids), terminateWait)
		}
		select {
		case <-ctx.Done():
			return len(pids) - left, ctx.Err()
		case <-time.After(wait):
		}
		wait = min(2*wait, terminatePollMax)
	}
}
