// Package builtin is the registry of target types: the one place a config
// `type:` becomes a target.Factory (STYLE.md habit 5). A new target adds
// one line here.
package builtin

import (
	"fmt"
	"sort"
	"strings"

	"github.com/rotorhq/rotor/internal/target"
	"github.com/rotorhq/rotor/internal/target/awssm"
	"github.com/rotorhq/rotor/internal/target/doppler"
	"github.com/rotorhq/rotor/internal/target/dotenv"
	"github.com/rotorhq/rotor/internal/target/exec"
	"github.com/rotorhq/rotor/internal/target/fly"
	"github.com/rotorhq/rotor/internal/target/gcpsm"
	"github.com/rotorhq/rotor/internal/target/github"
	"github.com/rotorhq/rotor/internal/target/gitlab"
	"github.com/rotorhq/rotor/internal/target/infisical"
	"github.com/rotorhq/rotor/internal/target/kubernetes"
	"github.com/rotorhq/rotor/internal/target/pgbouncer"
	"github.com/rotorhq/rotor/internal/target/railway"
	"github.com/rotorhq/rotor/internal/target/render"
	"github.com/rotorhq/rotor/internal/target/ssm"
	"github.com/rotorhq/rotor/internal/target/vault"
	"github.com/rotorhq/rotor/internal/target/vercel"
	"github.com/rotorhq/rotor/internal/target/webhook"
)

// Targets maps each target type to its factory. Treat it as read-only;
// it is a variable only so that it reads as the list it is.
var Targets = map[string]target.Factory{
	awssm.Type:      awssm.New,
	doppler.Type:    doppler.New,
	gcpsm.Type:      gcpsm.New,
	ssm.Type:        ssm.New,
	dotenv.Type:     dotenv.New,
	infisical.Type:  infisical.New,
	kubernetes.Type: kubernetes.New,
	vault.Type:      vault.New,
	exec.Type:       exec.New,
	fly.Type:        fly.New,
	pgbouncer.Type:  pgbouncer.New,
	webhook.Type:    webhook.New,
	github.Type:     github.New,
	gitlab.Type:     gitlab.New,
	railway.Type:    railway.New,
	render.Type:     render.New,
	vercel.Type:     vercel.New,
}

// Lookup returns the factory for typ; an unknown type fails with the known
// ones so the user can fix a typo without reading the docs.
func Lookup(typ string) (target.Factory, error) {
	if f, ok := Targets[typ]; ok {
		return f, nil
	}
	return nil, fmt.Errorf("unknown target type %q (known: %s)", typ, strings.Join(Names(), ", "))
}

// Names returns the known target types, sorted.
func Names() []string {
	names := make([]string, 0, len(Targets))
	for name := range Targets {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}
