package engine

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"

	"github.com/rotorhq/rotor/internal/provider"
	"github.com/rotorhq/rotor/internal/secret"
	"github.com/rotorhq/rotor/internal/store"
)

// Rotations behind the store's back. Every password rotor sets is marked
// on the role (provider.Marker: the role's comment) with the store's id,
// the credential and the version — never a secret. Before the next change
// rotor reads the marks and logs in with the password it believes is
// current: a role set through another store, by a restored older copy of
// this one, or by hand (ALTER ROLE, a console reset) stops the rotation
// with the way out (`rotor adopt`), instead of being overwritten blindly.

const markPrefix = "rotor:v1"

// mark is what rotor writes on a role.
type mark struct {
	Store      string
	Credential string
	Version    int64
	// Adopted: `rotor adopt` accepted the role as it was; its password is
	// not known to be the version's.
	Adopted bool
}

func (m mark) String() string {
	s := fmt.Sprintf("%s store=%s credential=%s version=%d", markPrefix, m.Store, m.Credential, m.Version)
	if m.Adopted {
		s += " adopted"
	}
	return s + " (set by rotor; do not edit)"
}

// parseMark reads a role comment; ok is false for one rotor did not write.
func parseMark(s string) (m mark, ok bool) {
	s, _, _ = strings.Cut(s, " (")
	f := strings.Fields(s)
	if len(f) < 4 || f[0] != markPrefix {
		return mark{}, false
	}
	for _, kv := range f[1:] {
		k, v, _ := strings.Cut(kv, "=")
		switch k {
		case "store":
			m.Store = v
		case "credential":
			m.Credential = v
		case "version":
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return mark{}, false
			}
			m.Version = n
		case "adopted":
			m.Adopted = true
		}
	}
	return m, m.Store != "" && m.Credential != ""
}

type storeIDCache struct {
	mu sync.Mutex
	id string
}

// storeID is this store's id (store.Info), read once.
func (e *Engine) storeID(ctx context.Context) (string, error) {
	e.ids.mu.Lock()
	defer e.ids.mu.Unlock()
	if e.ids.id != "" {
		return e.ids.id, nil
	}
	in, err := e.Store.Info(ctx)
	if err != nil {
		return "", fmt.Errorf("read the store's id: %w", err)
	}
	e.ids.id = in.ID
	return in.ID, nil
}

// latestSeq is the newest version of cred this store has for role (0 for
// none).
func (e *Engine) latestSeq(ctx context.Context, cred, role string) (int64, error) {
	vs, err := e.Store.ListVersions(ctx, store.ListVersionsParams{Credential: cred})
	if err != nil {
		return 0, err
	}
	var seq int64
	for _, v := range vs {
		if v.Role == role && v.Seq > seq {
			seq = v.Seq
		}
	}
	return seq, nil
}

// Drift is one sign that a role changed behind the store's back.
type Drift struct {
	Role   string `json:"role"`
	Reason string `json:"reason"`
}

// drift lists what the marks on roles and the password of the current
// version (from, nil on the first rotation; changed checks it) say
// changed behind the store. With remember, each mark is read with the
// role's Snapshot where the provider can take both at once, and remember
// keeps the snapshots for the run (run.snapshot).
func (e *Engine) drift(ctx context.Context, cr *Credential, roles []string, from *store.Version, changed func(context.Context, *store.Version) bool, remember func(string, provider.SnapshotResponse)) ([]Drift, error) {
	var out []Drift
	var adoptedAt map[string]int64
	if mk, ok := cr.Provider.(provider.Marker); ok {
		id, err := e.storeID(ctx)
		if err != nil {
			return nil, err
		}
		adoptedAt = map[string]int64{}
		for _, role := range roles {
			resp, err := mk.ReadMark(ctx, provider.ReadMarkRequest{Role: role, Snapshot: remember != nil})
			if errors.Is(err, provider.ErrRoleNotFound) {
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("read the mark on role %s: %w", role, err)
			}
			if remember != nil && resp.Snapshot != nil {
				remember(role, *resp.Snapshot)
			}
			m, ok := parseMark(resp.Mark)
			if !ok {
				continue
			}
			latest := int64(0)
			if from != nil && from.Role == role && m.Version <= from.Seq {
				// The current version is the newest of its role: no
				// need to read every version to know the mark is older.
				latest = from.Seq
			} else if latest, err = e.latestSeq(ctx, cr.Name, role); err != nil {
				return nil, err
			}
			switch {
			case m.Store != id:
				out = append(out, Drift{role, fmt.Sprintf("its password was last set by another rotor store (id %s, credential %s, version %d); two stores rotating one database disagree on which role is current", m.Store, m.Credential, m.Version)})
			case m.Credential != cr.Name:
				out = append(out, Drift{role, fmt.Sprintf("it is managed by credential %s of this store", m.Credential)})
			case m.Version > latest:
				out = append(out, Drift{role, fmt.Sprintf("it was set by version %d of this store, which the store does not have (its newest for the role is %d): the store is an older copy", m.Version, latest)})
			case m.Adopted:
				adoptedAt[role] = m.Version
			}
		}
	}
	if from != nil && changed != nil {
		if v, ok := adoptedAt[from.Role]; !ok || v != from.Seq {
			if changed(ctx, from) {
				out = append(out, Drift{from.Role, fmt.Sprintf("the password of version %d, which the store says is current, no longer logs in: it was changed outside rotor (ALTER ROLE, a console, another tool)", from.Seq)})
			}
		}
	}
	return out, nil
}

