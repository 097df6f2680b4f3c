package cli

import (
	"context"
	"encoding/json"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/rotorhq/rotor/internal/config"
	pbuiltin "github.com/rotorhq/rotor/internal/provider/builtin"
	"github.com/rotorhq/rotor/internal/resolve"
	tbuiltin "github.com/rotorhq/rotor/internal/target/builtin"
)

// canary is a password no output may ever contain.
const canary = "CanaryPw-93xZ_q"

func TestVersion(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{"--version"}, {"-v"}} {
		t.Run(args[0], func(t *testing.T) {
			t.Parallel()
			code, out, errOut := run(t, nil, "", args...)
			require.Equal(t, ExitOK, code)
			// The build info of a test binary has no module version
			// or VCS stamp (TestBuildInfoFrom covers one that has).
			require.Equal(t, "rotor dev "+runtime.Version()+" "+runtime.GOOS+"/"+runtime.GOARCH+"\n", out)
			require.Empty(t, errOut)
		})
	}
}

// rotor alone prints its help, as it did before --version became
// rotor's own flag.
func TestRootAlonePrintsHelp(t *testing.T) {
	t.Parallel()
	code, out, errOut := run(t, nil, "")
	require.Equal(t, ExitOK, code)
	require.Contains(t, out, "Available Commands:")
	require.Contains(t, out, "-v, --version")
	require.Empty(t, errOut)
}

func TestUsageExitCodes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		args    []string
		wantErr string
	}{
		{args: []string{"rotate"}, wantErr: "rotor: name the credential(s) to rotate"},
		{args: []string{"--bogus"}, wantErr: "rotor: unknown flag: --bogus"},
		{args: []string{"rotate", "--due", "--all"}, wantErr: "rotor: --due and --all cannot be combined"},
		{args: []string{"init", "--strategy", "triple"}, wantErr: `rotor: --strategy "triple": use dual or single`},
		{args: []string{"connstr", "parse", "a", "b"}, wantErr: "rotor: accepts at most 1 arg(s), received 2"},
		{args: []string{"bogus"}, wantErr: `rotor: unknown command "bogus"`},
		{args: []string{"connstr"}, wantErr: "rotor: name a subcommand: redact or parse"},
		{args: []string{"history", "-n", "0"}, wantErr: "rotor: --limit 0: must be at least 1"},
		{args: []string{"init", "--credential", "bad name!"}, wantErr: `rotor: --credential "bad name!"`},
		{args: []string{"rotate", "--all", "--parallel", "0"}, wantErr: "rotor: --parallel 0: must be at least 1"},
		// --version is the root's flag only, as cobra's own was.
		{args: []string{"status", "--version"}, wantErr: "rotor: unknown flag: --version"},
		{args: []string{"--version", "extra"}, wantErr: `rotor: unknown command "extra"`},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			t.Parallel()
			code, out, errOut := run(t, nil, "", tt.args...)
			require.Equal(t, ExitUsage, code)
			require.Empty(t, out)
			require.Contains(t, errOut, tt.wantErr)
		})
	}
}

func TestConnstrRedact(t *testing.T) {
	t.Parallel()
	enc := url.QueryEscape(canary)
	tests := []struct {
		name, stdin string
		args        []string
		want        string
	}{
		{
			name: "argument",
			args: []string{"postgresql://app:" + enc + "@db.internal:5432/app?sslmode=require"},
			want: "postgresql://app:REDACTED@db.internal:5432/app?sslmode=require\n",
		},
		{
			name:  "stdin",
			stdin: "postgresql://app:" + enc + "@db.internal/app\n",
			want:  "postgresql://app:REDACTED@db.internal/app\n",
		},
		{
			name:  "stdin keyword form",
			stdin: "host=db.internal user=app password=" + canary + " dbname=app",
			want:  "host=db.internal user=app password=REDACTED dbname=app\n",
		},
		{
			name:  "a whole .env file",
			stdin: "PORT=3000\nDATABASE_URL=postgres://app:" + enc + "@db.internal/app\nPGPASSWORD=" + canary + "\n",
		},
		{
			name: "argument wins over stdin",
			args: []string{"postgresql://app:" + enc + "@h/db"}, stdin: "postgresql://other:pw@x/y",
			want: "postgresql://app:REDACTED@h/db\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			code, out, errOut := run(t, nil, tt.stdin, append([]string{"connstr", "redact"}, tt.args...)...)
			require.Equal(t, ExitOK, code, errOut)
			if tt.want != "" {
				// Compared without the final newline: from stdin it is
				// lost (reported; cli/connstr.go is not ours to change).
				require.Equal(t, strings.TrimSuffix(tt.want, "\n"), strings.TrimSuffix(out, "\n"))
			}
			require.NotContains(t, out+errOut, canary)
			require.NotContains(t, out+errOut, enc)
			require.Empty(t, errOut)
		})
	}
}

