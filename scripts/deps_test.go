// Package scripts_test checks the decisions of the shell scripts that
// `make demo`, `make test` and .ci/run rely on, without installing
// anything: deps.sh runs in --plan mode with a PATH of fakes, so what it
// finds missing, the packages it picks and the command it tells a user
// to run are all decided by the test.
package scripts_test

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

const nodeDir = "internal/target/dotenv/testdata/node"

// machine is what deps.sh sees: commands on PATH, files under the
// system root (Debian's /usr/lib/postgresql/N/bin, /usr/sbin), who runs it
// and on what OS, and whether the pinned dotenv is installed.
type machine struct {
	path         []string
	sysroot      []string
	uid          int
	os           string
	noPostgres   bool // the postgres OS user is missing
	nodeModules  bool
	staleModules bool // package-lock.json is newer than what npm ci installed
}

// allThere has every dependency of the tests on PATH.
var allThere = []string{"initdb", "pg_ctl", "postgres", "pgbouncer", "node", "npm", "gcc", "apt-get"}

// allThereMac is allThere for macOS, where cgo uses clang.
var allThereMac = []string{"initdb", "pg_ctl", "postgres", "pgbouncer", "node", "npm", "clang", "brew"}

const (
	aptUpdate  = "+ apt-get update -qq"
	aptInstall = "+ apt-get install -y -qq --no-install-recommends "
	stopPG     = "+ stop_packaged_postgresql"
	stopPGB    = "+ stop_packaged_pgbouncer"
	addUser    = "+ useradd --system --home-dir /var/lib/postgresql --shell /bin/bash postgres"
	npmCI      = "+ npm ci --prefix REPO/" + nodeDir + " --silent --no-audit --no-fund"
)

