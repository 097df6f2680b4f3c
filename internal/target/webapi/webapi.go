// Package webapi is what every HTTP target shares: JSON requests with a
// bearer (or other) token, answers mapped to the target sentinels, 429 and
// 5xx turned into *target.RetryableError with the backend's Retry-After,
// and response bodies scrubbed of the values in flight before they reach an
// error message (APIs like to echo what they were sent).
//
// It is deliberately small: targets keep their own request and response
// types and call Do.
package webapi

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/rotorhq/rotor/internal/secret"
	"github.com/rotorhq/rotor/internal/target"
)

// Client talks JSON to one API.
type Client struct {
	// HTTP is the client requests go through (tests inject one).
	HTTP *http.Client
	// BaseURL is prefixed to every path, without a trailing slash.
	BaseURL string
	// Auth sets credentials on each request (e.g. Authorization: Bearer).
	Auth func(*http.Request)
	// Target names the target in errors: `vercel target "prod"`.
	Target string
	// Now is used to turn reset timestamps into waits.
	Now func() time.Time
	// UserAgent is sent on every request.
	UserAgent string
	// Header is sent on every request, replacing the defaults (an API
	// that wants its own Accept, a version header).
	Header http.Header
	// ErrorText pulls the code and message out of an error body, for an
	// API whose errors carry more than the common shapes; nil: the
	// common shapes.
	ErrorText func(body []byte) (code, message string)
}

// Request is one call.
type Request struct {
	Method string
	// Path is appended to BaseURL; include the query string.
	Path string
	// Body is marshalled as JSON when non-nil.
	Body any
	// Header adds headers.
	Header http.Header
	// Secrets are scrubbed from any error text built from the response.
	Secrets []secret.String
	// Retryable says whether a 429/5xx may be retried (the write is
	// idempotent). Non-retryable calls still get the sentinel errors.
	Retryable bool
}

