// Package auth holds the API tokens of `rotor serve`: parsed from the
// environment, kept only as SHA-256 hashes in memory, compared in
// constant time. The HTTP API and the console share it.
package auth

import (
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"strings"
)

// Scope is what a token may do. Each scope includes the ones below it:
// admin ⊇ rotate ⊇ read.
type Scope int

const (
	ScopeNone   Scope = iota
	ScopeRead         // look: credentials, status, plans, rotations, history
	ScopeRotate       // also rotate now and report leaks
	ScopeAdmin        // also revoke and retire
)

func (s Scope) String() string {
	switch s {
	case ScopeRead:
		return "read"
	case ScopeRotate:
		return "rotate"
	case ScopeAdmin:
		return "admin"
	}
	return "none"
}

// ParseScope reads "read", "rotate" or "admin".
func ParseScope(s string) (Scope, error) {
	switch s {
	case "read":
		return ScopeRead, nil
	case "rotate":
		return ScopeRotate, nil
	case "admin":
		return ScopeAdmin, nil
	}
	return ScopeNone, fmt.Errorf("scope %q is not one of read, rotate, admin", s)
}

// Identity is who a token belongs to.
type Identity struct {
	Name  string
	Scope Scope
}

// Allows reports whether the identity may act with scope s.
func (id Identity) Allows(s Scope) bool { return id.Scope >= s }

type entry struct {
	id   Identity
	hash [sha256.Size]byte
}

// Tokens is the set of API tokens. The zero value accepts nothing.
type Tokens struct {
	entries []entry
}

// MinTokenLength is the shortest token accepted: a token is a password a
// program sends on every request, so it must not be guessable.
const MinTokenLength = 24

// validName is ^[a-z0-9][a-z0-9_.-]{0,62}$ written out: compiling that
// bounded repetition at package init cost every rotor command 1–3 ms of
// start-up, for a check only `rotor serve` makes.
func validName(name string) bool {
	if len(name) == 0 || len(name) > 63 {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case 'a' <= c && c <= 'z', '0' <= c && c <= '9':
		case i > 0 && (c == '_' || c == '.' || c == '-'):
		default:
			return false
		}
	}
	return true
}

// Parse reads tokens written as NAME:SCOPE:TOKEN, one per line or
// separated by commas (ROTOR_API_TOKENS, or the file ROTOR_API_TOKENS_FILE
// names, e.g. a mounted Kubernetes Secret). Blank lines and lines
// starting with # are ignored. Errors name the entry by its position and
// name, never by its token.
func Parse(spec string) (*Tokens, error) {
	t := &Tokens{}
	seen := map[string]bool{}
	n := 0
	for _, line := range strings.FieldsFunc(spec, func(r rune) bool { return r == '\n' || r == ',' }) {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		n++
		name, rest, ok1 := strings.Cut(line, ":")
		scope, token, ok2 := strings.Cut(rest, ":")
		if !ok1 || !ok2 {
			return nil, fmt.Errorf("API token entry %d: not NAME:SCOPE:TOKEN; write it like ci:rotate:<a random token of %d+ characters>", n, MinTokenLength)
		}
		if !validName(name) {
			return nil, fmt.Errorf("API token entry %d: name %q must be lower-case letters, digits, '.', '_' or '-'", n, name)
		}
		sc, err := ParseScope(scope)
		if err != nil {
			return nil, fmt.Errorf("API token %q: %v", name, err)
		}
		if len(token) < MinTokenLength {
			return nil, fmt.Errorf("API token %q: shorter than %d characters; generate one with `openssl rand -hex 24`", name, MinTokenLength)
		}
		if seen[name] {
			return nil, fmt.Errorf("API token %q: named twice; give each token its own name (the audit log records it)", name)
		}
		seen[name] = true
		t.entries = append(t.entries, entry{id: Identity{Name: name, Scope: sc}, hash: sha256.Sum256([]byte(token))})
	}
	return t, nil
}

// Len is the number of tokens.
func (t *Tokens) Len() int { return len(t.entries) }

// Authenticate finds the token's identity. Every entry is compared, in
// constant time, so the time taken says nothing about which matched.
func (t *Tokens) Authenticate(token string) (Identity, bool) {
	h := sha256.Sum256([]byte(token))
	var found Identity
	ok := 0
	for _, e := range t.entries {
		if subtle.ConstantTimeCompare(h[:], e.hash[:]) == 1 {
			found = e.id
			ok = 1
		}
	}
	return found, ok == 1 && token != ""
}
