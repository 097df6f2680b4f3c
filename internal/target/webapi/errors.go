package webapi

import (
	"fmt"
	"net/http"
)

// StatusError is an API's refusal: a non-2xx answer, or the errors a
// GraphQL answer carried. Its message holds the API's own text, scrubbed
// and shortened. Every HTTP target reports refusals with it, whether it
// calls the API through Client or a vendor's client library.
type StatusError struct {
	// Target names the target: `vercel target "prod"`.
	Target string
	// Method and Path are the request, for an API called through Client.
	Method string
	Path   string
	// API names the backend ("GitHub") when the message says what rotor
	// was doing instead of which path it called: Action for a client
	// library's call ("write secret DATABASE_URL"), Operation for a
	// GraphQL field ("variableCollectionUpsert").
	API       string
	Action    string
	Operation string
	// Status is the HTTP status; 200 when only GraphQL reported the error.
	Status int
	// Code is the API's error code when it has one.
	Code string
	// Message is the API's own error text, scrubbed.
	Message string
	// Hint says what to do about it. Without one, a refusal of a path
	// ends with the generic hint for its status.
	Hint string
	// Header is the answer's headers, for a target that tells its
	// API's refusals apart by them (a rate limit's remaining count).
	Header http.Header
	// Kind is the target sentinel the error unwraps to (target.ErrAuth,
	// ErrNotFound, ErrInvalid), nil for a transient failure.
	Kind error
}

func (e *StatusError) Error() string {
	var msg string
	switch {
	case e.Operation != "":
		msg = fmt.Sprintf("%s: %s %s failed (HTTP %d)", e.Target, e.API, e.Operation, e.Status)
	case e.Action != "":
		msg = fmt.Sprintf("%s: %s: %s answered %d", e.Target, e.Action, e.API, e.Status)
	default:
		msg = fmt.Sprintf("%s: %s %s answered %d", e.Target, e.Method, e.Path, e.Status)
	}
	if e.Code != "" {
		msg += " " + e.Code
	}
	if e.Message != "" {
		msg += ": " + e.Message
	}
	if e.Hint != "" {
		msg += "; " + e.Hint
	} else if hint := hintFor(e.Status); e.Method != "" && hint != "" {
		msg += " (" + hint + ")"
	}
	return msg
}

// Unwrap gives Kind.
func (e *StatusError) Unwrap() error { return e.Kind }

func hintFor(status int) string {
	switch status {
	case http.StatusUnauthorized:
		return "check the token"
	case http.StatusForbidden:
		return "the token lacks a permission or scope"
	case http.StatusNotFound:
		return "check the project/service id"
	}
	return ""
}
