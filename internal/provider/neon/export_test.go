package neon

import (
	"io"
	"log/slog"

	"github.com/rotorhq/rotor/internal/provider"
	"github.com/rotorhq/rotor/internal/provider/neon/neonapi"
)

// FactoryForTest is New for tests: admin connections to an endpoint host go
// where route says (the fake's clusters), NEON_API_HOST is read from
// getenv, tune may adjust the API client (no sleeping, more retries), and
// the provider's log lines go to logs (nowhere when nil).
func FactoryForTest(route func(host string) (string, int, bool), getenv func(string) string, tune func(*neonapi.Client), logs io.Writer) provider.Factory {
	return func(p provider.Params) (provider.Provider, error) {
		if getenv == nil {
			getenv = func(string) string { return "" }
		}
		n, err := newProvider(p, getenv)
		if err != nil {
			return nil, err
		}
		n.route = route
		if logs == nil {
			logs = io.Discard
		}
		n.logger = slog.New(slog.NewTextHandler(logs, nil))
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

// RefusedPassword exposes the error built for them.
var RefusedPassword = refusedPassword

// SetLogger replaces the provider's logger (slog.Default otherwise).
func SetLogger(p provider.Provider, l *slog.Logger) { p.(*Neon).logger = l }

// PooledHost and DirectHost expose how hosts are derived from an endpoint.
func PooledHost(id, host string) string {
	return pooledHost(&neonapi.Endpoint{ID: id, Host: host})
}

func DirectHost(id, host string) string {
	return directHost(&neonapi.Endpoint{ID: id, Host: host})
}

// StrongRandomPassword exposes what Retire scrambles with.
var StrongRandomPassword = strongRandomPassword
