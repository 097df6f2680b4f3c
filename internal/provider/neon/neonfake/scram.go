package neonfake

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"strconv"
	"strings"

	"github.com/rotorhq/rotor/internal/secret"
)

// SCRAM-SHA-256 (RFC 5802, RFC 7677) on both sides of the proxy, the way
// Neon's proxy does it (neondatabase/neon proxy/README.md, "console"
// backend; docs/rfcs, "Simplified auth flow for Neon Proxy"): the client
// authenticates against the role's stored verifier, with channel binding
// to the proxy's own certificate, and the proof it sends yields the
// role's ClientKey; the proxy then logs in to the compute with that key.
// The plaintext password never reaches the proxy.

const (
	mechSCRAM     = "SCRAM-SHA-256"
	mechSCRAMPlus = "SCRAM-SHA-256-PLUS"
	cbindType     = "tls-server-end-point"
)

var b64 = base64.StdEncoding

func sha256Sum(b []byte) []byte {
	s := sha256.Sum256(b)
	return s[:]
}

func hmacSum(key []byte, msg string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(msg))
	return m.Sum(nil)
}

func xorBytes(a, b []byte) []byte {
	out := make([]byte, len(a))
	for i := range a {
		out[i] = a[i] ^ b[i]
	}
	return out
}

func nonce() string {
	b := make([]byte, 18)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return b64.EncodeToString(b)
}

// scramSecret is a role's verifier. mock marks a role that has none (or
// does not exist): the exchange runs to its end and then fails, so that a
// client cannot tell a missing role from a wrong password, as with
// PostgreSQL's own mock authentication.
type scramSecret struct {
	parts secret.SCRAMParts
	mock  bool
}

func parseSecret(verifier string) scramSecret {
	p, err := secret.ParseSCRAMVerifier(secret.New(verifier))
	if err != nil {
		return mockSecret()
	}
	return scramSecret{parts: p}
}

func mockSecret() scramSecret {
	salt := make([]byte, 16)
	_, _ = rand.Read(salt)
	return scramSecret{parts: secret.SCRAMParts{Iterations: secret.SCRAMIterations, Salt: salt, StoredKey: make([]byte, 32), ServerKey: make([]byte, 32)}, mock: true}
}

// errAuth is a failed proof; errProtocol a malformed exchange.
var (
	errAuth     = errors.New("password authentication failed")
	errProtocol = errors.New("malformed SCRAM message")
)

// scramServer is the proxy's side of the client's exchange.
type scramServer struct {
	sec       scramSecret
	mechanism string
	// certHash is the channel binding data of the proxy's certificate.
	certHash []byte

	gs2Header   string
	clientBare  string
	serverFirst string
	nonce       string
	authMessage string
}

// first handles client-first-message and returns server-first-message.
func (s *scramServer) first(data string) (string, error) {
	flag, rest, ok := strings.Cut(data, ",")
	if !ok {
		return "", errProtocol
	}
	authzid, bare, ok := strings.Cut(rest, ",")
	if !ok {
		return "", errProtocol
	}
	switch {
	case s.mechanism == mechSCRAMPlus && flag != "p="+cbindType:
		return "", errors.New("SCRAM-SHA-256-PLUS needs channel binding type " + cbindType)
	case s.mechanism == mechSCRAM && flag == "y":
		// The client can bind but thinks the proxy cannot: over TLS the
		// proxy offers SCRAM-SHA-256-PLUS, so this is a downgrade.
		return "", errors.New("SCRAM channel binding negotiation error: the client supports channel binding but thinks the server does not; this server supports it")
	case s.mechanism == mechSCRAM && flag != "n":
		return "", errProtocol
	case authzid != "":
		return "", errors.New("SCRAM authorization identities are not supported")
	}
	clientNonce := ""
	for _, attr := range strings.Split(bare, ",") {
		if v, ok := strings.CutPrefix(attr, "r="); ok {
			clientNonce = v
		}
		if strings.HasPrefix(attr, "m=") {
			return "", errors.New("SCRAM extensions are not supported")
		}
	}
	if clientNonce == "" {
		return "", errProtocol
	}
	s.gs2Header = flag + "," + authzid + ","
	s.clientBare = bare
	s.nonce = clientNonce + nonce()
	s.serverFirst = "r=" + s.nonce + ",s=" + b64.EncodeToString(s.sec.parts.Salt) + ",i=" + strconv.Itoa(s.sec.parts.Iterations)
	return s.serverFirst, nil
}

