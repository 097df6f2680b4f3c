//go:build unix

package atomicfile

import (
	"errors"
	"fmt"
	"io/fs"
	"syscall"
)

// ownerToKeep returns the uid and gid to give the replacement (-1: leave
// as created).
func ownerToKeep(path string, fi fs.FileInfo, euid int) (uid, gid int, err error) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return -1, -1, nil
	}
	fileUID, fileGID := int(st.Uid), int(st.Gid)
	if euid == 0 {
		return fileUID, fileGID, nil
	}
	if fileUID != euid {
		return -1, -1, fmt.Errorf("cannot write %s: it is owned by uid %d and rotor runs as uid %d, so the replacement would change its owner and its readers could lose access; run rotor as uid %d or as root: %w", path, fileUID, euid, fileUID, ErrForeignOwner)
	}
	// The replacement's group comes from our primary group or a setgid
	// directory; asking for the old one is allowed when we are a member,
	// and the chown error says so when we are not.
	return -1, fileGID, nil
}

// accessWrite asks the kernel whether this process may create files in
// dir, the same decision it takes on open(2), including ACLs and read-only
// mounts, without creating anything.
func accessWrite(dir string) error {
	const wOK, xOK = 0x2, 0x1
	return syscall.Access(dir, wOK|xOK)
}

// processGone reports whether no process with pid exists on this host.
func processGone(pid int) bool {
	return errors.Is(syscall.Kill(pid, 0), syscall.ESRCH)
}
