// Package targettest is the conformance suite every target.Target must
// pass (target.go's checklist, STYLE.md habit 8), against a real backend or
// a contract fake:
//
//	func TestConformance(t *testing.T) {
//		targettest.Exercise(t, targettest.Harness{
//			New: func(t *testing.T) target.Target {
//				fake := newFakeVercel(t) // an httptest server
//				return newTarget(t, fake.URL)
//			},
//		})
//	}
//
// Each subtest builds its own target with Harness.New and runs in
// parallel, so New must return an instance whose destination nothing else
// shares (a fresh temp file, a fresh fake server or project). Read, Seed
// and Break get the target New returned; a harness around a fake finds
// the fake from it, e.g. through a map filled by New or the Destination.
//
// Values are compared with secret.String.Equal and failure messages name
// the case, never the value.
package targettest

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/rotorhq/rotor/internal/secret"
	"github.com/rotorhq/rotor/internal/target"
)

// Harness tells Exercise how to build and observe the target under test.
// Only New is required.
type Harness struct {
	// New returns a fresh target with an empty, isolated destination.
	New func(t *testing.T) target.Target

	// Read reads key straight from tg's backend, for targets whose Check
	// cannot reveal values (or that have no Check); ok is false when the
	// key is absent. When nil the suite reads through target.Checker.
	Read func(t *testing.T, tg target.Target, key string) (v secret.String, ok bool)

	// Seed stores keys the suite does not manage at tg's destination, to
	// prove that Put leaves them alone. Optional.
	Seed func(t *testing.T, tg target.Target, values map[string]secret.String)

	// Rejects reports whether the target refuses to store value under key
	// because the backend cannot represent it (dotenv with both ' and ").
	// For those values the suite requires Put to fail with an error that
	// does not contain the value, and the key not to be written. nil:
	// every value in the suite must be stored exactly.
	Rejects func(key, value string) bool

	// Unreadable declares that nothing can read values back (neither
	// Check nor Read): value comparisons are skipped, everything else runs.
	Unreadable bool

	// NoChangeDetection declares that Put cannot tell a no-op from a
	// write and always reports Changed=true.
	NoChangeDetection bool

	// Break makes every later Put on tg fail (a fake that starts answering
	// 500, a file replaced by a directory), to check that error messages
	// do not carry values. Optional.
	Break func(t *testing.T, tg target.Target)
}

// Keys the suite writes. They are valid names for every backend rotor
// targets (upper case, digits, '_').
const (
	KeyURL  = "DATABASE_URL"
	KeyUser = "ROTOR_TEST_USER"
)

// Value is one value the suite writes, named for failure messages.
type Value struct {
	Name  string
	Value string
}

// Values are the values every target must store exactly or refuse
// cleanly: what rotor renders from templates ({{.URL}}, {{.Password}}) and
// the characters that break naive quoting in shells, dotenv files, JSON,
// YAML, URLs and form encoding.
func Values() []Value {
	return []Value{
		{"plain url", "postgres://app_blue:Zx9pLq2vT7@ep-cool-darkness-123456.eu-central-1.aws.neon.tech/app?sslmode=require"},
		{"percent-encoded url", "postgres://app_blue:p%40ss%25w0rd%26a%3Db%23c%24d@ep-x-pooler.neon.tech:5432/app?sslmode=require&channel_binding=require&options=endpoint%3Dep-x"},
		{"long value", "postgres://app:" + strings.Repeat("aB3-_.~", 290) + "@host/db"},
		{"raw password with every awkward character", `postgres://app:pa$$ w0rd#1'x"y\z&a=b%20@host/db`},
		{"dollar signs that look like variables", "postgres://app:$HOME${PATH}$(id)$1@host/db"},
		{"hash, spaces and braces", "postgres://app:a #b {c} [d] | e;f@host/db"},
		{"single quote", "postgres://app:it's@host/db"},
		{"double quote", `postgres://app:say"hi"@host/db`},
		{"backslashes", `postgres://app:back\slash\@host/db`},
		{"non-ASCII", "postgres://app:pässwörd-€-密码@host/db"},
		{"leading and trailing spaces", "  padded value  "},
		{"line break", "first line\nsecond line"},
	}
}

