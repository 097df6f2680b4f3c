// Package awsclient is what the AWS targets (awssm, ssm) share: an
// aws.Config built from the SDK's default credential chain, and SDK errors
// turned into target errors (targets-api.md §7).
//
// Credentials never come from rotor's config file. The variables that
// choose them (AWS_ACCESS_KEY_ID, AWS_PROFILE, AWS_CONFIG_FILE, …) are read
// through target.Params.Getenv and handed to the SDK, so a test decides
// what the chain sees without touching the process environment; everything
// else (SSO, web identity, container and instance roles) is the SDK's own
// default chain.
package awsclient

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/rotorhq/rotor/internal/secret"
	"github.com/rotorhq/rotor/internal/target"
	"github.com/rotorhq/rotor/internal/target/webapi"
)

// Settings are the options every AWS target has.
type Settings struct {
	// Region wins over AWS_REGION, AWS_DEFAULT_REGION and the profile's.
	Region string
	// Profile selects a shared-config profile and wins over AWS_PROFILE
	// and over keys in the environment, as in the SDK.
	Profile string
	Getenv  func(string) string
	// HTTPClient, when set, carries every call (tests, proxies).
	HTTPClient *http.Client
}

// Load builds the SDK configuration. It reads the shared config files but
// does not resolve credentials; Credentials does that.
func Load(ctx context.Context, s Settings) (aws.Config, error) {
	getenv := s.Getenv
	if getenv == nil {
		getenv = func(string) string { return "" }
	}
	opts := []func(*config.LoadOptions) error{
		// The engine retries, with backoff and the journal; the SDK's own
		// three attempts would multiply them and hide Retry-After.
		config.WithRetryer(func() aws.Retryer { return aws.NopRetryer{} }),
	}
	if r := cmp.Or(s.Region, getenv("AWS_REGION"), getenv("AWS_DEFAULT_REGION")); r != "" {
		opts = append(opts, config.WithRegion(r))
	}
	if f := getenv("AWS_CONFIG_FILE"); f != "" {
		opts = append(opts, config.WithSharedConfigFiles([]string{f}))
	}
	if f := getenv("AWS_SHARED_CREDENTIALS_FILE"); f != "" {
		opts = append(opts, config.WithSharedCredentialsFiles([]string{f}))
	}
	if strings.EqualFold(getenv("AWS_EC2_METADATA_DISABLED"), "true") {
		opts = append(opts, config.WithEC2IMDSClientEnableState(imds.ClientDisabled))
	}
	// The SDK's precedence: a profile chosen in code, then keys in the
	// environment, then AWS_PROFILE and the rest of the chain.
	id, key := getenv("AWS_ACCESS_KEY_ID"), getenv("AWS_SECRET_ACCESS_KEY")
	switch {
	case s.Profile != "":
		opts = append(opts, config.WithSharedConfigProfile(s.Profile))
	case id != "" && key != "":
		opts = append(opts, config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(id, key, getenv("AWS_SESSION_TOKEN"))))
	case getenv("AWS_PROFILE") != "":
		opts = append(opts, config.WithSharedConfigProfile(getenv("AWS_PROFILE")))
	}
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return aws.Config{}, err
	}
	// Handing an *http.Client to LoadDefaultConfig fails when AWS_CA_BUNDLE
	// is set (the SDK can only add the bundle to its own client), so the
	// injected client replaces the SDK's afterwards, and only when it brings
	// a transport of its own (tests, proxies). Otherwise the SDK's client,
	// with its CA bundle and proxy settings, gets the injected timeout.
	switch bc, ok := cfg.HTTPClient.(*awshttp.BuildableClient); {
	case s.HTTPClient == nil:
	case s.HTTPClient.Transport != nil:
		cfg.HTTPClient = s.HTTPClient
	case ok && s.HTTPClient.Timeout > 0:
		cfg.HTTPClient = bc.WithTimeout(s.HTTPClient.Timeout)
	}
	return cfg, nil
}

// Credentials resolves the chain once (the SDK caches the result), so a
// missing or unusable credential is reported as such rather than as a
// signing failure deep inside the first call.
func Credentials(ctx context.Context, cfg aws.Config, desc string) error {
	if cfg.Region == "" {
		return fmt.Errorf("%s has no AWS region; add region: us-east-1 (or export AWS_REGION): %w", desc, target.ErrInvalid)
	}
	if cfg.Credentials == nil {
		return fmt.Errorf("%s: no AWS credentials; export AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, set profile: or AWS_PROFILE, or run with an instance or task role: %w", desc, target.ErrAuth)
	}
	if _, err := cfg.Credentials.Retrieve(ctx); err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("%s: resolve AWS credentials: %w", desc, ctx.Err())
		}
		// The chain's own message says which sources it tried; it holds no
		// key material.
		return fmt.Errorf("%s: no usable AWS credentials (%v); export AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, set profile: or AWS_PROFILE, or run with an instance or task role: %w",
			desc, webapi.Shorten(err.Error()), target.ErrAuth)
	}
	return nil
}

