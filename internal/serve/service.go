package serve

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/rotorhq/rotor/internal/engine"
	"github.com/rotorhq/rotor/internal/resolve"
	"github.com/rotorhq/rotor/internal/store"
)

// Options configure a Service.
type Options struct {
	// Config is the configuration to start with; Reload swaps it. The
	// service closes it (and every later one) when it is done with it.
	Config *resolve.Config
	// Engine runs the rotations; its Store is the state store, which
	// must be the SQLite or PostgreSQL store (River's tables go in it).
	Engine *engine.Engine
	Logger *slog.Logger
	// ID names this replica in River (leader election, which client
	// worked a job) and in the engine's leases; a random one by default.
	ID string
	// Workers is how many jobs run at once on this replica (default 4).
	Workers int
	// Tick is how often the leader looks for due credentials and pending
	// retirements (default 1m).
	Tick time.Duration
	// RescueAfter is how long a job may stay running before River takes
	// it for dead (its replica killed) and runs it again elsewhere, where
	// the engine resumes the rotation from its journal. The engine's lease
	// keeps a live holder from being overtaken: a rescued job of a replica
	// still working only snoozes. Default 10m.
	RescueAfter time.Duration
	// MaxAttempts bounds River's retries of a failing job (default 6:
	// with River's backoff about 17 minutes in all).
	MaxAttempts int
	// Now is the clock (tests); time.Now by default.
	Now func() time.Time
	// Finished, when set, is called once for each rotation a job of this
	// replica ran to an end (a rotate, revoke or retire that returned),
	// with the rotation's status ("failed" when it stopped with an error)
	// and how long the job took: the metrics count them.
	Finished func(credential, strategy, result string, d time.Duration)
	// Observe, when set, hears every result a job of this replica got
	// (the metrics take the old role's sessions from it).
	Observe func(*engine.Result)
}

// Service is `rotor serve`'s core: the job queue on River over the state
// store, its workers and the leader's scheduler. It implements Backend.
type Service struct {
	eng  *engine.Engine
	st   store.Store
	log  *slog.Logger
	cfg  *configs
	hub  *hub
	q    queue
	back *backing
	now  func() time.Time
	id   string
	fin  func(credential, strategy, result string, d time.Duration)
	obs  func(*engine.Result)
	// schema is the store's schema version when the service started
	// (the store migrated it to what this binary knows).
	schema int
	// working holds the credentials a job of this replica is working on.
	// The engine's lease keeps processes apart, but every job of one
	// replica holds it as the same holder, so jobs of one credential (a
	// rotate and a revoke) are kept apart here.
	working sync.Map
}

var _ Backend = (*Service)(nil)

// New migrates River's tables (with rotor's, already current when the
// store opened) and builds the queue; Start runs it.
func New(ctx context.Context, opts Options) (*Service, error) {
	if opts.Engine == nil || opts.Engine.Store == nil || opts.Config == nil {
		return nil, errors.New("serve.New: Engine (with its Store) and Config are required")
	}
	back, err := backingFor(opts.Engine.Store)
	if err != nil {
		return nil, err
	}
	if err := back.migrate(ctx); err != nil {
		return nil, fmt.Errorf("migrate River's tables in the %s store: %w", back.name, err)
	}
	info, err := opts.Engine.Store.Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("read the %s store: %w", back.name, err)
	}
	s := &Service{eng: opts.Engine, st: opts.Engine.Store, back: back, hub: newHub(),
		log: opts.Logger, now: opts.Now, id: opts.ID, fin: opts.Finished, obs: opts.Observe, schema: info.SchemaVersion}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.cfg = newConfigs(opts.Config, func(err error) { s.log.Warn("close a config no longer in force", "error", err.Error()) })
	if s.now == nil {
		s.now = time.Now
	}
	if s.id == "" {
		s.id = replicaID()
	}
	prev := s.eng.Events
	s.eng.Events = func(ev engine.Event) {
		if prev != nil {
			prev(ev)
		}
		s.hub.publish(ev)
	}
	workers := river.NewWorkers()
	if err := river.AddWorkerSafely(workers, &worker{s: s}); err != nil {
		return nil, err
	}
	tick := cmpOr(opts.Tick, time.Minute)
	rcfg := &river.Config{
		ID:      s.id,
		Logger:  s.log.With("component", "river"),
		Workers: workers,
		Queues:  map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: cmpOr(opts.Workers, 4)}},
		PeriodicJobs: []*river.PeriodicJob{river.NewPeriodicJob(river.PeriodicInterval(tick),
			func() (river.JobArgs, *river.InsertOpts) { return scheduleArgs{}, nil },
			&river.PeriodicJobOpts{ID: "rotor_schedule", RunOnStart: true})},
		MaxAttempts:          cmpOr(opts.MaxAttempts, 6),
		RescueStuckJobsAfter: cmpOr(opts.RescueAfter, 10*time.Minute),
		// Each job's own Timeout applies (worker.Timeout); none by default.
		JobTimeout: -1,
	}
	if err := river.AddWorkerSafely(workers, &scheduler{s: s}); err != nil {
		return nil, err
	}
	if s.q, err = back.open(rcfg); err != nil {
		return nil, fmt.Errorf("start the job queue: %w", err)
	}
	return s, nil
}

