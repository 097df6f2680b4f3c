package awssm_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/rotorhq/rotor/internal/secret"
	"github.com/rotorhq/rotor/internal/target"
	"github.com/rotorhq/rotor/internal/target/awsclient"
	"github.com/rotorhq/rotor/internal/target/awsclient/awsfake"
	"github.com/rotorhq/rotor/internal/target/awssm"
	"github.com/rotorhq/rotor/internal/target/awssm/awssmfake"
	"github.com/rotorhq/rotor/internal/target/targettest"
)

const name = "prod/app/database"

func TestConformance(t *testing.T) {
	t.Parallel()
	var fakes sync.Map // target.Target → *awssmfake.Server
	fakeOf := func(t *testing.T, tg target.Target) *awssmfake.Server {
		f, ok := fakes.Load(tg)
		require.True(t, ok, "target not built by the harness")
		return f.(*awssmfake.Server)
	}
	harness := func(staged bool) targettest.Harness {
		return targettest.Harness{
			New: func(t *testing.T) target.Target {
				fake := awssmfake.New(t)
				var tg target.Target = newTarget(t, fake, fmt.Sprintf("staged: %t", staged))
				if staged {
					// What the engine does: Put, then (every Put having
					// succeeded) Reload. Check reads AWSCURRENT, which only
					// Reload moves.
					tg = publishing{tg.(*awssm.Target)}
				}
				fakes.Store(tg, fake)
				return tg
			},
			Seed: func(t *testing.T, tg target.Target, values map[string]secret.String) {
				doc := map[string]string{}
				for k, v := range values {
					doc[k] = v.Reveal()
				}
				b, err := json.Marshal(doc)
				require.NoError(t, err)
				fakeOf(t, tg).Seed(name, string(b))
			},
			Break: func(t *testing.T, tg target.Target) {
				fakeOf(t, tg).FailNext(awsfake.Fault{Times: 1000, Error: awsfake.Error{Status: http.StatusInternalServerError, Code: "InternalServiceError", Message: "boom"}})
			},
		}
	}
	t.Run("staged", func(t *testing.T) {
		t.Parallel()
		targettest.Exercise(t, harness(true))
	})
	t.Run("unstaged", func(t *testing.T) {
		t.Parallel()
		targettest.Exercise(t, harness(false))
	})
}

// publishing is a staged target whose Put is followed by its Reload, as in
// the engine's publish step.
type publishing struct{ *awssm.Target }

func (p publishing) Put(ctx context.Context, req target.PutRequest) (target.PutResponse, error) {
	resp, err := p.Target.Put(ctx, req)
	if err != nil {
		return resp, err
	}
	if _, err := p.Target.Reload(ctx, target.ReloadRequest{RotationID: req.RotationID}); err != nil {
		return target.PutResponse{}, err
	}
	return resp, nil
}

func TestNew(t *testing.T) {
	t.Parallel()
	const arn = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:prod/db-AbCdEf"
	tests := []struct {
		name     string
		opts     string
		env      map[string]string
		wantDest string
		wantErr  string
	}{
		{name: "name with the region from the environment", opts: "secret_id: prod/db", env: map[string]string{"AWS_REGION": "eu-central-1"}, wantDest: "aws secrets manager prod/db (eu-central-1)"},
		{name: "region option wins", opts: "{secret_id: prod/db, region: us-west-2}", env: map[string]string{"AWS_REGION": "eu-central-1"}, wantDest: "aws secrets manager prod/db (us-west-2)"},
		{name: "region from the ARN", opts: "secret_id: " + arn, env: map[string]string{"AWS_REGION": "us-east-1"}, wantDest: "aws secrets manager " + arn + " (eu-west-1)"},
		{name: "no region anywhere yet", opts: "secret_id: prod/db", wantDest: "aws secrets manager prod/db (default region)"},
		{name: "endpoint", opts: "{secret_id: prod/db, region: us-east-1, endpoint: 'https://vpce-1.secretsmanager.us-east-1.vpce.amazonaws.com/', format: rds-json, staged: false, kms_key_id: alias/app}", wantDest: "aws secrets manager prod/db (us-east-1) via https://vpce-1.secretsmanager.us-east-1.vpce.amazonaws.com"},
		{name: "no secret_id", opts: "region: us-east-1", wantErr: "has no secret_id; add the secret's name"},
		{name: "bad name", opts: "secret_id: 'prod db'", wantErr: `secret_id "prod db" is not a valid secret name`},
		{name: "ARN of something else", opts: "secret_id: 'arn:aws:ssm:us-east-1:123456789012:parameter/x'", wantErr: "is not a Secrets Manager secret ARN"},
		{name: "region differs from the ARN's", opts: "{secret_id: '" + arn + "', region: us-east-1}", wantErr: "region us-east-1 differs from the region in secret_id's ARN (eu-west-1)"},
		{name: "bad region", opts: "{secret_id: a, region: Frankfurt}", wantErr: `region "Frankfurt" is not an AWS region name`},
		{name: "bad endpoint", opts: "{secret_id: a, endpoint: 'vpce.local'}", wantErr: `endpoint "vpce.local" is not an http(s) URL`},
		{name: "unknown format", opts: "{secret_id: a, format: yaml}", wantErr: `format "yaml" is not one of template, rds-json`},
		{name: "kms key for an ARN", opts: "{secret_id: '" + arn + "', kms_key_id: alias/x}", wantErr: "kms_key_id only applies to a secret rotor creates"},
		{name: "unknown option", opts: "{secret_id: a, secret_string: x}", wantErr: "field secret_string not found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tg, err := awssm.New(target.Params{Name: "sm", Decode: targettest.DecodeYAML(tt.opts), Getenv: targettest.MapEnv(tt.env)})
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				require.Nil(t, tg)
				if !strings.Contains(tt.wantErr, "not found") {
					require.ErrorIs(t, err, target.ErrInvalid)
				}
				return
			}
			require.NoError(t, err)
			require.Equal(t, target.Info{Type: "aws-secrets-manager", Name: "sm", Destination: tt.wantDest, Idempotent: true}, tg.Info())
		})
	}
}

