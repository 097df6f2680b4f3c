package cli

import (
	"errors"

	"github.com/rotorhq/rotor/internal/config"
	"github.com/rotorhq/rotor/internal/engine"
)

// Exit codes. Scripts and CI branch on these, so they never change
// meaning.
const (
	ExitOK = 0
	// ExitError: something failed (a rotation stopped at a step, a target
	// answered 500, the database was unreachable).
	ExitError = 1
	// ExitUsage: bad flags, arguments or configuration; nothing was done.
	ExitUsage = 2
	// ExitInProgress: another process is rotating this credential.
	ExitInProgress = 3
	// ExitAttention: the command succeeded but left something a person
	// must look at (a dual rotation whose old role is still in use).
	ExitAttention = 4
)

// ExitMeaning says in words what an exit code means.
func ExitMeaning(code int) string {
	switch code {
	case ExitOK:
		return "success"
	case ExitError:
		return "failed: a rotation stopped at a step, a target or the database refused; the message says what to do"
	case ExitUsage:
		return "bad usage or configuration: nothing was done"
	case ExitInProgress:
		return "another process is rotating this credential"
	case ExitAttention:
		return "succeeded, but needs a person: an old role is still in use"
	}
	return "unknown exit code"
}

// UsageError is a mistake in how rotor was invoked; it exits 2.
type UsageError struct{ Err error }

func (e *UsageError) Error() string { return e.Err.Error() }
func (e *UsageError) Unwrap() error { return e.Err }

// AttentionError is a success that needs a person; it exits 4.
type AttentionError struct{ Msg string }

func (e *AttentionError) Error() string { return e.Msg }

// SilentError has already been reported; it only carries the exit code.
type SilentError struct{ Code int }

func (e *SilentError) Error() string { return "" }

func exitCode(err error) int {
	var silent *SilentError
	var usage *UsageError
	var cfgErr *config.Error
	var cfgErrs config.Errors
	var attention *AttentionError
	switch {
	case err == nil:
		return ExitOK
	case errors.As(err, &silent):
		return silent.Code
	case errors.Is(err, engine.ErrInProgress):
		return ExitInProgress
	case errors.As(err, &usage), errors.As(err, &cfgErr), errors.As(err, &cfgErrs):
		return ExitUsage
	case errors.As(err, &attention):
		return ExitAttention
	default:
		return ExitError
	}
}
