package resolve_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/rotorhq/rotor/internal/config"
	pbuiltin "github.com/rotorhq/rotor/internal/provider/builtin"
	"github.com/rotorhq/rotor/internal/resolve"
	tbuiltin "github.com/rotorhq/rotor/internal/target/builtin"
)

// TestValuesCheckedAtLoad: a template whose rendered value the target
// would refuse at publish — after the password changed — is a config
// error at its line when the file is loaded, found by rendering it with
// sample passwords, and it is found on every load, not only when the
// random password happens to start with an unlucky character.
func TestValuesCheckedAtLoad(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, typ, opts, value, want string
	}{
		{"single quote and an expansion", "dotenv", "path: .env", `"it's $$HOME {{.Password}}"`,
			"it contains a single quote ('), which rules out single quotes, and a $ followed by a variable name"},
		{"both quotes", "dotenv", "path: .env", `"x\"y'z {{.Password}}"`, "rules out single quotes, and a double quote"},
		{"expansion in double quotes", "dotenv", "path: .env\n        quote: double", `"$${HOME}{{.URL}}"`, "cannot be double-quoted"},
		{"expansion by the password's first character", "dotenv", "path: .env\n        quote: double", `"x$${{.Password}}"`, "cannot be double-quoted"},
		{"single quote with quote: single", "dotenv", "path: .env\n        quote: single", `"it's {{.Password}}"`, "cannot be single-quoted"},
		{"a port that is not a number", "aws-secrets-manager", "secret_id: app/db\n        region: eu-central-1\n        format: rds-json",
			`"{{.Host}}"`, "format rds-json writes port as a number"},
		{"a NUL byte in an environment variable", "exec", "command: [/bin/true]\n        env: true", `"\0{{.URL}}"`, "holds a NUL byte"},
		{"a URL GitLab cannot mask", "gitlab", "project: g/p\n        token: ${TOKEN}\n        masked: true\n        raw: false", `"{{.URL}}"`, "GitLab cannot mask the value for"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			key := "DATABASE_URL"
			values := "{username: \"{{.User}}\", password: \"{{.Password}}\", host: \"{{.Host}}\", dbname: \"{{.Database}}\",\n          port: " + tc.value + "}"
			if tc.typ != "aws-secrets-manager" {
				values = "\n          " + key + ": " + tc.value
			} else {
				key = "port"
			}
			src := `version: 1
credentials:
  app:
    provider: {type: postgres, admin_url: "${ADMIN_URL}"}
    connection: {url: "postgresql://db.internal/app?sslmode=require"}
    role: app
    strategy: single
    targets:
      - name: t
        type: ` + tc.typ + `
        ` + tc.opts + `
        values: ` + values + `
`
			for range 5 {
				_, err := resolve.Parse("rotor.yaml", []byte(src), envWith(map[string]string{"TOKEN": "glpat-x"}), resolve.Registry{Provider: pbuiltin.Lookup, Target: tbuiltin.Lookup, Getenv: func(string) string { return "" }, Now: time.Now})
				var list config.Errors
				require.ErrorAs(t, err, &list)
				require.Len(t, list, 1, err.Error())
				require.Contains(t, list[0].Msg, tc.want)
				require.Contains(t, list[0].Msg, "credentials.app.targets[0] (t).values."+key+":")
				require.Contains(t, list[0].Msg, "a rotation would stop at publish")
				require.NotContains(t, list[0].Msg, "target refused the request", "the sentinel means nothing to a reader of rotor.yaml")
				require.NotContains(t, list[0].Msg, "db.internal", "no rendered value in the message")
				require.Equal(t, lineOf(t, src, key+": "), list[0].Line, "the error points at the value")
			}
		})
	}

	t.Run("values that can be written load", func(t *testing.T) {
		t.Parallel()
		src := `version: 1
credentials:
  app:
    provider: {type: postgres, admin_url: "${ADMIN_URL}"}
    connection: {url: "postgresql://db.internal/app?sslmode=require"}
    role: app
    strategy: single
    password: {symbols: true}
    targets:
      - name: t
        type: dotenv
        path: .env
        quote: double
        values:
          DATABASE_URL: "{{.URL}}"
          PGPASSWORD: "{{.Password}}"
          NOTE: "it's {{.User}}, $$ 5 a month"
`
		cfg, err := resolve.Parse("rotor.yaml", []byte(src), env, resolve.Registry{Provider: pbuiltin.Lookup, Target: tbuiltin.Lookup, Getenv: func(string) string { return "" }, Now: time.Now})
		require.NoError(t, err)
		require.NoError(t, cfg.Close())
	})
}

// envWith is env with extra variables set.
func envWith(extra map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		if v, ok := extra[k]; ok {
			return v, true
		}
		return env(k)
	}
}
