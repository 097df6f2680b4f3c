package cli

import (
	"errors"
	"fmt"
	"os/user"
	"slices"
	"strings"

	"github.com/rotorhq/rotor/internal/connstr"
	"github.com/rotorhq/rotor/internal/engine"
	"github.com/rotorhq/rotor/internal/resolve"
)

// A circular set-up: the PostgreSQL state store logs in as a role that a
// credential of the same config rotates. The store's password lives in
// ROTOR_STATE_URL, PGPASSWORD or ~/.pgpass, which no rotation updates, so
// the moment apply changes that role's password the store no longer opens:
// the rotation can neither journal its next step nor be resumed, and every
// later run fails at the start. rotor refuses it before anything runs.
//
// Roles are compared by name only. Two URLs may reach one server under
// different host names (an alias, an IP, a pooler), so a matching name is
// refused even when the hosts differ: the way out, a role of its own for
// the store, is right either way.

// circularProblem is one credential that rotates the store's own role.
type circularProblem struct {
	credential, msg string
}

// circularProblems names each credential of creds that rotates the role
// the state store (cfg.State) logs in as.
func circularProblems(cfg *resolve.Config, creds []*engine.Credential, getenv func(string) string) []circularProblem {
	role := stateRole(cfg.State, getenv)
	if role == "" {
		return nil
	}
	var out []circularProblem
	for _, cr := range creds {
		if !slices.Contains(cr.Roles, role) {
			continue
		}
		out = append(out, circularProblem{cr.Name, fmt.Sprintf("credential %s rotates role %s, and the state store logs in as %s: "+
			"once its password changes, the store (whose password is in ROTOR_STATE_URL, PGPASSWORD or ~/.pgpass, which no rotation updates) "+
			"no longer opens, and the rotation could neither finish nor be resumed. "+
			"Give the store a role of its own that no credential rotates (CREATE ROLE rotor_state LOGIN; CREATE SCHEMA rotor AUTHORIZATION rotor_state) "+
			"and put it in the state URL (rotor compares role names: a role of that name on another server counts too, so name the store's role differently)",
			cr.Name, role, role)})
	}
	return out
}

// stateRole is the user a postgres:// state URL logs in as, resolved as
// libpq does (the URL, else PGUSER, else the operating-system user); ""
// for another store.
func stateRole(location string, getenv func(string) string) string {
	scheme, _, _ := strings.Cut(location, "://")
	if s := strings.ToLower(scheme); s != "postgres" && s != "postgresql" {
		return ""
	}
	c, err := connstr.Parse(location)
	if err != nil {
		return "" // opening the store reports it
	}
	if c.User != "" {
		return c.User
	}
	if u := getenv("PGUSER"); u != "" {
		return u
	}
	if u, err := user.Current(); err == nil {
		return u.Username
	}
	return ""
}

// refuseCircular is the start of `rotor rotate` and `rotor resume`:
// nothing runs while a credential would lock the store out.
func refuseCircular(cfg *resolve.Config, creds []*engine.Credential, getenv func(string) string) error {
	var msgs []string
	for _, p := range circularProblems(cfg, creds, getenv) {
		msgs = append(msgs, p.msg)
	}
	if len(msgs) > 0 {
		return &UsageError{errors.New(strings.Join(msgs, "\n"))}
	}
	return nil
}

// circularChecks are `rotor validate`'s lines for the same rule; none
// when the set-up is sound.
func circularChecks(cfg *resolve.Config, creds []*engine.Credential, getenv func(string) string) []Check {
	var out []Check
	for _, p := range circularProblems(cfg, creds, getenv) {
		out = append(out, Check{Credential: p.credential, Subject: "the state store's role", Error: p.msg})
	}
	return out
}
