// Package github is the GitHub Actions target: it keeps repository,
// environment or organization secrets up to date (targets-api.md §5).
//
// GitHub takes secrets only encrypted: Put fetches the destination's
// public key, seals each value with a libsodium sealed box
// (nacl/box.SealAnonymous) and PUTs it, which creates or replaces the
// secret. Values are write-only, so Check can only report each secret's
// updated_at. There is nothing to reload, since every workflow run reads
// the current secrets, unless dispatch: names a workflow to start.
//
// Requests go through webapi, rotor's small JSON client, rather than
// go-github: the handful of calls below did not justify linking a client
// that every rotor start paid for (docs/benchmarks.md, seventh round).
package github

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/nacl/box"

	"github.com/rotorhq/rotor/internal/connstr"
	"github.com/rotorhq/rotor/internal/secret"
	"github.com/rotorhq/rotor/internal/target"
	"github.com/rotorhq/rotor/internal/target/webapi"
)

// Type is the registry name of this target.
const Type = "github-actions"

// DefaultAPIURL is GitHub's REST API.
const DefaultAPIURL = "https://api.github.com/"

// maxValueBytes is GitHub's limit on one secret.
const maxValueBytes = 48 * 1024

// Options are the target's own config keys.
type Options struct {
	// Token is a GitHub token, given as ${GITHUB_TOKEN}.
	Token string `yaml:"token"`
	// Repo is owner/name for repository and environment secrets.
	Repo string `yaml:"repo"`
	// Environment makes the secrets environment secrets of Repo.
	Environment string `yaml:"environment"`
	// Org makes the secrets organization secrets; it excludes Repo.
	Org string `yaml:"org"`
	// Visibility of organization secrets: all, private or selected.
	Visibility string `yaml:"visibility"`
	// SelectedRepositories are the names of the organization's
	// repositories that may use the secrets (visibility: selected).
	SelectedRepositories []string `yaml:"selected_repositories"`
	// Dispatch starts a workflow after every target was written.
	Dispatch *DispatchOptions `yaml:"dispatch"`
	// ReloadPoll is how often Reload asks GitHub about the dispatched
	// run, e.g. "10s" (DefaultReloadPoll). Only with dispatch.
	ReloadPoll string `yaml:"reload_poll"`
	// APIURL is the REST API root (GitHub Enterprise:
	// https://HOST/api/v3/); tests point it at a fake.
	APIURL string `yaml:"api_url"`
}

// DispatchOptions name the workflow Reload starts (workflow_dispatch).
type DispatchOptions struct {
	// Workflow is the workflow file name (deploy.yml) or its numeric id.
	Workflow string `yaml:"workflow"`
	// Ref is the branch or tag to run it on.
	Ref string `yaml:"ref"`
	// Repo is owner/name of the workflow's repository; default: repo.
	Repo string `yaml:"repo"`
}

type scope int

const (
	scopeRepo scope = iota
	scopeEnv
	scopeOrg
)

// Target writes Actions secrets, and starts a workflow run on Reload when
// dispatch: is set.
type Target struct {
	name, desc  string
	token       secret.String
	scope       scope
	owner, repo string
	env         string
	org         string
	visibility  string
	selected    []string
	client      *webapi.Client
	rand        io.Reader
	now         func() time.Time
	dispatch    *dispatch // nil: no Reload
	// pollEvery is the pause between two looks at the dispatched run.
	pollEvery time.Duration
	// sleep waits between polls; tests replace it.
	sleep func(ctx context.Context, d time.Duration) error

	mu          sync.Mutex
	selectedIDs []int64

	// runMu guards run and noRunDetails.
	runMu sync.Mutex
	// run is the last rotation's dispatch, so that Reload called again
	// for it waits for that run instead of starting another.
	run *runState
	// noRunDetails: this GitHub refused return_run_details (Enterprise
	// Server before 3.21), so runs are found by listing.
	noRunDetails bool
}

// dispatch is the workflow Reload starts.
type dispatch struct {
	wfOwner, wfRepo string
	workflow        string
	ref             string
}

// New builds a GitHub Actions target from its options. It does no I/O.
func New(p target.Params) (target.Target, error) {
	return NewWithRand(p, rand.Reader)
}

