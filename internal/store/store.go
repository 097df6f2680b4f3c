// Package store defines rotor's durable state: versions (sealed), rotations
// with their step journal, deliveries to targets, audit events and
// per-credential leases with fencing tokens.
//
// The store never sees a plaintext password: version secrets arrive sealed
// by the engine (secret.Sealer) and leave the same way.
//
// Drivers: store/sqlite (embedded default) and store/postgres (state shared
// by several machines). Both must pass storetest.Exercise. A driver maps its
// backend's "no rows" to ErrNotFound and unique violations to ErrConflict.
//
// # Deferred writes
//
// A write returns once it is durable: on disk (SQLite, synchronous=FULL)
// or flushed to the server's WAL (PostgreSQL, synchronous_commit). A write
// whose params set Deferred returns once it is committed — every reader,
// in this process or another, sees it — and reaches the disk with the next
// durable write of the same store (SQLite: synchronous=NORMAL, whose WAL
// frames the next FULL commit syncs; PostgreSQL: synchronous_commit=off,
// whose WAL the next synchronous commit flushes). A process that dies
// loses nothing either way; a power cut or a crash of the machine holding
// the store can lose the deferred writes that no durable one has followed
// yet, and only those, newest first. The engine defers every record that
// no action outside the store depends on before its next durable record:
// see internal/engine/rotate.go (durableBefore).
package store

import (
	"context"
	"errors"
	"time"
)

var (
	// ErrNotFound: no such row.
	ErrNotFound = errors.New("not found")
	// ErrConflict: the write would break a uniqueness rule (e.g. a second
	// pending version for one credential).
	ErrConflict = errors.New("conflict")
	// ErrLeaseHeld: another holder has the credential's lease.
	ErrLeaseHeld = errors.New("lease held by another process")
	// ErrLeaseLost: the caller no longer holds the lease it tries to renew
	// or release.
	ErrLeaseLost = errors.New("lease lost")
	// ErrNotEmpty: Import was asked to write into a store that already
	// holds rows.
	ErrNotEmpty = errors.New("the store is not empty")
	// ErrFenced: the write carried a Fence whose lease has since been
	// taken by another holder; nothing was changed.
	ErrFenced = errors.New("fenced: the lease was taken over by another holder")
)

