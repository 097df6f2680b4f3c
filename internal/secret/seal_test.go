package secret

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

func testKey(fill byte) []byte { return bytes.Repeat([]byte{fill}, KeySize) }

func testSealer(t *testing.T, fill byte) *Sealer {
	t.Helper()
	s, err := NewSealer(testKey(fill))
	require.NoError(t, err)
	return s
}

func TestNewSealerKeySize(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		key     []byte
		wantErr bool
	}{
		{"nil", nil, true},
		{"16 bytes", testKey(1)[:16], true},
		{"31 bytes", testKey(1)[:31], true},
		{"33 bytes", append(testKey(1), 1), true},
		{"64 hex characters as bytes", []byte(strings.Repeat("ab", 32)), true},
		{"32 bytes", testKey(1), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, err := NewSealer(tt.key)
			if !tt.wantErr {
				require.NoError(t, err)
				require.NotNil(t, s)
				return
			}
			require.ErrorContains(t, err, "it must be exactly 32")
			require.ErrorContains(t, err, "openssl rand -base64 32")
			require.Nil(t, s)
		})
	}
}

func TestSealOpen(t *testing.T) {
	t.Parallel()
	s := testSealer(t, 1)
	tests := []struct {
		name      string
		plaintext []byte
		aad       []byte
	}{
		{"password", []byte(testPlaintext), []byte("app-db/app_blue/v3")},
		{"empty plaintext", []byte{}, []byte("aad")},
		{"nil aad", []byte("hunter2"), nil},
		{"binary", []byte{0, 1, 2, 255}, []byte{0}},
		{"large", bytes.Repeat([]byte("x"), 1<<20), []byte("big")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			sealed, err := s.Seal(tt.plaintext, tt.aad)
			require.NoError(t, err)
			require.Len(t, sealed, 1+12+len(tt.plaintext)+16)
			require.Equal(t, byte(1), sealed[0])
			if len(tt.plaintext) >= 4 {
				require.False(t, bytes.Contains(sealed, tt.plaintext))
			}

			again, err := s.Seal(tt.plaintext, tt.aad)
			require.NoError(t, err)
			require.NotEqual(t, sealed, again, "nonces must differ")

			for _, v := range [][]byte{sealed, again} {
				opened, err := s.Open(v, tt.aad)
				require.NoError(t, err)
				require.Equal(t, len(tt.plaintext), len(opened))
				require.True(t, bytes.Equal(tt.plaintext, opened))
			}
		})
	}
}

// TestSealFormat opens a sealed value with an independent implementation of
// the documented format, so a change to it cannot go unnoticed: stored
// values must stay readable across rotor versions.
func TestSealFormat(t *testing.T) {
	t.Parallel()
	master := testKey(7)
	sealed, err := testSealer(t, 7).Seal([]byte("hunter2"), []byte("record"))
	require.NoError(t, err)

	key, err := hkdf.Key(sha256.New, master, nil, "rotor seal v1", 32)
	require.NoError(t, err)
	block, err := aes.NewCipher(key)
	require.NoError(t, err)
	gcm, err := cipher.NewGCM(block)
	require.NoError(t, err)
	version, nonce, body := sealed[0], sealed[1:13], sealed[13:]
	opened, err := gcm.Open(nil, nonce, body, append([]byte{version}, "record"...))
	require.NoError(t, err)
	require.Equal(t, "hunter2", string(opened))
}

