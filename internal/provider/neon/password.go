package neon

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/rotorhq/rotor/internal/provider"
	"github.com/rotorhq/rotor/internal/provider/postgres"
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
		strings.Contains(msg, "entropy") || strings.Contains(msg, "password is too weak") || strings.Contains(msg, "not strong enough")
}

// refusedPassword is Neon's control plane refusing the password rotor
// sent: nothing changed, and the fix is in the password policy.
func refusedPassword(op string, err error) error {
	return fmt.Errorf("neon provider: %s: Neon refused the password (%w). Neon takes passwords over SQL in plaintext only, with at least 60 bits of entropy and no character "+
		"three times in a row (neon.com/docs/manage/roles); rotor's default policy (32 letters and digits) meets that: check this credential's password: policy, then `rotor resume`: %w",
		op, err, provider.ErrInvalid)
}

// proveAttempts bounds the logins that prove a change over SQL. Neon's
// proxy learns of the new password from the control plane, which may
// take a moment.
const proveAttempts = 4

// SetPassword sets the password on every configured branch.
//
// sql: the plaintext goes to each branch in its own ALTER ROLE over the
// admin connection (verified TLS, statement logging off where the admin
// may), then a login with it proves the change took effect: Neon's
// compute may report an error after it forwarded the change, or succeed
// before the proxy knows the password.
//
// api: each branch but the primary gets a reset whose password is thrown
// away (no other branch should keep the old one, and Neon cannot give two
// branches one password), then the primary gets the reset whose password
// is returned. Each reset's operations are waited for, then LOGIN and
// VALID UNTIL are set over SQL.
//
// Either way, when the role is the admin role, later connections use the
// new password at once.
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
	if n.method == MethodSQL && req.Password.IsZero() {
		return provider.SetPasswordResponse{}, fmt.Errorf("neon provider: %s: the request carries only a password verifier (putting an old password back), "+
			"and Neon takes passwords over SQL in plaintext only (\"Hashed passwords are not supported\", neon.com/docs/manage/roles); "+
			"rotor needs the old password itself to put it back: %w", op, provider.ErrUnsupported)
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
	var done, skipped, notes []string
	for i, b := range st.branches {
		where := op + " on branch " + b.String()
		pg, err := n.admin(ctx, st, b)
		if err != nil {
			return provider.SetPasswordResponse{}, n.partial(err, done)
		}
		quiet, err := pg.SetPlaintextPassword(ctx, req)
		switch {
		case err == nil:
		case i > 0 && errors.Is(err, provider.ErrRoleNotFound):
			// No old password lives there: nothing to rotate.
			skipped = append(skipped, b.name)
			continue
		case errors.Is(err, provider.ErrRoleNotFound), errors.Is(err, provider.ErrPermission), errors.Is(err, provider.ErrInvalid):
			// Refused before anything reached Neon's control plane.
			return provider.SetPasswordResponse{}, n.partial(fmt.Errorf("neon provider: on branch %s: %w", b, err), done)
		}
		attempts := proveAttempts
		if err != nil {
			attempts = 1 // only to learn whether the change went through anyway
		}
		if req.ValidUntil != nil && !req.ValidUntil.After(n.now()) {
			// An expired password cannot log in; nothing to prove with.
			if err != nil {
				return provider.SetPasswordResponse{}, n.partial(fmt.Errorf("neon provider: on branch %s: %w", b, err), done)
			}
			notes = append(notes, "not proven by a login, since VALID UNTIL is already past")
			attempts = 0
		}
		var proof error
		if attempts > 0 {
			proof = n.prove(ctx, pg, req.Role, req.Password, attempts)
		}
		switch {
		case err != nil && proof != nil && controlPlaneRefusal(err):
			return provider.SetPasswordResponse{}, n.partial(refusedPassword(where, err), done)
		case err != nil && proof != nil:
			return provider.SetPasswordResponse{}, n.partial(fmt.Errorf("neon provider: on branch %s: %w (the new password does not log in, so nothing changed there; `rotor resume` tries again)", b, err), done)
		case err != nil:
			notes = append(notes, fmt.Sprintf("on %s Neon reported an error after applying the change (%s), but the new password logs in", b.name, secret.Scrub(err, req.Password)))
		case proof != nil:
			return provider.SetPasswordResponse{}, n.partial(fmt.Errorf("neon provider: %s: ALTER ROLE succeeded but the new password does not log in (%w); "+
				"Neon may not have applied it: `rotor resume` sets it again: %w", where, proof, provider.ErrUnavailable), done)
		}
		if req.Role == st.adminRole {
			b.switchAdmin(req.Password)
		}
		done = append(done, b.name)
		if i == 0 {
			notes = append(notes, quietNote(quiet))
		}
	}
	detail := branchDetail("plaintext password set over verified TLS and proven by a login on", done, skipped)
	if len(notes) > 0 {
		detail += "; " + strings.Join(notes, "; ")
	}
	return provider.SetPasswordResponse{Detail: detail}, nil
}

