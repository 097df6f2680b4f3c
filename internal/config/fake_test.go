package config_test

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/rotorhq/rotor/internal/config"
	"github.com/rotorhq/rotor/internal/provider"
	"github.com/rotorhq/rotor/internal/resolve"
	"github.com/rotorhq/rotor/internal/target"
)

// The fake registry knows one provider type (fakepg) and two target types:
// fakefile, which decodes its options like a real target, and bare, which
// takes no options and never calls Decode. Factories decode into small
// structs, so config tests need no database.

type fakeProviderOptions struct {
	AdminURL string          `yaml:"admin_url"`
	Timeout  config.Duration `yaml:"timeout"`
}

type fakeProvider struct {
	provider.Provider // unused methods panic: config must not call them
	opts              fakeProviderOptions
}

func (*fakeProvider) Close() error { return nil }

type fakeTargetOptions struct {
	Path  string `yaml:"path"`
	Mode  string `yaml:"mode"`
	Token string `yaml:"token"`
	Extra any    `yaml:"extra"`
}

type fakeTarget struct {
	target.Target
	name, typ, baseDir string
	opts               fakeTargetOptions
}

func (t *fakeTarget) Info() target.Info {
	return target.Info{Type: t.typ, Name: t.name, Destination: t.opts.Path}
}

var errInvalid = errors.New("invalid")

func fakeRegistry() resolve.Registry {
	providers := map[string]provider.Factory{
		"fakepg": func(p provider.Params) (provider.Provider, error) {
			var o fakeProviderOptions
			if err := p.Decode(&o); err != nil {
				return nil, fmt.Errorf("fakepg: %w", err)
			}
			if o.AdminURL == "" {
				return nil, fmt.Errorf("fakepg: admin_url is required: %w", errInvalid)
			}
			return &fakeProvider{opts: o}, nil
		},
	}
	targets := map[string]target.Factory{
		"fakefile": func(p target.Params) (target.Target, error) {
			var o fakeTargetOptions
			if err := p.Decode(&o); err != nil {
				return nil, fmt.Errorf("fakefile %q: %w", p.Name, err)
			}
			if o.Path == "" {
				return nil, fmt.Errorf("fakefile %q has no path: %w", p.Name, errInvalid)
			}
			return &fakeTarget{name: p.Name, typ: "fakefile", baseDir: p.BaseDir, opts: o}, nil
		},
		"bare": func(p target.Params) (target.Target, error) {
			return &fakeTarget{name: p.Name, typ: "bare"}, nil
		},
	}
	return resolve.Registry{
		Provider: func(typ string) (provider.Factory, error) {
			if f, ok := providers[typ]; ok {
				return f, nil
			}
			return nil, fmt.Errorf("unknown provider type %q (known: %s)", typ, strings.Join(sortedNames(providers), ", "))
		},
		Target: func(typ string) (target.Factory, error) {
			if f, ok := targets[typ]; ok {
				return f, nil
			}
			return nil, fmt.Errorf("unknown target type %q (known: %s)", typ, strings.Join(sortedNames(targets), ", "))
		},
	}
}

func sortedNames[V any](m map[string]V) []string {
	var names []string
	for n := range m {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// envOf turns a map into Parse's getenv.
func envOf(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := m[k]
		return v, ok
	}
}

// testFile is the path every parse in these tests reports; it does not
// need to exist because Parse never reads it.
const testFile = "conf/rotor.yaml"

// validConfig is one dual credential that loads; cases derive from it by
// replacing one piece.
const validConfig = `version: 1
credentials:
  app:
    provider:
      type: fakepg
      admin_url: ${ADMIN_URL}
    connection:
      url: postgresql://db.internal:5432/app?sslmode=require
    strategy: dual
    roles: [app_blue, app_green]
    schedule:
      every: 30d
    targets:
      - name: env
        type: fakefile
        path: .env
        values:
          DATABASE_URL: "{{.URL}}"
`

// baseEnv is the environment validConfig needs.
var baseEnv = map[string]string{"ADMIN_URL": "postgresql://admin:s3cret@db.internal/postgres"}

// replace returns src with old replaced by new, failing the test when old
// is not there exactly once: a case that silently tests validConfig would
// pass for the wrong reason.
func replace(t *testing.T, src, old, new string) string {
	t.Helper()
	require.Equal(t, 1, strings.Count(src, old), "%q must occur once in the config", old)
	return strings.Replace(src, old, new, 1)
}

// lineOf returns the 1-based number of the first line of src containing
// marker.
func lineOf(t *testing.T, src, marker string) int {
	t.Helper()
	for i, l := range strings.Split(src, "\n") {
		if strings.Contains(l, marker) {
			return i + 1
		}
	}
	require.Failf(t, "marker not found", "%q is not in the config", marker)
	return 0
}

// configErrors returns the located errors err holds.
func configErrors(t *testing.T, err error) []*config.Error {
	t.Helper()
	require.Error(t, err)
	var list config.Errors
	if errors.As(err, &list) {
		return list
	}
	var one *config.Error
	require.True(t, errors.As(err, &one), "want config.Errors or *config.Error, got %T: %v", err, err)
	return []*config.Error{one}
}

func parse(t *testing.T, src string, env map[string]string) (*resolve.Config, error) {
	t.Helper()
	cfg, err := resolve.Parse(testFile, []byte(src), envOf(env), fakeRegistry())
	if cfg != nil {
		t.Cleanup(func() { cfg.Close() })
	}
	return cfg, err
}

func mustParse(t *testing.T, src string, env map[string]string) *resolve.Config {
	t.Helper()
	cfg, err := parse(t, src, env)
	require.NoError(t, err)
	return cfg
}

func withEnv(extra map[string]string) map[string]string {
	env := map[string]string{}
	for k, v := range baseEnv {
		env[k] = v
	}
	for k, v := range extra {
		env[k] = v
	}
	return env
}