// Store is rotor's durable state. All methods are safe for concurrent use
// by several goroutines and, for leases and rotations, by several
// processes sharing the same database.
type Store interface {
	// AcquireLease takes the lease on p.Name for p.Holder until p.Now+p.TTL.
	// It succeeds when nobody holds it, the lease has expired, the caller
	// already holds it (renewing it), or the current holder equals
	// p.TakeOverFrom. Otherwise it returns the current lease and
	// ErrLeaseHeld. A lease that changes hands gets a larger Token than
	// any it had before, released or not; a renewal keeps the Token.
	AcquireLease(ctx context.Context, p AcquireLeaseParams) (*Lease, error)
	// RenewLease extends a lease the caller holds; ErrLeaseLost otherwise.
	RenewLease(ctx context.Context, p RenewLeaseParams) (*Lease, error)
	// ReleaseLease drops a lease the caller holds; releasing a lease held
	// by someone else returns ErrLeaseLost and changes nothing.
	ReleaseLease(ctx context.Context, p ReleaseLeaseParams) error
	// GetLease returns the lease row for p.Name, expired or not;
	// ErrNotFound when there has never been one or it was released.
	GetLease(ctx context.Context, p GetLeaseParams) (*Lease, error)

	// InsertVersion adds a version. A second pending version for the same
	// credential, or a second version for the same rotation, is ErrConflict.
	// Seq is assigned by the store: one more than the credential's highest.
	InsertVersion(ctx context.Context, p InsertVersionParams) (*Version, error)
	// GetVersion returns one version; ErrNotFound if absent.
	GetVersion(ctx context.Context, p GetVersionParams) (*Version, error)
	// ListVersions returns a credential's versions, newest first, optionally
	// only those in the given stages.
	ListVersions(ctx context.Context, p ListVersionsParams) ([]*Version, error)
	// ReplacePendingSecret swaps the sealed secret and fingerprint of a
	// pending version, for backends that generate the password themselves
	// (it must be stored the moment it is known). A version that is not
	// pending is ErrConflict; an unknown id ErrNotFound.
	ReplacePendingSecret(ctx context.Context, p ReplacePendingSecretParams) error

	// InsertRotation starts a rotation in StatusActive. A second active
	// rotation for the same credential is ErrConflict.
	InsertRotation(ctx context.Context, p InsertRotationParams) (*Rotation, error)
	// StartRotation takes a lease and starts a rotation under it in one
	// transaction: p.Lease as AcquireLease would take it (ErrLeaseHeld,
	// with the current lease, when it cannot), then p.Rotation as
	// InsertRotation would insert it, fenced by the lease just taken. It
	// is ErrConflict, and changes nothing, when the credential's latest
	// rotation is no longer p.After (0: none) or its current version no
	// longer p.Rotation.FromVersionID (0: none): the caller read those
	// without the lease, and must read them again holding it.
	StartRotation(ctx context.Context, p StartRotationParams) (*Rotation, *Lease, error)
	// ListRotations returns rotations newest first, filtered; an empty
	// Credential lists every credential's.
	ListRotations(ctx context.Context, p ListRotationsParams) ([]*Rotation, error)
	// UpdateRotation changes the mutable fields of an active rotation.
	UpdateRotation(ctx context.Context, p UpdateRotationParams) (*Rotation, error)

	// AppendStep journals one step event of a rotation and, in the same
	// transaction, makes it the rotation's Step (and, for a failed event,
	// its Error; otherwise Error is cleared) when the rotation is active.
	AppendStep(ctx context.Context, p AppendStepParams) (*Step, error)
	// ListSteps returns a rotation's journal in order; an unknown rotation
	// has none.
	ListSteps(ctx context.Context, p ListStepsParams) ([]*Step, error)

	// UpsertDelivery records the state of one target in one rotation,
	// keyed by (RotationID, Target).
	UpsertDelivery(ctx context.Context, p UpsertDeliveryParams) (*Delivery, error)
	// ListDeliveries returns deliveries filtered by rotation or credential.
	ListDeliveries(ctx context.Context, p ListDeliveriesParams) ([]*Delivery, error)

	// FinishRotation atomically ends a rotation: the rotation gets its
	// final status and its Rollback snapshot is wiped; on success the pending version becomes current, the
	// current one previous, the previous one retired (secret wiped), and an
	// audit event is appended — all or nothing.
	FinishRotation(ctx context.Context, p FinishRotationParams) (*Rotation, error)
	// FinishRetirement records how the retirement of a rotation whose
	// status is RetirementPending ended, with its audit event, in one
	// transaction; any other rotation is ErrConflict.
	FinishRetirement(ctx context.Context, p FinishRetirementParams) (*Rotation, error)

	// AppendAudit appends an audit event.
	AppendAudit(ctx context.Context, p AppendAuditParams) (*AuditEvent, error)
	// ListAudit returns audit events newest first, filtered: each non-zero
	// field of p narrows the list.
	ListAudit(ctx context.Context, p ListAuditParams) ([]*AuditEvent, error)

	// Writes whose params carry a non-zero Fence (every write of a
	// rotation's state) fail with ErrFenced, changing nothing, when the
	// fence's lease has changed hands since.

	// Info describes the store itself.
	Info(ctx context.Context) (*Info, error)

	// Export reads every row of the store in one consistent snapshot,
	// each table in the order Snapshot documents, sealed values as stored.
	// It is for moving a store (`rotor state migrate`), not for the
	// engine.
	Export(ctx context.Context, p ExportParams) (*Snapshot, error)
	// Import writes p.Snapshot into a store that holds no row yet — ids,
	// sequence numbers, times, tokens and sealed bytes exactly as given —
	// and makes p.Snapshot.ID the store's id, so roles marked through the
	// exported store stay recognised. All or nothing, in one transaction
	// that keeps other writers out; ids handed out afterwards are larger
	// than any imported. A store with any row (a released lease included)
	// is ErrNotEmpty; a snapshot that breaks a rule of the store (two
	// current versions of one credential) is ErrConflict; either way
	// nothing changes.
	Import(ctx context.Context, p ImportParams) error

	// Close releases the store.
	Close() error
}

