package config_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// Anchors, aliases and merge keys let one file share a provider, a target
// or a block of settings between credentials, as YAML users expect.
func TestAnchorsAliasesAndMergeKeys(t *testing.T) {
	t.Parallel()
	src := `version: 1
x-shared:
  provider: &pg {type: fakepg, admin_url: "${ADMIN_URL}"}
  env-target: &env {name: env, type: fakefile, path: "$${HOME}.env", values: {DATABASE_URL: "{{.URL}}"}}
  dual: &dual
    strategy: dual
    drain: {timeout: 2m}
credentials:
  api:
    <<: *dual
    provider: *pg
    connection: {url: "postgresql://db.internal/api"}
    roles: [api_blue, api_green]
    targets: [*env]
  worker:
    <<: [*dual]
    drain: {timeout: 7m}
    provider: *pg
    connection: {url: "postgresql://db.internal/worker"}
    roles: [worker_blue, worker_green]
    targets:
      - {<<: *env, values: {WORKER_DATABASE_URL: "{{.URL}}"}}
      - {<<: *env, name: extra, path: extra.env}
`
	cfg := mustParse(t, src, withEnv(map[string]string{"HOME": "must-not-be-read"}))
	api, worker := cfg.Credentials[0], cfg.Credentials[1]
	require.Equal(t, "dual", string(api.Strategy))
	require.Equal(t, 2*60, int(api.DrainTimeout.Seconds()), "merged from the anchor")
	require.Equal(t, 7*60, int(worker.DrainTimeout.Seconds()), "a key the mapping sets wins over the merge")
	require.Equal(t, "dual", string(worker.Strategy))
	require.Same(t, api.Provider, worker.Provider, "one provider, as if written out twice")
	require.Len(t, worker.Targets, 2)
	require.Equal(t, "extra", worker.Targets[1].Name)
	// "$$" is a literal "$", expanded once even though the target is used
	// three times: never an environment lookup of HOME.
	for _, tg := range append(api.Targets, worker.Targets[0]) {
		require.Equal(t, "env", tg.Name)
		require.Equal(t, "${HOME}.env", tg.Impl.(*fakeTarget).opts.Path)
	}
}

// A file whose aliases nest into an enormous tree is refused at its line,
// not expanded.
func TestAliasBombRefused(t *testing.T) {
	t.Parallel()
	var b strings.Builder
	b.WriteString("version: 1\nx-bomb:\n  a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n")
	for i := 1; i <= 9; i++ {
		fmt.Fprintf(&b, "  a%d: &a%d [", i, i)
		for j := 0; j < 10; j++ {
			if j > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "*a%d", i-1)
		}
		b.WriteString("]\n")
	}
	b.WriteString("credentials: {}\n")
	_, err := parse(t, b.String(), baseEnv)
	errs := configErrors(t, err)
	require.Contains(t, errs[0].Msg, "expand to more than")
	require.Positive(t, errs[0].Line)
}

// An unknown key inside an anchored block is reported where the block is
// written, like any other unknown key.
func TestAliasErrorsPointAtTheAnchor(t *testing.T) {
	t.Parallel()
	src := replace(t, validConfig, "    strategy: dual\n", "    strategy: dual\n    drain: &d {timeout: 1m, tiemout: 2m}\n")
	_, err := parse(t, src, baseEnv)
	errs := configErrors(t, err)
	require.Len(t, errs, 1)
	require.Equal(t, lineOf(t, src, "tiemout"), errs[0].Line)
	require.Contains(t, errs[0].Msg, `unknown key "tiemout"`)
}

// A large file written out, without aliases, is not an alias bomb: 10,000
// credentials (a `rotor serve` fleet, well over 100,000 YAML nodes) load.
func TestLargeFileWithoutAliasesLoads(t *testing.T) {
	t.Parallel()
	var b strings.Builder
	b.WriteString("version: 1\ncredentials:\n")
	for i := range 10000 {
		fmt.Fprintf(&b, "  c%05d:\n    provider: {type: fakepg, admin_url: \"${ADMIN_URL}\"}\n    connection: {url: \"postgresql://db.internal/app\"}\n    strategy: single\n    role: r%05d\n    targets:\n      - {name: env, type: fakefile, path: .env.c%05d, values: {DATABASE_URL: \"{{.URL}}\"}}\n", i, i, i)
	}
	cfg, err := parse(t, b.String(), baseEnv)
	require.NoError(t, err)
	require.Len(t, cfg.Credentials, 10000)
}
