// Package exec is the exec target: it hands the rendered values to a
// command of the user's — a script that updates a system rotor has no
// target for — on its standard input or in its environment, never in its
// argv, which every user of the machine can read (/proc/<pid>/cmdline,
// ps). DESIGN.md "Security rules": values appear only where they are meant
// to be held.
//
// The command decides success by its exit status. What it prints is kept
// (the last few KiB of each stream) and, scrubbed of every value, put in
// the error when it fails. A command that runs past its timeout is
// stopped with its whole process group: SIGTERM, then SIGKILL.
//
// rotor cannot know whether running a command twice is harmless, so the
// target is retried by the engine only when the config says idempotent:
// true. Such a command may exit 75 (EX_TEMPFAIL, sysexits.h) to ask for a
// retry.
//
// Reload runs reload_command; its exit 0 is what "finished" means. For
// consumers that act on it asynchronously (a reload signal, a queued job),
// reload_wait adds a fixed pause after the command succeeds, so the engine
// does not count the reload finished before they have moved.
package exec

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	osexec "os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/rotorhq/rotor/internal/connstr"
	"github.com/rotorhq/rotor/internal/secret"
	"github.com/rotorhq/rotor/internal/target"
	"github.com/rotorhq/rotor/internal/target/dotenv"
)

// Type is the registry name of this target.
const Type = "exec"

// Stdin formats.
const (
	StdinJSON   = "json"
	StdinDotenv = "dotenv"
	StdinNone   = "none"
)

const (
	defaultTimeout = 60 * time.Second
	// killGrace is how long a timed-out command's process group has
	// between SIGTERM and SIGKILL.
	killGrace = 2 * time.Second
	// outputLimit bounds what is kept of each of stdout and stderr, and so
	// what an error message (and rotor's journal) carries of them.
	outputLimit = 2 << 10
	// exitTempFail is sysexits.h EX_TEMPFAIL: "try again later".
	exitTempFail = 75
	defaultPath  = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
)

// ErrFailed: the command ran and exited unsuccessfully (or was stopped).
var ErrFailed = errors.New("command failed")

// Options are the target's own config keys.
type Options struct {
	// Command is the argv to run; the first element is an absolute path,
	// a path relative to the config file's directory, or a name looked up
	// in PATH. It is not a template: values never go in argv.
	Command []string `yaml:"command"`
	// Env puts each value in the command's environment under its key.
	Env bool `yaml:"env"`
	// Stdin is json (default unless env is true), dotenv or none.
	Stdin string `yaml:"stdin"`
	// Timeout bounds each run, e.g. "30s". Default 60s.
	Timeout string `yaml:"timeout"`
	// Dir is the working directory; default the config file's directory.
	Dir string `yaml:"dir"`
	// ReloadCommand, when set, runs after every target was written (the
	// engine's reload phase), without values.
	ReloadCommand []string `yaml:"reload_command"`
	// ReloadWait is how long Reload waits after reload_command succeeded
	// before it reports the reload finished, e.g. "20s", for consumers
	// that pick the change up asynchronously. Default 0.
	ReloadWait string `yaml:"reload_wait"`
	// Idempotent declares that running the command again with the same
	// values is harmless, which lets the engine retry it.
	Idempotent bool `yaml:"idempotent"`
	// PassEnv names variables of rotor's own environment the command also
	// gets. Nothing else of rotor's environment (tokens, ROTOR_KEY) is
	// passed on, except PATH, HOME, LANG, LC_ALL, TZ and TMPDIR.
	PassEnv []string `yaml:"pass_env"`
}

// Target runs a command with the values.
type Target struct {
	name       string
	desc       string
	command    []string
	reload     []string
	env        bool
	stdin      string
	timeout    time.Duration
	dir        string
	idempotent bool
	baseEnv    []string
	now        func() time.Time
	// settle is reload_wait. It also records, per rotation id, when
	// reload_command succeeded in this process: Reload called again (a
	// resume after the wait was cut short) does not run it again but
	// waits out the rest of reload_wait.
	settle *target.Settle
}

var envNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// inheritedEnv is what a command gets of rotor's environment without
// asking: enough to find programs and behave like a login shell would.
var inheritedEnv = []string{"PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR"}

// New builds an exec target from its options. It does no I/O.
func New(p target.Params) (target.Target, error) {
	desc := p.Describe(Type)
	var opts Options
	if err := p.DecodeOptions(Type, &opts); err != nil {
		return nil, err
	}
	if len(opts.Command) == 0 || opts.Command[0] == "" {
		return nil, fmt.Errorf("%s has no command; add command: [/usr/local/bin/update-secret, --name, app] (values reach it on stdin or in its environment): %w", desc, target.ErrInvalid)
	}
	for _, argv := range [][]string{opts.Command, opts.ReloadCommand} {
		for _, a := range argv {
			if strings.Contains(a, "{{") {
				return nil, fmt.Errorf("%s: command arguments are not templates, and values must never be in argv, where any user of the machine can read them (ps); read them from stdin (stdin: json or dotenv) or the environment (env: true): %w", desc, target.ErrInvalid)
			}
		}
	}
	if len(opts.ReloadCommand) > 0 && opts.ReloadCommand[0] == "" {
		return nil, fmt.Errorf("%s: reload_command's first element is empty; name the program to run: %w", desc, target.ErrInvalid)
	}
	stdin := opts.Stdin
	if stdin == "" {
		stdin = StdinJSON
		if opts.Env {
			stdin = StdinNone
		}
	}
	switch stdin {
	case StdinJSON, StdinDotenv, StdinNone:
	default:
		return nil, fmt.Errorf("%s: stdin %q is not one of json, dotenv, none: %w", desc, opts.Stdin, target.ErrInvalid)
	}
	if stdin == StdinNone && !opts.Env {
		return nil, fmt.Errorf("%s: with stdin: none and env: false the command would get no values; set stdin: json or env: true: %w", desc, target.ErrInvalid)
	}
	timeout := defaultTimeout
	if opts.Timeout != "" {
		d, err := time.ParseDuration(opts.Timeout)
		if err != nil || d <= 0 {
			return nil, fmt.Errorf("%s: timeout %q is not a positive duration like 30s or 2m: %w", desc, opts.Timeout, target.ErrInvalid)
		}
		timeout = d
	}
	reloadWait, err := target.ParseSettle(opts.ReloadWait)
	if err != nil {
		return nil, fmt.Errorf("%s: %w: %w", desc, err, target.ErrInvalid)
	}
	if len(opts.ReloadCommand) == 0 && reloadWait > 0 {
		return nil, fmt.Errorf("%s: reload_wait is the pause after reload_command, but there is no reload_command; add one or drop reload_wait: %w", desc, target.ErrInvalid)
	}
	dir := p.BaseDir
	if opts.Dir != "" {
		var err error
		if dir, err = p.ResolvePath(opts.Dir); err != nil {
			return nil, fmt.Errorf("%s: dir %w", desc, err)
		}
	}
	getenv := p.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	var baseEnv []string
	for _, name := range inheritedEnv {
		v := getenv(name)
		if name == "PATH" && v == "" {
			v = defaultPath
		}
		if v != "" {
			baseEnv = append(baseEnv, name+"="+v)
		}
	}
	for _, name := range opts.PassEnv {
		if !envNameRE.MatchString(name) {
			return nil, fmt.Errorf("%s: pass_env entry %q is not an environment variable name: %w", desc, name, target.ErrInvalid)
		}
		if strings.HasPrefix(name, "ROTOR_") {
			return nil, fmt.Errorf("%s: pass_env cannot pass %s: ROTOR_ variables are rotor's own (its key, its tokens); %w", desc, name, target.ErrInvalid)
		}
		if v := getenv(name); v != "" {
			baseEnv = append(baseEnv, name+"="+v)
		}
	}
	t := &Target{
		name: p.Name, desc: desc, env: opts.Env, stdin: stdin, timeout: timeout, dir: dir,
		idempotent: opts.Idempotent, baseEnv: baseEnv,
		now: p.Clock(), settle: &target.Settle{Wait: reloadWait, Now: p.Clock()},
	}
	if t.command, err = resolveArgv(p, opts.Command); err != nil {
		return nil, fmt.Errorf("%s: command: %w", desc, err)
	}
	if len(opts.ReloadCommand) > 0 {
		if t.reload, err = resolveArgv(p, opts.ReloadCommand); err != nil {
			return nil, fmt.Errorf("%s: reload_command: %w", desc, err)
		}
	}
	return t, nil
}

