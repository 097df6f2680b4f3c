package secret

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
)

// KeySize is the length of the master key in bytes.
const KeySize = 32

// KeyEnv is the environment variable that holds the master key.
const KeyEnv = "ROTOR_KEY"

// ErrWrongKey is wrapped by Open when authentication fails: the usual cause
// is a different key, the others (a value moved to another record, or
// altered) look the same to AES-GCM.
var ErrWrongKey = errors.New("wrong ROTOR_KEY or key file?")

// sealV1 is the first byte of every sealed value, so that a later format
// (another cipher, a key id for rotation of the master key) can be told
// apart from this one.
const sealV1 byte = 1

// HKDF info strings. Each use of the master key gets its own subkey, so a
// fingerprint can never be turned into anything that helps open a sealed
// value, and the formats can change independently.
const (
	sealInfo        = "rotor seal v1"
	fingerprintInfo = "rotor fingerprint v1"
)

// Sealer encrypts secrets at rest (AES-256-GCM) and fingerprints them
// (HMAC-SHA256), each with its own subkey of one master key. It is safe for
// concurrent use.
type Sealer struct {
	aead           cipher.AEAD
	fingerprintKey []byte
}

// NewSealer derives the sealing and fingerprint subkeys from a 32-byte
// master key (see GenerateKey and LoadKey).
func NewSealer(key []byte) (*Sealer, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("sealer: the key is %d bytes, it must be exactly %d; generate one with `openssl rand -base64 32` or `rotor init`", len(key), KeySize)
	}
	sealKey, err := hkdf.Key(sha256.New, key, nil, sealInfo, KeySize)
	if err != nil {
		return nil, fmt.Errorf("sealer: derive the sealing key: %w", err)
	}
	fpKey, err := hkdf.Key(sha256.New, key, nil, fingerprintInfo, KeySize)
	if err != nil {
		return nil, fmt.Errorf("sealer: derive the fingerprint key: %w", err)
	}
	block, err := aes.NewCipher(sealKey)
	if err != nil {
		return nil, fmt.Errorf("sealer: %w", err)
	}
	// A random 96-bit nonce per value: values are few (one per password
	// version), far from the 2^32 messages where random nonces get risky.
	aead, err := cipher.NewGCMWithRandomNonce(block)
	if err != nil {
		return nil, fmt.Errorf("sealer: %w", err)
	}
	return &Sealer{aead: aead, fingerprintKey: fpKey}, nil
}

// Seal encrypts plaintext and binds it to aad (for example the record's
// credential, role and version), which Open must be given again: a sealed
// value copied to another record does not open there. The result is
// version (1 byte) ‖ nonce (12) ‖ ciphertext ‖ tag (16).
func (s *Sealer) Seal(plaintext, aad []byte) ([]byte, error) {
	header := []byte{sealV1}
	return s.aead.Seal(header, nil, plaintext, authenticated(header, aad)), nil
}

// Open decrypts what Seal produced with the same key and aad. Its errors
// never contain the plaintext or the key.
func (s *Sealer) Open(sealed, aad []byte) ([]byte, error) {
	switch {
	case len(sealed) == 0:
		return nil, errors.New("cannot decrypt sealed value: it is empty; the store is damaged or the value was never sealed")
	case sealed[0] != sealV1:
		return nil, fmt.Errorf("cannot decrypt sealed value: unknown format version %d; it was written by a newer rotor (upgrade) or is damaged", sealed[0])
	case len(sealed) < 1+s.aead.Overhead():
		return nil, fmt.Errorf("cannot decrypt sealed value: %d bytes is shorter than any sealed value; the store is damaged", len(sealed))
	}
	plaintext, err := s.aead.Open(nil, nil, sealed[1:], authenticated(sealed[:1], aad))
	if err != nil {
		return nil, fmt.Errorf("cannot decrypt sealed value: it was sealed with another key or for another record, or it was altered; use the key it was sealed with (%w)", ErrWrongKey)
	}
	return plaintext, nil
}

// authenticated covers the version byte as well, so that no one can pass a
// value off as another format.
func authenticated(header, aad []byte) []byte {
	return append(append(make([]byte, 0, len(header)+len(aad)), header...), aad...)
}

// Fingerprint is a keyed hash of parts, for recording and comparing what
// was written without storing it: "hmac-sha256:" and 32 hex digits. Without
// the key it cannot be reversed or brute-forced, even for short values, so
// it is safe to store, log and show. Each part is length-prefixed, so
// ("ab", "c") and ("a", "bc") differ.
func (s *Sealer) Fingerprint(parts ...string) string {
	m := hmac.New(sha256.New, s.fingerprintKey)
	var n [8]byte
	for _, p := range parts {
		binary.BigEndian.PutUint64(n[:], uint64(len(p)))
		m.Write(n[:])
		io.WriteString(m, p)
	}
	return "hmac-sha256:" + hex.EncodeToString(m.Sum(nil)[:16])
}

// GenerateKey reads a new master key from r (crypto/rand when nil).
func GenerateKey(r io.Reader) ([]byte, error) {
	if r == nil {
		r = rand.Reader
	}
	key := make([]byte, KeySize)
	if _, err := io.ReadFull(r, key); err != nil {
		return nil, fmt.Errorf("generate key: read random bytes: %w", err)
	}
	return key, nil
}

