package neonfake

import (
	"crypto/pbkdf2"
	"crypto/sha256"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/rotorhq/rotor/internal/secret"
)

// client is a SCRAM client that knows the password, as libpq and pgx are:
// written from RFC 5802 §3, apart from the proxy's code.
type client struct {
	password, gs2 string
	cbind         []byte
	bare          string
}

func (c *client) first() string {
	c.bare = "n=,r=clientnonce"
	return c.gs2 + c.bare
}

func (c *client) final(t *testing.T, serverFirst string) (msg string, serverSig []byte) {
	attrs := map[string]string{}
	for _, a := range strings.Split(serverFirst, ",") {
		attrs[a[:1]] = a[2:]
	}
	salt, err := b64.DecodeString(attrs["s"])
	require.NoError(t, err)
	salted, err := pbkdf2.Key(sha256.New, c.password, salt, 4096, 32)
	require.NoError(t, err)
	clientKey := hmacSum(salted, "Client Key")
	withoutProof := "c=" + b64.EncodeToString(append([]byte(c.gs2), c.cbind...)) + ",r=" + attrs["r"]
	auth := c.bare + "," + serverFirst + "," + withoutProof
	proof := xorBytes(clientKey, hmacSum(sha256Sum(clientKey), auth))
	return withoutProof + ",p=" + b64.EncodeToString(proof), hmacSum(hmacSum(salted, "Server Key"), auth)
}

func TestSCRAMServerAndClientKey(t *testing.T) {
	t.Parallel()
	const password = "Right-password-42"
	v, err := secret.SCRAMVerifier(nil, secret.New(password))
	require.NoError(t, err)
	sec := parseSecret(v.Reveal())
	certHash := sha256Sum([]byte("the proxy's certificate"))

	run := func(mech string, c *client) ([]byte, error) {
		srv := &scramServer{sec: sec, mechanism: mech, certHash: certHash}
		serverFirst, err := srv.first(c.first())
		if err != nil {
			return nil, err
		}
		require.True(t, strings.HasPrefix(serverFirst, "r=clientnonce"))
		final, serverSig := c.final(t, serverFirst)
		key, serverFinal, err := srv.final(final)
		if err == nil {
			require.Equal(t, "v="+b64.EncodeToString(serverSig), serverFinal, "the client can verify the proxy")
		}
		return key, err
	}

	key, err := run(mechSCRAMPlus, &client{password: password, gs2: "p=tls-server-end-point,,", cbind: certHash})
	require.NoError(t, err)
	require.Equal(t, sec.parts.StoredKey, sha256Sum(key), "the proof yields the role's ClientKey")
	_, err = run(mechSCRAM, &client{password: password, gs2: "n,,"})
	require.NoError(t, err)

	_, err = run(mechSCRAMPlus, &client{password: "Wrong-password-42", gs2: "p=tls-server-end-point,,", cbind: certHash})
	require.ErrorIs(t, err, errAuth)
	_, err = run(mechSCRAMPlus, &client{password: password, gs2: "p=tls-server-end-point,,", cbind: sha256Sum([]byte("a man in the middle's"))})
	require.ErrorContains(t, err, "channel binding check failed")
	_, err = run(mechSCRAM, &client{password: password, gs2: "y,,"})
	require.ErrorContains(t, err, "negotiation error", "a downgrade from -PLUS is refused")
	_, err = run(mechSCRAMPlus, &client{password: password, gs2: "n,,"})
	require.Error(t, err)

	// A role without a verifier fails even with a matching proof of
	// nothing.
	srv := &scramServer{sec: mockSecret(), mechanism: mechSCRAM}
	_, err = srv.first("n,,n=,r=abc")
	require.NoError(t, err)
	_, _, err = srv.final("c=biws,r=" + srv.nonce + ",p=" + b64.EncodeToString(make([]byte, 32)))
	require.ErrorIs(t, err, errAuth)

	// The ClientKey logs in on the compute's side: the compute's check is
	// the server's, run on the proxy's proof.
	cl := &scramClient{clientKey: key, sec: sec}
	compute := &scramServer{sec: sec, mechanism: mechSCRAM}
	computeFirst, err := compute.first(cl.first())
	require.NoError(t, err)
	final, err := cl.final(computeFirst)
	require.NoError(t, err)
	_, computeFinal, err := compute.final(final)
	require.NoError(t, err)
	require.NoError(t, cl.verify(computeFinal))
	require.Error(t, cl.verify("v="+b64.EncodeToString(make([]byte, 32))))
}
