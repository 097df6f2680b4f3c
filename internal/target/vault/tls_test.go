package vault_test

import (
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/rotorhq/rotor/internal/target"
	"github.com/rotorhq/rotor/internal/target/targettest"
	"github.com/rotorhq/rotor/internal/target/vault"
	"github.com/rotorhq/rotor/internal/target/vault/vaultfake"
)

// The production client has no transport of its own (cli's factory passes
// a timeout only), so Vault's TLS environment decides whom the target
// trusts; these run against a fake behind a real TLS listener.
func TestTLSEnvironment(t *testing.T) {
	t.Parallel()
	fake := vaultfake.NewTLS(t)
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca.pem")
	require.NoError(t, os.WriteFile(ca, fake.CertificatePEM(), 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "junk.pem"), []byte("not a certificate"), 0o600))
	empty := filepath.Join(t.TempDir(), "empty.pem")
	require.NoError(t, os.WriteFile(empty, nil, 0o600))

	tests := []struct {
		name    string
		env     map[string]string
		wantErr string
		wantIs  error
	}{
		{name: "VAULT_CACERT", env: map[string]string{"VAULT_CACERT": ca}},
		{name: "VAULT_CAPATH", env: map[string]string{"VAULT_CAPATH": dir}},
		{name: "VAULT_SKIP_VERIFY", env: map[string]string{"VAULT_SKIP_VERIFY": "true"}},
		{name: "system roots only", env: nil, wantErr: "certificate"},
		{name: "VAULT_SKIP_VERIFY not a boolean", env: map[string]string{"VAULT_SKIP_VERIFY": "yes please"}, wantErr: `VAULT_SKIP_VERIFY="yes please" is not true or false`, wantIs: target.ErrInvalid},
		{name: "VAULT_CACERT missing", env: map[string]string{"VAULT_CACERT": filepath.Join(dir, "nope.pem")}, wantErr: "read the CA certificate", wantIs: target.ErrInvalid},
		{name: "VAULT_CACERT not PEM", env: map[string]string{"VAULT_CACERT": empty}, wantErr: "holds no PEM certificate", wantIs: target.ErrInvalid},
		{name: "client cert without key", env: map[string]string{"VAULT_CACERT": ca, "VAULT_CLIENT_CERT": ca}, wantErr: "VAULT_CLIENT_CERT and VAULT_CLIENT_KEY go together", wantIs: target.ErrInvalid},
		{name: "server name that the certificate lacks", env: map[string]string{"VAULT_CACERT": ca, "VAULT_TLS_SERVER_NAME": "vault.other.test"}, wantErr: "vault.other.test"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			env := map[string]string{"VAULT_TOKEN": fake.Token}
			for k, v := range tt.env {
				env[k] = v
			}
			tg, err := vault.New(target.Params{
				Name:       "kv",
				Decode:     targettest.DecodeYAML("{address: " + fake.URL + ", path: " + path + "}"),
				Getenv:     targettest.MapEnv(env),
				HTTPClient: &http.Client{Timeout: 10 * time.Second},
			})
			require.NoError(t, err)
			_, err = tg.Put(t.Context(), targettest.PutRequest(map[string]string{"DATABASE_URL": "postgres://a@h/db"}))
			if tt.wantErr == "" {
				require.NoError(t, err)
				got, err := tg.(target.Checker).Check(t.Context(), target.CheckRequest{Keys: []string{"DATABASE_URL"}})
				require.NoError(t, err)
				require.Equal(t, "postgres://a@h/db", got.Values["DATABASE_URL"].Reveal())
				return
			}
			require.ErrorContains(t, err, tt.wantErr)
			require.ErrorContains(t, err, `vault target "kv"`)
			if tt.wantIs != nil {
				require.ErrorIs(t, err, tt.wantIs)
			}
		})
	}
}
