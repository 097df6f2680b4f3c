package resolve

import (
	"fmt"
	"sort"
	"strings"

	"github.com/rotorhq/rotor/internal/config"
	"github.com/rotorhq/rotor/internal/engine"
	"github.com/rotorhq/rotor/internal/provider"
	"github.com/rotorhq/rotor/internal/target"
	"github.com/rotorhq/rotor/internal/template"
)

// Checks that need every credential built: what one credential's settings
// cannot show alone.

// written is one value a target writes: where (the target's type and
// destination) and under which key.
type written struct {
	typ, destination, key string
}

// writer is who writes it, for the message.
type writer struct {
	path string
	line int
}

// checkAcross checks cr, built from spec, against itself and the
// credentials checked before it, whose keys seen holds. It reports,
// located at the later of the two, every key that two targets — of one
// credential or of two — write at the same destination of the same type:
// the second write would silently replace the first, so consumers of one
// database would get the other's connection string (a branch with two
// databases imported into one .env). It also reports templates that use
// .ReplicaURL where no read replica can fill it.
func (b *builder) checkAcross(seen map[written]writer, spec *config.Credential, cr *engine.Credential) {
	paths := map[int]string{}
	for _, ts := range spec.Targets {
		paths[ts.Line] = ts.Path
	}
	for _, t := range cr.Targets {
		if !storesKeys(t) {
			continue
		}
		dest := t.Impl.Info().Destination
		path := paths[t.Line]
		if path == "" {
			path = fmt.Sprintf("credentials.%s target %s", cr.Name, t.Name)
		}
		for _, k := range t.Keys {
			w := written{typ: t.Type, destination: dest, key: k}
			if first, ok := seen[w]; ok {
				b.errorf(t.Line, "%s writes %s to %s %s, which %s (line %d) writes too, so one would overwrite the other; "+
					"give each database its own keys (a prefix, e.g. %s_%s) or its own destination",
					path, k, t.Type, dest, first.path, first.line, envPrefix(cr.Name), k)
				continue
			}
			seen[w] = writer{path: path, line: t.Line}
		}
	}
	b.checkReplica(cr)
}

// storesKeys reports a target that keeps each value under its key, where
// a second write replaces the first. A gatekeeper keeps one line per role
// instead, and exec and webhook hand the values to one command run or one
// request, where two credentials' calls do not meet.
func storesKeys(t *engine.Target) bool {
	if target.Discover(t.Impl).Gatekeeper != nil {
		return false
	}
	return t.Type != "exec" && t.Type != "webhook"
}

// replicaRequirer is a provider that can tell, when it is checked,
// whether a read replica exists (Neon); templates that use .ReplicaURL
// make it require one.
type replicaRequirer interface{ RequireReplica() }

// checkReplica: a value that uses .ReplicaURL needs a provider that
// discovers a read replica, and the credential must leave the endpoints
// to it (no connection.url).
func (b *builder) checkReplica(cr *engine.Credential) {
	var users []string
	line := 0
	for _, t := range cr.Targets {
		var keys []string
		for i, k := range t.Keys {
			if tpl := t.Values[i]; tpl != nil && tpl.Uses(template.ReplicaField) {
				keys = append(keys, k)
			}
		}
		sort.Strings(keys)
		for _, k := range keys {
			users = append(users, t.Name+"."+k)
		}
		if len(keys) > 0 && line == 0 {
			line = t.Line
		}
	}
	if len(users) == 0 || cr.Provider == nil {
		return
	}
	rr, ok := cr.Provider.(replicaRequirer)
	_, discovers := cr.Provider.(provider.Endpointer)
	switch {
	case !ok || !discovers:
		b.errorf(line, "credentials.%s: %s uses {{.ReplicaURL}}, but the %s provider has no read replica to fill it; remove it, or use a provider that discovers one (neon)",
			cr.Name, strings.Join(users, ", "), cr.ProviderType)
	case cr.Conn != nil:
		b.errorf(line, "credentials.%s: %s uses {{.ReplicaURL}}, which the %s provider fills when it discovers the endpoints, but connection.url is set; remove connection: so that it finds them (and the replica)",
			cr.Name, strings.Join(users, ", "), cr.ProviderType)
	default:
		// Whether the replica exists is known only by asking: `rotor
		// validate` (the provider's Check) says so before any rotation.
		rr.RequireReplica()
	}
}

// envPrefix makes a credential name into a key prefix (SHOP for shop).
func envPrefix(name string) string {
	var sb strings.Builder
	for _, r := range strings.ToUpper(name) {
		if (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9') {
			sb.WriteRune(r)
		} else {
			sb.WriteByte('_')
		}
	}
	return sb.String()
}
