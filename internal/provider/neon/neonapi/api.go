package neonapi

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/rotorhq/rotor/internal/secret"
)

// Branch is the part of the spec's Branch that rotor reads.
type Branch struct {
	ID       string `json:"id"`
	Name     string `json:"name"`
	ParentID string `json:"parent_id,omitempty"`
	// Default is the project's default branch (formerly "primary").
	Default bool `json:"default"`
	Primary bool `json:"primary,omitempty"`
}

// Endpoint is the part of the spec's Endpoint that rotor reads.
type Endpoint struct {
	ID            string `json:"id"`
	BranchID      string `json:"branch_id"`
	Host          string `json:"host"`
	RegionID      string `json:"region_id"`
	Type          string `json:"type"` // read_write or read_only
	PoolerEnabled bool   `json:"pooler_enabled"`
	Disabled      bool   `json:"disabled"`
	CurrentState  string `json:"current_state"`
}

// Endpoint types.
const (
	EndpointReadWrite = "read_write"
	EndpointReadOnly  = "read_only"
)

// Database is the part of the spec's Database that rotor reads.
type Database struct {
	BranchID  string `json:"branch_id"`
	Name      string `json:"name"`
	OwnerName string `json:"owner_name"`
}

// Role is the spec's Role. Password is set only in the answers to create
// and reset_password.
type Role struct {
	BranchID  string
	Name      string
	Protected bool
	Password  secret.String
	CreatedAt time.Time
	UpdatedAt time.Time
}

