// Package awssmfake is a contract fake of AWS Secrets Manager, limited to
// what the aws-secrets-manager target uses. It follows
// ../shared/reference/targets-api.md §7 and the SDK's documentation of each
// operation (aws-sdk-go-v2 service/secretsmanager api_op_*.go):
//
//   - ClientRequestToken becomes the VersionId and must be 32–64
//     characters; the same token with the same SecretString does nothing
//     and succeeds, with different data it fails (ResourceExistsException).
//   - PutSecretValue without VersionStages moves AWSCURRENT to the new
//     version; the first version of a secret always gets AWSCURRENT. A
//     staging label is on at most one version: attaching it elsewhere
//     moves it, and moving AWSCURRENT moves AWSPREVIOUS to the version it
//     left.
//   - UpdateSecretVersionStage needs RemoveFromVersionId to name the
//     version that holds the label when it is attached elsewhere, and
//     refuses to take AWSCURRENT off without moving it.
//   - A missing secret or version is ResourceNotFoundException; CreateSecret
//     of an existing name is ResourceExistsException unless it repeats the
//     version that created it.
//
// The protocol (JSON 1.1, errors, credential checks, faults) is awsfake's.
package awssmfake

import (
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rotorhq/rotor/internal/target/awsclient/awsfake"
)

// Staging labels.
const (
	Current  = "AWSCURRENT"
	Pending  = "AWSPENDING"
	Previous = "AWSPREVIOUS"
)

// Server is one fake Secrets Manager endpoint.
type Server struct {
	*awsfake.Server

	mu       sync.Mutex
	secrets  map[string]*entry // by name
	requests []Request
	clock    time.Time
}

// Request is what the fake saw of one call, without the secret value.
type Request struct {
	Op                 string
	SecretID           string
	ClientRequestToken string
	VersionStages      []string
	// VersionStage and VersionID of GetSecretValue or
	// UpdateSecretVersionStage.
	VersionStage        string
	VersionID           string
	MoveToVersionID     string
	RemoveFromVersionID string
	KmsKeyID            string
}

type entry struct {
	name, arn string
	kmsKeyID  string
	rotation  bool
	versions  map[string]*version
	order     []string          // version ids, oldest first
	stages    map[string]string // label → version id
	created   time.Time
	changed   time.Time
}

type version struct {
	id      string
	value   string
	created time.Time
}

// New starts a fake with no secrets.
func New(t testing.TB) *Server {
	t.Helper()
	s := &Server{secrets: map[string]*entry{}, clock: time.Date(2026, 8, 1, 12, 0, 0, 0, time.UTC)}
	s.Server = awsfake.New(t, "secretsmanager", "secretsmanager", map[string]awsfake.Handler{
		"CreateSecret":             s.createSecret,
		"PutSecretValue":           s.putSecretValue,
		"GetSecretValue":           s.getSecretValue,
		"DescribeSecret":           s.describeSecret,
		"UpdateSecretVersionStage": s.updateSecretVersionStage,
	})
	return s
}

// Seed creates (or adds a current version to) a secret, bypassing the API.
// It returns the new version's id.
func (s *Server) Seed(name, value string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.secrets[name]
	if e == nil {
		e = s.newEntry(name, "")
	}
	sum := sha256.Sum256([]byte(name + "\x00" + value))
	id := "seed-" + hex.EncodeToString(sum[:])[:32]
	e.add(id, value, s.tick(), []string{Current})
	return id
}

// CreateEmpty creates a secret with no version, as CreateSecret without a
// value does.
func (s *Server) CreateEmpty(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.secrets[name] == nil {
		s.newEntry(name, "")
	}
}

// EnableRotation marks the secret as rotated by Secrets Manager itself.
func (s *Server) EnableRotation(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e := s.secrets[name]; e != nil {
		e.rotation = true
	}
}

