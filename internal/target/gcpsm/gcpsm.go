// Package gcpsm is the Google Secret Manager target: it adds a version to
// one secret (targets-api.md §10 "Google Secret Manager").
//
// It speaks the REST API (v1) through webapi rather than the
// cloud.google.com/go/secretmanager client: four calls do not justify
// gRPC, protobuf and OpenTelemetry in every binary and test that links the
// target registry (see docs/targets/gcp-secret-manager.md for the measured
// cost). Credentials are Google's Application Default Credentials, through
// golang.org/x/oauth2/google.
//
// A version is always appended, so Put first reads the latest one and adds
// a version only when it does not already hold the values; that read makes
// a retried Put a no-op, which is what lets the engine retry it.
package gcpsm

import (
	"bytes"
	"cmp"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"maps"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/google"

	"github.com/rotorhq/rotor/internal/secret"
	"github.com/rotorhq/rotor/internal/target"
	"github.com/rotorhq/rotor/internal/target/webapi"
)

// Type is the registry name of this target.
const Type = "gcp-secret-manager"

// Payload formats.
const (
	// FormatPlain stores the one value of the target as the whole
	// payload: what Cloud Run, GKE and `gcloud secrets versions access`
	// hand to an application.
	FormatPlain = "plain"
	// FormatJSON stores the values as the fields of a JSON object; fields
	// rotor does not manage are carried over from the latest version.
	FormatJSON = "json"
)

// DefaultEndpoint is the global Secret Manager endpoint.
const DefaultEndpoint = "https://secretmanager.googleapis.com"

// scope is the OAuth scope Secret Manager accepts.
const scope = "https://www.googleapis.com/auth/cloud-platform"

// maxPayload is Secret Manager's limit on a version's payload.
const maxPayload = 64 * 1024

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Options are the target's own config keys.
type Options struct {
	// Project is the project id or number; default $GOOGLE_CLOUD_PROJECT.
	Project string `yaml:"project"`
	// SecretID is the secret's id within the project. (Not "secret": the
	// config reserves that key for values that must come from ${ENV}.)
	SecretID string `yaml:"secret_id"`
	// Format is "plain" (default) or "json".
	Format string `yaml:"format"`
	// DisablePrevious keeps at most two versions enabled: each Put, after
	// its own version is in place, disables every enabled version but the
	// newest two. Default false.
	DisablePrevious bool `yaml:"disable_previous"`
	// Locations replicates a secret rotor creates to these regions only
	// (user-managed replication); default automatic. Existing secrets keep
	// their replication.
	Locations []string `yaml:"locations"`
	// Endpoint replaces DefaultEndpoint (regional endpoints are not
	// supported; private service connect endpoints and tests are).
	Endpoint string `yaml:"endpoint"`
}

// Target adds versions to one secret.
type Target struct {
	name            string
	project         string
	secretID        string
	format          string
	disablePrevious bool
	locations       []string
	endpoint        string
	getenv          func(string) string
	http            *http.Client
	now             func() time.Time

	mu     sync.Mutex
	tokens oauth2.TokenSource
}

var (
	// A project ID is 6 to 30 characters, a project number 1 to 20 digits;
	// the lengths are checked apart (validProject), since bounded
	// repetitions compile to one copy per count at every start.
	projectIDRE     = regexp.MustCompile(`^[a-z][a-z0-9-]*[a-z0-9]$`)
	projectNumberRE = regexp.MustCompile(`^[0-9]+$`)
	// At most 255, checked apart: {1,255} compiles to 255 copies.
	secretIDRE = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)
	locationRE = regexp.MustCompile(`^[a-z]+-[a-z]+[0-9]+$`)
)

// validProject reports whether s is a project ID or a project number.
func validProject(s string) bool {
	if projectNumberRE.MatchString(s) {
		return len(s) <= 20
	}
	return len(s) >= 6 && len(s) <= 30 && projectIDRE.MatchString(s)
}