func TestToken(t *testing.T) {
	t.Parallel()
	tok := awssm.Token("42", name)
	require.Regexp(t, regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`), tok)
	require.Equal(t, tok, awssm.Token("42", name), "a retry must send the same token")
	require.NotEqual(t, tok, awssm.Token("43", name))
	require.NotEqual(t, tok, awssm.Token("42", name+"x"))
	require.NotEqual(t, awssm.Token("1", "2\x003"), awssm.Token("1\x002", "3"))
}

func TestStagedPutAndReload(t *testing.T) {
	t.Parallel()
	fake := awssmfake.New(t)
	oldID := fake.Seed(name, `{"DATABASE_URL":"old","API_KEY":"keep"}`)
	tg := newTarget(t, fake, "")
	tok := awssm.Token("7", name)

	resp, err := tg.Put(t.Context(), putRequest("7", map[string]string{"DATABASE_URL": "postgres://app:new@h/db"}))
	require.NoError(t, err)
	require.Equal(t, target.PutResponse{Changed: true, Ref: "version " + tok + " (AWSPENDING)"}, resp)

	// Readers of AWSCURRENT see nothing new before Reload.
	cur, _ := fake.Value(name, awssmfake.Current)
	require.JSONEq(t, `{"DATABASE_URL":"old","API_KEY":"keep"}`, cur)
	pending, _ := fake.Value(name, awssmfake.Pending)
	require.JSONEq(t, `{"DATABASE_URL":"postgres://app:new@h/db","API_KEY":"keep"}`, pending)
	require.Equal(t, map[string]string{"AWSCURRENT": oldID, "AWSPENDING": tok}, fake.Stages(name))
	require.Equal(t, []awssmfake.Request{
		{Op: "GetSecretValue", SecretID: name, VersionStage: "AWSCURRENT"},
		{Op: "PutSecretValue", SecretID: name, ClientRequestToken: tok, VersionStages: []string{"AWSPENDING"}},
	}, fake.Requests())
	for _, c := range fake.Calls() {
		require.Equal(t, "application/x-amz-json-1.1", c.ContentType)
		require.Equal(t, awsfake.AccessKeyID, c.AccessKey)
		require.Equal(t, "us-east-1/secretsmanager", c.Scope)
	}

	rr, err := tg.Reload(t.Context(), target.ReloadRequest{RotationID: "7"})
	require.NoError(t, err)
	require.Equal(t, "version "+tok+" is AWSCURRENT", rr.Detail)
	require.Equal(t, map[string]string{"AWSCURRENT": tok, "AWSPREVIOUS": oldID}, fake.Stages(name))
	require.Equal(t, []awssmfake.Request{
		{Op: "DescribeSecret", SecretID: name},
		{Op: "UpdateSecretVersionStage", SecretID: name, VersionStage: "AWSCURRENT", MoveToVersionID: tok, RemoveFromVersionID: oldID},
		{Op: "UpdateSecretVersionStage", SecretID: name, VersionStage: "AWSPENDING", RemoveFromVersionID: tok},
	}, fake.Requests()[2:])

	// Resumed after a crash, Reload finds its work done.
	rr, err = tg.Reload(t.Context(), target.ReloadRequest{RotationID: "7"})
	require.NoError(t, err)
	require.Equal(t, "version "+tok+" is AWSCURRENT", rr.Detail)
	require.Len(t, fake.Requests(), 6, "a repeated Reload only describes the secret")
	require.Equal(t, map[string]string{"AWSCURRENT": tok, "AWSPREVIOUS": oldID}, fake.Stages(name))

	// A Reload for a rotation that wrote nothing moves nothing.
	rr, err = tg.Reload(t.Context(), target.ReloadRequest{RotationID: "8"})
	require.NoError(t, err)
	require.Contains(t, rr.Detail, "nothing staged by rotation 8")
	require.Equal(t, map[string]string{"AWSCURRENT": tok, "AWSPREVIOUS": oldID}, fake.Stages(name))
}

func TestUnstagedPut(t *testing.T) {
	t.Parallel()
	fake := awssmfake.New(t)
	oldID := fake.Seed(name, `{"DATABASE_URL":"old"}`)
	tg := newTarget(t, fake, "staged: false")
	tok := awssm.Token("7", name)

	resp, err := tg.Put(t.Context(), putRequest("7", map[string]string{"DATABASE_URL": "new"}))
	require.NoError(t, err)
	require.Equal(t, target.PutResponse{Changed: true, Ref: "version " + tok + " (AWSCURRENT)"}, resp)
	require.Equal(t, map[string]string{"AWSCURRENT": tok, "AWSPREVIOUS": oldID}, fake.Stages(name))
	require.Nil(t, fake.Requests()[1].VersionStages, "without VersionStages AWS moves AWSCURRENT itself")

	rr, err := tg.Reload(t.Context(), target.ReloadRequest{RotationID: "7"})
	require.NoError(t, err)
	require.Contains(t, rr.Detail, "not staged")
	require.Len(t, fake.Requests(), 2, "an unstaged Reload calls nothing")
}

func TestPutCreatesSecret(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		opts      string
		setup     func(f *awssmfake.Server)
		wantOps   []string
		wantRef   string
		wantKMS   string
		wantErrIs error
		wantErr   string
	}{
		{
			name:    "missing secret is created with the token as its first version",
			opts:    "kms_key_id: alias/app",
			wantOps: []string{"GetSecretValue", "DescribeSecret", "CreateSecret"},
			wantRef: " (created, AWSCURRENT)",
			wantKMS: "alias/app",
		},
		{
			name:    "secret without a value gets one",
			setup:   func(f *awssmfake.Server) { f.CreateEmpty(name) },
			wantOps: []string{"GetSecretValue", "DescribeSecret", "PutSecretValue"},
			// The first version of a secret is AWSCURRENT whatever the labels asked.
			wantRef: " (AWSCURRENT, AWSPENDING)",
		},
		{
			name:      "a missing secret named by ARN is not created",
			opts:      "secret_id: 'arn:aws:secretsmanager:us-east-1:123456789012:secret:" + name + "-AbCdEf'",
			wantOps:   []string{"GetSecretValue", "DescribeSecret"},
			wantErrIs: target.ErrNotFound,
			wantErr:   "does not exist, and rotor creates secrets only from a name",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			fake := awssmfake.New(t)
			if tt.setup != nil {
				tt.setup(fake)
			}
			tg := newTarget(t, fake, tt.opts)
			resp, err := tg.Put(t.Context(), putRequest("1", map[string]string{"DATABASE_URL": "postgres://a:b@h/d"}))
			require.Equal(t, tt.wantOps, fake.Ops())
			if tt.wantErr != "" {
				require.ErrorIs(t, err, tt.wantErrIs)
				require.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			tok := awssm.Token("1", name)
			require.Equal(t, target.PutResponse{Changed: true, Ref: "version " + tok + tt.wantRef}, resp)
			cur, ok := fake.Value(name, awssmfake.Current)
			require.True(t, ok)
			require.JSONEq(t, `{"DATABASE_URL":"postgres://a:b@h/d"}`, cur)
			require.Equal(t, tt.wantKMS, fake.KmsKeyID(name))
			require.Equal(t, []string{tok}, fake.Versions(name))
		})
	}
}

func TestPutRetryIsNoop(t *testing.T) {
	t.Parallel()
	fake := awssmfake.New(t)
	fake.Seed(name, `{"DATABASE_URL":"old","OTHER":"1"}`)
	tg := newTarget(t, fake, "")
	req := putRequest("9", map[string]string{"DATABASE_URL": "new"})

	_, err := tg.Put(t.Context(), req)
	require.NoError(t, err)
	versions := fake.Versions(name)
	stages := fake.Stages(name)

	// The answer was lost; the engine sends the same request again.
	resp, err := tg.Put(t.Context(), req)
	require.NoError(t, err)
	require.Equal(t, versions, fake.Versions(name), "a retry creates no version")
	require.Equal(t, stages, fake.Stages(name))
	require.Equal(t, "version "+awssm.Token("9", name)+" (AWSPENDING)", resp.Ref)

	// Another field changed in between: the retry merges into a different
	// document, AWS refuses the token with other data, and Put finds its
	// version already holds the values.
	fake.Seed(name, `{"DATABASE_URL":"old","OTHER":"2"}`)
	resp, err = tg.Put(t.Context(), req)
	require.NoError(t, err)
	require.Equal(t, target.PutResponse{Changed: false, Ref: "version " + awssm.Token("9", name) + " (AWSPENDING)"}, resp)

	// The same rotation id with other values is someone else's version.
	canary := "canary-7f3a9c"
	_, err = tg.Put(t.Context(), putRequest("9", map[string]string{"DATABASE_URL": canary}))
	require.ErrorIs(t, err, target.ErrInvalid)
	require.ErrorContains(t, err, "already has a version "+awssm.Token("9", name)+", the id this rotation writes under, with other values")
	requireNoLeak(t, err, canary)
}

func TestPutRefusesWhatItCannotMerge(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		current string
		opts    string
		values  map[string]string
		wantErr string
	}{
		{name: "bare string secret", current: "hunter2-bare", values: map[string]string{"DATABASE_URL": "x"}, wantErr: "its current value is not a JSON object"},
		{name: "JSON list", current: `["hunter2-bare"]`, values: map[string]string{"DATABASE_URL": "x"}, wantErr: "its current value is not a JSON object"},
		{name: "invalid UTF-8", current: `{}`, values: map[string]string{"DATABASE_URL": "a\xffb"}, wantErr: "the value of DATABASE_URL is not valid UTF-8"},
		{name: "too large", current: `{}`, values: map[string]string{"DATABASE_URL": strings.Repeat("x", 70000)}, wantErr: "over Secrets Manager's limit of 65536"},
		{name: "rds-json without port", current: `{}`, opts: "format: rds-json", values: map[string]string{"username": "u", "password": "p", "host": "h", "dbname": "d"}, wantErr: "format rds-json needs values named username, password, host, port, dbname; missing: port"},
		{name: "rds-json port not a number", current: `{}`, opts: "format: rds-json", values: map[string]string{"username": "u", "password": "p", "host": "h", "port": "54x", "dbname": "d"}, wantErr: "render it with {{.Port}}"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			fake := awssmfake.New(t)
			fake.Seed(name, tt.current)
			tg := newTarget(t, fake, tt.opts)
			_, err := tg.Put(t.Context(), putRequest("1", tt.values))
			require.ErrorIs(t, err, target.ErrInvalid)
			require.ErrorContains(t, err, tt.wantErr)
			requireNoLeak(t, err, "hunter2-bare")
			require.Len(t, fake.Versions(name), 1, "nothing is written")
		})
	}
}

func TestFormatRDSJSON(t *testing.T) {
	t.Parallel()
	fake := awssmfake.New(t)
	fake.Seed(name, `{"engine":"mysql","port":"5432","dbInstanceIdentifier":"db-1"}`)
	tg := newTarget(t, fake, "format: rds-json, staged: false")
	values := map[string]string{"username": "app_blue", "password": `p"w\d`, "host": "db.internal", "port": "5432", "dbname": "app"}

	resp, err := tg.Put(t.Context(), putRequest("1", values))
	require.NoError(t, err)
	require.True(t, resp.Changed)
	cur, _ := fake.Value(name, awssmfake.Current)
	require.Equal(t, `{"dbInstanceIdentifier":"db-1","dbname":"app","engine":"postgres","host":"db.internal","password":"p\"w\\d","port":5432,"username":"app_blue"}`, cur)

	got, err := tg.Check(t.Context(), target.CheckRequest{Keys: []string{"username", "password", "host", "port", "dbname"}})
	require.NoError(t, err)
	for k, v := range values {
		require.True(t, secret.New(v).Equal(got.Values[k]), "%s reads back as written", k)
	}

	resp, err = tg.Put(t.Context(), putRequest("2", values))
	require.NoError(t, err)
	require.False(t, resp.Changed, "the same values again write nothing")
}

func TestCheck(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		current    string
		wantValues map[string]string
		wantNotes  []string
	}{
		{name: "fields", current: `{"DATABASE_URL":"u","OTHER":"x"}`, wantValues: map[string]string{"DATABASE_URL": "u"}},
		{name: "missing secret", wantValues: map[string]string{}, wantNotes: []string{"secret " + name + " has no AWSCURRENT version (or does not exist)"}},
		{name: "not JSON", current: "hunter2-bare", wantValues: map[string]string{}, wantNotes: []string{"secret " + name + ": its current value is not a JSON object, and rotor only writes fields of one (it does not replace a whole value it cannot read)"}},
		{name: "not a string", current: `{"DATABASE_URL":{"a":1},"PGPORT":null}`, wantValues: map[string]string{}, wantNotes: []string{"field DATABASE_URL holds an object, not a string", "field PGPORT holds null, not a string"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			fake := awssmfake.New(t)
			if tt.current != "" {
				fake.Seed(name, tt.current)
			}
			tg := newTarget(t, fake, "")
			resp, err := tg.Check(t.Context(), target.CheckRequest{Keys: []string{"DATABASE_URL", "PGPORT"}})
			require.NoError(t, err)
			require.Len(t, resp.Values, len(tt.wantValues))
			for k, v := range tt.wantValues {
				require.True(t, secret.New(v).Equal(resp.Values[k]), k)
			}
			require.Equal(t, tt.wantNotes, resp.Notes)
			requireNoLeak(t, fmt.Errorf("%v", resp.Notes), "hunter2-bare")
		})
	}
}

