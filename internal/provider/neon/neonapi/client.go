// Package neonapi is a small client for the parts of the Neon API v2 that
// rotor uses: branches, endpoints, databases, roles, connection URIs and
// operations. There is no Go SDK to lean on, so it follows the contract in
// shared/reference/neon-api.md directly:
//
//   - every request carries `Authorization: Bearer <key>` and a fresh
//     `X-Request-ID`, and every error names the request id (§1 "Errors");
//   - error bodies {code, message, request_id} become *Error;
//   - only 423 Locked, 429 Too Many Requests and 503 Service Unavailable are
//     retried, whatever the method, because the spec calls them safe to
//     retry; a GET is also retried after a network error. Retry-After is
//     honoured, otherwise full-jitter backoff (250ms·2^n, capped at 10s)
//     (§1 "Client behaviour"). 429, 503 and network errors get MaxAttempts
//     tries; 423 means another operation holds the branch, which can last
//     as long as an operation does, so it is retried until
//     OperationTimeout has passed since the first try. OnRetry hears of
//     every wait;
//   - mutations return operations, which WaitOperations polls until they are
//     finished or skipped; failed, error and cancelled are failures (§1
//     "Operations (async) and polling").
//
// Time, sleeping, randomness and the HTTP client are fields, so tests run
// without waiting.
package neonapi

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/rotorhq/rotor/internal/secret"
)

// DefaultBaseURL is the spec's server.
const DefaultBaseURL = "https://console.neon.tech/api/v2"

// Defaults for the zero-valued fields of Client.
const (
	DefaultMaxAttempts      = 6
	DefaultBaseBackoff      = 250 * time.Millisecond
	DefaultMaxBackoff       = 10 * time.Second
	DefaultMaxRetryAfter    = time.Minute
	DefaultPollInterval     = time.Second
	DefaultOperationTimeout = 5 * time.Minute
)

// maxErrorBody bounds how much of an error response is read and shown.
const maxErrorBody = 4 << 10

// Client talks to one Neon API with one key. The zero value of every field
// but APIKey works.
type Client struct {
	// BaseURL is DefaultBaseURL when empty; no trailing slash needed.
	BaseURL string
	APIKey  secret.String
	HTTP    *http.Client

	Now   func() time.Time
	Sleep func(ctx context.Context, d time.Duration) error
	// Jitter returns a number in [0, 1) for full-jitter backoff.
	Jitter func() float64
	// RequestID returns the X-Request-ID of one attempt.
	RequestID func() string

	MaxAttempts   int
	BaseBackoff   time.Duration
	MaxBackoff    time.Duration
	MaxRetryAfter time.Duration
	PollInterval  time.Duration
	// OperationTimeout bounds the wait for operations to finish and, from
	// a request's first try, the retries of 423 Locked.
	OperationTimeout time.Duration
	UserAgent        string
	// OnRetry, when set, is called before every wait for a retry; it must
	// not block for long.
	OnRetry func(RetryEvent)
}

// RetryEvent describes one wait before a retry. It holds no secret.
type RetryEvent struct {
	Method, Path string
	// Status is the answer's status, 0 after a network error.
	Status int
	// Message is Neon's message (scrubbed of the API key).
	Message string
	// Attempt is the number of the try that failed, from 1.
	Attempt int
	// Wait is how long the client waits now; Elapsed how long since the
	// first try; Limit the longest it keeps retrying (423: the operation
	// timeout; otherwise zero, the attempts being counted instead).
	Wait, Elapsed, Limit time.Duration
}

// maxLockedAttempts caps the 423 retries even when the clock does not move
// (a test's frozen clock), so a bug can never spin for ever.
const maxLockedAttempts = 10000

// Sentinels an *Error unwraps to, by status.
var (
	ErrUnauthorized = errors.New("the Neon API key was refused")
	ErrForbidden    = errors.New("the Neon API key may not do this")
	ErrNotFound     = errors.New("not found")
	ErrConflict     = errors.New("conflict")
	ErrPrecondition = errors.New("precondition failed")
	ErrLocked       = errors.New("locked by another operation")
	ErrRateLimited  = errors.New("rate limited")
	ErrUnavailable  = errors.New("Neon API unavailable")
	ErrBadRequest   = errors.New("bad request")
)

// Error is a non-2xx answer from the API.
type Error struct {
	Method string
	// Path is the request path below the base URL, without the query.
	Path   string
	Status int
	// Code and Message are Neon's GeneralError fields; RequestID is Neon's
	// request_id, or the X-Request-ID rotor sent when Neon gave none.
	Code      string
	Message   string
	RequestID string
	// Attempts is how many times the request was sent.
	Attempts int
}

func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "neon api: %s %s answered %d %s", e.Method, e.Path, e.Status, http.StatusText(e.Status))
	if e.Message != "" {
		b.WriteString(": " + e.Message)
	}
	var extra []string
	if e.Code != "" {
		extra = append(extra, "code "+e.Code)
	}
	if e.RequestID != "" {
		extra = append(extra, "request_id "+e.RequestID)
	}
	if e.Attempts > 1 {
		extra = append(extra, fmt.Sprintf("after %d attempts", e.Attempts))
	}
	if len(extra) > 0 {
		b.WriteString(" (" + strings.Join(extra, ", ") + ")")
	}
	return b.String()
}