// New builds the target from its options. It does no I/O: credentials are
// looked up on first use.
func New(p target.Params) (target.Target, error) {
	opts := Options{Format: FormatPlain, Endpoint: DefaultEndpoint}
	if err := p.DecodeOptions(Type, &opts); err != nil {
		return nil, err
	}
	desc := p.Describe(Type)
	getenv := p.Env()
	project := opts.Project
	if project == "" {
		project = getenv("GOOGLE_CLOUD_PROJECT")
	}
	switch {
	case project == "":
		return nil, fmt.Errorf("%s has no project; add project: my-project (or export GOOGLE_CLOUD_PROJECT): %w", desc, target.ErrInvalid)
	case !validProject(project):
		return nil, fmt.Errorf("%s: project %q is neither a project id (6–30 lower-case letters, digits, '-') nor a project number: %w", desc, project, target.ErrInvalid)
	case opts.SecretID == "":
		return nil, fmt.Errorf("%s has no secret_id; add the secret's id, e.g. secret_id: app-database-url: %w", desc, target.ErrInvalid)
	case strings.HasPrefix(opts.SecretID, "projects/"):
		return nil, fmt.Errorf("%s: secret_id %q is a resource name; give the project as project: and the last part as secret_id: %w", desc, opts.SecretID, target.ErrInvalid)
	case len(opts.SecretID) > 255 || !secretIDRE.MatchString(opts.SecretID):
		return nil, fmt.Errorf("%s: secret_id %q may hold only letters, digits, '-' and '_' (at most 255): %w", desc, opts.SecretID, target.ErrInvalid)
	case opts.Format != FormatPlain && opts.Format != FormatJSON:
		return nil, fmt.Errorf("%s: format %q is not one of plain, json: %w", desc, opts.Format, target.ErrInvalid)
	}
	for _, l := range opts.Locations {
		if !locationRE.MatchString(l) {
			return nil, fmt.Errorf("%s: location %q is not a region name like europe-west1: %w", desc, l, target.ErrInvalid)
		}
	}
	endpoint := strings.TrimRight(opts.Endpoint, "/")
	if u, err := url.Parse(endpoint); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || (u.Path != "" && u.Path != "/") {
		return nil, fmt.Errorf("%s: endpoint %q is not an http(s) URL without a path, like %s: %w", desc, opts.Endpoint, DefaultEndpoint, target.ErrInvalid)
	}
	now := p.Clock()
	return &Target{
		name: p.Name, project: project, secretID: opts.SecretID, format: opts.Format, disablePrevious: opts.DisablePrevious,
		locations: opts.Locations, endpoint: endpoint, getenv: getenv, http: p.HTTPClient, now: now,
	}, nil
}

// Info implements target.Target.
func (t *Target) Info() target.Info {
	dest := "gcp secret manager " + t.resource()
	if t.endpoint != DefaultEndpoint {
		dest += " via " + t.endpoint
	}
	return target.Info{Type: Type, Name: t.name, Destination: dest, Idempotent: true}
}

func (t *Target) desc() string { return fmt.Sprintf("gcp-secret-manager target %q", t.name) }

func (t *Target) resource() string { return "projects/" + t.project + "/secrets/" + t.secretID }

// CheckKeys implements target.KeyChecker: format plain holds one value.
func (t *Target) CheckKeys(keys []string) error {
	if t.format == FormatPlain && len(keys) != 1 {
		return fmt.Errorf("format plain stores one value, but values has %d keys (%s); use format: json, or one target per key: %w",
			len(keys), strings.Join(keys, ", "), target.ErrInvalid)
	}
	return nil
}

