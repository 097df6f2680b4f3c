package secret

import (
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"
)

// SCRAM parameters PostgreSQL itself uses (scram_iterations default, 16-byte
// salt). PgBouncer can only pass a SCRAM login through when its auth_file
// holds the very same verifier, so rotor computes it once and reuses it.
const (
	SCRAMIterations = 4096
	scramSaltLen    = 16
)

// SCRAMVerifier computes a SCRAM-SHA-256 verifier (RFC 5802/7677, stored in
// RFC 5803 form, as PostgreSQL's rolpassword) for password with a fresh
// random salt read from r (crypto/rand when nil). The result is what
// `ALTER ROLE … PASSWORD '<verifier>'` accepts, so the server never sees the
// plaintext.
func SCRAMVerifier(r io.Reader, password String) (String, error) {
	if r == nil {
		r = rand.Reader
	}
	salt := make([]byte, scramSaltLen)
	if _, err := io.ReadFull(r, salt); err != nil {
		return String{}, fmt.Errorf("read salt: %w", err)
	}
	return SCRAMVerifierWithSalt(password, salt, SCRAMIterations)
}

// SCRAMVerifierWithSalt computes the verifier for a given salt and
// iteration count.
func SCRAMVerifierWithSalt(password String, salt []byte, iterations int) (String, error) {
	if iterations < 1 {
		return String{}, errors.New("scram: iterations must be positive; use SCRAMIterations")
	}
	if len(salt) == 0 {
		return String{}, errors.New("scram: salt must not be empty; use 16 random bytes, as SCRAMVerifier does")
	}
	// Clients (libpq, pgx) run SASLprep on the password before hashing. For
	// some non-ASCII text that changes the bytes (NFKC, mapped spaces, dropped
	// soft hyphens), and a verifier of the raw bytes would lock the role out;
	// telling which text needs SASLprep's Unicode 3.2 tables. For ASCII, all
	// rotor generates, SASLprep is the identity or falls back to the raw bytes.
	plaintext := password.Reveal()
	for i := 0; i < len(plaintext); i++ {
		if plaintext[i] >= utf8.RuneSelf {
			return String{}, errors.New("scram: password has non-ASCII characters, which clients normalize (SASLprep) before hashing, so this verifier could not be used to log in; use an ASCII password")
		}
	}
	salted, err := pbkdf2.Key(sha256.New, plaintext, salt, iterations, sha256.Size)
	if err != nil {
		return String{}, fmt.Errorf("scram: %w", err)
	}
	clientKey := hmacSHA256(salted, "Client Key")
	storedKey := sha256.Sum256(clientKey)
	serverKey := hmacSHA256(salted, "Server Key")
	b64 := base64.StdEncoding.EncodeToString
	return New(fmt.Sprintf("SCRAM-SHA-256$%d:%s$%s:%s",
		iterations, b64(salt), b64(storedKey[:]), b64(serverKey))), nil
}

// SCRAMParts is a parsed verifier.
type SCRAMParts struct {
	Iterations int
	Salt       []byte
	StoredKey  []byte
	ServerKey  []byte
}

// ParseSCRAMVerifier splits an RFC 5803 verifier. Errors never include the
// input.
func ParseSCRAMVerifier(v String) (SCRAMParts, error) {
	s := v.Reveal()
	rest, ok := strings.CutPrefix(s, "SCRAM-SHA-256$")
	if !ok {
		return SCRAMParts{}, errors.New("scram: verifier does not start with SCRAM-SHA-256$; " + verifierShape)
	}
	head, keys, ok := strings.Cut(rest, "$")
	if !ok {
		return SCRAMParts{}, errors.New("scram: verifier lacks the keys part; " + verifierShape)
	}
	iterText, saltText, ok := strings.Cut(head, ":")
	if !ok {
		return SCRAMParts{}, errors.New("scram: verifier lacks iterations:salt; " + verifierShape)
	}
	storedText, serverText, ok := strings.Cut(keys, ":")
	if !ok {
		return SCRAMParts{}, errors.New("scram: verifier lacks storedkey:serverkey; " + verifierShape)
	}
	// PostgreSQL keeps the count in a C int; anything larger is not a
	// verifier the server wrote, and would make VerifySCRAM run for hours.
	iter, err := strconv.Atoi(iterText)
	if err != nil || iter < 1 || iter > math.MaxInt32 {
		return SCRAMParts{}, errors.New("scram: verifier iteration count is not a number between 1 and 2147483647; " + verifierShape)
	}
	var p SCRAMParts
	p.Iterations = iter
	dec := base64.StdEncoding.DecodeString
	if p.Salt, err = dec(saltText); err != nil || len(p.Salt) == 0 {
		return SCRAMParts{}, errors.New("scram: verifier salt is empty or not base64; " + verifierShape)
	}
	if p.StoredKey, err = dec(storedText); err != nil || len(p.StoredKey) != sha256.Size {
		return SCRAMParts{}, errors.New("scram: verifier stored key is not a base64 SHA-256; " + verifierShape)
	}
	if p.ServerKey, err = dec(serverText); err != nil || len(p.ServerKey) != sha256.Size {
		return SCRAMParts{}, errors.New("scram: verifier server key is not a base64 SHA-256; " + verifierShape)
	}
	return p, nil
}

const verifierShape = "expected SCRAM-SHA-256$<iterations>:<base64 salt>$<base64 stored key>:<base64 server key>"

// VerifySCRAM reports whether password matches verifier.
func VerifySCRAM(verifier, password String) bool {
	p, err := ParseSCRAMVerifier(verifier)
	if err != nil {
		return false
	}
	again, err := SCRAMVerifierWithSalt(password, p.Salt, p.Iterations)
	if err != nil {
		return false
	}
	q, err := ParseSCRAMVerifier(again)
	if err != nil {
		return false
	}
	// Compare the keys, not the text: the same verifier can be spelled in
	// more than one way ("+4096", non-canonical base64 padding bits).
	keys := subtle.ConstantTimeCompare(p.StoredKey, q.StoredKey) & subtle.ConstantTimeCompare(p.ServerKey, q.ServerKey)
	return keys == 1
}

func hmacSHA256(key []byte, msg string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(msg))
	return m.Sum(nil)
}
