package neonfake

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/rotorhq/rotor/internal/secret"
)

// route dispatches a request; s.mu is held.
func (s *Server) route(w *recorder, r *http.Request, id string) {
	raw := strings.Split(strings.Trim(strings.TrimPrefix(r.URL.EscapedPath(), "/api/v2"), "/"), "/")
	segs := make([]string, len(raw))
	for i, p := range raw {
		v, err := url.PathUnescape(p)
		if err != nil {
			s.fail(w, id, http.StatusBadRequest, "", "malformed path", 0)
			return
		}
		segs[i] = v
	}
	if len(segs) < 3 || segs[0] != "projects" {
		s.fail(w, id, http.StatusNotFound, "", "not found", 0)
		return
	}
	if segs[1] != s.cfg.ProjectID {
		s.fail(w, id, http.StatusNotFound, "", "project not found", 0)
		return
	}
	ctx := r.Context()
	m := r.Method
	switch rest := segs[2:]; {
	case match(rest, "branches") && m == http.MethodGet:
		s.listBranches(w)
	case match(rest, "endpoints") && m == http.MethodGet:
		s.listEndpoints(w, "")
	case match(rest, "connection_uri") && m == http.MethodGet:
		s.connectionURI(ctx, w, r.URL.Query(), id)
	case match(rest, "operations", "*") && m == http.MethodGet:
		s.getOperation(w, rest[1], id)
	case len(rest) >= 2 && rest[0] == "branches":
		b := s.branch(rest[1])
		if b == nil || b.ID != rest[1] {
			s.fail(w, id, http.StatusNotFound, "", "branch not found", 0)
			return
		}
		s.routeBranch(ctx, w, r, id, b, rest[2:])
	default:
		s.fail(w, id, http.StatusNotFound, "", "not found", 0)
	}
}

func (s *Server) routeBranch(ctx context.Context, w *recorder, r *http.Request, id string, b *Branch, rest []string) {
	m := r.Method
	switch {
	case len(rest) == 0 && m == http.MethodGet:
		writeJSON(w, http.StatusOK, map[string]any{"branch": s.branchJSON(b), "annotation": map[string]any{"object": map[string]any{"type": "branch", "id": b.ID}, "value": map[string]string{}}})
	case match(rest, "endpoints") && m == http.MethodGet:
		s.listEndpoints(w, b.ID)
	case match(rest, "databases") && m == http.MethodGet:
		dbs := []any{}
		for _, d := range b.databases {
			dbs = append(dbs, s.databaseJSON(b, d))
		}
		writeJSON(w, http.StatusOK, map[string]any{"databases": dbs})
	case match(rest, "databases", "*") && m == http.MethodGet:
		for _, d := range b.databases {
			if d.name == rest[1] {
				writeJSON(w, http.StatusOK, map[string]any{"database": s.databaseJSON(b, d)})
				return
			}
		}
		s.fail(w, id, http.StatusNotFound, "", "database not found", 0)
	case match(rest, "roles") && m == http.MethodGet:
		names, err := listRoles(ctx, b.Cluster)
		if err != nil {
			s.fail(w, id, http.StatusInternalServerError, "", "list roles: "+err.Error(), 0)
			return
		}
		roles := []any{}
		for _, n := range names {
			roles = append(roles, s.roleJSON(b, n, secret.String{}))
		}
		writeJSON(w, http.StatusOK, map[string]any{"roles": roles})
	case match(rest, "roles") && m == http.MethodPost:
		s.createRole(ctx, w, r, id, b)
	case match(rest, "roles", "*") && (m == http.MethodGet || m == http.MethodDelete):
		ok, err := roleExists(ctx, b.Cluster, rest[1])
		switch {
		case err != nil:
			s.fail(w, id, http.StatusInternalServerError, "", "look up role: "+err.Error(), 0)
		case !ok && m == http.MethodDelete:
			// "204 if the role doesn't exist or is already deleted".
			w.status = http.StatusNoContent
		case !ok:
			s.fail(w, id, http.StatusNotFound, "", "role not found", 0)
		case m == http.MethodGet:
			writeJSON(w, http.StatusOK, map[string]any{"role": s.roleJSON(b, rest[1], secret.String{})})
		default:
			s.deleteRole(ctx, w, id, b, rest[1])
		}
	case match(rest, "roles", "*", "reveal_password") && m == http.MethodGet:
		s.revealPassword(ctx, w, id, b, rest[1])
	case match(rest, "roles", "*", "reset_password") && m == http.MethodPost:
		s.resetPassword(ctx, w, id, b, rest[1])
	default:
		s.fail(w, id, http.StatusNotFound, "", "not found", 0)
	}
}