// Put implements target.Target: unless the latest version already holds
// the values, it adds a version (creating the secret on first use); with
// disable_previous it then disables all but the newest two versions.
func (t *Target) Put(ctx context.Context, req target.PutRequest) (target.PutResponse, error) {
	scrub := slices.Collect(maps.Values(req.Values))
	for k, v := range req.Values {
		if !utf8.ValidString(v.Reveal()) && t.format == FormatJSON {
			return target.PutResponse{}, fmt.Errorf("%s: the value of %s is not valid UTF-8, which a JSON payload cannot hold: %w", t.desc(), k, target.ErrInvalid)
		}
	}
	if err := t.CheckKeys(slices.Sorted(maps.Keys(req.Values))); err != nil {
		return target.PutResponse{}, fmt.Errorf("%s: %w", t.desc(), err)
	}
	latest, err := t.latest(ctx, scrub)
	if err != nil {
		return target.PutResponse{}, err
	}
	payload, err := t.compose(latest, req.Values)
	if err != nil {
		return target.PutResponse{}, err
	}
	resp := target.PutResponse{Changed: false, Ref: latest.version}
	if !latest.holds(t.format, req.Values) {
		scrub = append(scrub, secret.New(string(payload)))
		ref, err := t.addVersion(ctx, payload, scrub)
		if err != nil {
			return target.PutResponse{}, err
		}
		resp = target.PutResponse{Changed: true, Ref: ref}
	}
	if t.disablePrevious {
		// Run even when nothing was added, so a retry finishes the pruning
		// an earlier attempt started.
		if err := t.disableOld(ctx); err != nil {
			return target.PutResponse{Changed: resp.Changed}, err
		}
	}
	return resp, nil
}

// latestVersion is what versions/latest:access answered.
type latestVersion struct {
	// version is the version's short name ("version 3"), empty when none.
	version string
	// payload is nil when there is no readable latest version.
	payload []byte
	// state explains a latest version that cannot be read (disabled).
	state string
}

func (l latestVersion) holds(format string, values map[string]secret.String) bool {
	if l.payload == nil {
		return false
	}
	if format == FormatPlain {
		for _, v := range values {
			return secret.New(string(l.payload)).Equal(v)
		}
	}
	doc, err := parseDocument(l.payload)
	if err != nil {
		return false
	}
	for k, v := range values {
		got, ok := stringField(doc, k)
		if !ok || !secret.New(got).Equal(v) {
			return false
		}
	}
	return true
}

func (t *Target) latest(ctx context.Context, scrub []secret.String) (latestVersion, error) {
	resp, err := t.do(ctx, webapi.Request{Method: http.MethodGet, Path: "/v1/" + t.resource() + "/versions/latest:access", Secrets: scrub, Retryable: true})
	var se *webapi.StatusError
	switch {
	case errors.As(err, &se) && se.Status == http.StatusNotFound:
		// No secret, or a secret without versions: addVersion tells which.
		return latestVersion{}, nil
	case errors.As(err, &se) && se.Status == http.StatusBadRequest:
		// FAILED_PRECONDITION: the latest version is disabled or destroyed
		// (the names are checked in New, so nothing else is malformed).
		return latestVersion{state: "not readable (" + cmp.Or(se.Message, "FAILED_PRECONDITION") + ")"}, nil
	case err != nil:
		return latestVersion{}, t.fail("read the latest version of", err)
	}
	var out struct {
		Name    string `json:"name"`
		Payload struct {
			Data       string `json:"data"`
			DataCrc32c string `json:"dataCrc32c"`
		} `json:"payload"`
	}
	if err := json.Unmarshal(resp.Body, &out); err != nil {
		return latestVersion{}, fmt.Errorf("%s: the latest version of %s is not the documented JSON: %w", t.desc(), t.resource(), target.ErrInvalid)
	}
	data, err := base64.StdEncoding.DecodeString(out.Payload.Data)
	if err != nil {
		return latestVersion{}, fmt.Errorf("%s: the latest version of %s holds invalid base64: %w", t.desc(), t.resource(), target.ErrInvalid)
	}
	if out.Payload.DataCrc32c != "" && out.Payload.DataCrc32c != checksum(data) {
		return latestVersion{}, &target.RetryableError{Err: fmt.Errorf("%s: the latest version of %s arrived corrupted (CRC32C mismatch); reading again may succeed: %w", t.desc(), t.resource(), target.ErrInvalid)}
	}
	return latestVersion{version: shortVersion(out.Name), payload: data}, nil
}

