// Package awssm is the AWS Secrets Manager target: it keeps some fields of
// one secret's JSON value up to date and leaves the other fields alone
// (targets-api.md §7).
//
// Every write is a new secret version whose ClientRequestToken (which
// becomes the VersionId) is derived from the rotation id and the secret
// id, so a retry of the same write is a no-op on AWS's side. With staged:
// true (the default) the new version is written with the label AWSPENDING
// only; readers of AWSCURRENT keep the old value until Reload, which runs
// after every target of the rotation was written, moves AWSCURRENT to it.
// The old version then carries AWSPREVIOUS, as after AWS's own rotations.
//
// Credentials come from the SDK's default chain (awsclient), never from
// rotor's config.
package awssm

import (
	"cmp"
	"context"
	"crypto/sha1" //nolint:gosec // UUIDv5 is defined over SHA-1; it names, it does not protect.
	"encoding/hex"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/rotorhq/rotor/internal/secret"
	"github.com/rotorhq/rotor/internal/target"
	"github.com/rotorhq/rotor/internal/target/awsclient"
)

// Type is the registry name of this target.
const Type = "aws-secrets-manager"

// Staging labels.
const (
	stageCurrent = "AWSCURRENT"
	stagePending = "AWSPENDING"
)

// Options are the target's own config keys.
type Options struct {
	// SecretID is the secret's name or full ARN. A name that does not
	// exist yet is created on the first Put; an ARN must exist.
	SecretID string `yaml:"secret_id"`
	// Region defaults to the ARN's region, then AWS_REGION and the profile.
	Region string `yaml:"region"`
	// Endpoint replaces the regional endpoint (VPC endpoints, tests).
	Endpoint string `yaml:"endpoint"`
	// Profile selects a shared-config profile (default: AWS_PROFILE, or
	// the default chain).
	Profile string `yaml:"profile"`
	// Format is "template" (default) or "rds-json"; see format.go.
	Format string `yaml:"format"`
	// Staged writes new versions as AWSPENDING and promotes them in
	// Reload. Default true.
	Staged bool `yaml:"staged"`
	// KmsKeyID is the KMS key a secret rotor creates is encrypted with
	// (default: aws/secretsmanager). Existing secrets keep theirs.
	KmsKeyID string `yaml:"kms_key_id"`
}

// Target keeps values in one Secrets Manager secret.
type Target struct {
	name     string
	secretID string
	isARN    bool
	region   string
	endpoint string
	format   string
	staged   bool
	kmsKeyID string
	getenv   func(string) string
	now      func() time.Time

	sdk *awsclient.Lazy[awsclient.JSONAPI]
}

var (
	regionRE = regexp.MustCompile(`^[a-z]{2}(-[a-z]+)+-[0-9]+$`)
	// The length (1–512) is checked apart: a bounded repetition like
	// {1,512} compiles to 512 copies and costs every start of rotor 2 ms.
	nameRE = regexp.MustCompile(`^[A-Za-z0-9/_+=.@-]+$`)
	arnRE  = regexp.MustCompile(`^arn:aws[a-z-]*:secretsmanager:([a-z0-9-]+):[0-9]{12}:secret:[A-Za-z0-9/_+=.@-]+$`)
)

