package exec_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/joho/godotenv"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/rotorhq/rotor/internal/secret"
	"github.com/rotorhq/rotor/internal/target"
	"github.com/rotorhq/rotor/internal/target/exec"
	"github.com/rotorhq/rotor/internal/target/targettest"
)

// recorder is a script that keeps what it was given in $OUT: stdin,
// environment and its own argv as the kernel shows it to every user
// (/proc/<pid>/cmdline). Each file is written whole and renamed, so
// concurrent runs never leave a torn one.
const recorder = `#!/bin/sh
set -e
cat > "$OUT/stdin.$$"
env > "$OUT/env.$$"
tr '\0' ' ' < /proc/$$/cmdline > "$OUT/cmdline.$$"
for f in stdin env cmdline; do mv "$OUT/$f.$$" "$OUT/$f"; done
`

type fixture struct {
	dir, out, script string
}

func newFixture(t *testing.T, script string) fixture {
	t.Helper()
	dir := t.TempDir()
	f := fixture{dir: dir, out: filepath.Join(dir, "out"), script: filepath.Join(dir, "cmd.sh")}
	require.NoError(t, os.Mkdir(f.out, 0o700))
	require.NoError(t, os.WriteFile(f.script, []byte(script), 0o700))
	return f
}

func (f fixture) read(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(f.out, name))
	require.NoError(t, err)
	return string(b)
}

// newTarget decodes YAML options the way the config layer does; the
// command gets OUT through pass_env.
func (f fixture) newTarget(t *testing.T, options string) (target.Target, error) {
	t.Helper()
	return exec.New(f.params(options))
}

func (f fixture) params(options string) target.Params {
	return target.Params{
		Name:    "hook",
		BaseDir: f.dir,
		Getenv: func(k string) string {
			switch k {
			case "OUT":
				return f.out
			case "PATH":
				return os.Getenv("PATH")
			case "ROTOR_KEY":
				return "must-not-reach-the-command"
			}
			return ""
		},
		Decode: func(v any) error {
			dec := yaml.NewDecoder(strings.NewReader(options))
			dec.KnownFields(true)
			if err := dec.Decode(v); err != nil && !errors.Is(err, io.EOF) {
				return err
			}
			return nil
		},
	}
}

func (f fixture) mustTarget(t *testing.T, options string) target.Target {
	t.Helper()
	tg, err := f.newTarget(t, options)
	require.NoError(t, err)
	return tg
}

func put(t *testing.T, tg target.Target, values map[string]secret.String, keys ...string) error {
	t.Helper()
	_, err := tg.Put(t.Context(), target.PutRequest{Values: values, Keys: keys, RotationID: "42", Version: 7, Role: "app_blue"})
	return err
}

func TestConformance(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	fixtures := map[target.Target]fixture{}
	fixtureOf := func(tg target.Target) fixture {
		mu.Lock()
		defer mu.Unlock()
		return fixtures[tg]
	}
	targettest.Exercise(t, targettest.Harness{
		New: func(t *testing.T) target.Target {
			f := newFixture(t, recorder)
			tg := f.mustTarget(t, "command: [./cmd.sh]\nstdin: json\nidempotent: true\npass_env: [OUT]\n")
			mu.Lock()
			fixtures[tg] = f
			mu.Unlock()
			return tg
		},
		// What the command received is what it holds.
		Read: func(t *testing.T, tg target.Target, key string) (secret.String, bool) {
			b, err := os.ReadFile(filepath.Join(fixtureOf(tg).out, "stdin"))
			if errors.Is(err, os.ErrNotExist) {
				return secret.String{}, false
			}
			require.NoError(t, err)
			var m map[string]string
			require.NoError(t, json.Unmarshal(b, &m))
			v, ok := m[key]
			return secret.New(v), ok
		},
		NoChangeDetection: true,
		// A failing command that echoes its input: the error must still
		// carry none of it.
		Break: func(t *testing.T, tg target.Target) {
			require.NoError(t, os.WriteFile(fixtureOf(tg).script, []byte("#!/bin/sh\ncat >&2\nexit 3\n"), 0o700))
		},
	})
}

