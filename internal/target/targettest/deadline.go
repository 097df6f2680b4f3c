package targettest

import (
	"context"
	"sync"
	"time"
)

// Deadline is a context whose deadline passes when the test says so: a
// reload_timeout running out at a chosen point of a deploy or rollout,
// whatever the machine's speed (a 50 ms timeout is passed before the first
// request on a loaded CI machine).
type Deadline struct {
	context.Context
	done chan struct{}
	once sync.Once
}

// NewDeadline is a Deadline under parent.
func NewDeadline(parent context.Context) *Deadline {
	return &Deadline{Context: parent, done: make(chan struct{})}
}

// Pass makes the deadline pass now.
func (d *Deadline) Pass() { d.once.Do(func() { close(d.done) }) }

// PassWhen makes the deadline pass as soon as cond holds, checked every
// millisecond until the parent ends.
func (d *Deadline) PassWhen(cond func() bool) {
	go func() {
		for d.Context.Err() == nil {
			if cond() {
				d.Pass()
				return
			}
			time.Sleep(time.Millisecond)
		}
	}()
}

func (d *Deadline) Done() <-chan struct{} { return d.done }

func (d *Deadline) Err() error {
	select {
	case <-d.done:
		return context.DeadlineExceeded
	default:
		return nil
	}
}
