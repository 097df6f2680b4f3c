package webhook_test

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/rotorhq/rotor/internal/secret"
	"github.com/rotorhq/rotor/internal/target"
	"github.com/rotorhq/rotor/internal/target/targettest"
	"github.com/rotorhq/rotor/internal/target/webhook"
	"github.com/rotorhq/rotor/internal/target/webhook/webhookfake"
)

const hookSecret = "0123456789abcdef-shared-secret"

var fixedNow = time.Unix(1_900_000_000, 0)

func newReceiver(t *testing.T) *webhookfake.Receiver {
	t.Helper()
	r := webhookfake.New([]byte(hookSecret))
	r.Now = func() time.Time { return fixedNow }
	t.Cleanup(r.Close)
	return r
}

// newTarget builds the target from YAML options as the config layer
// would, with ${ENV} already interpolated.
func newTarget(t *testing.T, options string) (target.Target, error) {
	t.Helper()
	// A transport of its own: httptest.Server.Close closes the idle
	// connections of http.DefaultTransport, under other tests' feet.
	hc := &http.Client{Transport: &http.Transport{}}
	t.Cleanup(hc.CloseIdleConnections)
	return webhook.New(target.Params{
		Name:       "hook",
		HTTPClient: hc,
		Now:        func() time.Time { return fixedNow },
		Decode: func(v any) error {
			dec := yaml.NewDecoder(strings.NewReader(options))
			dec.KnownFields(true)
			if err := dec.Decode(v); err != nil && !errors.Is(err, io.EOF) {
				return err
			}
			return nil
		},
	})
}

func mustTarget(t *testing.T, options string) *webhook.Target {
	t.Helper()
	tg, err := newTarget(t, options)
	require.NoError(t, err)
	return tg.(*webhook.Target)
}

func opts(r *webhookfake.Receiver, extra string) string {
	return fmt.Sprintf("url: %s/hooks/rotor?src=test\nsecret: %s\n%s", r.URL, hookSecret, extra)
}

func putReq(values map[string]secret.String, keys ...string) target.PutRequest {
	return target.PutRequest{Values: values, Keys: keys, RotationID: "42", Version: 3, Role: "app_green"}
}

func TestConformance(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name          string
		includeValues bool
	}{{"with values", true}, {"fingerprints only", false}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var mu sync.Mutex
			receivers := map[target.Target]*webhookfake.Receiver{}
			receiverOf := func(tg target.Target) *webhookfake.Receiver {
				mu.Lock()
				defer mu.Unlock()
				return receivers[tg]
			}
			h := targettest.Harness{
				New: func(t *testing.T) target.Target {
					r := newReceiver(t)
					tg := mustTarget(t, opts(r, fmt.Sprintf("include_values: %t\n", tc.includeValues)))
					mu.Lock()
					receivers[tg] = r
					mu.Unlock()
					return tg
				},
				NoChangeDetection: true,
				// A receiver that fails and echoes what it was sent.
				Break: func(t *testing.T, tg target.Target) {
					receiverOf(tg).FailAlways(&webhookfake.Fault{Status: http.StatusBadRequest, Echo: true})
				},
			}
			if tc.includeValues {
				h.Read = func(t *testing.T, tg target.Target, key string) (secret.String, bool) {
					d, ok := receiverOf(tg).Last(webhook.EventPublished)
					if !ok {
						return secret.String{}, false
					}
					values, _ := d.Event["values"].(map[string]any)
					v, ok := values[key].(string)
					return secret.New(v), ok
				}
			} else {
				h.Unreadable = true
			}
			targettest.Exercise(t, h)
		})
	}
}

