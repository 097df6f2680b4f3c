package pgbouncer

import (
	"context"
	"fmt"

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

// ListSessions implements target.SessionLister with SHOW CLIENTS.
func (t *Target) ListSessions(ctx context.Context, req target.ListSessionsRequest) (target.ListSessionsResponse, error) {
	resp, err := t.Clients(ctx, ClientsRequest{Role: req.Role})
	if err != nil {
		return target.ListSessionsResponse{}, err
	}
	out := target.ListSessionsResponse{}
	for _, c := range resp.Clients {
		out.Sessions = append(out.Sessions, target.ClientSession{ApplicationName: c.ApplicationName, ClientAddr: c.Addr, Database: c.Database, State: c.State})
	}
	return out, nil
}

var _ target.SessionLister = (*Target)(nil)