func cmpOr[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

func replicaID() string {
	host, _ := os.Hostname()
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return fmt.Sprintf("%s-%d-%s", cmpOr(host, "rotor"), os.Getpid(), hex.EncodeToString(b))
}

// Start runs the workers and, on the elected leader, the scheduler.
func (s *Service) Start(ctx context.Context) error { return s.q.Start(ctx) }

// Stop stops taking jobs and waits for the running ones until ctx ends;
// then it cancels them (each stops at its next journaled step, and
// another replica resumes it from the journal) and waits for them to
// return. It closes the configs in force.
func (s *Service) Stop(ctx context.Context) error {
	err := s.q.Stop(ctx)
	if err != nil && ctx.Err() != nil {
		s.log.Warn("running jobs did not finish in time: cancelling them; another replica resumes them from the journal")
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		err = s.q.StopAndCancel(cctx)
	}
	s.cfg.close()
	return err
}

// Reload swaps the config in force. Running jobs keep the one they
// started with, which is closed when the last of them ends.
func (s *Service) Reload(cfg *resolve.Config) { s.cfg.swap(cfg) }

// ID is the replica's name.
func (s *Service) ID() string { return s.id }

func (s *Service) Config() *resolve.Config { return s.cfg.current() }
func (s *Service) Engine() *engine.Engine  { return s.eng }
func (s *Service) Store() store.Store      { return s.st }

// Enqueue implements Backend.
func (s *Service) Enqueue(ctx context.Context, req Request) (*Job, error) {
	switch req.Kind {
	case KindRotate, KindRevoke, KindRetire:
	default:
		return nil, fmt.Errorf("unknown job kind %q (want rotate, revoke or retire)", req.Kind)
	}
	cr, err := s.Config().Credential(req.Credential)
	if err != nil {
		return nil, ErrUnknownCredential
	}
	if req.IdempotencyKey != "" {
		res, err := s.q.JobList(ctx, river.NewJobListParams().Kinds(jobKind).
			Where("metadata ->> 'idempotency_key' = @key", river.NamedArgs{"key": req.IdempotencyKey}).
			States(allStates...).First(1))
		if err != nil {
			return nil, fmt.Errorf("look up the Idempotency-Key: %w", err)
		}
		if len(res.Jobs) > 0 {
			j, err := jobFromRow(res.Jobs[0])
			if err != nil {
				return nil, err
			}
			j.Duplicate = true
			return j, nil
		}
	}
	return s.insert(ctx, jobArgs{Credential: cr.Name, Action: req.Kind, Trigger: req.Trigger, Actor: req.Actor, Reason: req.Reason, Now: req.Now},
		nil, req.IdempotencyKey)
}

var allStates = append([]rivertype.JobState{rivertype.JobStateCancelled, rivertype.JobStateCompleted, rivertype.JobStateDiscarded}, activeStates...)

// insert queues a job unless one of the same credential, action and sort
// (see jobArgs) is already queued or running, which it returns with
// Duplicate set.
func (s *Service) insert(ctx context.Context, a jobArgs, opts *river.InsertOpts, idemKey string) (*Job, error) {
	if opts == nil {
		opts = &river.InsertOpts{}
	}
	opts.UniqueOpts = river.UniqueOpts{ByArgs: true, ByState: activeStates}
	a.IfDue = a.Action == KindRotate && a.Trigger == TriggerSchedule
	if idemKey != "" {
		m, err := json.Marshal(jobMeta{IdempotencyKey: idemKey})
		if err != nil {
			return nil, err
		}
		opts.Metadata = m
	}
	res, err := s.q.Insert(ctx, a, opts)
	if err != nil {
		return nil, fmt.Errorf("queue a %s job for %s: %w", a.Action, a.Credential, err)
	}
	j, err := jobFromRow(res.Job)
	if err != nil {
		return nil, err
	}
	j.Duplicate = res.UniqueSkippedAsDuplicate
	return j, nil
}

// Job implements Backend.
func (s *Service) Job(ctx context.Context, id int64) (*Job, error) {
	row, err := s.q.JobGet(ctx, id)
	if errors.Is(err, river.ErrNotFound) {
		return nil, ErrNoJob
	}
	if err != nil {
		return nil, fmt.Errorf("read job %d: %w", id, err)
	}
	if row.Kind != jobKind {
		return nil, ErrNoJob
	}
	return jobFromRow(row)
}

// Jobs implements Backend.
func (s *Service) Jobs(ctx context.Context, credential string, limit int) ([]*Job, error) {
	p := river.NewJobListParams().Kinds(jobKind).States(allStates...).
		OrderBy(river.JobListOrderByID, river.SortOrderDesc).First(cmpOr(limit, 100))
	if credential != "" {
		p = p.Where("args ->> 'credential' = @credential", river.NamedArgs{"credential": credential})
	}
	res, err := s.q.JobList(ctx, p)
	if err != nil {
		return nil, fmt.Errorf("list jobs: %w", err)
	}
	out := make([]*Job, 0, len(res.Jobs))
	for _, row := range res.Jobs {
		j, err := jobFromRow(row)
		if err != nil {
			return nil, err
		}
		out = append(out, j)
	}
	return out, nil
}

// QueueDepth implements Backend: the jobs waiting to run (available,
// scheduled or waiting to retry), by kind.
func (s *Service) QueueDepth(ctx context.Context) (map[Kind]int, error) {
	depth := map[Kind]int{KindRotate: 0, KindRevoke: 0, KindRetire: 0}
	var after *river.JobListCursor
	for {
		p := river.NewJobListParams().Kinds(jobKind).
			States(rivertype.JobStateAvailable, rivertype.JobStateScheduled, rivertype.JobStateRetryable, rivertype.JobStatePending).
			First(1000)
		if after != nil {
			p = p.After(after)
		}
		res, err := s.q.JobList(ctx, p)
		if err != nil {
			return nil, fmt.Errorf("count queued jobs: %w", err)
		}
		for _, row := range res.Jobs {
			var a jobArgs
			if err := json.Unmarshal(row.EncodedArgs, &a); err == nil {
				depth[a.Action]++
			}
		}
		if len(res.Jobs) < 1000 || res.LastCursor == nil {
			return depth, nil
		}
		after = res.LastCursor
	}
}

// Ready implements Backend.
func (s *Service) Ready(ctx context.Context) error {
	info, err := s.st.Info(ctx)
	if err != nil {
		return fmt.Errorf("the %s store does not answer: %w", s.back.name, err)
	}
	if info.SchemaVersion != s.schema {
		return fmt.Errorf("the store's schema is at version %d, this replica started on %d: a newer rotor migrated it; upgrade this replica", info.SchemaVersion, s.schema)
	}
	return s.back.validate(ctx)
}

// Subscribe implements Backend.
func (s *Service) Subscribe(ctx context.Context) <-chan engine.Event { return s.hub.subscribe(ctx) }
