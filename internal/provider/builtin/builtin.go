// Package builtin is the registry of database providers: the config's
// `type:` names one of these factories.
package builtin

import (
	"fmt"
	"slices"
	"strings"

	"github.com/rotorhq/rotor/internal/provider"
	"github.com/rotorhq/rotor/internal/provider/neon"
	"github.com/rotorhq/rotor/internal/provider/postgres"
)

// Providers maps a config `type:` to its factory. Add new providers here.
var Providers = map[string]provider.Factory{
	"neon":     neon.New,
	"postgres": postgres.New,
}

// Lookup returns the factory for typ, or an error listing the known types.
func Lookup(typ string) (provider.Factory, error) {
	if f, ok := Providers[typ]; ok {
		return f, nil
	}
	return nil, fmt.Errorf("unknown provider type %q (known: %s)", typ, strings.Join(Names(), ", "))
}

// Names returns the known provider types, sorted.
func Names() []string {
	names := make([]string, 0, len(Providers))
	for n := range Providers {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}