// New builds the target from its options. It does no I/O: the SDK
// configuration (which reads ~/.aws files) is loaded on first use.
func New(p target.Params) (target.Target, error) {
	opts := Options{Format: FormatTemplate, Staged: true}
	if err := p.DecodeOptions(Type, &opts); err != nil {
		return nil, err
	}
	desc := p.Describe(Type)
	getenv := p.Env()
	t := &Target{
		name: p.Name, secretID: opts.SecretID, endpoint: strings.TrimRight(opts.Endpoint, "/"),
		format: opts.Format, staged: opts.Staged, kmsKeyID: opts.KmsKeyID, getenv: getenv, now: p.Clock(),
	}
	var arnRegion string
	switch m := arnRE.FindStringSubmatch(opts.SecretID); {
	case opts.SecretID == "":
		return nil, fmt.Errorf("%s has no secret_id; add the secret's name (secret_id: prod/app/database) or its ARN: %w", desc, target.ErrInvalid)
	case m != nil:
		t.isARN, arnRegion = true, m[1]
	case strings.HasPrefix(opts.SecretID, "arn:"):
		return nil, fmt.Errorf("%s: secret_id %q is not a Secrets Manager secret ARN (arn:aws:secretsmanager:<region>:<account>:secret:<name>): %w", desc, opts.SecretID, target.ErrInvalid)
	case len(opts.SecretID) > 512 || !nameRE.MatchString(opts.SecretID):
		return nil, fmt.Errorf("%s: secret_id %q is not a valid secret name (1–512 letters, digits and /_+=.@-): %w", desc, opts.SecretID, target.ErrInvalid)
	}
	if opts.Region != "" && !regionRE.MatchString(opts.Region) {
		return nil, fmt.Errorf("%s: region %q is not an AWS region name like us-east-1: %w", desc, opts.Region, target.ErrInvalid)
	}
	if arnRegion != "" && opts.Region != "" && arnRegion != opts.Region {
		return nil, fmt.Errorf("%s: region %s differs from the region in secret_id's ARN (%s); drop region: or fix one of them: %w", desc, opts.Region, arnRegion, target.ErrInvalid)
	}
	t.region = cmp.Or(opts.Region, arnRegion)
	if t.endpoint != "" {
		if u, err := url.Parse(t.endpoint); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return nil, fmt.Errorf("%s: endpoint %q is not an http(s) URL; write it like https://vpce-0123.secretsmanager.us-east-1.vpce.amazonaws.com: %w", desc, opts.Endpoint, target.ErrInvalid)
		}
	}
	if opts.Format != FormatTemplate && opts.Format != FormatRDSJSON {
		return nil, fmt.Errorf("%s: format %q is not one of template, rds-json: %w", desc, opts.Format, target.ErrInvalid)
	}
	if opts.KmsKeyID != "" && t.isARN {
		return nil, fmt.Errorf("%s: kms_key_id only applies to a secret rotor creates, and a secret named by ARN is never created; drop kms_key_id: %w", desc, target.ErrInvalid)
	}
	t.sdk = &awsclient.Lazy[awsclient.JSONAPI]{
		Settings: awsclient.Settings{Region: t.region, Profile: opts.Profile, Getenv: getenv, HTTPClient: p.HTTPClient},
		Desc:     desc,
		Build: func(cfg aws.Config) *awsclient.JSONAPI {
			return awsclient.NewJSONAPI(cfg, awsclient.Endpoint(t.endpoint, "SECRETS_MANAGER", "secretsmanager", cfg, getenv), "secretsmanager", "secretsmanager")
		},
	}
	return t, nil
}

// Info implements target.Target.
// CheckKeys implements target.KeyChecker (format rds-json's fields).
func (t *Target) CheckKeys(keys []string) error { return checkKeys(t.format, keys) }

// CheckValue implements target.ValueChecker (format rds-json's port).
func (t *Target) CheckValue(key string, value secret.String) error {
	return checkValue(t.format, key, value.Reveal())
}

func (t *Target) Info() target.Info {
	region := cmp.Or(t.region, t.getenv("AWS_REGION"), t.getenv("AWS_DEFAULT_REGION"), "default region")
	dest := fmt.Sprintf("aws secrets manager %s (%s)", t.secretID, region)
	if t.endpoint != "" {
		dest += " via " + t.endpoint
	}
	return target.Info{Type: Type, Name: t.name, Destination: dest, Idempotent: true}
}

func (t *Target) desc() string { return fmt.Sprintf("aws-secrets-manager target %q", t.name) }