// ARN returns a secret's ARN, empty when it does not exist.
func (s *Server) ARN(name string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e := s.secrets[name]; e != nil {
		return e.arn
	}
	return ""
}

// Value returns the SecretString of the version holding stage.
func (s *Server) Value(name, stage string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.secrets[name]
	if e == nil || e.stages[stage] == "" {
		return "", false
	}
	return e.versions[e.stages[stage]].value, true
}

// Latest returns the SecretString of the newest version, whatever its
// labels: what a staged write left behind before it was promoted.
func (s *Server) Latest(name string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.secrets[name]
	if e == nil || len(e.order) == 0 {
		return "", false
	}
	return e.versions[e.order[len(e.order)-1]].value, true
}

// Stages returns label → version id.
func (s *Server) Stages(name string) map[string]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]string{}
	if e := s.secrets[name]; e != nil {
		for k, v := range e.stages {
			out[k] = v
		}
	}
	return out
}

// Versions returns the version ids, oldest first.
func (s *Server) Versions(name string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e := s.secrets[name]; e != nil {
		return slices.Clone(e.order)
	}
	return nil
}

// KmsKeyID returns the key a secret was created with.
func (s *Server) KmsKeyID(name string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e := s.secrets[name]; e != nil {
		return e.kmsKeyID
	}
	return ""
}

// Requests returns the calls that reached an operation, in order.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.requests)
}

func (s *Server) newEntry(name, kms string) *entry {
	sum := sha256.Sum256([]byte(name))
	now := s.tick()
	e := &entry{
		name:     name,
		arn:      "arn:aws:secretsmanager:" + awsfake.Region + ":" + awsfake.Account + ":secret:" + name + "-" + hex.EncodeToString(sum[:])[:6],
		kmsKeyID: kms,
		versions: map[string]*version{},
		stages:   map[string]string{},
		created:  now,
		changed:  now,
	}
	s.secrets[name] = e
	return e
}

func (s *Server) tick() time.Time {
	s.clock = s.clock.Add(time.Second)
	return s.clock
}

// lookup finds a secret by name or full ARN.
func (s *Server) lookup(id string) (*entry, *awsfake.Error) {
	if e := s.secrets[id]; e != nil {
		return e, nil
	}
	for _, e := range s.secrets {
		if e.arn == id {
			return e, nil
		}
	}
	return nil, awsfake.Errorf("ResourceNotFoundException", "Secrets Manager can't find the specified secret.")
}

func (s *Server) record(r Request) {
	s.requests = append(s.requests, r)
}

// add creates a version and attaches labels; the first version of a
// secret also gets AWSCURRENT.
func (e *entry) add(id, value string, now time.Time, labels []string) {
	if len(e.order) == 0 && !slices.Contains(labels, Current) {
		labels = append(labels, Current)
	}
	e.versions[id] = &version{id: id, value: value, created: now}
	e.order = append(e.order, id)
	for _, l := range labels {
		e.attach(l, id)
	}
	e.changed = now
}

// attach moves label to id; moving AWSCURRENT moves AWSPREVIOUS to the
// version it left.
func (e *entry) attach(label, id string) {
	old := e.stages[label]
	e.stages[label] = id
	if label == Current && old != "" && old != id {
		e.stages[Previous] = old
	}
}

func (e *entry) labelsOf(id string) []string {
	var out []string
	for l, v := range e.stages {
		if v == id {
			out = append(out, l)
		}
	}
	slices.Sort(out)
	return out
}

func validToken(tok string) *awsfake.Error {
	if n := len(tok); n < 32 || n > 64 {
		return awsfake.Errorf("ValidationException", "1 validation error detected: Value at 'clientRequestToken' failed to satisfy constraint: Member must have length between 32 and 64")
	}
	return nil
}

func epoch(t time.Time) float64 { return float64(t.UnixNano()) / 1e9 }

type createSecretIn struct {
	Name               string
	SecretString       *string
	ClientRequestToken string
	KmsKeyId           string
	Description        string
}

