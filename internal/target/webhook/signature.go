package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Header names of a delivery.
const (
	HeaderSignature   = "X-Rotor-Signature"
	HeaderTimestamp   = "X-Rotor-Timestamp"
	HeaderEvent       = "X-Rotor-Event"
	HeaderIdempotency = "Idempotency-Key"
)

// DefaultTolerance is how old a delivery's timestamp may be before Verify
// refuses it as a possible replay.
const DefaultTolerance = 5 * time.Minute

// ErrSignature: a delivery's signature or timestamp does not verify.
var ErrSignature = errors.New("webhook signature does not verify")

// Sign returns the X-Rotor-Signature value for body sent at timestamp
// (unix seconds): "sha256=" and the hex HMAC-SHA256, keyed with the
// shared secret, of "<timestamp>.<body>". Signing the timestamp with the
// body is what lets a receiver refuse a replayed delivery.
func Sign(secretKey []byte, timestamp int64, body []byte) string {
	mac := hmac.New(sha256.New, secretKey)
	mac.Write([]byte(strconv.FormatInt(timestamp, 10)))
	mac.Write([]byte{'.'})
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

// Verify is the receiver's side, the recipe docs/targets/webhook.md
// describes, for receivers written in Go: the timestamp is within
// tolerance of now (either way, for clock skew) and the signature matches
// in constant time. Receivers should also drop a repeated
// Idempotency-Key: a retried delivery carries the same one.
func Verify(secretKey []byte, h http.Header, body []byte, now time.Time, tolerance time.Duration) error {
	tsText := h.Get(HeaderTimestamp)
	ts, err := strconv.ParseInt(tsText, 10, 64)
	if err != nil {
		return fmt.Errorf("%s is missing or not unix seconds: %w", HeaderTimestamp, ErrSignature)
	}
	if age := now.Sub(time.Unix(ts, 0)); age > tolerance || age < -tolerance {
		return fmt.Errorf("%s is %s away from now, more than %s: %w", HeaderTimestamp, age.Round(time.Second), tolerance, ErrSignature)
	}
	got := h.Get(HeaderSignature)
	if !strings.HasPrefix(got, "sha256=") {
		return fmt.Errorf("%s is missing or not sha256=<hex>: %w", HeaderSignature, ErrSignature)
	}
	if !hmac.Equal([]byte(got), []byte(Sign(secretKey, ts, body))) {
		return fmt.Errorf("%s does not match the body: %w", HeaderSignature, ErrSignature)
	}
	return nil
}

// Fingerprint is how a delivery identifies a value without revealing it:
// "hmac-sha256:" and the hex HMAC-SHA256 of the value keyed with the
// shared secret. A receiver holding the value (say, read from the secret
// manager it was also written to) recomputes it to confirm the match.
func Fingerprint(secretKey []byte, value string) string {
	mac := hmac.New(sha256.New, secretKey)
	mac.Write([]byte(value))
	return "hmac-sha256:" + hex.EncodeToString(mac.Sum(nil))
}