// resolveArgv makes a relative program path absolute against the config
// directory; bare names are looked up in PATH when the command runs.
func resolveArgv(p target.Params, argv []string) ([]string, error) {
	out := append([]string(nil), argv...)
	if strings.Contains(out[0], "/") {
		var err error
		if out[0], err = p.ResolvePath(out[0]); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// Info implements target.Target.
// CheckKeys implements target.KeyChecker: with env: true every key
// becomes an environment variable name.
func (t *Target) CheckKeys(keys []string) error {
	if !t.env {
		return nil
	}
	for _, k := range keys {
		if !envNameRE.MatchString(k) {
			return fmt.Errorf("value %s cannot be an environment variable (names are letters, digits and '_', not starting with a digit); rename it or use stdin: %w", k, target.ErrInvalid)
		}
		if isReserved(k) {
			return fmt.Errorf("value %s would replace the command's own %s; rename it: %w", k, k, target.ErrInvalid)
		}
	}
	return nil
}

// CheckValue implements target.ValueChecker: with env: true a value must
// fit in an environment variable.
func (t *Target) CheckValue(key string, value secret.String) error {
	if t.env && strings.IndexByte(value.Reveal(), 0) >= 0 {
		return fmt.Errorf("value %s holds a NUL byte, which no environment variable can; use stdin: json: %w", key, target.ErrInvalid)
	}
	return nil
}

func (t *Target) Info() target.Info {
	return target.Info{Type: Type, Name: t.name, Destination: "command " + t.command[0], Idempotent: t.idempotent}
}

// Put implements target.Target: it runs the command once with the values
// and reports Changed (a command cannot say whether it changed anything).
func (t *Target) Put(ctx context.Context, req target.PutRequest) (target.PutResponse, error) {
	if err := ctx.Err(); err != nil {
		return target.PutResponse{}, err
	}
	keys := req.OrderedKeys()
	secrets := scrubList(req)
	env := append([]string(nil), t.baseEnv...)
	env = append(env, t.metaEnv(req, keys)...)
	if err := t.CheckKeys(keys); err != nil {
		return target.PutResponse{}, fmt.Errorf("%s: %w", t.desc, err)
	}
	if t.env {
		for _, k := range keys {
			if err := t.CheckValue(k, req.Values[k]); err != nil {
				return target.PutResponse{}, fmt.Errorf("%s: %w", t.desc, err)
			}
			env = append(env, k+"="+req.Values[k].Reveal())
		}
	}
	var input []byte
	switch t.stdin {
	case StdinJSON:
		input = encodeJSON(req.Values, keys)
	case StdinDotenv:
		plain := make(map[string]string, len(req.Values))
		for k, v := range req.Values {
			plain[k] = v.Reveal()
		}
		out, err := dotenv.Edit(nil, plain, keys)
		if err != nil {
			return target.PutResponse{}, fmt.Errorf("%s: cannot write the values as dotenv for stdin (use stdin: json): %w", t.desc, secret.Scrub(err, secrets...))
		}
		input = out
	}
	if err := t.run(ctx, t.command, env, input, secrets, "publish.timeout"); err != nil {
		return target.PutResponse{}, err
	}
	return target.PutResponse{Changed: true}, nil
}

// Reload implements target.Reloader: it runs reload_command, if any,
// with the run's metadata but no values, and returns once it exited 0 and
// reload_wait has passed. A non-zero exit is a failure naming the status;
// when ctx ends (the target's reload_timeout) the command is stopped with
// its process group and the error wraps ctx.Err(). Called again for a
// rotation whose command already succeeded in this process, it does not
// run the command again; it waits out what is left of reload_wait.
func (t *Target) Reload(ctx context.Context, req target.ReloadRequest) (target.ReloadResponse, error) {
	if len(t.reload) == 0 {
		return target.ReloadResponse{Detail: "no reload_command"}, nil
	}
	prog := filepath.Base(t.reload[0])
	ranAt, ran := t.settle.Acked(req.RotationID)
	detail := "ran " + prog
	if ran {
		detail = prog + " had already succeeded for this rotation"
	} else {
		env := append([]string(nil), t.baseEnv...)
		env = append(env, "ROTOR_TARGET="+t.name, "ROTOR_ROTATION_ID="+req.RotationID)
		start := t.now()
		if err := t.run(ctx, t.reload, env, nil, nil, "reload_timeout"); err != nil {
			var re *target.RetryableError
			if ctx.Err() != nil && errors.As(err, &re) {
				// reload_timeout bounds the whole reload: the engine is
				// not to start it over.
				err = re.Err
			}
			return target.ReloadResponse{}, fmt.Errorf("reload_command: %w", err)
		}
		ranAt = t.settle.Ack(req.RotationID)
		if ranAt.Sub(start) >= time.Second {
			detail += fmt.Sprintf(" (exit 0 after %s)", ranAt.Sub(start).Round(time.Second))
		}
	}
	if t.settle.Wait <= 0 {
		return target.ReloadResponse{Detail: detail}, nil
	}
	if left, err := t.settle.Until(ctx, ranAt); err != nil {
		return target.ReloadResponse{}, fmt.Errorf("%s: %s exited 0, but the reload's time ran out with %s of reload_wait %s left, before consumers were expected to have moved; lower reload_wait or raise reload_timeout, then run `rotor resume` (it does not run %s again): %w",
			t.desc, t.reload[0], left.Round(time.Millisecond), t.settle.Wait, prog, err)
	}
	return target.ReloadResponse{Detail: fmt.Sprintf("%s, then waited reload_wait %s", detail, t.settle.Wait)}, nil
}

// Check implements target.Checker: a command cannot be asked what it
// holds, so every key is Unreadable.
func (t *Target) Check(ctx context.Context, req target.CheckRequest) (target.CheckResponse, error) {
	if err := ctx.Err(); err != nil {
		return target.CheckResponse{}, err
	}
	return target.CheckResponse{
		Values:     map[string]secret.String{},
		Unreadable: req.Keys,
		Notes:      []string{"the exec target cannot read values back; the command's exit status is the only confirmation"},
	}, nil
}

// Validate implements target.Validator without running anything: the
// working directory exists and the programs resolve to executable files.
func (t *Target) Validate(ctx context.Context, _ target.ValidateRequest) (target.ValidateResponse, error) {
	if err := ctx.Err(); err != nil {
		return target.ValidateResponse{}, err
	}
	if t.dir != "" {
		fi, err := os.Stat(t.dir)
		if err != nil || !fi.IsDir() {
			return target.ValidateResponse{}, fmt.Errorf("%s: working directory %s does not exist or is not a directory; fix dir: %w", t.desc, t.dir, target.ErrNotFound)
		}
	}
	for _, argv := range [][]string{t.command, t.reload} {
		if len(argv) == 0 {
			continue
		}
		if _, err := t.lookPath(argv[0]); err != nil {
			return target.ValidateResponse{}, err
		}
	}
	var notes []string
	if !t.idempotent {
		notes = append(notes, "not idempotent: a failed run is not retried; set idempotent: true if running the command twice is harmless")
	}
	return target.ValidateResponse{Notes: notes}, nil
}

func (t *Target) metaEnv(req target.PutRequest, keys []string) []string {
	return []string{
		"ROTOR_TARGET=" + t.name,
		"ROTOR_ROTATION_ID=" + req.RotationID,
		"ROTOR_VERSION=" + strconv.FormatInt(req.Version, 10),
		"ROTOR_ROLE=" + req.Role,
		"ROTOR_KEYS=" + strings.Join(keys, ","),
	}
}

func isReserved(k string) bool {
	if strings.HasPrefix(k, "ROTOR_") {
		return true
	}
	for _, n := range inheritedEnv {
		if k == n {
			return true
		}
	}
	return false
}

// lookPath finds prog in the PATH the command itself gets.
func (t *Target) lookPath(prog string) (string, error) {
	if strings.Contains(prog, "/") {
		if err := executable(prog); err != nil {
			return "", fmt.Errorf("%s: %s is not an executable file (%v); fix command or its permissions: %w", t.desc, prog, err, target.ErrNotFound)
		}
		return prog, nil
	}
	path := defaultPath
	for _, kv := range t.baseEnv {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			path = v
		}
	}
	for _, dir := range filepath.SplitList(path) {
		if dir == "" {
			continue
		}
		p := filepath.Join(dir, prog)
		if executable(p) == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s: %s not found in PATH (%s); use an absolute path or fix PATH: %w", t.desc, prog, path, target.ErrNotFound)
}

func executable(p string) error {
	fi, err := os.Stat(p)
	switch {
	case err != nil:
		return err
	case fi.IsDir():
		return errors.New("a directory")
	case fi.Mode()&0o111 == 0:
		return fs.ErrPermission
	}
	return nil
}

// run runs argv and turns anything but a zero exit into an error carrying
// the scrubbed tail of its output. deadline names what bounds ctx (for
// the message when ctx ends first); that error wraps ctx.Err().
func (t *Target) run(ctx context.Context, argv, env []string, input []byte, secrets []secret.String, deadline string) error {
	prog, err := t.lookPath(argv[0])
	if err != nil {
		return err
	}
	parent := ctx
	ctx, cancel := context.WithTimeout(ctx, t.timeout)
	defer cancel()
	var stdout, stderr tailBuffer
	newCmd := func() *osexec.Cmd {
		cmd := osexec.CommandContext(ctx, prog, argv[1:]...)
		cmd.Args[0] = argv[0]
		cmd.Dir = t.dir
		cmd.Env = env
		cmd.Stdin = bytes.NewReader(input)
		stdout, stderr = tailBuffer{}, tailBuffer{}
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		// Its own process group, so that a timeout stops what it started too.
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		cmd.Cancel = func() error {
			pgid := cmd.Process.Pid
			_ = syscall.Kill(-pgid, syscall.SIGTERM)
			time.AfterFunc(killGrace, func() { _ = syscall.Kill(-pgid, syscall.SIGKILL) })
			return nil
		}
		// A background child that keeps stdout open must not hang rotor.
		cmd.WaitDelay = killGrace + time.Second
		return cmd
	}
	start := time.Now()
	cmd := newCmd()
	err = cmd.Start()
	// A script written moments ago (by a deploy, or by this very process)
	// can be briefly busy while another fork still holds its write
	// descriptor (Linux ETXTBSY; golang.org/issue/22315). That clears in
	// milliseconds, so it is retried rather than reported.
	for busy := 0; errors.Is(err, syscall.ETXTBSY) && busy < 50 && ctx.Err() == nil; busy++ {
		time.Sleep(time.Duration(busy+1) * 2 * time.Millisecond)
		cmd = newCmd()
		err = cmd.Start()
	}
	if err == nil {
		err = cmd.Wait()
	}
	elapsed := time.Since(start).Round(time.Millisecond)
	if err == nil || errors.Is(err, osexec.ErrWaitDelay) && cmd.ProcessState != nil && cmd.ProcessState.Success() {
		return nil
	}
	output := describeOutput(&stdout, &stderr, secrets)
	var exitErr *osexec.ExitError
	switch {
	case parent.Err() != nil:
		err := fmt.Errorf("%s: %s was still running after %s when rotor's own deadline passed (%s) and was stopped with its process group%s: %w: %w",
			t.desc, argv[0], elapsed, deadline, output, ErrFailed, parent.Err())
		if t.idempotent {
			return &target.RetryableError{Err: err}
		}
		return err
	case ctx.Err() != nil:
		err := fmt.Errorf("%s: %s did not finish within its timeout (%s) and was stopped with its process group%s: %w", t.desc, argv[0], t.timeout, output, ErrFailed)
		if t.idempotent {
			return &target.RetryableError{Err: err}
		}
		return err
	case errors.As(err, &exitErr):
		status := exitErr.ExitCode()
		what := fmt.Sprintf("exited with status %d", status)
		if status < 0 {
			what = "was killed by " + exitErr.ProcessState.String()
		}
		err := fmt.Errorf("%s: %s %s after %s%s: %w", t.desc, argv[0], what, elapsed, output, ErrFailed)
		if status == exitTempFail && t.idempotent {
			return &target.RetryableError{Err: err}
		}
		return err
	}
	return fmt.Errorf("%s: cannot run %s; check command: %w", t.desc, argv[0], secret.Scrub(err, secrets...))
}

func describeOutput(stdout, stderr *tailBuffer, secrets []secret.String) string {
	var parts []string
	for _, s := range []struct {
		name string
		b    *tailBuffer
	}{{"stderr", stderr}, {"stdout", stdout}} {
		text := strings.TrimSpace(secret.ScrubString(s.b.String(), secrets...))
		if text == "" {
			continue
		}
		if s.b.dropped > 0 {
			text = "…" + text
		}
		parts = append(parts, fmt.Sprintf("%s: %q", s.name, text))
	}
	if len(parts) == 0 {
		return ""
	}
	return " (" + strings.Join(parts, "; ") + ")"
}

// tailBuffer keeps the last outputLimit bytes written to it: a failing
// command's last words are the ones that explain it.
type tailBuffer struct {
	buf     []byte
	dropped int
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.buf = append(b.buf, p...)
	if over := len(b.buf) - outputLimit; over > 0 {
		b.dropped += over
		b.buf = append(b.buf[:0], b.buf[over:]...)
	}
	return len(p), nil
}

func (b *tailBuffer) String() string { return string(b.buf) }

// encodeJSON writes {"KEY":"value",…} in config order, without HTML
// escaping, so scripts can use jq -r .DATABASE_URL.
func encodeJSON(values map[string]secret.String, keys []string) []byte {
	var out bytes.Buffer
	out.WriteByte('{')
	for i, k := range keys {
		if i > 0 {
			out.WriteByte(',')
		}
		out.Write(jsonString(k))
		out.WriteByte(':')
		out.Write(jsonString(values[k].Reveal()))
	}
	out.WriteString("}\n")
	return out.Bytes()
}

func jsonString(s string) []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s) // a string always encodes
	return bytes.TrimSuffix(b.Bytes(), []byte("\n"))
}

// scrubList is every value, and the password inside each value that is a
// connection string: a script may well print only that part.
func scrubList(req target.PutRequest) []secret.String {
	var out []secret.String
	for _, v := range req.Values {
		out = append(out, v)
		if c, err := connstr.Parse(v.Reveal()); err == nil && !c.Password.IsZero() {
			out = append(out, c.Password)
		}
	}
	return out
}

var (
	_ target.Target       = (*Target)(nil)
	_ target.KeyChecker   = (*Target)(nil)
	_ target.ValueChecker = (*Target)(nil)
	_ target.Reloader     = (*Target)(nil)
	_ target.Checker      = (*Target)(nil)
	_ target.Validator    = (*Target)(nil)
)