// compose builds the new payload: the value itself (plain), or the latest
// JSON object with the managed fields set (json).
func (t *Target) compose(latest latestVersion, values map[string]secret.String) ([]byte, error) {
	var payload []byte
	if t.format == FormatPlain {
		for _, v := range values {
			payload = []byte(v.Reveal())
		}
	} else {
		if latest.state != "" {
			return nil, fmt.Errorf("%s: the latest version of %s is %s, so rotor cannot read the fields to keep; enable it, or add a version by hand: %w", t.desc(), t.resource(), latest.state, target.ErrInvalid)
		}
		doc := document{}
		if latest.payload != nil {
			var err error
			if doc, err = parseDocument(latest.payload); err != nil {
				return nil, fmt.Errorf("%s: %s: %w", t.desc(), t.resource(), err)
			}
		}
		for k, v := range values {
			doc[k] = jsonString(v.Reveal())
		}
		var b bytes.Buffer
		enc := json.NewEncoder(&b)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(doc); err != nil {
			return nil, fmt.Errorf("%s: encode the payload: %w", t.desc(), err)
		}
		payload = bytes.TrimSuffix(b.Bytes(), []byte("\n"))
	}
	if len(payload) == 0 || len(payload) > maxPayload {
		return nil, fmt.Errorf("%s: the payload would be %d bytes; Secret Manager stores 1 to %d: %w", t.desc(), len(payload), maxPayload, target.ErrInvalid)
	}
	return payload, nil
}

func (t *Target) addVersion(ctx context.Context, payload []byte, scrub []secret.String) (string, error) {
	body := map[string]any{"payload": map[string]any{
		"data": base64.StdEncoding.EncodeToString(payload),
		// int64 travels as a decimal string in Google's JSON mapping.
		"dataCrc32c": checksum(payload),
	}}
	add := webapi.Request{Method: http.MethodPost, Path: "/v1/" + t.resource() + ":addVersion", Body: body, Secrets: scrub, Retryable: true}
	resp, err := t.do(ctx, add)
	var se *webapi.StatusError
	if errors.As(err, &se) && se.Status == http.StatusNotFound {
		if err := t.createSecret(ctx); err != nil {
			return "", err
		}
		resp, err = t.do(ctx, add)
	}
	if err != nil {
		return "", t.fail("add a version to", err)
	}
	var out struct {
		Name string `json:"name"`
	}
	_ = json.Unmarshal(resp.Body, &out)
	return shortVersion(out.Name), nil
}

func (t *Target) createSecret(ctx context.Context) error {
	repl := map[string]any{"automatic": map[string]any{}}
	if len(t.locations) > 0 {
		var replicas []map[string]string
		for _, l := range t.locations {
			replicas = append(replicas, map[string]string{"location": l})
		}
		repl = map[string]any{"userManaged": map[string]any{"replicas": replicas}}
	}
	_, err := t.do(ctx, webapi.Request{
		Method: http.MethodPost, Path: "/v1/projects/" + t.project + "/secrets?secretId=" + url.QueryEscape(t.secretID),
		Body: map[string]any{"replication": repl}, Retryable: true,
	})
	var se *webapi.StatusError
	if errors.As(err, &se) && se.Status == http.StatusConflict {
		// Created by a concurrent Put (ALREADY_EXISTS): fine.
		return nil
	}
	if err != nil {
		return t.fail("create", err)
	}
	return nil
}