func TestErrors(t *testing.T) {
	t.Parallel()
	canary := "canary-3d9e1b"
	tests := []struct {
		name  string
		fault awsfake.Fault
		// revoke makes the fake refuse the access key.
		revoke         bool
		wantRetryable  bool
		wantRetryAfter time.Duration
		wantIs         error
		wantErr        string
	}{
		{
			name:          "throttling",
			fault:         awsfake.Throttle("PutSecretValue", 1),
			wantRetryable: true, wantIs: awsclient.ErrThrottled,
			wantErr: `aws-secrets-manager target "sm": PutSecretValue ` + name + ": ThrottlingException (HTTP 400): Rate exceeded",
		},
		{
			name:          "service error with Retry-After",
			fault:         awsfake.Fault{Op: "PutSecretValue", Error: awsfake.Error{Status: 503, Code: "ServiceUnavailable", Message: "try later", Header: http.Header{"Retry-After": {"7"}}}},
			wantRetryable: true, wantRetryAfter: 7 * time.Second, wantIs: awsclient.ErrThrottled,
			wantErr: "ServiceUnavailable (HTTP 503): try later",
		},
		{
			name:    "access denied",
			fault:   awsfake.Fault{Op: "PutSecretValue", Error: awsfake.Error{Code: "AccessDeniedException", Message: "User: arn:aws:iam::123456789012:user/rotor is not authorized to perform: secretsmanager:PutSecretValue"}},
			wantIs:  target.ErrAuth,
			wantErr: "is not authorized to perform: secretsmanager:PutSecretValue; check the credentials (aws sts get-caller-identity) and that their IAM policy allows secretsmanager:GetSecretValue, DescribeSecret, PutSecretValue, UpdateSecretVersionStage, CreateSecret on the secret",
		},
		{
			name:    "unknown access key",
			revoke:  true,
			wantIs:  target.ErrAuth,
			wantErr: "GetSecretValue " + name + ": UnrecognizedClientException (HTTP 400): The security token included in the request is invalid.; check the credentials",
		},
		{
			name:    "an echoed value is scrubbed",
			fault:   awsfake.Fault{Op: "PutSecretValue", Error: awsfake.Error{Code: "ValidationException", Message: `Value '{"DATABASE_URL":"postgres://app:` + canary + `@h/db"}' at 'secretString' failed`}},
			wantIs:  target.ErrInvalid,
			wantErr: "ValidationException (HTTP 400): Value '",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			fake := awssmfake.New(t)
			fake.Seed(name, `{}`)
			if tt.revoke {
				fake.RevokeKey()
			} else {
				fake.FailNext(tt.fault)
			}
			tg := newTarget(t, fake, "")
			_, err := tg.Put(t.Context(), putRequest("1", map[string]string{"DATABASE_URL": "postgres://app:" + canary + "@h/db"}))
			require.ErrorIs(t, err, tt.wantIs)
			require.ErrorContains(t, err, tt.wantErr)
			requireNoLeak(t, err, canary)
			var re *target.RetryableError
			require.Equal(t, tt.wantRetryable, errors.As(err, &re))
			if tt.wantRetryable {
				require.Equal(t, tt.wantRetryAfter, re.RetryAfter)
			}
		})
	}
}

