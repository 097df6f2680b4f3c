package console_test

import (
	"context"
	"sync"
	"time"

	"github.com/rotorhq/rotor/internal/engine"
	"github.com/rotorhq/rotor/internal/resolve"
	"github.com/rotorhq/rotor/internal/serve"
	"github.com/rotorhq/rotor/internal/store"
)

// testBackend is serve.Backend over a real engine and store. Enqueue runs
// the job at once in the caller's goroutine, or, with async, in its own
// goroutine (as River would) so a browser can watch it live. The engine's
// progress events go to every subscriber, as the service's do.
type testBackend struct {
	cfg   *resolve.Config
	eng   *engine.Engine
	st    store.Store
	async bool

	mu   sync.Mutex
	jobs []*serve.Job
	subs map[chan engine.Event]struct{}
	wg   sync.WaitGroup
	// gate, when set, is received from before a job runs (tests hold a
	// rotation back until the browser is watching).
	gate chan struct{}
}

var _ serve.Backend = (*testBackend)(nil)

func (b *testBackend) Config() *resolve.Config { return b.cfg }
func (b *testBackend) Engine() *engine.Engine  { return b.eng }
func (b *testBackend) Store() store.Store      { return b.st }

// publish is the engine's Events hook.
func (b *testBackend) publish(ev engine.Event) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for ch := range b.subs {
		select {
		case ch <- ev:
		default: // a slow viewer misses events rather than stalling a rotation
		}
	}
}

func (b *testBackend) Enqueue(ctx context.Context, req serve.Request) (*serve.Job, error) {
	cr, err := b.cfg.Credential(req.Credential)
	if err != nil {
		return nil, serve.ErrUnknownCredential
	}
	b.mu.Lock()
	now := time.Now().UTC()
	job := &serve.Job{ID: int64(len(b.jobs) + 1), Credential: cr.Name, Kind: req.Kind, Trigger: req.Trigger, Actor: req.Actor,
		Attempt: 1, CreatedAt: now, ScheduledAt: now, State: "available"}
	b.jobs = append(b.jobs, job)
	out := *job
	b.mu.Unlock()
	run := func(ctx context.Context) {
		if b.gate != nil {
			<-b.gate
		}
		b.setJob(job.ID, func(j *serve.Job) { j.State = "running" })
		var res *engine.Result
		var err error
		switch req.Kind {
		case serve.KindRotate, serve.KindRevoke:
			res, err = b.eng.Rotate(ctx, cr, engine.Options{Trigger: string(req.Trigger), Revoke: req.Kind == serve.KindRevoke})
		case serve.KindRetire:
			res, err = b.eng.Retire(ctx, cr, engine.RetireOptions{Now: req.Now, Reason: req.Reason})
		}
		b.setJob(job.ID, func(j *serve.Job) {
			fin := time.Now().UTC()
			j.FinishedAt, j.State = &fin, "completed"
			if res != nil {
				j.RotationID = res.RotationID
			}
			if err != nil {
				j.State, j.Errors = "discarded", []string{err.Error()}
			}
		})
	}
	if b.async {
		b.wg.Add(1)
		go func() { defer b.wg.Done(); run(context.WithoutCancel(ctx)) }()
		return &out, nil
	}
	run(ctx)
	return b.Job(ctx, job.ID)
}

func (b *testBackend) setJob(id int64, f func(*serve.Job)) {
	b.mu.Lock()
	defer b.mu.Unlock()
	f(b.jobs[id-1])
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
	ch := make(chan engine.Event, 64)
	b.mu.Lock()
	if b.subs == nil {
		b.subs = map[chan engine.Event]struct{}{}
	}
	b.subs[ch] = struct{}{}
	b.mu.Unlock()
	go func() {
		<-ctx.Done()
		b.mu.Lock()
		delete(b.subs, ch)
		close(ch)
		b.mu.Unlock()
	}()
	return ch
}
