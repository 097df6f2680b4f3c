// Package engine runs rotations: the seven journaled steps of DESIGN.md
// (lock, prepare, apply, test, publish, confirm, finish), their resumption
// after a crash, and the questions asked about them (plan, status, due).
//
// Every step is recorded in the store before and after it runs, and every
// step is safe to run again: resuming replays the journal and continues
// with the same password, so no password the database already accepts is
// ever lost.
package engine

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/rotorhq/rotor/internal/secret"
	"github.com/rotorhq/rotor/internal/store"
)

// Step names, in order.
const (
	StepLock    = "lock"
	StepPrepare = "prepare"
	StepApply   = "apply"
	StepTest    = "test"
	StepPublish = "publish"
	StepConfirm = "confirm"
	StepFinish  = "finish"
)

// Steps lists the step names in order.
var Steps = []string{StepLock, StepPrepare, StepApply, StepTest, StepPublish, StepConfirm, StepFinish}

// ErrInProgress: another process holds the credential's lease.
var ErrInProgress = errors.New("a rotation of this credential is in progress in another process")

// Engine runs rotations against one store. All fields but Store and Sealer
// have working defaults.
type Engine struct {
	Store  store.Store
	Sealer *secret.Sealer

	// Now, Rand, Sleep, Tick and Dial are injected so tests are
	// deterministic. Rand is read from several goroutines at once (retry
	// jitter of targets published in parallel).
	Now   func() time.Time
	Rand  io.Reader
	Sleep func(ctx context.Context, d time.Duration) error
	// Tick returns a channel that receives every d, and a func that stops
	// it (lease renewal).
	Tick func(d time.Duration) (<-chan time.Time, func())
	// Dial logs in with a consumer connection string and runs SELECT 1.
	Dial func(ctx context.Context, url secret.String) error
	// DialAfter is Dial in two halves: it may connect at once, but logs
	// in only once ready is closed (DialPostgresAfter). The test step's
	// first login connects with it while apply sets the password. Nil
	// means every login waits for apply; it defaults to DialPostgresAfter
	// only when Dial is left to its default too.
	DialAfter func(ctx context.Context, url secret.String, ready <-chan struct{}) error

	// Holder identifies this process in leases ("host/pid/nonce").
	Holder   string
	LeaseTTL time.Duration

	// Events receives live progress. It is called from several goroutines
	// at once (targets publish in parallel), so it must be safe for
	// concurrent use, and it must not block for long. Nil drops events.
	Events func(Event)
	Logger *slog.Logger

	// Hooks lets tests stop the engine between steps (crash tests); nil
	// in production.
	Hooks *Hooks

	once sync.Once
	ids  storeIDCache
}

// Hooks are test seams.
type Hooks struct {
	// BeforeStep runs before each step; an error aborts the run there as
	// if the process had died.
	BeforeStep func(step string) error
}

// Event is one progress report.
type Event struct {
	Credential string
	RotationID int64
	Step       string
	// Target is set for per-target events of publish and confirm.
	Target string
	// Status: "start", "done", "failed", "retry", "skip", "wait", "note".
	Status  string
	Detail  string
	Elapsed time.Duration
}

// Options change one rotation.
type Options struct {
	// Trigger is recorded with the rotation: "manual", "schedule", "resume".
	Trigger string
	// Revoke ends every session of the old credential and makes it
	// unusable at once (a leaked password).
	Revoke bool
	// Force skips the check that refuses to reuse a dual role that still
	// has sessions.
	Force bool
	// ResumeOnly continues an interrupted rotation but never starts one.
	ResumeOnly bool
}

func (e *Engine) init() {
	e.once.Do(func() {
		if e.Now == nil {
			e.Now = time.Now
		}
		if e.Rand == nil {
			e.Rand = rand.Reader
		}
		if e.Sleep == nil {
			e.Sleep = sleepCtx
		}
		if e.Tick == nil {
			e.Tick = tickerTick
		}
		if e.Dial == nil {
			e.Dial = DialPostgres
			if e.DialAfter == nil {
				e.DialAfter = DialPostgresAfter
			}
		}
		if e.Holder == "" {
			e.Holder = NewHolder(e.Rand)
		}
		if e.LeaseTTL == 0 {
			e.LeaseTTL = 30 * time.Second
		}
		if e.Logger == nil {
			e.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
		}
	})
}

func (e *Engine) now() time.Time { return e.Now().UTC() }

func (e *Engine) emit(ev Event) {
	if e.Events != nil {
		e.Events(ev)
	}
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// NewHolder returns a lease holder id for this process.
func NewHolder(r io.Reader) string {
	host, _ := os.Hostname()
	if host == "" {
		host = "unknown"
	}
	b := make([]byte, 4)
	if _, err := io.ReadFull(r, b); err != nil {
		// Host and pid alone still tell this process from every other.
		return fmt.Sprintf("%s/%d/-", host, os.Getpid())
	}
	return fmt.Sprintf("%s/%d/%x", host, os.Getpid(), b)
}

// StepError is a rotation that stopped at a step. The credential is left
// working; Hint says what to do next.
type StepError struct {
	Credential string
	RotationID int64
	Step       string
	Err        error
	Hint       string
}

func (e *StepError) Error() string {
	msg := fmt.Sprintf("%s: rotation %d stopped at %s: %s", e.Credential, e.RotationID, e.Step, strings.TrimPrefix(e.Err.Error(), e.Credential+": "))
	if e.Hint != "" {
		msg += "\n  " + strings.ReplaceAll(e.Hint, "\n", "\n  ")
	}
	return msg
}

func (e *StepError) Unwrap() error { return e.Err }
