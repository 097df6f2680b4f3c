package config_test

import (
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/rotorhq/rotor/internal/config"
	"github.com/rotorhq/rotor/internal/provider"
	"github.com/rotorhq/rotor/internal/resolve"
	"github.com/rotorhq/rotor/internal/secret"
)

func TestParseValidConfig(t *testing.T) {
	t.Parallel()
	cfg := mustParse(t, validConfig, baseEnv)

	dir, err := filepath.Abs("conf")
	require.NoError(t, err)
	require.Equal(t, filepath.Join(dir, "rotor.yaml"), cfg.Path)
	require.Equal(t, dir, cfg.Dir)
	require.Equal(t, filepath.Join(dir, ".rotor", "state.db"), cfg.State)
	require.Equal(t, filepath.Join(dir, ".rotor", "key"), cfg.KeyFile)
	require.Len(t, cfg.Credentials, 1)

	cr := cfg.Credentials[0]
	require.Equal(t, "app", cr.Name)
	require.Equal(t, lineOf(t, validConfig, "  app:"), cr.Line)
	require.Equal(t, "fakepg", cr.ProviderType)
	require.Equal(t, "postgresql://admin:s3cret@db.internal/postgres", cr.Provider.(*fakeProvider).opts.AdminURL)
	require.Equal(t, "db.internal", cr.Conn.Host)
	require.Equal(t, "app", cr.Conn.Database)
	require.Nil(t, cr.Pooled)
	require.Equal(t, config.StrategyDual, cr.Strategy)
	require.Equal(t, []string{"app_blue", "app_green"}, cr.Roles)
	require.Equal(t, "app", cr.Group)
	require.Equal(t, secret.DefaultPolicy(), cr.Policy)
	require.Equal(t, 30*24*time.Hour, cr.Schedule.Every)
	require.Equal(t, "every 30d", cr.Schedule.String())

	// Documented defaults.
	require.Equal(t, time.Hour, cr.DrainTimeout)
	require.Equal(t, 250*time.Millisecond, cr.DrainPoll)
	require.Equal(t, 30*time.Second, cr.DrainGrace)
	require.Equal(t, 10*time.Second, cr.DrainQuiet)
	require.Equal(t, 2*time.Minute, cr.DrainWait)
	require.Equal(t, 15*time.Minute, cr.Targets[0].ReloadTimeout)
	require.False(t, cr.DrainTerminate)
	require.Equal(t, config.RetireImmediately, cr.Retire)
	require.Equal(t, provider.RetireScramble, cr.RetireMethod)
	require.Equal(t, 15*time.Second, cr.TestTimeout)
	require.True(t, cr.TestPooled)
	require.Equal(t, 8, cr.Concurrency)
	require.Equal(t, 5, cr.Attempts)
	require.Equal(t, 30*time.Second, cr.MaxBackoff)
	require.Equal(t, 60*time.Second, cr.TargetTimeout)
	require.Zero(t, cr.ExpireAfter)

	require.Len(t, cr.Targets, 1)
	tg := cr.Targets[0]
	require.Equal(t, "env", tg.Name)
	require.Equal(t, "fakefile", tg.Type)
	require.Equal(t, lineOf(t, validConfig, "- name: env"), tg.Line)
	require.Equal(t, []string{"DATABASE_URL"}, tg.Keys)
	require.Equal(t, "{{.URL}}", tg.Values[0].Text())
	ft := tg.Impl.(*fakeTarget)
	require.Equal(t, ".env", ft.opts.Path)
	require.Equal(t, dir, ft.baseDir, "targets resolve relative paths against the config's directory")

	got, err := cfg.Credential("app")
	require.NoError(t, err)
	require.Same(t, cr, got)
	_, err = cfg.Credential("ap")
	require.EqualError(t, err, `no credential "ap" in conf/rotor.yaml (known: app)`)
}

