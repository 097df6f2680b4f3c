package serve

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/riverqueue/river"

	"github.com/rotorhq/rotor/internal/engine"
	"github.com/rotorhq/rotor/internal/store"
)

// scheduleArgs is the periodic job River runs on the elected leader only:
// one replica decides what is due, so a due time is never acted on twice.
type scheduleArgs struct{}

func (scheduleArgs) Kind() string { return "rotor_schedule" }

type scheduler struct {
	river.WorkerDefaults[scheduleArgs]
	s *Service
}

// Work looks at every credential of the config in force and queues
//
//   - a rotate job for an interrupted rotation nobody is working on (a
//     replica died; the engine resumes it from the journal),
//   - a retire job for a switched dual rotation whose old role awaits its
//     evidence,
//   - a rotate job (trigger schedule) for each credential its schedule
//     says is due.
//
// Jobs are unique per credential and action while queued or running, so
// a tick that finds work already queued adds nothing.
func (w *scheduler) Work(ctx context.Context, job *river.Job[scheduleArgs]) error {
	s := w.s
	cfg, release := s.cfg.acquire()
	defer release()
	started := s.now()
	var queued, errs int
	rescued, err := s.rescueOrphans(ctx)
	if err != nil {
		errs++
		s.log.Error("rescue the jobs of stopped replicas", "error", err.Error())
	}
	for _, cr := range cfg.Credentials {
		n, err := s.scheduleOne(ctx, cr)
		queued += n
		if err != nil {
			errs++
			s.log.Error("schedule", "credential", cr.Name, "error", err.Error())
		}
	}
	s.log.Info("schedule tick", "credentials", len(cfg.Credentials), "queued", queued, "rescued", rescued, "errors", errs,
		"took", s.now().Sub(started).Round(time.Millisecond).String())
	if ctx.Err() != nil {
		return ctx.Err()
	}
	// One credential's trouble must not hold up the others: they were all
	// looked at; the error is logged and the next tick tries again.
	return nil
}

func (s *Service) scheduleOne(ctx context.Context, cr *engine.Credential) (int, error) {
	last, err := s.st.ListRotations(ctx, store.ListRotationsParams{Credential: cr.Name, Limit: 1})
	if err != nil {
		return 0, fmt.Errorf("read rotations: %w", err)
	}
	a := jobArgs{Credential: cr.Name, Trigger: TriggerSchedule, Actor: "scheduler"}
	if len(last) > 0 {
		switch last[0].Status {
		case store.StatusActive:
			a.Action = KindRotate
			a.Reason = fmt.Sprintf("resume interrupted rotation %d", last[0].ID)
			return s.queueNew(ctx, a)
		case store.StatusSwitched:
			a.Action = KindRetire
			return s.queueNew(ctx, a)
		}
	}
	due, err := s.eng.Due(ctx, cr)
	if err != nil {
		return 0, fmt.Errorf("is it due: %w", err)
	}
	if !due {
		return 0, nil
	}
	a.Action = KindRotate
	return s.queueNew(ctx, a)
}

func (s *Service) queueNew(ctx context.Context, a jobArgs) (int, error) {
	j, err := s.insert(ctx, a, nil, "")
	if err != nil {
		return 0, err
	}
	if j.Duplicate {
		return 0, nil
	}
	s.log.Info("queued", "credential", a.Credential, "action", a.Action, "job", j.ID, "reason", a.Reason)
	return 1, nil
}

// stillDue re-checks a scheduled rotation when its job starts: due by
// the schedule, or an interrupted rotation to resume.
func (s *Service) stillDue(ctx context.Context, cr *engine.Credential) (bool, error) {
	last, err := s.st.ListRotations(ctx, store.ListRotationsParams{Credential: cr.Name, Limit: 1})
	if err != nil {
		return false, fmt.Errorf("%s: read rotations: %w", cr.Name, err)
	}
	if len(last) > 0 && last[0].Status == store.StatusActive {
		return true, nil
	}
	due, err := s.eng.Due(ctx, cr)
	if err != nil && !errors.Is(err, context.Canceled) {
		return false, fmt.Errorf("%s: is it due: %w", cr.Name, err)
	}
	return due, err
}
