// Package neonfake is a contract fake of the Neon API v2, an httptest
// server backed by real throwaway PostgreSQL clusters (pgcluster): each
// branch is played by a cluster, so a reset really changes a role's
// password and tests log in for real.
//
// It follows shared/reference/neon-api.md, and every request and response
// it serves is checked against shared/reference/neon-openapi.json (see
// Validator); Start fails the test on any difference. In particular:
//
//   - §1 "Role endpoints": create answers 201, reset 200, deleting a role
//     that does not exist 204 with no body; `password` appears only in the
//     create and reset answers; reveal_password answers 412 when the
//     project does not store passwords, 404 for an unknown role.
//   - §1 "Reset semantics": a reset returns the new password and two
//     operations (apply_config running, suspend_compute scheduling). The
//     old password stays valid until the last operation finishes, and then
//     every connection to the compute endpoint is dropped.
//   - §1 "Operations": operations move scheduling → running → finished.
//     The delay is counted in API requests (Config.OpTicks) and, when
//     Config.OpDuration is set, in time on Config.Now's clock;
//     FailOperations makes them end `failed`; Busy starts an operation of
//     someone else's that keeps a branch locked for a while.
//   - §1 "Errors, 423, rate limits": errors are {code, message,
//     request_id}, request_id echoing X-Request-ID; a mutation on a branch
//     with an unfinished operation answers 423 with the message Neon sends;
//     past Config.RateLimit requests per window it answers 429 with
//     Retry-After; a missing or wrong key answers 401. Inject adds any
//     status on demand.
//   - §2: connection_uri requires database_name and role_name, and pooled
//     URIs put `-pooler` after the endpoint id; endpoint hosts look like
//     ep-<words>-<id>.<region>.aws.neon.tech. A branch may have a read_only
//     endpoint (BranchSpec.ReadReplica) with its own host.
//   - Roles are per branch (§1 "Roles are per branch"): a child branch
//     starts with copies of its parent's roles and passwords, and a reset
//     on one branch leaves the others alone.
//   - §6 "What rotor's Neon fake enforces": the endpoint hosts are served
//     by a PostgreSQL-protocol proxy (proxy.go) in front of the branch's
//     cluster, as Neon's proxy fronts its computes: TLS only, SCRAM with
//     channel binding to the fake's certificate (CACertFile), hashed and
//     weak passwords in CREATE/ALTER ROLE refused with the error Neon's
//     compute raises (sqlrules.go), and writes refused through a read_only
//     endpoint. connection_uri, like reveal_password, answers 412 when the
//     project does not store passwords.
//
// The endpoint hosts do not resolve; Route maps them to the address of the
// proxy that serves them, for tests to dial. Tests that set a password
// with a verifier, or reach the cluster as its superuser, dial the cluster
// (Branch.Cluster) directly: that is the control plane's way in, not a
// client's.
package neonfake

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/rotorhq/rotor/internal/pgcluster"
	"github.com/rotorhq/rotor/internal/secret"
)

// Config shapes a fake project. The zero value works.
type Config struct {
	// ProjectID defaults to a random Neon-like id.
	ProjectID string
	// APIKey is the only bearer token accepted; defaults to a random one
	// (read it back from Server.APIKey).
	APIKey string
	// Region is the AWS region in endpoint hosts (default us-east-2).
	Region string
	// StorePasswords false makes reveal_password and connection_uri
	// answer 412, as for a project with store_passwords off.
	DisableStorePasswords bool
	// OpTicks is how many API requests an operation stays in each of
	// scheduling and running (default 1).
	OpTicks int
	// OpDuration > 0 keeps every operation unfinished until that long
	// after it started, on Now's clock, whatever OpTicks says: the
	// branch answers 423 to mutations meanwhile, as a busy Neon branch
	// does (neon-api.md §1 "Errors, 423, rate limits").
	OpDuration time.Duration
	// KeepConnectionsOnReset leaves compute connections alone when a reset
	// applies. Neon drops them; suites that observe their own sessions
	// across resets turn this on.
	KeepConnectionsOnReset bool
	// RateLimit > 0 allows that many requests per RateWindow (default a
	// minute, on Now's clock); more answer 429 with Retry-After.
	RateLimit  int
	RateWindow time.Duration
	Now        func() time.Time
}