func TestParseEveryOption(t *testing.T) {
	t.Parallel()
	src := `version: 1
credentials:
  app:
    provider: {type: fakepg, admin_url: "${ADMIN_URL}", timeout: 2d}
    connection:
      url: postgresql://db.internal/app
      pooled_url: postgresql://pool.internal:6432/app
    strategy: single
    role: app_user
    password: {length: 48, symbols: true, upper: false}
    expire_after: 90d
    schedule: {cron: "0 3 * * 1", window: "Sat,Sun 02:00-05:00 Europe/Berlin", jitter: 1h}
    drain: {timeout: 10m, poll: 5s, terminate: true}
    retire: next-rotation
    retire_method: nologin
    test: {timeout: 20s, pooled: false}
    publish: {concurrency: 2, attempts: 3, max_backoff: 1m, timeout: 90s}
    targets:
      - {name: a, type: fakefile, path: a.env, mode: "0640", values: {A: "{{.User}}", B: "{{.Password}}"}}
      - {name: b, type: bare, values: {PGHOST: "{{.Host}}"}}
`
	cr := mustParse(t, src, baseEnv).Credentials[0]
	require.Equal(t, 48*time.Hour, cr.Provider.(*fakeProvider).opts.Timeout.D())
	require.Equal(t, "pool.internal", cr.Pooled.Host)
	require.Equal(t, []string{"app_user"}, cr.Roles)
	require.Empty(t, cr.Group)
	require.Equal(t, 48, cr.Policy.Length)
	require.True(t, cr.Policy.Symbols)
	require.False(t, cr.Policy.Upper)
	require.True(t, cr.Policy.Lower)
	require.Equal(t, 90*24*time.Hour, cr.ExpireAfter)
	require.Equal(t, "cron 0 3 * * 1, in Sat,Sun 02:00-05:00 Europe/Berlin, jitter 1h0m0s", cr.Schedule.String())
	require.Equal(t, 10*time.Minute, cr.DrainTimeout)
	require.Equal(t, 5*time.Second, cr.DrainPoll)
	require.True(t, cr.DrainTerminate)
	require.Equal(t, config.RetireNextRotation, cr.Retire)
	require.Equal(t, provider.RetireNoLogin, cr.RetireMethod)
	require.Equal(t, 20*time.Second, cr.TestTimeout)
	require.False(t, cr.TestPooled)
	require.Equal(t, 2, cr.Concurrency)
	require.Equal(t, 3, cr.Attempts)
	require.Equal(t, time.Minute, cr.MaxBackoff)
	require.Equal(t, 90*time.Second, cr.TargetTimeout)
	require.Len(t, cr.Targets, 2)
	require.Equal(t, []string{"A", "B"}, cr.Targets[0].Keys, "keys keep the file's order")
	require.Equal(t, "0640", cr.Targets[0].Impl.(*fakeTarget).opts.Mode)
	require.Equal(t, "bare", cr.Targets[1].Impl.Info().Type)
}

func TestInterpolation(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		line  string // replaces "mode: x" in the target
		env   map[string]string
		mode  string
		extra any
	}{
		{name: "whole value", line: "mode: ${MODE}", env: map[string]string{"MODE": "0600"}, mode: "0600"},
		{name: "inside a value", line: "mode: a-${MODE}-b", env: map[string]string{"MODE": "x"}, mode: "a-x-b"},
		{name: "two variables", line: "mode: ${A}${B}", env: map[string]string{"A": "1", "B": "2"}, mode: "12"},
		{name: "set but empty", line: "mode: x${EMPTY}", env: map[string]string{"EMPTY": ""}, mode: "x"},
		{name: "dollar dollar is a literal dollar", line: "mode: pa$$word", mode: "pa$word"},
		{name: "escaped reference stays literal", line: "mode: $${HOME}", mode: "${HOME}"},
		{name: "lone dollar stays", line: "mode: a$b", mode: "a$b"},
		{name: "no recursive expansion", line: "mode: ${A}", env: map[string]string{"A": "${B}", "B": "no"}, mode: "${B}"},
		{name: "number from env stays a string", line: "extra: ${NUM}", env: map[string]string{"NUM": "007"}, extra: "007"},
		{name: "boolean from env stays a string", line: "extra: ${FLAG}", env: map[string]string{"FLAG": "true"}, extra: "true"},
		{name: "null from env stays a string", line: "extra: ${NULL}", env: map[string]string{"NULL": "~"}, extra: "~"},
		{name: "literal number is a number", line: "extra: 7", extra: 7},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			src := replace(t, validConfig, "path: .env", "path: .env\n        "+tt.line)
			cfg := mustParse(t, src, withEnv(tt.env))
			opts := cfg.Credentials[0].Targets[0].Impl.(*fakeTarget).opts
			require.Equal(t, tt.mode, opts.Mode)
			require.Equal(t, tt.extra, opts.Extra)
		})
	}
}