// NewWithRand is New with the randomness the sealed boxes are made from;
// tests pass a fixed reader to get the same ciphertext every time. A nil
// reader means crypto/rand.
func NewWithRand(p target.Params, random io.Reader) (target.Target, error) {
	desc := p.Describe(Type)
	opts := Options{APIURL: DefaultAPIURL}
	if err := p.DecodeOptions(Type, &opts); err != nil {
		return nil, err
	}
	t := &Target{name: p.Name, desc: desc, rand: random, now: p.Clock(), pollEvery: DefaultReloadPoll, sleep: target.Sleep}
	if opts.Token == "" {
		return nil, fmt.Errorf("%s has no token; add token: ${GITHUB_TOKEN} and export a fine-grained token with Secrets: read and write: %w", desc, target.ErrAuth)
	}
	t.token = secret.New(opts.Token)
	if err := t.scopeFrom(opts); err != nil {
		return nil, err
	}
	u, err := url.Parse(opts.APIURL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("%s: api_url %q is not an http(s) URL; leave it out to use %s: %w", desc, opts.APIURL, DefaultAPIURL, target.ErrInvalid)
	}
	if !strings.HasSuffix(u.Path, "/") {
		u.Path += "/"
	}
	t.client = newClient(desc, u.String(), t.token, p.HTTPClient, t.now)

	if opts.Dispatch == nil {
		if opts.ReloadPoll != "" {
			return nil, fmt.Errorf("%s: reload_poll is how often Reload looks at a dispatched workflow run, but there is no dispatch; add dispatch: {workflow: deploy.yml, ref: main} or drop reload_poll: %w", desc, target.ErrInvalid)
		}
		return t, nil
	}
	if opts.ReloadPoll != "" {
		d, err := time.ParseDuration(opts.ReloadPoll)
		if err != nil || d <= 0 {
			return nil, fmt.Errorf("%s: reload_poll %q is not a positive duration like 10s or 1m: %w", desc, opts.ReloadPoll, target.ErrInvalid)
		}
		t.pollEvery = d
	}
	d := &dispatch{workflow: opts.Dispatch.Workflow, ref: opts.Dispatch.Ref}
	if d.workflow == "" || d.ref == "" {
		return nil, fmt.Errorf("%s: dispatch needs workflow and ref, e.g. dispatch: {workflow: deploy.yml, ref: main}: %w", desc, target.ErrInvalid)
	}
	wfRepo := cmp.Or(opts.Dispatch.Repo, opts.Repo)
	if wfRepo == "" {
		return nil, fmt.Errorf("%s: dispatch with org secrets needs dispatch.repo: owner/name, the repository the workflow lives in: %w", desc, target.ErrInvalid)
	}
	if d.wfOwner, d.wfRepo, err = splitRepo(wfRepo); err != nil {
		return nil, fmt.Errorf("%s: dispatch.repo %w", desc, err)
	}
	t.dispatch = d
	return t, nil
}

// Enabled implements target.Switchable: only a target with dispatch: has
// a reload.
func (t *Target) Enabled(c target.Capability) bool {
	return c != target.CanReload || t.dispatch != nil
}

func (t *Target) scopeFrom(opts Options) error {
	switch {
	case opts.Org != "" && opts.Repo != "":
		return fmt.Errorf("%s sets both org and repo; use org for organization secrets or repo (with environment) for repository secrets: %w", t.desc, target.ErrInvalid)
	case opts.Org == "" && opts.Repo == "":
		return fmt.Errorf("%s needs repo: owner/name (repository or environment secrets) or org: name (organization secrets): %w", t.desc, target.ErrInvalid)
	case opts.Org != "":
		if opts.Environment != "" {
			return fmt.Errorf("%s: environment is for repository secrets; with org drop it, or use repo: owner/name: %w", t.desc, target.ErrInvalid)
		}
		t.scope, t.org = scopeOrg, opts.Org
		switch opts.Visibility {
		case "":
			// Defaulting would silently change the visibility of an
			// existing secret, and with it which repositories see it.
			return fmt.Errorf("%s: organization secrets need visibility: private (private and internal repositories), all, or selected (with selected_repositories): %w", t.desc, target.ErrInvalid)
		case "all", "private":
			if len(opts.SelectedRepositories) > 0 {
				return fmt.Errorf("%s: selected_repositories only applies with visibility: selected: %w", t.desc, target.ErrInvalid)
			}
		case "selected":
			if len(opts.SelectedRepositories) == 0 {
				return fmt.Errorf("%s: visibility: selected needs selected_repositories: [name, …] (repositories of %s): %w", t.desc, opts.Org, target.ErrInvalid)
			}
			for _, r := range opts.SelectedRepositories {
				if r == "" || strings.Contains(r, "/") {
					return fmt.Errorf("%s: selected_repositories entry %q must be a repository name in %s, without the owner: %w", t.desc, r, opts.Org, target.ErrInvalid)
				}
			}
		default:
			return fmt.Errorf("%s: visibility %q is not all, private or selected: %w", t.desc, opts.Visibility, target.ErrInvalid)
		}
		t.visibility, t.selected = opts.Visibility, slices.Clone(opts.SelectedRepositories)
		return nil
	}
	if opts.Visibility != "" || len(opts.SelectedRepositories) > 0 {
		return fmt.Errorf("%s: visibility and selected_repositories are for organization secrets; with repo drop them: %w", t.desc, target.ErrInvalid)
	}
	owner, repo, err := splitRepo(opts.Repo)
	if err != nil {
		return fmt.Errorf("%s: repo %w", t.desc, err)
	}
	t.owner, t.repo, t.scope = owner, repo, scopeRepo
	if opts.Environment != "" {
		t.scope, t.env = scopeEnv, opts.Environment
	}
	return nil
}