func (s *Server) createSecret(body []byte) (any, *awsfake.Error) {
	var in createSecretIn
	if err := awsfake.Decode(body, &in); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.record(Request{Op: "CreateSecret", SecretID: in.Name, ClientRequestToken: in.ClientRequestToken, KmsKeyID: in.KmsKeyId})
	if in.Name == "" || strings.HasPrefix(in.Name, "arn:") {
		return nil, awsfake.Errorf("ValidationException", "Invalid name. Must be a valid name containing alphanumeric characters, or any of the following: -/_+=.@!")
	}
	if err := validToken(in.ClientRequestToken); err != nil {
		return nil, err
	}
	if e := s.secrets[in.Name]; e != nil {
		// Repeating the call that created the secret does nothing.
		if v := e.versions[in.ClientRequestToken]; v != nil && in.SecretString != nil && v.value == *in.SecretString {
			return map[string]any{"ARN": e.arn, "Name": e.name, "VersionId": v.id}, nil
		}
		return nil, awsfake.Errorf("ResourceExistsException", "The operation failed because the secret %s already exists.", in.Name)
	}
	e := s.newEntry(in.Name, in.KmsKeyId)
	out := map[string]any{"ARN": e.arn, "Name": e.name}
	if in.SecretString != nil {
		e.add(in.ClientRequestToken, *in.SecretString, s.tick(), nil)
		out["VersionId"] = in.ClientRequestToken
	}
	return out, nil
}

type putSecretValueIn struct {
	SecretId           string
	SecretString       *string
	ClientRequestToken string
	VersionStages      []string
}

func (s *Server) putSecretValue(body []byte) (any, *awsfake.Error) {
	var in putSecretValueIn
	if err := awsfake.Decode(body, &in); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.record(Request{Op: "PutSecretValue", SecretID: in.SecretId, ClientRequestToken: in.ClientRequestToken, VersionStages: slices.Clone(in.VersionStages)})
	if in.SecretString == nil {
		return nil, awsfake.Errorf("InvalidParameterException", "You must provide either SecretString or SecretBinary.")
	}
	if err := validToken(in.ClientRequestToken); err != nil {
		return nil, err
	}
	e, err := s.lookup(in.SecretId)
	if err != nil {
		return nil, err
	}
	if v := e.versions[in.ClientRequestToken]; v != nil {
		if v.value != *in.SecretString {
			return nil, awsfake.Errorf("ResourceExistsException", "You can't modify an existing version, you can only create a new version.")
		}
		return map[string]any{"ARN": e.arn, "Name": e.name, "VersionId": v.id, "VersionStages": e.labelsOf(v.id)}, nil
	}
	labels := in.VersionStages
	if labels == nil {
		labels = []string{Current}
	}
	e.add(in.ClientRequestToken, *in.SecretString, s.tick(), labels)
	return map[string]any{"ARN": e.arn, "Name": e.name, "VersionId": in.ClientRequestToken, "VersionStages": e.labelsOf(in.ClientRequestToken)}, nil
}

type getSecretValueIn struct {
	SecretId     string
	VersionId    string
	VersionStage string
}

func (s *Server) getSecretValue(body []byte) (any, *awsfake.Error) {
	var in getSecretValueIn
	if err := awsfake.Decode(body, &in); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.record(Request{Op: "GetSecretValue", SecretID: in.SecretId, VersionID: in.VersionId, VersionStage: in.VersionStage})
	e, err := s.lookup(in.SecretId)
	if err != nil {
		return nil, err
	}
	id := in.VersionId
	if id == "" {
		stage := in.VersionStage
		if stage == "" {
			stage = Current
		}
		if id = e.stages[stage]; id == "" {
			return nil, awsfake.Errorf("ResourceNotFoundException", "Secrets Manager can't find the specified secret value for staging label: %s", stage)
		}
	}
	v := e.versions[id]
	if v == nil {
		return nil, awsfake.Errorf("ResourceNotFoundException", "Secrets Manager can't find the specified secret value for VersionId: %s", id)
	}
	if in.VersionStage != "" && e.stages[in.VersionStage] != id {
		return nil, awsfake.Errorf("ResourceNotFoundException", "Secrets Manager can't find the specified secret value for staging label: %s", in.VersionStage)
	}
	return map[string]any{
		"ARN": e.arn, "Name": e.name, "VersionId": id, "SecretString": v.value,
		"VersionStages": e.labelsOf(id), "CreatedDate": epoch(v.created),
	}, nil
}