func TestValuesNeverInArgv(t *testing.T) {
	t.Parallel()
	canary := "canary-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	url := "postgres://app:" + canary + "@db/app"
	tests := []struct {
		name    string
		options string
		check   func(t *testing.T, f fixture)
	}{
		{"stdin json", "stdin: json", func(t *testing.T, f fixture) {
			var m map[string]string
			require.NoError(t, json.Unmarshal([]byte(f.read(t, "stdin")), &m))
			require.Equal(t, map[string]string{"DATABASE_URL": url, "PGUSER": "app"}, m)
			require.Equal(t, `{"DATABASE_URL":"`+url+`","PGUSER":"app"}`+"\n", f.read(t, "stdin"), "keys in config order")
		}},
		{"stdin dotenv", "stdin: dotenv", func(t *testing.T, f fixture) {
			m, err := godotenv.Unmarshal(f.read(t, "stdin"))
			require.NoError(t, err)
			require.Equal(t, map[string]string{"DATABASE_URL": url, "PGUSER": "app"}, m)
		}},
		{"environment", "env: true", func(t *testing.T, f fixture) {
			env := f.read(t, "env")
			require.Contains(t, env, "DATABASE_URL="+url+"\n")
			require.Contains(t, env, "PGUSER=app\n")
			require.Empty(t, f.read(t, "stdin"), "env: true alone sends nothing on stdin")
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, recorder)
			tg := f.mustTarget(t, "command: [./cmd.sh, --flag, plain-arg]\npass_env: [OUT]\n"+tt.options+"\n")
			require.NoError(t, put(t, tg, map[string]secret.String{"DATABASE_URL": secret.New(url), "PGUSER": secret.New("app")}, "DATABASE_URL", "PGUSER"))
			tt.check(t, f)

			cmdline := f.read(t, "cmdline")
			require.Contains(t, cmdline, "cmd.sh --flag plain-arg")
			require.Empty(t, secret.Leaks([]byte(cmdline), secret.New(canary)), "argv must never hold a value")

			// The run's metadata is there; rotor's own secrets are not.
			env := f.read(t, "env")
			for _, kv := range []string{"ROTOR_TARGET=hook", "ROTOR_ROTATION_ID=42", "ROTOR_VERSION=7", "ROTOR_ROLE=app_blue", "ROTOR_KEYS=DATABASE_URL,PGUSER", "OUT=" + f.out} {
				require.Contains(t, env, kv+"\n")
			}
			require.NotContains(t, env, "must-not-reach-the-command")
		})
	}
}

func TestFailureIsScrubbed(t *testing.T) {
	t.Parallel()
	const pw = "s3cr3t-Passw0rd-xyz"
	url := "postgres://app:" + pw + "@db/app"
	tests := []struct {
		name       string
		script     string
		options    string
		want       string
		retryable  bool
		notContain string
	}{
		{"exit status with echoed values", "#!/bin/sh\nin=$(cat)\necho \"$in\"\necho \"password was $(echo \"$in\" | sed 's/.*:\\(.*\\)@.*/\\1/')\" >&2\nexit 3\n", "",
			"exited with status 3", false, ""},
		{"env values echoed", "#!/bin/sh\necho \"got $DATABASE_URL\" >&2\nexit 1\n", "env: true\n", "exited with status 1", false, ""},
		{"temporary failure, idempotent", "#!/bin/sh\nexit 75\n", "idempotent: true\n", "exited with status 75", true, ""},
		{"temporary failure, not idempotent", "#!/bin/sh\nexit 75\n", "", "exited with status 75", false, ""},
		{"killed by a signal", "#!/bin/sh\nkill -9 $$\n", "", "was killed by signal: killed", false, ""},
		{"long output keeps the tail", "#!/bin/sh\ni=0; while [ $i -lt 2000 ]; do echo noise-line-$i >&2; i=$((i+1)); done; echo the-real-reason >&2; exit 2\n", "",
			"the-real-reason", false, "noise-line-0\\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, tt.script)
			tg := f.mustTarget(t, "command: [./cmd.sh]\n"+tt.options)
			err := put(t, tg, map[string]secret.String{"DATABASE_URL": secret.New(url)}, "DATABASE_URL")
			require.ErrorIs(t, err, exec.ErrFailed)
			require.ErrorContains(t, err, tt.want)
			require.ErrorContains(t, err, `exec target "hook": `+f.script+" ")
			require.Empty(t, secret.Leaks([]byte(err.Error()), secret.New(pw)))
			require.Empty(t, secret.Leaks([]byte(err.Error()), secret.New(url)))
			var re *target.RetryableError
			require.Equal(t, tt.retryable, errors.As(err, &re))
			if tt.notContain != "" {
				require.NotContains(t, err.Error(), tt.notContain)
				require.Less(t, len(err.Error()), 10<<10, "output in errors is bounded")
			}
		})
	}
}

