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
// could produce: each of its roles with sample passwords.
type samples struct {
	vars []template.Vars
}

// newSamples builds the samples for cs. Each password is a generated one,
// framed by one character of every class the policy draws from (each
// symbol on its own): a rule that depends on the characters next to the
// password (a "$" before it that godotenv would expand, say) then fails
// on every load, not only when the random password happens to start with
// the wrong character. A policy that cannot generate gives no samples:
// its problem is already reported.
func newSamples(cs *config.Credential) *samples {
	out := &samples{}
	pw, err := secret.Generate(nil, cs.Policy)
	if err != nil {
		return out
	}
	passwords := []secret.String{pw}
	for _, c := range representatives(cs.Policy.Alphabet()) {
		passwords = append(passwords, secret.New(string(c)+pw.Reveal()+string(c)))
	}
	conn, pooled := cs.Conn, cs.Pooled
	// A provider that discovers the endpoints may find a read replica;
	// whether it must is checkReplica's question, not the values'.
	var replica *connstr.Conn
	if conn == nil {
		conn, _ = connstr.Parse(sampleConn)
		replica, _ = connstr.Parse(sampleReplica)
	}
	for _, role := range cs.Roles {
		if role == "" {
			continue
		}
		for _, p := range passwords {
			v := engine.VarsFor(conn, pooled, role, p)
			if replica != nil {
				v.ReplicaURL = replica.WithUser(role).WithPassword(p).URL()
			}
			out.vars = append(out.vars, v)
		}
	}
	return out
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