// Exercise runs the conformance suite against h.
func Exercise(t *testing.T, h Harness) {
	t.Helper()
	require.NotNil(t, h.New, "targettest.Harness.New is required")
	// Outside PutThenRead the suite writes plain and percent-encoded URLs,
	// which every target must accept.
	for _, v := range Values()[:2] {
		require.False(t, h.Rejects != nil && h.Rejects(KeyURL, v.Value), "Harness.Rejects must accept the %s", v.Name)
	}

	t.Run("Info", func(t *testing.T) {
		t.Parallel()
		tg := h.New(t)
		info := tg.Info()
		require.NotEmpty(t, info.Type, "Info().Type")
		require.NotEmpty(t, info.Name, "Info().Name")
		require.NotEmpty(t, info.Destination, "Info().Destination")
		require.Equal(t, info, tg.Info(), "Info must be stable")
	})

	t.Run("PutThenRead", func(t *testing.T) {
		t.Parallel()
		for _, v := range Values() {
			t.Run(v.Name, func(t *testing.T) {
				t.Parallel()
				tg := h.New(t)
				values := map[string]secret.String{KeyURL: secret.New(v.Value), KeyUser: secret.New("app_blue")}
				resp, err := put(t, tg, values, 1)
				if h.Rejects != nil && h.Rejects(KeyURL, v.Value) {
					require.Error(t, err, "%s: the harness says the target rejects this value, but Put succeeded", v.Name)
					requireNoValue(t, err.Error(), v.Value, "the error")
					// Not even in another form: a mangled password is worse
					// than a clear refusal.
					_, ok, readable := h.readBack(t, tg, KeyURL)
					require.False(t, readable && ok, "%s: a rejected value must not be written", v.Name)
					return
				}
				require.NoError(t, err, "%s: Put", v.Name)
				require.True(t, resp.Changed, "%s: the first Put to an empty destination must report Changed", v.Name)
				h.requireValues(t, tg, values, v.Name)
			})
		}
	})

	t.Run("PutSameValuesIsNoop", func(t *testing.T) {
		t.Parallel()
		tg := h.New(t)
		values := map[string]secret.String{KeyURL: secret.New(Values()[1].Value), KeyUser: secret.New("app_green")}
		_, err := put(t, tg, values, 1)
		require.NoError(t, err)
		resp, err := put(t, tg, values, 1)
		require.NoError(t, err, "repeating a Put")
		if !h.NoChangeDetection {
			require.False(t, resp.Changed, "repeating a Put with the same values must report Changed=false")
		}
		h.requireValues(t, tg, values, "after the repeated Put")
	})

	t.Run("PutOverwrites", func(t *testing.T) {
		t.Parallel()
		tg := h.New(t)
		v1 := map[string]secret.String{KeyURL: secret.New(Values()[0].Value), KeyUser: secret.New("app_blue")}
		v2 := map[string]secret.String{KeyURL: secret.New(Values()[1].Value), KeyUser: secret.New("app_green")}
		_, err := put(t, tg, v1, 1)
		require.NoError(t, err)
		resp, err := put(t, tg, v2, 2)
		require.NoError(t, err, "Put of the second version")
		require.True(t, resp.Changed, "a Put with new values must report Changed")
		h.requireValues(t, tg, v2, "second version")
		_, err = put(t, tg, v1, 3)
		require.NoError(t, err, "Put of the first values again")
		h.requireValues(t, tg, v1, "back to the first values")
	})

	t.Run("UnmanagedKeysUntouched", func(t *testing.T) {
		t.Parallel()
		if h.Seed == nil {
			t.Log("Harness.Seed is nil; cannot place unmanaged keys")
			return
		}
		tg := h.New(t)
		seeded := map[string]secret.String{
			"ROTOR_UNMANAGED_A": secret.New("keep me"),
			"ROTOR_UNMANAGED_B": secret.New("postgres://other:pw@other-host/other"),
		}
		h.Seed(t, tg, seeded)
		for i, v := range []string{Values()[0].Value, Values()[1].Value} {
			_, err := put(t, tg, map[string]secret.String{KeyURL: secret.New(v)}, int64(i+1))
			require.NoError(t, err)
			h.requireValues(t, tg, seeded, fmt.Sprintf("unmanaged keys after Put %d", i+1))
		}
	})

	t.Run("MissingKeyIsAbsent", func(t *testing.T) {
		t.Parallel()
		c := target.Discover(h.New(t)).Checker
		if c == nil {
			t.Log("target has no Check")
			return
		}
		resp, err := c.Check(t.Context(), target.CheckRequest{Keys: []string{"ROTOR_NEVER_WRITTEN"}})
		require.NoError(t, err, "Check of a key that was never written")
		_, present := resp.Values["ROTOR_NEVER_WRITTEN"]
		require.False(t, present, "a key never written must be absent from CheckResponse.Values")
	})

	t.Run("NoValueInErrorsOrResponses", func(t *testing.T) {
		t.Parallel()
		canary := newCanary(t)
		tg := h.New(t)
		values := map[string]secret.String{KeyURL: secret.New("postgres://app:" + canary + "@host/db"), KeyUser: secret.New(canary)}
		resp, err := put(t, tg, values, 1)
		require.NoError(t, err)
		requireNoValue(t, fmt.Sprintf("%+v %#v", resp, resp), canary, "PutResponse")
		requireNoValue(t, fmt.Sprintf("%+v %#v", tg.Info(), tg.Info()), canary, "Info")
		caps := target.Discover(tg)
		if c := caps.Checker; c != nil {
			cr, err := c.Check(t.Context(), target.CheckRequest{Keys: []string{KeyURL, KeyUser}})
			require.NoError(t, err)
			requireNoValue(t, fmt.Sprintf("%+v %#v %v", cr, cr, cr.Notes), canary, "CheckResponse")
		}
		if r := caps.Reloader; r != nil {
			rr, err := r.Reload(t.Context(), target.ReloadRequest{RotationID: "rot-canary"})
			require.NoError(t, err)
			requireNoValue(t, fmt.Sprintf("%+v", rr), canary, "ReloadResponse")
		}

		// A value the target refuses must not come back in the refusal.
		for _, v := range Values() {
			awkward := v.Value + canary
			if h.Rejects == nil || !h.Rejects(KeyURL, awkward) {
				continue
			}
			_, err := put(t, tg, map[string]secret.String{KeyURL: secret.New(awkward)}, 2)
			require.Error(t, err, "%s: the harness says the target rejects this value", v.Name)
			requireNoValue(t, fmt.Sprintf("%v %+v", err, err), canary, "the error for "+v.Name)
		}

		if h.Break != nil {
			h.Break(t, tg)
			fresh := map[string]secret.String{KeyURL: secret.New("postgres://app:" + canary + "x@host/db")}
			_, err := put(t, tg, fresh, 3)
			require.Error(t, err, "Put after Harness.Break must fail")
			requireNoValue(t, fmt.Sprintf("%v %+v", err, err), canary, "the error after Break")
		}
	})

	t.Run("ConcurrentSamePut", func(t *testing.T) {
		t.Parallel()
		tg := h.New(t)
		if !tg.Info().Idempotent {
			t.Log("target is not idempotent; concurrent retries are not allowed")
			return
		}
		values := map[string]secret.String{KeyURL: secret.New(Values()[1].Value), KeyUser: secret.New("app_blue")}
		var wg sync.WaitGroup
		errs := make([]error, 2)
		for i := range errs {
			wg.Go(func() {
				_, errs[i] = tg.Put(t.Context(), putRequest(values, 1))
			})
		}
		wg.Wait()
		for i, err := range errs {
			require.NoError(t, err, "concurrent Put %d", i)
		}
		h.requireValues(t, tg, values, "after concurrent Puts")
	})

	t.Run("ReloadAfterPut", func(t *testing.T) {
		t.Parallel()
		tg := h.New(t)
		r := target.Discover(tg).Reloader
		if r == nil {
			t.Log("target has no Reload")
			return
		}
		_, err := put(t, tg, map[string]secret.String{KeyURL: secret.New(Values()[0].Value)}, 1)
		require.NoError(t, err)
		_, err = r.Reload(t.Context(), target.ReloadRequest{RotationID: "rot-1"})
		require.NoError(t, err, "Reload after a successful Put")
	})

	t.Run("ValidateFreshInstance", func(t *testing.T) {
		t.Parallel()
		v := target.Discover(h.New(t)).Validator
		if v == nil {
			t.Log("target has no Validate")
			return
		}
		_, err := v.Validate(t.Context(), target.ValidateRequest{})
		require.NoError(t, err, "Validate of a freshly built, correctly configured target")
	})
}

