// Package serve runs rotor as a service (`rotor serve`): rotation,
// retirement and scheduling jobs on River over the state store, the HTTP
// API, the console and the metrics, several replicas on one PostgreSQL
// store.
//
// This file is the contract between the service core (jobs, lifecycle)
// and the parts that look at it or ask things of it (internal/serve/api,
// internal/serve/console, internal/serve/metrics). Those parts depend on
// Backend only, never on River.
package serve

import (
	"context"
	"errors"
	"time"

	"github.com/rotorhq/rotor/internal/engine"
	"github.com/rotorhq/rotor/internal/resolve"
	"github.com/rotorhq/rotor/internal/store"
)

// Backend is what a running `rotor serve` offers its API, console and
// metrics.
type Backend interface {
	// Config is the configuration in force. A reload swaps it: callers
	// take it once per request and never keep it.
	Config() *resolve.Config
	// Engine is the engine over the shared store.
	Engine() *engine.Engine
	// Store is the state store (versions, rotations, journal, audit).
	Store() store.Store
	// Enqueue asks for a job. A credential has at most one rotation job
	// queued or running: asking again returns that job with Duplicate
	// set. A request with an IdempotencyKey seen before returns the job
	// it created then, whatever its state.
	Enqueue(ctx context.Context, req Request) (*Job, error)
	// Job reads one job by id (ErrNoJob when there is none).
	Job(ctx context.Context, id int64) (*Job, error)
	// Jobs lists the newest jobs first; credential "" means all.
	Jobs(ctx context.Context, credential string, limit int) ([]*Job, error)
	// QueueDepth counts the jobs waiting to run, by kind.
	QueueDepth(ctx context.Context) (map[Kind]int, error)
	// Ready reports whether the store answers and its migrations (rotor's
	// and River's) are current; the error says what is wrong.
	Ready(ctx context.Context) error
	// Subscribe delivers the engine's progress events of every rotation
	// this replica runs until ctx ends (the console's live view).
	Subscribe(ctx context.Context) <-chan engine.Event
}

// Kind is what a job does.
type Kind string

const (
	KindRotate Kind = "rotate" // a rotation (or the resume of one)
	KindRevoke Kind = "revoke" // a rotation that also ends the old role's sessions (a leak)
	KindRetire Kind = "retire" // retire a switched dual rotation's old role once the evidence is in
)

// Trigger is why a job was asked for.
type Trigger string

const (
	TriggerAPI      Trigger = "api"      // a person or a program through the API or console
	TriggerSchedule Trigger = "schedule" // the credential's schedule said it is due
	TriggerLeak     Trigger = "leak"     // a leak report matched the credential
)

// Request asks for a job of one credential.
type Request struct {
	Credential string
	Kind       Kind
	Trigger    Trigger
	// Actor names who asked (an API token's name, "scheduler",
	// "github-secret-scanning"); it goes to the audit log.
	Actor string
	// IdempotencyKey, when set, makes a repeated request return the job
	// the first one created.
	IdempotencyKey string
	// Reason is free text for the audit log (never a secret).
	Reason string
	// Now, for retire, skips the wait for the evidence (rotor retire --now).
	Now bool
}

// Job is one job as the API shows it.
type Job struct {
	ID          int64      `json:"id"`
	Credential  string     `json:"credential"`
	Kind        Kind       `json:"kind"`
	Trigger     Trigger    `json:"trigger"`
	Actor       string     `json:"actor"`
	State       string     `json:"state"` // River's job state: available, scheduled, running, retryable, completed, cancelled, discarded
	Attempt     int        `json:"attempt"`
	CreatedAt   time.Time  `json:"created_at"`
	ScheduledAt time.Time  `json:"scheduled_at"`
	FinishedAt  *time.Time `json:"finished_at,omitempty"`
	// RotationID is the rotation the job ran, once it started one.
	RotationID int64    `json:"rotation_id,omitempty"`
	Errors     []string `json:"errors,omitempty"`
	// Duplicate is set when Enqueue found this job already queued or
	// running (or already created for the same IdempotencyKey).
	Duplicate bool `json:"duplicate,omitempty"`
}

// ErrNoJob is returned by Job for an id that names no job.
var ErrNoJob = errors.New("no such job")

// ErrUnknownCredential is returned by Enqueue for a name the config in
// force does not hold.
var ErrUnknownCredential = errors.New("no such credential in the config")