// final checks client-final-message and returns the client's ClientKey
// and server-final-message.
func (s *scramServer) final(data string) (clientKey []byte, serverFinal string, err error) {
	withoutProof, proofText, ok := cutLast(data, ",p=")
	if !ok {
		return nil, "", errProtocol
	}
	var cbind, gotNonce string
	for _, attr := range strings.Split(withoutProof, ",") {
		if v, ok := strings.CutPrefix(attr, "c="); ok {
			cbind = v
		}
		if v, ok := strings.CutPrefix(attr, "r="); ok {
			gotNonce = v
		}
	}
	want := []byte(s.gs2Header)
	if s.mechanism == mechSCRAMPlus {
		want = append(want, s.certHash...)
	}
	got, err := b64.DecodeString(cbind)
	if err != nil || !bytes.Equal(got, want) {
		return nil, "", errors.New("SCRAM channel binding check failed")
	}
	if gotNonce != s.nonce {
		return nil, "", errProtocol
	}
	proof, err := b64.DecodeString(proofText)
	if err != nil || len(proof) != sha256.Size {
		return nil, "", errProtocol
	}
	s.authMessage = s.clientBare + "," + s.serverFirst + "," + withoutProof
	key := xorBytes(proof, hmacSum(s.sec.parts.StoredKey, s.authMessage))
	if s.sec.mock || subtle.ConstantTimeCompare(sha256Sum(key), s.sec.parts.StoredKey) != 1 {
		return nil, "", errAuth
	}
	return key, "v=" + b64.EncodeToString(hmacSum(s.sec.parts.ServerKey, s.authMessage)), nil
}

func cutLast(s, sep string) (before, after string, ok bool) {
	i := strings.LastIndex(s, sep)
	if i < 0 {
		return s, "", false
	}
	return s[:i], s[i+len(sep):], true
}

// scramClient logs in to the compute with a ClientKey instead of a
// password: the proof needs only ClientKey and its hash, StoredKey.
type scramClient struct {
	clientKey []byte
	sec       scramSecret

	bare        string
	nonce       string
	authMessage string
}

func (c *scramClient) first() string {
	c.nonce = nonce()
	// The user name is in the startup message; PostgreSQL ignores n=.
	c.bare = "n=,r=" + c.nonce
	return "n,," + c.bare
}

func (c *scramClient) final(serverFirst string) (string, error) {
	var gotNonce, saltText string
	for _, attr := range strings.Split(serverFirst, ",") {
		if v, ok := strings.CutPrefix(attr, "r="); ok {
			gotNonce = v
		}
		if v, ok := strings.CutPrefix(attr, "s="); ok {
			saltText = v
		}
	}
	if !strings.HasPrefix(gotNonce, c.nonce) || len(gotNonce) == len(c.nonce) {
		return "", errProtocol
	}
	// A verifier changed between the proxy's read and the compute's
	// is a failed login, as it would be for the client.
	if salt, err := b64.DecodeString(saltText); err != nil || !bytes.Equal(salt, c.sec.parts.Salt) {
		return "", errAuth
	}
	withoutProof := "c=" + b64.EncodeToString([]byte("n,,")) + ",r=" + gotNonce
	c.authMessage = c.bare + "," + serverFirst + "," + withoutProof
	proof := xorBytes(c.clientKey, hmacSum(sha256Sum(c.clientKey), c.authMessage))
	return withoutProof + ",p=" + b64.EncodeToString(proof), nil
}

func (c *scramClient) verify(serverFinal string) error {
	v, ok := strings.CutPrefix(serverFinal, "v=")
	if !ok {
		return errProtocol
	}
	got, err := b64.DecodeString(v)
	if err != nil || !hmac.Equal(got, hmacSum(c.sec.parts.ServerKey, c.authMessage)) {
		return errors.New("the compute's SCRAM server signature does not match the role's verifier")
	}
	return nil
}