func TestDepsPlan(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		m        machine
		args     []string
		env      []string
		wantCode int
		// wantPlan is the exact list of commands deps.sh would run.
		wantPlan []string
		// wantStderr are lines stderr must contain; a plan with
		// installs announces them, a refusal gives the command.
		wantStderr []string
	}{
		{
			name: "everything there: silent, nothing to do",
			m:    machine{path: allThere, uid: 0, os: "Linux", nodeModules: true},
		},
		{
			name: "nothing there, root with apt-get: every package, services stopped, dotenv installed",
			m:    machine{path: []string{"apt-get"}, uid: 0, os: "Linux", noPostgres: true},
			wantPlan: []string{aptUpdate, aptInstall + "postgresql postgresql-contrib pgbouncer nodejs npm gcc libc6-dev",
				stopPG, stopPGB, addUser, npmCI},
			wantStderr: []string{"deps.sh: missing PostgreSQL server (initdb, pg_ctl, postgres), PgBouncer, Node.js, npm, C compiler (gcc, for go test -race); installing postgresql postgresql-contrib pgbouncer nodejs npm gcc libc6-dev"},
		},
		{
			name:     "only PgBouncer missing: only its package and its service",
			m:        machine{path: without(allThere, "pgbouncer"), uid: 0, os: "Linux", nodeModules: true},
			wantPlan: []string{aptUpdate, aptInstall + "pgbouncer", stopPGB},
		},
		{
			name: "PostgreSQL only in Debian's per-version dir and PgBouncer only in /usr/sbin: found",
			m: machine{path: without(allThere, "initdb", "pg_ctl", "postgres", "pgbouncer"), uid: 0, os: "Linux", nodeModules: true,
				sysroot: []string{"usr/lib/postgresql/15/bin/initdb", "usr/lib/postgresql/15/bin/pg_ctl", "usr/lib/postgresql/15/bin/postgres", "usr/sbin/pgbouncer"}},
		},
		{
			name:     "initdb on PATH without pg_ctl beside it: the server is missing",
			m:        machine{path: without(allThere, "pg_ctl"), uid: 0, os: "Linux", nodeModules: true},
			wantPlan: []string{aptUpdate, aptInstall + "postgresql postgresql-contrib", stopPG},
		},
		{
			name: "a half-installed Debian dir does not count",
			m: machine{path: without(allThere, "initdb", "pg_ctl", "postgres"), uid: 0, os: "Linux", nodeModules: true,
				sysroot: []string{"usr/lib/postgresql/15/bin/initdb", "usr/lib/postgresql/15/bin/pg_ctl"}},
			wantPlan: []string{aptUpdate, aptInstall + "postgresql postgresql-contrib", stopPG},
		},
		{
			name:     "node without npm: only npm",
			m:        machine{path: without(allThere, "npm"), uid: 0, os: "Linux"},
			wantPlan: []string{aptUpdate, aptInstall + "npm", npmCI},
		},
		{
			name:     "Node there, dotenv not installed: npm ci only, no root needed",
			m:        machine{path: allThere, uid: 1000, os: "Linux"},
			wantPlan: []string{npmCI},
		},
		{
			name:     "dotenv installed from an older lock file: npm ci again",
			m:        machine{path: allThere, uid: 1000, os: "Linux", nodeModules: true, staleModules: true},
			wantPlan: []string{npmCI},
		},
		{
			name:     "root without the postgres user: created",
			m:        machine{path: allThere, uid: 0, os: "Linux", noPostgres: true, nodeModules: true},
			wantPlan: []string{addUser},
		},
		{
			name:     "not root: the postgres user is pgcluster's business only as root",
			m:        machine{path: allThere, uid: 1000, os: "Linux", noPostgres: true, nodeModules: true},
			wantPlan: nil,
		},
		{
			name:     "not root on Debian: stops with the sudo apt-get line",
			m:        machine{path: []string{"apt-get", "node", "npm", "gcc"}, uid: 1000, os: "Linux", nodeModules: true},
			wantCode: 1,
			wantStderr: []string{
				"deps.sh: missing PostgreSQL server (initdb, pg_ctl, postgres), PgBouncer (make test refuses to skip what needs it). Run:",
				"  sudo apt-get update && sudo apt-get install -y --no-install-recommends postgresql postgresql-contrib pgbouncer",
				"then run make again.",
			},
		},
		{
			name:     "root without apt-get: stops, naming the packages",
			m:        machine{path: []string{"node", "npm", "pgbouncer", "gcc"}, uid: 0, os: "Linux", nodeModules: true},
			wantCode: 1,
			wantStderr: []string{
				"deps.sh: missing PostgreSQL server (initdb, pg_ctl, postgres) (make test refuses to skip what needs it). Run:",
				"  # your system's packages for them; on Debian/Ubuntu: apt-get install postgresql postgresql-contrib",
			},
		},
		{
			name:     "macOS with Homebrew: the brew line and the keg-only PATH",
			m:        machine{path: []string{"brew", "clang"}, uid: 501, os: "Darwin"},
			wantCode: 1,
			wantStderr: []string{
				"  brew install postgresql@17 pgbouncer node",
				`  export PATH="$(brew --prefix postgresql@17)/bin:$PATH"`,
			},
		},
		{
			name:       "macOS without Homebrew: where to get it first",
			m:          machine{path: without(allThereMac, "pgbouncer", "brew"), uid: 501, os: "Darwin", nodeModules: true},
			wantCode:   1,
			wantStderr: []string{"  # Homebrew first: https://brew.sh", "  brew install pgbouncer"},
		},
		{
			name:     "macOS without a C compiler: the command line tools, not Homebrew",
			m:        machine{path: without(allThereMac, "clang"), uid: 501, os: "Darwin", nodeModules: true},
			wantCode: 1,
			wantStderr: []string{
				"deps.sh: missing C compiler (clang, for go test -race) (make test refuses to skip what needs it). Run:",
				"  xcode-select --install",
			},
		},
		{
			name:     "gcc missing on Linux: gcc with the C headers",
			m:        machine{path: without(allThere, "gcc"), uid: 0, os: "Linux", nodeModules: true},
			wantPlan: []string{aptUpdate, aptInstall + "gcc libc6-dev"},
		},
		{
			name:     "$CC names the compiler go will use",
			m:        machine{path: append(without(allThere, "gcc"), "clang"), uid: 0, os: "Linux", nodeModules: true},
			env:      []string{"CC=clang"},
			wantPlan: nil,
		},
		{
			name:     "make demo asks for PostgreSQL only",
			m:        machine{path: []string{"apt-get", "initdb", "pg_ctl", "postgres"}, uid: 0, os: "Linux"},
			args:     []string{"postgresql"},
			wantPlan: nil,
		},
		{
			name:     "browser tests off by default: no Chromium",
			m:        machine{path: allThere, uid: 0, os: "Linux", nodeModules: true},
			wantPlan: nil,
		},
		{
			name:     "ROTOR_DEPS_BROWSER=1: Chromium too",
			m:        machine{path: allThere, uid: 0, os: "Linux", nodeModules: true},
			env:      []string{"ROTOR_DEPS_BROWSER=1"},
			wantPlan: []string{aptUpdate, aptInstall + "chromium"},
		},
		{
			name:     "--browser with Chromium there: nothing",
			m:        machine{path: append(without(allThere), "chromium"), uid: 0, os: "Linux", nodeModules: true},
			args:     []string{"--browser"},
			wantPlan: nil,
		},
		{
			name:       "--browser on macOS: the cask",
			m:          machine{path: allThereMac, uid: 501, os: "Darwin", nodeModules: true},
			args:       []string{"--browser"},
			wantCode:   1,
			wantStderr: []string{"  brew install --cask chromium"},
		},
		{
			name:     "pg17 off by default",
			m:        machine{path: allThere, uid: 0, os: "Linux", nodeModules: true, sysroot: []string{"usr/lib/postgresql/15/bin/postgres"}},
			wantPlan: nil,
		},
		{
			name: "--pg17 as root beside PostgreSQL 15, no debootstrap: debootstrap, then the trixie root",
			m: machine{path: allThere, uid: 0, os: "Linux", nodeModules: true,
				sysroot: []string{"usr/lib/postgresql/15/bin/initdb", "usr/lib/postgresql/15/bin/pg_ctl", "usr/lib/postgresql/15/bin/postgres"}},
			args:       []string{"--pg17"},
			wantPlan:   []string{aptUpdate, aptInstall + "debootstrap", "+ REPO/scripts/pg17root.sh /var/lib/rotor/pg17root"},
			wantStderr: []string{"deps.sh: missing PostgreSQL 17 (a Debian trixie root at /var/lib/rotor/pg17root); installing debootstrap, then making the PostgreSQL 17 root with scripts/pg17root.sh"},
		},
		{
			name:     "ROTOR_DEPS_PG17=1 with debootstrap there, to a root of the user's choice",
			m:        machine{path: append(without(allThere), "debootstrap"), uid: 0, os: "Linux", nodeModules: true},
			env:      []string{"ROTOR_DEPS_PG17=1", "ROTOR_PG17_ROOT=/srv/pg17"},
			wantPlan: []string{"+ REPO/scripts/pg17root.sh /srv/pg17"},
		},
		{
			name:     "--pg17 with Debian's PostgreSQL 17 installed: nothing",
			m:        machine{path: allThere, uid: 0, os: "Linux", nodeModules: true, sysroot: []string{"usr/lib/postgresql/17/bin/postgres"}},
			args:     []string{"--pg17"},
			wantPlan: nil,
		},
		{
			name:     "--pg17 without root: the command to make it",
			m:        machine{path: append(without(allThere), "debootstrap"), uid: 1000, os: "Linux", nodeModules: true},
			args:     []string{"--pg17"},
			wantCode: 1,
			wantStderr: []string{"deps.sh: missing PostgreSQL 17 (a Debian trixie root at /var/lib/rotor/pg17root) (make test refuses to skip what needs it). Run:",
				"  sudo REPO/scripts/pg17root.sh /var/lib/rotor/pg17root"},
		},
		{
			name:       "--pg17 on macOS: Homebrew's",
			m:          machine{path: allThereMac, uid: 501, os: "Darwin", nodeModules: true},
			args:       []string{"--pg17"},
			wantCode:   1,
			wantStderr: []string{"  brew install postgresql@17"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			repo, code, stdout, stderr := runPlan(t, tc.m, tc.env, tc.args...)
			require.Equal(t, tc.wantCode, code, "exit code; stderr:\n%s", stderr)
			var want []string
			for _, l := range tc.wantPlan {
				want = append(want, strings.ReplaceAll(l, "REPO", repo))
			}
			require.Equal(t, want, lines(stdout), "planned commands")
			for _, l := range tc.wantStderr {
				l = strings.ReplaceAll(l, "REPO", repo)
				require.Contains(t, lines(stderr), l, "stderr:\n%s", stderr)
			}
			if len(tc.wantPlan) == 0 && tc.wantCode == 0 {
				require.Empty(t, stderr, "quiet when everything is there")
			}
			if tc.wantCode != 0 {
				require.Empty(t, stdout, "nothing runs when it stops")
			}
		})
	}
}