// TestDeliveryShape pins the request a receiver gets: method, headers,
// signature over timestamp and body, and a body with fingerprints but no
// value unless include_values is set.
func TestDeliveryShape(t *testing.T) {
	t.Parallel()
	const pw = "Zx9pLq2vT7-canary"
	url := "postgres://app_green:" + pw + "@db.example.com/app?sslmode=require"
	values := map[string]secret.String{"DATABASE_URL": secret.New(url), "PGUSER": secret.New("app_green")}
	for _, include := range []bool{false, true} {
		t.Run(fmt.Sprintf("include_values=%t", include), func(t *testing.T) {
			t.Parallel()
			r := newReceiver(t)
			tg := mustTarget(t, opts(r, fmt.Sprintf("include_values: %t\nheaders: {Authorization: Bearer hook-token, X-Team: db}\n", include)))
			resp, err := tg.Put(t.Context(), putReq(values, "DATABASE_URL", "PGUSER"))
			require.NoError(t, err)
			require.True(t, resp.Changed)
			require.Equal(t, "42-hook", resp.Ref)

			ds := r.Deliveries()
			require.Len(t, ds, 1)
			d := ds[0]
			require.Equal(t, "application/json", d.Header.Get("Content-Type"))
			require.Equal(t, "1900000000", d.Header.Get(webhook.HeaderTimestamp))
			require.Equal(t, webhook.Sign([]byte(hookSecret), fixedNow.Unix(), d.Body), d.Header.Get(webhook.HeaderSignature))
			require.Regexp(t, `^sha256=[0-9a-f]{64}$`, d.Header.Get(webhook.HeaderSignature))
			require.Equal(t, "42-hook", d.Header.Get(webhook.HeaderIdempotency))
			require.Equal(t, webhook.EventPublished, d.Header.Get(webhook.HeaderEvent))
			require.Equal(t, "Bearer hook-token", d.Header.Get("Authorization"))
			require.Equal(t, "db", d.Header.Get("X-Team"))

			want := map[string]any{
				"type": "rotation.published", "target": "hook", "rotation_id": "42", "version": float64(3), "role": "app_green",
				"keys": []any{"DATABASE_URL", "PGUSER"},
				"fingerprints": map[string]any{
					"DATABASE_URL": webhook.Fingerprint([]byte(hookSecret), url),
					"PGUSER":       webhook.Fingerprint([]byte(hookSecret), "app_green"),
				},
			}
			if include {
				want["values"] = map[string]any{"DATABASE_URL": url, "PGUSER": "app_green"}
			} else {
				require.Empty(t, secret.Leaks(d.Body, secret.New(pw)), "no value without include_values")
			}
			require.Equal(t, want, d.Event)
			require.NotContains(t, string(d.Body), hookSecret)
		})
	}
}

func TestRetriesKeepTheIdempotencyKey(t *testing.T) {
	t.Parallel()
	r := newReceiver(t)
	tg := mustTarget(t, opts(r, ""))
	req := putReq(map[string]secret.String{"K": secret.New("v")}, "K")
	_, err := tg.Put(t.Context(), req)
	require.NoError(t, err)
	_, err = tg.Put(t.Context(), req)
	require.NoError(t, err)
	ds := r.Deliveries()
	require.Len(t, ds, 2)
	require.False(t, ds[0].Duplicate)
	require.True(t, ds[1].Duplicate, "a retried delivery carries the same Idempotency-Key")
	require.Equal(t, ds[0].Body, ds[1].Body, "and the same body")
}

