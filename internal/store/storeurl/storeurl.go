// Package storeurl opens a store.Store from the state location a user
// gives (config `state:`, --state or ROTOR_STATE_URL), choosing the driver
// by URL scheme the way golang-migrate does: a plain path or sqlite://PATH
// is the embedded SQLite file, postgres:// or postgresql:// a shared
// PostgreSQL store. An unknown scheme fails with the known ones.
package storeurl

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"

	"github.com/rotorhq/rotor/internal/secret"
	"github.com/rotorhq/rotor/internal/store"
	"github.com/rotorhq/rotor/internal/store/postgres"
	"github.com/rotorhq/rotor/internal/store/sqlite"
)

// SchemaParam is the URL query parameter that names the PostgreSQL schema
// (default postgres.DefaultSchema). It is taken out of the URL before
// connecting: the server would reject it as an unknown setting.
const SchemaParam = "schema"

// opener opens the store at a location whose scheme selected it.
type opener func(ctx context.Context, location string) (store.Store, error)

// openers is the registry of drivers by scheme.
var openers = map[string]opener{
	"sqlite":     openSQLite,
	"file":       openSQLite,
	"postgres":   openPostgres,
	"postgresql": openPostgres,
}

// Schemes returns the known schemes, sorted.
func Schemes() []string {
	var s []string
	for k := range openers {
		s = append(s, k)
	}
	slices.Sort(s)
	return s
}

// Open opens the store at location. The location may carry a password
// (postgres://user:pw@host/db); no error repeats it.
func Open(ctx context.Context, location string) (store.Store, error) {
	scheme, _, hasScheme := strings.Cut(location, "://")
	if !hasScheme {
		return sqlite.Open(ctx, location)
	}
	open, ok := openers[strings.ToLower(scheme)]
	if !ok {
		// Only the scheme: the rest of the location may hold a password.
		return nil, fmt.Errorf("unknown state store scheme %q (known: %s://…, or a plain file path for SQLite)",
			scheme, strings.Join(Schemes(), "://…, "))
	}
	return open(ctx, location)
}

// SQLitePath returns the file of a location that names an SQLite store (a
// plain path, sqlite://PATH or file://PATH), and false for any other.
func SQLitePath(location string) (string, bool) {
	scheme, path, hasScheme := strings.Cut(location, "://")
	if !hasScheme {
		return location, true
	}
	switch strings.ToLower(scheme) {
	case "sqlite", "file":
		return path, path != ""
	}
	return "", false
}

func openSQLite(ctx context.Context, location string) (store.Store, error) {
	path, ok := SQLitePath(location)
	if !ok {
		return nil, errors.New("state store sqlite:// needs a file path, e.g. sqlite:///var/lib/rotor/state.db")
	}
	return sqlite.Open(ctx, path)
}

func openPostgres(ctx context.Context, location string) (store.Store, error) {
	u, err := url.Parse(location)
	if err != nil {
		// url's message quotes the input, password included.
		return nil, errors.New("the postgres:// state URL does not parse; check its quoting (percent-encode special characters in the password)")
	}
	q := u.Query()
	schema := q.Get(SchemaParam)
	q.Del(SchemaParam)
	u.RawQuery = q.Encode()
	return postgres.Open(ctx, postgres.Options{URL: secret.New(u.String()), Schema: schema})
}
