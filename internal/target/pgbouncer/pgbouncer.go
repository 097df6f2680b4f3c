// Package pgbouncer is the PgBouncer auth_file target (targets-api.md §11
// "PgBouncer auth_file"): it keeps one role's line of userlist.txt holding
// the SCRAM verifier the database server holds for that role, and tells
// PgBouncer to read the file again with RELOAD on its admin console.
//
// Why the verifier and not the password: PgBouncer can pass a client's
// SCRAM login through to the server only when "the SCRAM secrets are
// identical in PgBouncer and the PostgreSQL server (same salt and
// iterations, not merely the same password)". rotor computes the verifier
// once (secret.SCRAMVerifier), sets it with ALTER ROLE and hands the same
// string to this target through the gatekeeper protocol
// (target.Gatekeeper.PublishVerifier).
//
// The file is parsed exactly as PgBouncer's loader parses it (see
// ParseAuthFile); only the rotated role's entry changes, every other byte
// stays, so with the dual strategy both roles keep an entry: the old
// role's line keeps working until the old role is retired on the server.
// Writes are atomic and keep the file's mode and owner (atomicfile).
//
// The target's values (DATABASE_URL: "{{.PooledURL}}"…) are not written
// anywhere: the auth_file holds only the role and its verifier. They are
// still fingerprinted in rotor's journal like every target's. Being a
// gatekeeper, the target is never sent Put: the engine publishes it with
// PublishVerifier and RestoreVerifier.
package pgbouncer

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"sync"

	"github.com/rotorhq/rotor/internal/atomicfile"
	"github.com/rotorhq/rotor/internal/secret"
	"github.com/rotorhq/rotor/internal/target"
)

// Type is the registry name of this target.
const Type = "pgbouncer"

// ErrNoVerifier: the database provider did not hand over the SCRAM
// verifier it set, so there is nothing PgBouncer could use.
var ErrNoVerifier = errors.New("no SCRAM verifier to write")

// ErrMismatch: the auth_file does not hold what Put wrote.
var ErrMismatch = errors.New("auth_file does not hold the verifier set on the server")

// Options are the target's own config keys.
type Options struct {
	// AuthFile is PgBouncer's auth_file (userlist.txt); relative paths are
	// resolved against the config file's directory. It must exist.
	AuthFile string `yaml:"auth_file"`
	// AdminURL reaches the admin console, e.g.
	// postgresql://pgbouncer_admin:${PW}@127.0.0.1:6432/pgbouncer. Written
	// as ${ENV} (the config layer refuses a typed-in password). Required
	// when Reload is true.
	AdminURL string `yaml:"admin_url"`
	// Reload sends RELOAD after each write. Default true.
	Reload bool `yaml:"reload"`
}

// Target keeps one role's entry of a PgBouncer auth_file.
type Target struct {
	name  string
	desc  string
	path  string
	admin *admin // nil when reload is off

	mu sync.Mutex
	// written is what the last successful Put of this process wrote, for
	// Check: the plaintext values cannot be read back from a verifier, but
	// the role's entry can be compared with what the server was given.
	written *entryState
	// loaded is the entry PgBouncer is known to have read: RELOAD
	// succeeded after it was written. See Put for why this matters.
	loaded *entryState
}

type entryState struct {
	role     string
	verifier secret.String
}

func (e *entryState) same(o *entryState) bool {
	return e != nil && o != nil && e.role == o.role && e.verifier.Equal(o.verifier)
}

// New builds a pgbouncer target from its options. It does no I/O.
func New(p target.Params) (target.Target, error) {
	desc := p.Describe(Type)
	opts := Options{Reload: true}
	if err := p.DecodeOptions(Type, &opts); err != nil {
		return nil, err
	}
	if opts.AuthFile == "" {
		return nil, fmt.Errorf("%s has no auth_file; add auth_file: /etc/pgbouncer/userlist.txt (the file PgBouncer's auth_file setting names): %w", desc, target.ErrInvalid)
	}
	path, err := p.ResolvePath(opts.AuthFile)
	if err != nil {
		return nil, fmt.Errorf("%s: auth_file %w", desc, err)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("%s: cannot make %s absolute; use an absolute path: %w", desc, path, err)
	}
	t := &Target{name: p.Name, desc: desc, path: abs}
	switch {
	case opts.Reload && opts.AdminURL == "":
		return nil, fmt.Errorf("%s has no admin_url, so it cannot RELOAD PgBouncer; add admin_url: ${PGBOUNCER_ADMIN_URL} (postgresql://<admin_users user>:<password>@host:6432/pgbouncer), or set reload: false and reload PgBouncer yourself: %w", desc, target.ErrInvalid)
	case opts.Reload:
		if t.admin, err = newAdmin(desc, secret.New(opts.AdminURL)); err != nil {
			return nil, err
		}
	}
	return t, nil
}

