package neon

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/rotorhq/rotor/internal/provider"
	"github.com/rotorhq/rotor/internal/secret"
)

// controlPlaneRefusal recognises Neon refusing a password set over SQL:
// its compute forwards role changes to the control plane at commit
// (pgxn/neon/control_plane_connector.c: "Received HTTP code … from control
// plane"), which checks the password (60 bits of entropy, no hashed
// passwords).
func controlPlaneRefusal(err error) bool {
	msg := strings.ToLower(err.Error())
	return strings.Contains(msg, "control plane") || strings.Contains(msg, "hashed password") ||
		strings.Contains(msg, "entropy") || strings.Contains(msg, "password is too weak")
}

func refusedVerifier(op string, err error) error {
	return fmt.Errorf("neon provider: %s: Neon refused the SCRAM verifier rotor sent (%w). Neon documents that ALTER ROLE … PASSWORD must carry the plaintext password "+
		"(\"Hashed passwords are not supported\", neon.com/docs/manage/roles), and rotor never sends a plaintext password over SQL; "+
		"switch this credential's provider to method: api (Neon's reset_password, which drops the compute's connections): %w", op, err, provider.ErrUnsupported)
}

// SetPassword sets the password on every configured branch.
//
// sql: the verifier goes to each branch over its admin connection; the
// plaintext never leaves rotor.
//
// api: each branch but the primary gets a reset whose password is thrown
// away (no other branch should keep the old one, and Neon cannot give two
// branches one password), then the primary gets the reset whose password
// is returned. Each reset's operations are waited for, then LOGIN and
// VALID UNTIL are set over SQL.
func (n *Neon) SetPassword(ctx context.Context, req provider.SetPasswordRequest) (provider.SetPasswordResponse, error) {
	op := fmt.Sprintf("set the password of role %q", req.Role)
	if err := checkRoleName(op, req.Role); err != nil {
		return provider.SetPasswordResponse{}, err
	}
	if n.method == MethodAPI && req.Password.IsZero() {
		return provider.SetPasswordResponse{}, fmt.Errorf("neon provider: %s: the api method cannot put a given password back (a rollback): "+
			"Neon's reset_password always generates a new one. Use the dual strategy, whose old role keeps working until the new one is proven, "+
			"or reset the password in the Neon console: %w", op, provider.ErrUnsupported)
	}
	st, err := n.resolve(ctx)
	if err != nil {
		return provider.SetPasswordResponse{}, err
	}
	if n.method == MethodSQL {
		return n.setPasswordSQL(ctx, st, op, req)
	}
	return n.setPasswordAPI(ctx, st, op, req)
}

func (n *Neon) setPasswordSQL(ctx context.Context, st *state, op string, req provider.SetPasswordRequest) (provider.SetPasswordResponse, error) {
	var done, skipped []string
	for i, b := range st.branches {
		pg, err := n.admin(ctx, st, b)
		if err != nil {
			return provider.SetPasswordResponse{}, n.partial(err, done)
		}
		_, err = pg.SetPassword(ctx, req)
		switch {
		case err == nil:
			done = append(done, b.name)
		case i > 0 && errors.Is(err, provider.ErrRoleNotFound):
			// No old password lives there: nothing to rotate.
			skipped = append(skipped, b.name)
		case controlPlaneRefusal(err):
			return provider.SetPasswordResponse{}, n.partial(refusedVerifier(op+" on branch "+b.String(), err), done)
		default:
			return provider.SetPasswordResponse{}, n.partial(fmt.Errorf("neon provider: on branch %s: %w", b, err), done)
		}
	}
	return provider.SetPasswordResponse{Detail: branchDetail("verifier set on", done, skipped)}, nil
}

func (n *Neon) setPasswordAPI(ctx context.Context, st *state, op string, req provider.SetPasswordRequest) (provider.SetPasswordResponse, error) {
	var done, skipped []string
	for _, b := range st.branches[1:] {
		_, err := n.reset(ctx, st, b, req.Role)
		switch {
		case err == nil:
			done = append(done, b.name+" (password discarded)")
		case errors.Is(err, provider.ErrRoleNotFound):
			skipped = append(skipped, b.name)
		default:
			return provider.SetPasswordResponse{}, n.partial(err, done)
		}
	}
	primary := st.branches[0]
	pw, err := n.reset(ctx, st, primary, req.Role)
	if err != nil {
		return provider.SetPasswordResponse{}, n.partial(err, done)
	}
	// LOGIN and VALID UNTIL after the reset: before it, LOGIN would bring
	// back a retired role's old password until the reset applied.
	if err := n.alterLogin(ctx, st, primary, req.Role, req.ValidUntil); err != nil {
		return provider.SetPasswordResponse{}, fmt.Errorf("%w (the new password is in effect, but rotor could not finish; run `rotor resume`, which resets it again)", err)
	}
	done = append([]string{primary.name + " (password returned)"}, done...)
	return provider.SetPasswordResponse{Password: pw, Detail: branchDetail("reset through the Neon API on", done, skipped)}, nil
}

