package engine

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/rotorhq/rotor/internal/provider"
	"github.com/rotorhq/rotor/internal/secret"
	"github.com/rotorhq/rotor/internal/store"
)

// A self-managed credential rotates the very role its provider logs in as
// (the Neon owner role, an admin_url whose user is the application's
// role), as Vault's self-managed static roles do. Once rotor has changed
// that password, the one in the environment is stale: rotor logs in with
// the passwords it keeps itself — the current version's, and during a
// rotation that may have applied, the pending one's first.

// selfManager returns the provider's SelfManager when cr rotates the role
// it logs in as, nil otherwise.
func selfManager(ctx context.Context, cr *Credential) (provider.SelfManager, error) {
	sm, ok := cr.Provider.(provider.SelfManager)
	if !ok {
		return nil, nil
	}
	admin, err := sm.AdminRole(ctx)
	if err != nil {
		return nil, fmt.Errorf("%s: find the role the provider logs in as: %w", cr.Name, err)
	}
	if admin == "" || !slices.Contains(cr.Roles, admin) {
		return nil, nil
	}
	if cr.Strategy == StrategyDual {
		return nil, fmt.Errorf("%s: the provider logs in as %s, one of the dual roles: retiring it after the next switch would lock rotor out; "+
			"give the provider an admin role of its own (a CREATEROLE role, or the owner group's login): %w", cr.Name, admin, provider.ErrInvalid)
	}
	return sm, nil
}

// UseStoredAdmin points a self-managed credential's provider at the
// passwords rotor keeps (see useStoredAdmin), for callers outside a
// rotation that use the provider (`rotor validate`).
func (e *Engine) UseStoredAdmin(ctx context.Context, cr *Credential) error {
	e.init()
	return e.useStoredAdmin(ctx, cr)
}

// useStoredAdmin points a self-managed credential's provider at the
// passwords rotor keeps: the pending version of an unfinished rotation
// (the server may hold it already), then the current version.
func (e *Engine) useStoredAdmin(ctx context.Context, cr *Credential) error {
	sm, err := selfManager(ctx, cr)
	if sm == nil || err != nil {
		return err
	}
	var vs []*store.Version
	active, err := e.Store.ListRotations(ctx, store.ListRotationsParams{Credential: cr.Name, Active: true, Limit: 1})
	if err != nil {
		return fmt.Errorf("%s: read rotations: %w", cr.Name, err)
	}
	if len(active) > 0 && active[0].ToVersionID != 0 {
		v, err := e.Store.GetVersion(ctx, store.GetVersionParams{ID: active[0].ToVersionID})
		if err != nil {
			return fmt.Errorf("%s: read the pending version: %w", cr.Name, err)
		}
		vs = append(vs, v)
	}
	cur, err := e.currentVersion(ctx, cr.Name)
	if err != nil {
		return err
	}
	if cur != nil {
		vs = append(vs, cur)
	}
	var pws []secret.String
	for _, v := range vs {
		m, err := e.open(v)
		if err != nil {
			return err
		}
		pws = append(pws, m.password())
	}
	if len(pws) > 0 {
		sm.UseAdminPasswords(pws)
	}
	return nil
}

// useNewAdmin switches a self-managed provider to the password apply just
// set, keeping the previous one as a fallback for a rollback.
func (r *run) useNewAdmin(ctx context.Context) error {
	sm, err := selfManager(ctx, r.cr)
	if sm == nil || err != nil {
		return err
	}
	pws := []secret.String{r.pending.password()}
	if r.from != nil {
		if m, err := r.e.open(r.from); err == nil {
			pws = append(pws, m.password())
		}
	}
	sm.UseAdminPasswords(pws)
	return nil
}

// generatePassword draws passwords from the policy until the provider's
// database accepts one (provider.PasswordChecker), so a rotation never
// fails at apply over a password rotor chose.
func (e *Engine) generatePassword(cr *Credential) (secret.String, error) {
	pc, _ := cr.Provider.(provider.PasswordChecker)
	var last error
	for range 32 {
		pw, err := secret.Generate(e.Rand, cr.Policy)
		if err != nil {
			return secret.String{}, err
		}
		if pc == nil {
			return pw, nil
		}
		if last = pc.CheckPassword(pw); last == nil {
			return pw, nil
		}
	}
	return secret.String{}, errors.Join(fmt.Errorf("%s: 32 passwords drawn from the password policy were all refused by the database's own rule; "+
		"make the policy stronger (password.length, more character classes)", cr.Name), last)
}
