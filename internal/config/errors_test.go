package config_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// wantErr is one expected problem: at is a piece of the line it must point
// to ("" for a problem of the whole file), msg pieces of its message.
type wantErr struct {
	at  string
	msg []string
}

func TestParseErrors(t *testing.T) {
	t.Parallel()
	const credentialKeys = "(known: connection, drain, expire_after, group, password, provider, publish, retire, retire_method, role, roles, schedule, strategy, targets, test)"
	const fields = "(known: .URL, .DirectURL, .PooledURL, .User, .Password, .Host, .Port, .Database, .ReplicaURL)"
	v := validConfig
	twice := v + strings.TrimPrefix(v, "version: 1\ncredentials:\n")
	tests := []struct {
		name string
		src  string
		env  map[string]string // added to baseEnv
		want []wantErr
	}{
		{
			name: "unknown top-level key",
			src:  replace(t, v, "version: 1\n", "version: 1\nstat: x.db\n"),
			want: []wantErr{{"stat: x.db", []string{`unknown key "stat" in the document (known: credentials, defaults, key_file, state, version)`}}},
		},
		{
			name: "unknown key in a credential",
			src:  replace(t, v, "strategy: dual", "stratgy: dual"),
			want: []wantErr{{"stratgy", []string{`unknown key "stratgy" in credentials.app ` + credentialKeys}}},
		},
		{
			name: "unknown key in a nested block",
			src:  replace(t, v, "every: 30d", "every: 30d\n      windw: 02:00-05:00"),
			want: []wantErr{{"windw", []string{`unknown key "windw" in credentials.app.schedule (known: cron, every, jitter, window)`}}},
		},
		{
			name: "unknown key in the defaults block",
			src:  replace(t, v, "credentials:\n", "defaults:\n  drain: {timout: 5m}\ncredentials:\n"),
			want: []wantErr{{"timout", []string{`unknown key "timout" in defaults.drain (known: grace, poll, quiet, terminate, timeout, wait)`}}},
		},
		{
			name: "state URL with a password",
			src:  replace(t, v, "version: 1\n", "version: 1\nstate: postgres://rotor:hunter2@db.internal/rotor\n"),
			want: []wantErr{{"state: postgres", []string{"state holds a password in the config file", "ROTOR_STATE_URL"}}},
		},
		{
			name: "drain timeout shorter than grace and quiet",
			src:  replace(t, v, "    strategy: dual\n", "    strategy: dual\n    drain: {timeout: 20s, grace: 30s}\n"),
			want: []wantErr{{"  app:", []string{`credentials.app.drain: timeout (20s) is shorter than grace + quiet (40s)`, "raise timeout"}}},
		},
		{
			name: "drain poll longer than quiet",
			src:  replace(t, v, "    strategy: dual\n", "    strategy: dual\n    drain: {poll: 5s, quiet: 2s}\n"),
			want: []wantErr{{"  app:", []string{`credentials.app.drain: poll (5s) is longer than quiet (2s)`}}},
		},
		{
			name: "reload_timeout that is not a duration",
			src:  replace(t, v, "        type: fakefile\n", "        type: fakefile\n        reload_timeout: soon\n"),
			want: []wantErr{{"reload_timeout: soon", []string{`reload_timeout`}}},
		},
		{
			name: "unknown key in a target's own options",
			src:  replace(t, v, "path: .env", "pth: .env"),
			want: []wantErr{{"pth: .env", []string{`unknown key "pth" in credentials.app.targets[0] (env) (known: extra, mode, path, token)`}}},
		},
		{
			name: "unknown key in a provider's own options",
			src:  replace(t, v, "admin_url: ${ADMIN_URL}", "admin_url: ${ADMIN_URL}\n      timout: 5s"),
			want: []wantErr{{"timout", []string{`unknown key "timout" in credentials.app.provider (known: admin_url, timeout)`}}},
		},
		{
			name: "bad duration in a provider's own options",
			src:  replace(t, v, "admin_url: ${ADMIN_URL}", "admin_url: ${ADMIN_URL}\n      timeout: 5x"),
			want: []wantErr{{"timeout: 5x", []string{`credentials.app.provider.timeout: bad duration "5x"`}}},
		},
		{
			name: "options for a target type that takes none",
			src:  replace(t, v, "type: fakefile", "type: bare"),
			want: []wantErr{{"path: .env", []string{`unknown key "path" in credentials.app.targets[0] (env) (known: name, type, values, reload_timeout)`, "the bare target takes no options"}}},
		},
		{
			name: "duplicate key",
			src:  replace(t, v, "strategy: dual", "strategy: dual\n    strategy: single"),
			want: []wantErr{{"strategy: single", []string{"credentials.app.strategy is set twice"}}},
		},
		{
			name: "duplicate value key",
			src:  replace(t, v, `DATABASE_URL: "{{.URL}}"`, "DATABASE_URL: \"{{.URL}}\"\n          DATABASE_URL: \"{{.DirectURL}}\""),
			want: []wantErr{{"{{.DirectURL}}", []string{"credentials.app.targets[0].values.DATABASE_URL is set twice"}}},
		},
		{
			name: "duplicate credential",
			src:  twice,
			want: []wantErr{{fmt.Sprintf("#%d", nthLine(twice, "  app:", 2)), []string{"credential app is defined twice (first at line 3); names must be unique"}}},
		},
		{
			name: "bad duration",
			src:  replace(t, v, "every: 30d", "every: 5x"),
			want: []wantErr{{"every: 5x", []string{`credentials.app.schedule.every: bad duration "5x"; write e.g. 90s, 15m, 12h or 30d`}}},
		},
		{
			name: "duration that is not a value",
			src:  replace(t, v, "every: 30d", "every: [30d]"),
			want: []wantErr{{"every: [30d]", []string{"credentials.app.schedule.every must be a duration like 90s, 15m, 12h or 30d"}}},
		},
		{
			name: "bad template",
			src:  replace(t, v, "{{.URL}}", "{{.Passwrod}}"),
			want: []wantErr{{"{{.Passwrod}}", []string{"credentials.app.targets[0] (env).values.DATABASE_URL: bad template: unknown field .Passwrod " + fields}}},
		},
		{
			name: "empty template",
			src:  replace(t, v, `"{{.URL}}"`, `""`),
			want: []wantErr{{`DATABASE_URL: ""`, []string{"values.DATABASE_URL: empty template"}}},
		},
		{
			name: "missing environment variable",
			src:  replace(t, v, "db.internal:5432", "${DB_HOST}:5432"),
			want: []wantErr{{"${DB_HOST}", []string{"environment variable DB_HOST is not set; export it before running rotor"}}},
		},
		{
			name: "literal password in admin_url",
			src:  replace(t, v, "${ADMIN_URL}", "postgresql://admin:hunter2@db.internal/postgres"),
			want: []wantErr{{"hunter2", []string{"credentials.app.provider.admin_url holds a secret in the config file; put it in an environment variable and write admin_url: ${ROTOR_ADMIN_URL}"}}},
		},
		{
			name: "literal password in admin_url whose host comes from the environment",
			src:  replace(t, v, "${ADMIN_URL}", "postgresql://admin:hunter2@${DB_HOST}/postgres"),
			env:  map[string]string{"DB_HOST": "db.internal"},
			want: []wantErr{{"hunter2", []string{"credentials.app.provider.admin_url holds a secret in the config file"}}},
		},
		{
			name: "literal password in a keyword admin_url",
			src:  replace(t, v, "${ADMIN_URL}", "'host=db.internal user=admin password=hunter2'"),
			want: []wantErr{{"hunter2", []string{"admin_url holds a secret"}}},
		},
		{
			name: "literal token in a target",
			src:  replace(t, v, "path: .env", "path: .env\n        token: tok_123"),
			want: []wantErr{{"tok_123", []string{"credentials.app.targets[0] (env).token holds a secret in the config file; put it in an environment variable and write token: ${FAKEFILE_TOKEN}"}}},
		},
		{
			name: "dual with one role",
			src:  replace(t, v, "roles: [app_blue, app_green]", "roles: [app_blue]"),
			want: []wantErr{{"  app:", []string{"credentials.app uses strategy dual and needs two different login roles: roles: [app_blue, app_green]"}}},
		},
		{
			name: "dual with the same role twice",
			src:  replace(t, v, "roles: [app_blue, app_green]", "roles: [app_blue, app_blue]"),
			want: []wantErr{{"  app:", []string{"needs two different login roles"}}},
		},
		{
			name: "dual with role",
			src:  replace(t, v, "roles: [app_blue, app_green]", "role: app"),
			want: []wantErr{
				{"  app:", []string{"needs two different login roles"}},
				{"  app:", []string{"credentials.app: role: is for strategy single; with dual use roles: [a, b]"}},
			},
		},
		{
			name: "single with roles",
			src:  replace(t, v, "strategy: dual", "strategy: single"),
			want: []wantErr{
				{"  app:", []string{"credentials.app uses strategy single and needs role: <the login role>"}},
				{"  app:", []string{"credentials.app: roles: is for strategy dual; with single use role:"}},
			},
		},
		{
			name: "group not derivable",
			src:  replace(t, v, "[app_blue, app_green]", "[blue, green]"),
			want: []wantErr{{"  app:", []string{"credentials.app: set group: <owner role> (the NOLOGIN role that owns the objects); it cannot be derived from blue and green"}}},
		},
		{
			name: "unknown strategy",
			src:  replace(t, v, "strategy: dual", "strategy: triple"),
			want: []wantErr{{"  app:", []string{`credentials.app: unknown strategy "triple" (known: dual, single)`}}},
		},
		{
			name: "unknown provider type",
			src:  replace(t, v, "type: fakepg", "type: mysql"),
			want: []wantErr{{"type: mysql", []string{`credentials.app.provider: unknown provider type "mysql" (known: fakepg)`}}},
		},
		{
			name: "provider without type",
			src:  replace(t, v, "      type: fakepg\n", ""),
			want: []wantErr{{"admin_url", []string{"credentials.app.provider has no type; add type: postgres (or neon)"}}},
		},
		{
			name: "unknown target type",
			src:  replace(t, v, "type: fakefile", "type: s3"),
			want: []wantErr{{"- name: env", []string{`credentials.app.targets[0] (env): unknown target type "s3" (known: bare, fakefile)`}}},
		},
		{
			name: "target factory error",
			src:  replace(t, v, "        path: .env\n", ""),
			want: []wantErr{{"- name: env", []string{`credentials.app.targets[0] (env): fakefile "env" has no path`}}},
		},
		{
			name: "target without values",
			src:  replace(t, v, "        values:\n          DATABASE_URL: \"{{.URL}}\"\n", ""),
			want: []wantErr{{"- name: env", []string{"credentials.app.targets[0] (env) has no values"}}},
		},
		{
			name: "two targets with one name",
			src:  v + "      - {name: env, type: fakefile, path: .env2, values: {X: \"{{.User}}\"}}\n",
			want: []wantErr{{"path: .env2", []string{`credentials.app: two targets are named "env"; names must be unique`}}},
		},
		{
			name: "bad credential name",
			src:  replace(t, v, "  app:", "  my app!:"),
			want: []wantErr{{"my app!", []string{`credential name "my app!" must start with a letter or digit`}}},
		},
		{
			name: "missing connection",
			src:  replace(t, v, "    connection:\n      url: postgresql://db.internal:5432/app?sslmode=require\n", ""),
			want: []wantErr{{"  app:", []string{"credentials.app has no connection.url"}}},
		},
		{
			name: "bad window",
			src:  replace(t, v, "every: 30d", "every: 30d\n      window: Mon-Fri 25:00-03:00"),
			want: []wantErr{{"  app:", []string{`credentials.app.schedule: bad window "Mon-Fri 25:00-03:00": bad time "25:00"`}}},
		},
		{
			name: "two mistakes are two lines",
			src:  replace(t, replace(t, v, "strategy: dual", "stratgy: dual"), "every: 30d", "every: 30x"),
			want: []wantErr{
				{"stratgy", []string{`unknown key "stratgy"`}},
				{"every: 30x", []string{`bad duration "30x"`}},
			},
		},
		{
			name: "mistakes in two credentials",
			src: strings.Replace(v, "every: 30d", "every: soon", 1) + strings.NewReplacer("  app:", "  other:", "{{.URL}}", "{{.Url}}", "path: .env", "path: other.env").
				Replace(strings.TrimPrefix(v, "version: 1\ncredentials:\n")),
			want: []wantErr{
				{"every: soon", []string{`credentials.app.schedule.every: bad duration "soon"`}},
				{"{{.Url}}", []string{"credentials.other.targets[0] (env).values.DATABASE_URL: bad template: unknown field .Url"}},
			},
		},
		{
			name: "unsupported version",
			src:  replace(t, v, "version: 1", "version: 2"),
			want: []wantErr{{"version: 2", []string{"version: 2 is not supported; this rotor reads version: 1"}}},
		},
		{
			name: "no version",
			src:  replace(t, v, "version: 1\n", ""),
			want: []wantErr{{"", []string{"no version: line; add version: 1"}}},
		},
		{
			name: "no credentials",
			src:  "version: 1\n",
			want: []wantErr{{"", []string{"no credentials: section"}}},
		},
		{
			name: "empty credentials",
			src:  "version: 1\ncredentials: {}\n",
			want: []wantErr{{"credentials: {}", []string{"credentials: is empty; add one"}}},
		},
		{
			name: "null credentials",
			src:  "version: 1\ncredentials:\n",
			want: []wantErr{{"credentials:", []string{"credentials: is empty; add one"}}},
		},
		{
			name: "credentials as a list",
			src:  "version: 1\ncredentials:\n  - app\n",
			want: []wantErr{{"- app", []string{"credentials must be a mapping of credential names to their settings"}}},
		},
		{
			name: "document is a list",
			src:  "- version: 1\n",
			want: []wantErr{{"- version", []string{"the document must be a mapping"}}},
		},
		{
			name: "not YAML",
			src:  "version: 1\ncredentials: [unclosed\n",
			want: []wantErr{{"[unclosed", []string{"not valid YAML: did not find expected ',' or ']'"}}},
		},
		{name: "empty file", src: "", want: []wantErr{{"", []string{"the file is empty; start from `rotor init`"}}}},
		{name: "only comments", src: "# nothing yet\n", want: []wantErr{{"", []string{"the file is empty"}}}},
		{name: "only a document marker", src: "---\n", want: []wantErr{{"", []string{"the file is empty"}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg, err := parse(t, tt.src, withEnv(tt.env))
			require.Nil(t, cfg)
			got := configErrors(t, err)
			require.Len(t, got, len(tt.want), "errors:\n%v", err)
			used := make([]bool, len(got))
		wants:
			for _, w := range tt.want {
				line := 0
				switch {
				case strings.HasPrefix(w.at, "#"):
					fmt.Sscanf(w.at, "#%d", &line)
				case w.at != "":
					line = lineOf(t, tt.src, w.at)
				}
				for i, e := range got {
					if used[i] || e.Line != line || !containsAll(e.Msg, w.msg) {
						continue
					}
					used[i] = true
					require.Equal(t, testFile, e.File)
					prefix := testFile + ": "
					if line > 0 {
						prefix = fmt.Sprintf("%s:%d: ", testFile, line)
					}
					require.True(t, strings.HasPrefix(e.Error(), prefix), "%q should start with %q", e.Error(), prefix)
					continue wants
				}
				require.Failf(t, "missing error", "no error at line %d containing %q; got:\n%v", line, w.msg, err)
			}
			require.NotContains(t, err.Error(), "hunter2")
			require.NotContains(t, err.Error(), "tok_123")
			require.NotContains(t, err.Error(), "s3cret")
		})
	}
}

// nthLine returns the 1-based line of the n-th line of src containing marker.
func nthLine(src, marker string, n int) int {
	for i, l := range strings.Split(src, "\n") {
		if strings.Contains(l, marker) {
			if n--; n == 0 {
				return i + 1
			}
		}
	}
	return -1
}

func containsAll(s string, parts []string) bool {
	for _, p := range parts {
		if !strings.Contains(s, p) {
			return false
		}
	}
	return true
}

// TestParseErrorsInFileOrder: the report reads top to bottom even though
// environment variables are checked before anything else.
func TestParseErrorsInFileOrder(t *testing.T) {
	t.Parallel()
	src := replace(t, replace(t, validConfig, "version: 1\n", "version: 1\nstat: x\n"), "db.internal:5432", "${DB_HOST}:5432")
	_, err := parse(t, src, baseEnv)
	got := configErrors(t, err)
	require.Len(t, got, 2)
	require.Equal(t, lineOf(t, src, "stat: x"), got[0].Line)
	require.Equal(t, lineOf(t, src, "${DB_HOST}"), got[1].Line)
	require.Equal(t, strings.Count(err.Error(), "\n")+1, 2, "one line per problem")
}

// TestParseYAMLSyntaxLines: yaml.v3 counts lines from 0 for parser
// problems and from 1 for scanner problems; the report always counts from 1.
func TestParseYAMLSyntaxLines(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, src, at, msg string
	}{
		{"tab (scanner)", "version: 1\ncredentials:\n  app:\n\tstrategy: dual\n", "\tstrategy", "found character that cannot start any token"},
		{"value after value (scanner)", "version: 1\nstate: a: b\n", "state: a: b", "mapping values are not allowed in this context"},
		{"first line (scanner)", "version: 1: 2\n", "version: 1: 2", "mapping values are not allowed in this context"},
		{"unclosed flow sequence (parser)", "version: 1\ncredentials: [a\n", "[a", "did not find expected ',' or ']'"},
		{"unclosed flow mapping (parser)", "version: 1\nstate: x\ncredentials: {a: 1\n", "{a: 1", "did not find expected ',' or '}'"},
		{"bad indentation (parser)", "version: 1\ncredentials:\n  a: 1\n b: 2\n", " b: 2", "did not find expected key"},
		{"control character (reader)", "version: 1\x01\n", "", "control characters are not allowed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := parse(t, tt.src, nil)
			got := configErrors(t, err)
			require.Len(t, got, 1)
			want := 0
			if tt.at != "" {
				want = lineOf(t, tt.src, tt.at)
			}
			require.Equal(t, want, got[0].Line, "%v", err)
			require.Equal(t, "not valid YAML: "+tt.msg, got[0].Msg)
		})
	}
}