func TestAnswersMapToTargetErrors(t *testing.T) {
	t.Parallel()
	const canary = "canary-pw-value-123"
	values := map[string]secret.String{"DATABASE_URL": secret.New("postgres://app:" + canary + "@h/d")}
	tests := []struct {
		name       string
		fault      webhookfake.Fault
		sentinel   error
		retryAfter time.Duration
		retryable  bool
		msg        string
	}{
		{"throttled", webhookfake.Fault{Status: 429, RetryAfter: "7"}, nil, 7 * time.Second, true, "answered 429"},
		{"unavailable, echoing the body", webhookfake.Fault{Status: 503, Echo: true}, nil, 0, true, "answered 503"},
		{"unauthorized", webhookfake.Fault{Status: 401}, target.ErrAuth, 0, false, "check that it verifies X-Rotor-Signature with the same secret"},
		{"forbidden", webhookfake.Fault{Status: 403}, target.ErrAuth, 0, false, "refused the delivery"},
		{"bad request, echoing the body", webhookfake.Fault{Status: 400, Echo: true}, target.ErrInvalid, 0, false, "answered 400"},
		{"redirect not followed", webhookfake.Fault{Status: 307, Location: "https://elsewhere.example.com/"}, nil, 0, false, "answered 307"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := newReceiver(t)
			r.FailNext(tt.fault)
			tg := mustTarget(t, opts(r, "include_values: true\n"))
			_, err := tg.Put(t.Context(), putReq(values, "DATABASE_URL"))
			require.Error(t, err)
			require.ErrorContains(t, err, tt.msg)
			require.ErrorContains(t, err, `webhook target "hook"`)
			if tt.sentinel != nil {
				require.ErrorIs(t, err, tt.sentinel)
			}
			var re *target.RetryableError
			require.Equal(t, tt.retryable, errors.As(err, &re))
			if tt.retryable {
				require.Equal(t, tt.retryAfter, re.RetryAfter)
			}
			require.Empty(t, secret.Leaks([]byte(err.Error()), secret.New(canary)))
			require.NotContains(t, err.Error(), "/hooks/rotor", "the URL path may hold a token; errors show scheme and host only")
			require.Equal(t, 1, r.Requests())
		})
	}

	t.Run("wrong secret is refused by the receiver", func(t *testing.T) {
		t.Parallel()
		r := newReceiver(t)
		tg := mustTarget(t, fmt.Sprintf("url: %s\nsecret: another-secret-of-16+\n", r.URL))
		_, err := tg.Put(t.Context(), putReq(values, "DATABASE_URL"))
		require.ErrorIs(t, err, target.ErrAuth)
		require.Equal(t, 1, r.Rejected())
		require.NotContains(t, err.Error(), "another-secret-of-16+")
	})
	t.Run("unreachable receiver is retryable", func(t *testing.T) {
		t.Parallel()
		r := newReceiver(t)
		u := r.URL
		r.Close()
		tg := mustTarget(t, fmt.Sprintf("url: %s\nsecret: %s\n", u, hookSecret))
		_, err := tg.Put(t.Context(), putReq(values, "DATABASE_URL"))
		var re *target.RetryableError
		require.ErrorAs(t, err, &re)
	})
}

func TestVerify(t *testing.T) {
	t.Parallel()
	body := []byte(`{"type":"ping","target":"hook"}`)
	good := http.Header{}
	good.Set(webhook.HeaderTimestamp, "1900000000")
	good.Set(webhook.HeaderSignature, webhook.Sign([]byte(hookSecret), fixedNow.Unix(), body))
	with := func(k, v string) http.Header {
		h := good.Clone()
		h.Set(k, v)
		return h
	}
	tests := []struct {
		name string
		h    http.Header
		body []byte
		now  time.Time
		err  string
	}{
		{"valid", good, body, fixedNow, ""},
		{"valid within the tolerance", good, body, fixedNow.Add(4 * time.Minute), ""},
		{"replayed later", good, body, fixedNow.Add(6 * time.Minute), "more than 5m0s"},
		{"from the future", good, body, fixedNow.Add(-6 * time.Minute), "more than 5m0s"},
		{"body changed", good, []byte(`{"type":"ping","target":"other"}`), fixedNow, "does not match the body"},
		{"timestamp changed", with(webhook.HeaderTimestamp, "1900000001"), body, fixedNow, "does not match"},
		{"no timestamp", with(webhook.HeaderTimestamp, ""), body, fixedNow, "missing or not unix seconds"},
		{"no signature", with(webhook.HeaderSignature, ""), body, fixedNow, "missing or not sha256="},
		{"other algorithm", with(webhook.HeaderSignature, "sha1=abc"), body, fixedNow, "missing or not sha256="},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := webhook.Verify([]byte(hookSecret), tt.h, tt.body, tt.now, webhook.DefaultTolerance)
			if tt.err == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, webhook.ErrSignature)
			require.ErrorContains(t, err, tt.err)
		})
	}
	require.ErrorIs(t, webhook.Verify([]byte("other-secret"), good, body, fixedNow, webhook.DefaultTolerance), webhook.ErrSignature)
}