// Info is a store's identity, secret-free.
type Info struct {
	// ID is random, made when the store was created; rotor marks the roles
	// it sets with it.
	ID string
	// Driver is "sqlite" or "postgres"; Location where it is (a path, or
	// host, database and schema — never a password).
	Driver   string
	Location string
	// SchemaVersion is the newest migration applied.
	SchemaVersion int
}

// Stage is a version's place in its life.
type Stage string

const (
	StagePending  Stage = "pending"
	StageCurrent  Stage = "current"
	StagePrevious Stage = "previous"
	StageRetired  Stage = "retired"
)

// Status is a rotation's overall state.
type Status string

const (
	// StatusActive: running, or stopped at a failed step and resumable.
	StatusActive Status = "active"
	// StatusSucceeded: finished; the old credential is retired (or kept
	// until the next rotation when configured so).
	StatusSucceeded Status = "succeeded"
	// StatusSwitched: published and promoted (consumers use the new
	// version), but the old role of a dual rotation is not retired yet:
	// the evidence that every consumer has moved is not complete.
	// FinishRetirement ends it.
	StatusSwitched Status = "switched"
	// StatusOldInUse: finished and published, but the old role still had
	// sessions at the drain deadline, so it was not retired.
	StatusOldInUse Status = "published_old_in_use"
	// StatusRolledBack: the test step failed and the previous password was
	// put back; nothing was published.
	StatusRolledBack Status = "rolled_back"
	// StatusAbandoned: an operator gave up on the rotation; nothing that
	// consumers use was changed by it.
	StatusAbandoned Status = "abandoned"
)

// Terminal reports whether a rotation in this status is over: its steps
// have all run. A switched rotation's retirement may still follow.
func (s Status) Terminal() bool { return s != StatusActive }

// RetirementPending reports whether the old role of a rotation in this
// status has not been retired yet although the rotation published.
func (s Status) RetirementPending() bool { return s == StatusSwitched || s == StatusOldInUse }

type Lease struct {
	Name      string
	Holder    string
	ExpiresAt time.Time
	// Token is the lease's fencing token: it grows every time the lease
	// changes hands (a takeover, or a new acquisition after a release) and
	// stays the same while one holder renews it.
	Token int64
}

// Fence returns the fence a holder puts on its writes.
func (l *Lease) Fence() Fence { return Fence{Lease: l.Name, Token: l.Token} }

// Fence ties a write to a lease held with a fencing token: the driver
// checks, in the write's own transaction, that the lease named Lease still
// has Token, and fails with ErrFenced, changing nothing, when another
// holder has taken it since. A holder that was paused or partitioned past
// its expiry can therefore never write again once someone took over. The
// zero Fence is unchecked.
type Fence struct {
	Lease string
	Token int64
}

type AcquireLeaseParams struct {
	Name         string
	Holder       string
	TTL          time.Duration
	Now          time.Time
	TakeOverFrom string
	// Deferred: commit without waiting for the disk ("Deferred writes" in the package doc).
	Deferred bool
}

type RenewLeaseParams struct {
	Name   string
	Holder string
	TTL    time.Duration
	Now    time.Time
}

type ReleaseLeaseParams struct {
	Name   string
	Holder string
	// Deferred: commit without waiting for the disk ("Deferred writes" in the package doc).
	Deferred bool
}

type GetLeaseParams struct {
	Name string
}

// Version is one generated password for one role.
type Version struct {
	ID         int64
	Credential string
	Seq        int64
	Role       string
	Stage      Stage
	RotationID int64
	// Sealed is the encrypted secret material (password and verifier);
	// nil once wiped.
	Sealed []byte
	// Fingerprint is an HMAC of the password, safe to show and compare.
	Fingerprint string
	CreatedAt   time.Time
	// ActivatedAt is when the version became current (zero before).
	ActivatedAt time.Time
	// RetiredAt is when the version was retired (zero before).
	RetiredAt time.Time
}

