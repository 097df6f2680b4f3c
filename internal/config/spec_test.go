package config_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/rotorhq/rotor/internal/config"
)

// config reads specs only: it knows no provider or target type, builds
// nothing, and leaves each type's own options for its factory to decode,
// with config's strictness and locations.
func TestSpecsOnly(t *testing.T) {
	t.Parallel()
	src := `version: 1
defaults:
  provider: {type: anydb, admin_url: "${ADMIN_URL}", timeout: 5s}
credentials:
  a:
    strategy: single
    role: a_user
    targets:
      - {name: env, type: anytarget, path: a.env, values: {A: "{{.URL}}", B: "{{.User}}"}}
  b:
    connection: {url: "postgresql://db.internal/b"}
    strategy: single
    role: b_user
    targets:
      - {name: env, type: anytarget, path: b.env, values: {A: "{{.URL}}"}}
  c:
    provider: {type: anydb, admin_url: "postgresql://admin@other.internal/postgres"}
    connection: {url: "postgresql://other.internal/c"}
    strategy: single
    role: c_user
    targets:
      - {name: env, type: anytarget, values: {A: "{{.URL}}"}}
`
	cfg, err := config.Parse(testFile, []byte(src), envOf(baseEnv))
	require.NoError(t, err, "unknown types are for whoever builds providers and targets to judge")
	require.Equal(t, testFile, cfg.File)
	a, b, c := cfg.Credentials[0], cfg.Credentials[1], cfg.Credentials[2]

	require.True(t, a.Discover, "no connection.url: the provider has to discover it")
	require.Nil(t, a.Conn)
	require.False(t, b.Discover)
	require.Equal(t, "db.internal", b.Conn.Host)

	require.Equal(t, "anydb", a.Provider.Type)
	require.Equal(t, "credentials.a.provider", a.Provider.Path)
	require.Equal(t, lineOf(t, src, "provider: {type: anydb, admin_url: \"${ADMIN_URL}\""), a.Provider.Line)
	require.Equal(t, a.Provider.Key, b.Provider.Key, "the same settings, through defaults:")
	require.NotEqual(t, a.Provider.Key, c.Provider.Key)
	require.NotContains(t, a.Provider.Key, "s3cret")

	var opts struct {
		AdminURL string          `yaml:"admin_url"`
		Timeout  config.Duration `yaml:"timeout"`
	}
	require.NoError(t, a.Provider.Options.Decode(&opts))
	require.Equal(t, baseEnv["ADMIN_URL"], opts.AdminURL)
	require.Equal(t, "5s", opts.Timeout.String())

	// Decoding into a type that lacks a key is a located problem.
	var narrow struct {
		AdminURL string `yaml:"admin_url"`
	}
	err = a.Provider.Options.Decode(&narrow)
	errs := configErrors(t, err)
	require.Len(t, errs, 1)
	require.Equal(t, lineOf(t, src, "timeout: 5s"), errs[0].Line)
	require.Equal(t, `unknown key "timeout" in credentials.a.provider (known: admin_url)`, errs[0].Msg)

	tg := a.Targets[0]
	require.Equal(t, "anytarget", tg.Type)
	require.Equal(t, "credentials.a.targets[0] (env)", tg.Path)
	require.Equal(t, []string{"A", "B"}, tg.Keys)
	require.Equal(t, "{{.User}}", tg.Values[1].Text(), "B's template, in the place of B")
	require.Equal(t, tg.Line, tg.ValuesLine, "a flow mapping on one line")
	require.Equal(t, []int{tg.Line, tg.Line}, tg.ValueLines, "each value's line, in the order of the keys")
	key, line := tg.Options.First()
	require.Equal(t, "path", key)
	require.Equal(t, tg.Line, line)
	require.True(t, c.Targets[0].Options.Empty())
	key, _ = c.Targets[0].Options.First()
	require.Empty(t, key)
}
