package neon

import (
	"context"

	"github.com/rotorhq/rotor/internal/provider"
)

// ReadMark implements provider.Marker on the primary branch (the first
// configured), whose password is the credential's: the role's comment, as
// on any PostgreSQL.
func (n *Neon) ReadMark(ctx context.Context, req provider.ReadMarkRequest) (provider.ReadMarkResponse, error) {
	st, err := n.resolve(ctx)
	if err != nil {
		return provider.ReadMarkResponse{}, err
	}
	pg, err := n.admin(ctx, st, st.branches[0])
	if err != nil {
		return provider.ReadMarkResponse{}, err
	}
	// Neon's roles cannot read the stored verifier, and its Snapshot is
	// unsupported by design: the mark alone.
	req.Snapshot = false
	return pg.ReadMark(ctx, req)
}

// WriteMark implements provider.Marker on the primary branch.
func (n *Neon) WriteMark(ctx context.Context, req provider.WriteMarkRequest) (provider.WriteMarkResponse, error) {
	st, err := n.resolve(ctx)
	if err != nil {
		return provider.WriteMarkResponse{}, err
	}
	pg, err := n.admin(ctx, st, st.branches[0])
	if err != nil {
		return provider.WriteMarkResponse{}, err
	}
	return pg.WriteMark(ctx, req)
}

var _ provider.Marker = (*Neon)(nil)