// match compares path segments with a pattern where "*" is any segment.
func match(segs []string, pattern ...string) bool {
	if len(segs) != len(pattern) {
		return false
	}
	for i, p := range pattern {
		if p != "*" && p != segs[i] {
			return false
		}
	}
	return true
}

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }

func (s *Server) branchJSON(b *Branch) map[string]any {
	j := map[string]any{
		"id": b.ID, "project_id": s.cfg.ProjectID, "name": b.Name,
		"current_state": "ready", "state_changed_at": stamp(b.createdAt), "creation_source": "console",
		"created_at": stamp(b.createdAt), "updated_at": stamp(b.createdAt),
		"default": b.Default, "primary": b.Default, "protected": false,
		"cpu_used_sec": 0, "active_time_seconds": 0, "compute_time_seconds": 0, "written_data_bytes": 0, "data_transfer_bytes": 0,
		"logical_size": 30 << 20, "init_source": "parent-data",
	}
	if b.ParentID != "" {
		j["parent_id"] = b.ParentID
	}
	return j
}

func (s *Server) listBranches(w *recorder) {
	out := []any{}
	for _, b := range s.branches {
		out = append(out, s.branchJSON(b))
	}
	writeJSON(w, http.StatusOK, map[string]any{"branches": out, "annotations": map[string]any{}, "pagination": map[string]any{"sort_by": "updated_at", "sort_order": "desc"}})
}

func (s *Server) endpointJSON(b *Branch, id, typ string) map[string]any {
	return map[string]any{
		"host": id + "." + s.cfg.Region + ".aws.neon.tech", "id": id, "project_id": s.cfg.ProjectID, "branch_id": b.ID,
		"region_id": "aws-" + s.cfg.Region, "autoscaling_limit_min_cu": 0.25, "autoscaling_limit_max_cu": 2,
		"type": typ, "current_state": "active", "pooler_enabled": false, "pooler_mode": "transaction",
		"disabled": false, "passwordless_access": true, "creation_source": "console",
		"created_at": stamp(b.createdAt), "updated_at": stamp(b.createdAt), "settings": map[string]any{},
		"proxy_host": s.cfg.Region + ".aws.neon.tech", "suspend_timeout_seconds": 0, "provisioner": "k8s-neonvm",
	}
}

func (s *Server) listEndpoints(w *recorder, branch string) {
	out := []any{}
	for _, b := range s.branches {
		if branch != "" && b.ID != branch {
			continue
		}
		if b.ReplicaID != "" {
			out = append(out, s.endpointJSON(b, b.ReplicaID, "read_only"))
		}
		out = append(out, s.endpointJSON(b, b.EndpointID, "read_write"))
	}
	writeJSON(w, http.StatusOK, map[string]any{"endpoints": out})
}

func (s *Server) databaseJSON(b *Branch, d *database) map[string]any {
	return map[string]any{"id": d.id, "branch_id": b.ID, "name": d.name, "owner_name": d.owner, "created_at": stamp(d.createdAt), "updated_at": stamp(d.createdAt)}
}

// roleJSON includes the password only when given one: in the answers to
// create and reset.
func (s *Server) roleJSON(b *Branch, name string, pw secret.String) map[string]any {
	meta := b.roles[name]
	created, updated := b.createdAt, b.createdAt
	if meta != nil {
		created, updated = meta.createdAt, meta.updatedAt
	}
	j := map[string]any{"branch_id": b.ID, "name": name, "protected": false, "created_at": stamp(created), "updated_at": stamp(updated)}
	if !pw.IsZero() {
		j["password"] = pw.Reveal()
	}
	return j
}

