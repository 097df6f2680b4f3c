package neonfake

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// authority is the certificate the fake's endpoints present. Neon's
// proxy terminates TLS with a certificate for *.<region>.aws.neon.tech
// (the hosts its connection strings name; neon-api.md §2), so this one
// covers that wildcard, and 127.0.0.1 and localhost for clients that dial
// the address Route returns. It is its own CA, so a client can verify it
// with sslrootcert=<CACertFile> and sslmode=verify-full.
type authority struct {
	certPEM []byte
	cert    tls.Certificate
	pool    *x509.CertPool
}

func newAuthority(region string, now time.Time) (*authority, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("neonfake: generate the endpoint TLS key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("neonfake: generate the endpoint TLS serial: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "*." + region + ".aws.neon.tech", Organization: []string{"rotor Neon fake"}},
		// Backdated, so that a client whose clock is a little behind
		// accepts it.
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		DNSNames:              []string{"*." + region + ".aws.neon.tech", "localhost"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		// ECDSA with SHA-256: the hash tls-server-end-point channel
		// binding then uses (RFC 5929 §4.1), which every client knows.
		SignatureAlgorithm: x509.ECDSAWithSHA256,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("neonfake: create the endpoint TLS certificate: %w", err)
	}
	parsed, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("neonfake: parse the endpoint TLS certificate: %w", err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(parsed)
	return &authority{
		certPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		cert:    tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: parsed},
		pool:    pool,
	}, nil
}

// serverConfig is what the endpoints accept: TLS 1.2 or later, and the
// ALPN name PostgreSQL 17 clients send for direct TLS.
func (a *authority) serverConfig() *tls.Config {
	return &tls.Config{Certificates: []tls.Certificate{a.cert}, MinVersion: tls.VersionTLS12, NextProtos: []string{"postgresql"}}
}

// endPointHash is the tls-server-end-point channel binding data of the
// certificate (RFC 5929): its SHA-256, as it is signed with SHA-256.
func (a *authority) endPointHash() []byte {
	return sha256Sum(a.cert.Certificate[0])
}

// writeCA writes the certificate into a new directory and returns the
// file's path.
func (a *authority) writeCA() (dir, file string, err error) {
	dir, err = os.MkdirTemp("", "neonfake-ca-")
	if err != nil {
		return "", "", fmt.Errorf("neonfake: create a directory for the CA file: %w", err)
	}
	file = filepath.Join(dir, "neon-ca.crt")
	if err := os.WriteFile(file, a.certPEM, 0o644); err != nil {
		_ = os.RemoveAll(dir)
		return "", "", fmt.Errorf("neonfake: write %s: %w", file, err)
	}
	return dir, file, nil
}
