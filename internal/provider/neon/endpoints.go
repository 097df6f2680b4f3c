package neon

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/rotorhq/rotor/internal/connstr"
	"github.com/rotorhq/rotor/internal/provider"
	"github.com/rotorhq/rotor/internal/provider/neon/neonapi"
)

// Endpoints returns how consumers reach the primary branch: its
// read_write endpoint's host; the pooled host, `-pooler` after the
// endpoint id the API returns, as neonctl derives it (neon-api.md §2:
// host.replace(id, id+"-pooler")), whatever the domain; and the branch's
// read replica (a read_only endpoint) when it has one. All carry
// sslmode=require and channel_binding=require, as Neon's own connection
// strings do.
func (n *Neon) Endpoints(ctx context.Context, _ provider.EndpointsRequest) (provider.EndpointsResponse, error) {
	st, err := n.resolve(ctx)
	if err != nil {
		return provider.EndpointsResponse{}, err
	}
	ep, err := n.endpointOf(ctx, st.branches[0])
	if err != nil {
		return provider.EndpointsResponse{}, err
	}
	host := directHost(ep)
	resp := provider.EndpointsResponse{Direct: consumerConn(host, st.database).URL().Reveal()}
	if pooled := pooledHost(ep); pooled != "" {
		resp.Pooled = consumerConn(pooled, st.database).URL().Reveal()
	}
	replica, err := n.replicaOf(ctx, st.branches[0])
	if err != nil {
		return provider.EndpointsResponse{}, err
	}
	if replica != nil {
		resp.Replica = consumerConn(directHost(replica), st.database).URL().Reveal()
	}
	return resp, nil
}

// directHost is the endpoint's host without a pooler label.
func directHost(ep *neonapi.Endpoint) string {
	if ep.ID != "" && strings.Contains(ep.Host, ep.ID+poolerSuffix) {
		return strings.Replace(ep.Host, ep.ID+poolerSuffix, ep.ID, 1)
	}
	return connstr.DirectHost(ep.Host)
}

const poolerSuffix = "-pooler"

// PooledHostOf is the endpoint's pooled host, `-pooler` after the
// endpoint id the API returns (neon-api.md §2); "" when there is none.
func PooledHostOf(ep neonapi.Endpoint) string { return pooledHost(&ep) }

// pooledHost puts `-pooler` after the endpoint id in the host, as neonctl
// does; "" when the host does not hold the id (then there is no pooled
// host to derive, and the engine tests the direct host alone).
func pooledHost(ep *neonapi.Endpoint) string {
	host := directHost(ep)
	if ep.ID != "" && strings.Contains(host, ep.ID) {
		return strings.Replace(host, ep.ID, ep.ID+poolerSuffix, 1)
	}
	if pooled, err := connstr.PooledHost(host); err == nil {
		return pooled
	}
	return ""
}

// Report says where the credential lives (Facts: the project, the
// branches, the endpoint hosts) and warns about branches of the project
// that hold one of the roles but are not configured: a reset applies to
// one branch only, so the old password keeps working there (neon-api.md
// §1, "Roles are per branch").
func (n *Neon) Report(ctx context.Context, req provider.ReportRequest) (provider.ReportResponse, error) {
	st, err := n.resolve(ctx)
	if err != nil {
		return provider.ReportResponse{}, err
	}
	var resp provider.ReportResponse
	names := make([]string, len(st.branches))
	for i, b := range st.branches {
		names[i] = b.String()
	}
	label := "branch "
	if len(names) > 1 {
		label = "branches "
	}
	resp.Facts = append(resp.Facts, fmt.Sprintf("neon project %s, database %s, %s%s, method %s", n.project, st.database, label, strings.Join(names, ", "), n.method))
	ep, err := n.endpointOf(ctx, st.branches[0])
	if err != nil {
		return provider.ReportResponse{}, err
	}
	fact := fmt.Sprintf("endpoint %s: direct host %s", ep.ID, directHost(ep))
	if pooled := pooledHost(ep); pooled != "" {
		fact += ", pooled host " + pooled
	}
	resp.Facts = append(resp.Facts, fact)
	replica, err := n.replicaOf(ctx, st.branches[0])
	if err != nil {
		return provider.ReportResponse{}, err
	}
	if replica != nil {
		resp.Facts = append(resp.Facts, fmt.Sprintf("read replica %s: host %s", replica.ID, directHost(replica)))
	}
	warnings, err := n.unlistedBranches(ctx, st, req.Roles)
	if err != nil {
		return provider.ReportResponse{}, err
	}
	resp.Warnings = warnings
	return resp, nil
}

func (n *Neon) unlistedBranches(ctx context.Context, st *state, roles []string) ([]string, error) {
	all, err := n.api.ListBranches(ctx, n.project)
	if err != nil {
		return nil, n.apiFail("list the branches of Neon project "+n.project, err, provider.ErrInvalid, "check project_id")
	}
	configured := map[string]bool{}
	for _, b := range st.branches {
		configured[b.id] = true
	}
	var warnings []string
	for _, b := range all {
		if configured[b.ID] {
			continue
		}
		held, err := n.api.ListRoles(ctx, n.project, b.ID)
		if err != nil {
			return nil, n.apiFail(fmt.Sprintf("list the roles of branch %s (%s)", b.Name, b.ID), err, provider.ErrInvalid, "")
		}
		var both []string
		for _, r := range held {
			if slices.Contains(roles, r.Name) {
				both = append(both, r.Name)
			}
		}
		if len(both) == 0 {
			continue
		}
		what := fmt.Sprintf("role %s", both[0])
		if len(both) > 1 {
			what = "roles " + strings.Join(both, ", ")
		}
		warnings = append(warnings, fmt.Sprintf(
			"branch %s (%s) also has %s, whose password this credential does not rotate there, so an old password may still work on that branch; add it to branches: (or use branches: all), or reset the password there",
			b.Name, b.ID, what))
	}
	return warnings, nil
}
