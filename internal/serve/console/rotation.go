package console

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"

	"github.com/rotorhq/rotor/internal/serve"
	"github.com/rotorhq/rotor/internal/store"
)

// rotationView is a rotation with its journal and its targets' deliveries.
type rotationView struct {
	*store.Rotation
	Steps      []stepLine
	Deliveries []*store.Delivery
}

// rotationPage is one rotation and, while it runs, its live progress.
type rotationPage struct {
	head
	R    *rotationView
	Live bool
}

// jobPage is one job and, once it started one, its rotation (R).
type jobPage struct {
	head
	J    *serve.Job
	R    *rotationView
	Live bool
}

func (c *console) rotationDetail(r *http.Request, rot *store.Rotation) (*rotationView, error) {
	st := c.opts.Backend.Store()
	steps, err := st.ListSteps(r.Context(), store.ListStepsParams{RotationID: rot.ID})
	if err != nil {
		return nil, err
	}
	dels, err := st.ListDeliveries(r.Context(), store.ListDeliveriesParams{RotationID: rot.ID})
	if err != nil {
		return nil, err
	}
	return &rotationView{Rotation: rot, Steps: stepLines(rot, steps), Deliveries: dels}, nil
}

// findRotation reads one rotation. The store has no lookup by id; the
// API scans the list the same way (rotations are few and indexed).
func (c *console) findRotation(r *http.Request, id int64) (*store.Rotation, error) {
	return c.findRotationCtx(r.Context(), id)
}

func (c *console) findRotationCtx(ctx context.Context, id int64) (*store.Rotation, error) {
	rots, err := c.opts.Backend.Store().ListRotations(ctx, store.ListRotationsParams{})
	if err != nil {
		return nil, err
	}
	i := slices.IndexFunc(rots, func(x *store.Rotation) bool { return x.ID == id })
	if i < 0 {
		return nil, nil
	}
	return rots[i], nil
}

func pathID(r *http.Request) (int64, error) {
	n, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || n < 1 {
		return 0, fmt.Errorf("%q is not an id; ids are positive integers", r.PathValue("id"))
	}
	return n, nil
}

func (c *console) rotation(w http.ResponseWriter, r *http.Request, se *session) {
	n, err := pathID(r)
	if err != nil {
		c.fail(w, r, http.StatusBadRequest, err.Error())
		return
	}
	rot, err := c.findRotation(r, n)
	if err != nil {
		c.internalError(w, r, err)
		return
	}
	if rot == nil {
		c.fail(w, r, http.StatusNotFound, fmt.Sprintf("There is no rotation %d. The credential pages list the rotations there are.", n))
		return
	}
	v, err := c.rotationDetail(r, rot)
	if err != nil {
		c.internalError(w, r, err)
		return
	}
	refresh := 0
	if rot.Status == store.StatusActive {
		refresh = 5
	}
	c.render(w, r, http.StatusOK, se, &rotationPage{head: head{Title: fmt.Sprintf("Rotation %d — %s", rot.ID, rot.Credential), Refresh: refresh},
		R: v, Live: rot.Status == store.StatusActive})
}

// jobDone is a River job state after which nothing more happens.
func jobDone(state string) bool {
	return state == "completed" || state == "cancelled" || state == "discarded"
}

// job shows one job while it waits and runs; once it ran a rotation the
// page shows that rotation's journal too.
func (c *console) job(w http.ResponseWriter, r *http.Request, se *session) {
	n, err := pathID(r)
	if err != nil {
		c.fail(w, r, http.StatusBadRequest, err.Error())
		return
	}
	job, err := c.opts.Backend.Job(r.Context(), n)
	if errors.Is(err, serve.ErrNoJob) {
		c.fail(w, r, http.StatusNotFound, fmt.Sprintf("There is no job %d.", n))
		return
	}
	if err != nil {
		c.internalError(w, r, err)
		return
	}
	var v *rotationView
	if job.RotationID != 0 {
		rot, err := c.findRotation(r, job.RotationID)
		if err != nil {
			c.internalError(w, r, err)
			return
		}
		if rot != nil {
			if v, err = c.rotationDetail(r, rot); err != nil {
				c.internalError(w, r, err)
				return
			}
		}
	}
	done := jobDone(job.State)
	refresh := 0
	if !done {
		refresh = 3
	}
	c.render(w, r, http.StatusOK, se, &jobPage{head: head{Title: fmt.Sprintf("Job %d — %s %s", job.ID, job.Kind, job.Credential), Refresh: refresh},
		J: job, R: v, Live: !done})
}