// Info implements target.Target. Rewriting the same entry and reloading
// again is harmless, so publishing may be retried.
func (t *Target) Info() target.Info {
	return target.Info{Type: Type, Name: t.name, Destination: t.path, Idempotent: true}
}

// Put implements target.Target by refusing: the auth_file has no room for
// values, and what it needs — the role's verifier — is not in a
// PutRequest. rotor publishes this target with PublishVerifier.
func (t *Target) Put(ctx context.Context, req target.PutRequest) (target.PutResponse, error) {
	return target.PutResponse{}, fmt.Errorf("%s is a gatekeeper: its entry for role %s is written with the role's SCRAM verifier (PublishVerifier), never with Put; this is a bug in the caller: %w", t.desc, req.Role, target.ErrInvalid)
}

// PublishVerifier implements target.Gatekeeper: the entry of req.Role
// holds req.Verifier afterwards, and — with reload on — PgBouncer has read
// the file again.
//
// The RELOAD is part of publishing rather than left to Reload because
// PgBouncer is on the consumers' path: it must accept the new password
// before any consumer that reads another target can present it.
//
// RELOAD is sent once per new entry and no more: PgBouncer (1.18 at
// least) closes the pools' server connections on every RELOAD and aborts
// server logins in progress, failing the clients waiting for them with
// "server login has been failing". So an unchanged file is reloaded only
// when this process has not seen PgBouncer load it (a previous attempt,
// or process, may have written it and died before reloading).
func (t *Target) PublishVerifier(ctx context.Context, req target.PublishVerifierRequest) (target.PublishVerifierResponse, error) {
	changed, err := t.setEntry(ctx, req.Role, req.Verifier)
	return target.PublishVerifierResponse{Changed: changed}, err
}

// RestoreVerifier implements target.Gatekeeper the way PublishVerifier
// does: PgBouncer needs the very verifier the server holds, whichever
// rotation made it.
func (t *Target) RestoreVerifier(ctx context.Context, req target.RestoreVerifierRequest) (target.RestoreVerifierResponse, error) {
	changed, err := t.setEntry(ctx, req.Role, req.Verifier)
	return target.RestoreVerifierResponse{Changed: changed}, err
}

func (t *Target) setEntry(ctx context.Context, role string, verifier secret.String) (changed bool, err error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	if role == "" {
		return false, fmt.Errorf("%s: the request names no role; this is a bug in the caller: %w", t.desc, target.ErrInvalid)
	}
	if verifier.IsZero() {
		return false, fmt.Errorf("%s: PgBouncer can pass a SCRAM login through only with the very verifier the server holds for role %s, and the database provider did not hand one over (the neon provider in API mode has Neon set the password); use a provider that sets the password over SQL (type: postgres, or neon in SQL mode), or have PgBouncer fetch verifiers with auth_query instead of this target: %w",
			t.desc, role, ErrNoVerifier)
	}
	if _, err := secret.ParseSCRAMVerifier(verifier); err != nil {
		return false, fmt.Errorf("%s: the verifier for role %s is not a SCRAM-SHA-256 verifier (%v); this is a bug in the database provider: %w", t.desc, role, err, target.ErrInvalid)
	}

	entry := &entryState{role: role, verifier: verifier}
	changed, err = t.write(role, verifier)
	if err != nil {
		return changed, err
	}
	t.mu.Lock()
	t.written = entry
	needReload := t.admin != nil && (changed || !entry.same(t.loaded))
	t.mu.Unlock()
	if needReload {
		if err := t.reload(ctx, entry); err != nil {
			return changed, fmt.Errorf("%s: %s holds the new entry for role %s, but PgBouncer was not told to read it: %w", t.desc, t.path, role, err)
		}
	}
	return changed, nil
}

