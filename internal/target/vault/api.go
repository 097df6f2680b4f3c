package vault

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// The vault target's five calls (read and write a KV v2 secret, patch it,
// read its metadata, look up the token and its capabilities) go straight
// to Vault's HTTP API (targets-api.md §8; Vault's API docs: X-Vault-Token,
// X-Vault-Namespace, errors as {"errors":[…]}). The official client,
// github.com/hashicorp/vault/api, compiled several dozen regular
// expressions at process start (its sudo-path table), about 1.5 ms that
// every rotor command paid; what the target needs of it is this file.

// client is one Vault server, one token, one namespace.
type client struct {
	http      *http.Client
	address   string
	token     string
	namespace string
}

// vaultSecret is the part of Vault's response envelope the target reads;
// numbers stay json.Number, as Vault's own client leaves them.
type vaultSecret struct {
	Data map[string]any `json:"data"`
}

// responseError is an answer outside 2xx: its status, Vault's messages
// and the headers (for Retry-After).
type responseError struct {
	StatusCode int
	Errors     []string
	Header     http.Header
}

func (e *responseError) Error() string {
	return fmt.Sprintf("Vault answered %d: %s", e.StatusCode, strings.Join(e.Errors, "; "))
}

// maxAnswer bounds what is read of an answer.
const maxAnswer = 4 << 20

// do sends one request to /v1/<path> and decodes the answer. A 404 that
// carries data (a KV v2 path whose latest version was deleted answers so)
// is an answer, a 404 without is nil, nil: what Vault's client does for
// reads. A 204 is nil, nil.
func (c *client) do(ctx context.Context, method, path, contentType string, body any) (*vaultSecret, error) {
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, fmt.Errorf("encode the request: %w", err)
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.address+"/v1/"+path, r)
	if err != nil {
		return nil, err
	}
	req.Header.Set("X-Vault-Token", c.token)
	req.Header.Set("X-Vault-Request", "true")
	if c.namespace != "" {
		req.Header.Set("X-Vault-Namespace", c.namespace)
	}
	if body != nil {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return nil, fmt.Errorf("read the answer (HTTP %d): %w", resp.StatusCode, err)
	}
	var s struct {
		vaultSecret
		Errors []string `json:"errors"`
	}
	decodeErr := error(nil)
	if len(bytes.TrimSpace(data)) > 0 {
		d := json.NewDecoder(bytes.NewReader(data))
		d.UseNumber()
		decodeErr = d.Decode(&s)
	}
	switch {
	case resp.StatusCode == http.StatusNotFound && method == http.MethodGet && decodeErr == nil:
		if s.Data == nil {
			return nil, nil
		}
		return &s.vaultSecret, nil
	case resp.StatusCode < 200 || resp.StatusCode > 299:
		re := &responseError{StatusCode: resp.StatusCode, Errors: s.Errors, Header: resp.Header}
		if decodeErr != nil {
			// A proxy's page, not Vault: keep a little of it.
			re.Errors = []string{strings.TrimSpace(string(data))}
		}
		return nil, re
	case resp.StatusCode == http.StatusNoContent || len(bytes.TrimSpace(data)) == 0:
		return nil, nil
	case decodeErr != nil:
		return nil, fmt.Errorf("the answer (HTTP %d) is not Vault's JSON: %w", resp.StatusCode, decodeErr)
	}
	return &s.vaultSecret, nil
}

func (c *client) read(ctx context.Context, path string) (*vaultSecret, error) {
	return c.do(ctx, http.MethodGet, path, "", nil)
}

// write is a PUT, as Vault's client sends writes.
func (c *client) write(ctx context.Context, path string, body map[string]any) (*vaultSecret, error) {
	return c.do(ctx, http.MethodPut, path, "application/json", body)
}

// mergePatch sends a JSON merge patch (RFC 7386), as KV v2's PATCH wants.
func (c *client) mergePatch(ctx context.Context, path string, body map[string]any) (*vaultSecret, error) {
	return c.do(ctx, http.MethodPatch, path, "application/merge-patch+json", body)
}

// capabilitiesSelf is sys/capabilities-self for one path: the list under
// the path's own key, or under "capabilities" (older servers).
func (c *client) capabilitiesSelf(ctx context.Context, path string) ([]string, error) {
	// POST, as Vault's client sends it: a query, not a write.
	s, err := c.do(ctx, http.MethodPost, "sys/capabilities-self", "application/json", map[string]any{"paths": []string{path}})
	if err != nil || s == nil || s.Data == nil {
		return nil, err
	}
	raw, ok := s.Data[path]
	if !ok {
		raw = s.Data["capabilities"]
	}
	list, _ := raw.([]any)
	caps := make([]string, 0, len(list))
	for _, v := range list {
		if c, ok := v.(string); ok {
			caps = append(caps, c)
		}
	}
	return caps, nil
}

// tlsFromEnv is Vault's usual TLS environment, as its CLI and client read
// it: VAULT_CACERT (a PEM file), VAULT_CAPATH (a directory of PEM files),
// VAULT_CLIENT_CERT with VAULT_CLIENT_KEY, VAULT_TLS_SERVER_NAME and
// VAULT_SKIP_VERIFY. nil when none is set: the system's roots then.
func tlsFromEnv(getenv func(string) string) (*tls.Config, error) {
	caFile, caDir := getenv("VAULT_CACERT"), getenv("VAULT_CAPATH")
	certFile, keyFile := getenv("VAULT_CLIENT_CERT"), getenv("VAULT_CLIENT_KEY")
	serverName, skip := getenv("VAULT_TLS_SERVER_NAME"), getenv("VAULT_SKIP_VERIFY")
	if caFile == "" && caDir == "" && certFile == "" && keyFile == "" && serverName == "" && skip == "" {
		return nil, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: serverName}
	if skip != "" {
		v, err := strconv.ParseBool(skip)
		if err != nil {
			return nil, fmt.Errorf("VAULT_SKIP_VERIFY=%q is not true or false", skip)
		}
		cfg.InsecureSkipVerify = v //nolint:gosec // the operator asked for it, as with the vault CLI
	}
	if caFile != "" || caDir != "" {
		pool := x509.NewCertPool()
		files := []string{}
		if caFile != "" {
			files = append(files, caFile)
		} else {
			entries, err := os.ReadDir(caDir)
			if err != nil {
				return nil, fmt.Errorf("VAULT_CAPATH: %w", err)
			}
			for _, e := range entries {
				if !e.IsDir() {
					files = append(files, filepath.Join(caDir, e.Name()))
				}
			}
		}
		for _, f := range files {
			pem, err := os.ReadFile(f)
			if err != nil {
				return nil, fmt.Errorf("read the CA certificate %s: %w", f, err)
			}
			if !pool.AppendCertsFromPEM(pem) && caFile != "" {
				return nil, fmt.Errorf("VAULT_CACERT %s holds no PEM certificate", f)
			}
		}
		cfg.RootCAs = pool
	}
	if (certFile == "") != (keyFile == "") {
		return nil, errors.New("VAULT_CLIENT_CERT and VAULT_CLIENT_KEY go together; set both or neither")
	}
	if certFile != "" {
		pair, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("VAULT_CLIENT_CERT/VAULT_CLIENT_KEY: %w", err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	return cfg, nil
}