// disableOld disables every enabled version but the newest two: the one
// this rotation published and the one before it, which consumers that
// have not restarted yet may still read. Older ones hold credentials that
// earlier rotations already retired.
func (t *Target) disableOld(ctx context.Context) error {
	var versions []int
	token := ""
	for range 1000 {
		path := "/v1/" + t.resource() + "/versions?filter=" + url.QueryEscape("state:ENABLED") + "&pageSize=100"
		if token != "" {
			path += "&pageToken=" + url.QueryEscape(token)
		}
		resp, err := t.do(ctx, webapi.Request{Method: http.MethodGet, Path: path, Retryable: true})
		if err != nil {
			return t.fail("list the enabled versions of", err)
		}
		var out struct {
			Versions []struct {
				Name string `json:"name"`
			} `json:"versions"`
			NextPageToken string `json:"nextPageToken"`
		}
		if err := json.Unmarshal(resp.Body, &out); err != nil {
			return fmt.Errorf("%s: the version list of %s is not the documented JSON: %w", t.desc(), t.resource(), target.ErrInvalid)
		}
		for _, v := range out.Versions {
			if n, err := strconv.Atoi(v.Name[strings.LastIndexByte(v.Name, '/')+1:]); err == nil {
				versions = append(versions, n)
			}
		}
		if token = out.NextPageToken; token == "" {
			break
		}
	}
	// Newest first by number, whatever order the pages came in.
	sort.Sort(sort.Reverse(sort.IntSlice(versions)))
	for _, n := range versions[min(2, len(versions)):] {
		_, err := t.do(ctx, webapi.Request{Method: http.MethodPost, Path: fmt.Sprintf("/v1/%s/versions/%d:disable", t.resource(), n), Body: map[string]any{}, Retryable: true})
		if err != nil {
			return t.fail(fmt.Sprintf("disable version %d of", n), err)
		}
	}
	return nil
}

// Check implements target.Checker: it reads the latest version, what
// consumers pinned to "latest" get.
func (t *Target) Check(ctx context.Context, req target.CheckRequest) (target.CheckResponse, error) {
	resp := target.CheckResponse{Values: map[string]secret.String{}}
	latest, err := t.latest(ctx, nil)
	switch {
	case err != nil:
		return target.CheckResponse{}, err
	case latest.state != "":
		resp.Notes = append(resp.Notes, "the latest version of "+t.resource()+" is "+latest.state)
		return resp, nil
	case latest.payload == nil:
		resp.Notes = append(resp.Notes, t.resource()+" has no version (or does not exist)")
		return resp, nil
	}
	if t.format == FormatPlain {
		if len(req.Keys) == 1 {
			resp.Values[req.Keys[0]] = secret.New(string(latest.payload))
		} else {
			resp.Notes = append(resp.Notes, fmt.Sprintf("format plain holds one value; it cannot be read back as %d keys", len(req.Keys)))
		}
		return resp, nil
	}
	doc, err := parseDocument(latest.payload)
	if err != nil {
		resp.Notes = append(resp.Notes, t.resource()+": "+strings.TrimSuffix(err.Error(), ": "+target.ErrInvalid.Error()))
		return resp, nil
	}
	for _, k := range req.Keys {
		if v, ok := stringField(doc, k); ok {
			resp.Values[k] = secret.New(v)
		} else if _, present := doc[k]; present {
			resp.Notes = append(resp.Notes, "field "+k+" is not a string")
		}
	}
	return resp, nil
}