func TestConnstrInputErrors(t *testing.T) {
	t.Parallel()
	for _, sub := range []string{"redact", "parse"} {
		t.Run(sub+" empty stdin", func(t *testing.T) {
			t.Parallel()
			code, _, errOut := run(t, nil, " \n", "connstr", sub)
			require.Equal(t, ExitUsage, code)
			require.Contains(t, errOut, "rotor: no input on stdin")
		})
		t.Run(sub+" terminal stdin", func(t *testing.T) {
			t.Parallel()
			f, io := newTestFactory(nil)
			f.IO.SetTTY(true, false, false)
			io.in.WriteString("postgresql://u:" + canary + "@h/db")
			code := Run(context.Background(), f, []string{"connstr", sub})
			require.Equal(t, ExitUsage, code)
			require.Contains(t, io.errOut.String(), "pipe the connection string on stdin")
			require.Empty(t, io.out.String(), "nothing is read from a terminal")
		})
	}
}

func TestConnstrParse(t *testing.T) {
	t.Parallel()
	enc := url.QueryEscape(canary)
	in := "postgresql://app_blue:" + enc + "@ep-cool-darkness-123456.eu-central-1.aws.neon.tech/neondb?sslmode=require&channel_binding=require\n"

	t.Run("text", func(t *testing.T) {
		t.Parallel()
		code, out, errOut := run(t, nil, in, "connstr", "parse")
		require.Equal(t, ExitOK, code, errOut)
		require.Contains(t, out, "user      app_blue\n")
		require.Contains(t, out, "password  (set, 15 characters)\n")
		require.Contains(t, out, "host      ep-cool-darkness-123456.eu-central-1.aws.neon.tech\n")
		require.Contains(t, out, "database  neondb\n")
		require.Contains(t, out, "param     sslmode=require\n")
		require.Contains(t, out, "neon      pooled host ep-cool-darkness-123456-pooler.eu-central-1.aws.neon.tech")
		require.NotContains(t, out+errOut, canary)
		require.NotContains(t, out+errOut, enc)
	})
	t.Run("json", func(t *testing.T) {
		t.Parallel()
		code, out, errOut := run(t, nil, in, "connstr", "parse", "--json")
		require.Equal(t, ExitOK, code, errOut)
		require.NotContains(t, out+errOut, canary)
		require.NotContains(t, out+errOut, enc)
		var got map[string]any
		require.NoError(t, json.Unmarshal([]byte(out), &got))
		require.Equal(t, "(set, 15 characters)", got["password"])
		require.Equal(t, "app_blue", got["user"])
		require.Equal(t, "neondb", got["database"])
		require.Equal(t, true, got["neon"])
		require.Equal(t, "ep-cool-darkness-123456-pooler.eu-central-1.aws.neon.tech", got["pooled_host"])
		require.Equal(t, map[string]any{"sslmode": "require", "channel_binding": "require"}, got["params"])
		require.NotContains(t, got["redacted"], canary)
	})
	t.Run("no password", func(t *testing.T) {
		t.Parallel()
		code, out, _ := run(t, nil, "", "connstr", "parse", "--json", "postgresql://db.internal/app")
		require.Equal(t, ExitOK, code)
		var got map[string]any
		require.NoError(t, json.Unmarshal([]byte(out), &got))
		require.Equal(t, "(none)", got["password"])
		require.NotContains(t, got, "pooled_host")
	})
	t.Run("invalid", func(t *testing.T) {
		t.Parallel()
		code, out, errOut := run(t, nil, "postgresql://app:"+canary+"@host:notaport/db", "connstr", "parse")
		require.Equal(t, ExitUsage, code)
		require.Empty(t, out)
		require.Contains(t, errOut, "rotor: ")
		require.NotContains(t, errOut, canary)
	})
}