// Unwrap gives the sentinel for the status, so callers can use errors.Is.
func (e *Error) Unwrap() error {
	switch {
	case e.Status == http.StatusUnauthorized:
		return ErrUnauthorized
	case e.Status == http.StatusForbidden:
		return ErrForbidden
	case e.Status == http.StatusNotFound:
		return ErrNotFound
	case e.Status == http.StatusConflict:
		return ErrConflict
	case e.Status == http.StatusPreconditionFailed:
		return ErrPrecondition
	case e.Status == http.StatusLocked:
		return ErrLocked
	case e.Status == http.StatusTooManyRequests:
		return ErrRateLimited
	case e.Status >= 500:
		return ErrUnavailable
	case e.Status >= 400:
		return ErrBadRequest
	}
	return nil
}

// NetworkError is a request that got no answer.
type NetworkError struct {
	Method, Path, RequestID string
	Attempts                int
	Err                     error
}

func (e *NetworkError) Error() string {
	msg := fmt.Sprintf("neon api: %s %s: no answer (request_id %s", e.Method, e.Path, e.RequestID)
	if e.Attempts > 1 {
		msg += fmt.Sprintf(", after %d attempts", e.Attempts)
	}
	msg += "): " + e.Err.Error()
	if e.Method != http.MethodGet {
		msg += "; the request may or may not have been applied, so rotor did not send it again"
	}
	return msg
}

func (e *NetworkError) Unwrap() []error { return []error{ErrUnavailable, e.Err} }

// retryable reports the statuses the spec calls safe to retry for every
// method.
func retryable(status int) bool {
	return status == http.StatusLocked || status == http.StatusTooManyRequests || status == http.StatusServiceUnavailable
}

func (c *Client) base() string {
	if c.BaseURL == "" {
		return DefaultBaseURL
	}
	return strings.TrimRight(c.BaseURL, "/")
}

func (c *Client) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

