package gcpsmfake_test

import (
	"encoding/base64"
	"encoding/json"
	"hash/crc32"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/rotorhq/rotor/internal/target/gcpsm/gcpsmfake"
)

const secret = "/v1/projects/p-123456/secrets/db"

func do(t *testing.T, s *gcpsmfake.Server, method, path, body, token string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, s.URL+path, strings.NewReader(body))
	require.NoError(t, err)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := s.Client().Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	out := map[string]any{}
	require.NoError(t, json.Unmarshal(data, &out))
	return resp.StatusCode, out
}

// status is the gRPC status name in a Google error body.
func status(out map[string]any) string {
	e, _ := out["error"].(map[string]any)
	s, _ := e["status"].(string)
	return s
}

func TestContract(t *testing.T) {
	t.Parallel()
	s := gcpsmfake.New(t)
	add := func(data, crc string) (int, map[string]any) {
		return do(t, s, "POST", secret+":addVersion", `{"payload":{"data":"`+base64.StdEncoding.EncodeToString([]byte(data))+`","dataCrc32c":"`+crc+`"}}`, s.Token)
	}

	code, out := do(t, s, "GET", secret, "", "")
	require.Equal(t, http.StatusUnauthorized, code)
	require.Equal(t, "UNAUTHENTICATED", status(out))

	crc := strconv.FormatUint(uint64(crc32.Checksum([]byte("v1"), crc32.MakeTable(crc32.Castagnoli))), 10)
	code, out = add("v1", crc)
	require.Equal(t, http.StatusNotFound, code, "no secret yet")
	require.Equal(t, "NOT_FOUND", status(out))

	code, _ = do(t, s, "POST", "/v1/projects/p-123456/secrets?secretId=db", `{"replication":{"automatic":{}}}`, s.Token)
	require.Equal(t, http.StatusOK, code)
	code, out = do(t, s, "POST", "/v1/projects/p-123456/secrets?secretId=db", `{"replication":{"automatic":{}}}`, s.Token)
	require.Equal(t, http.StatusConflict, code)
	require.Equal(t, "ALREADY_EXISTS", status(out))

	code, out = add("v1", "1")
	require.Equal(t, http.StatusBadRequest, code, "a checksum that does not match")
	require.Equal(t, "INVALID_ARGUMENT", status(out))
	for range 3 {
		code, _ = add("v1", crc)
		require.Equal(t, http.StatusOK, code)
	}
	code, out = do(t, s, "GET", secret+"/versions/latest:access", "", s.Token)
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, "projects/p-123456/secrets/db/versions/3", out["name"])
	require.Equal(t, map[string]any{"data": base64.StdEncoding.EncodeToString([]byte("v1")), "dataCrc32c": crc}, out["payload"])

	code, out = do(t, s, "GET", secret+"/versions?filter=state%3AENABLED&pageSize=2", "", s.Token)
	require.Equal(t, http.StatusOK, code)
	names := func(out map[string]any) []string {
		var ns []string
		for _, v := range out["versions"].([]any) {
			ns = append(ns, v.(map[string]any)["name"].(string))
		}
		return ns
	}
	require.Equal(t, []string{"projects/p-123456/secrets/db/versions/3", "projects/p-123456/secrets/db/versions/2"}, names(out), "newest first")
	require.Equal(t, "2", out["nextPageToken"])

	code, _ = do(t, s, "POST", secret+"/versions/3:disable", "{}", s.Token)
	require.Equal(t, http.StatusOK, code)
	code, out = do(t, s, "GET", secret+"/versions/latest:access", "", s.Token)
	require.Equal(t, http.StatusBadRequest, code, "latest is the newest version, even disabled")
	require.Equal(t, "FAILED_PRECONDITION", status(out))

	s.FailNext(gcpsmfake.Fault{Status: http.StatusTooManyRequests, Message: "Quota exceeded"})
	code, out = do(t, s, "GET", secret, "", s.Token)
	require.Equal(t, http.StatusTooManyRequests, code)
	require.Equal(t, "RESOURCE_EXHAUSTED", status(out))

	s.Deny(gcpsmfake.PermAccess)
	code, out = do(t, s, "GET", secret+"/versions/1:access", "", s.Token)
	require.Equal(t, http.StatusForbidden, code)
	require.Equal(t, "PERMISSION_DENIED", status(out))
}
