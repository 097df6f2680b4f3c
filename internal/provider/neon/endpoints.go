package neon

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/rotorhq/rotor/internal/connstr"
	"github.com/rotorhq/rotor/internal/provider"
)

// Endpoints returns how consumers reach the primary branch: its
// read_write endpoint's host, and the pooled host with `-pooler` after the
// endpoint id (neon-api.md §2), both with sslmode=require and
// channel_binding=require as Neon's own connection strings have them.
func (n *Neon) Endpoints(ctx context.Context, _ provider.EndpointsRequest) (provider.EndpointsResponse, error) {
	st, err := n.resolve(ctx)
	if err != nil {
		return provider.EndpointsResponse{}, err
	}
	ep, err := n.endpointOf(ctx, st.branches[0])
	if err != nil {
		return provider.EndpointsResponse{}, err
	}
	host := connstr.DirectHost(ep.Host)
	resp := provider.EndpointsResponse{Direct: consumerConn(host, st.database).URL().Reveal()}
	// Only a Neon-shaped host has a pooled twin; for another (a private
	// link, a custom API) the engine tests the direct host alone.
	if pooled, err := connstr.PooledHost(host); err == nil {
		resp.Pooled = consumerConn(pooled, st.database).URL().Reveal()
	}
	return resp, nil
}

// Report warns about branches of the project that hold one of the roles
// but are not configured: a reset applies to one branch only, so the old
// password keeps working there (neon-api.md §1, "Roles are per branch").
func (n *Neon) Report(ctx context.Context, req provider.ReportRequest) (provider.ReportResponse, error) {
	st, err := n.resolve(ctx)
	if err != nil {
		return provider.ReportResponse{}, err
	}
	all, err := n.api.ListBranches(ctx, n.project)
	if err != nil {
		return provider.ReportResponse{}, n.apiFail("list the branches of Neon project "+n.project, err, provider.ErrInvalid, "check project_id")
	}
	configured := map[string]bool{}
	for _, b := range st.branches {
		configured[b.id] = true
	}
	var resp provider.ReportResponse
	for _, b := range all {
		if configured[b.ID] {
			continue
		}
		roles, err := n.api.ListRoles(ctx, n.project, b.ID)
		if err != nil {
			return provider.ReportResponse{}, n.apiFail(fmt.Sprintf("list the roles of branch %s (%s)", b.Name, b.ID), err, provider.ErrInvalid, "")
		}
		var held []string
		for _, r := range roles {
			if slices.Contains(req.Roles, r.Name) {
				held = append(held, r.Name)
			}
		}
		if len(held) == 0 {
			continue
		}
		what := fmt.Sprintf("role %s", held[0])
		if len(held) > 1 {
			what = "roles " + strings.Join(held, ", ")
		}
		resp.Warnings = append(resp.Warnings, fmt.Sprintf(
			"branch %s (%s) also has %s, whose password this credential does not rotate there, so an old password may still work on that branch; add it to branches: (or use branches: all), or reset the password there",
			b.Name, b.ID, what))
	}
	return resp, nil
}