// quietNote says whether statement logging was off for the statement.
func quietNote(q postgres.QuietReport) string {
	if q.Complete() {
		return "server-side statement logging was off for it"
	}
	return "the admin role may not switch " + strings.Join(q.Left, ", ") + " off, so the server's own settings applied to it"
}

// prove logs in as role with pw, up to attempts times.
func (n *Neon) prove(ctx context.Context, pg *postgres.Postgres, role string, pw secret.String, attempts int) error {
	var err error
	for i := range attempts {
		if err = pg.LogIn(ctx, role, pw); err == nil {
			return nil
		}
		if i+1 < attempts {
			if serr := n.sleep(ctx, time.Duration(500<<i)*time.Millisecond); serr != nil {
				return err
			}
		}
	}
	return err
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
			fmt.Sprintf("role %q does not exist on branch %s; %s", role, b.name, n.hints(st).MissingRole))
	}
	if r.Password.IsZero() {
		return secret.String{}, fmt.Errorf("neon provider: %s: Neon's answer holds no password; nothing was stored, run `rotor resume` to reset again: %w", op, provider.ErrUnavailable)
	}
	if err := n.api.WaitOperations(ctx, n.project, ops); err != nil {
		return secret.String{}, n.apiFail(op+": wait for Neon to apply it", err, provider.ErrUnavailable, "")
	}
	if role == st.adminRole {
		// The admin role's own password changed: the SQL that follows
		// (LOGIN, VALID UNTIL) logs in with the new one.
		b.switchAdmin(r.Password)
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

// Snapshot is unsupported on Neon: its roles cannot read pg_authid, and
// a verifier could not be put back anyway (Neon refuses hashed passwords
// over SQL; a reset cannot set a chosen password). A failed
// single-strategy rotation falls back on the password rotor stored.
func (n *Neon) Snapshot(ctx context.Context, req provider.SnapshotRequest) (provider.SnapshotResponse, error) {
	op := fmt.Sprintf("snapshot the password of role %q", req.Role)
	if n.method == MethodAPI {
		return provider.SnapshotResponse{}, fmt.Errorf("neon provider: %s: the api method cannot put an old password back, so there is nothing to snapshot; use the dual strategy for a safe switch: %w", op, provider.ErrUnsupported)
	}
	return provider.SnapshotResponse{}, fmt.Errorf("neon provider: %s: Neon's roles cannot read the stored verifier, and Neon would refuse it back over SQL (it takes plaintext passwords only); "+
		"only a password rotor stored can be put back: %w", op, provider.ErrUnsupported)
}

// Retire makes the role unusable on every configured branch. Scrambling
// is, with the api method, a reset whose password is thrown away (it
// drops the compute's connections, like every reset), and with the sql
// method a random plaintext password nobody keeps, set as SetPassword
// sets one (Neon refuses the random verifier the postgres provider would
// send); NOLOGIN is plain SQL.
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
		switch {
		case n.method == MethodAPI && req.Method == provider.RetireScramble:
			_, err = n.reset(ctx, st, b, req.Role)
		case req.Method == provider.RetireScramble:
			err = n.scramble(ctx, st, b, req.Role)
		default:
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

// scramble gives the role a random password nobody keeps, over SQL.
func (n *Neon) scramble(ctx context.Context, st *state, b *branch, role string) error {
	pg, err := n.admin(ctx, st, b)
	if err != nil {
		return err
	}
	pw, err := strongRandomPassword()
	if err != nil {
		return err
	}
	if _, err := pg.SetPlaintextPassword(ctx, provider.SetPasswordRequest{Role: role, Password: pw}); err != nil {
		return fmt.Errorf("neon provider: on branch %s: %w", b, err)
	}
	if role == st.adminRole {
		b.switchAdmin(pw)
	}
	return nil
}

// strongRandomPassword is a default-policy password that meets Neon's
// rule, drawn again in the rare case it has a run of three.
func strongRandomPassword() (secret.String, error) {
	for range 100 {
		pw, err := secret.Generate(nil, secret.DefaultPolicy())
		if err != nil {
			return secret.String{}, err
		}
		if checkStrength(pw) == nil {
			return pw, nil
		}
	}
	return secret.String{}, errors.New("neon provider: could not draw a password that meets Neon's rule; the random source is broken")
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