// LoadKey finds the master key. ROTOR_KEY (read with getenv; os.Getenv when
// nil) wins: 32 bytes as base64 (standard or URL alphabet, padded or not) or
// as 64 hex digits. Otherwise keyFile, which must be a regular file that
// only its owner can access (0600), holding the key in the same encodings.
// When create is true and keyFile does not exist, a new key is written there
// (directories 0700, file 0600, atomically, and never over a file another
// process created meanwhile: its key is used instead).
//
// source says where the key came from, for messages; it never contains the
// key, and neither do the errors.
func LoadKey(getenv func(string) string, keyFile string, create bool) (key []byte, source string, err error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	if v := getenv(KeyEnv); v != "" {
		key, ok := decodeKey(v)
		if !ok {
			return nil, "", errors.New("ROTOR_KEY is not a valid key: it must be 32 bytes as base64 (44 characters) or as 64 hex digits; generate one with `openssl rand -base64 32` or `rotor init`")
		}
		return key, "environment variable " + KeyEnv, nil
	}
	if keyFile == "" {
		return nil, "", errors.New("no encryption key: set ROTOR_KEY or configure a key file; `rotor init` creates one")
	}
	source = "key file " + keyFile
	key, err = readKeyFile(keyFile)
	if err != nil && create && errors.Is(err, fs.ErrNotExist) {
		key, err = createKeyFile(keyFile)
	}
	if err != nil {
		return nil, "", err
	}
	return key, source, nil
}

// maxKeyFileSize is far above any encoding of 32 bytes with whitespace; a
// larger file is not a key file, and reading it whole would be pointless.
const maxKeyFileSize = 4096

func readKeyFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("key file %s does not exist; create it with `rotor init` or set ROTOR_KEY: %w", path, err)
	}
	if err != nil {
		return nil, fmt.Errorf("open key file: %w", err)
	}
	defer f.Close()
	// Stat the open file, not the path, so the checks and the read see the
	// same file.
	info, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("stat key file: %w", err)
	}
	if !info.Mode().IsRegular() {
		return nil, fmt.Errorf("key file %s is not a regular file; point the key file setting at the file `rotor init` wrote", path)
	}
	// Windows has no Unix permission bits to check.
	if perm := info.Mode().Perm(); perm&0o077 != 0 && runtime.GOOS != "windows" {
		return nil, fmt.Errorf("key file %s can be accessed by group or others (mode %04o); run `chmod 600 %s`", path, perm, path)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxKeyFileSize+1))
	defer clear(data)
	if err != nil {
		return nil, fmt.Errorf("read key file: %w", err)
	}
	key, ok := decodeKey(string(data))
	if len(data) > maxKeyFileSize || !ok {
		return nil, fmt.Errorf("key file %s does not hold a key (32 bytes as base64 or 64 hex digits); restore it from a backup, since a new key cannot open what the old one sealed", path)
	}
	return key, nil
}

func createKeyFile(path string) ([]byte, error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create key file directory: %w", err)
	}
	key, err := GenerateKey(nil)
	if err != nil {
		return nil, err
	}
	tmp, err := os.CreateTemp(dir, ".rotor-key-*")
	if err != nil {
		return nil, fmt.Errorf("create key file: %w", err)
	}
	tmpName := tmp.Name()
	defer os.Remove(tmpName)
	encoded := []byte(base64.StdEncoding.EncodeToString(key) + "\n")
	defer clear(encoded)
	err = tmp.Chmod(0o600)
	if err == nil {
		_, err = tmp.Write(encoded)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if closeErr := tmp.Close(); err == nil {
		err = closeErr
	}
	if err != nil {
		return nil, fmt.Errorf("write key file: %w", err)
	}
	// Link, unlike rename, fails when the path exists: two `rotor init`s
	// racing must not each walk away with a key, one of which is then
	// overwritten and everything sealed with it lost.
	switch err := os.Link(tmpName, path); {
	case errors.Is(err, fs.ErrExist):
		return readKeyFile(path)
	case err != nil:
		// Some filesystems have no hard links; rename is still atomic, it
		// only loses the guard against a concurrent creator.
		if err := os.Rename(tmpName, path); err != nil {
			return nil, fmt.Errorf("install key file: %w", err)
		}
	}
	os.Remove(tmpName)
	if err := syncDir(dir); err != nil {
		return nil, fmt.Errorf("install key file: %w", err)
	}
	return key, nil
}

// syncDir makes a new directory entry durable: a key that vanishes in a
// crash after values were sealed with it would take them along.
func syncDir(dir string) error {
	if runtime.GOOS == "windows" {
		return nil
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// decodeKey accepts 64 hex digits or any base64 spelling of exactly 32
// bytes. Surrounding whitespace is ignored: files end in a newline and
// `export ROTOR_KEY=$(cat file)` keeps stray spaces.
func decodeKey(text string) ([]byte, bool) {
	text = strings.TrimSpace(text)
	if len(text) == 2*KeySize {
		if key, err := hex.DecodeString(text); err == nil {
			return key, true
		}
	}
	for _, enc := range []*base64.Encoding{
		base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding,
	} {
		if key, err := enc.Strict().DecodeString(text); err == nil && len(key) == KeySize {
			return key, true
		}
	}
	return nil, false
}
