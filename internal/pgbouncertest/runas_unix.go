//go:build unix

package pgbouncertest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
)

// osUser is the account PgBouncer runs as. PgBouncer refuses to run as
// root ("PgBouncer should not run as root"), so a root caller hands the
// process and its files to the postgres user, as pgcluster does for the
// server.
type osUser struct {
	uid, gid int
	home     string
}

// serverUser returns nil when the current user can run PgBouncer itself.
func serverUser(ctx context.Context) (*osUser, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	var unknown user.UnknownUserError
	if errors.As(err, &unknown) {
		// Test binaries may race here; a loser's useradd fails but the
		// lookup then finds the winner's user.
		out, addErr := exec.CommandContext(ctx, "useradd", "--system", "--user-group", "--no-create-home", "postgres").CombinedOutput()
		u, err = user.Lookup("postgres")
		if err != nil && addErr != nil {
			return nil, fmt.Errorf("PgBouncer refuses to run as root and there is no postgres OS user; creating one failed (%s), create it with `useradd --system postgres`: %w", out, addErr)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("look up the postgres OS user (PgBouncer refuses to run as root): %w", err)
	}
	uid, err := strconv.Atoi(u.Uid)
	if err != nil {
		return nil, fmt.Errorf("postgres OS user has a non-numeric uid %q: %w", u.Uid, err)
	}
	gid, err := strconv.Atoi(u.Gid)
	if err != nil {
		return nil, fmt.Errorf("postgres OS user has a non-numeric gid %q: %w", u.Gid, err)
	}
	return &osUser{uid: uid, gid: gid, home: u.HomeDir}, nil
}

func (u *osUser) apply(cmd *exec.Cmd) {
	if u == nil {
		return
	}
	cmd.SysProcAttr.Credential = &syscall.Credential{Uid: uint32(u.uid), Gid: uint32(u.gid), Groups: []uint32{}}
	cmd.Env = append(cmd.Env, "HOME="+u.home, "USER=postgres", "LOGNAME=postgres")
}

func (u *osUser) chown(path string) error {
	if u == nil {
		return nil
	}
	if err := os.Lchown(path, u.uid, u.gid); err != nil {
		return fmt.Errorf("give %s to the postgres OS user: %w", path, err)
	}
	return nil
}

// checkReachable fails early, with a fix, when a parent of dir is closed
// to the postgres user; PgBouncer's own message would only say it cannot
// open its config.
func (u *osUser) checkReachable(dir string) error {
	if u == nil {
		return nil
	}
	for p := filepath.Dir(dir); ; p = filepath.Dir(p) {
		info, err := os.Stat(p)
		if err != nil {
			return fmt.Errorf("check that the postgres OS user can reach %s: %w", dir, err)
		}
		st, ok := info.Sys().(*syscall.Stat_t)
		perm := info.Mode().Perm()
		searchable := perm&0o001 != 0 ||
			(ok && int(st.Uid) == u.uid && perm&0o100 != 0) ||
			(ok && int(st.Gid) == u.gid && perm&0o010 != 0)
		if !searchable {
			return fmt.Errorf("the postgres OS user cannot reach %s because %s is closed to it; choose a directory under %s or run `chmod o+x %s`", dir, p, os.TempDir(), p)
		}
		if p == filepath.Dir(p) {
			return nil
		}
	}
}