func TestMissingCredentials(t *testing.T) {
	t.Parallel()
	fake := awssmfake.New(t)
	env := awsfake.Env(t.TempDir())
	delete(env, "AWS_ACCESS_KEY_ID")
	delete(env, "AWS_SECRET_ACCESS_KEY")
	tg, err := awssm.New(target.Params{Name: "sm", Decode: targettest.DecodeYAML(fmt.Sprintf("{secret_id: %s, endpoint: %q}", name, fake.URL)), Getenv: targettest.MapEnv(env), HTTPClient: fake.Client()})
	require.NoError(t, err)
	_, err = tg.(target.Validator).Validate(t.Context(), target.ValidateRequest{})
	require.ErrorIs(t, err, target.ErrAuth)
	require.ErrorContains(t, err, `aws-secrets-manager target "sm": no usable AWS credentials (`)
	require.ErrorContains(t, err, "export AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, set profile: or AWS_PROFILE, or run with an instance or task role")
	require.Empty(t, fake.Calls(), "nothing is sent without credentials")
}

func TestMissingRegion(t *testing.T) {
	t.Parallel()
	fake := awssmfake.New(t)
	env := awsfake.Env(t.TempDir())
	delete(env, "AWS_REGION")
	tg, err := awssm.New(target.Params{Name: "sm", Decode: targettest.DecodeYAML(fmt.Sprintf("{secret_id: %s, endpoint: %q}", name, fake.URL)), Getenv: targettest.MapEnv(env), HTTPClient: fake.Client()})
	require.NoError(t, err)
	_, err = tg.Put(t.Context(), putRequest("1", map[string]string{"DATABASE_URL": "x"}))
	require.ErrorIs(t, err, target.ErrInvalid)
	require.ErrorContains(t, err, "has no AWS region; add region: us-east-1 (or export AWS_REGION)")
}