func splitRepo(s string) (owner, repo string, err error) {
	owner, repo, ok := strings.Cut(s, "/")
	if !ok || owner == "" || repo == "" || strings.Contains(repo, "/") {
		return "", "", fmt.Errorf("%q is not owner/name, e.g. acme/api: %w", s, target.ErrInvalid)
	}
	return owner, repo, nil
}

// Info implements target.Target.
// CheckKeys implements target.KeyChecker: GitHub's secret-name rule.
func (t *Target) CheckKeys(keys []string) error {
	for _, k := range keys {
		if !secretName.MatchString(k) || strings.HasPrefix(strings.ToUpper(k), "GITHUB_") {
			return fmt.Errorf("%q cannot be a GitHub secret name: use letters, digits and '_', not starting with a digit or GITHUB_; rename the key under values: %w", k, target.ErrInvalid)
		}
	}
	return nil
}

// CheckValue implements target.ValueChecker: GitHub's size limit.
func (t *Target) CheckValue(key string, value secret.String) error {
	if n := len(value.Reveal()); n > maxValueBytes {
		return fmt.Errorf("the value for %s is %d bytes; GitHub secrets hold at most 48 KB: %w", key, n, target.ErrInvalid)
	}
	return nil
}

func (t *Target) Info() target.Info {
	var dest string
	switch t.scope {
	case scopeRepo:
		dest = fmt.Sprintf("github repository %s/%s actions secrets", t.owner, t.repo)
	case scopeEnv:
		dest = fmt.Sprintf("github repository %s/%s environment %s secrets", t.owner, t.repo, t.env)
	case scopeOrg:
		dest = fmt.Sprintf("github organization %s actions secrets (visibility %s)", t.org, t.visibility)
	}
	return target.Info{Type: Type, Name: t.name, Destination: dest, Idempotent: true}
}

// secretName is what GitHub accepts as a secret name.
var secretName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// Put implements target.Target: it seals every value with the
// destination's public key and PUTs it (create or replace). GitHub cannot
// say whether a secret already held the value, so Changed is always true.
func (t *Target) Put(ctx context.Context, req target.PutRequest) (target.PutResponse, error) {
	keys := req.OrderedKeys()
	secrets := t.secrets(req.Values)
	if err := t.CheckKeys(keys); err != nil {
		return target.PutResponse{}, fmt.Errorf("%s: %w", t.desc, err)
	}
	for _, k := range keys {
		if err := t.CheckValue(k, req.Values[k]); err != nil {
			return target.PutResponse{}, fmt.Errorf("%s: %w", t.desc, err)
		}
	}
	keyID, pub, err := t.publicKey(ctx)
	if err != nil {
		return target.PutResponse{}, err
	}
	var selected []int64
	if t.scope == scopeOrg && t.visibility == "selected" {
		if selected, err = t.selectedRepoIDs(ctx); err != nil {
			return target.PutResponse{}, err
		}
	}
	for _, k := range keys {
		sealed, err := box.SealAnonymous(nil, []byte(req.Values[k].Reveal()), pub, t.rand)
		if err != nil {
			return target.PutResponse{}, fmt.Errorf("%s: cannot encrypt %s for GitHub: %w", t.desc, k, err)
		}
		es := encryptedSecret{KeyID: keyID, EncryptedValue: base64.StdEncoding.EncodeToString(sealed)}
		if t.scope == scopeOrg {
			es.Visibility, es.SelectedRepositoryIDs = t.visibility, selected
		}
		// PUT creates or replaces (201 or 204), so it may be repeated.
		if _, err := t.call(ctx, http.MethodPut, t.secretsPath()+"/"+url.PathEscape(k), es, nil, "write secret "+k, true, secrets); err != nil {
			return target.PutResponse{}, err
		}
	}
	return target.PutResponse{Changed: true}, nil
}

// publicKey fetches the key values must be sealed with. It is fetched on
// every Put: GitHub may rotate it, and a stale key_id is refused.
func (t *Target) publicKey(ctx context.Context) (string, *[32]byte, error) {
	var pk publicKey
	if err := t.get(ctx, t.secretsPath()+"/public-key", &pk, "get the public key"); err != nil {
		return "", nil, err
	}
	raw, err := base64.StdEncoding.DecodeString(pk.Key)
	if err != nil || len(raw) != 32 || pk.KeyID == "" {
		return "", nil, fmt.Errorf("%s: GitHub's public key is not a base64 32-byte Curve25519 key with a key_id; check api_url: %w", t.desc, target.ErrInvalid)
	}
	var key [32]byte
	copy(key[:], raw)
	return pk.KeyID, &key, nil
}