// Token is the ClientRequestToken, and so the VersionId, of the version
// rotation rotationID writes to secretID: a UUIDv5 of both, so every
// attempt of one rotation names the same version and Reload can find it.
func Token(rotationID, secretID string) string {
	h := sha1.New() //nolint:gosec // see the import
	h.Write(tokenNamespace[:])
	// Length-prefixed, so no two (rotation, secret) pairs share an input.
	fmt.Fprintf(h, "rotor/%s/%d:%s/%s", Type, len(rotationID), rotationID, secretID)
	u := h.Sum(nil)[:16]
	u[6] = u[6]&0x0f | 0x50 // version 5
	u[8] = u[8]&0x3f | 0x80 // RFC 4122 variant
	x := hex.EncodeToString(u)
	return x[:8] + "-" + x[8:12] + "-" + x[12:16] + "-" + x[16:20] + "-" + x[20:]
}

// tokenNamespace is the UUID namespace of rotor's version ids.
var tokenNamespace = [16]byte{0x6f, 0x1c, 0x2a, 0x8e, 0x3d, 0x57, 0x4b, 0x0a, 0x9c, 0x11, 0x52, 0xe4, 0x7a, 0x30, 0xd6, 0x9b}

// Put implements target.Target: the managed fields get their values, the
// other fields of the secret keep theirs, and nothing is written when
// AWSCURRENT already holds the values.
func (t *Target) Put(ctx context.Context, req target.PutRequest) (target.PutResponse, error) {
	c, err := t.api(ctx)
	if err != nil {
		return target.PutResponse{}, err
	}
	token := Token(req.RotationID, t.secretID)
	readScrub := escapedForms(req.Values, "")
	// A secret created or deleted by someone else between two calls sends
	// us round again; more than that is not a race.
	for range 3 {
		cur, err := t.current(ctx, c, readScrub)
		if err != nil {
			return target.PutResponse{}, err
		}
		doc, err := parseDocument(cur.value)
		if err != nil {
			return target.PutResponse{}, fmt.Errorf("%s: secret %s: %w", t.desc(), t.secretID, err)
		}
		if cur.value != nil && holds(t.format, doc, req.Values) {
			return target.PutResponse{Changed: false, Ref: "version " + cur.versionID}, nil
		}
		data, err := compose(t.format, doc, req.Values)
		if err != nil {
			return target.PutResponse{}, fmt.Errorf("%s: secret %s: %w", t.desc(), t.secretID, err)
		}
		scrub := escapedForms(req.Values, data)

		if !cur.exists {
			err := c.CreateSecret(ctx, createSecretInput{
				Name: t.secretID, SecretString: data, ClientRequestToken: token,
				KmsKeyId: t.kmsKeyID, Description: "Written by rotor; see the rotor config for what rotates it.",
			})
			if isCode(err, "ResourceExistsException") {
				continue
			}
			if err != nil {
				return target.PutResponse{}, t.fail("CreateSecret", err, true, scrub)
			}
			return target.PutResponse{Changed: true, Ref: "version " + token + " (created, AWSCURRENT)"}, nil
		}

		in := putSecretValueInput{SecretId: t.secretID, SecretString: data, ClientRequestToken: token}
		label := stageCurrent
		if t.staged {
			in.VersionStages = []string{stagePending}
			label = stagePending
		}
		out, err := c.PutSecretValue(ctx, in)
		switch {
		case isCode(err, "ResourceNotFoundException"):
			continue
		case isCode(err, "ResourceExistsException"):
			// This rotation's version exists with other bytes: an earlier
			// attempt merged into a value that has changed since. Fine if
			// it holds our values; anything else is someone else's.
			return t.existingVersion(ctx, c, token, req.Values, scrub)
		case err != nil:
			return target.PutResponse{}, t.fail("PutSecretValue", err, true, scrub)
		}
		if len(out.VersionStages) > 0 {
			// What the version carries now: a first version is AWSCURRENT
			// too, and a repeated write keeps the labels it has.
			label = strings.Join(out.VersionStages, ", ")
		}
		return target.PutResponse{Changed: true, Ref: "version " + token + " (" + label + ")"}, nil
	}
	return target.PutResponse{}, &target.RetryableError{Err: fmt.Errorf("%s: secret %s kept being created or deleted while rotor wrote it; the write can be retried: %w", t.desc(), t.secretID, target.ErrInvalid)}
}

