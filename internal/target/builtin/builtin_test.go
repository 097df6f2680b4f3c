package builtin_test

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/rotorhq/rotor/internal/config"
	pbuiltin "github.com/rotorhq/rotor/internal/provider/builtin"
	"github.com/rotorhq/rotor/internal/resolve"
	"github.com/rotorhq/rotor/internal/target"
	"github.com/rotorhq/rotor/internal/target/builtin"
	"github.com/rotorhq/rotor/internal/target/targettest"
)

func TestLookup(t *testing.T) {
	t.Parallel()
	known := strings.Join(builtin.Names(), ", ")

	tests := []struct {
		typ     string
		wantErr string
	}{
		{typ: "dotenv"},
		{typ: "dotENV", wantErr: `unknown target type "dotENV" (known: ` + known + `)`},
		{typ: "", wantErr: `unknown target type "" (known: ` + known + `)`},
		{typ: "vercell", wantErr: `unknown target type "vercell" (known: ` + known + `)`},
	}
	for _, tt := range tests {
		t.Run(tt.typ, func(t *testing.T) {
			t.Parallel()
			f, err := builtin.Lookup(tt.typ)
			if tt.wantErr != "" {
				require.EqualError(t, err, tt.wantErr)
				require.Nil(t, f)
				return
			}
			require.NoError(t, err)
			require.NotNil(t, f)
		})
	}
}

func TestNamesSortedAndComplete(t *testing.T) {
	t.Parallel()
	names := builtin.Names()
	require.IsIncreasing(t, names)
	require.Len(t, names, len(builtin.Targets))
	for _, name := range names {
		require.NotNil(t, builtin.Targets[name], name)
	}
}

// TestFactoriesReportTheirType guards against registering a factory under
// a name other than the one its targets report in Info().Type, which the
// journal and `rotor status` show.
func TestFactoriesReportTheirType(t *testing.T) {
	t.Parallel()
	for _, name := range builtin.Names() {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			opts, ok := minimalOptions[name]
			require.True(t, ok, "add %s to minimalOptions", name)
			tg, err := builtin.Targets[name](target.Params{
				Name:    "x",
				BaseDir: t.TempDir(),
				Decode:  targettest.DecodeYAML(opts),
				Getenv:  func(string) string { return "" },
			})
			require.NoError(t, err)
			require.Equal(t, name, tg.Info().Type)
		})
	}
}

// minimalOptions holds each type's smallest valid options as YAML; a new
// type without an entry fails TestFactoriesReportTheirType.
var minimalOptions = map[string]string{
	"dotenv":              "path: .env",
	"vercel":              "project: prj_1\ntoken: t",
	"render":              "service_id: srv-1\ntoken: t",
	"fly":                 "app: my-app\ntoken: t",
	"github-actions":      "repo: o/r\ntoken: t",
	"gitlab":              "project: g/p\ntoken: t",
	"railway":             "project_id: p\nenvironment_id: e\ntoken: t",
	"exec":                "command: [/bin/true]\nenv: true",
	"doppler":             "project: p\nconfig: prd\ntoken: t",
	"aws-secrets-manager": "secret_id: app/db\nregion: eu-central-1",
	"aws-ssm":             "parameters: {DATABASE_URL: /app/db/url}\nregion: eu-central-1",
	"gcp-secret-manager":  "project: my-project\nsecret_id: db-url",
	"infisical":           "client_id: c\nclient_secret: s\nproject_id: p\nenvironment: prod",
	"kubernetes":          "namespace: app\nsecret_name: db",
	"vault":               "address: https://vault.example.com:8200\ntoken: t\npath: app/db",
	"pgbouncer":           "auth_file: userlist.txt\nadmin_url: postgresql://a:b@127.0.0.1:6432/pgbouncer",
	"webhook":             "url: https://hooks.example.com/rotor\nsecret: 0123456789abcdef0123",
}

