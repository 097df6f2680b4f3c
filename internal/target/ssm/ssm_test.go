package ssm_test

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/rotorhq/rotor/internal/secret"
	"github.com/rotorhq/rotor/internal/target"
	"github.com/rotorhq/rotor/internal/target/awsclient"
	"github.com/rotorhq/rotor/internal/target/awsclient/awsfake"
	"github.com/rotorhq/rotor/internal/target/ssm"
	"github.com/rotorhq/rotor/internal/target/ssm/ssmfake"
	"github.com/rotorhq/rotor/internal/target/targettest"
)

const prefix = "/app/prod"

func TestConformance(t *testing.T) {
	t.Parallel()
	var fakes sync.Map // target.Target → *ssmfake.Server
	fakeOf := func(t *testing.T, tg target.Target) *ssmfake.Server {
		f, ok := fakes.Load(tg)
		require.True(t, ok, "target not built by the harness")
		return f.(*ssmfake.Server)
	}
	targettest.Exercise(t, targettest.Harness{
		New: func(t *testing.T) target.Target {
			fake := ssmfake.New(t)
			tg := newTarget(t, fake, "path_prefix: "+prefix)
			fakes.Store(tg, fake)
			return tg
		},
		Seed: func(t *testing.T, tg target.Target, values map[string]secret.String) {
			for k, v := range values {
				fakeOf(t, tg).Seed(prefix+"/"+k, "SecureString", v.Reveal())
			}
		},
		Break: func(t *testing.T, tg target.Target) {
			fakeOf(t, tg).FailNext(awsfake.Fault{Times: 1000, Error: awsfake.Error{Status: http.StatusInternalServerError, Code: "InternalServerError", Message: "boom"}})
		},
	})
}

func TestNew(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		opts     string
		env      map[string]string
		wantDest string
		wantErr  string
	}{
		{name: "path prefix", opts: "path_prefix: /app/prod/", env: map[string]string{"AWS_REGION": "eu-west-1"}, wantDest: "aws ssm parameters /app/prod/* (eu-west-1)"},
		{name: "parameters", opts: "{parameters: {DATABASE_URL: /app/prod/database_url, PGUSER: pguser}, region: us-east-2, key_id: alias/app}", wantDest: "aws ssm parameters /app/prod/database_url, pguser (us-east-2)"},
		{name: "endpoint", opts: "{path_prefix: /a, endpoint: 'https://vpce-1.ssm.us-east-1.vpce.amazonaws.com/'}", wantDest: "aws ssm parameters /a/* (default region) via https://vpce-1.ssm.us-east-1.vpce.amazonaws.com"},
		{name: "neither", opts: "region: us-east-1", wantErr: "has neither parameters: nor path_prefix:"},
		{name: "both", opts: "{path_prefix: /a, parameters: {A: /a/a}}", wantErr: "has both parameters: and path_prefix:; keep one"},
		{name: "relative path prefix", opts: "path_prefix: app/prod", wantErr: `path_prefix "app/prod" must start with '/'`},
		{name: "reserved prefix", opts: "path_prefix: /aws/app", wantErr: "starts with aws or ssm, which AWS reserves"},
		{name: "path without leading slash", opts: "parameters: {A: app/a}", wantErr: `parameters.A: parameter name "app/a" has a path but does not start with '/'; write /app/a`},
		{name: "bad characters", opts: "parameters: {A: '/app/a b'}", wantErr: `may only hold letters, digits and . - _ /`},
		{name: "empty segment", opts: "parameters: {A: '/app//a'}", wantErr: "has an empty path segment"},
		{name: "too deep", opts: "parameters: {A: " + strings.Repeat("/x", 16) + "}", wantErr: "more than 15 levels deep"},
		{name: "two keys, one parameter", opts: "parameters: {A: /app/x, B: /app/x}", wantErr: "parameters.A and parameters.B both name /app/x"},
		{name: "bad region", opts: "{path_prefix: /a, region: eu}", wantErr: `region "eu" is not an AWS region name`},
		{name: "bad endpoint", opts: "{path_prefix: /a, endpoint: ssm.local}", wantErr: `endpoint "ssm.local" is not an http(s) URL`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tg, err := ssm.New(target.Params{Name: "ps", Decode: targettest.DecodeYAML(tt.opts), Getenv: targettest.MapEnv(tt.env)})
			if tt.wantErr != "" {
				require.ErrorIs(t, err, target.ErrInvalid)
				require.ErrorContains(t, err, tt.wantErr)
				require.Nil(t, tg)
				return
			}
			require.NoError(t, err)
			require.Equal(t, target.Info{Type: "aws-ssm", Name: "ps", Destination: tt.wantDest, Idempotent: true}, tg.Info())
		})
	}
}