func driftError(cr *Credential, ds []Drift) error {
	lines := make([]string, len(ds))
	for i, d := range ds {
		lines[i] = "role " + d.Role + ": " + d.Reason
	}
	return fmt.Errorf("the database changed behind this store's back, so rotor will not overwrite it:\n- %s", strings.Join(lines, "\n- "))
}

func adoptHint(cr *Credential) string {
	return "rotate it from the store that manages it; or, if this store should manage it from now on, run `rotor adopt " + cr.Name + "` (the next rotation then sets a fresh password), then `rotor rotate " + cr.Name + "`"
}

// writeMark labels role with the version apply just set. A failed label
// does not fail the rotation (the password is changed already); it is
// logged, and the next rotation reads the older mark, which is no drift.
func (r *run) writeMark(ctx context.Context) {
	mk, ok := r.cr.Provider.(provider.Marker)
	if !ok {
		return
	}
	label, err := r.mark(ctx)
	if err == nil {
		_, err = mk.WriteMark(ctx, provider.WriteMarkRequest{Role: r.to.Role, Mark: label})
	}
	if err != nil {
		r.e.Logger.Warn("could not mark the role with the version that set it", "credential", r.cr.Name, "role", r.to.Role, "error", err)
		r.e.emit(Event{Credential: r.cr.Name, RotationID: r.rot.ID, Step: StepApply, Status: "note", Detail: "could not mark role " + r.to.Role + ": " + firstLineOf(err.Error())})
	}
}

// mark is the label of the pending version's role once apply set it.
func (r *run) mark(ctx context.Context) (string, error) {
	id, err := r.e.storeID(ctx)
	if err != nil {
		return "", err
	}
	return mark{Store: id, Credential: r.cr.Name, Version: r.to.Seq}.String(), nil
}

// markToSet is the label SetPassword may write with the password: "" when
// the provider keeps no marks or the store's id cannot be read (writeMark
// then says why).
func (r *run) markToSet(ctx context.Context) string {
	if _, ok := r.cr.Provider.(provider.Marker); !ok {
		return ""
	}
	label, err := r.mark(ctx)
	if err != nil {
		return ""
	}
	return label
}

// changedOutside reports whether the server no longer takes version v's
// password for v.Role: someone changed it outside rotor.
//
// Where the provider shows the verifier the server holds (Snapshot, a
// superuser on PostgreSQL), that answers without a login: the verifier
// rotor set, byte for byte, or one the password matches (a server that
// computed its own, as Neon does from a plaintext). A login costs the
// database a backend, a TLS handshake and a SCRAM exchange, and a
// rotation would pay it for every credential on top of its own test.
// Elsewhere it logs in with the password as consumers do; only a refused
// password counts, since a database that is down says nothing about it.
func (r *run) changedOutside(ctx context.Context, v *store.Version) bool {
	m, err := r.e.open(v)
	if err != nil {
		// Nothing to check it with; the rotation does not need it.
		return false
	}
	if snap, err := r.snapshot(ctx, v.Role); err == nil {
		held := snap.Verifier
		if !held.IsZero() && m.Verifier != "" && held.Equal(m.verifier()) {
			return false
		}
		if strings.HasPrefix(held.Reveal(), "SCRAM-SHA-256$") {
			return !secret.VerifySCRAM(held, m.password())
		}
		// No password at all, or an MD5 one: ask the server.
	}
	if r.conn == nil {
		return false
	}
	u := r.conn.WithUser(v.Role).WithPassword(m.password())
	tctx, cancel := context.WithTimeout(ctx, r.cr.TestTimeout)
	defer cancel()
	err = r.e.Dial(tctx, u.URL())
	return err != nil && strings.Contains(err.Error(), "password authentication failed")
}

