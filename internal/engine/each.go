package engine

import (
	"context"
	"sync"

	"github.com/rotorhq/rotor/internal/store"
)

// EachOptions change a RotateEach.
type EachOptions struct {
	// Options apply to every rotation.
	Options
	// DueOnly rotates only the credentials whose schedule says they are
	// due, and those with an unfinished rotation, which is always worth
	// finishing (`rotor rotate --due`, the service's scheduler).
	DueOnly bool
	// Parallel is how many credentials rotate at once; less than 1 means 1.
	Parallel int
}

// Outcome is what RotateEach did for one credential. Result is nil when
// there was nothing to do (not due, or nothing to resume with ResumeOnly)
// or when the rotation could not start; Err is set when it failed, and
// then Result, if any, says how far it got.
type Outcome struct {
	Credential string
	Result     *Result
	Err        error
}

// RotateEach rotates (or resumes) each of creds, up to opts.Parallel at
// once, and returns one Outcome per credential in the order of creds. A
// failure stops only its own credential.
func (e *Engine) RotateEach(ctx context.Context, creds []*Credential, opts EachOptions) []Outcome {
	e.init()
	outs := make([]Outcome, len(creds))
	sem := make(chan struct{}, max(opts.Parallel, 1))
	var wg sync.WaitGroup
	for i, cr := range creds {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			outs[i] = e.rotateOne(ctx, cr, opts)
		}()
	}
	wg.Wait()
	return outs
}

func (e *Engine) rotateOne(ctx context.Context, cr *Credential, opts EachOptions) Outcome {
	out := Outcome{Credential: cr.Name}
	if opts.DueOnly {
		due, err := e.dueOrUnfinished(ctx, cr)
		if err != nil || !due {
			out.Err = err
			return out
		}
	}
	out.Result, out.Err = e.Rotate(ctx, cr, opts.Options)
	return out
}

// dueOrUnfinished reports whether cr's schedule says it is due, it has
// an unfinished rotation, or its last rotation's old role awaits
// retirement (a rotation still in use past its deadline waits for a
// person or `rotor retire`, not for every scheduled run).
func (e *Engine) dueOrUnfinished(ctx context.Context, cr *Credential) (bool, error) {
	due, err := e.Due(ctx, cr)
	if err != nil || due {
		return due, err
	}
	active, err := e.Store.ListRotations(ctx, store.ListRotationsParams{Credential: cr.Name, Active: true, Limit: 1})
	if err != nil || len(active) > 0 {
		return len(active) > 0, err
	}
	last, err := e.Store.ListRotations(ctx, store.ListRotationsParams{Credential: cr.Name, Limit: 1})
	if err != nil {
		return false, err
	}
	return len(last) > 0 && last[0].Status == store.StatusSwitched, nil
}
