package awssmfake_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/rotorhq/rotor/internal/target/awsclient/awsfake"
	"github.com/rotorhq/rotor/internal/target/awssm/awssmfake"
)

const (
	tokA = "aaaaaaaa-aaaa-5aaa-8aaa-aaaaaaaaaaaa"
	tokB = "bbbbbbbb-bbbb-5bbb-8bbb-bbbbbbbbbbbb"
	auth = "AWS4-HMAC-SHA256 Credential=" + awsfake.AccessKeyID + "/20260801/us-east-1/secretsmanager/aws4_request, SignedHeaders=host, Signature=00"
)

// call posts one JSON 1.1 request and returns the status, the error type
// header and the decoded body.
func call(t *testing.T, s *awssmfake.Server, op string, body any, header map[string]string) (int, string, map[string]any) {
	t.Helper()
	b, err := json.Marshal(body)
	require.NoError(t, err)
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, s.URL+"/", strings.NewReader(string(b)))
	require.NoError(t, err)
	req.Header.Set("X-Amz-Target", "secretsmanager."+op)
	req.Header.Set("Content-Type", "application/x-amz-json-1.1")
	req.Header.Set("Authorization", auth)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := s.Client().Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	out := map[string]any{}
	require.NoError(t, json.Unmarshal(data, &out))
	return resp.StatusCode, resp.Header.Get("X-Amzn-ErrorType"), out
}

func TestProtocol(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		op       string
		header   map[string]string
		wantCode string
	}{
		{name: "no Authorization", op: "DescribeSecret", header: map[string]string{"Authorization": ""}, wantCode: "MissingAuthenticationTokenException"},
		{name: "signed for another service", op: "DescribeSecret", header: map[string]string{"Authorization": strings.Replace(auth, "/secretsmanager/", "/ssm/", 1)}, wantCode: "IncompleteSignatureException"},
		{name: "unknown key", op: "DescribeSecret", header: map[string]string{"Authorization": strings.Replace(auth, awsfake.AccessKeyID, "AKIAOTHER", 1)}, wantCode: "UnrecognizedClientException"},
		{name: "wrong content type", op: "DescribeSecret", header: map[string]string{"Content-Type": "application/json"}, wantCode: "SerializationException"},
		{name: "unknown operation", op: "RotateSecret", wantCode: "UnknownOperationException"},
		{name: "unknown field", op: "DescribeSecret", wantCode: "SerializationException"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := awssmfake.New(t)
			body := map[string]any{"SecretId": "x"}
			if tt.name == "unknown field" {
				body["Bogus"] = true
			}
			status, code, out := call(t, s, tt.op, body, tt.header)
			require.Equal(t, http.StatusBadRequest, status)
			require.Equal(t, tt.wantCode, code)
			require.Equal(t, tt.wantCode, out["__type"], "the body names the error type too")
		})
	}
}

func TestVersionsAndStages(t *testing.T) {
	t.Parallel()
	s := awssmfake.New(t)
	put := func(tok, value string, stages []string) (int, string) {
		body := map[string]any{"SecretId": "db", "SecretString": value, "ClientRequestToken": tok}
		if stages != nil {
			body["VersionStages"] = stages
		}
		status, code, _ := call(t, s, "PutSecretValue", body, nil)
		return status, code
	}
	stage := func(body map[string]any) string {
		body["SecretId"] = "db"
		_, code, _ := call(t, s, "UpdateSecretVersionStage", body, nil)
		return code
	}

	status, code, _ := call(t, s, "CreateSecret", map[string]any{"Name": "db", "SecretString": "v1", "ClientRequestToken": "short"}, nil)
	require.Equal(t, http.StatusBadRequest, status)
	require.Equal(t, "ValidationException", code, "tokens are 32 to 64 characters")

	_, code, _ = call(t, s, "CreateSecret", map[string]any{"Name": "db", "SecretString": "v1", "ClientRequestToken": tokA}, nil)
	require.Empty(t, code)
	_, code, _ = call(t, s, "CreateSecret", map[string]any{"Name": "db", "SecretString": "v1", "ClientRequestToken": tokA}, nil)
	require.Empty(t, code, "repeating the call that created the secret does nothing")
	_, code, _ = call(t, s, "CreateSecret", map[string]any{"Name": "db", "SecretString": "v9", "ClientRequestToken": tokB}, nil)
	require.Equal(t, "ResourceExistsException", code)

	status, _ = put(tokB, "v2", []string{"AWSPENDING"})
	require.Equal(t, http.StatusOK, status)
	require.Equal(t, map[string]string{"AWSCURRENT": tokA, "AWSPENDING": tokB}, s.Stages("db"))
	_, code = put(tokB, "v2", []string{"AWSPENDING"})
	require.Empty(t, code, "same token, same data: nothing happens")
	_, code = put(tokB, "other", []string{"AWSPENDING"})
	require.Equal(t, "ResourceExistsException", code, "same token, other data")
	require.Equal(t, []string{tokA, tokB}, s.Versions("db"))

	require.Equal(t, "InvalidParameterException", stage(map[string]any{"VersionStage": "AWSCURRENT", "MoveToVersionId": tokB}), "the current holder must be named")
	require.Equal(t, "InvalidParameterException", stage(map[string]any{"VersionStage": "AWSCURRENT", "MoveToVersionId": tokB, "RemoveFromVersionId": tokB}))
	require.Equal(t, "InvalidParameterException", stage(map[string]any{"VersionStage": "AWSCURRENT", "RemoveFromVersionId": tokA}), "AWSCURRENT is moved, never just removed")
	require.Empty(t, stage(map[string]any{"VersionStage": "AWSCURRENT", "MoveToVersionId": tokB, "RemoveFromVersionId": tokA}))
	require.Equal(t, map[string]string{"AWSCURRENT": tokB, "AWSPENDING": tokB, "AWSPREVIOUS": tokA}, s.Stages("db"))
	require.Empty(t, stage(map[string]any{"VersionStage": "AWSPENDING", "RemoveFromVersionId": tokB}))
	require.Equal(t, map[string]string{"AWSCURRENT": tokB, "AWSPREVIOUS": tokA}, s.Stages("db"))

	// Without VersionStages a write becomes AWSCURRENT and the old one
	// AWSPREVIOUS.
	tokC := strings.Repeat("c", 36)
	_, code = put(tokC, "v3", nil)
	require.Empty(t, code)
	require.Equal(t, map[string]string{"AWSCURRENT": tokC, "AWSPREVIOUS": tokB}, s.Stages("db"))

	_, code, out := call(t, s, "GetSecretValue", map[string]any{"SecretId": s.ARN("db"), "VersionId": tokA}, nil)
	require.Empty(t, code, "secrets are found by ARN too")
	require.Equal(t, "v1", out["SecretString"])
	_, code, _ = call(t, s, "GetSecretValue", map[string]any{"SecretId": "db", "VersionStage": "AWSPENDING"}, nil)
	require.Equal(t, "ResourceNotFoundException", code)
}