type InsertVersionParams struct {
	Credential  string
	Role        string
	Stage       Stage
	RotationID  int64
	Sealed      []byte
	Fingerprint string
	Now         time.Time
	Fence       Fence
	// Pending, when set, is applied to the rotation RotationID in the same
	// transaction, as UpdateRotation would, with the new version as its
	// ToVersionID: the pending version and the rotation pointing at it (and
	// Pending.Rollback, when set) in one write. Its ID, ToVersionID, Fence
	// and Deferred are ignored.
	Pending *UpdateRotationParams
	// Open, when set, is appended to the journal of rotation RotationID
	// in the same transaction.
	Open *OpenStep
	// Deferred: commit without waiting for the disk ("Deferred writes" in the package doc).
	Deferred bool
}

type ReplacePendingSecretParams struct {
	ID          int64
	Sealed      []byte
	Fingerprint string
	Fence       Fence
}

type GetVersionParams struct {
	ID int64
}

type ListVersionsParams struct {
	Credential string
	Stages     []Stage
	Limit      int
}

// Rotation is one run of the state machine for one credential.
type Rotation struct {
	ID         int64
	Credential string
	Status     Status
	Strategy   string
	// Trigger says who started it: "manual", "schedule", "resume".
	Trigger string
	Revoke  bool
	// Step is the last step journaled; StepError the error that stopped it.
	Step  string
	Error string
	// FromVersionID is the version current when the rotation started (0 if none).
	FromVersionID int64
	// ToVersionID is the pending version (0 before prepare).
	ToVersionID int64
	// Rollback is the sealed snapshot of what the server held before apply
	// (single strategy), nil when not captured.
	Rollback []byte
	// Outcome is a one-line secret-free summary for humans.
	Outcome string
	// AppliedAt is when the database got the new password (zero before
	// apply, and for rotations journaled before the field existed).
	AppliedAt  time.Time
	StartedAt  time.Time
	UpdatedAt  time.Time
	FinishedAt time.Time
}

type InsertRotationParams struct {
	Credential    string
	Strategy      string
	Trigger       string
	Revoke        bool
	FromVersionID int64
	Now           time.Time
	Fence         Fence
	// Audit, when set, is appended in the same transaction; blank fields
	// default as in AppendAuditParams.For (the new rotation's id).
	Audit *AppendAuditParams
	// Deferred: commit without waiting for the disk ("Deferred writes" in the package doc).
	Deferred bool
}

// StartRotationParams: see Store.StartRotation. Lease.Deferred and
// Rotation.Fence are ignored; Rotation.Deferred is the write's.
type StartRotationParams struct {
	Lease    AcquireLeaseParams
	Rotation InsertRotationParams
	// After is the id of the credential's latest rotation when the caller
	// read it, 0 when it had none.
	After int64
}

type ListRotationsParams struct {
	Credential string
	// Active, when true, returns only StatusActive rotations.
	Active bool
	Limit  int
}

// UpdateRotationParams sets each non-nil field. (Step and Error follow
// the journal, see AppendStep; Outcome is set by FinishRotation.)
type UpdateRotationParams struct {
	ID          int64
	ToVersionID *int64
	Rollback    []byte
	AppliedAt   *time.Time
	Now         time.Time
	Fence       Fence
	// Deferred: commit without waiting for the disk ("Deferred writes" in the package doc).
	Deferred bool
}

// StepStatus is the state of one journaled step event.
type StepStatus string

const (
	StepStarted StepStatus = "started"
	StepDone    StepStatus = "done"
	StepFailed  StepStatus = "failed"
)

type Step struct {
	ID         int64
	RotationID int64
	Name       string
	Status     StepStatus
	// Detail is secret-free JSON or text.
	Detail string
	At     time.Time
}

type ListStepsParams struct {
	RotationID int64
}

type AppendStepParams struct {
	RotationID int64
	Name       string
	Status     StepStatus
	Detail     string
	Now        time.Time
	Fence      Fence
	// Open, when set, is appended first, in the same transaction.
	Open *OpenStep
	// Deliveries are upserted in the same transaction, before the step
	// record, as UpsertDelivery would (their Fence and Deferred are
	// ignored; each must be for RotationID): a step's done record with
	// the deliveries it settled last.
	Deliveries []UpsertDeliveryParams
	// AppliedAt, when not zero, is recorded as the rotation's AppliedAt in
	// the same transaction, as UpdateRotation would.
	AppliedAt time.Time
	// Deferred: commit without waiting for the disk ("Deferred writes" in the package doc).
	Deferred bool
}