func TestValidate(t *testing.T) {
	t.Parallel()
	const arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:" + name + "-AbCdEf"
	tests := []struct {
		name      string
		opts      string
		setup     func(f *awssmfake.Server)
		wantNotes []string
		wantIs    error
		wantErr   string
	}{
		{name: "existing JSON secret", setup: func(f *awssmfake.Server) { f.Seed(name, `{"A":"1"}`) }},
		{name: "missing secret", wantNotes: []string{"secret " + name + " does not exist yet; the first rotation creates it (this needs secretsmanager:CreateSecret)"}},
		{name: "missing ARN", opts: "secret_id: '" + arn + "'", wantIs: target.ErrNotFound, wantErr: "does not exist, and rotor creates secrets only from a name"},
		{name: "no value yet", setup: func(f *awssmfake.Server) { f.CreateEmpty(name) }, wantNotes: []string{"secret " + name + " has no value yet; the first rotation writes one"}},
		{
			name:      "rotation enabled",
			setup:     func(f *awssmfake.Server) { f.Seed(name, `{}`); f.EnableRotation(name) },
			wantNotes: []string{"Secrets Manager's own rotation is enabled on " + name + "; it changes the password behind rotor's back and uses AWSPENDING too. Turn it off (aws secretsmanager cancel-rotate-secret)"},
		},
		{name: "bare string", setup: func(f *awssmfake.Server) { f.Seed(name, "hunter2-bare") }, wantIs: target.ErrInvalid, wantErr: "its current value is not a JSON object"},
		{
			name: "denied",
			setup: func(f *awssmfake.Server) {
				f.FailNext(awsfake.Fault{Op: "DescribeSecret", Error: awsfake.Error{Code: "AccessDeniedException", Message: "not authorized"}})
			},
			wantIs:  target.ErrAuth,
			wantErr: "DescribeSecret " + name + ": AccessDeniedException (HTTP 400): not authorized; check the credentials",
		},
		{
			name:    "throttled validation is not retried",
			setup:   func(f *awssmfake.Server) { f.FailNext(awsfake.Throttle("DescribeSecret", 1)) },
			wantIs:  awsclient.ErrThrottled,
			wantErr: "ThrottlingException",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			fake := awssmfake.New(t)
			if tt.setup != nil {
				tt.setup(fake)
			}
			tg := newTarget(t, fake, tt.opts)
			resp, err := tg.Validate(t.Context(), target.ValidateRequest{})
			if tt.wantErr != "" {
				require.ErrorIs(t, err, tt.wantIs)
				require.ErrorContains(t, err, tt.wantErr)
				requireNoLeak(t, err, "hunter2-bare")
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.wantNotes, resp.Notes)
			for _, r := range fake.Requests() {
				require.Contains(t, []string{"DescribeSecret", "GetSecretValue"}, r.Op, "Validate writes nothing")
			}
		})
	}
}