// BranchSpec adds a branch.
type BranchSpec struct {
	// Name is the branch name, e.g. main.
	Name string
	// Parent is the name or id of the branch this one was created from;
	// its roles (with their passwords) and databases are copied.
	Parent string
	// Default marks the project's default branch; the first branch added
	// is the default when none says so.
	Default bool
	// Cluster plays the branch's compute.
	Cluster *pgcluster.Cluster
	// ReadReplica adds a read_only endpoint, listed before the read_write
	// one, as a trap for clients that take the first endpoint. It serves
	// the same cluster, read-only.
	ReadReplica bool
}

// Branch is one branch of the fake project.
type Branch struct {
	ID, Name, ParentID string
	Default            bool
	Cluster            *pgcluster.Cluster
	// EndpointID and Host are the read_write endpoint's.
	EndpointID, Host string
	// ReplicaID and ReplicaHost are the read_only endpoint's, when the
	// branch has one.
	ReplicaID, ReplicaHost string
	rw, ro                 *endpointProxy
	createdAt              time.Time
	databases              []*database
	// roles holds what the control plane knows of a role: its stored
	// password and timestamps. Whether a role exists is PostgreSQL's call.
	roles map[string]*roleMeta
}

type database struct {
	id        int64
	name      string
	owner     string
	createdAt time.Time
}

type roleMeta struct {
	password  secret.String
	createdAt time.Time
	updatedAt time.Time
}

// Fault is an answer injected before the next matching request is
// handled.
type Fault struct {
	// Method and PathSuffix select requests ("" matches any).
	Method     string
	PathSuffix string
	Status     int
	Message    string
	RetryAfter time.Duration
	// Count is how many requests get it (default 1).
	Count int
}

// Exchange is one request the fake answered.
type Exchange struct {
	Method, Path, Query string
	Status              int
	RequestID           string
}

// Server is a running fake.
type Server struct {
	// URL is the API base, ending in /api/v2.
	URL       string
	ProjectID string
	APIKey    string

	// CACertFile is the PEM certificate the endpoint hosts present, to
	// verify them with (sslrootcert, sslmode=verify-full); CACertPEM is
	// its content.
	CACertFile string
	CACertPEM  []byte

	t         testing.TB
	http      *httptest.Server
	cfg       Config
	validator *Validator
	ca        *authority
	caDir     string

	poolMu sync.Mutex
	pools  map[*pgcluster.Cluster]*pgxpool.Pool

	mu         sync.Mutex
	branches   []*Branch
	ops        map[string]*operation
	opOrder    []*operation
	tick       int64
	faults     []*Fault
	failOps    []string
	storePW    bool
	window     time.Time
	windowHits int
	log        []Exchange
	violations []string
	nextDBID   int64
	created    []createdThing
}

type createdThing struct {
	cluster  *pgcluster.Cluster
	role, db string
}

// Start runs a fake for the test; it stops, and reports any break of the
// API spec, when the test ends. Without the spec file the test fails in
// CI and runs unchecked elsewhere, with a note.
func Start(t testing.TB, cfg Config) *Server {
	t.Helper()
	v, err := LoadValidator()
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("neonfake: %v", err)
		}
		t.Logf("neonfake: responses are not checked against the Neon API spec: %v", err)
	}
	s := New(cfg)
	s.t, s.validator = t, v
	t.Cleanup(func() {
		s.Close()
		for _, v := range s.Violations() {
			t.Errorf("neonfake: %s", v)
		}
	})
	return s
}

