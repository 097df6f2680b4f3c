package engine

import (
	"context"
	"fmt"

	"github.com/rotorhq/rotor/internal/store"
)

// bulkPlanMin is from how many credentials Plans reads the store in bulk:
// below it, a few reads per credential cost less than reading every
// credential's current version from a store shared with a larger config.
const bulkPlanMin = 16

// Plans is Plan for each of creds, in order. Over many credentials it
// reads every current version and every unfinished rotation in two
// queries in all instead of two per credential (`rotor plan` over 1,000
// credentials made 2,000 store reads before it described anything).
func (e *Engine) Plans(ctx context.Context, creds []*Credential, opts PlanOptions) ([]*Plan, error) {
	var plans []*Plan
	if len(creds) < bulkPlanMin {
		for _, cr := range creds {
			p, err := e.Plan(ctx, cr, opts)
			if err != nil {
				return nil, err
			}
			plans = append(plans, p)
		}
		return plans, nil
	}
	e.init()
	vs, err := e.Store.ListVersions(ctx, store.ListVersionsParams{Stages: []store.Stage{store.StageCurrent}})
	if err != nil {
		return nil, fmt.Errorf("read versions: %w", err)
	}
	// Newest first, so the first seen is what currentVersion would return.
	current := map[string]*store.Version{}
	for _, v := range vs {
		if _, ok := current[v.Credential]; !ok {
			current[v.Credential] = v
		}
	}
	active := map[string]*store.Rotation{}
	// As in Plan, a store that cannot list rotations only loses the
	// warning about an unfinished one.
	if rots, err := e.Store.ListRotations(ctx, store.ListRotationsParams{Active: true}); err == nil {
		for _, r := range rots {
			if _, ok := active[r.Credential]; !ok {
				active[r.Credential] = r
			}
		}
	}
	for _, cr := range creds {
		p, err := e.plan(ctx, cr, opts, current[cr.Name], active[cr.Name])
		if err != nil {
			return nil, err
		}
		plans = append(plans, p)
	}
	return plans, nil
}