// reset runs reset_password on one branch and waits for its operations.
// The old password is valid until they finish (neon-api.md §1).
func (n *Neon) reset(ctx context.Context, st *state, b *branch, role string) (secret.String, error) {
	op := fmt.Sprintf("reset the password of role %q on branch %s", role, b)
	r, ops, err := n.api.ResetRolePassword(ctx, n.project, b.id, role)
	if err != nil {
		return secret.String{}, n.apiFail(op, err, provider.ErrRoleNotFound,
			fmt.Sprintf("role %q does not exist on branch %s; create it (rotor setup-roles) or fix the role name", role, b.name))
	}
	if r.Password.IsZero() {
		return secret.String{}, fmt.Errorf("neon provider: %s: Neon's answer holds no password; nothing was stored, run `rotor resume` to reset again: %w", op, provider.ErrUnavailable)
	}
	if err := n.api.WaitOperations(ctx, n.project, ops); err != nil {
		return secret.String{}, n.apiFail(op+": wait for Neon to apply it", err, provider.ErrUnavailable, "")
	}
	if role == st.adminRole {
		b.forgetAdmin()
	}
	return r.Password, nil
}

// partial says which branches already have the new password when a later
// one fails; `rotor resume` sets it on all of them again.
func (n *Neon) partial(err error, done []string) error {
	if len(done) == 0 {
		return err
	}
	return fmt.Errorf("%w (already changed on branch %s; `rotor resume` repeats the change on every branch)", err, strings.Join(done, ", "))
}

func branchDetail(verb string, done, skipped []string) string {
	d := verb + " branch " + strings.Join(done, ", ")
	if len(done) > 1 {
		d = verb + " branches " + strings.Join(done, ", ")
	}
	if len(skipped) > 0 {
		d += "; role absent on " + strings.Join(skipped, ", ") + ", skipped"
	}
	return d
}

// Snapshot reads the stored verifier over SQL (sql method, one branch).
// Neon's roles are not superusers and cannot read pg_authid, so on Neon
// this ends in ErrUnsupported; the api method cannot restore a verifier
// at all.
func (n *Neon) Snapshot(ctx context.Context, req provider.SnapshotRequest) (provider.SnapshotResponse, error) {
	op := fmt.Sprintf("snapshot the password of role %q", req.Role)
	if n.method == MethodAPI {
		return provider.SnapshotResponse{}, fmt.Errorf("neon provider: %s: the api method cannot put an old password back, so there is nothing to snapshot; use the dual strategy for a safe switch: %w", op, provider.ErrUnsupported)
	}
	st, err := n.resolve(ctx)
	if err != nil {
		return provider.SnapshotResponse{}, err
	}
	if len(st.branches) > 1 {
		return provider.SnapshotResponse{}, fmt.Errorf("neon provider: %s: each of the %d branches holds its own verifier, and one snapshot cannot restore them all; use the dual strategy: %w", op, len(st.branches), provider.ErrUnsupported)
	}
	pg, err := n.admin(ctx, st, st.branches[0])
	if err != nil {
		return provider.SnapshotResponse{}, err
	}
	return pg.Snapshot(ctx, req)
}

// Retire makes the role unusable on every configured branch. With the api
// method, scrambling is a reset whose password is thrown away (it drops
// the compute's connections, like every reset); NOLOGIN is plain SQL.
func (n *Neon) Retire(ctx context.Context, req provider.RetireRequest) (provider.RetireResponse, error) {
	op := fmt.Sprintf("retire role %q", req.Role)
	if err := checkRoleName(op, req.Role); err != nil {
		return provider.RetireResponse{}, err
	}
	if req.Method != provider.RetireScramble && req.Method != provider.RetireNoLogin {
		return provider.RetireResponse{}, fmt.Errorf("neon provider: %s: unknown retire method %q; use %q or %q: %w", op, req.Method, provider.RetireScramble, provider.RetireNoLogin, provider.ErrInvalid)
	}
	st, err := n.resolve(ctx)
	if err != nil {
		return provider.RetireResponse{}, err
	}
	var done []string
	for i, b := range st.branches {
		if n.method == MethodAPI && req.Method == provider.RetireScramble {
			_, err = n.reset(ctx, st, b, req.Role)
		} else {
			var pg interface {
				Retire(context.Context, provider.RetireRequest) (provider.RetireResponse, error)
			}
			if pg, err = n.admin(ctx, st, b); err == nil {
				_, err = pg.Retire(ctx, req)
				if err != nil {
					err = fmt.Errorf("neon provider: on branch %s: %w", b, err)
				}
			}
		}
		switch {
		case err == nil:
			done = append(done, b.name)
		case i > 0 && errors.Is(err, provider.ErrRoleNotFound):
		default:
			return provider.RetireResponse{}, n.partial(err, done)
		}
	}
	return provider.RetireResponse{}, nil
}

func checkRoleName(op, role string) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("neon provider: %s: %s: %w", op, fmt.Sprintf(format, args...), provider.ErrInvalid)
	}
	switch {
	case role == "":
		return bad("the role name is empty; name the role in the credential's config")
	case len(role) > maxIdentifierLength:
		return bad("role name %q is %d bytes long and PostgreSQL would truncate it to %d; use a shorter name", role, len(role), maxIdentifierLength)
	case strings.ContainsRune(role, 0):
		return bad("role name %q contains a NUL byte, which PostgreSQL does not allow; fix the name", role)
	}
	return nil
}
