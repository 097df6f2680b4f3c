// Package secret holds everything that touches a plaintext password: the
// redacting String type, password generation, SCRAM-SHA-256 verifiers,
// encryption at rest, fingerprints and error scrubbing.
//
// The rule this package exists to enforce: a plaintext password leaves
// process memory only towards the places that are meant to hold it (a
// target, or the database as a SCRAM verifier). Every other path — fmt,
// log/slog, encoding/json, errors, test failure output — sees a placeholder.
//
// The pieces, in the order a rotation meets them:
//
//   - Generate draws a password under a Policy from crypto/rand (or an
//     injected reader in tests), uniform over everything the policy allows.
//   - String carries it; only Reveal returns the plaintext, and Reveal is
//     called only where the value is written to a target, hashed into a
//     verifier or used to open a connection.
//   - SCRAMVerifier turns it into what ALTER ROLE … PASSWORD accepts, so the
//     server, its logs and any SQL tracer never see the plaintext.
//   - Sealer encrypts it for the store (AES-256-GCM, bound to the record by
//     additional data) under a master key that LoadKey finds in ROTOR_KEY or
//     a 0600 key file; Sealer.Fingerprint records what was delivered to a
//     target as a keyed hash that is safe to store and show.
//   - Scrub and ScrubString remove it, in every spelling that URLs, JSON,
//     DSNs and base64 give it, from errors and text that come back from
//     libraries and remote APIs; Leaks lets tests assert that output holds
//     none of those spellings.
package secret

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/subtle"
	"fmt"
	"log/slog"
	"sync"
	"unsafe"
)

// Redacted is what a String prints as everywhere.
const Redacted = "[REDACTED]"

// String is a secret value that refuses to print itself. Use Reveal at the
// one place the plaintext is really needed (writing a target, computing a
// verifier, opening a connection); everything else gets Redacted.
//
// The zero value is the empty secret. Strings compare with == and work as
// map keys; prefer Equal, which runs in constant time.
type String struct {
	// masked is the plaintext XORed with a per-process keystream. fmt cannot
	// call Format on a String held in an unexported struct field (nor on a
	// reflect.Value), and testify, go-cmp and spew read fields directly: they
	// would print a plain string field verbatim. Masking makes them print
	// noise instead, while the same plaintext still always gives the same
	// masked bytes, so ==, map keys and reflect.DeepEqual keep working. It is
	// not a defence against someone who can read process memory.
	masked string
}

// New wraps a plaintext value.
func New(plaintext string) String { return String{masked: mask(plaintext)} }

// Reveal returns the plaintext. Call it only where the value is handed to a
// place that is meant to hold it.
func (s String) Reveal() string { return mask(s.masked) }

// IsZero reports whether the value is empty.
func (s String) IsZero() bool { return s.masked == "" }

// Equal compares two secrets in constant time (the length is not hidden).
func (s String) Equal(o String) bool { return constantTimeEqual(s.masked, o.masked) }

// String implements fmt.Stringer.
func (s String) String() string { return Redacted }

// GoString implements fmt.GoStringer (%#v).
func (s String) GoString() string { return "secret.String(" + Redacted + ")" }

// Format implements fmt.Formatter so that no verb (%x, %q, %v, …) can reach
// the plaintext.
func (s String) Format(f fmt.State, verb rune) {
	switch {
	case verb == 'v' && f.Flag('#'):
		fmt.Fprint(f, s.GoString())
	case verb == 'q':
		fmt.Fprintf(f, "%q", Redacted)
	default:
		fmt.Fprint(f, Redacted)
	}
}

// MarshalJSON implements json.Marshaler.
func (s String) MarshalJSON() ([]byte, error) { return []byte(`"` + Redacted + `"`), nil }

// MarshalText implements encoding.TextMarshaler (used by YAML and others).
func (s String) MarshalText() ([]byte, error) { return []byte(Redacted), nil }

// LogValue implements slog.LogValuer.
func (s String) LogValue() slog.Value { return slog.StringValue(Redacted) }

var (
	_ fmt.Stringer   = String{}
	_ fmt.GoStringer = String{}
	_ fmt.Formatter  = String{}
	_ slog.LogValuer = String{}
)

// maskKeystreamLen is how much keystream is computed once per process:
// enough for every password, URL and token rotor handles, so New and
// Reveal are one XOR and one allocation instead of a new AES-CTR each
// (at 1,000 credentials `rotor plan` masks about 30,000 values). A longer
// value (a PEM key, say) gets its keystream computed for it; it starts
// with the same bytes, since the key and the IV are the same.
const maskKeystreamLen = 4096

// maskBlock is keyed once per process; nothing masked is ever persisted, so
// the key never needs to outlive the process.
var maskBlock = sync.OnceValue(func() cipher.Block {
	key := make([]byte, 32)
	rand.Read(key) // never fails: crypto/rand crashes the program instead
	block, err := aes.NewCipher(key)
	if err != nil {
		panic("secret: aes rejected a 32-byte key: " + err.Error())
	}
	return block
})

// maskKeystream is the first maskKeystreamLen bytes of the process's
// keystream: AES-CTR under maskBlock from a zero IV.
var maskKeystream = sync.OnceValue(func() []byte { return keystream(maskKeystreamLen) })

func keystream(n int) []byte {
	out := make([]byte, n)
	cipher.NewCTR(maskBlock(), make([]byte, aes.BlockSize)).XORKeyStream(out, out)
	return out
}

// mask is its own inverse: it XORs the same keystream both ways.
func mask(s string) string {
	if s == "" {
		return ""
	}
	ks := maskKeystream()
	if len(s) > len(ks) {
		ks = keystream(len(s))
	}
	out := make([]byte, len(s))
	// s is only read; out is never written again once it becomes the
	// string, so neither needs the copy a conversion would make.
	subtle.XORBytes(out, unsafe.Slice(unsafe.StringData(s), len(s)), ks)
	return unsafe.String(&out[0], len(out))
}