// Validate implements target.Validator: the credentials yield a token, the
// secret can be read (secrets.get, versions.access, and versions.list with
// disable_previous), and its latest payload suits the format. It writes
// nothing.
func (t *Target) Validate(ctx context.Context, _ target.ValidateRequest) (target.ValidateResponse, error) {
	var resp target.ValidateResponse
	_, err := t.do(ctx, webapi.Request{Method: http.MethodGet, Path: "/v1/" + t.resource()})
	var se *webapi.StatusError
	switch {
	case errors.As(err, &se) && se.Status == http.StatusNotFound:
		resp.Notes = append(resp.Notes, t.resource()+" does not exist yet; the first rotation creates it (this needs secretmanager.secrets.create on the project)")
		return resp, nil
	case err != nil:
		return resp, t.fail("describe", err)
	}
	latest, err := t.latest(ctx, nil)
	switch {
	case err != nil:
		return resp, err
	case latest.state != "":
		resp.Notes = append(resp.Notes, "the latest version of "+t.resource()+" is "+latest.state+"; the next rotation adds an enabled one")
	case latest.payload == nil:
		resp.Notes = append(resp.Notes, t.resource()+" has no version yet; the first rotation adds one")
	case t.format == FormatJSON:
		if _, err := parseDocument(latest.payload); err != nil {
			return resp, fmt.Errorf("%s: %s: %w", t.desc(), t.resource(), err)
		}
	}
	if t.disablePrevious {
		if _, err := t.do(ctx, webapi.Request{Method: http.MethodGet, Path: "/v1/" + t.resource() + "/versions?pageSize=1"}); err != nil {
			return resp, t.fail("list the versions of", err)
		}
	}
	return resp, nil
}

// refusal is the token endpoint's reason: RFC 6749 error_description or
// error, which not every flow of x/oauth2 parses for us.
func refusal(re *oauth2.RetrieveError) string {
	if re.ErrorDescription != "" || re.ErrorCode != "" {
		return cmp.Or(re.ErrorDescription, re.ErrorCode)
	}
	var body struct {
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}
	_ = json.Unmarshal(re.Body, &body)
	return cmp.Or(body.Description, body.Error, "no reason given")
}

// do sends one call with a fresh (cached) access token. Its errors are
// wrapped by fail, which names the target.
func (t *Target) do(ctx context.Context, r webapi.Request) (*webapi.Response, error) {
	ts, err := t.tokenSource()
	if err != nil {
		return nil, err
	}
	tok, err := ts.Token()
	if err != nil {
		var re *oauth2.RetrieveError
		if errors.As(err, &re) && (re.Response == nil || re.Response.StatusCode < 500) {
			return nil, fmt.Errorf("Google refused the credentials (%s); renew them (gcloud auth application-default login, or a new key for the service account): %w",
				webapi.Shorten(refusal(re)), target.ErrAuth)
		}
		// A token endpoint that is down or unreachable may come back.
		return nil, &target.RetryableError{Err: fmt.Errorf("get an access token: %w", err)}
	}
	c := webapi.Client{HTTP: t.http, BaseURL: t.endpoint, Auth: webapi.Bearer(tok.AccessToken), Target: "Secret Manager", Now: t.now, UserAgent: "rotor"}
	return c.Do(ctx, r)
}