func TestReloadRacesAnotherWriter(t *testing.T) {
	t.Parallel()
	fake := awssmfake.New(t)
	fake.Seed(name, `{"A":"1"}`)
	tg := newTarget(t, fake, "")
	_, err := tg.Put(t.Context(), putRequest("3", map[string]string{"DATABASE_URL": "x"}))
	require.NoError(t, err)
	// Another writer made a new current version, and AWS refuses the first
	// move as it would if that happened between Reload's DescribeSecret
	// and its UpdateSecretVersionStage: Reload looks again.
	other := fake.Seed(name, `{"A":"2"}`)
	fake.FailNext(awsfake.Fault{Op: "UpdateSecretVersionStage", Error: awsfake.Error{Code: "InvalidParameterException", Message: "The staging label AWSCURRENT is not attached to the version"}})
	_, err = tg.Reload(t.Context(), target.ReloadRequest{RotationID: "3"})
	require.NoError(t, err)
	require.Equal(t, map[string]string{"AWSCURRENT": awssm.Token("3", name), "AWSPREVIOUS": other}, fake.Stages(name))
}

func newTarget(t *testing.T, fake *awssmfake.Server, extra string) *awssm.Target {
	t.Helper()
	parts := []string{fmt.Sprintf("endpoint: %q", fake.URL)}
	if !strings.Contains(extra, "secret_id:") {
		parts = append(parts, "secret_id: "+name)
	}
	if extra != "" {
		parts = append(parts, extra)
	}
	opts := "{" + strings.Join(parts, ", ") + "}"
	tg, err := awssm.New(target.Params{Name: "sm", Decode: targettest.DecodeYAML(opts), HTTPClient: fake.Client(), Getenv: targettest.MapEnv(awsfake.Env(t.TempDir()))})
	require.NoError(t, err)
	return tg.(*awssm.Target)
}