func (t *Target) existingVersion(ctx context.Context, c api, token string, values map[string]secret.String, scrub []secret.String) (target.PutResponse, error) {
	out, err := c.GetSecretValue(ctx, getSecretValueInput{SecretId: t.secretID, VersionId: token})
	if err != nil {
		return target.PutResponse{}, t.fail("GetSecretValue", err, true, scrub)
	}
	doc, err := parseDocument(out.SecretString)
	if err == nil && out.SecretString != nil && holds(t.format, doc, values) {
		return target.PutResponse{Changed: false, Ref: "version " + token + " (" + strings.Join(out.VersionStages, ", ") + ")"}, nil
	}
	return target.PutResponse{}, fmt.Errorf("%s: secret %s already has a version %s, the id this rotation writes under, with other values; another rotor installation with its own state, or another tool, used the same id. Start a new rotation, or check who writes this secret: %w",
		t.desc(), t.secretID, token, target.ErrInvalid)
}

// currentValue is what the secret's AWSCURRENT version holds.
type currentValue struct {
	// exists is false when the secret itself does not.
	exists    bool
	value     *string
	versionID string
}

func (t *Target) current(ctx context.Context, c api, scrub []secret.String) (currentValue, error) {
	out, err := c.GetSecretValue(ctx, getSecretValueInput{SecretId: t.secretID, VersionStage: stageCurrent})
	if err == nil {
		if out.SecretString == nil {
			return currentValue{}, fmt.Errorf("%s: secret %s holds binary data (SecretBinary), which rotor does not overwrite; point secret_id at a secret with a SecretString: %w", t.desc(), t.secretID, target.ErrInvalid)
		}
		return currentValue{exists: true, value: out.SecretString, versionID: out.VersionId}, nil
	}
	if !isCode(err, "ResourceNotFoundException") {
		return currentValue{}, t.fail("GetSecretValue", err, true, scrub)
	}
	// Either there is no secret, or it has no AWSCURRENT version yet
	// (created without a value); only DescribeSecret tells them apart.
	_, err = c.DescribeSecret(ctx, t.secretID)
	switch {
	case err == nil:
		return currentValue{exists: true}, nil
	case isCode(err, "ResourceNotFoundException") && t.isARN:
		return currentValue{}, fmt.Errorf("%s: secret %s does not exist, and rotor creates secrets only from a name; create it, or give its name as secret_id: %w", t.desc(), t.secretID, target.ErrNotFound)
	case isCode(err, "ResourceNotFoundException"):
		return currentValue{}, nil
	default:
		return currentValue{}, t.fail("DescribeSecret", err, true, scrub)
	}
}

