//go:build unix

// Package osuser runs server programs that refuse to run as root
// (PostgreSQL, PgBouncer) under the postgres OS account when rotor or its
// tests run as root, and hands them the files they need.
package osuser

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

// User is the account server processes run as. A nil *User means "the
// current user": every method is then a no-op.
type User struct {
	uid, gid int
	home     string
}

// ForServer returns the postgres OS user (creating it if missing) when the
// caller is root, or nil when the current user can run program itself.
// program names the server in messages ("PostgreSQL", "PgBouncer").
func ForServer(ctx context.Context, program string) (*User, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	var unknown user.UnknownUserError
	if errors.As(err, &unknown) {
		// Several test binaries may race here; a loser's useradd fails but
		// the lookup below then finds the winner's user.
		out, addErr := exec.CommandContext(ctx, "useradd", "--system", "--user-group", "--no-create-home", "postgres").CombinedOutput()
		u, err = user.Lookup("postgres")
		if err != nil && addErr != nil {
			return nil, fmt.Errorf("%s refuses to run as root and there is no postgres OS user; creating one failed (%s), create it with `useradd --system postgres`: %w", program, out, addErr)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("look up the postgres OS user (%s refuses to run as root): %w", program, err)
	}
	uid, err := strconv.Atoi(u.Uid)
	if err != nil {
		return nil, fmt.Errorf("postgres OS user has a non-numeric uid %q: %w", u.Uid, err)
	}
	gid, err := strconv.Atoi(u.Gid)
	if err != nil {
		return nil, fmt.Errorf("postgres OS user has a non-numeric gid %q: %w", u.Gid, err)
	}
	return &User{uid: uid, gid: gid, home: u.HomeDir}, nil
}

// Apply makes cmd run as u, keeping any other SysProcAttr settings.
func (u *User) Apply(cmd *exec.Cmd) {
	if u == nil {
		return
	}
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Credential = &syscall.Credential{Uid: uint32(u.uid), Gid: uint32(u.gid), Groups: []uint32{}}
	cmd.Env = append(cmd.Env, "HOME="+u.home, "USER=postgres", "LOGNAME=postgres")
}

// Chown gives path to u, so that files root wrote (keys, config, the data
// dir's parent) are usable by the server.
func (u *User) Chown(path string) error {
	if u == nil {
		return nil
	}
	if err := os.Lchown(path, u.uid, u.gid); err != nil {
		return fmt.Errorf("give %s to the postgres OS user: %w", path, err)
	}
	return nil
}

// CheckReachable fails early, with a fix, when a parent of dir is closed
// to u; the servers' own messages for this are obscure.
func (u *User) CheckReachable(dir string) error {
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