func TestNotify(t *testing.T) {
	t.Parallel()
	ev := webhook.Event{
		Type: webhook.EventFailed, Credential: "app-db", RotationID: "42", Version: 3, Role: "app_green", OldRole: "app_blue",
		Status: "failed", Step: "publish", Error: "1 of 2 target(s) failed", Time: fixedNow,
	}

	t.Run("delivers a signed event without values", func(t *testing.T) {
		t.Parallel()
		r := newReceiver(t)
		tg := mustTarget(t, opts(r, ""))
		require.NoError(t, tg.Notify(t.Context(), ev))
		d, ok := r.Last(webhook.EventFailed)
		require.True(t, ok)
		require.Equal(t, "42-hook-rotation.failed", d.Header.Get(webhook.HeaderIdempotency))
		require.Equal(t, map[string]any{
			"type": "rotation.failed", "target": "hook", "credential": "app-db", "rotation_id": "42", "version": float64(3),
			"role": "app_green", "old_role": "app_blue", "status": "failed", "step": "publish",
			"error": "1 of 2 target(s) failed", "time": "2030-03-17T17:46:40Z",
		}, d.Event)
	})
	t.Run("retries a throttled delivery", func(t *testing.T) {
		t.Parallel()
		r := newReceiver(t)
		r.FailNext(webhookfake.Fault{Status: 429, RetryAfter: "0"}, webhookfake.Fault{Status: 502})
		tg := mustTarget(t, opts(r, ""))
		require.NoError(t, tg.Notify(t.Context(), ev))
		require.Equal(t, 3, r.Requests())
		require.Len(t, r.Deliveries(), 1)
	})
	t.Run("gives up after three attempts", func(t *testing.T) {
		t.Parallel()
		r := newReceiver(t)
		r.FailAlways(&webhookfake.Fault{Status: 500})
		tg := mustTarget(t, opts(r, ""))
		err := tg.Notify(t.Context(), ev)
		require.ErrorContains(t, err, "notify rotation.failed")
		require.Equal(t, 3, r.Requests())
	})
	t.Run("does not retry a refusal", func(t *testing.T) {
		t.Parallel()
		r := newReceiver(t)
		r.FailNext(webhookfake.Fault{Status: 401})
		tg := mustTarget(t, opts(r, ""))
		require.ErrorIs(t, tg.Notify(t.Context(), ev), target.ErrAuth)
		require.Equal(t, 1, r.Requests())
	})
	t.Run("only the configured types", func(t *testing.T) {
		t.Parallel()
		r := newReceiver(t)
		tg := mustTarget(t, opts(r, "notify: [rotation.succeeded]\n"))
		require.NoError(t, tg.Notify(t.Context(), ev))
		require.Zero(t, r.Requests(), "rotation.failed is not in notify:")
		ok := ev
		ok.Type, ok.Status, ok.Step, ok.Error = webhook.EventSucceeded, "succeeded", "", ""
		require.NoError(t, tg.Notify(t.Context(), ok))
		require.Len(t, r.Deliveries(), 1)

		none := mustTarget(t, opts(r, "notify: []\n"))
		require.NoError(t, none.Notify(t.Context(), ok))
		require.Len(t, r.Deliveries(), 1)
	})
}

