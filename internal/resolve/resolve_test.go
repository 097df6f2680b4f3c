package resolve_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/rotorhq/rotor/internal/config"
	"github.com/rotorhq/rotor/internal/provider"
	"github.com/rotorhq/rotor/internal/resolve"
	"github.com/rotorhq/rotor/internal/target"
)

// plainProvider cannot discover endpoints; discovering can.
type plainProvider struct {
	provider.Provider // unused methods panic: resolve must not call them
	closed            *int
}

func (p *plainProvider) Close() error { *p.closed++; return nil }

type discovering struct{ plainProvider }

func (*discovering) Endpoints(context.Context, provider.EndpointsRequest) (provider.EndpointsResponse, error) {
	return provider.EndpointsResponse{}, errors.New("not called in these tests")
}

type fileTarget struct {
	target.Target
	path string
}

func registry(closed *int) resolve.Registry {
	return resolve.Registry{
		Provider: func(typ string) (provider.Factory, error) {
			return func(p provider.Params) (provider.Provider, error) {
				var o struct {
					AdminURL string `yaml:"admin_url"`
				}
				if err := p.Decode(&o); err != nil {
					return nil, err
				}
				switch typ {
				case "plain":
					return &plainProvider{closed: closed}, nil
				case "discovering":
					return &discovering{plainProvider{closed: closed}}, nil
				}
				return nil, fmt.Errorf("unknown provider type %q (known: discovering, plain)", typ)
			}, nil
		},
		Target: func(typ string) (target.Factory, error) {
			if typ != "file" {
				return nil, fmt.Errorf("unknown target type %q (known: file)", typ)
			}
			return func(p target.Params) (target.Target, error) {
				var o struct {
					Path string `yaml:"path"`
				}
				if err := p.Decode(&o); err != nil {
					return nil, err
				}
				return &fileTarget{path: o.Path}, nil
			}, nil
		},
	}
}

func credential(name, providerType, extra string) string {
	return fmt.Sprintf(`  %s:
    provider: {type: %s, admin_url: "${ADMIN_URL}"}
    strategy: single
    role: %s_user
%s    targets:
      - {name: env, type: file, path: %s.env, values: {DATABASE_URL: "{{.URL}}"}}
`, name, providerType, name, extra, name)
}

var env = func(k string) (string, bool) {
	if k == "ADMIN_URL" {
		return "postgresql://admin@db.internal/postgres", true
	}
	return "", false
}

func lineOf(t *testing.T, src, marker string) int {
	t.Helper()
	for i, l := range strings.Split(src, "\n") {
		if strings.Contains(l, marker) {
			return i + 1
		}
	}
	require.Failf(t, "marker not found", "%q", marker)
	return 0
}

// A connection.url may be left out only for a provider that discovers
// the endpoints: a capability of the built provider, not a type's name.
func TestConnectionFromTheProvider(t *testing.T) {
	t.Parallel()
	closed := 0
	src := "version: 1\ncredentials:\n" + credential("found", "discovering", "") + credential("lost", "plain", "")
	_, err := resolve.Parse("rotor.yaml", []byte(src), env, registry(&closed))
	var errs config.Errors
	require.ErrorAs(t, err, &errs)
	require.Len(t, errs, 1, "%v", err)
	require.Equal(t, lineOf(t, src, "  lost:"), errs[0].Line)
	require.Contains(t, errs[0].Msg, "credentials.lost has no connection.url")
	require.Equal(t, 2, closed, "a config that fails to build closes what it built")

	src = "version: 1\ncredentials:\n" + credential("found", "discovering", "")
	cfg, err := resolve.Parse("rotor.yaml", []byte(src), env, registry(&closed))
	require.NoError(t, err)
	t.Cleanup(func() { cfg.Close() })
	cr, err := cfg.Credential("found")
	require.NoError(t, err)
	require.Nil(t, cr.Conn)
	require.Equal(t, "discovering", cr.ProviderType)
	require.Equal(t, "found.env", cr.Targets[0].Impl.(*fileTarget).path)
}

// The problems config finds and those the factories find are one report,
// in file order, even within one credential.
func TestOneReport(t *testing.T) {
	t.Parallel()
	closed := 0
	src := "version: 1\ncredentials:\n" +
		strings.Replace(credential("a", "plain", "    connection: {url: \"postgresql://db/app\"}\n    schedule: {every: 10s}\n"), "path: a.env", "pth: a.env", 1) +
		strings.Replace(credential("b", "mysql", "    connection: {url: \"postgresql://db/app\"}\n"), "role: b_user", "role: b_user\n    retire: later", 1)
	cfg, err := resolve.Parse("rotor.yaml", []byte(src), env, registry(&closed))
	require.Nil(t, cfg)
	var errs config.Errors
	require.ErrorAs(t, err, &errs)
	var got []string
	for _, e := range errs {
		require.Equal(t, "rotor.yaml", e.File)
		got = append(got, fmt.Sprintf("%d %s", e.Line, e.Msg))
	}
	require.Equal(t, []string{
		fmt.Sprintf("%d credentials.a.schedule: every 10s is shorter than a minute; rotations need time to publish and drain", lineOf(t, src, "  a:")),
		fmt.Sprintf("%d unknown key \"pth\" in credentials.a.targets[0] (env) (known: path)", lineOf(t, src, "pth: a.env")),
		fmt.Sprintf("%d credentials.b: unknown retire \"later\" (known: immediately, next-rotation)", lineOf(t, src, "  b:")),
		fmt.Sprintf("%d credentials.b.provider: unknown provider type \"mysql\" (known: discovering, plain)", lineOf(t, src, "type: mysql")),
	}, got)
}

// Credentials written with the same provider settings share one provider
// (one admin pool); Close closes each provider once.
func TestSharedProvider(t *testing.T) {
	t.Parallel()
	closed := 0
	src := "version: 1\ncredentials:\n" +
		credential("a", "plain", "    connection: {url: \"postgresql://db/a\"}\n") +
		credential("b", "plain", "    connection: {url: \"postgresql://db/b\"}\n") +
		credential("c", "discovering", "")
	cfg, err := resolve.Parse("rotor.yaml", []byte(src), env, registry(&closed))
	require.NoError(t, err)
	require.Len(t, cfg.Credentials, 3)
	require.Same(t, cfg.Credentials[0].Provider, cfg.Credentials[1].Provider)
	require.NotSame(t, cfg.Credentials[0].Provider, cfg.Credentials[2].Provider)
	require.NoError(t, cfg.Close())
	require.Equal(t, 2, closed)
	_, err = cfg.Credential("d")
	require.EqualError(t, err, `no credential "d" in rotor.yaml (known: a, b, c)`)
}