// New runs a fake without a test (Start is the usual way in); the caller
// must Close it.
func New(cfg Config) *Server {
	if cfg.ProjectID == "" {
		cfg.ProjectID = words() + "-" + randomString(lowerDigits, 8)
	}
	if cfg.APIKey == "" {
		cfg.APIKey = "napi_" + randomString(lowerDigits, 32)
	}
	if cfg.Region == "" {
		cfg.Region = "us-east-2"
	}
	if cfg.OpTicks <= 0 {
		cfg.OpTicks = 1
	}
	if cfg.RateWindow <= 0 {
		cfg.RateWindow = time.Minute
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	ca, err := newAuthority(cfg.Region, time.Now())
	if err != nil {
		panic(err)
	}
	caDir, caFile, err := ca.writeCA()
	if err != nil {
		panic(err)
	}
	s := &Server{cfg: cfg, ProjectID: cfg.ProjectID, APIKey: cfg.APIKey, ops: map[string]*operation{}, storePW: !cfg.DisableStorePasswords,
		ca: ca, caDir: caDir, CACertFile: caFile, CACertPEM: ca.certPEM, pools: map[*pgcluster.Cluster]*pgxpool.Pool{}}
	s.http = httptest.NewServer(http.HandlerFunc(s.serve))
	s.URL = s.http.URL + "/api/v2"
	return s
}

// Close stops the server and removes the databases and roles the fake
// created.
func (s *Server) Close() {
	s.http.Close()
	s.mu.Lock()
	created := s.created
	s.created = nil
	branches := s.branches
	s.mu.Unlock()
	for _, b := range branches {
		b.rw.close()
		if b.ro != nil {
			b.ro.close()
		}
	}
	s.poolMu.Lock()
	for c, p := range s.pools {
		p.Close()
		delete(s.pools, c)
	}
	s.poolMu.Unlock()
	if s.caDir != "" {
		_ = os.RemoveAll(s.caDir)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for i := len(created) - 1; i >= 0; i-- {
		c := created[i]
		var err error
		if c.db != "" {
			err = dropDatabase(ctx, c.cluster, c.db)
		} else {
			err = dropRole(ctx, c.cluster, c.role)
		}
		if err != nil && s.t != nil {
			s.t.Logf("neonfake cleanup: %v", err)
		}
	}
}

// Violations returns every break of the API spec seen so far.
func (s *Server) Violations() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.violations...)
}

// Requests returns the exchanges answered so far.
func (s *Server) Requests() []Exchange {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Exchange(nil), s.log...)
}

