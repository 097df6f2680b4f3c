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
	outs := make([]Outcome, 0, len(creds))
	e.RotateEachFunc(ctx, creds, opts, func(o Outcome) { outs = append(outs, o) })
	return outs
}

// RotateEachFunc is RotateEach handing each Outcome to yield instead of
// keeping them all: in the order of creds, as soon as it and every one
// before it are done. A run over thousands of credentials then holds only
// the outcomes that finished ahead of a slower one, and its caller can
// print each as it comes. yield is called from one goroutine at a time
// and, while it runs, holds back the outcomes after it and the one
// worker calling it, not the other rotations; RotateEachFunc returns
// once every credential is done and yielded.
func (e *Engine) RotateEachFunc(ctx context.Context, creds []*Credential, opts EachOptions, yield func(Outcome)) {
	e.init()
	var (
		mu       sync.Mutex
		done     = make([]*Outcome, len(creds))
		next     int
		yielding bool // a worker is handing outcomes over
	)
	// A fixed set of workers takes the credentials in order: a goroutine
	// per credential would start each rotation on a fresh stack and grow
	// it again, step by step, a thousand times over.
	todo := make(chan int)
	var wg sync.WaitGroup
	for range min(max(opts.Parallel, 1), len(creds)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range todo {
				out := e.rotateOne(ctx, creds[i], opts)
				mu.Lock()
				done[i] = &out
				if yielding {
					// The worker handing over will take this one too.
					mu.Unlock()
					continue
				}
				yielding = true
				for next < len(done) && done[next] != nil {
					o := done[next]
					done[next] = nil
					next++
					// Outside the lock, so a slow yield holds back only
					// this worker, never the others' rotations.
					mu.Unlock()
					yield(*o)
					mu.Lock()
				}
				yielding = false
				mu.Unlock()
			}
		}()
	}
	for i := range creds {
		todo <- i
	}
	close(todo)
	wg.Wait()
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