// Reload implements target.Reloader. With staged: true it moves AWSCURRENT
// to the version this rotation wrote (AWSPREVIOUS follows to the old one)
// and takes AWSPENDING off it; run again, it finds the work done.
func (t *Target) Reload(ctx context.Context, req target.ReloadRequest) (target.ReloadResponse, error) {
	if !t.staged {
		return target.ReloadResponse{Detail: "not staged: Put already made the new version AWSCURRENT"}, nil
	}
	c, err := t.api(ctx)
	if err != nil {
		return target.ReloadResponse{}, err
	}
	token := Token(req.RotationID, t.secretID)
	// Between DescribeSecret and the move another writer may take
	// AWSCURRENT; AWS then refuses the move and we look again.
	for range 3 {
		out, err := c.DescribeSecret(ctx, t.secretID)
		if err != nil {
			return target.ReloadResponse{}, t.fail("DescribeSecret", err, true, nil)
		}
		labels, staged := out.VersionIdsToStages[token]
		if !staged {
			// Put found the values already current and wrote nothing (or
			// the version lost its labels, which confirm's read-back of
			// AWSCURRENT will report).
			return target.ReloadResponse{Detail: "nothing staged by rotation " + req.RotationID + "; AWSCURRENT already held the values"}, nil
		}
		if !slices.Contains(labels, stageCurrent) {
			var old string
			for id, ls := range out.VersionIdsToStages {
				if slices.Contains(ls, stageCurrent) {
					old = id
				}
			}
			err := c.UpdateSecretVersionStage(ctx, updateSecretVersionStageInput{
				SecretId: t.secretID, VersionStage: stageCurrent, MoveToVersionId: token, RemoveFromVersionId: old,
			})
			if isCode(err, "InvalidParameterException") {
				continue
			}
			if err != nil {
				return target.ReloadResponse{}, t.fail("UpdateSecretVersionStage", err, true, nil)
			}
		}
		if slices.Contains(labels, stagePending) {
			err := c.UpdateSecretVersionStage(ctx, updateSecretVersionStageInput{
				SecretId: t.secretID, VersionStage: stagePending, RemoveFromVersionId: token,
			})
			// Someone moved AWSPENDING elsewhere meanwhile: not ours to remove.
			if err != nil && !isCode(err, "InvalidParameterException") {
				return target.ReloadResponse{}, t.fail("UpdateSecretVersionStage", err, true, nil)
			}
		}
		return target.ReloadResponse{Detail: "version " + token + " is AWSCURRENT"}, nil
	}
	return target.ReloadResponse{}, &target.RetryableError{Err: fmt.Errorf("%s: AWSCURRENT of %s kept moving while rotor promoted its version; something else writes this secret: %w", t.desc(), t.secretID, target.ErrInvalid)}
}

// Check implements target.Checker: it reads AWSCURRENT, what consumers
// read. A missing secret holds no keys.
func (t *Target) Check(ctx context.Context, req target.CheckRequest) (target.CheckResponse, error) {
	c, err := t.api(ctx)
	if err != nil {
		return target.CheckResponse{}, err
	}
	resp := target.CheckResponse{Values: map[string]secret.String{}}
	out, err := c.GetSecretValue(ctx, getSecretValueInput{SecretId: t.secretID, VersionStage: stageCurrent})
	switch {
	case isCode(err, "ResourceNotFoundException"):
		resp.Notes = append(resp.Notes, "secret "+t.secretID+" has no AWSCURRENT version (or does not exist)")
		return resp, nil
	case err != nil:
		return target.CheckResponse{}, t.fail("GetSecretValue", err, false, nil)
	case out.SecretString == nil:
		resp.Notes = append(resp.Notes, "secret "+t.secretID+" holds binary data, not a SecretString")
		return resp, nil
	}
	doc, err := parseDocument(out.SecretString)
	if err != nil {
		resp.Notes = append(resp.Notes, "secret "+t.secretID+": "+strings.TrimSuffix(err.Error(), ": "+target.ErrInvalid.Error()))
		return resp, nil
	}
	for _, k := range req.Keys {
		v, ok, kind := field(doc, k)
		switch {
		case ok:
			resp.Values[k] = secret.New(v)
		case kind != "":
			resp.Notes = append(resp.Notes, fmt.Sprintf("field %s holds %s, not a string", k, kind))
		}
	}
	return resp, nil
}