func (t *Target) reload(ctx context.Context, entry *entryState) error {
	role := "" // a resumed rotation's Reload knows no entry: just RELOAD
	if entry != nil {
		role = entry.role
	}
	if err := t.reloadBetweenLogins(ctx, role); err != nil {
		return err
	}
	t.mu.Lock()
	t.loaded = entry
	t.mu.Unlock()
	return nil
}

func (t *Target) write(role string, verifier secret.String) (bool, error) {
	// Two credentials' targets may share the file (blue/green of two
	// apps); their read-edit-write cycles must not interleave.
	unlock := atomicfile.Lock(t.path)
	defer unlock()
	content, err := os.ReadFile(t.path)
	if err != nil {
		return false, t.fileError("read", err)
	}
	out, err := SetEntry(content, role, verifier.Reveal())
	if err != nil {
		return false, fmt.Errorf("%s: cannot update role %s in %s: %w", t.desc, role, t.path, err)
	}
	// 0600 only matters for a file that vanished meanwhile; an existing
	// one keeps its mode and owner (PgBouncer's user must keep reading it).
	changed, err := atomicfile.WriteFile(t.path, out, 0o600)
	if err != nil {
		return changed, fmt.Errorf("%s: %w", t.desc, err)
	}
	return changed, nil
}

// Reload implements target.Reloader. When PublishVerifier already had
// PgBouncer read the entry it wrote, there is nothing left to do (another
// RELOAD would only drop server connections again, see PublishVerifier).
// Otherwise — a resumed rotation whose publishing was skipped — it sends
// RELOAD, so PgBouncer ends up reading the current file either way. The
// reload has finished when the console answered RELOAD: PgBouncer reads
// the file before it replies. When ctx ends first, the error wraps
// ctx.Err().
func (t *Target) Reload(ctx context.Context, _ target.ReloadRequest) (target.ReloadResponse, error) {
	if t.admin == nil {
		return target.ReloadResponse{Detail: "reload: false; PgBouncer reads " + t.path + " at its next RELOAD or SIGHUP"}, nil
	}
	t.mu.Lock()
	written, done := t.written, t.written.same(t.loaded)
	t.mu.Unlock()
	if done {
		return target.ReloadResponse{Detail: "PgBouncer at " + t.admin.where + " reloaded when the entry was written"}, nil
	}
	if err := t.reload(ctx, written); err != nil {
		if ctx.Err() != nil {
			return target.ReloadResponse{}, fmt.Errorf("%s: the PgBouncer admin console at %s did not confirm RELOAD before the deadline, so PgBouncer may still hold the auth_file it read before; once PgBouncer answers again, `rotor resume` sends RELOAD: %w", t.desc, t.admin.where, err)
		}
		return target.ReloadResponse{}, err
	}
	return target.ReloadResponse{Detail: "RELOAD applied by the PgBouncer admin console at " + t.admin.where}, nil
}

// Check implements target.Checker. The values cannot be read back (the
// file holds a verifier, not a connection string), so every key is
// Unreadable; what can be checked is that the role's entry still holds the
// verifier last published — the one set on the server. A different or missing
// entry fails with ErrMismatch.
func (t *Target) Check(ctx context.Context, req target.CheckRequest) (target.CheckResponse, error) {
	if err := ctx.Err(); err != nil {
		return target.CheckResponse{}, err
	}
	resp := target.CheckResponse{Values: map[string]secret.String{}, Unreadable: req.Keys}
	content, err := os.ReadFile(t.path)
	if err != nil {
		return target.CheckResponse{}, t.fileError("read", err)
	}
	entries, err := ParseAuthFile(content)
	if err != nil {
		return target.CheckResponse{}, fmt.Errorf("%s: %s: %w", t.desc, t.path, err)
	}
	t.mu.Lock()
	w := t.written
	t.mu.Unlock()
	if w == nil {
		resp.Notes = append(resp.Notes, fmt.Sprintf("%s lists %d user(s); no entry was written by this process, so none was compared with the server's verifier", t.path, len(entries)))
		return resp, nil
	}
	for _, e := range entries {
		if e.User != w.role {
			continue
		}
		if !e.Secret.Equal(w.verifier) {
			return target.CheckResponse{}, fmt.Errorf("%s: line %d of %s holds a different secret for role %s than the verifier set on the server, so PgBouncer would refuse the new password; something else rewrote the file, run `rotor resume`: %w", t.desc, e.Line, t.path, w.role, ErrMismatch)
		}
		resp.Notes = append(resp.Notes, fmt.Sprintf("%s line %d holds the verifier set on the server for role %s", t.path, e.Line, w.role))
		return resp, nil
	}
	return target.CheckResponse{}, fmt.Errorf("%s: %s has no entry for role %s any more; something else rewrote the file, run `rotor resume`: %w", t.desc, t.path, w.role, ErrMismatch)
}