// Inject queues an answer for the next matching requests.
func (s *Server) Inject(f Fault) {
	if f.Count <= 0 {
		f.Count = 1
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = append(s.faults, &f)
}

// FailOperations makes the next n apply_config operations end `failed`
// with message instead of finishing; their change is not applied.
func (s *Server) FailOperations(n int, message string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for range n {
		s.failOps = append(s.failOps, message)
	}
}

// SetStorePasswords switches the project's store_passwords setting.
func (s *Server) SetStorePasswords(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.storePW = on
}

// Branch returns a branch by name or id.
func (s *Server) Branch(nameOrID string) *Branch {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.branch(nameOrID)
}

func (s *Server) branch(nameOrID string) *Branch {
	for _, b := range s.branches {
		if b.ID == nameOrID || b.Name == nameOrID {
			return b
		}
	}
	return nil
}

// Route maps an endpoint host, direct or pooled, to the address of the
// proxy that serves it: the branch's read_write endpoint, or its read_only
// one. (Neon's pooler, PgBouncer in transaction mode, is not modelled: the
// -pooler host reaches the same proxy.)
func (s *Server) Route(host string) (ip string, port int, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	label, _, _ := strings.Cut(host, ".")
	label = strings.TrimSuffix(label, "-pooler")
	for _, b := range s.branches {
		switch {
		case label == b.EndpointID:
			return "127.0.0.1", b.rw.port, true
		case b.ro != nil && label == b.ReplicaID:
			return "127.0.0.1", b.ro.port, true
		}
	}
	return "", 0, false
}

// AddBranch adds a branch played by spec.Cluster. A child branch gets its
// parent's roles, with the same passwords, and its databases.
func (s *Server) AddBranch(ctx context.Context, spec BranchSpec) (*Branch, error) {
	if spec.Cluster == nil || spec.Name == "" {
		return nil, fmt.Errorf("neonfake: a branch needs a name and a cluster")
	}
	if err := ensureNeonSuperuser(ctx, spec.Cluster); err != nil {
		return nil, err
	}
	s.mu.Lock()
	var parent *Branch
	if spec.Parent != "" {
		if parent = s.branch(spec.Parent); parent == nil {
			s.mu.Unlock()
			return nil, fmt.Errorf("neonfake: no parent branch %q", spec.Parent)
		}
	}
	epID := "ep-" + words() + "-" + randomString(lowerDigits, 8)
	b := &Branch{
		ID: "br-" + words() + "-" + randomString(lowerDigits, 8), Name: spec.Name, Cluster: spec.Cluster,
		Default: spec.Default || len(s.branches) == 0, EndpointID: epID,
		Host:      epID + "." + s.cfg.Region + ".aws.neon.tech",
		createdAt: s.cfg.Now().UTC().Truncate(time.Second), roles: map[string]*roleMeta{},
	}
	if spec.ReadReplica {
		b.ReplicaID = "ep-" + words() + "-" + randomString(lowerDigits, 8)
		b.ReplicaHost = b.ReplicaID + "." + s.cfg.Region + ".aws.neon.tech"
	}
	if b.Default {
		for _, o := range s.branches {
			o.Default = false
		}
	}
	if parent != nil {
		b.ParentID = parent.ID
	}
	s.mu.Unlock()
	var err error
	if b.rw, err = s.startProxy(spec.Cluster, false); err != nil {
		return nil, err
	}
	if spec.ReadReplica {
		if b.ro, err = s.startProxy(spec.Cluster, true); err != nil {
			b.rw.close()
			return nil, err
		}
	}
	ok := false
	defer func() {
		if !ok {
			b.rw.close()
			if b.ro != nil {
				b.ro.close()
			}
		}
	}()

	if parent != nil && parent.Cluster != spec.Cluster {
		// Copied roles are left behind at Close: other fakes' branches on
		// the same cluster may share them, and the cluster is throwaway.
		if _, err := copyRoles(ctx, parent.Cluster, spec.Cluster); err != nil {
			return nil, err
		}
		for _, dbs := range parent.databases {
			made, err := createDatabase(ctx, spec.Cluster, dbs.name, dbs.owner)
			if err != nil {
				return nil, err
			}
			if made {
				s.remember(createdThing{cluster: spec.Cluster, db: dbs.name})
			}
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if parent != nil {
		for name, m := range parent.roles {
			cp := *m
			b.roles[name] = &cp
		}
		for _, d := range parent.databases {
			s.nextDBID++
			b.databases = append(b.databases, &database{id: s.nextDBID, name: d.name, owner: d.owner, createdAt: b.createdAt})
		}
	}
	s.branches = append(s.branches, b)
	ok = true
	return b, nil
}

func (s *Server) remember(c createdThing) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.created = append(s.created, c)
}

// AddDatabase creates a database on a branch, owned by a new login role
// that Neon would have made for it (member of neon_superuser, as Neon's
// owner roles are). It returns the owner's password, which the project
// stores like any password Neon generated.
func (s *Server) AddDatabase(ctx context.Context, branch, name, owner string) (secret.String, error) {
	b := s.Branch(branch)
	if b == nil {
		return secret.String{}, fmt.Errorf("neonfake: no branch %q", branch)
	}
	pw := newPassword()
	made, err := createNeonRole(ctx, b.Cluster, owner, pw)
	if err != nil {
		return secret.String{}, err
	}
	if made {
		s.remember(createdThing{cluster: b.Cluster, role: owner})
	}
	madeDB, err := createDatabase(ctx, b.Cluster, name, owner)
	if err != nil {
		return secret.String{}, err
	}
	if madeDB {
		s.remember(createdThing{cluster: b.Cluster, db: name})
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.cfg.Now().UTC().Truncate(time.Second)
	if made {
		b.roles[owner] = &roleMeta{password: pw, createdAt: now, updatedAt: now}
	}
	s.nextDBID++
	b.databases = append(b.databases, &database{id: s.nextDBID, name: name, owner: owner, createdAt: now})
	if !made {
		return secret.String{}, nil
	}
	return pw, nil
}

// StoredPassword is what reveal_password would answer for role on branch.
func (s *Server) StoredPassword(branch, role string) secret.String {
	s.mu.Lock()
	defer s.mu.Unlock()
	if b := s.branch(branch); b != nil {
		if m := b.roles[role]; m != nil {
			return m.password
		}
	}
	return secret.String{}
}

// serve runs every request through the checks Neon makes before any
// handler: the clock of operations, the key, the rate limit, injected
// faults and the project id. Every answer is logged and checked against
// the spec.
func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	reqBody, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	r.Body = io.NopCloser(bytes.NewReader(reqBody))
	id := r.Header.Get("X-Request-ID")
	if id == "" {
		id = "fake-" + randomString(lowerDigits, 16)
	}
	rec := &recorder{header: http.Header{}}
	rec.header.Set("X-Neon-Ret-Request-Id", id)

	s.mu.Lock()
	s.tick++
	s.advance(r.Context())
	s.handle(rec, r, id)
	path := strings.TrimPrefix(r.URL.EscapedPath(), "/api/v2")
	s.log = append(s.log, Exchange{Method: r.Method, Path: path, Query: r.URL.RawQuery, Status: rec.status, RequestID: id})
	s.mu.Unlock()

	if s.validator != nil {
		if err := s.validator.Check(r.Method, path, r.URL.RawQuery, r.Header, nilIfEmpty(reqBody), rec.status, rec.header, rec.body.Bytes()); err != nil {
			s.mu.Lock()
			s.violations = append(s.violations, err.Error())
			s.mu.Unlock()
		}
	}
	for k, v := range rec.header {
		w.Header()[k] = v
	}
	w.WriteHeader(rec.status)
	_, _ = w.Write(rec.body.Bytes())
}

func nilIfEmpty(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return b
}

// recorder buffers an answer so that it can be checked before it is sent.
type recorder struct {
	status int
	header http.Header
	body   bytes.Buffer
}

func (s *Server) handle(w *recorder, r *http.Request, id string) {
	if r.Header.Get("Authorization") != "Bearer "+s.cfg.APIKey {
		s.fail(w, id, http.StatusUnauthorized, "", "authentication required: the API key is missing, invalid or revoked", 0)
		return
	}
	if s.cfg.RateLimit > 0 {
		now := s.cfg.Now()
		if now.Sub(s.window) >= s.cfg.RateWindow {
			s.window, s.windowHits = now, 0
		}
		s.windowHits++
		if s.windowHits > s.cfg.RateLimit {
			wait := s.window.Add(s.cfg.RateWindow).Sub(now)
			s.fail(w, id, http.StatusTooManyRequests, "", "rate limit exceeded", max(wait, time.Second))
			return
		}
	}
	for i, f := range s.faults {
		if (f.Method == "" || f.Method == r.Method) && strings.HasSuffix(r.URL.Path, f.PathSuffix) {
			if f.Count--; f.Count <= 0 {
				s.faults = append(s.faults[:i], s.faults[i+1:]...)
			}
			msg := f.Message
			if msg == "" {
				msg = http.StatusText(f.Status)
			}
			s.fail(w, id, f.Status, "", msg, f.RetryAfter)
			return
		}
	}
	s.route(w, r, id)
}

// fail writes a GeneralError.
func (s *Server) fail(w *recorder, id string, status int, code, message string, retryAfter time.Duration) {
	if retryAfter > 0 {
		secs := int((retryAfter + time.Second - 1) / time.Second)
		w.header.Set("Retry-After", strconv.Itoa(secs))
	}
	writeJSON(w, status, map[string]any{"code": code, "message": message, "request_id": id})
}

func writeJSON(w *recorder, status int, v any) {
	w.status = status
	w.header.Set("Content-Type", "application/json")
	_ = json.NewEncoder(&w.body).Encode(v)
}

const (
	lowerDigits  = "abcdefghijklmnopqrstuvwxyz0123456789"
	alphanumeric = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
)

func randomString(alphabet string, n int) string {
	b := make([]byte, n)
	for i := range b {
		k, err := rand.Int(rand.Reader, big.NewInt(int64(len(alphabet))))
		if err != nil {
			panic(err)
		}
		b[i] = alphabet[k.Int64()]
	}
	return string(b)
}

var (
	adjectives = []string{"cool", "late", "aged", "round", "small", "shiny", "noisy", "raspy", "sweet", "steep"}
	nouns      = []string{"darkness", "rice", "math", "sound", "pine", "wind", "sunset", "hill", "breeze", "bush"}
)

func words() string {
	a, _ := rand.Int(rand.Reader, big.NewInt(int64(len(adjectives))))
	n, _ := rand.Int(rand.Reader, big.NewInt(int64(len(nouns))))
	return adjectives[a.Int64()] + "-" + nouns[n.Int64()]
}

// newPassword mimics Neon's current format: npg_ and 12 alphanumerics.
func newPassword() secret.String {
	return secret.New("npg_" + randomString(alphanumeric, 12))
}
