package pgcluster

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
)

// ErrBinariesNotFound means initdb, pg_ctl or postgres is not installed.
// pgtest turns it into a skip outside CI.
var ErrBinariesNotFound = errors.New("PostgreSQL server binaries not found; install them with `apt-get install postgresql`")

// debianRoot is where Debian and Ubuntu packages put one bin dir per major
// version; those dirs are not on PATH, only the pg_wrapper scripts are.
const debianRoot = "/usr/lib/postgresql"

var serverBinaries = []string{"initdb", "pg_ctl", "postgres"}

// FindBinaries returns the directory holding initdb, pg_ctl and postgres:
// the one initdb is found in on PATH, else the highest major version under
// /usr/lib/postgresql.
func FindBinaries() (binDir string, err error) {
	if p, err := exec.LookPath("initdb"); err == nil {
		dir := filepath.Dir(p)
		if hasServerBinaries(dir) {
			return dir, nil
		}
	}
	entries, err := os.ReadDir(debianRoot)
	if err != nil {
		return "", ErrBinariesNotFound
	}
	best, bestVersion := "", -1.0
	for _, e := range entries {
		v, err := strconv.ParseFloat(e.Name(), 64)
		if err != nil {
			continue
		}
		dir := filepath.Join(debianRoot, e.Name(), "bin")
		if v > bestVersion && hasServerBinaries(dir) {
			best, bestVersion = dir, v
		}
	}
	if best == "" {
		return "", fmt.Errorf("looked on PATH and in %s/*/bin: %w", debianRoot, ErrBinariesNotFound)
	}
	return best, nil
}

func hasServerBinaries(dir string) bool {
	for _, name := range serverBinaries {
		info, err := os.Stat(filepath.Join(dir, name))
		if err != nil || info.IsDir() || info.Mode()&0o111 == 0 {
			return false
		}
	}
	return true
}

// Server is one PostgreSQL installation a cluster can start from.
type Server struct {
	// BinDir holds initdb, pg_ctl and postgres.
	BinDir string
	// Major is the major version, 0 when not looked up.
	Major int
	// Root, when set, is a directory the binaries run chrooted in: a
	// Debian root holding a newer PostgreSQL than the system's (made by
	// `scripts/deps.sh --pg17`). It holds a link from its own path to its
	// "/", so every path under Root means the same file inside the root as
	// outside it, and the cluster's directory is made under Root.
	Root string
}

// RootEnv names the directory FindServer looks in for a chroot with a newer
// PostgreSQL; DefaultRoot is where scripts/deps.sh makes one.
const (
	RootEnv     = "ROTOR_PG17_ROOT"
	DefaultRoot = "/var/lib/rotor/pg17root"
)

// FindServer returns an installation of at least PostgreSQL minMajor: the
// system's own (FindBinaries, then every Debian per-version dir), else the
// chroot at $ROTOR_PG17_ROOT or DefaultRoot.
func FindServer(minMajor int) (Server, error) {
	var dirs []string
	if dir, err := FindBinaries(); err == nil {
		dirs = append(dirs, dir)
	}
	if entries, err := os.ReadDir(debianRoot); err == nil {
		for _, e := range entries {
			dirs = append(dirs, filepath.Join(debianRoot, e.Name(), "bin"))
		}
	}
	seen := map[string]bool{}
	for _, dir := range dirs {
		if seen[dir] {
			continue // FindBinaries' choice is one of Debian's dirs too
		}
		seen[dir] = true
		if m := majorOf(dir, ""); m >= minMajor {
			return Server{BinDir: dir, Major: m}, nil
		}
	}
	root := os.Getenv(RootEnv)
	if root == "" {
		root = DefaultRoot
	}
	if entries, err := os.ReadDir(filepath.Join(root, debianRoot)); err == nil {
		for _, e := range entries {
			dir := filepath.Join(root, debianRoot, e.Name(), "bin")
			if m := majorOf(dir, root); m >= minMajor {
				return Server{BinDir: dir, Major: m, Root: root}, nil
			}
		}
	}
	return Server{}, fmt.Errorf("no PostgreSQL %d or later: looked on PATH, in %s/*/bin and in the chroot %s (set %s, or run scripts/deps.sh --pg17): %w",
		minMajor, debianRoot, root, RootEnv, ErrBinariesNotFound)
}

// majorOf is the major version of the server binaries in dir (run inside
// root when set), 0 when there are none or they do not say.
func majorOf(dir, root string) int {
	if !hasServerBinaries(dir) {
		return 0
	}
	cmd := exec.Command(filepath.Join(dir, "postgres"), "--version")
	if root != "" {
		cmd.SysProcAttr = chrootAttr(root)
	}
	out, err := cmd.Output()
	if err != nil {
		return 0
	}
	// "postgres (PostgreSQL) 17.7 (Debian 17.7-0+deb13u1)"
	f := strings.Fields(string(out))
	if len(f) < 3 {
		return 0
	}
	m, err := strconv.Atoi(strings.SplitN(f[2], ".", 2)[0])
	if err != nil {
		return 0
	}
	return m
}
