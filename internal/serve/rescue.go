package serve

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver"
	"github.com/riverqueue/river/rivertype"

	"github.com/rotorhq/rotor/internal/engine"
	"github.com/rotorhq/rotor/internal/store"
)

// River rescues a job left running by a client that died only once the
// job's own timeout has passed — and a rotation's timeout must cover the
// longest redeploy and drain, tens of minutes. rotor has better evidence
// than a clock: a process working on a credential holds the credential's
// lease in the store and renews it every few seconds. So on every tick
// the leader hands River's rescue operation the running jobs whose
// credential lease has lapsed (nobody renews it: the replica is gone)
// and that started long enough ago to have taken it; another replica
// then resumes the rotation from its journal. A job rescued by mistake
// (its replica alive but between releasing the lease and River recording
// the job's end) only runs again to find its rotation finished.

// orphanAfter is how long a running job without a live lease is given
// before it counts as orphaned: long enough for the job to take the lease
// when it starts and for River to record its end.
func (s *Service) orphanAfter() time.Duration {
	ttl := s.eng.LeaseTTL
	if ttl == 0 {
		ttl = 30 * time.Second
	}
	return max(2*ttl, 5*time.Second)
}

// rescueOrphans rescues the running jobs whose replica stopped.
func (s *Service) rescueOrphans(ctx context.Context) (int, error) {
	res, err := s.q.JobList(ctx, river.NewJobListParams().Kinds(jobKind).States(rivertype.JobStateRunning).First(1000))
	if err != nil {
		return 0, fmt.Errorf("list running jobs: %w", err)
	}
	now := s.now()
	horizon := now.Add(-s.orphanAfter())
	p := &riverdriver.JobRescueManyParams{StuckHorizon: horizon}
	for _, row := range res.Jobs {
		if row.AttemptedAt == nil || row.AttemptedAt.After(horizon) {
			continue
		}
		var a jobArgs
		if err := json.Unmarshal(row.EncodedArgs, &a); err != nil {
			continue
		}
		if _, mine := s.working.Load(a.Credential); mine {
			continue
		}
		l, err := s.st.GetLease(ctx, store.GetLeaseParams{Name: engine.LeaseName(a.Credential)})
		switch {
		case err == nil && l.ExpiresAt.After(now):
			continue // its holder is alive and working
		case err != nil && !errors.Is(err, store.ErrNotFound):
			return 0, fmt.Errorf("read the lease of %s: %w", a.Credential, err)
		}
		by := ""
		if n := len(row.AttemptedBy); n > 0 {
			by = row.AttemptedBy[n-1]
		}
		e, err := json.Marshal(rivertype.AttemptError{At: now, Attempt: row.Attempt,
			Error: fmt.Sprintf("rescued: replica %s stopped renewing the lease of %s", by, a.Credential)})
		if err != nil {
			return 0, err
		}
		p.ID = append(p.ID, row.ID)
		p.Error = append(p.Error, e)
		p.FinalizedAt = append(p.FinalizedAt, nil)
		p.ScheduledAt = append(p.ScheduledAt, now)
		p.State = append(p.State, string(rivertype.JobStateRetryable))
		s.log.Warn("rescuing the job of a replica that stopped", "job", row.ID, "credential", a.Credential, "replica", by)
	}
	if len(p.ID) == 0 {
		return 0, nil
	}
	if err := s.back.rescue(ctx, p); err != nil {
		return 0, fmt.Errorf("rescue %d jobs: %w", len(p.ID), err)
	}
	return len(p.ID), nil
}