func TestAdminURLWithoutLiteralPassword(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		value string
		env   map[string]string
		want  string
	}{
		{name: "whole URL from env", value: "${ADMIN_URL}", want: baseEnv["ADMIN_URL"]},
		{name: "no password at all", value: "postgresql://admin@db.internal/postgres?sslmode=require", want: "postgresql://admin@db.internal/postgres?sslmode=require"},
		{name: "no user info", value: "postgresql://db.internal/postgres", want: "postgresql://db.internal/postgres"},
		{name: "password from env, rest literal", value: "postgresql://admin:${PW}@db.internal/postgres", env: map[string]string{"PW": "pw"}, want: "postgresql://admin:pw@db.internal/postgres"},
		{name: "keyword form with password from env", value: "'host=db.internal user=admin password=${PW}'", env: map[string]string{"PW": "pw"}, want: "host=db.internal user=admin password=pw"},
		{name: "keyword form without password", value: "'host=db.internal user=admin'", want: "host=db.internal user=admin"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			src := replace(t, validConfig, "admin_url: ${ADMIN_URL}", "admin_url: "+tt.value)
			cfg := mustParse(t, src, withEnv(tt.env))
			require.Equal(t, tt.want, cfg.Credentials[0].Provider.(*fakeProvider).opts.AdminURL)
		})
	}
}

func TestGroup(t *testing.T) {
	t.Parallel()
	tests := []struct {
		roles, group, want string
	}{
		{roles: "[app_blue, app_green]", want: "app"},
		{roles: "[app-blue, app-green]", want: "app"},
		{roles: "[app.1, app.2]", want: "app"},
		{roles: "[billing_a, billing_b]", want: "billing"},
		{roles: "[app_blue, app_green]", group: "owners", want: "owners"},
		{roles: "[blue, green]", group: "app", want: "app"},
	}
	for _, tt := range tests {
		t.Run(tt.roles+tt.group, func(t *testing.T) {
			t.Parallel()
			src := replace(t, validConfig, "roles: [app_blue, app_green]", "roles: "+tt.roles)
			if tt.group != "" {
				src = replace(t, src, "strategy: dual", "strategy: dual\n    group: "+tt.group)
			}
			require.Equal(t, tt.want, mustParse(t, src, baseEnv).Credentials[0].Group)
		})
	}
}

func TestDefaults(t *testing.T) {
	t.Parallel()
	src := `version: 1
defaults:
  provider: {type: fakepg, admin_url: "${ADMIN_URL}"}
  connection: {url: "postgresql://db.internal/app"}
  strategy: single
  role: app_user
  schedule: {every: 7d}
  drain: {timeout: 1m}
  retire: next-rotation
  targets:
    - {name: shared, type: fakefile, path: shared.env, values: {DATABASE_URL: "{{.URL}}"}}
credentials:
  plain: {}
  override:
    strategy: dual
    roles: [app_blue, app_green]
    schedule: {every: 1d}
    drain: {timeout: 2m}
    retire: immediately
    targets:
      - {name: own, type: fakefile, path: own.env, values: {PGPASSWORD: "{{.Password}}"}}
  other-db:
    provider: {type: fakepg, admin_url: "postgresql://admin@other.internal/postgres"}
    connection: {url: "postgresql://other.internal/app"}
    role: other_user
    targets:
      - {name: shared, type: fakefile, path: other.env, values: {DATABASE_URL: "{{.URL}}"}}
`
	cfg := mustParse(t, src, baseEnv)
	require.Len(t, cfg.Credentials, 3)
	plain, override, other := cfg.Credentials[0], cfg.Credentials[1], cfg.Credentials[2]

	require.Equal(t, config.StrategySingle, plain.Strategy)
	require.Equal(t, []string{"app_user"}, plain.Roles)
	require.Equal(t, 7*24*time.Hour, plain.Schedule.Every)
	require.Equal(t, time.Minute, plain.DrainTimeout)
	require.Equal(t, config.RetireNextRotation, plain.Retire)
	require.Equal(t, "db.internal", plain.Conn.Host)
	require.Len(t, plain.Targets, 1)
	require.Equal(t, "shared", plain.Targets[0].Name)

	require.Equal(t, config.StrategyDual, override.Strategy)
	require.Equal(t, []string{"app_blue", "app_green"}, override.Roles, "own roles replace the default role")
	require.Equal(t, "app", override.Group)
	require.Equal(t, 24*time.Hour, override.Schedule.Every)
	require.Equal(t, 2*time.Minute, override.DrainTimeout)
	require.Equal(t, config.RetireImmediately, override.Retire)
	require.Len(t, override.Targets, 1)
	require.Equal(t, "own", override.Targets[0].Name)

	require.Equal(t, []string{"other_user"}, other.Roles)
	require.Equal(t, "other.internal", other.Conn.Host)

	// Identical provider settings share one provider (one admin pool).
	require.Same(t, plain.Provider, override.Provider)
	require.NotSame(t, plain.Provider, other.Provider)
}

