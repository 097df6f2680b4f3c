package console

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"
)

// progress is one engine event as the live view receives it.
type progress struct {
	Credential string `json:"credential"`
	RotationID int64  `json:"rotation_id"`
	Step       string `json:"step"`
	Target     string `json:"target,omitempty"`
	Status     string `json:"status"`
	Detail     string `json:"detail,omitempty"`
}

// ended is the last event of a watched job's or rotation's stream.
type ended struct {
	Job      int64  `json:"job_id,omitempty"`
	Rotation int64  `json:"rotation_id,omitempty"`
	State    string `json:"state"`
}

// How often a watched stream looks at the job or rotation it follows, and
// how often an idle stream sends a comment so proxies keep it open.
var (
	watchEvery     = 500 * time.Millisecond
	keepAliveEvery = 15 * time.Second
)

// events streams the progress of rotations as server-sent events,
// ?credential= keeping one credential's.
//
// The engine's events say nothing once a rotation is over (its finish
// step ends it without a "done"), and they come only from the replica
// running the rotation. So a page that follows one job (?job=) or one
// rotation (?rotation=) is not left to guess: the stream reads that
// job's or rotation's state from the store, sends an "end" event when it
// is over, and closes. Without either the stream lasts until the viewer
// leaves.
func (c *console) events(w http.ResponseWriter, r *http.Request, _ *session) {
	fl, ok := w.(http.Flusher)
	if !ok {
		c.fail(w, r, http.StatusInternalServerError, "This server cannot stream events; reload the page to see progress.")
		return
	}
	q := r.URL.Query()
	only := q.Get("credential")
	watch, err := c.watcher(q.Get("job"), q.Get("rotation"))
	if err != nil {
		c.fail(w, r, http.StatusBadRequest, err.Error())
		return
	}
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel() // ends the subscription, which closes ch
	ch := c.opts.Backend.Subscribe(ctx)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	_, _ = fmt.Fprint(w, ": rotor progress\n\n")
	fl.Flush()
	send := func(event string, v any) bool {
		data, _ := json.Marshal(v)
		if _, err := fmt.Fprintf(w, "event: %s\ndata: %s\n\n", event, data); err != nil {
			return false
		}
		fl.Flush()
		return true
	}
	// over says whether the watched job or rotation ended; on an end it
	// sends the "end" event. A read that fails is tried again next tick.
	over := func() bool {
		if watch == nil {
			return false
		}
		e, done := watch(ctx)
		if done {
			send("end", e)
		}
		return done
	}
	if over() {
		return
	}
	keep := time.NewTicker(keepAliveEvery)
	defer keep.Stop()
	var poll <-chan time.Time
	if watch != nil {
		t := time.NewTicker(watchEvery)
		defer t.Stop()
		poll = t.C
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.opts.Done:
			return
		case <-keep.C:
			if _, err := fmt.Fprint(w, ": keep-alive\n\n"); err != nil {
				return
			}
			fl.Flush()
		case <-poll:
			if over() {
				return
			}
		case ev, ok := <-ch:
			if !ok {
				return
			}
			if only != "" && ev.Credential != only {
				continue
			}
			if !send("progress", progress{Credential: ev.Credential, RotationID: ev.RotationID, Step: ev.Step,
				Target: ev.Target, Status: ev.Status, Detail: ev.Detail}) {
				return
			}
		}
	}
}

// watcher returns the check of the job or rotation a stream follows (nil
// for neither); the check reports the end event and whether it is over.
func (c *console) watcher(job, rotation string) (func(context.Context) (ended, bool), error) {
	parse := func(what, s string) (int64, error) {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 1 {
			return 0, fmt.Errorf("%s=%q is not an id; ids are positive integers", what, s)
		}
		return n, nil
	}
	switch {
	case job != "" && rotation != "":
		return nil, fmt.Errorf("follow one job or one rotation, not both; drop job= or rotation=")
	case job != "":
		id, err := parse("job", job)
		if err != nil {
			return nil, err
		}
		return func(ctx context.Context) (ended, bool) {
			j, err := c.opts.Backend.Job(ctx, id)
			if err != nil {
				return ended{}, false
			}
			return ended{Job: id, Rotation: j.RotationID, State: j.State}, jobDone(j.State)
		}, nil
	case rotation != "":
		id, err := parse("rotation", rotation)
		if err != nil {
			return nil, err
		}
		return func(ctx context.Context) (ended, bool) {
			rot, err := c.findRotationCtx(ctx, id)
			if err != nil || rot == nil {
				return ended{}, false
			}
			return ended{Rotation: id, State: string(rot.Status)}, rot.Status.Terminal()
		}, nil
	}
	return nil, nil
}