// TestKeysCheckedAtLoad: a values key the destination would refuse is a
// config error at the values line when the file is loaded (`rotor
// validate`, every command), not a failure in the middle of a rotation.
func TestKeysCheckedAtLoad(t *testing.T) {
	t.Parallel()
	cases := []struct {
		typ, opts, values, want string
	}{
		{"dotenv", "path: .env", "{DATABASE-URL: \"{{.URL}}\"}", `key "DATABASE-URL" is not a name both godotenv and Node's dotenv accept`},
		{"github-actions", "repo: o/r\n        token: ${TOKEN}", "{GITHUB_DB: \"{{.URL}}\"}", `"GITHUB_DB" cannot be a GitHub secret name`},
		{"gitlab", "project: g/p\n        token: ${TOKEN}", "{DB.URL: \"{{.URL}}\"}", `"DB.URL" cannot be a GitLab variable key`},
		{"exec", "command: [/bin/true]\n        env: true", "{PATH: \"{{.URL}}\"}", "value PATH would replace the command's own PATH"},
		{"aws-ssm", "parameters: {DATABASE_URL: /app/db/url}\n        region: eu-central-1", "{DATABASE_URL: \"{{.URL}}\", PGPASSWORD: \"{{.Password}}\"}", "key PGPASSWORD has no parameter"},
		{"aws-ssm", "path_prefix: /app/db\n        region: eu-central-1", "{\"DB URL\": \"{{.URL}}\"}", `key DB URL: parameter name "/app/db/DB URL" may only hold`},
		{"kubernetes", "namespace: app\n        secret_name: db", "{\"database url\": \"{{.URL}}\"}", `"database url" cannot be a Secret key`},
		{"gcp-secret-manager", "project: my-project\n        secret_id: db-url\n        format: plain", "{A: \"{{.URL}}\", B: \"{{.Password}}\"}", "format plain stores one value, but values has 2 keys (A, B)"},
		{"aws-secrets-manager", "secret_id: app/db\n        region: eu-central-1\n        format: rds-json", "{username: \"{{.User}}\", password: \"{{.Password}}\"}", "missing: host, port, dbname"},
	}
	for _, tc := range cases {
		t.Run(tc.typ+" "+tc.want[:12], func(t *testing.T) {
			t.Parallel()
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
        values: ` + tc.values + `
`
			env := map[string]string{"ADMIN_URL": "postgresql://admin:pw@db.internal/postgres", "TOKEN": "t"}
			_, err := resolve.Parse("rotor.yaml", []byte(src), func(k string) (string, bool) { v, ok := env[k]; return v, ok },
				resolve.Registry{Provider: pbuiltin.Lookup, Target: builtin.Lookup, Getenv: func(string) string { return "" }, Now: time.Now})
			require.Error(t, err)
			require.Contains(t, err.Error(), tc.want)
			require.NotContains(t, err.Error(), target.ErrInvalid.Error(), "the sentinel means nothing to a reader of rotor.yaml")
			var list config.Errors
			require.ErrorAs(t, err, &list)
			require.Len(t, list, 1, err.Error())
			require.Equal(t, strings.Count(src[:strings.Index(src, "values:")], "\n")+1, list[0].Line, "the error points at the values line")

		})
	}
}

// TestNameLengthLimits: the documented maximum lengths hold exactly.
func TestNameLengthLimits(t *testing.T) {
	t.Parallel()
	build := func(typ, opts string) error {
		_, err := builtin.Targets[typ](target.Params{Name: "x", BaseDir: t.TempDir(), Decode: targettest.DecodeYAML(opts), Getenv: func(string) string { return "" }})
		return err
	}
	require.NoError(t, build("aws-secrets-manager", "secret_id: "+strings.Repeat("a", 512)+"\nregion: eu-central-1"))
	require.ErrorContains(t, build("aws-secrets-manager", "secret_id: "+strings.Repeat("a", 513)+"\nregion: eu-central-1"), "1–512")
	require.NoError(t, build("gcp-secret-manager", "project: my-project\nsecret_id: "+strings.Repeat("a", 255)))
	require.ErrorContains(t, build("gcp-secret-manager", "project: my-project\nsecret_id: "+strings.Repeat("a", 256)), "at most 255")

	gl, err := builtin.Targets["gitlab"](target.Params{Name: "x", Decode: targettest.DecodeYAML("project: g/p\ntoken: t"), Getenv: func(string) string { return "" }})
	require.NoError(t, err)
	kc := gl.(target.KeyChecker)
	require.NoError(t, kc.CheckKeys([]string{strings.Repeat("K", 255)}))
	require.ErrorContains(t, kc.CheckKeys([]string{strings.Repeat("K", 256)}), "up to 255")
}