func TestValidatePings(t *testing.T) {
	t.Parallel()
	r := newReceiver(t)
	tg := mustTarget(t, opts(r, ""))
	resp, err := tg.Validate(t.Context(), target.ValidateRequest{})
	require.NoError(t, err)
	require.Contains(t, strings.Join(resp.Notes, " "), "accepted a signed ping")
	d, ok := r.Last(webhook.EventPing)
	require.True(t, ok)
	require.Equal(t, map[string]any{"type": "ping", "target": "hook"}, d.Event)
	require.Empty(t, d.Header.Get(webhook.HeaderIdempotency))

	wrong := mustTarget(t, fmt.Sprintf("url: %s\nsecret: another-secret-of-16+\n", r.URL))
	_, err = wrong.Validate(t.Context(), target.ValidateRequest{})
	require.ErrorIs(t, err, target.ErrAuth)
}

func TestNewValidatesOptions(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, options, want string
	}{
		{"no url", "secret: " + hookSecret + "\n", "has no url"},
		{"relative url", "url: /hook\nsecret: " + hookSecret + "\n", "absolute https:// URL"},
		{"ftp url", "url: ftp://example.com/\nsecret: " + hookSecret + "\n", "absolute https:// URL"},
		{"credentials in url", "url: https://u:p@example.com/\nsecret: " + hookSecret + "\n", "url holds credentials"},
		{"values over plain http", "url: http://example.com/\nsecret: " + hookSecret + "\ninclude_values: true\n", "over plain http"},
		{"no secret", "url: https://example.com/\n", "secret is missing or shorter than 16 bytes"},
		{"short secret", "url: https://example.com/\nsecret: short\n", "shorter than 16 bytes"},
		{"bad timeout", "url: https://example.com/\nsecret: " + hookSecret + "\ntimeout: never\n", "not a positive duration"},
		{"reserved header", "url: https://example.com/\nsecret: " + hookSecret + "\nheaders: {x-rotor-signature: forged}\n", "set by rotor itself"},
		{"idempotency header", "url: https://example.com/\nsecret: " + hookSecret + "\nheaders: {Idempotency-Key: x}\n", "set by rotor itself"},
		{"bad header name", "url: https://example.com/\nsecret: " + hookSecret + "\nheaders: {'a b': x}\n", "not a valid HTTP header name"},
		{"unknown notify event", "url: https://example.com/\nsecret: " + hookSecret + "\nnotify: [rotation.started]\n", `notify event "rotation.started"`},
		{"unknown option", "url: https://example.com/\nsecret: " + hookSecret + "\nmethod: PUT\n", "field method not found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := newTarget(t, tt.options)
			require.ErrorContains(t, err, tt.want)
			if tt.name != "unknown option" { // the decoder's own error, located by the config layer
				require.ErrorIs(t, err, target.ErrInvalid)
			}
			require.NotContains(t, err.Error(), hookSecret)
		})
	}

	t.Run("plain http is fine without values, and for loopback", func(t *testing.T) {
		t.Parallel()
		_, err := newTarget(t, "url: http://example.com/hook\nsecret: "+hookSecret+"\n")
		require.NoError(t, err)
		_, err = newTarget(t, "url: http://127.0.0.1:9/hook\nsecret: "+hookSecret+"\ninclude_values: true\n")
		require.NoError(t, err)
	})
	t.Run("destination hides the path", func(t *testing.T) {
		t.Parallel()
		tg := mustTarget(t, "url: https://hooks.example.com/services/T000/B000/XXXXSECRET\nsecret: "+hookSecret+"\n")
		require.Equal(t, "https://hooks.example.com/…", tg.Info().Destination)
		require.True(t, tg.Info().Idempotent)
	})
}

func TestCheckIsUnreadable(t *testing.T) {
	t.Parallel()
	tg := mustTarget(t, "url: https://example.com/\nsecret: "+hookSecret+"\n")
	resp, err := tg.Check(t.Context(), target.CheckRequest{Keys: []string{"DATABASE_URL"}})
	require.NoError(t, err)
	require.Equal(t, []string{"DATABASE_URL"}, resp.Unreadable)
	require.Empty(t, resp.Values)
}