// Validate implements target.Validator without writing: the auth_file
// exists, PgBouncer could read all of it, rotor could replace it, and the
// admin console accepts admin_url. It notes when PgBouncer's own auth_file
// setting names another path or its auth_type cannot use SCRAM verifiers.
func (t *Target) Validate(ctx context.Context, _ target.ValidateRequest) (target.ValidateResponse, error) {
	if err := ctx.Err(); err != nil {
		return target.ValidateResponse{}, err
	}
	var resp target.ValidateResponse
	if err := atomicfile.CheckWritable(t.path); err != nil {
		return resp, fmt.Errorf("%s: %w", t.desc, err)
	}
	content, err := os.ReadFile(t.path)
	if err != nil {
		return resp, t.fileError("read", err)
	}
	entries, err := ParseAuthFile(content)
	if err != nil {
		return resp, fmt.Errorf("%s: %s: %w", t.desc, t.path, err)
	}
	resp.Notes = append(resp.Notes, fmt.Sprintf("%s lists %d user(s)", t.path, len(entries)))
	if t.admin == nil {
		resp.Notes = append(resp.Notes, "reload: false; PgBouncer must be reloaded by other means after each rotation")
		return resp, nil
	}
	cfg, err := t.admin.config(ctx)
	if err != nil {
		return resp, err
	}
	if af := cfg["auth_file"]; af != "" && filepath.IsAbs(af) && filepath.Clean(af) != t.path {
		resp.Notes = append(resp.Notes, fmt.Sprintf("PgBouncer's auth_file is %s but this target writes %s; fine if that is the same file mounted elsewhere, otherwise RELOAD will not pick the new entry up", af, t.path))
	}
	if at := cfg["auth_type"]; at != "" && at != "scram-sha-256" && at != "hba" {
		resp.Notes = append(resp.Notes, fmt.Sprintf("PgBouncer's auth_type is %s; SCRAM pass-through to the server needs auth_type = scram-sha-256 (or hba with scram-sha-256 lines)", at))
	}
	if v, err := strconv.Atoi(cfg["server_login_retry"]); err == nil && v > maxLoginRetry {
		resp.Notes = append(resp.Notes, fmt.Sprintf("PgBouncer's server_login_retry is %d s: should a server login fail or be aborted during a rotation, PgBouncer refuses every client of that pool for that long; set it to %d (see docs/targets/pgbouncer.md)", v, maxLoginRetry))
	}
	return resp, nil
}

// maxLoginRetry is the server_login_retry (seconds) above which validate
// advises lowering it.
const maxLoginRetry = 1

func (t *Target) fileError(op string, err error) error {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("%s: %s does not exist; point auth_file at the file PgBouncer's auth_file setting names (create it, owned by PgBouncer's user, if PgBouncer has none yet): %w", t.desc, t.path, target.ErrNotFound)
	case errors.Is(err, fs.ErrPermission):
		return fmt.Errorf("%s: cannot %s %s: permission denied; run rotor as PgBouncer's user or give rotor's user access: %w", t.desc, op, t.path, err)
	}
	return fmt.Errorf("%s: cannot %s %s; check the path: %w", t.desc, op, t.path, err)
}

var (
	_ target.Target    = (*Target)(nil)
	_ target.Reloader  = (*Target)(nil)
	_ target.Checker   = (*Target)(nil)
	_ target.Validator = (*Target)(nil)
	// The gatekeeper protocol is in clients.go.
	_ target.Gatekeeper = (*Target)(nil)
)