func putRequest(rotation string, values map[string]string) target.PutRequest {
	req := targettest.PutRequest(values)
	req.RotationID = rotation
	return req
}

func requireNoLeak(t *testing.T, err error, value string) {
	t.Helper()
	require.Empty(t, secret.Leaks([]byte(fmt.Sprintf("%v %+v", err, err)), secret.New(value)), "the error holds the value")
}

// TestReloadFails: AWS refusing the label move fails the reload with the
// operation, the secret and what to fix; nothing moved, and it is not
// retryable (a refused permission does not change by asking again).
func TestReloadFails(t *testing.T) {
	t.Parallel()
	fake := awssmfake.New(t)
	oldID := fake.Seed(name, `{"DATABASE_URL":"old"}`)
	tg := newTarget(t, fake, "")
	_, err := tg.Put(t.Context(), putRequest("5", map[string]string{"DATABASE_URL": "postgres://app:canary-reload@h/db"}))
	require.NoError(t, err)
	fake.FailNext(awsfake.Fault{Op: "UpdateSecretVersionStage", Error: awsfake.Error{Code: "AccessDeniedException", Message: "User: arn:aws:iam::123456789012:user/rotor is not authorized to perform: secretsmanager:UpdateSecretVersionStage"}})

	_, err = tg.Reload(t.Context(), target.ReloadRequest{RotationID: "5"})
	require.ErrorIs(t, err, target.ErrAuth)
	require.ErrorContains(t, err, `aws-secrets-manager target "sm": UpdateSecretVersionStage `+name+": AccessDeniedException")
	require.ErrorContains(t, err, "IAM policy allows secretsmanager:GetSecretValue, DescribeSecret, PutSecretValue, UpdateSecretVersionStage")
	requireNoLeak(t, err, "canary-reload")
	var re *target.RetryableError
	require.NotErrorAs(t, err, &re)
	tok := awssm.Token("5", name)
	require.Equal(t, map[string]string{"AWSCURRENT": oldID, "AWSPENDING": tok}, fake.Stages(name), "readers of AWSCURRENT keep the old value")

	// Once allowed, the same Reload finishes the move.
	_, err = tg.Reload(t.Context(), target.ReloadRequest{RotationID: "5"})
	require.NoError(t, err)
	require.Equal(t, map[string]string{"AWSCURRENT": tok, "AWSPREVIOUS": oldID}, fake.Stages(name))
}