func TestPutWritesOnlyWhatDiffers(t *testing.T) {
	t.Parallel()
	fake := ssmfake.New(t)
	fake.AddKey("alias/app")
	fake.Seed("/app/prod/pguser", "SecureString", "app_blue")
	fake.Seed("/app/prod/pghost", "String", "db.internal")
	fake.Seed("/app/prod/other", "SecureString", "keep")
	tg := newTarget(t, fake, "parameters: {DATABASE_URL: /app/prod/database_url, PGUSER: /app/prod/pguser, PGHOST: /app/prod/pghost}, key_id: alias/app")

	resp, err := tg.Put(t.Context(), targettest.PutRequest(map[string]string{"DATABASE_URL": "postgres://app_blue:pw@db.internal/app", "PGUSER": "app_blue", "PGHOST": "db.internal"}, "DATABASE_URL", "PGUSER", "PGHOST"))
	require.NoError(t, err)
	require.Equal(t, target.PutResponse{Changed: true, Ref: "/app/prod/database_url v1, /app/prod/pguser v1, /app/prod/pghost v2"}, resp)

	yes := true
	require.Equal(t, []ssmfake.Request{
		{Op: "GetParameters", Names: []string{"/app/prod/database_url", "/app/prod/pguser", "/app/prod/pghost"}, WithDecryption: true},
		{Op: "PutParameter", Name: "/app/prod/database_url", Type: "SecureString", Overwrite: &yes, KeyID: "alias/app"},
		// A plain String holding the value is made a SecureString.
		{Op: "PutParameter", Name: "/app/prod/pghost", Type: "SecureString", Overwrite: &yes, KeyID: "alias/app"},
	}, fake.Requests())
	for _, c := range fake.Calls() {
		require.Equal(t, "application/x-amz-json-1.1", c.ContentType)
		require.Equal(t, "us-east-1/ssm", c.Scope)
	}
	p, ok := fake.Get("/app/prod/database_url")
	require.True(t, ok)
	require.Equal(t, ssmfake.Parameter{Type: "SecureString", Value: "postgres://app_blue:pw@db.internal/app", Version: 1, KeyID: "alias/app"}, p)
	other, _ := fake.Get("/app/prod/other")
	require.Equal(t, ssmfake.Parameter{Type: "SecureString", Value: "keep", Version: 1, KeyID: ssmfake.DefaultKey}, other)

	// Nothing differs any more: nothing is written, no version is added.
	resp, err = tg.Put(t.Context(), targettest.PutRequest(map[string]string{"DATABASE_URL": "postgres://app_blue:pw@db.internal/app", "PGUSER": "app_blue", "PGHOST": "db.internal"}, "DATABASE_URL", "PGUSER", "PGHOST"))
	require.NoError(t, err)
	require.False(t, resp.Changed)
	require.Len(t, fake.Requests(), 4)
}

func TestPutReadsInBatchesOfTen(t *testing.T) {
	t.Parallel()
	fake := ssmfake.New(t)
	tg := newTarget(t, fake, "path_prefix: "+prefix)
	values := map[string]string{}
	var keys []string
	for i := range 12 {
		k := fmt.Sprintf("KEY_%02d", i)
		values[k] = "v"
		keys = append(keys, k)
	}
	_, err := tg.Put(t.Context(), targettest.PutRequest(values, keys...))
	require.NoError(t, err)
	reqs := fake.Requests()
	require.Equal(t, "GetParameters", reqs[0].Op)
	require.Len(t, reqs[0].Names, 10)
	require.Equal(t, "GetParameters", reqs[1].Op)
	require.Equal(t, []string{prefix + "/KEY_10", prefix + "/KEY_11"}, reqs[1].Names)
	require.Len(t, fake.Names(), 12)
}

func TestPutRefusesBeforeWriting(t *testing.T) {
	t.Parallel()
	canary := "canary-51c0de"
	tests := []struct {
		name    string
		opts    string
		values  map[string]string
		wantErr string
	}{
		{name: "key without parameter", opts: "parameters: {DATABASE_URL: /app/db}", values: map[string]string{"PGPASSWORD": canary}, wantErr: "key PGPASSWORD has no parameter; add it to parameters: (e.g. PGPASSWORD: /app/prod/pgpassword)"},
		{name: "empty value", opts: "path_prefix: /app", values: map[string]string{"DATABASE_URL": ""}, wantErr: "the value of DATABASE_URL is 0 bytes; a Standard-tier parameter holds 1 to 4096"},
		{name: "too long", opts: "path_prefix: /app", values: map[string]string{"DATABASE_URL": canary + strings.Repeat("x", 4090)}, wantErr: "the value of DATABASE_URL is 4103 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			fake := ssmfake.New(t)
			tg := newTarget(t, fake, tt.opts)
			_, err := tg.Put(t.Context(), targettest.PutRequest(tt.values))
			require.ErrorIs(t, err, target.ErrInvalid)
			require.ErrorContains(t, err, tt.wantErr)
			requireNoLeak(t, err, canary)
			require.Empty(t, fake.Calls())
		})
	}
}

