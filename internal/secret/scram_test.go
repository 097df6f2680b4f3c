package secret

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// rfc5802Verifier is the verifier formula written out a second time, from
// RFC 5802 §3 and RFC 5803, without crypto/pbkdf2: Hi is the XOR of the
// HMAC chain U1…Ui, with U1 = HMAC(password, salt ‖ INT(1)).
func rfc5802Verifier(password string, salt []byte, iterations int) string {
	mac := func(key, msg []byte) []byte {
		m := hmac.New(sha256.New, key)
		m.Write(msg)
		return m.Sum(nil)
	}
	u := mac([]byte(password), binary.BigEndian.AppendUint32(bytes.Clone(salt), 1))
	salted := bytes.Clone(u)
	for range iterations - 1 {
		u = mac([]byte(password), u)
		for i := range salted {
			salted[i] ^= u[i]
		}
	}
	clientKey := mac(salted, []byte("Client Key"))
	storedKey := sha256.Sum256(clientKey)
	serverKey := mac(salted, []byte("Server Key"))
	b64 := base64.StdEncoding.EncodeToString
	return "SCRAM-SHA-256$" + fmt.Sprint(iterations) + ":" + b64(salt) + "$" + b64(storedKey[:]) + ":" + b64(serverKey)
}

func TestSCRAMVerifierKnownAnswer(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		password   string
		salt       string
		iterations int
	}{
		{"postgres defaults", "correct-horse-battery-staple", "0123456789abcdef", SCRAMIterations},
		{"generated shape", "aB3dE5gH7jK9mN1pQ3sT5vW7yZ9bC1dF", "\x00\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f", SCRAMIterations},
		{"one iteration", "pencil", "salt", 1},
		{"url-unsafe characters", `p@ss/w:rd?#%+"'\`, "ssssssssssssssss", 4096},
		{"empty password", "", "0123456789abcdef", 4096},
		{"long salt", "pencil", strings.Repeat("s", 64), 10000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := SCRAMVerifierWithSalt(New(tt.password), []byte(tt.salt), tt.iterations)
			require.NoError(t, err)
			require.Equal(t, rfc5802Verifier(tt.password, []byte(tt.salt), tt.iterations), got.Reveal())
		})
	}
}

// TestSCRAMVerifierRFC7677 checks the verifier against the exchange in RFC
// 7677 §3 the way a server would: the stored key must accept the RFC's
// client proof, and the server key must produce the RFC's server signature.
func TestSCRAMVerifierRFC7677(t *testing.T) {
	t.Parallel()
	const (
		clientFirstBare = "n=user,r=rOprNGfwEbeRWgbNEkqO"
		serverFirst     = "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
		clientFinalBare = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
		clientProof     = "dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
		serverSignature = "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
	)
	salt, err := base64.StdEncoding.DecodeString("W22ZaJ0SNY7soEsUEjb6gQ==")
	require.NoError(t, err)
	v, err := SCRAMVerifierWithSalt(New("pencil"), salt, 4096)
	require.NoError(t, err)
	parts, err := ParseSCRAMVerifier(v)
	require.NoError(t, err)
	require.Equal(t, 4096, parts.Iterations)
	require.Equal(t, salt, parts.Salt)

	authMessage := []byte(clientFirstBare + "," + serverFirst + "," + clientFinalBare)
	mac := func(key []byte) []byte {
		m := hmac.New(sha256.New, key)
		m.Write(authMessage)
		return m.Sum(nil)
	}
	proof, err := base64.StdEncoding.DecodeString(clientProof)
	require.NoError(t, err)
	clientKey := mac(parts.StoredKey)
	for i := range clientKey {
		clientKey[i] ^= proof[i]
	}
	storedKey := sha256.Sum256(clientKey)
	require.Equal(t, parts.StoredKey, storedKey[:], "stored key does not accept the RFC 7677 client proof")
	require.Equal(t, serverSignature, base64.StdEncoding.EncodeToString(mac(parts.ServerKey)))
}

func TestSCRAMVerifierSalt(t *testing.T) {
	t.Parallel()
	salt := []byte("0123456789abcdef")
	tests := []struct {
		name    string
		reader  io.Reader
		wantErr error
	}{
		{"salt from reader", bytes.NewReader(salt), nil},
		{"reader too short", bytes.NewReader(salt[:15]), io.ErrUnexpectedEOF},
		{"empty reader", bytes.NewReader(nil), io.EOF},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			v, err := SCRAMVerifier(tt.reader, New("pencil"))
			if tt.wantErr != nil {
				require.ErrorIs(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			want, err := SCRAMVerifierWithSalt(New("pencil"), salt, SCRAMIterations)
			require.NoError(t, err)
			require.Equal(t, want.Reveal(), v.Reveal())
		})
	}
	t.Run("nil reader gives a fresh salt each time", func(t *testing.T) {
		t.Parallel()
		a, err := SCRAMVerifier(nil, New("pencil"))
		require.NoError(t, err)
		b, err := SCRAMVerifier(nil, New("pencil"))
		require.NoError(t, err)
		require.NotEqual(t, a.Reveal(), b.Reveal())
		pa, err := ParseSCRAMVerifier(a)
		require.NoError(t, err)
		require.Len(t, pa.Salt, 16)
		require.Equal(t, SCRAMIterations, pa.Iterations)
	})
}

func TestSCRAMVerifierRejects(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		password   string
		salt       []byte
		iterations int
		wantErr    string
	}{
		{"zero iterations", "pencil", []byte("salt"), 0, "iterations must be positive"},
		{"negative iterations", "pencil", []byte("salt"), -1, "iterations must be positive"},
		{"empty salt", "pencil", nil, 4096, "salt must not be empty"},
		{"non-ascii password", "pässwörd", []byte("salt"), 4096, "use an ASCII password"},
		{"fullwidth password", "ｐａｓｓ", []byte("salt"), 4096, "SASLprep"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := SCRAMVerifierWithSalt(New(tt.password), tt.salt, tt.iterations)
			require.ErrorContains(t, err, tt.wantErr)
			require.Empty(t, Leaks([]byte(err.Error()), New(tt.password)))
		})
	}
}

func TestVerifySCRAM(t *testing.T) {
	t.Parallel()
	v, err := SCRAMVerifierWithSalt(New("correct-horse"), []byte("0123456789abcdef"), 4096)
	require.NoError(t, err)
	// The same verifier spelled differently: PostgreSQL's strtol accepts a
	// sign and leading zeros in the iteration count.
	respelled := New(strings.Replace(v.Reveal(), "$4096:", "$+04096:", 1))

	tests := []struct {
		name     string
		verifier String
		password string
		want     bool
	}{
		{"right password", v, "correct-horse", true},
		{"respelled verifier", respelled, "correct-horse", true},
		{"wrong password", v, "correct-horsf", false},
		{"prefix of password", v, "correct-hors", false},
		{"empty password", v, "", false},
		{"malformed verifier", New("md5abcdef"), "correct-horse", false},
		{"empty verifier", String{}, "", false},
		{"non-ascii password", v, "cörrect-horse", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tt.want, VerifySCRAM(tt.verifier, New(tt.password)))
		})
	}
}

func TestParseSCRAMVerifier(t *testing.T) {
	t.Parallel()
	salt := []byte("0123456789abcdef")
	v, err := SCRAMVerifierWithSalt(New("pencil"), salt, 4096)
	require.NoError(t, err)
	parts, err := ParseSCRAMVerifier(v)
	require.NoError(t, err)
	require.Equal(t, 4096, parts.Iterations)
	require.Equal(t, salt, parts.Salt)
	require.Len(t, parts.StoredKey, sha256.Size)
	require.Len(t, parts.ServerKey, sha256.Size)
}

func TestParseSCRAMVerifierRejects(t *testing.T) {
	t.Parallel()
	// Every input carries a marker, as a real but misplaced secret would; no
	// error may repeat it.
	const marker = "Hunter2Marker"
	key := base64.StdEncoding.EncodeToString(make([]byte, 32))
	salt := base64.StdEncoding.EncodeToString([]byte("salt"))
	tests := []struct {
		name    string
		input   string
		wantErr string
	}{
		{"empty", "", "does not start with SCRAM-SHA-256$"},
		{"plaintext password", marker, "does not start with SCRAM-SHA-256$"},
		{"md5 hash", "md5" + marker, "does not start with SCRAM-SHA-256$"},
		{"other mechanism", "SCRAM-SHA-1$4096:" + salt + "$" + marker, "does not start with SCRAM-SHA-256$"},
		{"no keys", "SCRAM-SHA-256$4096:" + marker, "lacks the keys part"},
		{"no salt", "SCRAM-SHA-256$" + marker + "$" + key + ":" + key, "lacks iterations:salt"},
		{"one key", "SCRAM-SHA-256$4096:" + salt + "$" + marker, "lacks storedkey:serverkey"},
		{"iterations not a number", "SCRAM-SHA-256$" + marker + ":" + salt + "$" + key + ":" + key, "iteration count"},
		{"zero iterations", "SCRAM-SHA-256$0:" + salt + "$" + key + ":" + key + marker, "iteration count"},
		{"negative iterations", "SCRAM-SHA-256$-1:" + salt + "$" + key + ":" + key + marker, "iteration count"},
		{"iterations beyond int32", "SCRAM-SHA-256$2147483648:" + salt + "$" + key + ":" + key + marker, "iteration count"},
		{"salt not base64", "SCRAM-SHA-256$4096:" + marker + "!$" + key + ":" + key, "salt is empty or not base64"},
		{"salt empty", "SCRAM-SHA-256$4096:$" + key + ":" + key + marker, "salt is empty or not base64"},
		{"stored key not base64", "SCRAM-SHA-256$4096:" + salt + "$" + marker + "!:" + key, "stored key"},
		{"stored key short", "SCRAM-SHA-256$4096:" + salt + "$" + salt + ":" + key + marker, "stored key"},
		{"server key not base64", "SCRAM-SHA-256$4096:" + salt + "$" + key + ":" + marker + "!", "server key"},
		{"server key long", "SCRAM-SHA-256$4096:" + salt + "$" + key + ":" + key + "AAAA" + marker, "server key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := ParseSCRAMVerifier(New(tt.input))
			require.ErrorContains(t, err, tt.wantErr)
			require.ErrorContains(t, err, "expected SCRAM-SHA-256$<iterations>")
			require.NotContains(t, err.Error(), marker)
			if tt.input != "" {
				require.Empty(t, Leaks([]byte(err.Error()), New(tt.input)))
			}
		})
	}
}
