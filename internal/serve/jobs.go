package serve

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/rotorhq/rotor/internal/config"
	"github.com/rotorhq/rotor/internal/engine"
	"github.com/rotorhq/rotor/internal/provider"
	"github.com/rotorhq/rotor/internal/store"
)

// jobKind is River's kind for every rotor job; what the job does is its
// Action. One kind keeps one worker and one uniqueness rule.
const jobKind = "rotor_credential"

// jobArgs is a job as River stores it (JSON in river_job.args). Only the
// fields tagged unique take part in uniqueness: a credential has at most
// one job of each action queued or running, whoever asked — and, for
// rotations, one of each sort: the scheduler's, which rotates only if the
// credential is still due when it runs, and an asked-for one (API,
// console, leak), which always rotates. Were they one, a request that
// arrived while the scheduler's job waited would be answered with a job
// that then finds a rotation done since and does nothing.
type jobArgs struct {
	Credential string  `json:"credential" river:"unique"`
	Action     Kind    `json:"action" river:"unique"`
	IfDue      bool    `json:"if_due,omitempty" river:"unique"`
	Trigger    Trigger `json:"trigger"`
	Actor      string  `json:"actor"`
	Reason     string  `json:"reason,omitempty"`
	Now        bool    `json:"now,omitempty"`
}

func (jobArgs) Kind() string { return jobKind }

// activeStates are the states in which a job counts as queued or running.
var activeStates = []rivertype.JobState{
	rivertype.JobStateAvailable,
	rivertype.JobStatePending,
	rivertype.JobStateRetryable,
	rivertype.JobStateRunning,
	rivertype.JobStateScheduled,
}

// jobMeta is what rotor keeps in a job's metadata.
type jobMeta struct {
	IdempotencyKey string `json:"idempotency_key,omitempty"`
}

// jobOutput is what a finished attempt records (River's job output).
type jobOutput struct {
	RotationID int64  `json:"rotation_id,omitempty"`
	Outcome    string `json:"outcome,omitempty"`
}

// worker runs every rotor job by calling the engine with the credential
// as the config in force defines it.
type worker struct {
	river.WorkerDefaults[jobArgs]
	s *Service
}

// Timeout covers the longest the engine may legitimately take: the test,
// every target's writes with their retries and reloads (a redeploy that
// must finish), and the wait for the old role's evidence. A job that
// outlives it is cancelled; the journal keeps where it got to.
func (w *worker) Timeout(job *river.Job[jobArgs]) time.Duration {
	cfg, release := w.s.cfg.acquire()
	defer release()
	cr, err := cfg.Credential(job.Args.Credential)
	if err != nil {
		return time.Minute
	}
	return jobTimeout(cr)
}

func jobTimeout(cr *engine.Credential) time.Duration {
	d := cr.TestTimeout + max(cr.DrainWait, cr.DrainTimeout) + 5*time.Minute
	for _, t := range cr.Targets {
		d += time.Duration(max(cr.Attempts, 1))*(cr.TargetTimeout+cr.MaxBackoff) + t.ReloadTimeout
	}
	return d
}

func (w *worker) Work(ctx context.Context, job *river.Job[jobArgs]) error {
	s := w.s
	cfg, release := s.cfg.acquire()
	defer release()
	a := job.Args
	log := s.log.With("job", job.ID, "credential", a.Credential, "action", a.Action, "trigger", a.Trigger, "attempt", job.Attempt)
	cr, err := cfg.Credential(a.Credential)
	if err != nil {
		log.Warn("job for a credential no longer in the config: cancelled")
		return river.JobCancel(fmt.Errorf("%s is no longer in the config in force; nothing was done", a.Credential))
	}
	if _, busy := s.working.LoadOrStore(cr.Name, job.ID); busy {
		return river.JobSnooze(2 * time.Second)
	}
	defer s.working.Delete(cr.Name)
	var res *engine.Result
	started := s.now()
	defer func() {
		if s.obs != nil && res != nil {
			s.obs(res)
		}
		if s.fin != nil && res != nil && res.RotationID != 0 {
			result := string(res.Status)
			if err != nil {
				result = "failed"
			}
			s.fin(cr.Name, cr.Strategy, result, s.now().Sub(started))
		}
	}()
	switch a.Action {
	case KindRotate, KindRevoke:
		if a.IfDue || a.Action == KindRotate && a.Trigger == TriggerSchedule {
			// The scheduler judged it due a moment ago; a rotation that
			// finished since (another job, the CLI) makes it not due, and
			// one due time must not rotate twice. (A job queued by a rotor
			// before if_due existed is known by its trigger.)
			due, err := s.stillDue(ctx, cr)
			if err != nil {
				return err
			}
			if !due {
				log.Info("no longer due: nothing to do")
				return record(ctx, jobOutput{Outcome: "no longer due"})
			}
		}
		// The rotation carries the job's id in its trigger. A job that runs
		// again after its rotation finished (River rescued it from a
		// replica that died between the rotation's end and the job's) must
		// not rotate a second time for one request.
		tag := jobTrigger(a.Trigger, job.ID)
		if done, err := s.alreadyRotated(ctx, cr.Name, tag); err != nil {
			return err
		} else if done != nil {
			log.Info("rotation of this job already finished", "rotation", done.ID)
			return record(ctx, jobOutput{RotationID: done.ID, Outcome: done.Outcome})
		}
		res, err = s.eng.Rotate(ctx, cr, engine.Options{Trigger: tag, Revoke: a.Action == KindRevoke})
	case KindRetire:
		res, err = s.eng.Retire(ctx, cr, engine.RetireOptions{Now: a.Now, Reason: a.Reason})
		if errors.Is(err, engine.ErrNothingToRetire) {
			// Not a failure to retry: the job ends cancelled with the
			// reason, which the API shows.
			log.Info("nothing to retire")
			return river.JobCancel(fmt.Errorf("%s: %w", cr.Name, err))
		}
	default:
		return river.JobCancel(fmt.Errorf("unknown job action %q", a.Action))
	}
	if res != nil {
		if rerr := record(ctx, jobOutput{RotationID: res.RotationID, Outcome: res.Outcome}); rerr != nil {
			err = errors.Join(err, rerr)
		}
	}
	if err != nil {
		return s.classify(log, err)
	}
	if res != nil && res.Retirement != nil && res.Retirement.State == engine.RetirementPending {
		// The evidence is not in yet (a redeploy still rolling, the quiet
		// period not over): look again later rather than hold a worker.
		wait := max(cr.DrainPoll, 5*time.Second)
		log.Info("old role awaits retirement", "role", res.Retirement.Role, "retires_when", res.Retirement.RetiresWhen, "next_look", wait.String())
		if a.Action == KindRetire {
			return river.JobSnooze(wait)
		}
		if _, err := s.insert(ctx, jobArgs{Credential: cr.Name, Action: KindRetire, Trigger: a.Trigger, Actor: a.Actor},
			&river.InsertOpts{ScheduledAt: s.now().Add(wait)}, ""); err != nil {
			return fmt.Errorf("schedule the retirement of %s: %w", res.Retirement.Role, err)
		}
	}
	log.Info("job done", "rotation", resultID(res), "outcome", resultOutcome(res))
	return nil
}