// TestReloadKeepsLosingTheRace: when AWSCURRENT moves under every attempt,
// Reload gives up with a retryable error that says something else writes
// the secret.
func TestReloadKeepsLosingTheRace(t *testing.T) {
	t.Parallel()
	fake := awssmfake.New(t)
	fake.Seed(name, `{"A":"1"}`)
	tg := newTarget(t, fake, "")
	_, err := tg.Put(t.Context(), putRequest("6", map[string]string{"DATABASE_URL": "x"}))
	require.NoError(t, err)
	fake.FailNext(awsfake.Fault{Op: "UpdateSecretVersionStage", Times: 3, Error: awsfake.Error{Code: "InvalidParameterException", Message: "The staging label AWSCURRENT is not attached to the version"}})
	_, err = tg.Reload(t.Context(), target.ReloadRequest{RotationID: "6"})
	var re *target.RetryableError
	require.ErrorAs(t, err, &re)
	require.ErrorContains(t, err, "AWSCURRENT of "+name+" kept moving while rotor promoted its version; something else writes this secret")
	require.NotContains(t, fake.Stages(name)["AWSCURRENT"], awssm.Token("6", name))
}

// TestReloadTimesOut: when ctx ends (the engine's reload_timeout) while
// AWS has not answered the label move, Reload returns an error that wraps
// ctx.Err() and names the call; AWSCURRENT has not moved.
func TestReloadTimesOut(t *testing.T) {
	t.Parallel()
	fake := awssmfake.New(t)
	oldID := fake.Seed(name, `{"DATABASE_URL":"old"}`)
	// The deadline passes while AWS holds the label move.
	dl := targettest.NewDeadline(t.Context())
	hold := &holdOp{op: "secretsmanager.UpdateSecretVersionStage", next: fake.Client().Transport, onHold: func() { dl.Pass() }}
	tg, err := awssm.New(target.Params{
		Name: "sm", Decode: targettest.DecodeYAML(fmt.Sprintf("{endpoint: %q, secret_id: %s}", fake.URL, name)),
		HTTPClient: &http.Client{Transport: hold}, Getenv: targettest.MapEnv(awsfake.Env(t.TempDir())),
	})
	require.NoError(t, err)
	_, err = tg.Put(t.Context(), putRequest("8", map[string]string{"DATABASE_URL": "new"}))
	require.NoError(t, err)

	_, err = tg.(target.Reloader).Reload(dl, target.ReloadRequest{RotationID: "8"})
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.ErrorContains(t, err, `aws-secrets-manager target "sm": UpdateSecretVersionStage `+name)
	var re *target.RetryableError
	require.NotErrorAs(t, err, &re, "reload_timeout bounds the reload")
	require.Equal(t, oldID, fake.Stages(name)["AWSCURRENT"], "the move never reached AWS")
	require.Positive(t, hold.held(), "the label move was sent and held")
}

// holdOp holds every request for one operation (X-Amz-Target) until the
// caller gives up, like an endpoint that does not answer; onHold runs
// when the first one arrives.
type holdOp struct {
	op     string
	next   http.RoundTripper
	onHold func()
	mu     sync.Mutex
	n      int
}

func (h *holdOp) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Header.Get("X-Amz-Target") != h.op {
		return h.next.RoundTrip(req)
	}
	h.mu.Lock()
	h.n++
	if h.n == 1 {
		h.onHold()
	}
	h.mu.Unlock()
	<-req.Context().Done()
	return nil, req.Context().Err()
}

func (h *holdOp) held() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.n
}

// Without endpoint:, the SDK's service-specific endpoint variable decides
// where the calls go (awsclient.Endpoint), as it did when the target used
// the SDK's generated client.
func TestEndpointFromTheEnvironment(t *testing.T) {
	t.Parallel()
	fake := awssmfake.New(t)
	env := awsfake.Env(t.TempDir())
	env["AWS_ENDPOINT_URL_SECRETS_MANAGER"] = fake.URL
	tg, err := awssm.New(target.Params{Name: "sm", Decode: targettest.DecodeYAML("{secret_id: " + name + "}"), Getenv: targettest.MapEnv(env), HTTPClient: fake.Client()})
	require.NoError(t, err)
	_, err = tg.Put(t.Context(), putRequest("1", map[string]string{"DATABASE_URL": "x"}))
	require.NoError(t, err)
	calls := fake.Calls()
	require.NotEmpty(t, calls)
	for _, c := range calls {
		require.Equal(t, "us-east-1/secretsmanager", c.Scope, "signed for secretsmanager in the region")
	}
}
