package resolve

import (
	"strings"
	"unicode"

	"github.com/rotorhq/rotor/internal/config"
	"github.com/rotorhq/rotor/internal/connstr"
	"github.com/rotorhq/rotor/internal/engine"
	"github.com/rotorhq/rotor/internal/secret"
	"github.com/rotorhq/rotor/internal/template"
)

// sampleConn stands in for how consumers connect when the file does not
// say (the provider discovers it) or cannot yet (its variable is not set).
const sampleConn = "postgresql://db.invalid:5432/db?sslmode=require"

// sampleReplica stands in for a read replica the provider may discover.
const sampleReplica = "postgresql://replica.invalid:5432/db?sslmode=require"

// samples are the template fields of versions a rotation of one credential
// could produce: each of its roles with sample passwords. They are built
// on the first check, so a credential whose targets check nothing never
// builds them.
type samples struct {
	cs        *config.Credential
	passwords samplePasswords
	vars      []template.Vars
	built     bool
}

// samplePasswords are the sample passwords of each policy, shared by the
// credentials of one load: a sample stands for what the policy can
// generate, not for one credential's password, and generating and framing
// it once per credential was most of what a load of many credentials
// spent on samples.
type samplePasswords map[secret.Policy][]secret.String

// of returns policy's sample passwords: a generated one, and the same
// framed by one character of every class the policy draws from (each
// symbol on its own). A rule that depends on the characters next to the
// password (a "$" before it that godotenv would expand, say) then fails on
// every load, not only when the random password happens to start with the
// wrong character. A policy that cannot generate has none: its problem is
// already reported.
func (sp samplePasswords) of(policy secret.Policy) []secret.String {
	if pws, ok := sp[policy]; ok {
		return pws
	}
	var out []secret.String
	if pw, err := secret.Generate(nil, policy); err == nil {
		reps := representatives(policy.Alphabet())
		out = make([]secret.String, 0, 1+len(reps))
		out = append(out, pw)
		plain := pw.Reveal()
		for _, c := range reps {
			out = append(out, secret.New(string(c)+plain+string(c)))
		}
	}
	sp[policy] = out
	return out
}

// newSamples returns the samples of cs, with its passwords from pws.
func newSamples(cs *config.Credential, pws samplePasswords) *samples {
	return &samples{cs: cs, passwords: pws}
}

// build fills vars: every role of the credential with every sample
// password.
func (s *samples) build() {
	s.built = true
	cs := s.cs
	passwords := s.passwords.of(cs.Policy)
	if len(passwords) == 0 {
		return
	}
	conn, pooled := cs.Conn, cs.Pooled
	// A provider that discovers the endpoints may find a read replica;
	// whether it must is checkReplica's question, not the values'.
	var replica *connstr.Conn
	if conn == nil {
		conn, _ = connstr.Parse(sampleConn)
		replica, _ = connstr.Parse(sampleReplica)
	}
	s.vars = make([]template.Vars, 0, len(cs.Roles)*len(passwords))
	for _, role := range cs.Roles {
		if role == "" {
			continue
		}
		for _, p := range passwords {
			v := engine.VarsFor(conn, pooled, role, p)
			if replica != nil {
				v.ReplicaURL = replica.WithUser(role).WithPassword(p).URL()
			}
			s.vars = append(s.vars, v)
		}
	}
}

// representatives is the first letter of each case and the first digit
// in alphabet, and every other character.
func representatives(alphabet string) []rune {
	var out []rune
	seen := map[string]bool{}
	for _, c := range alphabet {
		class := string(c)
		switch {
		case unicode.IsLower(c):
			class = "lower"
		case unicode.IsUpper(c):
			class = "upper"
		case unicode.IsDigit(c):
			class = "digit"
		}
		if !seen[class] {
			seen[class] = true
			out = append(out, c)
		}
	}
	return out
}

// check renders tpl with every sample and returns the first error ok
// gives, or the template's own.
func (s *samples) check(tpl *template.Template, ok func(secret.String) error) error {
	if !s.built {
		s.build()
	}
	for _, v := range s.vars {
		value, err := tpl.Execute(v)
		if err != nil {
			return err
		}
		if err := ok(value); err != nil {
			return secret.Scrub(err, value, v.Password, v.URL, v.DirectURL, v.PooledURL, v.ReplicaURL)
		}
	}
	return nil
}

// describeVars names environment variables for messages: ${A}, ${B}.
func describeVars(vars []string) string {
	refs := make([]string, len(vars))
	for i, v := range vars {
		refs[i] = "${" + v + "}"
	}
	return strings.Join(refs, ", ")
}
