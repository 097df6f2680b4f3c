// Package webhookfake is a webhook receiver for tests that follows the
// receiving side of rotor's webhook contract (docs/targets/webhook.md,
// "Verifying a delivery"; targets-api.md "Rules for every sink" for
// retries and idempotency keys): it verifies each delivery's signature
// and timestamp with webhook.Verify, answers 401 to one that does not
// verify, treats a repeated Idempotency-Key as already handled, and has
// knobs for the failures a real receiver shows (5xx, 429 with
// Retry-After, redirects, echoing the request in error bodies).
package webhookfake

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"time"

	"github.com/rotorhq/rotor/internal/target/webhook"
)

// Delivery is one request the receiver accepted.
type Delivery struct {
	Header http.Header
	Body   []byte
	// Event is Body decoded.
	Event map[string]any
	// Duplicate reports that its Idempotency-Key had been seen before.
	Duplicate bool
}

// Fault is an answer the receiver gives instead of accepting.
type Fault struct {
	Status int
	// RetryAfter is sent as Retry-After when non-empty.
	RetryAfter string
	// Location is sent with a 3xx.
	Location string
	// Echo puts the request body in the error answer, as careless
	// receivers do; errors built from it must not carry values.
	Echo bool
}

// Receiver is a running fake receiver.
type Receiver struct {
	*httptest.Server
	Secret []byte
	// Now is the receiver's clock for the replay check.
	Now func() time.Time

	mu       sync.Mutex
	faults   []Fault
	always   *Fault
	accepted []Delivery
	rejected int
	seenKeys map[string]bool
	requests int
}

// New starts a receiver sharing secretKey; Close it when done.
func New(secretKey []byte) *Receiver {
	r := &Receiver{Secret: secretKey, Now: time.Now, seenKeys: map[string]bool{}}
	r.Server = httptest.NewServer(http.HandlerFunc(r.serve))
	return r
}

func (r *Receiver) serve(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.requests++
	var f *Fault
	switch {
	case len(r.faults) > 0:
		f = &r.faults[0]
		r.faults = r.faults[1:]
	case r.always != nil:
		f = r.always
	}
	if f != nil {
		if f.RetryAfter != "" {
			w.Header().Set("Retry-After", f.RetryAfter)
		}
		if f.Location != "" {
			w.Header().Set("Location", f.Location)
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(f.Status)
		msg := "receiver unavailable"
		if f.Echo {
			msg = "could not process " + string(body)
		}
		_ = json.NewEncoder(w).Encode(map[string]string{"error": msg})
		return
	}
	if req.Method != http.MethodPost || req.Header.Get("Content-Type") != "application/json" {
		http.Error(w, `{"error":"expected a JSON POST"}`, http.StatusBadRequest)
		return
	}
	if err := webhook.Verify(r.Secret, req.Header, body, r.Now(), webhook.DefaultTolerance); err != nil {
		r.rejected++
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		_ = json.NewEncoder(w).Encode(map[string]string{"error": err.Error()})
		return
	}
	var ev map[string]any
	if err := json.Unmarshal(body, &ev); err != nil {
		http.Error(w, `{"error":"body is not JSON"}`, http.StatusBadRequest)
		return
	}
	d := Delivery{Header: req.Header.Clone(), Body: body, Event: ev}
	if key := req.Header.Get(webhook.HeaderIdempotency); key != "" {
		d.Duplicate = r.seenKeys[key]
		r.seenKeys[key] = true
	}
	r.accepted = append(r.accepted, d)
	w.WriteHeader(http.StatusNoContent)
}

// FailNext makes the next len(faults) requests fail, in order.
func (r *Receiver) FailNext(faults ...Fault) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.faults = append(r.faults, faults...)
}

// FailAlways makes every later request fail with f (nil: stop failing).
func (r *Receiver) FailAlways(f *Fault) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.always = f
}

// Deliveries returns the accepted deliveries, oldest first.
func (r *Receiver) Deliveries() []Delivery {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Delivery(nil), r.accepted...)
}

// Last returns the newest accepted delivery of event type typ.
func (r *Receiver) Last(typ string) (Delivery, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := len(r.accepted) - 1; i >= 0; i-- {
		if r.accepted[i].Event["type"] == typ {
			return r.accepted[i], true
		}
	}
	return Delivery{}, false
}

// Rejected counts deliveries whose signature did not verify.
func (r *Receiver) Rejected() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.rejected
}

// Requests counts every request, accepted or not.
func (r *Receiver) Requests() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.requests
}

// String describes the receiver for failure messages.
func (r *Receiver) String() string { return fmt.Sprintf("webhookfake at %s", r.URL) }