func (c *Client) sleep(ctx context.Context, d time.Duration) error {
	if c.Sleep != nil {
		return c.Sleep(ctx, d)
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (c *Client) jitter() float64 {
	if c.Jitter != nil {
		return c.Jitter()
	}
	n, err := rand.Int(rand.Reader, big.NewInt(1<<53))
	if err != nil {
		return 0.5
	}
	return float64(n.Int64()) / (1 << 53)
}

func (c *Client) requestID() string {
	if c.RequestID != nil {
		return c.RequestID()
	}
	return NewRequestID()
}

// NewRequestID returns a random UUID (version 4) string.
func NewRequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

func orDefault[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// backoff is full jitter: a uniform wait in [0, min(max, base·2^n)).
func (c *Client) backoff(retry int) time.Duration {
	ceiling := orDefault(c.BaseBackoff, DefaultBaseBackoff)
	limit := orDefault(c.MaxBackoff, DefaultMaxBackoff)
	for i := 0; i < retry && ceiling < limit; i++ {
		ceiling *= 2
	}
	ceiling = min(ceiling, limit)
	return time.Duration(c.jitter() * float64(ceiling))
}

// retryAfter reads Retry-After as seconds or an HTTP date; ok is false
// when the header is absent or unreadable.
func retryAfter(h http.Header, now time.Time) (time.Duration, bool) {
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0, false
	}
	if secs, err := strconv.Atoi(v); err == nil && secs >= 0 {
		return time.Duration(secs) * time.Second, true
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(now), 0), true
	}
	return 0, false
}

// request is one logical call; do may send it several times.
type request struct {
	method string
	path   string // escaped, below the base URL
	query  url.Values
	body   any
}

// do sends r, retrying where the spec allows, and decodes a 2xx body into
// out (when out is non-nil and there is a body).
func (c *Client) do(ctx context.Context, r request, out any) (int, error) {
	var payload []byte
	if r.body != nil {
		b, err := json.Marshal(r.body)
		if err != nil {
			return 0, fmt.Errorf("neon api: encode %s %s: %w", r.method, r.path, err)
		}
		payload = b
	}
	target := c.base() + r.path
	if len(r.query) > 0 {
		target += "?" + r.query.Encode()
	}
	attempts := max(c.MaxAttempts, 1)
	if c.MaxAttempts == 0 {
		attempts = DefaultMaxAttempts
	}
	start := c.now()
	lockLimit := orDefault(c.OperationTimeout, DefaultOperationTimeout)
	for attempt := 1; ; attempt++ {
		id := c.requestID()
		status, header, body, err := c.send(ctx, r.method, target, id, payload)
		if err != nil {
			if ctx.Err() != nil {
				return 0, fmt.Errorf("neon api: %s %s (request_id %s): %w", r.method, r.path, id, ctx.Err())
			}
			netErr := &NetworkError{Method: r.method, Path: r.path, RequestID: id, Attempts: attempt, Err: c.scrub(err)}
			if r.method != http.MethodGet || attempt >= attempts {
				return 0, netErr
			}
			wait := c.backoff(attempt - 1)
			c.notify(RetryEvent{Method: r.method, Path: r.path, Message: netErr.Err.Error(), Attempt: attempt, Wait: wait, Elapsed: c.now().Sub(start)})
			if err := c.sleep(ctx, wait); err != nil {
				return 0, netErr
			}
			continue
		}
		if status >= 200 && status < 300 {
			if out != nil && len(bytes.TrimSpace(body)) > 0 {
				if err := json.Unmarshal(body, out); err != nil {
					return status, fmt.Errorf("neon api: %s %s: the answer is not the JSON the spec describes (request_id %s): %w", r.method, r.path, id, err)
				}
			}
			return status, nil
		}
		apiErr := c.parseError(r.method, r.path, status, header, body, id)
		apiErr.Attempts = attempt
		locked := status == http.StatusLocked
		if !retryable(status) || (!locked && attempt >= attempts) || (locked && attempt >= maxLockedAttempts) {
			return status, apiErr
		}
		wait, advised := retryAfter(header, c.now())
		if !advised {
			wait = c.backoff(attempt - 1)
		}
		if limit := orDefault(c.MaxRetryAfter, DefaultMaxRetryAfter); wait > limit {
			return status, fmt.Errorf("%w; Neon asked to wait %s before retrying, longer than rotor waits (%s); try again later", apiErr, wait, limit)
		}
		elapsed := c.now().Sub(start)
		ev := RetryEvent{Method: r.method, Path: r.path, Status: status, Message: apiErr.Message, Attempt: attempt, Wait: wait, Elapsed: elapsed}
		if locked {
			if elapsed+wait > lockLimit {
				return status, &LockedError{Err: apiErr, Waited: elapsed, Limit: lockLimit}
			}
			ev.Limit = lockLimit
		}
		c.notify(ev)
		if err := c.sleep(ctx, wait); err != nil {
			return status, fmt.Errorf("%w; gave up waiting to retry: %w", apiErr, err)
		}
	}
}

func (c *Client) notify(ev RetryEvent) {
	if c.OnRetry != nil {
		c.OnRetry(ev)
	}
}

// LockedError is a 423 Locked that outlasted the operation timeout.
type LockedError struct {
	Err           *Error
	Waited, Limit time.Duration
}

func (e *LockedError) Error() string {
	return fmt.Sprintf("%v; Neon kept the branch locked by other operations for %s, and rotor waits at most operation_timeout (%s): let them finish (see the project's operations in the Neon console) or raise operation_timeout",
		e.Err, e.Waited.Round(time.Second), e.Limit)
}

func (e *LockedError) Unwrap() error { return e.Err }

func (c *Client) send(ctx context.Context, method, target, id string, payload []byte) (int, http.Header, []byte, error) {
	var body io.Reader
	if payload != nil {
		body = bytes.NewReader(payload)
	}
	req, err := http.NewRequestWithContext(ctx, method, target, body)
	if err != nil {
		return 0, nil, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.APIKey.Reveal())
	req.Header.Set("Accept", "application/json")
	req.Header.Set("X-Request-ID", id)
	if payload != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("User-Agent", orDefault(c.UserAgent, "rotor"))
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	limit := int64(32 << 20)
	if resp.StatusCode >= 300 {
		limit = maxErrorBody
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, limit))
	if err != nil {
		return 0, nil, nil, err
	}
	return resp.StatusCode, resp.Header, b, nil
}

func (c *Client) parseError(method, path string, status int, h http.Header, body []byte, sentID string) *Error {
	e := &Error{Method: method, Path: path, Status: status, RequestID: sentID}
	var ge struct {
		Code      string `json:"code"`
		Message   string `json:"message"`
		RequestID string `json:"request_id"`
	}
	if json.Unmarshal(body, &ge) == nil && (ge.Message != "" || ge.Code != "") {
		e.Code, e.Message = ge.Code, ge.Message
		if ge.RequestID != "" {
			e.RequestID = ge.RequestID
		}
	} else if text := strings.TrimSpace(string(body)); text != "" && !strings.HasPrefix(text, "<") {
		e.Message = text
	}
	if e.RequestID == sentID {
		if id := h.Get("X-Neon-Ret-Request-Id"); id != "" {
			e.RequestID = id
		}
	}
	e.Message = shorten(c.scrubString(e.Message))
	return e
}

// scrub keeps the API key out of errors, in case an error ever echoes the
// request.
func (c *Client) scrub(err error) error {
	if c.APIKey.IsZero() || !strings.Contains(err.Error(), c.APIKey.Reveal()) {
		return err
	}
	return errors.New(c.scrubString(err.Error()))
}

func (c *Client) scrubString(s string) string {
	if c.APIKey.IsZero() {
		return s
	}
	return strings.ReplaceAll(s, c.APIKey.Reveal(), secret.Redacted)
}

func shorten(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 300 {
		return s[:300] + "…"
	}
	return s
}

// seg escapes one path segment (role names may hold '/', '?', '%', …).
func seg(s string) string { return url.PathEscape(s) }