type describeSecretIn struct {
	SecretId string
}

func (s *Server) describeSecret(body []byte) (any, *awsfake.Error) {
	var in describeSecretIn
	if err := awsfake.Decode(body, &in); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.record(Request{Op: "DescribeSecret", SecretID: in.SecretId})
	e, err := s.lookup(in.SecretId)
	if err != nil {
		return nil, err
	}
	stages := map[string][]string{}
	for _, id := range e.order {
		if l := e.labelsOf(id); len(l) > 0 {
			stages[id] = l
		}
	}
	out := map[string]any{
		"ARN": e.arn, "Name": e.name, "RotationEnabled": e.rotation,
		"VersionIdsToStages": stages, "CreatedDate": epoch(e.created), "LastChangedDate": epoch(e.changed),
	}
	if e.kmsKeyID != "" {
		out["KmsKeyId"] = e.kmsKeyID
	}
	return out, nil
}

type updateStageIn struct {
	SecretId            string
	VersionStage        string
	MoveToVersionId     string
	RemoveFromVersionId string
}

func (s *Server) updateSecretVersionStage(body []byte) (any, *awsfake.Error) {
	var in updateStageIn
	if err := awsfake.Decode(body, &in); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.record(Request{Op: "UpdateSecretVersionStage", SecretID: in.SecretId, VersionStage: in.VersionStage, MoveToVersionID: in.MoveToVersionId, RemoveFromVersionID: in.RemoveFromVersionId})
	e, err := s.lookup(in.SecretId)
	if err != nil {
		return nil, err
	}
	if in.VersionStage == "" {
		return nil, awsfake.Errorf("InvalidParameterException", "You must specify a VersionStage.")
	}
	holder := e.stages[in.VersionStage]
	if in.RemoveFromVersionId != "" && holder != in.RemoveFromVersionId {
		return nil, awsfake.Errorf("InvalidParameterException", "The staging label %s is not attached to version %s.", in.VersionStage, in.RemoveFromVersionId)
	}
	if in.MoveToVersionId == "" {
		if in.RemoveFromVersionId == "" {
			return nil, awsfake.Errorf("InvalidParameterException", "You must specify MoveToVersionId or RemoveFromVersionId.")
		}
		if in.VersionStage == Current {
			return nil, awsfake.Errorf("InvalidParameterException", "You can't remove the staging label AWSCURRENT; move it to another version instead.")
		}
		delete(e.stages, in.VersionStage)
		e.changed = s.tick()
		return map[string]any{"ARN": e.arn, "Name": e.name}, nil
	}
	if e.versions[in.MoveToVersionId] == nil {
		return nil, awsfake.Errorf("ResourceNotFoundException", "Secrets Manager can't find the specified secret value for VersionId: %s", in.MoveToVersionId)
	}
	if holder != "" && holder != in.MoveToVersionId && in.RemoveFromVersionId == "" {
		return nil, awsfake.Errorf("InvalidParameterException", "The staging label %s is currently attached to version %s, so you must explicitly reference that version in RemoveFromVersionId.", in.VersionStage, holder)
	}
	e.attach(in.VersionStage, in.MoveToVersionId)
	e.changed = s.tick()
	return map[string]any{"ARN": e.arn, "Name": e.name}, nil
}