// remember keeps snap as the run's Snapshot of role (drift read it with
// the role's mark).
func (r *run) remember(role string, snap provider.SnapshotResponse) {
	if r.snapshots == nil {
		r.snapshots = map[string]snapshotResult{}
	}
	r.snapshots[role] = snapshotResult{resp: snap}
}

// snapshot is the provider's Snapshot of role, asked once per run:
// prepare needs it for the drift check and, single strategy, for the
// password to roll back to.
func (r *run) snapshot(ctx context.Context, role string) (provider.SnapshotResponse, error) {
	if s, ok := r.snapshots[role]; ok {
		return s.resp, s.err
	}
	resp, err := r.cr.Provider.Snapshot(ctx, provider.SnapshotRequest{Role: role})
	if ctx.Err() == nil {
		if r.snapshots == nil {
			r.snapshots = map[string]snapshotResult{}
		}
		r.snapshots[role] = snapshotResult{resp, err}
	}
	return resp, err
}

type snapshotResult struct {
	resp provider.SnapshotResponse
	err  error
}

// AdoptResult is what `rotor adopt` did to one role.
type AdoptResult struct {
	Role string `json:"role"`
	// Previous is the mark the role had, "" for none.
	Previous string `json:"previous_mark"`
	Mark     string `json:"mark"`
}

// Adopt makes this store the one that manages cr's roles as they are now:
// each role gets this store's mark, flagged adopted, so the next rotation
// proceeds (and sets a fresh password) instead of stopping at the drift.
func (e *Engine) Adopt(ctx context.Context, cr *Credential) (_ []AdoptResult, err error) {
	e.init()
	mk, ok := cr.Provider.(provider.Marker)
	if !ok {
		return nil, fmt.Errorf("%s: the %s provider cannot mark roles, so there is nothing to adopt: %w", cr.Name, cr.ProviderType, provider.ErrUnsupported)
	}
	// A rotation that stopped at prepare over this very drift changed
	// nothing: it goes, so the next rotation starts afresh.
	active, err := e.Store.ListRotations(ctx, store.ListRotationsParams{Credential: cr.Name, Active: true, Limit: 1})
	if err != nil {
		return nil, err
	}
	if len(active) > 0 && active[0].Step == StepPrepare && active[0].AppliedAt.IsZero() {
		if _, err := e.Abandon(ctx, cr); err != nil {
			return nil, fmt.Errorf("%s: abandon rotation %d, which stopped before changing anything: %w", cr.Name, active[0].ID, err)
		}
	}
	_, release, err := e.lock(ctx, cr.Name)
	if err != nil {
		return nil, err
	}
	defer func() { err = errors.Join(err, release()) }()
	if err := e.useStoredAdmin(ctx, cr); err != nil {
		return nil, err
	}
	id, err := e.storeID(ctx)
	if err != nil {
		return nil, err
	}
	var out []AdoptResult
	for _, role := range cr.Roles {
		prev, err := mk.ReadMark(ctx, provider.ReadMarkRequest{Role: role})
		if err != nil {
			return out, fmt.Errorf("%s: %w", cr.Name, err)
		}
		seq, err := e.latestSeq(ctx, cr.Name, role)
		if err != nil {
			return out, err
		}
		m := mark{Store: id, Credential: cr.Name, Version: seq, Adopted: true}.String()
		if _, err := mk.WriteMark(ctx, provider.WriteMarkRequest{Role: role, Mark: m}); err != nil {
			return out, fmt.Errorf("%s: %w", cr.Name, err)
		}
		out = append(out, AdoptResult{Role: role, Previous: prev.Mark, Mark: m})
	}
	if err := e.audit(ctx, cr.Name, 0, "credential.adopted", map[string]any{"roles": out}); err != nil {
		return out, err
	}
	return out, nil
}