type roleJSON struct {
	BranchID  string    `json:"branch_id"`
	Name      string    `json:"name"`
	Password  string    `json:"password,omitempty"`
	Protected bool      `json:"protected,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// UnmarshalJSON moves the password into a secret.String at once.
func (r *Role) UnmarshalJSON(b []byte) error {
	var j roleJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	*r = Role{BranchID: j.BranchID, Name: j.Name, Protected: j.Protected, CreatedAt: j.CreatedAt, UpdatedAt: j.UpdatedAt}
	if j.Password != "" {
		r.Password = secret.New(j.Password)
	}
	return nil
}

// Operation is the spec's Operation.
type Operation struct {
	ID         string `json:"id"`
	ProjectID  string `json:"project_id"`
	BranchID   string `json:"branch_id,omitempty"`
	EndpointID string `json:"endpoint_id,omitempty"`
	Action     string `json:"action"`
	Status     string `json:"status"`
	Error      string `json:"error,omitempty"`
}

// Operation statuses (OperationStatus in the spec).
const (
	OpScheduling = "scheduling"
	OpRunning    = "running"
	OpFinished   = "finished"
	OpFailed     = "failed"
	OpError      = "error"
	OpCancelling = "cancelling"
	OpCancelled  = "cancelled"
	OpSkipped    = "skipped"
)

// Done reports a status that will not change again.
func (o Operation) Done() bool {
	switch o.Status {
	case OpFinished, OpSkipped, OpFailed, OpError, OpCancelled:
		return true
	}
	return false
}

// Failed reports the statuses the official SDK treats as failure.
func (o Operation) Failed() bool {
	return o.Status == OpFailed || o.Status == OpError || o.Status == OpCancelled
}

func projectPath(project string) string { return "/projects/" + seg(project) }

func branchPath(project, branch string) string {
	return projectPath(project) + "/branches/" + seg(branch)
}

func rolePath(project, branch, role string) string {
	return branchPath(project, branch) + "/roles/" + seg(role)
}

// ListBranches returns every branch of the project, following the
// cursor pagination.
func (c *Client) ListBranches(ctx context.Context, project string) ([]Branch, error) {
	var all []Branch
	cursor := ""
	for page := 0; page < 1000; page++ {
		q := url.Values{"limit": {"1000"}}
		if cursor != "" {
			q.Set("cursor", cursor)
		}
		var resp struct {
			Branches   []Branch `json:"branches"`
			Pagination *struct {
				Next string `json:"next"`
			} `json:"pagination"`
		}
		if _, err := c.do(ctx, request{method: http.MethodGet, path: projectPath(project) + "/branches", query: q}, &resp); err != nil {
			return nil, err
		}
		all = append(all, resp.Branches...)
		if resp.Pagination == nil || resp.Pagination.Next == "" || resp.Pagination.Next == cursor || len(resp.Branches) == 0 {
			return all, nil
		}
		cursor = resp.Pagination.Next
	}
	return all, nil
}

// ListBranchEndpoints returns the compute endpoints of one branch.
func (c *Client) ListBranchEndpoints(ctx context.Context, project, branch string) ([]Endpoint, error) {
	var resp struct {
		Endpoints []Endpoint `json:"endpoints"`
	}
	_, err := c.do(ctx, request{method: http.MethodGet, path: branchPath(project, branch) + "/endpoints"}, &resp)
	return resp.Endpoints, err
}

// ListDatabases returns the databases of one branch.
func (c *Client) ListDatabases(ctx context.Context, project, branch string) ([]Database, error) {
	var resp struct {
		Databases []Database `json:"databases"`
	}
	_, err := c.do(ctx, request{method: http.MethodGet, path: branchPath(project, branch) + "/databases"}, &resp)
	return resp.Databases, err
}

// GetDatabase returns one database of a branch.
func (c *Client) GetDatabase(ctx context.Context, project, branch, database string) (Database, error) {
	var resp struct {
		Database Database `json:"database"`
	}
	_, err := c.do(ctx, request{method: http.MethodGet, path: branchPath(project, branch) + "/databases/" + seg(database)}, &resp)
	return resp.Database, err
}

// ListRoles returns the roles of one branch (never with passwords).
func (c *Client) ListRoles(ctx context.Context, project, branch string) ([]Role, error) {
	var resp struct {
		Roles []Role `json:"roles"`
	}
	_, err := c.do(ctx, request{method: http.MethodGet, path: branchPath(project, branch) + "/roles"}, &resp)
	return resp.Roles, err
}

// GetRole returns one role of a branch.
func (c *Client) GetRole(ctx context.Context, project, branch, role string) (Role, error) {
	var resp struct {
		Role Role `json:"role"`
	}
	_, err := c.do(ctx, request{method: http.MethodGet, path: rolePath(project, branch, role)}, &resp)
	return resp.Role, err
}

// ResetRolePassword makes Neon generate a new password for the role. The
// old password stays valid until the returned operations finish.
func (c *Client) ResetRolePassword(ctx context.Context, project, branch, role string) (Role, []Operation, error) {
	var resp struct {
		Role       Role        `json:"role"`
		Operations []Operation `json:"operations"`
	}
	_, err := c.do(ctx, request{method: http.MethodPost, path: rolePath(project, branch, role) + "/reset_password"}, &resp)
	return resp.Role, resp.Operations, err
}

// ConnectionURIParams selects the URI getConnectionURI builds.
type ConnectionURIParams struct {
	BranchID   string
	EndpointID string
	Database   string
	Role       string
	Pooled     bool
}

// ConnectionURI returns a connection string with the role's password in
// it; like reveal_password it needs the project to store passwords.
func (c *Client) ConnectionURI(ctx context.Context, project string, p ConnectionURIParams) (secret.String, error) {
	q := url.Values{"database_name": {p.Database}, "role_name": {p.Role}}
	if p.BranchID != "" {
		q.Set("branch_id", p.BranchID)
	}
	if p.EndpointID != "" {
		q.Set("endpoint_id", p.EndpointID)
	}
	if p.Pooled {
		q.Set("pooled", strconv.FormatBool(p.Pooled))
	}
	var resp struct {
		URI string `json:"uri"`
	}
	_, err := c.do(ctx, request{method: http.MethodGet, path: projectPath(project) + "/connection_uri", query: q}, &resp)
	return secret.New(resp.URI), err
}

// GetOperation returns the current state of one operation.
func (c *Client) GetOperation(ctx context.Context, project, id string) (Operation, error) {
	var resp struct {
		Operation Operation `json:"operation"`
	}
	_, err := c.do(ctx, request{method: http.MethodGet, path: projectPath(project) + "/operations/" + seg(id)}, &resp)
	return resp.Operation, err
}

// OperationError is an operation that ended in failed, error or
// cancelled, or that did not end before the deadline.
type OperationError struct {
	Op Operation
	// Timeout is set when the deadline passed with Op still pending.
	Timeout time.Duration
}

func (e *OperationError) Error() string {
	where := ""
	if e.Op.EndpointID != "" {
		where = " on endpoint " + e.Op.EndpointID
	} else if e.Op.BranchID != "" {
		where = " on branch " + e.Op.BranchID
	}
	if e.Timeout > 0 {
		return fmt.Sprintf("neon operation %s (%s%s) is still %s after %s", e.Op.ID, e.Op.Action, where, e.Op.Status, e.Timeout)
	}
	msg := fmt.Sprintf("neon operation %s (%s%s) ended %s", e.Op.ID, e.Op.Action, where, e.Op.Status)
	if e.Op.Error != "" {
		msg += ": " + shorten(e.Op.Error)
	}
	return msg
}

// WaitOperations polls every operation that has not ended until all are
// finished or skipped. It returns an *OperationError for the first that
// fails, or when OperationTimeout passes first.
func (c *Client) WaitOperations(ctx context.Context, project string, ops []Operation) error {
	pending := make([]Operation, 0, len(ops))
	for _, op := range ops {
		if op.Failed() {
			return &OperationError{Op: op}
		}
		if !op.Done() {
			pending = append(pending, op)
		}
	}
	timeout := orDefault(c.OperationTimeout, DefaultOperationTimeout)
	deadline := c.now().Add(timeout)
	for len(pending) > 0 {
		if !c.now().Before(deadline) {
			return &OperationError{Op: pending[0], Timeout: timeout}
		}
		if err := c.sleep(ctx, orDefault(c.PollInterval, DefaultPollInterval)); err != nil {
			return fmt.Errorf("wait for neon operation %s (%s): %w", pending[0].ID, pending[0].Action, err)
		}
		next := pending[:0]
		for _, op := range pending {
			cur, err := c.GetOperation(ctx, project, op.ID)
			if err != nil {
				return fmt.Errorf("poll neon operation %s (%s): %w", op.ID, op.Action, err)
			}
			if cur.Failed() {
				return &OperationError{Op: cur}
			}
			if !cur.Done() {
				next = append(next, cur)
			}
		}
		pending = next
	}
	return nil
}