func putRequest(values map[string]secret.String, version int64) target.PutRequest {
	keys := make([]string, 0, len(values))
	for k := range values {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return target.PutRequest{
		Values:     values,
		Keys:       keys,
		RotationID: fmt.Sprintf("rot-%d", version),
		Version:    version,
		Role:       "app_blue",
	}
}

func put(t *testing.T, tg target.Target, values map[string]secret.String, version int64) (target.PutResponse, error) {
	t.Helper()
	return tg.Put(t.Context(), putRequest(values, version))
}

// readBack reads key through Harness.Read or the target's Check. readable
// is false when neither can reveal it.
func (h Harness) readBack(t *testing.T, tg target.Target, key string) (v secret.String, ok, readable bool) {
	t.Helper()
	if h.Unreadable {
		return secret.String{}, false, false
	}
	if h.Read != nil {
		v, ok := h.Read(t, tg, key)
		return v, ok, true
	}
	c := target.Discover(tg).Checker
	require.NotNil(t, c, "the target has no Check: set Harness.Read, or Harness.Unreadable if nothing can read values back")
	resp, err := c.Check(t.Context(), target.CheckRequest{Keys: []string{key}})
	require.NoError(t, err, "Check(%s)", key)
	if slices.Contains(resp.Unreadable, key) {
		require.Fail(t, "Check reports "+key+" as unreadable: set Harness.Read, or Harness.Unreadable")
	}
	v, ok = resp.Values[key]
	return v, ok, true
}

func (h Harness) requireValues(t *testing.T, tg target.Target, want map[string]secret.String, what string) {
	t.Helper()
	for k, w := range want {
		got, ok, readable := h.readBack(t, tg, k)
		if !readable {
			continue
		}
		require.True(t, ok, "%s: %s is missing", what, k)
		require.True(t, w.Equal(got), "%s: %s does not hold the value that was Put (values not shown)", what, k)
	}
}

// requireNoValue fails if text holds value, without printing either.
func requireNoValue(t *testing.T, text, value, where string) {
	t.Helper()
	require.False(t, strings.Contains(text, value), "%s contains the value", where)
}

// newCanary returns a value unlikely to appear anywhere by chance, so
// finding it proves a leak.
func newCanary(t *testing.T) string {
	t.Helper()
	b := make([]byte, 12)
	_, err := rand.Read(b)
	require.NoError(t, err)
	return "canary" + hex.EncodeToString(b)
}
