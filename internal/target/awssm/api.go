package awssm

import (
	"context"

	"github.com/rotorhq/rotor/internal/target/awsclient"
)

// The five Secrets Manager operations the target makes, over the service's
// JSON 1.1 protocol (X-Amz-Target secretsmanager.<op>; targets-api.md §7,
// AWS Secrets Manager API Reference). awsclient.JSONAPI signs and sends
// them; the SDK's generated secretsmanager package is not linked, since it
// registers a schema for every shape of the service at process start, a
// cost every rotor command paid for a target few configs use.
type api struct{ c *awsclient.JSONAPI }

type createSecretInput struct {
	Name               string
	SecretString       string
	ClientRequestToken string
	KmsKeyId           string `json:",omitempty"`
	Description        string `json:",omitempty"`
}

type putSecretValueInput struct {
	SecretId           string
	SecretString       string
	ClientRequestToken string
	VersionStages      []string `json:",omitempty"`
}

type putSecretValueOutput struct {
	VersionId     string
	VersionStages []string
}

type getSecretValueInput struct {
	SecretId     string
	VersionId    string `json:",omitempty"`
	VersionStage string `json:",omitempty"`
}

// getSecretValueOutput's SecretString is nil when the version holds
// SecretBinary instead.
type getSecretValueOutput struct {
	SecretString  *string
	VersionId     string
	VersionStages []string
}

type describeSecretInput struct{ SecretId string }

type describeSecretOutput struct {
	RotationEnabled    bool
	VersionIdsToStages map[string][]string
}

type updateSecretVersionStageInput struct {
	SecretId            string
	VersionStage        string
	MoveToVersionId     string `json:",omitempty"`
	RemoveFromVersionId string `json:",omitempty"`
}

func (a api) CreateSecret(ctx context.Context, in createSecretInput) error {
	return a.c.Call(ctx, "CreateSecret", in, nil)
}

func (a api) PutSecretValue(ctx context.Context, in putSecretValueInput) (putSecretValueOutput, error) {
	var out putSecretValueOutput
	err := a.c.Call(ctx, "PutSecretValue", in, &out)
	return out, err
}

func (a api) GetSecretValue(ctx context.Context, in getSecretValueInput) (getSecretValueOutput, error) {
	var out getSecretValueOutput
	err := a.c.Call(ctx, "GetSecretValue", in, &out)
	return out, err
}

func (a api) DescribeSecret(ctx context.Context, secretID string) (describeSecretOutput, error) {
	var out describeSecretOutput
	err := a.c.Call(ctx, "DescribeSecret", describeSecretInput{SecretId: secretID}, &out)
	return out, err
}

func (a api) UpdateSecretVersionStage(ctx context.Context, in updateSecretVersionStageInput) error {
	return a.c.Call(ctx, "UpdateSecretVersionStage", in, nil)
}
