// Package fakefaults holds the fault knobs the HTTP contract fakes share
// (Vercel, Render, Fly.io, Railway, GitHub, GitLab): fail the next requests, rate-limit after a
// number of requests, delay every answer. Each fake embeds Faults, so the
// knobs are methods of the fake, and writes the answers in its own API's
// shape (error bodies, rate-limit headers).
package fakefaults

import (
	"net"
	"net/http"
	"sync"
	"time"
)

// Faults is safe for concurrent use; the zero value injects nothing.
type Faults struct {
	mu         sync.Mutex
	failNext   int
	failStatus int
	limiting   bool
	limitAfter int
	wait       time.Duration
	served     int
	delay      time.Duration
}

// FailNext makes the next n authorised requests fail with status; fakes
// answer with a body that echoes the request, as careless APIs do.
func (f *Faults) FailNext(n, status int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failNext, f.failStatus = n, status
}

// RateLimit lets after more authorised requests through, then answers
// every further one 429 until NoRateLimit. wait is how long the fake tells
// the client to wait (Retry-After or a reset time, in the API's own way;
// zero: no advice).
func (f *Faults) RateLimit(after int, wait time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.limiting, f.limitAfter, f.wait, f.served = true, after, wait, 0
}

// Limit is RateLimit(n, wait), or NoRateLimit for n < 0.
func (f *Faults) Limit(n int, wait time.Duration) {
	if n < 0 {
		f.NoRateLimit()
		return
	}
	f.RateLimit(n, wait)
}

// NoRateLimit turns RateLimit off.
func (f *Faults) NoRateLimit() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.limiting = false
}

// SetDelay delays every answer by d (or until the client gives up).
func (f *Faults) SetDelay(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.delay = d
}

// Delay waits the configured delay; false means the client gave up and
// the fake should not answer.
func (f *Faults) Delay(r *http.Request) bool {
	f.mu.Lock()
	d := f.delay
	f.mu.Unlock()
	if d <= 0 {
		return true
	}
	select {
	case <-time.After(d):
		return true
	case <-r.Context().Done():
		return false
	}
}

// Verdict is what one authorised request gets.
type Verdict struct {
	// Limited: answer 429, advising Wait.
	Limited bool
	Wait    time.Duration
	// Fail: answer Status.
	Fail   bool
	Status int
}

// Next counts one authorised request and decides its fate.
func (f *Faults) Next() Verdict {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.served++
	v := Verdict{Limited: f.limiting && f.served > f.limitAfter, Wait: f.wait}
	if !v.Limited && f.failNext > 0 {
		// A request answered 429 does not use up an injected failure.
		v.Fail, v.Status = true, f.failStatus
		f.failNext--
	}
	return v
}

// ClosedAddr is a loopback host:port where nothing listens: it was bound
// and closed, so connecting to it is refused by the kernel — a real
// "connection refused" for a target's client to meet.
func ClosedAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	addr := ln.Addr().String()
	return addr, ln.Close()
}