func TestDepsRefusesUnknownArgument(t *testing.T) {
	t.Parallel()
	_, code, _, stderr := runPlan(t, machine{path: allThere, os: "Linux"}, nil, "postgres")
	require.Equal(t, 2, code)
	require.Contains(t, stderr, "unknown argument postgres")
}

func TestLargeFiles(t *testing.T) {
	t.Parallel()
	git, err := exec.LookPath("git")
	require.NoError(t, err, "git is needed to test the tracked-size check")
	repo := t.TempDir()
	copyScript(t, repo, "large-files.sh")
	gitIn := func(args ...string) {
		t.Helper()
		out, err := exec.Command(git, append([]string{"-C", repo}, args...)...).CombinedOutput()
		require.NoError(t, err, "git %v: %s", args, out)
	}
	gitIn("init", "-q")
	require.NoError(t, os.WriteFile(filepath.Join(repo, "small file.txt"), []byte("x"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(repo, "big  binary"), make([]byte, 5<<20+1), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(repo, "at limit"), make([]byte, 5<<20), 0o644))
	gitIn("add", ".")

	check := func() (int, string) {
		cmd := exec.Command(filepath.Join(repo, "scripts", "large-files.sh"))
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		return exitCode(t, cmd.Run()), stderr.String()
	}
	code, stderr := check()
	require.Equal(t, 1, code, stderr)
	require.Contains(t, lines(stderr), "  big  binary (5242881 bytes)")
	require.NotContains(t, stderr, "at limit")
	require.NotContains(t, stderr, "small file")

	// Deleted from the work tree but still staged: still tracked.
	require.NoError(t, os.Remove(filepath.Join(repo, "big  binary")))
	code, _ = check()
	require.Equal(t, 1, code)

	gitIn("rm", "-q", "--cached", "big  binary")
	code, stderr = check()
	require.Equal(t, 0, code, stderr)
	require.Empty(t, stderr)
}

// runPlan builds m in a temp dir and runs deps.sh --plan there, with only
// m's commands on PATH. It returns the fake repo's path, so that expected
// paths can name it.
func runPlan(t *testing.T, m machine, env []string, args ...string) (repo string, code int, stdout, stderr string) {
	t.Helper()
	bash, err := exec.LookPath("bash")
	require.NoError(t, err)
	dir := t.TempDir()
	repo = filepath.Join(dir, "repo")
	copyScript(t, repo, "deps.sh")

	bin := filepath.Join(dir, "bin")
	require.NoError(t, os.Mkdir(bin, 0o755))
	for _, name := range m.path {
		writeExec(t, filepath.Join(bin, name), "#!/bin/sh\necho \"fake $0 must not run in --plan\" >&2\nexit 99\n")
	}
	postgresExit := 0
	if m.noPostgres {
		postgresExit = 1
	}
	writeExec(t, filepath.Join(bin, "id"), "#!/bin/sh\ncase \"$1\" in\n-u) echo "+strconv.Itoa(m.uid)+" ;;\npostgres) exit "+strconv.Itoa(postgresExit)+" ;;\n*) exit 98 ;;\nesac\n")
	writeExec(t, filepath.Join(bin, "uname"), "#!/bin/sh\necho "+m.os+"\n")

	sysroot := filepath.Join(dir, "root")
	for _, p := range m.sysroot {
		writeExec(t, filepath.Join(sysroot, p), "#!/bin/sh\nexit 99\n")
	}

	node := filepath.Join(repo, nodeDir)
	require.NoError(t, os.MkdirAll(node, 0o755))
	lock := filepath.Join(node, "package-lock.json")
	require.NoError(t, os.WriteFile(lock, []byte("{}\n"), 0o644))
	if m.nodeModules {
		require.NoError(t, os.MkdirAll(filepath.Join(node, "node_modules", "dotenv"), 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(node, "node_modules", "dotenv", "package.json"), []byte("{}\n"), 0o644))
		installed := filepath.Join(node, "node_modules", ".package-lock.json")
		require.NoError(t, os.WriteFile(installed, []byte("{}\n"), 0o644))
		// npm ci leaves its copy newer than the lock; a stale one is older.
		lockTime, installedTime := time.Unix(1_700_000_000, 0), time.Unix(1_700_000_100, 0)
		if m.staleModules {
			lockTime, installedTime = installedTime, lockTime
		}
		require.NoError(t, os.Chtimes(lock, lockTime, lockTime))
		require.NoError(t, os.Chtimes(installed, installedTime, installedTime))
	}

	cmd := exec.Command(bash, append([]string{filepath.Join(repo, "scripts", "deps.sh"), "--plan"}, args...)...)
	cmd.Env = append([]string{"PATH=" + bin, "ROTOR_DEPS_SYSROOT=" + sysroot, "HOME=" + dir}, env...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	code = exitCode(t, cmd.Run())
	require.NotContains(t, errOut.String(), "must not run", "a fake command ran")
	return repo, code, out.String(), errOut.String()
}

func copyScript(t *testing.T, repo, name string) {
	t.Helper()
	src, err := os.ReadFile(name)
	require.NoError(t, err)
	writeExec(t, filepath.Join(repo, "scripts", name), string(src))
}

func writeExec(t *testing.T, path, content string) {
	t.Helper()
	require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o755))
	require.NoError(t, os.WriteFile(path, []byte(content), 0o755))
}

func exitCode(t *testing.T, err error) int {
	t.Helper()
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return exit.ExitCode()
	}
	require.NoError(t, err)
	return 0
}

func without(names []string, drop ...string) []string {
	var out []string
	for _, n := range names {
		keep := true
		for _, d := range drop {
			keep = keep && n != d
		}
		if keep {
			out = append(out, n)
		}
	}
	return out
}

func lines(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(strings.TrimSuffix(s, "\n"), "\n")
}