// Response is a successful answer (2xx).
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// Do sends r and returns the 2xx response, or an error that is a
// *StatusError (possibly inside a *target.RetryableError).
func (c *Client) Do(ctx context.Context, r Request) (*Response, error) {
	var body io.Reader
	if r.Body != nil {
		b, err := json.Marshal(r.Body)
		if err != nil {
			return nil, fmt.Errorf("%s: encode request: %w", c.Target, err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, r.Method, c.BaseURL+r.Path, body)
	if err != nil {
		return nil, fmt.Errorf("%s: build request: %w", c.Target, err)
	}
	if r.Body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	if c.UserAgent != "" {
		req.Header.Set("User-Agent", c.UserAgent)
	}
	for k, vs := range c.Header {
		req.Header.Del(k)
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	for k, vs := range r.Header {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	if c.Auth != nil {
		c.Auth(req)
	}
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		// Network errors: the request may or may not have arrived.
		err = secret.Scrub(err, r.Secrets...)
		if r.Retryable || target.NotSent(err) {
			return nil, &target.RetryableError{Err: fmt.Errorf("%s: %s %s: %w", c.Target, r.Method, pathOnly(r.Path), err)}
		}
		return nil, fmt.Errorf("%s: %s %s: %w", c.Target, r.Method, pathOnly(r.Path), err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		// The answer broke off (or trickled past the deadline): the
		// request arrived, so only an idempotent one may be sent again.
		err = fmt.Errorf("%s: %s %s: read answer (status %d): %w", c.Target, r.Method, pathOnly(r.Path), resp.StatusCode, secret.Scrub(err, r.Secrets...))
		if r.Retryable {
			return nil, &target.RetryableError{Err: err}
		}
		return nil, err
	}
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return &Response{Status: resp.StatusCode, Header: resp.Header, Body: data}, nil
	}
	se := &StatusError{Target: c.Target, Method: r.Method, Path: pathOnly(r.Path), Status: resp.StatusCode, Header: resp.Header}
	parse := c.ErrorText
	if parse == nil {
		parse = errorText
	}
	se.Code, se.Message = parse(data)
	se.Message = secret.ScrubString(se.Message, r.Secrets...)
	se.Code = secret.ScrubString(se.Code, r.Secrets...)
	switch {
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		se.Kind = target.ErrAuth
	case resp.StatusCode == http.StatusNotFound:
		se.Kind = target.ErrNotFound
	case resp.StatusCode >= 400 && resp.StatusCode < 500 && resp.StatusCode != http.StatusTooManyRequests && resp.StatusCode != http.StatusLocked && resp.StatusCode != http.StatusRequestTimeout:
		se.Kind = target.ErrInvalid
	}
	if Transient(resp.StatusCode) && r.Retryable {
		return nil, &target.RetryableError{Err: se, RetryAfter: RetryAfter(resp.Header, c.now())}
	}
	return nil, se
}

func (c *Client) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

// OnlyRateLimitRetries is for requests that are not idempotent (a deploy,
// a redeploy) but went out as Retryable to get the sentinel errors: it
// keeps a *target.RetryableError only for a 429, which APIs answer before
// doing anything, and for a request that never reached the backend.
// Anything else — a 5xx, a timeout — may have started the operation.
func OnlyRateLimitRetries(err error) error {
	var re *target.RetryableError
	if !errors.As(err, &re) || target.NotSent(err) {
		return err
	}
	var se *StatusError
	if errors.As(re.Err, &se) && se.Status == http.StatusTooManyRequests {
		return err
	}
	return re.Err
}

// Transient reports whether a status may succeed when sent again.
func Transient(status int) bool {
	return status == http.StatusTooManyRequests || status == http.StatusRequestTimeout ||
		status == http.StatusLocked || status >= 500
}

// RetryAfter reads how long the backend asked us to wait: Retry-After in
// seconds or as an HTTP date, else a rate-limit reset header holding a unix
// time (RateLimit-Reset, X-RateLimit-Reset) when the remaining count is 0.
// Zero means "no advice".
func RetryAfter(h http.Header, now time.Time) time.Duration {
	if v := strings.TrimSpace(h.Get("Retry-After")); v != "" {
		if secs, err := strconv.Atoi(v); err == nil && secs >= 0 {
			return time.Duration(secs) * time.Second
		}
		if t, err := http.ParseTime(v); err == nil {
			return max(t.Sub(now), 0)
		}
	}
	for _, prefix := range []string{"Ratelimit", "X-Ratelimit"} {
		if h.Get(prefix+"-Remaining") != "0" {
			continue
		}
		if v := h.Get(prefix + "-Reset"); v != "" {
			if n, err := strconv.ParseInt(v, 10, 64); err == nil {
				// A small number is "seconds from now", a large one a unix time.
				if n < 1e9 {
					return time.Duration(n) * time.Second
				}
				return max(time.Unix(n, 0).Sub(now), 0)
			}
		}
	}
	return 0
}

// errorText pulls a code and message out of the common error body shapes:
// {"error":{"code","message"}}, {"code","message"}, {"message"},
// {"errors":[{"message"}]}, {"messages":[…]}, or a plain-text body.
func errorText(body []byte) (code, message string) {
	var v struct {
		Code     any    `json:"code"`
		Message  string `json:"message"`
		ErrorObj any    `json:"error"`
		Errors   []struct {
			Message string `json:"message"`
		} `json:"errors"`
		Messages []string `json:"messages"`
	}
	if json.Unmarshal(body, &v) != nil {
		return "", Shorten(strings.TrimSpace(string(body)))
	}
	code, message = stringify(v.Code), v.Message
	switch e := v.ErrorObj.(type) {
	case string:
		message = cmp.Or(message, e)
	case map[string]any:
		code = cmp.Or(code, stringify(e["code"]))
		if m, ok := e["message"].(string); ok {
			message = cmp.Or(message, m)
		}
	}
	for _, e := range v.Errors {
		message = cmp.Or(message, e.Message)
	}
	if message == "" && len(v.Messages) > 0 {
		message = strings.Join(v.Messages, "; ")
	}
	return Shorten(code), Shorten(message)
}

func stringify(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	default:
		return fmt.Sprint(x)
	}
}

// Shorten cuts a backend's message to 300 bytes, on a rune boundary, so
// an error never carries a whole HTML page or stack trace.
func Shorten(s string) string {
	if len(s) <= 300 {
		return s
	}
	n := 300
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

// ShortenLine is Shorten of s with every run of whitespace made one
// space, so that a multi-line body or an HTML page reads as one line.
func ShortenLine(s string) string {
	return Shorten(strings.Join(strings.Fields(s), " "))
}

func pathOnly(p string) string {
	if i := strings.IndexByte(p, '?'); i >= 0 {
		return p[:i]
	}
	return p
}

// Bearer returns an Auth func setting Authorization: Bearer token.
func Bearer(token string) func(*http.Request) {
	return func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+token) }
}

// Decode unmarshals a response body, naming the target on failure.
func (c *Client) Decode(resp *Response, v any) error {
	if err := json.Unmarshal(resp.Body, v); err != nil {
		return fmt.Errorf("%s: unexpected answer (not the documented JSON): %w", c.Target, errors.Unwrap(err))
	}
	return nil
}