// selectedRepoIDs resolves selected_repositories to ids, once.
func (t *Target) selectedRepoIDs(ctx context.Context) ([]int64, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.selectedIDs != nil {
		return t.selectedIDs, nil
	}
	ids := make([]int64, 0, len(t.selected))
	for _, name := range t.selected {
		var r repository
		if err := t.get(ctx, repoPath(t.org, name), &r, "look up selected repository "+t.org+"/"+name); err != nil {
			return nil, err
		}
		if r.ID == 0 {
			return nil, fmt.Errorf("%s: GitHub returned no id for %s/%s; check api_url: %w", t.desc, t.org, name, target.ErrInvalid)
		}
		ids = append(ids, r.ID)
	}
	t.selectedIDs = ids
	return ids, nil
}

// Check implements target.Checker. GitHub never returns secret values:
// every existing secret is Unreadable, with its updated_at in Notes; a
// missing one is absent.
func (t *Target) Check(ctx context.Context, req target.CheckRequest) (target.CheckResponse, error) {
	resp := target.CheckResponse{Values: map[string]secret.String{}}
	for _, k := range req.Keys {
		if !secretName.MatchString(k) {
			continue // no such secret can exist
		}
		var s secretMeta
		err := t.get(ctx, t.secretsPath()+"/"+url.PathEscape(k), &s, "read secret "+k)
		if errors.Is(err, target.ErrNotFound) {
			continue
		}
		if err != nil {
			return target.CheckResponse{}, err
		}
		resp.Unreadable = append(resp.Unreadable, k)
		resp.Notes = append(resp.Notes, fmt.Sprintf("%s: GitHub keeps secret values write-only; updated_at %s", k, s.UpdatedAt.UTC().Format(time.RFC3339)))
	}
	return resp, nil
}

// validateSecrets checks that the destination exists and the token can
// read its public key (which needs the secrets permission). It writes
// nothing.
func (t *Target) validateSecrets(ctx context.Context) (target.ValidateResponse, error) {
	var resp target.ValidateResponse
	if _, _, err := t.publicKey(ctx); err != nil {
		return resp, err
	}
	if t.scope == scopeOrg && t.visibility == "selected" {
		if _, err := t.selectedRepoIDs(ctx); err != nil {
			return resp, err
		}
	}
	resp.Notes = append(resp.Notes, "the public key is readable; write access cannot be tested without writing (the token needs "+t.permission()+")")
	return resp, nil
}

// Validate implements target.Validator: the secrets can be written (as
// far as that can be told without writing) and, with dispatch:, the
// workflow exists and is enabled.
func (t *Target) Validate(ctx context.Context, _ target.ValidateRequest) (target.ValidateResponse, error) {
	resp, err := t.validateSecrets(ctx)
	if err != nil || t.dispatch == nil {
		return resp, err
	}
	d := t.dispatch
	var wf workflow
	if err := t.get(ctx, t.workflowPath(), &wf, "look up workflow "+d.workflow+" in "+d.wfOwner+"/"+d.wfRepo); err != nil {
		return resp, err
	}
	if state := wf.State; state != "" && state != "active" {
		return resp, fmt.Errorf("%s: workflow %s in %s/%s is %s, so it cannot be dispatched; enable it in the Actions tab: %w", t.desc, d.workflow, d.wfOwner, d.wfRepo, state, target.ErrInvalid)
	}
	resp.Notes = append(resp.Notes, fmt.Sprintf("Reload dispatches %s on %s in %s/%s (it needs `on: workflow_dispatch` and a token with Actions: read and write)", d.workflow, d.ref, d.wfOwner, d.wfRepo))
	return resp, nil
}

// secrets lists what must never appear in an error: each value, the
// password inside a connection-string value, and the token.
func (t *Target) secrets(values map[string]secret.String) []secret.String {
	s := make([]secret.String, 0, 2*len(values)+1)
	for _, v := range values {
		s = append(s, v)
		if c, err := connstr.Parse(v.Reveal()); err == nil && !c.Password.IsZero() {
			s = append(s, c.Password)
		}
	}
	return append(s, t.token)
}

var (
	_ target.Target       = (*Target)(nil)
	_ target.KeyChecker   = (*Target)(nil)
	_ target.ValueChecker = (*Target)(nil)
	_ target.Checker      = (*Target)(nil)
	_ target.Validator    = (*Target)(nil)
	_ target.Reloader     = (*Target)(nil)
	_ target.Switchable   = (*Target)(nil)
)