func TestOpenRejects(t *testing.T) {
	t.Parallel()
	s := testSealer(t, 1)
	plaintext := []byte(testPlaintext)
	sealed, err := s.Seal(plaintext, []byte("aad"))
	require.NoError(t, err)
	flip := func(i int) []byte {
		out := bytes.Clone(sealed)
		out[i] ^= 0x01
		return out
	}

	tests := []struct {
		name      string
		sealer    *Sealer
		sealed    []byte
		aad       string
		wrongKey  bool
		wantInErr string
	}{
		{"wrong key", testSealer(t, 2), sealed, "aad", true, "(wrong ROTOR_KEY or key file?)"},
		{"wrong aad", s, sealed, "other", true, "for another record"},
		{"missing aad", s, sealed, "", true, "cannot decrypt sealed value"},
		{"flipped nonce bit", s, flip(1), "aad", true, "it was altered"},
		{"flipped ciphertext bit", s, flip(14), "aad", true, "it was altered"},
		{"flipped tag bit", s, flip(len(sealed) - 1), "aad", true, "it was altered"},
		{"trailing byte", s, append(bytes.Clone(sealed), 0), "aad", true, "cannot decrypt"},
		{"dropped byte", s, sealed[:len(sealed)-1], "aad", true, "cannot decrypt"},
		{"empty", s, nil, "aad", false, "it is empty"},
		{"unknown version", s, flip(0), "aad", false, "unknown format version 0"},
		{"future version", s, append([]byte{2}, sealed[1:]...), "aad", false, "unknown format version 2"},
		{"plaintext stored by mistake", s, plaintext, "aad", false, "unknown format version"},
		{"truncated", s, sealed[:1+12+15], "aad", false, "shorter than any sealed value"},
		{"only the version", s, sealed[:1], "aad", false, "shorter than any sealed value"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			opened, err := tt.sealer.Open(tt.sealed, []byte(tt.aad))
			require.ErrorContains(t, err, tt.wantInErr)
			require.ErrorContains(t, err, "cannot decrypt sealed value")
			require.Equal(t, tt.wrongKey, errors.Is(err, ErrWrongKey))
			require.Nil(t, opened)
			require.Empty(t, Leaks([]byte(err.Error()), New(testPlaintext)))
		})
	}
}

func TestFingerprint(t *testing.T) {
	t.Parallel()
	s := testSealer(t, 1)

	t.Run("known answer", func(t *testing.T) {
		t.Parallel()
		key, err := hkdf.Key(sha256.New, testKey(1), nil, "rotor fingerprint v1", 32)
		require.NoError(t, err)
		m := hmac.New(sha256.New, key)
		m.Write([]byte{0, 0, 0, 0, 0, 0, 0, 7})
		m.Write([]byte("hunter2"))
		m.Write([]byte{0, 0, 0, 0, 0, 0, 0, 6})
		m.Write([]byte("vercel"))
		want := "hmac-sha256:" + hex.EncodeToString(m.Sum(nil)[:16])
		require.Equal(t, want, s.Fingerprint("hunter2", "vercel"))
	})

	tests := []struct {
		name     string
		a, b     []string
		sealerB  *Sealer
		wantSame bool
	}{
		{"deterministic", []string{"hunter2"}, []string{"hunter2"}, s, true},
		{"deterministic across sealers with one key", []string{"hunter2"}, []string{"hunter2"}, testSealer(t, 1), true},
		{"different value", []string{"hunter2"}, []string{"hunter3"}, s, false},
		{"different key", []string{"hunter2"}, []string{"hunter2"}, testSealer(t, 2), false},
		{"boundaries matter", []string{"ab", "c"}, []string{"a", "bc"}, s, false},
		{"concatenation is not a part", []string{"abc"}, []string{"ab", "c"}, s, false},
		{"no parts vs one empty part", nil, []string{""}, s, false},
		{"empty parts count", []string{"", ""}, []string{""}, s, false},
		{"order matters", []string{"a", "b"}, []string{"b", "a"}, s, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			a, b := s.Fingerprint(tt.a...), tt.sealerB.Fingerprint(tt.b...)
			require.Equal(t, tt.wantSame, a == b)
			for _, fp := range []string{a, b} {
				hexPart, ok := strings.CutPrefix(fp, "hmac-sha256:")
				require.True(t, ok, fp)
				require.Len(t, hexPart, 32)
				_, err := hex.DecodeString(hexPart)
				require.NoError(t, err)
			}
		})
	}

	t.Run("does not reveal the value", func(t *testing.T) {
		t.Parallel()
		fp := s.Fingerprint(testPlaintext)
		require.Empty(t, Leaks([]byte(fp), New(testPlaintext)))
		// Not a bare hash: anyone could recompute that for a guessed password.
		plain := sha256.Sum256([]byte(testPlaintext))
		require.NotContains(t, fp, hex.EncodeToString(plain[:16]))
	})
}

func TestGenerateKey(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		reader  io.Reader
		want    []byte
		wantErr error
	}{
		{"from reader", bytes.NewReader(testKey(9)), testKey(9), nil},
		{"short reader", bytes.NewReader(testKey(9)[:31]), nil, io.ErrUnexpectedEOF},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			key, err := GenerateKey(tt.reader)
			if tt.wantErr != nil {
				require.ErrorIs(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, key)
		})
	}
	t.Run("crypto/rand", func(t *testing.T) {
		t.Parallel()
		a, err := GenerateKey(nil)
		require.NoError(t, err)
		b, err := GenerateKey(nil)
		require.NoError(t, err)
		require.Len(t, a, KeySize)
		require.NotEqual(t, a, b)
	})
}

