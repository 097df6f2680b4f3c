package neon

import (
	"github.com/rotorhq/rotor/internal/provider"
	"github.com/rotorhq/rotor/internal/provider/neon/neonapi"
)

// FactoryForTest is New for tests: admin connections to an endpoint host go
// where route says (the fake's clusters), NEON_API_HOST is read from
// getenv, and tune may adjust the API client (no sleeping, more retries).
func FactoryForTest(route func(host string) (string, int, bool), getenv func(string) string, tune func(*neonapi.Client)) provider.Factory {
	return func(p provider.Params) (provider.Provider, error) {
		if getenv == nil {
			getenv = func(string) string { return "" }
		}
		n, err := newProvider(p, getenv)
		if err != nil {
			return nil, err
		}
		n.route = route
		if tune != nil {
			tune(n.api)
		}
		return n, nil
	}
}

// BaseURL is the API base the provider talks to.
func BaseURL(p provider.Provider) string { return p.(*Neon).api.BaseURL }

// ControlPlaneRefusal exposes the recogniser of Neon's refusals.
var ControlPlaneRefusal = controlPlaneRefusal

// RefusedVerifier exposes the error built for them.
var RefusedVerifier = refusedVerifier