// TestTimeoutKillsProcessGroup: a command that outlives its timeout is
// stopped together with what it started.
func TestTimeoutKillsProcessGroup(t *testing.T) {
	t.Parallel()
	f := newFixture(t, "#!/bin/sh\nsleep 300 &\necho $! > \"$OUT/child\"\nwait\n")
	tg := f.mustTarget(t, "command: [./cmd.sh]\ntimeout: 1500ms\npass_env: [OUT]\nidempotent: true\n")
	err := put(t, tg, map[string]secret.String{"K": secret.New("v")}, "K")
	require.ErrorIs(t, err, exec.ErrFailed)
	require.ErrorContains(t, err, "did not finish within its timeout (1.5s)")
	var re *target.RetryableError
	require.ErrorAs(t, err, &re, "an idempotent command that timed out may be retried")

	pid, err := strconv.Atoi(strings.TrimSpace(f.read(t, "child")))
	require.NoError(t, err)
	// The grandchild got SIGTERM with its group; reaping by init may lag.
	require.Eventually(t, func() bool { return !alive(pid) }, 30*time.Second, 20*time.Millisecond, "the command's child must be stopped too")
}

// alive reports whether pid runs (a zombie waiting for init does not).
func alive(pid int) bool {
	if syscall.Kill(pid, 0) != nil {
		return false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	fields := strings.Fields(string(b))
	return len(fields) > 2 && fields[2] != "Z"
}

func TestReloadRunsWithoutValues(t *testing.T) {
	t.Parallel()
	f := newFixture(t, recorder)
	tg := f.mustTarget(t, "command: [/bin/true]\nreload_command: [./cmd.sh, reload]\nstdin: json\npass_env: [OUT]\n")
	require.NoError(t, put(t, tg, map[string]secret.String{"DATABASE_URL": secret.New("postgres://a:pw-canary@h/d")}, "DATABASE_URL"))
	resp, err := tg.(target.Reloader).Reload(t.Context(), target.ReloadRequest{RotationID: "42"})
	require.NoError(t, err)
	require.Equal(t, "ran cmd.sh", resp.Detail)
	require.Empty(t, f.read(t, "stdin"))
	require.NotContains(t, f.read(t, "env"), "pw-canary")
	require.Contains(t, f.read(t, "env"), "ROTOR_ROTATION_ID=42\n")
	require.Contains(t, f.read(t, "cmdline"), "cmd.sh reload")

	none := f.mustTarget(t, "command: [/bin/true]\n")
	resp, err = none.(target.Reloader).Reload(t.Context(), target.ReloadRequest{})
	require.NoError(t, err)
	require.Equal(t, "no reload_command", resp.Detail)

	failing := f.mustTarget(t, "command: [/bin/true]\nreload_command: [/bin/false]\n")
	_, err = failing.(target.Reloader).Reload(t.Context(), target.ReloadRequest{})
	require.ErrorIs(t, err, exec.ErrFailed)
}

func TestNewValidatesOptions(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, options, want string
	}{
		{"no command", "env: true\n", "has no command"},
		{"template in argv", "command: [psql, '{{.URL}}']\n", "values must never be in argv"},
		{"template in reload argv", "command: [/bin/true]\nreload_command: [x, '{{.Password}}']\n", "values must never be in argv"},
		{"unknown stdin", "command: [/bin/true]\nstdin: yaml\n", `stdin "yaml" is not one of json, dotenv, none`},
		{"no way to pass values", "command: [/bin/true]\nstdin: none\n", "would get no values"},
		{"bad timeout", "command: [/bin/true]\ntimeout: soon\n", "not a positive duration"},
		{"negative timeout", "command: [/bin/true]\ntimeout: -1s\n", "not a positive duration"},
		{"bad pass_env", "command: [/bin/true]\npass_env: [A-B]\n", "not an environment variable name"},
		{"rotor's own env", "command: [/bin/true]\npass_env: [ROTOR_KEY]\n", "ROTOR_ variables are rotor's own"},
		{"unknown option", "command: [/bin/true]\nargs: [x]\n", "field args not found"},
		{"bad reload_wait", "command: [/bin/true]\nreload_command: [/bin/true]\nreload_wait: later\n", `reload_wait "later" is not a duration`},
		{"negative reload_wait", "command: [/bin/true]\nreload_command: [/bin/true]\nreload_wait: -1s\n", "is not a duration"},
		{"reload_wait without reload_command", "command: [/bin/true]\nreload_wait: 10s\n", "there is no reload_command"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := newFixture(t, "").newTarget(t, tt.options)
			require.ErrorContains(t, err, tt.want)
		})
	}
}