func env(vars map[string]string) func(string) string {
	return func(k string) string { return vars[k] }
}

func writeFile(t *testing.T, path, content string, mode os.FileMode) {
	t.Helper()
	require.NoError(t, os.WriteFile(path, []byte(content), mode))
	require.NoError(t, os.Chmod(path, mode)) // WriteFile's mode is subject to umask
}

func TestLoadKeyFromEnv(t *testing.T) {
	t.Parallel()
	key := make([]byte, KeySize)
	for i := range key {
		key[i] = byte(i*7 + 250) // crosses 0xff, so the URL alphabet differs from the standard one
	}
	missingFile := filepath.Join(t.TempDir(), "missing")
	tests := []struct {
		name  string
		value string
	}{
		{"base64", base64.StdEncoding.EncodeToString(key)},
		{"base64 unpadded", base64.RawStdEncoding.EncodeToString(key)},
		{"base64 url", base64.URLEncoding.EncodeToString(key)},
		{"base64 raw url", base64.RawURLEncoding.EncodeToString(key)},
		{"hex", hex.EncodeToString(key)},
		{"hex upper case", strings.ToUpper(hex.EncodeToString(key))},
		{"trailing newline", base64.StdEncoding.EncodeToString(key) + "\n"},
		{"surrounding spaces", "  " + hex.EncodeToString(key) + " "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			// The key file is missing and create is off: the variable wins.
			got, source, err := LoadKey(env(map[string]string{"ROTOR_KEY": tt.value}), missingFile, false)
			require.NoError(t, err)
			require.Equal(t, key, got)
			require.Equal(t, "environment variable ROTOR_KEY", source)
		})
	}
	_, err := os.Stat(missingFile)
	require.ErrorIs(t, err, fs.ErrNotExist)
}

func TestLoadKeyFromEnvRejects(t *testing.T) {
	t.Parallel()
	b64 := base64.StdEncoding.EncodeToString
	tests := []struct {
		name  string
		value string
	}{
		{"a passphrase", "correct horse battery staple"},
		{"31 bytes", b64(testKey(3)[:31])},
		{"33 bytes", b64(append(testKey(3), 3))},
		{"64 bytes", b64(bytes.Repeat(testKey(3), 2))},
		{"63 hex digits", strings.Repeat("a", 63)},
		{"64 non-hex characters", strings.Repeat("g", 64)},
		{"base64 with bad padding bits", b64(testKey(3))[:42] + "B="},
		{"only spaces", "   "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			key, source, err := LoadKey(env(map[string]string{"ROTOR_KEY": tt.value}), "", false)
			require.ErrorContains(t, err, "ROTOR_KEY is not a valid key")
			require.ErrorContains(t, err, "32 bytes as base64 (44 characters) or as 64 hex digits")
			require.ErrorContains(t, err, "`openssl rand -base64 32` or `rotor init`")
			if strings.TrimSpace(tt.value) != "" {
				require.NotContains(t, err.Error(), strings.TrimSpace(tt.value))
			}
			require.Nil(t, key)
			require.Empty(t, source)
		})
	}
}

func TestLoadKeyFromFile(t *testing.T) {
	t.Parallel()
	key := testKey(5)
	tests := []struct {
		name      string
		content   string
		mode      os.FileMode
		wantErr   string
		wantNoKey bool
	}{
		{"base64 and newline", base64.StdEncoding.EncodeToString(key) + "\n", 0o600, "", false},
		{"hex", hex.EncodeToString(key), 0o600, "", false},
		{"owner read only", base64.StdEncoding.EncodeToString(key), 0o400, "", false},
		{"group readable", base64.StdEncoding.EncodeToString(key), 0o640, "(mode 0640); run `chmod 600 ", true},
		{"world readable", base64.StdEncoding.EncodeToString(key), 0o644, "can be accessed by group or others (mode 0644)", true},
		{"group writable", base64.StdEncoding.EncodeToString(key), 0o620, "(mode 0620)", true},
		{"others executable", base64.StdEncoding.EncodeToString(key), 0o601, "(mode 0601)", true},
		{"garbage", "not a key at all", 0o600, "does not hold a key", true},
		{"empty", "", 0o600, "does not hold a key", true},
		{"too large", strings.Repeat(" ", 5000) + base64.StdEncoding.EncodeToString(key), 0o600, "does not hold a key", true},
		{"31 bytes", base64.StdEncoding.EncodeToString(key[:31]), 0o600, "restore it from a backup", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "key")
			writeFile(t, path, tt.content, tt.mode)
			got, source, err := LoadKey(env(nil), path, true)
			if tt.wantErr == "" {
				require.NoError(t, err)
				require.Equal(t, key, got)
				require.Equal(t, "key file "+path, source)
				return
			}
			require.ErrorContains(t, err, tt.wantErr)
			require.ErrorContains(t, err, path)
			if tt.content != "" {
				require.NotContains(t, err.Error(), strings.TrimSpace(tt.content))
			}
			require.Nil(t, got)
			// A refused file is never replaced, even with create on.
			content, readErr := os.ReadFile(path)
			require.NoError(t, readErr)
			require.Equal(t, tt.content, string(content))
		})
	}
}

