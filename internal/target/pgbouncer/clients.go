package pgbouncer

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/rotorhq/rotor/internal/target"
)

// Client is one client connection PgBouncer holds (SHOW CLIENTS).
type Client struct {
	User, Database string
	// State is PgBouncer's: active, waiting, active_cancel_req, …
	State string
	// Addr is the client's address; ApplicationName is empty on PgBouncer
	// versions that do not report it.
	Addr, ApplicationName string
}

type ClientsRequest struct {
	// Role limits the answer to clients logged in as this user.
	Role string
}

type ClientsResponse struct {
	Clients []Client
}

// Clients lists the clients connected to PgBouncer as req.Role. The
// server's pg_stat_activity cannot show them: a client waiting for a
// server connection, or idle between transactions in transaction pooling,
// has none, and RELOAD closes idle server connections. So a dual
// rotation's drain of the old role must ask PgBouncer too, or it will
// retire a role that consumers still connect with.
func (t *Target) Clients(ctx context.Context, req ClientsRequest) (ClientsResponse, error) {
	if t.admin == nil {
		return ClientsResponse{}, fmt.Errorf("%s: listing PgBouncer's clients needs the admin console; set admin_url", t.desc)
	}
	results, err := t.admin.exec(ctx, "SHOW CLIENTS")
	if err != nil {
		return ClientsResponse{}, err
	}
	var resp ClientsResponse
	for _, r := range results {
		col := map[string]int{}
		for i, fd := range r.FieldDescriptions {
			col[fd.Name] = i
		}
		get := func(row [][]byte, name string) string {
			if i, ok := col[name]; ok && i < len(row) {
				return string(row[i])
			}
			return ""
		}
		if _, ok := col["user"]; !ok {
			return ClientsResponse{}, fmt.Errorf("%s: SHOW CLIENTS on %s answered without a user column; is admin_url really a PgBouncer admin console?", t.desc, t.admin.where)
		}
		for _, row := range r.Rows {
			if get(row, "user") != req.Role {
				continue
			}
			resp.Clients = append(resp.Clients, Client{
				User: get(row, "user"), Database: get(row, "database"), State: get(row, "state"),
				Addr: get(row, "addr"), ApplicationName: get(row, "application_name"),
			})
		}
	}
	return resp, nil
}

// ListClients implements target.Gatekeeper with SHOW CLIENTS.
func (t *Target) ListClients(ctx context.Context, req target.ListClientsRequest) (target.ListClientsResponse, error) {
	resp, err := t.Clients(ctx, ClientsRequest{Role: req.Role})
	if err != nil {
		return target.ListClientsResponse{}, err
	}
	out := target.ListClientsResponse{}
	for _, c := range resp.Clients {
		out.Clients = append(out.Clients, target.ClientSession{ApplicationName: c.ApplicationName, ClientAddr: c.Addr, Database: c.Database, State: c.State})
	}
	return out, nil
}

// settlePoll is how often Settle asks PgBouncer again.
const settlePoll = 10 * time.Millisecond

// Settle implements target.Gatekeeper: it returns once no client of role is
// waiting for a server connection and no server login of role is under
// way (SHOW POOLS: cl_waiting and sv_login are 0). Those clients logged in
// against the previous entry; let through to a server login after the
// server's password changed, it would fail, and PgBouncer would then turn
// every client of the pool away for server_login_retry.
func (t *Target) Settle(ctx context.Context, req target.SettleRequest) (target.SettleResponse, error) {
	if t.admin == nil {
		return target.SettleResponse{}, nil // without the console there is nothing to ask
	}
	conn, err := t.admin.connect(ctx)
	if err != nil {
		return target.SettleResponse{}, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	for {
		busy, err := t.busy(ctx, conn, req.Role)
		if err != nil || busy == 0 {
			return target.SettleResponse{}, err
		}
		select {
		case <-ctx.Done():
			return target.SettleResponse{}, fmt.Errorf("%s: %d client(s) or server login(s) of %s still pending: %w", t.desc, busy, req.Role, ctx.Err())
		case <-time.After(settlePoll):
		}
	}
}

// loginWait bounds how long a RELOAD waits for role's server logins.
const loginWait = 2 * time.Second

// reloadBetweenLogins sends RELOAD at a moment when no server login of
// role is under way (SHOW POOLS: sv_login is 0), waiting up to loginWait
// for one. PgBouncer 1.18 aborts the server logins in progress of a user
// whose auth_file entry changed ("closing because: connect string
// changed"), counts that as a failed login, and then refuses every client
// of the pool for server_login_retry (15 s by default). The two commands
// go over one connection, one right after the other, so the gap in which
// a new login could start is as short as it can be.
func (t *Target) reloadBetweenLogins(ctx context.Context, role string) error {
	conn, err := t.admin.connect(ctx)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	deadline := time.Now().Add(loginWait)
	for role != "" && time.Now().Before(deadline) {
		logins, err := t.pending(ctx, conn, role, "sv_login")
		if err != nil {
			return err
		}
		if logins == 0 {
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Millisecond):
		}
	}
	_, err = t.admin.run(ctx, conn, "RELOAD")
	return err
}

// busy is cl_waiting + sv_login over role's pools.
func (t *Target) busy(ctx context.Context, conn *pgx.Conn, role string) (int, error) {
	return t.pending(ctx, conn, role, "cl_waiting", "sv_login")
}

// pending sums the SHOW POOLS columns over role's pools.
func (t *Target) pending(ctx context.Context, conn *pgx.Conn, role string, columns ...string) (int, error) {
	results, err := t.admin.run(ctx, conn, "SHOW POOLS")
	if err != nil {
		return 0, err
	}
	n := 0
	for _, r := range results {
		col := map[string]int{}
		for i, fd := range r.FieldDescriptions {
			col[fd.Name] = i
		}
		for _, name := range append([]string{"user"}, columns...) {
			if _, ok := col[name]; !ok {
				return 0, fmt.Errorf("%s: SHOW POOLS on %s answered without a %s column; is admin_url really a PgBouncer admin console?", t.desc, t.admin.where, name)
			}
		}
		for _, row := range r.Rows {
			if string(row[col["user"]]) != role {
				continue
			}
			for _, name := range columns {
				v, err := strconv.Atoi(string(row[col[name]]))
				if err != nil {
					return 0, fmt.Errorf("%s: SHOW POOLS: %s is %q, not a number", t.desc, name, row[col[name]])
				}
				n += v
			}
		}
	}
	return n, nil
}
