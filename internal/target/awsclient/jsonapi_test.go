package awsclient_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/stretchr/testify/require"

	"github.com/rotorhq/rotor/internal/target/awsclient"
)

func TestEndpoint(t *testing.T) {
	t.Parallel()
	base := "https://global.example"
	tests := []struct {
		name     string
		explicit string
		region   string
		env      map[string]string
		cfgBase  *string
		want     string
	}{
		{name: "standard", region: "eu-west-1", want: "https://ssm.eu-west-1.amazonaws.com"},
		{name: "GovCloud", region: "us-gov-west-1", want: "https://ssm.us-gov-west-1.amazonaws.com"},
		{name: "China", region: "cn-north-1", want: "https://ssm.cn-north-1.amazonaws.com.cn"},
		{name: "ISO", region: "us-iso-east-1", want: "https://ssm.us-iso-east-1.c2s.ic.gov"},
		{name: "ISO-B", region: "us-isob-east-1", want: "https://ssm.us-isob-east-1.sc2s.sgov.gov"},
		{name: "FIPS", region: "us-east-1", env: map[string]string{"AWS_USE_FIPS_ENDPOINT": "true"}, want: "https://ssm-fips.us-east-1.amazonaws.com"},
		{name: "dual-stack", region: "us-east-1", env: map[string]string{"AWS_USE_DUALSTACK_ENDPOINT": "true"}, want: "https://ssm.us-east-1.api.aws"},
		{name: "explicit wins", explicit: "https://vpce-1.ssm.us-east-1.vpce.amazonaws.com", region: "us-east-1", env: map[string]string{"AWS_ENDPOINT_URL_SSM": "https://other"}, want: "https://vpce-1.ssm.us-east-1.vpce.amazonaws.com"},
		{name: "service variable", region: "us-east-1", env: map[string]string{"AWS_ENDPOINT_URL_SSM": "http://localhost:4566", "AWS_ENDPOINT_URL": "https://global"}, cfgBase: &base, want: "http://localhost:4566"},
		{name: "global from the config", region: "us-east-1", cfgBase: &base, want: base},
		{name: "global variable", region: "us-east-1", env: map[string]string{"AWS_ENDPOINT_URL": "https://global"}, want: "https://global"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			getenv := func(k string) string { return tt.env[k] }
			got := awsclient.Endpoint(tt.explicit, "SSM", "ssm", aws.Config{Region: tt.region, BaseEndpoint: tt.cfgBase}, getenv)
			require.Equal(t, tt.want, got)
		})
	}
}

// TestJSONAPIErrors: an error answer reads as the SDK's would, whichever
// of the header and the body names the code and in whichever spelling.
func TestJSONAPIErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, header, body string
		status             int
		wantCode, wantMsg  string
	}{
		{name: "header", header: "ThrottlingException:http://internal.amazon.com/coral/com.amazon.coral.availability/", body: `{"message":"Rate exceeded"}`, status: 400, wantCode: "ThrottlingException", wantMsg: "Rate exceeded"},
		{name: "body with namespace", body: `{"__type":"com.amazonaws.ssm#ParameterNotFound","Message":"gone"}`, status: 400, wantCode: "ParameterNotFound", wantMsg: "gone"},
		{name: "no code at all", body: `<html>bad gateway</html>`, status: 502, wantCode: "BadGateway"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var auth, target string
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				auth, target = r.Header.Get("Authorization"), r.Header.Get("X-Amz-Target")
				if tt.header != "" {
					w.Header().Set("X-Amzn-ErrorType", tt.header)
				}
				w.Header().Set("Retry-After", "3")
				w.WriteHeader(tt.status)
				_, _ = w.Write([]byte(tt.body))
			}))
			t.Cleanup(srv.Close)
			cfg := aws.Config{Region: "eu-west-1", HTTPClient: srv.Client(),
				Credentials: credentials.NewStaticCredentialsProvider("AKIDEXAMPLE", "not-a-real-secret", "")}
			c := awsclient.NewJSONAPI(cfg, srv.URL, "AmazonSSM", "ssm")
			err := c.Call(context.Background(), "GetParameters", map[string]any{"Names": []string{"/a"}}, nil)
			f, ok := awsclient.Inspect(err)
			require.True(t, ok, "%v", err)
			require.Equal(t, tt.wantCode, f.Code)
			require.Equal(t, tt.wantMsg, f.Message)
			require.Equal(t, tt.status, f.Status)
			require.Equal(t, "3", f.Header.Get("Retry-After"))
			require.Equal(t, "AmazonSSM.GetParameters", target)
			require.True(t, strings.HasPrefix(auth, "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/"), auth)
			require.Contains(t, auth, "/eu-west-1/ssm/aws4_request")
			require.NotContains(t, auth, "not-a-real-secret")
		})
	}
}
