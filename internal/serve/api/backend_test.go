package api_test

import (
	"context"
	"sync"
	"time"

	"github.com/rotorhq/rotor/internal/engine"
	"github.com/rotorhq/rotor/internal/resolve"
	"github.com/rotorhq/rotor/internal/serve"
	"github.com/rotorhq/rotor/internal/store"
)

// testBackend is serve.Backend over a real engine and store whose Enqueue
// runs the job at once, in the caller's goroutine: the API's tests need
// the job's effects, not River's queue (the service core tests that).
type testBackend struct {
	cfg *resolve.Config
	eng *engine.Engine
	st  store.Store

	mu   sync.Mutex
	jobs []*serve.Job
	keys map[string]int64
}

var _ serve.Backend = (*testBackend)(nil)

func (b *testBackend) Config() *resolve.Config { return b.cfg }
func (b *testBackend) Engine() *engine.Engine  { return b.eng }
func (b *testBackend) Store() store.Store      { return b.st }

func (b *testBackend) Enqueue(ctx context.Context, req serve.Request) (*serve.Job, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.keys == nil {
		b.keys = map[string]int64{}
	}
	if id, ok := b.keys[req.IdempotencyKey]; ok && req.IdempotencyKey != "" {
		j := *b.jobs[id-1]
		j.Duplicate = true
		return &j, nil
	}
	cr, err := b.cfg.Credential(req.Credential)
	if err != nil {
		return nil, serve.ErrUnknownCredential
	}
	now := time.Now().UTC()
	job := &serve.Job{ID: int64(len(b.jobs) + 1), Credential: cr.Name, Kind: req.Kind, Trigger: req.Trigger, Actor: req.Actor,
		Attempt: 1, CreatedAt: now, ScheduledAt: now}
	var res *engine.Result
	switch req.Kind {
	case serve.KindRotate, serve.KindRevoke:
		res, err = b.eng.Rotate(ctx, cr, engine.Options{Trigger: string(req.Trigger), Revoke: req.Kind == serve.KindRevoke})
	case serve.KindRetire:
		res, err = b.eng.Retire(ctx, cr, engine.RetireOptions{Now: req.Now, Reason: req.Reason})
	}
	fin := time.Now().UTC()
	job.FinishedAt = &fin
	job.State = "completed"
	if res != nil {
		job.RotationID = res.RotationID
	}
	if err != nil {
		job.State = "discarded"
		job.Errors = []string{err.Error()}
	}
	b.jobs = append(b.jobs, job)
	if req.IdempotencyKey != "" {
		b.keys[req.IdempotencyKey] = job.ID
	}
	j := *job
	return &j, nil
}

func (b *testBackend) Job(_ context.Context, id int64) (*serve.Job, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if id < 1 || id > int64(len(b.jobs)) {
		return nil, serve.ErrNoJob
	}
	j := *b.jobs[id-1]
	return &j, nil
}

func (b *testBackend) Jobs(_ context.Context, credential string, limit int) ([]*serve.Job, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []*serve.Job
	for i := len(b.jobs) - 1; i >= 0 && (limit == 0 || len(out) < limit); i-- {
		if credential == "" || b.jobs[i].Credential == credential {
			j := *b.jobs[i]
			out = append(out, &j)
		}
	}
	return out, nil
}

func (b *testBackend) QueueDepth(context.Context) (map[serve.Kind]int, error) {
	return map[serve.Kind]int{}, nil
}
func (b *testBackend) Ready(context.Context) error { return nil }
func (b *testBackend) Subscribe(ctx context.Context) <-chan engine.Event {
	ch := make(chan engine.Event)
	go func() { <-ctx.Done(); close(ch) }()
	return ch
}