// OpenStep is a step's started record carried by another write of the
// same rotation (AppendStepParams.Open and the like) and appended to the
// journal in its transaction, ahead of that write's own step record if it
// has one. The engine uses it for steps that change nothing outside the
// store before their first write, so their start costs no commit of its
// own; At is when the step started, not when the record was written.
type OpenStep struct {
	Name string
	At   time.Time
}

// DeliveryState is how far one target got in one rotation.
type DeliveryState string

const (
	DeliveryPending    DeliveryState = "pending"
	DeliveryWritten    DeliveryState = "written"
	DeliveryReloaded   DeliveryState = "reloaded"
	DeliveryVerified   DeliveryState = "verified"
	DeliveryUnverified DeliveryState = "unverifiable"
	DeliveryMismatch   DeliveryState = "mismatch"
	DeliveryFailed     DeliveryState = "failed"
)

type Delivery struct {
	RotationID  int64
	Credential  string
	Target      string
	State       DeliveryState
	Fingerprint string
	Attempts    int
	Error       string
	Detail      string
	UpdatedAt   time.Time
}

// UpsertDeliveryParams creates or replaces the (RotationID, Target) row.
type UpsertDeliveryParams struct {
	RotationID  int64
	Credential  string
	Target      string
	State       DeliveryState
	Fingerprint string
	Attempts    int
	Error       string
	Detail      string
	Now         time.Time
	Fence       Fence
	// Audit, when set, is appended in the same transaction; blank fields
	// default as in AppendAuditParams.For (the delivery's rotation).
	Audit *AppendAuditParams
	// Deferred: commit without waiting for the disk ("Deferred writes" in the package doc).
	Deferred bool
}

type ListDeliveriesParams struct {
	RotationID int64
	Credential string
}

type FinishRotationParams struct {
	ID      int64
	Status  Status
	Outcome string
	Error   string
	// Promote, when true (a successful rotation), moves the rotation's
	// pending version to current and shifts the older stages.
	Promote bool
	// RetirePrevious, with Promote, also retires (and wipes) the version
	// that was current until now instead of keeping it as previous.
	RetirePrevious bool
	Audit          AppendAuditParams
	// Open, when set, is appended to the rotation's journal in the same
	// transaction, before the rotation ends.
	Open *OpenStep
	// Release, with a Fence, also releases the fence's lease in the same
	// transaction, as ReleaseLease would for its holder.
	Release bool
	Now     time.Time
	Fence   Fence
}

// FinishRetirementParams end the retirement of a switched (or
// published_old_in_use) rotation.
type FinishRetirementParams struct {
	ID int64
	// Status is StatusSucceeded (retired), or StatusOldInUse (the deadline
	// passed with the old role still in use), or StatusSwitched (still
	// pending: only Outcome changes).
	Status  Status
	Outcome string
	// RetirePrevious, with StatusSucceeded, retires and wipes the version
	// the rotation started from, when it is still the previous one.
	RetirePrevious bool
	Audit          AppendAuditParams
	Now            time.Time
	Fence          Fence
}

type AuditEvent struct {
	ID         int64
	At         time.Time
	Credential string
	RotationID int64
	Event      string
	Actor      string
	// Detail is secret-free JSON.
	Detail string
}

type AppendAuditParams struct {
	Credential string
	RotationID int64
	Event      string
	Actor      string
	Detail     string
	Now        time.Time
	// Deferred: commit without waiting for the disk ("Deferred writes" in
	// the package doc). AppendAudit only: an event that is part of another
	// write is as durable as that write.
	Deferred bool
}

// For fills what the event of a rotation's own write leaves out: the
// rotation's credential and id, and the write's time.
func (a AppendAuditParams) For(r *Rotation, now time.Time) AppendAuditParams {
	if a.Credential == "" {
		a.Credential = r.Credential
	}
	if a.RotationID == 0 {
		a.RotationID = r.ID
	}
	if a.Now.IsZero() {
		a.Now = now
	}
	return a
}

type ListAuditParams struct {
	Credential string
	// Since keeps the events at or after it.
	Since time.Time
	// Events keeps the events with one of these names.
	Events []string
	Limit  int
}