func TestStateAndKeyFilePaths(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	abs := filepath.Join(dir, "elsewhere", "k")
	tests := []struct {
		name, lines        string
		wantState, wantKey string
	}{
		{name: "defaults", wantState: filepath.Join(dir, ".rotor", "state.db"), wantKey: filepath.Join(dir, ".rotor", "key")},
		{name: "relative", lines: "state: data/rotor.db\nkey_file: secrets/rotor.key\n",
			wantState: filepath.Join(dir, "data", "rotor.db"), wantKey: filepath.Join(dir, "secrets", "rotor.key")},
		{name: "parent directory", lines: "state: ../shared/state.db\n",
			wantState: filepath.Join(filepath.Dir(dir), "shared", "state.db"), wantKey: filepath.Join(dir, ".rotor", "key")},
		{name: "absolute", lines: "state: " + abs + ".db\nkey_file: " + abs + "\n", wantState: abs + ".db", wantKey: abs},
		{name: "URL kept as is", lines: "state: sqlite://relative/state.db\n", wantState: "sqlite://relative/state.db", wantKey: filepath.Join(dir, ".rotor", "key")},
		{name: "postgres URL without a password", lines: "state: postgres://rotor@db.internal/rotor?sslmode=verify-full\n", wantState: "postgres://rotor@db.internal/rotor?sslmode=verify-full", wantKey: filepath.Join(dir, ".rotor", "key")},
		{name: "postgres URL from the environment", lines: "state: ${STATE_URL}\n", wantState: "postgres://rotor:pw@db.internal/rotor", wantKey: filepath.Join(dir, ".rotor", "key")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			src := replace(t, validConfig, "version: 1\n", "version: 1\n"+tt.lines)
			env := maps.Clone(baseEnv)
			env["STATE_URL"] = "postgres://rotor:pw@db.internal/rotor"
			cfg, err := resolve.Parse(filepath.Join(dir, "rotor.yaml"), []byte(src), envOf(env), fakeRegistry())
			require.NoError(t, err)
			require.Equal(t, tt.wantState, cfg.State)
			require.Equal(t, tt.wantKey, cfg.KeyFile)
		})
	}
}

func TestLoad(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "rotor.yaml")
	require.NoError(t, os.WriteFile(path, []byte(validConfig), 0o600))
	cfg, err := resolve.Load(path, envOf(baseEnv), fakeRegistry())
	require.NoError(t, err)
	t.Cleanup(func() { cfg.Close() })
	require.Equal(t, path, cfg.Path)
	require.Equal(t, filepath.Join(dir, ".rotor", "state.db"), cfg.State)

	_, err = resolve.Load(filepath.Join(dir, "missing.yaml"), envOf(baseEnv), fakeRegistry())
	require.ErrorContains(t, err, "missing.yaml not found; create one with `rotor init` or pass --config")

	bad := filepath.Join(dir, "bad.yaml")
	require.NoError(t, os.WriteFile(bad, []byte(strings.Replace(validConfig, "every: 30d", "every: 30x", 1)), 0o600))
	_, err = resolve.Load(bad, envOf(baseEnv), fakeRegistry())
	require.ErrorContains(t, err, bad+":12: credentials.app.schedule.every: bad duration \"30x\"")
}