func TestInitPrint(t *testing.T) {
	t.Parallel()
	for _, strategy := range []string{"dual", "single"} {
		t.Run(strategy, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			path := filepath.Join(dir, "rotor.yaml")
			code, out, errOut := run(t, nil, "", "init", "--print", "--strategy", strategy, "--credential", "billing", "--config", path)
			require.Equal(t, ExitOK, code, errOut)
			require.Equal(t, StarterConfig("billing", strategy), out)
			require.Contains(t, out, "  billing:\n")
			require.Contains(t, out, "strategy: "+strategy)
			entries, err := os.ReadDir(dir)
			require.NoError(t, err)
			require.Empty(t, entries, "--print writes nothing")
		})
	}
}

func TestInitWritesFiles(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		args     []string
		env      testEnv
		strategy string
	}{
		{name: "dual via --config", args: []string{"init"}, strategy: config.StrategyDual},
		{name: "single via --config", args: []string{"init", "--strategy", "single", "--credential", "reports"}, strategy: config.StrategySingle},
		{name: "via ROTOR_CONFIG", args: []string{"init"}, env: testEnv{}, strategy: config.StrategyDual},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			path := filepath.Join(dir, "rotor.yaml")
			args := tt.args
			env := testEnv{}
			if tt.env != nil {
				env["ROTOR_CONFIG"] = path
			} else {
				args = append(args, "--config", path)
			}

			code, out, errOut := run(t, env, "", args...)
			require.Equal(t, ExitOK, code, errOut)
			require.Contains(t, out, "wrote "+path)
			require.Contains(t, out, "encryption key: key file "+filepath.Join(dir, ".rotor", "key"))
			requireMode(t, path, 0o600)
			requireMode(t, filepath.Join(dir, ".rotor"), 0o700|os.ModeDir)
			requireMode(t, filepath.Join(dir, ".rotor", "key"), 0o600)
			requireMode(t, filepath.Join(dir, ".rotor", ".gitignore"), 0o600)
			gitignore, err := os.ReadFile(filepath.Join(dir, ".rotor", ".gitignore"))
			require.NoError(t, err)
			require.Equal(t, "*\n", string(gitignore))
			written, err := os.ReadFile(path)
			require.NoError(t, err)
			key, err := os.ReadFile(filepath.Join(dir, ".rotor", "key"))
			require.NoError(t, err)
			require.NotContains(t, out+errOut, strings.TrimSpace(string(key)), "the key is never printed")

			// The starter config loads with the real registries once the
			// admin URL it references is set.
			cfg, err := resolve.Load(path, testEnv{"ROTOR_ADMIN_URL": "postgresql://admin:" + canary + "@db.internal/postgres"}.lookup,
				resolve.Registry{Provider: pbuiltin.Lookup, Target: tbuiltin.Lookup, Getenv: func(string) string { return "" }})
			require.NoError(t, err)
			t.Cleanup(func() { cfg.Close() })
			require.Len(t, cfg.Credentials, 1)
			require.Equal(t, tt.strategy, cfg.Credentials[0].Strategy)
			require.Equal(t, filepath.Join(dir, ".rotor", "key"), cfg.KeyFile)
			require.Equal(t, filepath.Join(dir, ".rotor", "state.db"), cfg.State)

			// A second init refuses to overwrite the config.
			require.NoError(t, os.WriteFile(path, []byte("# edited\n"), 0o600))
			code, out, errOut = run(t, env, "", args...)
			require.Equal(t, ExitUsage, code)
			require.Empty(t, out)
			require.Contains(t, errOut, "rotor: "+path+" already exists; pass --force to overwrite it, or --print to see the starter config")
			edited, err := os.ReadFile(path)
			require.NoError(t, err)
			require.Equal(t, "# edited\n", string(edited))

			// --force rewrites the config but keeps the key: a new key would
			// make the passwords already in the store unreadable.
			code, _, errOut = run(t, env, "", append(args, "--force")...)
			require.Equal(t, ExitOK, code, errOut)
			rewritten, err := os.ReadFile(path)
			require.NoError(t, err)
			require.Equal(t, string(written), string(rewritten))
			keyAfter, err := os.ReadFile(filepath.Join(dir, ".rotor", "key"))
			require.NoError(t, err)
			require.Equal(t, key, keyAfter)
		})
	}
}

func TestInitWithKeyInEnvironment(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "rotor.yaml")
	env := testEnv{"ROTOR_KEY": strings.Repeat("ab", 32)}
	code, out, errOut := run(t, env, "", "init", "--config", path)
	require.Equal(t, ExitOK, code, errOut)
	require.Contains(t, out, "encryption key: environment variable ROTOR_KEY")
	require.NotContains(t, out, env["ROTOR_KEY"])
	_, err := os.Stat(filepath.Join(dir, ".rotor", "key"))
	require.ErrorIs(t, err, os.ErrNotExist, "no key file when ROTOR_KEY provides the key")
}