func TestInfoAndIdempotence(t *testing.T) {
	t.Parallel()
	f := newFixture(t, recorder)
	info := f.mustTarget(t, "command: [./cmd.sh]\n").Info()
	require.False(t, info.Idempotent, "running a command twice is not known to be harmless")
	require.Equal(t, "command "+filepath.Join(f.dir, "cmd.sh"), info.Destination)
	require.True(t, f.mustTarget(t, "command: [./cmd.sh]\nidempotent: true\n").Info().Idempotent)
}

func TestEnvModeRefusals(t *testing.T) {
	t.Parallel()
	f := newFixture(t, recorder)
	tg := f.mustTarget(t, "command: [./cmd.sh]\nenv: true\npass_env: [OUT]\n")
	tests := []struct {
		name   string
		key    string
		value  string
		reason string
	}{
		{"not a variable name", "DATABASE-URL", "x", "cannot be an environment variable"},
		{"replaces PATH", "PATH", "x", "would replace the command's own PATH"},
		{"rotor's metadata", "ROTOR_ROLE", "x", "would replace"},
		{"NUL byte", "URL", "a\x00canary-nul", "NUL byte"},
	}
	for _, tt := range tests {
		err := put(t, tg, map[string]secret.String{tt.key: secret.New(tt.value)}, tt.key)
		require.ErrorIs(t, err, target.ErrInvalid, tt.name)
		require.ErrorContains(t, err, tt.reason, tt.name)
		require.NotContains(t, err.Error(), "canary-nul", tt.name)
	}
	_, err := os.Stat(filepath.Join(f.out, "env"))
	require.ErrorIs(t, err, os.ErrNotExist, "a refused Put runs nothing")
}

func TestValidate(t *testing.T) {
	t.Parallel()
	f := newFixture(t, recorder)
	require.NoError(t, os.WriteFile(filepath.Join(f.dir, "not-exec.sh"), []byte("#!/bin/sh\n"), 0o600))
	tests := []struct {
		name, options, want string
	}{
		{"ok relative", "command: [./cmd.sh]\n", ""},
		{"ok from PATH", "command: [sh, -c, 'cat > /dev/null']\n", ""},
		{"missing program", "command: [./nope.sh]\n", "is not an executable file"},
		{"not executable", "command: [./not-exec.sh]\n", "is not an executable file"},
		{"not in PATH", "command: [rotor-no-such-program]\n", "not found in PATH"},
		{"missing reload program", "command: [./cmd.sh]\nreload_command: [/nonexistent/reload]\n", "is not an executable file"},
		{"missing dir", "command: [./cmd.sh]\ndir: nope\n", "does not exist"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			resp, err := f.mustTarget(t, tt.options).(target.Validator).Validate(t.Context(), target.ValidateRequest{})
			if tt.want == "" {
				require.NoError(t, err)
				require.Contains(t, strings.Join(resp.Notes, " "), "not idempotent")
				return
			}
			require.ErrorIs(t, err, target.ErrNotFound)
			require.ErrorContains(t, err, tt.want)
		})
	}
}

// counter is a reload_command that counts its runs in $OUT/runs.
const counter = "#!/bin/sh\necho run >> \"$OUT/runs\"\n"

func reloadOf(t *testing.T, tg target.Target, ctx context.Context, rotation string) (target.ReloadResponse, error) {
	t.Helper()
	return tg.(target.Reloader).Reload(ctx, target.ReloadRequest{RotationID: rotation})
}

// TestReloadFinishes: exit 0 is finished; with reload_wait the reload
// returns only after that wait, of exactly that length.
func TestReloadFinishes(t *testing.T) {
	t.Parallel()
	f := newFixture(t, counter)
	tg := f.mustTarget(t, "command: [/bin/true]\nreload_command: [./cmd.sh]\nreload_wait: 20s\npass_env: [OUT]\n")
	var waits []time.Duration
	exec.SetAfter(tg, func(d time.Duration) <-chan time.Time {
		waits = append(waits, d)
		ch := make(chan time.Time, 1)
		ch <- time.Time{}
		return ch
	})
	resp, err := reloadOf(t, tg, t.Context(), "42")
	require.NoError(t, err)
	require.Equal(t, "ran cmd.sh, then waited reload_wait 20s", resp.Detail)
	require.Equal(t, "run\n", f.read(t, "runs"))
	require.Len(t, waits, 1)
	require.InDelta(t, 20*time.Second, waits[0], float64(time.Second), "the wait starts when the command has exited")
}

