package console

import (
	"encoding/json"
	"fmt"
	"net/http"
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

// events streams the progress of rotations as server-sent events,
// ?credential= keeping one credential's. A comment every 15s keeps
// proxies from closing an idle stream.
func (c *console) events(w http.ResponseWriter, r *http.Request, _ *session) {
	fl, ok := w.(http.Flusher)
	if !ok {
		c.fail(w, r, http.StatusInternalServerError, "This server cannot stream events; reload the page to see progress.")
		return
	}
	only := r.URL.Query().Get("credential")
	ctx := r.Context()
	ch := c.opts.Backend.Subscribe(ctx)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	_, _ = fmt.Fprint(w, ": rotor progress\n\n")
	fl.Flush()
	tick := time.NewTicker(15 * time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			_, _ = fmt.Fprint(w, ": keep-alive\n\n")
			fl.Flush()
		case ev, ok := <-ch:
			if !ok {
				return
			}
			if only != "" && ev.Credential != only {
				continue
			}
			data, _ := json.Marshal(progress{Credential: ev.Credential, RotationID: ev.RotationID, Step: ev.Step,
				Target: ev.Target, Status: ev.Status, Detail: ev.Detail})
			if _, err := fmt.Fprintf(w, "event: progress\ndata: %s\n\n", data); err != nil {
				return
			}
			fl.Flush()
		}
	}
}
