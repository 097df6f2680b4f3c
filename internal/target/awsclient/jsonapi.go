package awsclient

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// JSONAPI calls an AWS service that speaks the JSON 1.1 protocol (POST /,
// Content-Type application/x-amz-json-1.1, X-Amz-Target <prefix>.<op>, a
// JSON body each way, errors as {"__type": code, "message": …}; AWS
// "JSON protocols" in the Smithy specification), signed with Signature
// Version 4 by the SDK's own signer, with the credentials, region and
// HTTP client of an aws.Config built by Load.
//
// It exists for start-up time: the SDK's generated service packages
// register a schema for every one of a service's shapes at process start
// (Systems Manager about 8 ms, a fifth of rotor's package initialisation,
// Secrets Manager about 1 ms, paid by every command). The aws-ssm target
// makes three calls and aws-secrets-manager five, which this does in a few
// dozen lines.
type JSONAPI struct {
	cfg aws.Config
	// Endpoint is the service's base URL.
	Endpoint string
	// Prefix is the X-Amz-Target prefix, e.g. AmazonSSM.
	Prefix string
	// SigningName is the SigV4 service name, e.g. ssm.
	SigningName string
	signer      *v4.Signer
}

// maxAnswer bounds what is read of an answer.
const maxAnswer = 16 << 20

// NewJSONAPI is a client for the service at endpoint (see Endpoint).
func NewJSONAPI(cfg aws.Config, endpoint, prefix, signingName string) *JSONAPI {
	return &JSONAPI{cfg: cfg, Endpoint: strings.TrimRight(endpoint, "/"), Prefix: prefix, SigningName: signingName, signer: v4.NewSigner()}
}

// Endpoint is the base URL of service in region when no endpoint is
// configured: the explicit one (the target's endpoint option), else
// AWS_ENDPOINT_URL_<SERVICE> and AWS_ENDPOINT_URL (the SDK's
// service-specific and global endpoint variables, read through getenv;
// the global one also from the shared config's endpoint_url, which the
// SDK puts in cfg.BaseEndpoint), else the regional endpoint of the
// region's partition, FIPS or dual-stack when AWS_USE_FIPS_ENDPOINT or
// AWS_USE_DUALSTACK_ENDPOINT is true (docs.aws.amazon.com "AWS service
// endpoints", "FIPS endpoints"; the same hostnames the SDK's endpoint
// rules produce for the standard, China, GovCloud and ISO partitions).
func Endpoint(explicit, envService, service string, cfg aws.Config, getenv func(string) string) string {
	if getenv == nil {
		getenv = func(string) string { return "" }
	}
	if explicit != "" {
		return explicit
	}
	if e := getenv("AWS_ENDPOINT_URL_" + envService); e != "" {
		return e
	}
	if cfg.BaseEndpoint != nil && *cfg.BaseEndpoint != "" {
		return *cfg.BaseEndpoint
	}
	if e := getenv("AWS_ENDPOINT_URL"); e != "" {
		return e
	}
	region := cfg.Region
	suffix, dualSuffix := "amazonaws.com", "api.aws"
	switch {
	case strings.HasPrefix(region, "cn-"):
		suffix, dualSuffix = "amazonaws.com.cn", "api.amazonwebservices.com.cn"
	case strings.HasPrefix(region, "us-isob-"):
		suffix = "sc2s.sgov.gov"
	case strings.HasPrefix(region, "us-isof-"):
		suffix = "csp.hci.ic.gov"
	case strings.HasPrefix(region, "us-iso-"):
		suffix = "c2s.ic.gov"
	case strings.HasPrefix(region, "eu-isoe-"):
		suffix = "cloud.adc-e.uk"
	}
	host := service
	if strings.EqualFold(getenv("AWS_USE_FIPS_ENDPOINT"), "true") {
		host += "-fips"
	}
	if strings.EqualFold(getenv("AWS_USE_DUALSTACK_ENDPOINT"), "true") {
		suffix = dualSuffix
	}
	return "https://" + host + "." + region + "." + suffix
}

// Call sends op with in as its body and decodes the answer into out. A
// failure the service answered is a *smithyhttp.ResponseError around a
// smithy.APIError, as the SDK returns it, so Inspect and Error read it.
func (c *JSONAPI) Call(ctx context.Context, op string, in, out any) error {
	body, err := json.Marshal(in)
	if err != nil {
		return fmt.Errorf("%s: encode the request: %w", op, err)
	}
	creds, err := c.cfg.Credentials.Retrieve(ctx)
	if err != nil {
		return fmt.Errorf("%s: resolve AWS credentials: %w", op, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.Endpoint+"/", bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	req.Header.Set("Content-Type", "application/x-amz-json-1.1")
	req.Header.Set("X-Amz-Target", c.Prefix+"."+op)
	req.Header.Set("User-Agent", "rotor")
	sum := sha256.Sum256(body)
	if err := c.signer.SignHTTP(ctx, creds, req, hex.EncodeToString(sum[:]), c.SigningName, c.cfg.Region, time.Now().UTC()); err != nil {
		return fmt.Errorf("%s: sign the request: %w", op, err)
	}
	hc := c.cfg.HTTPClient
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return fmt.Errorf("%s: read the answer: %w", op, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return &smithyhttp.ResponseError{Response: &smithyhttp.Response{Response: resp}, Err: apiError(resp, data)}
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("%s: the answer (HTTP %d) is not the JSON expected: %w", op, resp.StatusCode, err)
	}
	return nil
}

// apiError reads a JSON 1.1 error: the code from X-Amzn-ErrorType or the
// body's __type (either may carry a namespace before '#' or a URL after
// ':'), the message from message or Message.
func apiError(resp *http.Response, data []byte) error {
	var body struct {
		Type     string `json:"__type"`
		Code     string `json:"code"`
		Message  string `json:"message"`
		Message2 string `json:"Message"`
	}
	_ = json.Unmarshal(data, &body)
	code := resp.Header.Get("X-Amzn-ErrorType")
	if code == "" {
		code = body.Type
	}
	if code == "" {
		code = body.Code
	}
	if i := strings.Index(code, ":"); i >= 0 {
		code = code[:i]
	}
	if i := strings.LastIndex(code, "#"); i >= 0 {
		code = code[i+1:]
	}
	if code == "" {
		code = http.StatusText(resp.StatusCode)
		if code == "" {
			code = fmt.Sprintf("HTTP%d", resp.StatusCode)
		}
		code = strings.ReplaceAll(code, " ", "")
	}
	msg := body.Message
	if msg == "" {
		msg = body.Message2
	}
	fault := smithy.FaultClient
	if resp.StatusCode >= 500 {
		fault = smithy.FaultServer
	}
	return &smithy.GenericAPIError{Code: code, Message: msg, Fault: fault}
}
