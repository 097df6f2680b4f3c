package pgcluster

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
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