// Failure is what an AWS API said when a call failed.
type Failure struct {
	// Code is the error type, e.g. ResourceNotFoundException.
	Code string
	// Message is the API's text, unscrubbed: pass it through Error.
	Message string
	// Status is the HTTP status, 0 when unknown.
	Status int
	Header http.Header
}

// Inspect finds the API error in an SDK error; ok is false for transport
// and client-side errors.
func Inspect(err error) (f Failure, ok bool) {
	var ae smithy.APIError
	if !errors.As(err, &ae) {
		return Failure{}, false
	}
	f = Failure{Code: ae.ErrorCode(), Message: ae.ErrorMessage()}
	var re *smithyhttp.ResponseError
	if errors.As(err, &re) && re.Response != nil {
		f.Status = re.Response.StatusCode
		f.Header = re.Response.Header
	}
	return f, true
}

// authCodes are the error types AWS uses for missing, wrong, expired or
// insufficient credentials, across services (and KMS behind them).
var authCodes = map[string]bool{
	"AccessDeniedException": true, "AccessDenied": true, "UnrecognizedClientException": true,
	"InvalidClientTokenId": true, "InvalidSignatureException": true, "SignatureDoesNotMatch": true,
	"IncompleteSignature": true, "MissingAuthenticationToken": true, "ExpiredTokenException": true,
	"ExpiredToken": true, "NotAuthorized": true, "KMSAccessDeniedException": true,
}

var throttleCodes = map[string]bool{
	"ThrottlingException": true, "Throttling": true, "TooManyRequestsException": true,
	"RequestLimitExceeded": true, "TooManyUpdates": true, "RequestThrottled": true,
	"InternalServiceError": true, "InternalServerError": true, "InternalFailure": true,
	"ServiceUnavailable": true, "ServiceUnavailableException": true,
}

// Transient reports whether the same request may succeed later.
func (f Failure) Transient() bool {
	return throttleCodes[f.Code] || f.Status == http.StatusTooManyRequests || f.Status >= 500
}

// Auth reports a credential or permission problem.
func (f Failure) Auth() bool {
	return authCodes[f.Code] || f.Status == http.StatusForbidden
}

// Hints complete an error message with what the user should do.
type Hints struct {
	// Auth follows credential and permission failures.
	Auth string
	// NotFound follows not-found failures.
	NotFound string
}

// ErrThrottled is the sentinel under a transient failure's RetryableError.
var ErrThrottled = errors.New("AWS is throttling or briefly unavailable")

// Error turns a failed call into a target error. what names the target and
// the call ("aws-secrets-manager target \"db\": PutSecretValue app/db");
// secrets are scrubbed from the API's message. Transient failures become a
// *target.RetryableError only when retryable is true (the write is
// idempotent); transport errors stay in the chain so the engine sees the
// net.Error.
func Error(what string, err error, retryable bool, h Hints, now time.Time, secrets ...secret.String) error {
	f, ok := Inspect(err)
	if !ok {
		return secret.Scrub(fmt.Errorf("%s: %w", what, err), secrets...)
	}
	// Scrub before shortening, so no cut-off tail of a value survives.
	msg := webapi.Shorten(strings.TrimSpace(secret.ScrubString(f.Message, secrets...)))
	text := what + ": " + f.Code
	if f.Status != 0 {
		text += fmt.Sprintf(" (HTTP %d)", f.Status)
	}
	if msg != "" && msg != f.Code {
		text += ": " + msg
	}
	var kind error
	switch {
	case f.Transient():
		e := fmt.Errorf("%s: %w", text, ErrThrottled)
		if retryable {
			var after time.Duration
			if f.Header != nil {
				after = webapi.RetryAfter(f.Header, now)
			}
			return &target.RetryableError{Err: e, RetryAfter: after}
		}
		return e
	case f.Auth():
		kind = target.ErrAuth
		if h.Auth != "" {
			text += "; " + h.Auth
		}
	case strings.HasSuffix(f.Code, "NotFoundException") || strings.HasSuffix(f.Code, "NotFound"):
		kind = target.ErrNotFound
		if h.NotFound != "" {
			text += "; " + h.NotFound
		}
	default:
		kind = target.ErrInvalid
	}
	return fmt.Errorf("%s: %w", text, kind)
}