// TestReloadFails: a non-zero exit fails the reload, naming the status;
// it is not retryable unless the command asked for it (75, idempotent).
func TestReloadFails(t *testing.T) {
	t.Parallel()
	f := newFixture(t, "#!/bin/sh\necho 'systemctl: unit billing.service not found' >&2\nexit 5\n")
	tg := f.mustTarget(t, "command: [/bin/true]\nreload_command: [./cmd.sh]\nreload_wait: 1h\n")
	exec.SetAfter(tg, func(time.Duration) <-chan time.Time {
		t.Error("a failed command is not followed by reload_wait")
		return nil
	})
	_, err := reloadOf(t, tg, t.Context(), "42")
	require.ErrorIs(t, err, exec.ErrFailed)
	require.ErrorContains(t, err, `reload_command: exec target "hook": `+f.script+" exited with status 5 after ")
	require.ErrorContains(t, err, `stderr: "systemctl: unit billing.service not found"`)
	var re *target.RetryableError
	require.NotErrorAs(t, err, &re)
}

// TestReloadTimesOut: when ctx ends (the engine's reload_timeout) while
// reload_command runs, the command is stopped with its process group and
// the error wraps ctx.Err(); even an idempotent command is not retried,
// since reload_timeout bounds the whole reload.
func TestReloadTimesOut(t *testing.T) {
	t.Parallel()
	f := newFixture(t, "#!/bin/sh\nsleep 300 &\necho $! > \"$OUT/child\"\nwait\n")
	tg := f.mustTarget(t, "command: [/bin/true]\nreload_command: [./cmd.sh]\npass_env: [OUT]\nidempotent: true\n")
	// The deadline passes once the command has started its child.
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	dl := targettest.NewDeadline(ctx)
	go func() {
		for ctx.Err() == nil {
			if b, err := os.ReadFile(filepath.Join(f.out, "child")); err == nil && len(b) > 0 && b[len(b)-1] == '\n' {
				dl.Pass()
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	_, err := reloadOf(t, tg, dl, "42")
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.ErrorIs(t, err, exec.ErrFailed)
	require.ErrorContains(t, err, f.script+" was still running after ")
	require.ErrorContains(t, err, "when rotor's own deadline passed (reload_timeout) and was stopped with its process group")
	var re *target.RetryableError
	require.NotErrorAs(t, err, &re)

	pid, err := strconv.Atoi(strings.TrimSpace(f.read(t, "child")))
	require.NoError(t, err)
	require.Eventually(t, func() bool { return !alive(pid) }, 30*time.Second, 20*time.Millisecond, "the command's child must be stopped too")
}

// TestReloadWaitCutShort: ctx ending during reload_wait fails the reload
// with ctx.Err() (here cancelled as the wait starts, so the command's own
// run is never cut short); the next Reload of the same rotation does not run the
// command again but waits what is left of reload_wait.
func TestReloadWaitCutShort(t *testing.T) {
	t.Parallel()
	f := newFixture(t, counter)
	clock := time.Date(2026, 8, 1, 12, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	p := f.params("command: [/bin/true]\nreload_command: [./cmd.sh]\nreload_wait: 20s\npass_env: [OUT]\n")
	p.Now = func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		return clock
	}
	tg, err := exec.New(p)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var waits []time.Duration
	release := make(chan time.Time, 1)
	exec.SetAfter(tg, func(d time.Duration) <-chan time.Time {
		waits = append(waits, d)
		cancel() // the reload's time runs out while it waits
		return release
	})

	_, err = reloadOf(t, tg, ctx, "42")
	require.ErrorIs(t, err, context.Canceled)
	require.ErrorContains(t, err, `exec target "hook": `+f.script+` exited 0, but the reload's time ran out with 20s of reload_wait 20s left, before consumers were expected to have moved`)
	require.Equal(t, []time.Duration{20 * time.Second}, waits)

	mu.Lock()
	clock = clock.Add(5 * time.Second)
	mu.Unlock()
	release <- time.Time{}
	resp, err := reloadOf(t, tg, t.Context(), "42")
	require.NoError(t, err)
	require.Equal(t, "cmd.sh had already succeeded for this rotation, then waited reload_wait 20s", resp.Detail)
	require.Equal(t, []time.Duration{20 * time.Second, 15 * time.Second}, waits, "only the rest of the wait")
	require.Equal(t, "run\n", f.read(t, "runs"), "the command ran once")

	// Another rotation runs it again.
	release <- time.Time{}
	_, err = reloadOf(t, tg, t.Context(), "43")
	require.NoError(t, err)
	require.Equal(t, "run\nrun\n", f.read(t, "runs"))
}