// TestParseErrorsInOnePass: every problem of the file is in one report,
// whatever kind it is — an environment variable that is not set, an
// unknown key, a value of the wrong kind, a bad duration, a template, a
// factory's own option — and a mistake is not reported a second time as
// its consequence (a misspelt strategy as a wrong number of roles).
func TestParseErrorsInOnePass(t *testing.T) {
	t.Parallel()
	src := `version: 1
credentials:
  app:
    provider:
      type: fakepg
      admin_url: ${ADMIN_URL}
    connection:
      url: postgresql://${DB_HOST}:5432/app?sslmode=require
    stratgy: single
    role: app
    drain: {grace: soon}
    schedule:
      every: 30x
    targets:
      - name: env
        type: fakefile
        pth: .env
        values:
          DATABASE_URL: "{{.Url}}"
  billing:
    provider: {type: fakepg, admin_url: "${BILLING_ADMIN_URL}"}
    connection: {url: "postgresql://db.internal/billing"}
    strategy: single
    role: billing
    publish: {attempts: many}
    targets:
      - {name: env, type: fakefile, path: b.env, reload_timeout: later, values: {DATABASE_URL: "{{.URL}}", BAD: "{{.Nope}}"}}
`
	_, err := parse(t, src, baseEnv)
	got := configErrors(t, err)
	want := []struct{ at, msg string }{
		{"${DB_HOST}", "environment variable DB_HOST is not set"},
		{"stratgy", `unknown key "stratgy" in credentials.app`},
		{"grace: soon", `credentials.app.drain.grace: bad duration "soon"`},
		{"every: 30x", `credentials.app.schedule.every: bad duration "30x"`},
		{"pth: .env", `unknown key "pth" in credentials.app.targets[0] (env)`},
		{"{{.Url}}", "values.DATABASE_URL: bad template: unknown field .Url"},
		{"${BILLING_ADMIN_URL}", "environment variable BILLING_ADMIN_URL is not set"},
		{"attempts: many", "credentials.billing.publish.attempts"},
		{"reload_timeout: later", `reload_timeout: bad duration "later"`},
		{"reload_timeout: later", "values.BAD: bad template: unknown field .Nope"},
	}
	require.Len(t, got, len(want), "one problem per mistake, all at once:\n%v", err)
	for i, w := range want {
		require.Equal(t, lineOf(t, src, w.at), got[i].Line, "problem %d in file order: %v", i, got[i])
		require.Contains(t, got[i].Msg, w.msg)
	}
}