func TestLoadKeyMissing(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		keyFile func(t *testing.T) string
		wantErr string
		wantIs  error
	}{
		{"no file configured", func(*testing.T) string { return "" }, "no encryption key: set ROTOR_KEY or configure a key file", nil},
		{"file missing", func(t *testing.T) string { return filepath.Join(t.TempDir(), "key") }, "does not exist; create it with `rotor init` or set ROTOR_KEY", fs.ErrNotExist},
		{"a directory", func(t *testing.T) string { return t.TempDir() }, "is not a regular file", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			key, source, err := LoadKey(env(nil), tt.keyFile(t), false)
			require.ErrorContains(t, err, tt.wantErr)
			if tt.wantIs != nil {
				require.ErrorIs(t, err, tt.wantIs)
			}
			require.Nil(t, key)
			require.Empty(t, source)
		})
	}
}

func TestLoadKeyCreate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		sub  []string
	}{
		{"in an existing directory", nil},
		{"in new directories", []string{"config", "rotor"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			root := t.TempDir()
			dir := filepath.Join(append([]string{root}, tt.sub...)...)
			path := filepath.Join(dir, "key")

			key, source, err := LoadKey(env(nil), path, true)
			require.NoError(t, err)
			require.Len(t, key, KeySize)
			require.Equal(t, "key file "+path, source)

			info, err := os.Stat(path)
			require.NoError(t, err)
			require.Equal(t, os.FileMode(0o600), info.Mode().Perm())
			for d := dir; d != root; d = filepath.Dir(d) {
				info, err := os.Stat(d)
				require.NoError(t, err)
				require.Equal(t, os.FileMode(0o700), info.Mode().Perm(), d)
			}
			content, err := os.ReadFile(path)
			require.NoError(t, err)
			require.Equal(t, base64.StdEncoding.EncodeToString(key)+"\n", string(content))
			entries, err := os.ReadDir(dir)
			require.NoError(t, err)
			require.Len(t, entries, 1, "no temporary file may be left behind")

			// Loading again, with or without create, returns the same key.
			for _, create := range []bool{true, false} {
				again, _, err := LoadKey(env(nil), path, create)
				require.NoError(t, err)
				require.Equal(t, key, again)
			}
		})
	}
}

// TestLoadKeyCreateRace: processes that race to create the key file must
// all end up with the one key that is on disk, or the losers would seal
// values nobody can open again.
func TestLoadKeyCreateRace(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "key")
	const racers = 8
	keys := make([][]byte, racers)
	errs := make([]error, racers)
	var wg sync.WaitGroup
	for i := range racers {
		wg.Go(func() { keys[i], _, errs[i] = LoadKey(env(nil), path, true) })
	}
	wg.Wait()
	onDisk, _, err := LoadKey(env(nil), path, false)
	require.NoError(t, err)
	for i := range racers {
		require.NoError(t, errs[i])
		require.Equal(t, onDisk, keys[i])
	}
}

func TestLoadKeyThenSeal(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "key")
	key, _, err := LoadKey(env(nil), path, true)
	require.NoError(t, err)
	s, err := NewSealer(key)
	require.NoError(t, err)
	sealed, err := s.Seal([]byte("hunter2"), nil)
	require.NoError(t, err)

	// The same key handed over through the environment opens it.
	fromEnv, _, err := LoadKey(env(map[string]string{"ROTOR_KEY": hex.EncodeToString(key)}), "", false)
	require.NoError(t, err)
	s2, err := NewSealer(fromEnv)
	require.NoError(t, err)
	opened, err := s2.Open(sealed, nil)
	require.NoError(t, err)
	require.Equal(t, "hunter2", string(opened))
}