// busy reports an unfinished operation on the branch: Neon then refuses
// new mutations with 423.
func (s *Server) busy(b *Branch) bool {
	for _, op := range s.opOrder {
		if op.branchID == b.ID && !op.done() {
			return true
		}
	}
	return false
}

// locked answers 423 with the message Neon sends, as Neon's own test
// suite matches it (neondatabase/neon test_runner/fixtures/neon_api.py).
func (s *Server) locked(w *recorder, id string) {
	s.fail(w, id, http.StatusLocked, "", "project already has running conflicting operations, scheduling of new ones is prohibited", 0)
}

// protectedName lists the names Neon does not let a role have.
func protectedName(name string) bool {
	switch name {
	case "neon_superuser", "cloud_admin", "zenith_admin", "public", "none":
		return true
	}
	return strings.HasPrefix(name, "pg")
}

func (s *Server) createRole(ctx context.Context, w *recorder, r *http.Request, id string, b *Branch) {
	var body struct {
		Role *struct {
			Name    string `json:"name"`
			NoLogin bool   `json:"no_login"`
		} `json:"role"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil || body.Role == nil || body.Role.Name == "" {
		s.fail(w, id, http.StatusBadRequest, "", "request body must be {\"role\": {\"name\": …}}", 0)
		return
	}
	name := body.Role.Name
	switch {
	case len(name) > 63:
		s.fail(w, id, http.StatusBadRequest, "", "role name cannot exceed 63 bytes", 0)
		return
	case protectedName(name):
		s.fail(w, id, http.StatusBadRequest, "", "role name is reserved", 0)
		return
	case s.busy(b):
		s.locked(w, id)
		return
	}
	pw := newPassword()
	made, err := createNeonRole(ctx, b.Cluster, name, pw)
	switch {
	case err != nil:
		s.fail(w, id, http.StatusInternalServerError, "", err.Error(), 0)
		return
	case !made:
		s.fail(w, id, http.StatusConflict, "", "role already exists", 0)
		return
	}
	if body.Role.NoLogin {
		if err := exec(ctx, b.Cluster, "postgres", "ALTER ROLE "+ident(name)+" NOLOGIN PASSWORD NULL"); err != nil {
			s.fail(w, id, http.StatusInternalServerError, "", err.Error(), 0)
			return
		}
		pw = secret.String{}
	}
	s.created = append(s.created, createdThing{cluster: b.Cluster, role: name})
	now := s.cfg.Now().UTC().Truncate(time.Second)
	b.roles[name] = &roleMeta{password: pw, createdAt: now, updatedAt: now}
	ops := s.startOps(b, nil)
	writeJSON(w, http.StatusCreated, map[string]any{"role": s.roleJSON(b, name, pw), "operations": ops})
}

func (s *Server) deleteRole(ctx context.Context, w *recorder, id string, b *Branch, name string) {
	if s.busy(b) {
		s.locked(w, id)
		return
	}
	for _, d := range b.databases {
		if d.owner == name {
			s.fail(w, id, http.StatusBadRequest, "", "role owns database "+d.name+"; delete the database first", 0)
			return
		}
	}
	role := s.roleJSON(b, name, secret.String{})
	if err := dropRole(ctx, b.Cluster, name); err != nil {
		s.fail(w, id, http.StatusInternalServerError, "", err.Error(), 0)
		return
	}
	delete(b.roles, name)
	ops := s.startOps(b, nil)
	writeJSON(w, http.StatusOK, map[string]any{"role": role, "operations": ops})
}

func (s *Server) resetPassword(ctx context.Context, w *recorder, id string, b *Branch, name string) {
	ok, err := roleExists(ctx, b.Cluster, name)
	switch {
	case err != nil:
		s.fail(w, id, http.StatusInternalServerError, "", "look up role: "+err.Error(), 0)
		return
	case !ok:
		s.fail(w, id, http.StatusNotFound, "", "role not found", 0)
		return
	case s.busy(b):
		s.locked(w, id)
		return
	}
	pw := newPassword()
	now := s.cfg.Now().UTC().Truncate(time.Second)
	meta := b.roles[name]
	if meta == nil {
		meta = &roleMeta{createdAt: b.createdAt}
		b.roles[name] = meta
	}
	meta.password, meta.updatedAt = pw, now
	cluster, keep := b.Cluster, s.cfg.KeepConnectionsOnReset
	dbs := make([]string, 0, len(b.databases))
	for _, d := range b.databases {
		dbs = append(dbs, d.name)
	}
	// The new password takes over when the last operation finishes, and
	// every connection of the compute, of every role, is dropped then
	// ("Connections to the compute endpoint are dropped", §1).
	ops := s.startOps(b, func(ctx context.Context) error {
		if err := setPassword(ctx, cluster, name, pw); err != nil {
			return err
		}
		if keep {
			return nil
		}
		return dropConnections(ctx, b, dbs)
	})
	writeJSON(w, http.StatusOK, map[string]any{"role": s.roleJSON(b, name, pw), "operations": ops})
}

func (s *Server) revealPassword(ctx context.Context, w *recorder, id string, b *Branch, name string) {
	ok, err := roleExists(ctx, b.Cluster, name)
	switch {
	case err != nil:
		s.fail(w, id, http.StatusInternalServerError, "", "look up role: "+err.Error(), 0)
	case !ok:
		s.fail(w, id, http.StatusNotFound, "", "role not found", 0)
	case !s.storePW:
		s.fail(w, id, http.StatusPreconditionFailed, "", "storing passwords is not enabled for the project", 0)
	case b.roles[name] == nil || b.roles[name].password.IsZero():
		s.fail(w, id, http.StatusNotFound, "", "no stored password for role "+name+"; reset it to get one", 0)
	default:
		writeJSON(w, http.StatusOK, map[string]any{"password": b.roles[name].password.Reveal()})
	}
}

func (s *Server) connectionURI(ctx context.Context, w *recorder, q url.Values, id string) {
	dbName, role := q.Get("database_name"), q.Get("role_name")
	if dbName == "" || role == "" {
		s.fail(w, id, http.StatusBadRequest, "", "database_name and role_name are required", 0)
		return
	}
	var b *Branch
	if bid := q.Get("branch_id"); bid != "" {
		if b = s.branch(bid); b == nil || b.ID != bid {
			s.fail(w, id, http.StatusNotFound, "", "branch not found", 0)
			return
		}
	} else {
		for _, c := range s.branches {
			if c.Default {
				b = c
			}
		}
	}
	epID := b.EndpointID
	if e := q.Get("endpoint_id"); e != "" {
		if e != b.EndpointID && e != b.ReplicaID {
			s.fail(w, id, http.StatusNotFound, "", "endpoint not found on the branch", 0)
			return
		}
		epID = e
	}
	found := false
	for _, d := range b.databases {
		found = found || d.name == dbName
	}
	if !found {
		s.fail(w, id, http.StatusNotFound, "", "database not found", 0)
		return
	}
	ok, err := roleExists(ctx, b.Cluster, role)
	switch {
	case err != nil:
		s.fail(w, id, http.StatusInternalServerError, "", "look up role: "+err.Error(), 0)
		return
	case !ok:
		s.fail(w, id, http.StatusNotFound, "", "role not found", 0)
		return
	case !s.storePW:
		s.fail(w, id, http.StatusPreconditionFailed, "", "storing passwords is not enabled for the project", 0)
		return
	case b.roles[role] == nil || b.roles[role].password.IsZero():
		s.fail(w, id, http.StatusNotFound, "", "no stored password for role "+role+"; reset it to get one", 0)
		return
	}
	host := epID
	if q.Get("pooled") == "true" {
		host += "-pooler"
	}
	u := url.URL{Scheme: "postgresql", User: url.UserPassword(role, b.roles[role].password.Reveal()),
		Host: host + "." + s.cfg.Region + ".aws.neon.tech", Path: "/" + dbName, RawQuery: "sslmode=require&channel_binding=require"}
	writeJSON(w, http.StatusOK, map[string]any{"uri": u.String()})
}