func TestErrors(t *testing.T) {
	t.Parallel()
	canary := "canary-9a8b7c"
	tests := []struct {
		name          string
		opts          string
		fault         *awsfake.Fault
		revoke        bool
		wantRetryable bool
		wantIs        error
		wantErr       string
	}{
		{name: "throttling", fault: &awsfake.Fault{Op: "PutParameter", Error: awsfake.Error{Code: "ThrottlingException", Message: "Rate exceeded"}}, wantRetryable: true, wantIs: awsclient.ErrThrottled, wantErr: `aws-ssm target "ps": PutParameter /app/prod/DATABASE_URL: ThrottlingException (HTTP 400): Rate exceeded`},
		{name: "concurrent updates", fault: &awsfake.Fault{Op: "PutParameter", Error: awsfake.Error{Code: "TooManyUpdates", Message: "There are concurrent updates for the resource that you are trying to update."}}, wantRetryable: true, wantIs: awsclient.ErrThrottled, wantErr: "TooManyUpdates"},
		{
			name:    "access denied",
			fault:   &awsfake.Fault{Op: "GetParameters", Error: awsfake.Error{Code: "AccessDeniedException", Message: "User: arn:aws:iam::123456789012:user/rotor is not authorized to perform: ssm:GetParameters"}},
			wantIs:  target.ErrAuth,
			wantErr: "is not authorized to perform: ssm:GetParameters; check the credentials (aws sts get-caller-identity) and that their IAM policy allows ssm:PutParameter, ssm:GetParameters and ssm:DescribeParameters on the parameters, and kms:Encrypt and kms:Decrypt on the account's aws/ssm key (docs/targets/ssm.md)",
		},
		{name: "unknown access key", revoke: true, wantIs: target.ErrAuth, wantErr: "UnrecognizedClientException (HTTP 400): The security token included in the request is invalid."},
		{name: "unknown KMS key", opts: ", key_id: alias/missing", wantIs: target.ErrInvalid, wantErr: "PutParameter /app/prod/DATABASE_URL: InvalidKeyId (HTTP 400): The KMS key ID or alias is not valid or does not exist."},
		{name: "an echoed value is scrubbed", fault: &awsfake.Fault{Op: "PutParameter", Error: awsfake.Error{Code: "ValidationException", Message: "Value 'postgres://app:" + canary + "@h/db' at 'value' failed"}}, wantIs: target.ErrInvalid, wantErr: "ValidationException (HTTP 400): Value '"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			fake := ssmfake.New(t)
			switch {
			case tt.revoke:
				fake.RevokeKey()
			case tt.fault != nil:
				fake.FailNext(*tt.fault)
			}
			tg := newTarget(t, fake, "path_prefix: "+prefix+tt.opts)
			_, err := tg.Put(t.Context(), targettest.PutRequest(map[string]string{"DATABASE_URL": "postgres://app:" + canary + "@h/db"}))
			require.ErrorIs(t, err, tt.wantIs)
			require.ErrorContains(t, err, tt.wantErr)
			requireNoLeak(t, err, canary)
			var re *target.RetryableError
			require.Equal(t, tt.wantRetryable, errors.As(err, &re))
		})
	}
}

func TestCheck(t *testing.T) {
	t.Parallel()
	fake := ssmfake.New(t)
	fake.Seed("/app/db", "SecureString", "postgres://a:b@h/d")
	fake.Seed("/app/user", "String", "app_blue")
	tg := newTarget(t, fake, "parameters: {DATABASE_URL: /app/db, PGUSER: /app/user, PGHOST: /app/host}")
	resp, err := tg.Check(t.Context(), target.CheckRequest{Keys: []string{"DATABASE_URL", "PGUSER", "PGHOST", "UNMAPPED"}})
	require.NoError(t, err)
	require.Len(t, resp.Values, 2)
	require.True(t, secret.New("postgres://a:b@h/d").Equal(resp.Values["DATABASE_URL"]))
	require.True(t, secret.New("app_blue").Equal(resp.Values["PGUSER"]))
	require.Equal(t, []string{"key UNMAPPED has no parameter in parameters:", "/app/user is a String, not a SecureString; the next write makes it one"}, resp.Notes)
	require.Equal(t, []ssmfake.Request{{Op: "GetParameters", Names: []string{"/app/db", "/app/user", "/app/host"}, WithDecryption: true}}, fake.Requests())
}

func TestValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		opts      string
		setup     func(f *ssmfake.Server)
		wantNotes []string
		wantOps   []string
		wantIs    error
		wantErr   string
	}{
		{
			name: "parameters",
			opts: "parameters: {A: /app/a, B: /app/b, C: /app/c, D: /app/d}, key_id: alias/app",
			setup: func(f *ssmfake.Server) {
				f.AddKey("alias/app")
				f.Seed("/app/a", "SecureString", "x")
				f.Seed("/app/b", "String", "x")
				f.Seed("/app/d", "SecureString", "x")
			},
			wantNotes: []string{
				"/app/a is encrypted with alias/aws/ssm; the next write uses alias/app",
				"/app/b is a String; the first rotation rewrites it as a SecureString",
				"/app/c does not exist yet; the first rotation creates it",
				"/app/d is encrypted with alias/aws/ssm; the next write uses alias/app",
			},
			wantOps: []string{"DescribeParameters", "GetParameters"},
		},
		{
			name: "path prefix",
			opts: "path_prefix: /app",
			setup: func(f *ssmfake.Server) {
				f.Seed("/app/a", "SecureString", "x")
				f.Seed("/app/deeper/b", "SecureString", "x")
			},
			wantNotes: []string{"1 parameter(s) under /app; rotor writes /app/<key> for each key of values"},
			wantOps:   []string{"DescribeParameters"},
		},
		{
			name: "describe denied",
			opts: "path_prefix: /app",
			setup: func(f *ssmfake.Server) {
				f.FailNext(awsfake.Fault{Op: "DescribeParameters", Error: awsfake.Error{Code: "AccessDeniedException", Message: "not authorized"}})
			},
			wantIs:  target.ErrAuth,
			wantErr: "DescribeParameters: AccessDeniedException (HTTP 400): not authorized; check the credentials",
		},
		{
			name: "decrypt denied",
			opts: "parameters: {A: /app/a}",
			setup: func(f *ssmfake.Server) {
				f.Seed("/app/a", "SecureString", "x")
				f.FailNext(awsfake.Fault{Op: "GetParameters", Error: awsfake.Error{Code: "AccessDeniedException", Message: "KMS denied decrypt"}})
			},
			wantIs:  target.ErrAuth,
			wantErr: "GetParameters /app/a: AccessDeniedException (HTTP 400): KMS denied decrypt",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			fake := ssmfake.New(t)
			tt.setup(fake)
			tg := newTarget(t, fake, tt.opts)
			resp, err := tg.Validate(t.Context(), target.ValidateRequest{})
			if tt.wantErr != "" {
				require.ErrorIs(t, err, tt.wantIs)
				require.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.wantNotes, resp.Notes)
			var ops []string
			for _, r := range fake.Requests() {
				ops = append(ops, r.Op)
			}
			require.Equal(t, tt.wantOps, ops, "Validate writes nothing")
		})
	}
}

func TestDescribePages(t *testing.T) {
	t.Parallel()
	fake := ssmfake.New(t)
	for i := range 120 {
		fake.Seed(fmt.Sprintf("/app/p%03d", i), "SecureString", "x")
	}
	tg := newTarget(t, fake, "path_prefix: /app")
	resp, err := tg.Validate(t.Context(), target.ValidateRequest{})
	require.NoError(t, err)
	require.Equal(t, []string{"120 parameter(s) under /app; rotor writes /app/<key> for each key of values"}, resp.Notes)
	require.Len(t, fake.Requests(), 3, "50 per page")
}

func newTarget(t *testing.T, fake *ssmfake.Server, opts string) *ssm.Target {
	t.Helper()
	src := fmt.Sprintf("{endpoint: %q, %s}", fake.URL, opts)
	tg, err := ssm.New(target.Params{Name: "ps", Decode: targettest.DecodeYAML(src), HTTPClient: fake.Client(), Getenv: targettest.MapEnv(awsfake.Env(t.TempDir()))})
	require.NoError(t, err)
	return tg.(*ssm.Target)
}

func requireNoLeak(t *testing.T, err error, value string) {
	t.Helper()
	require.Empty(t, secret.Leaks([]byte(fmt.Sprintf("%v %+v", err, err)), secret.New(value)), "the error holds the value")
}