// tokenSource finds credentials the way Google's client libraries do
// (Application Default Credentials), reading the environment through
// Params.Getenv: GOOGLE_OAUTH_ACCESS_TOKEN (a token minted elsewhere, as
// Terraform's Google provider takes it), then GOOGLE_APPLICATION_CREDENTIALS
// (a key or workload identity file), then gcloud's application default
// credentials and the metadata server.
func (t *Target) tokenSource() (oauth2.TokenSource, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.tokens != nil {
		return t.tokens, nil
	}
	// The token source outlives any one call, so it gets its own context;
	// the HTTP client (and its timeout) is the injected one.
	ctx := context.Background()
	if t.http != nil {
		ctx = context.WithValue(ctx, oauth2.HTTPClient, t.http)
	}
	help := "run `gcloud auth application-default login`, export GOOGLE_APPLICATION_CREDENTIALS=<key or workload identity file>, or run on Google Cloud with a service account"
	switch {
	case t.getenv("GOOGLE_OAUTH_ACCESS_TOKEN") != "":
		t.tokens = oauth2.StaticTokenSource(&oauth2.Token{AccessToken: t.getenv("GOOGLE_OAUTH_ACCESS_TOKEN"), TokenType: "Bearer"})
	case t.getenv("GOOGLE_APPLICATION_CREDENTIALS") != "":
		path := t.getenv("GOOGLE_APPLICATION_CREDENTIALS")
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("cannot read GOOGLE_APPLICATION_CREDENTIALS file %s (%v); %s: %w", path, errors.Unwrap(err), help, target.ErrAuth)
		}
		var kind struct {
			Type string `json:"type"`
		}
		_ = json.Unmarshal(data, &kind)
		// Client-secret files would start a browser flow; only the
		// non-interactive credential types are accepted.
		if !slices.Contains([]string{"service_account", "authorized_user", "external_account", "impersonated_service_account", "external_account_authorized_user"}, kind.Type) {
			return nil, fmt.Errorf("GOOGLE_APPLICATION_CREDENTIALS file %s is not a service account key, user or workload identity credential (type %q): %w", path, kind.Type, target.ErrAuth)
		}
		creds, err := google.CredentialsFromJSON(ctx, data, scope)
		if err != nil {
			return nil, fmt.Errorf("GOOGLE_APPLICATION_CREDENTIALS file %s is unusable (%s): %w", path, webapi.Shorten(err.Error()), target.ErrAuth)
		}
		t.tokens = creds.TokenSource
	default:
		creds, err := google.FindDefaultCredentials(ctx, scope)
		if err != nil {
			return nil, fmt.Errorf("no Google credentials found; %s: %w", help, target.ErrAuth)
		}
		t.tokens = creds.TokenSource
	}
	return t.tokens, nil
}

// fail names the target and the secret, adds what to do for the status,
// and keeps the webapi error (sentinel, RetryableError) in the chain.
func (t *Target) fail(op string, err error) error {
	var se *webapi.StatusError
	hint := ""
	if errors.As(err, &se) {
		switch se.Status {
		case http.StatusUnauthorized:
			hint = "; the access token was refused: renew the credentials"
		case http.StatusForbidden:
			hint = "; grant the credentials' principal " + t.roles() + " (docs/targets/gcp-secret-manager.md)"
		case http.StatusNotFound:
			hint = "; check project and secret_id"
		}
	}
	return fmt.Errorf("%s: %s %s%s: %w", t.desc(), op, t.resource(), hint, err)
}

func (t *Target) roles() string {
	r := "roles/secretmanager.secretVersionManager on the secret (or secretAccessor plus secretVersionAdder"
	if t.disablePrevious {
		r += ", and versions.list/versions.disable"
	}
	return r + "), and roles/secretmanager.admin on the project if rotor is to create the secret"
}

// document is a JSON payload; unmanaged fields keep their JSON text.
type document map[string]json.RawMessage

func parseDocument(payload []byte) (document, error) {
	doc := document{}
	if err := json.Unmarshal(payload, &doc); err != nil || doc == nil {
		return nil, fmt.Errorf("the latest payload is not a JSON object, and format json only writes fields of one (it does not replace a value it cannot read): %w", target.ErrInvalid)
	}
	return doc, nil
}

func stringField(doc document, k string) (string, bool) {
	var s string
	raw, ok := doc[k]
	if !ok || json.Unmarshal(raw, &s) != nil {
		return "", false
	}
	return s, true
}

func jsonString(v string) json.RawMessage {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
	return bytes.TrimSuffix(b.Bytes(), []byte("\n"))
}

func checksum(data []byte) string {
	return strconv.FormatUint(uint64(crc32.Checksum(data, castagnoli)), 10)
}

func shortVersion(name string) string {
	if i := strings.LastIndex(name, "/versions/"); i >= 0 {
		return "version " + name[i+len("/versions/"):]
	}
	return ""
}

var (
	_ target.Target     = (*Target)(nil)
	_ target.KeyChecker = (*Target)(nil)
	_ target.Checker    = (*Target)(nil)
	_ target.Validator  = (*Target)(nil)
)