// jobTrigger is the trigger recorded with a job's rotation: why, and
// which job ("api/job-42").
func jobTrigger(t Trigger, id int64) string { return fmt.Sprintf("%s/job-%d", t, id) }

// alreadyRotated is the finished rotation of cred that the job tagged
// trigger started, if its latest rotation is one.
func (s *Service) alreadyRotated(ctx context.Context, cred, trigger string) (*store.Rotation, error) {
	last, err := s.st.ListRotations(ctx, store.ListRotationsParams{Credential: cred, Limit: 1})
	if err != nil {
		return nil, fmt.Errorf("%s: read rotations: %w", cred, err)
	}
	if len(last) == 1 && last[0].Trigger == trigger && last[0].Status != store.StatusActive {
		return last[0], nil
	}
	return nil, nil
}

func resultID(r *engine.Result) int64 {
	if r == nil {
		return 0
	}
	return r.RotationID
}

func resultOutcome(r *engine.Result) string {
	if r == nil {
		return ""
	}
	return r.Outcome
}

func record(ctx context.Context, out jobOutput) error {
	if err := river.RecordOutput(ctx, out); err != nil {
		return fmt.Errorf("record the job's output: %w", err)
	}
	return nil
}

// classify turns an engine error into River's verdict:
//
//   - another holder has the credential's lease (a replica still working
//     on it, a person running the CLI): snooze until the lease would
//     expire, without spending an attempt;
//   - a mistake no retry can fix (the config, a role that does not exist):
//     cancel, with the error kept on the job;
//   - anything else (a target that answered 500 after the engine's own
//     retries, the database unreachable, the job's time up): return it, and
//     River retries with its backoff; the engine resumes the rotation from
//     its journal.
func (s *Service) classify(log interface{ Warn(string, ...any) }, err error) error {
	var busy *engine.InProgressError
	var cfgErr *config.Error
	var cfgErrs config.Errors
	switch {
	case errors.As(err, &busy):
		wait := min(max(time.Until(busy.Until), time.Second), time.Minute)
		log.Warn("credential busy: snoozed", "holder", busy.Holder, "wait", wait.String())
		return river.JobSnooze(wait)
	case errors.As(err, &cfgErr), errors.As(err, &cfgErrs), errors.Is(err, provider.ErrRoleNotFound):
		log.Warn("job failed for good: cancelled", "error", err.Error())
		return river.JobCancel(err)
	}
	log.Warn("job failed: River retries it", "error", err.Error())
	return err
}

// jobFromRow is a River row as the API shows it.
func jobFromRow(row *rivertype.JobRow) (*Job, error) {
	var a jobArgs
	if err := json.Unmarshal(row.EncodedArgs, &a); err != nil {
		return nil, fmt.Errorf("job %d: read its arguments: %w", row.ID, err)
	}
	j := &Job{ID: row.ID, Credential: a.Credential, Kind: a.Action, Trigger: a.Trigger, Actor: a.Actor,
		State: string(row.State), Attempt: row.Attempt, CreatedAt: row.CreatedAt.UTC(), ScheduledAt: row.ScheduledAt.UTC()}
	if row.FinalizedAt != nil {
		t := row.FinalizedAt.UTC()
		j.FinishedAt = &t
	}
	if out := row.Output(); len(out) > 0 {
		var o jobOutput
		if err := json.Unmarshal(out, &o); err == nil {
			j.RotationID = o.RotationID
		}
	}
	for _, e := range row.Errors {
		j.Errors = append(j.Errors, e.Error)
	}
	return j, nil
}
