package resolve

import (
	"context"
	"fmt"

	"github.com/rotorhq/rotor/internal/provider"
	"github.com/rotorhq/rotor/internal/target"
)

// unresolvedProvider stands in, in a config loaded offline, for a provider
// whose settings reference environment variables that are not set. The
// commands that load a config offline never call a provider; should one,
// it gets an error that names the variables instead of a connection made
// with a placeholder.
type unresolvedProvider struct {
	vars []string
	path string
}

func isUnresolved(p provider.Provider) bool {
	_, ok := p.(*unresolvedProvider)
	return ok
}

func (p *unresolvedProvider) err() error {
	return fmt.Errorf("%s references %s, which is not set; export it: this command connects to the database: %w", p.path, describeVars(p.vars), provider.ErrInvalid)
}

func (p *unresolvedProvider) Check(context.Context, provider.CheckRequest) (provider.CheckResponse, error) {
	return provider.CheckResponse{}, p.err()
}

func (p *unresolvedProvider) SetPassword(context.Context, provider.SetPasswordRequest) (provider.SetPasswordResponse, error) {
	return provider.SetPasswordResponse{}, p.err()
}

func (p *unresolvedProvider) Snapshot(context.Context, provider.SnapshotRequest) (provider.SnapshotResponse, error) {
	return provider.SnapshotResponse{}, p.err()
}

func (p *unresolvedProvider) Retire(context.Context, provider.RetireRequest) (provider.RetireResponse, error) {
	return provider.RetireResponse{}, p.err()
}

func (p *unresolvedProvider) Sessions(context.Context, provider.SessionsRequest) (provider.SessionsResponse, error) {
	return provider.SessionsResponse{}, p.err()
}

func (p *unresolvedProvider) Terminate(context.Context, provider.TerminateRequest) (provider.TerminateResponse, error) {
	return provider.TerminateResponse{}, p.err()
}

func (p *unresolvedProvider) EnsureRoles(context.Context, provider.EnsureRolesRequest) (provider.EnsureRolesResponse, error) {
	return provider.EnsureRolesResponse{}, p.err()
}

func (p *unresolvedProvider) Parity(context.Context, provider.ParityRequest) (provider.ParityResponse, error) {
	return provider.ParityResponse{}, p.err()
}

func (p *unresolvedProvider) Close() error { return nil }

// unresolvedTarget stands in, in a config loaded offline, for a target
// its factory would not build from the ${VAR} references of variables
// that are not set: it can be described, and refuses every write.
type unresolvedTarget struct {
	name, typ string
	vars      []string
}

func (t *unresolvedTarget) Info() target.Info {
	return target.Info{Type: t.typ, Name: t.name, Destination: fmt.Sprintf("(%s not set)", describeVars(t.vars))}
}

func (t *unresolvedTarget) Put(context.Context, target.PutRequest) (target.PutResponse, error) {
	return target.PutResponse{}, fmt.Errorf("%s target %q references %s, which is not set; export it: %w", t.typ, t.name, describeVars(t.vars), target.ErrInvalid)
}

var (
	_ provider.Provider = (*unresolvedProvider)(nil)
	_ target.Target     = (*unresolvedTarget)(nil)
)