// TestConfigErrorsExitUsage: a config mistake is a usage error (exit 2)
// reported with file:line, and nothing else is opened.
func TestConfigErrorsExitUsage(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "rotor.yaml")
	text := strings.Replace(StarterConfig("app-db", "dual"), "every: 30d", "every: 30x", 1)
	require.NoError(t, os.WriteFile(path, []byte(text), 0o600))
	line := strings.Count(text[:strings.Index(text, "every: 30x")], "\n") + 1

	code, out, errOut := run(t, testEnv{"ROTOR_ADMIN_URL": "postgresql://admin@db/postgres"}, "", "validate", "--offline", "--config", path)
	require.Equal(t, ExitUsage, code)
	require.Empty(t, out)
	require.Contains(t, errOut, "rotor: "+path+":"+itoa(line)+`: credentials.app-db.schedule.every: bad duration "30x"`)
	_, err := os.Stat(filepath.Join(dir, ".rotor"))
	require.ErrorIs(t, err, os.ErrNotExist)

	code, _, errOut = run(t, nil, "", "validate", "--offline", "--config", filepath.Join(dir, "missing.yaml"))
	require.Equal(t, ExitError, code)
	require.Contains(t, errOut, "not found; create one with `rotor init` or pass --config")
}

func TestValidateOfflineStarterConfig(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "rotor.yaml")
	require.NoError(t, os.WriteFile(path, []byte(StarterConfig("app-db", "dual")), 0o600))
	env := testEnv{"ROTOR_ADMIN_URL": "postgresql://admin:" + canary + "@db.internal/postgres"}
	code, out, errOut := run(t, env, "", "validate", "--offline", "--config", path)
	require.Equal(t, ExitOK, code, errOut)
	require.Equal(t, "✓ config "+path+"\n    1 credential(s)\n", out)

	// Checking the file offline needs no connection secret; checking
	// the connection does.
	code, out, errOut = run(t, nil, "", "validate", "--offline", "--config", path)
	require.Equal(t, ExitOK, code, errOut)
	require.Contains(t, out, "✓ config "+path+"\n    1 credential(s)\n    not set: ROTOR_ADMIN_URL; --offline needs none")
	code, _, errOut = run(t, nil, "", "validate", "--config", path)
	require.Equal(t, ExitUsage, code)
	require.Contains(t, errOut, "environment variable ROTOR_ADMIN_URL is not set")
	require.NotContains(t, errOut, canary)
}

// TestReadOnlyCommandsCreateNothing: plan, status and history promise to
// change nothing, so a first look must not create the state file or key.
func TestReadOnlyCommandsCreateNothing(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "rotor.yaml")
	require.NoError(t, os.WriteFile(path, []byte(StarterConfig("app-db", "dual")), 0o600))
	env := testEnv{"ROTOR_ADMIN_URL": "postgresql://admin@db.internal/postgres"}
	for _, args := range [][]string{{"plan", "--offline"}, {"status"}, {"history"}} {
		code, out, errOut := run(t, env, "", append(args, "--config", path)...)
		require.Equal(t, ExitOK, code, errOut)
		require.NotEmpty(t, out)
	}
	_, err := os.Stat(filepath.Join(dir, ".rotor"))
	require.ErrorIs(t, err, os.ErrNotExist, "read-only commands must not create .rotor/")
	// Nor a state file named by URL.
	for _, args := range [][]string{{"plan", "--offline"}, {"status"}, {"history"}, {"validate", "--offline"}} {
		code, out, errOut := run(t, env, "", append(args, "--config", path, "--state", "sqlite://"+filepath.Join(dir, "url", "state.db"))...)
		require.Equal(t, ExitOK, code, errOut)
		require.NotEmpty(t, out)
	}
	_, err = os.Stat(filepath.Join(dir, "url"))
	require.ErrorIs(t, err, os.ErrNotExist, "read-only commands must not create a sqlite:// state")
}

func requireMode(t *testing.T, path string, want os.FileMode) {
	t.Helper()
	info, err := os.Stat(path)
	require.NoError(t, err)
	require.Equal(t, want, info.Mode()&(os.ModePerm|os.ModeDir), "mode of %s", path)
}

func itoa(n int) string {
	b, _ := json.Marshal(n)
	return string(b)
}