// Validate implements target.Validator: the credentials resolve, the
// secret can be described and its current value read (which needs
// kms:Decrypt too), and that value is one rotor can merge into. It writes
// nothing.
func (t *Target) Validate(ctx context.Context, _ target.ValidateRequest) (target.ValidateResponse, error) {
	c, err := t.api(ctx)
	if err != nil {
		return target.ValidateResponse{}, err
	}
	var resp target.ValidateResponse
	out, err := c.DescribeSecret(ctx, t.secretID)
	switch {
	case isCode(err, "ResourceNotFoundException") && t.isARN:
		return resp, fmt.Errorf("%s: secret %s does not exist, and rotor creates secrets only from a name; create it, or give its name as secret_id: %w", t.desc(), t.secretID, target.ErrNotFound)
	case isCode(err, "ResourceNotFoundException"):
		resp.Notes = append(resp.Notes, "secret "+t.secretID+" does not exist yet; the first rotation creates it (this needs secretsmanager:CreateSecret)")
		return resp, nil
	case err != nil:
		return resp, t.fail("DescribeSecret", err, false, nil)
	}
	if out.RotationEnabled {
		resp.Notes = append(resp.Notes, "Secrets Manager's own rotation is enabled on "+t.secretID+"; it changes the password behind rotor's back and uses AWSPENDING too. Turn it off (aws secretsmanager cancel-rotate-secret)")
	}
	for id, labels := range out.VersionIdsToStages {
		if slices.Contains(labels, stagePending) && !slices.Contains(labels, stageCurrent) {
			resp.Notes = append(resp.Notes, "version "+id+" carries AWSPENDING (left by an earlier staged write or another tool); the next staged write takes the label over")
		}
	}
	cur, err := c.GetSecretValue(ctx, getSecretValueInput{SecretId: t.secretID, VersionStage: stageCurrent})
	switch {
	case isCode(err, "ResourceNotFoundException"):
		resp.Notes = append(resp.Notes, "secret "+t.secretID+" has no value yet; the first rotation writes one")
		return resp, nil
	case err != nil:
		return resp, t.fail("GetSecretValue", err, false, nil)
	case cur.SecretString == nil:
		return resp, fmt.Errorf("%s: secret %s holds binary data (SecretBinary), which rotor does not overwrite; point secret_id at a secret with a SecretString: %w", t.desc(), t.secretID, target.ErrInvalid)
	}
	if _, err := parseDocument(cur.SecretString); err != nil {
		return resp, fmt.Errorf("%s: secret %s: %w", t.desc(), t.secretID, err)
	}
	return resp, nil
}

// api returns the client, building it on first use.
func (t *Target) api(ctx context.Context) (api, error) {
	c, err := t.sdk.Get(ctx)
	return api{c}, err
}

func (t *Target) fail(op string, err error, retryable bool, scrub []secret.String) error {
	return awsclient.Error(fmt.Sprintf("%s: %s %s", t.desc(), op, t.secretID), err, retryable, awsclient.Hints{
		Auth: "check the credentials (aws sts get-caller-identity) and that their IAM policy allows " + t.permissions() +
			" on the secret and kms:Decrypt/kms:GenerateDataKey on its key (docs/targets/aws-secrets-manager.md)",
		NotFound: "check secret_id and region",
	}, t.now(), scrub...)
}

func (t *Target) permissions() string {
	p := "secretsmanager:GetSecretValue, DescribeSecret, PutSecretValue"
	if t.staged {
		p += ", UpdateSecretVersionStage"
	}
	if !t.isARN {
		p += ", CreateSecret"
	}
	return p
}

func isCode(err error, code string) bool {
	if err == nil {
		return false
	}
	f, ok := awsclient.Inspect(err)
	return ok && f.Code == code
}

var (
	_ target.Target       = (*Target)(nil)
	_ target.KeyChecker   = (*Target)(nil)
	_ target.ValueChecker = (*Target)(nil)
	_ target.Reloader     = (*Target)(nil)
	_ target.Checker      = (*Target)(nil)
	_ target.Validator    = (*Target)(nil)
)
