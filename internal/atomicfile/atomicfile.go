// Package atomicfile replaces files so that a reader, or a crash, sees
// either the old content or the new one, never a mix (DESIGN.md "Security
// rules": temp file, fsync, rename, keep the mode, new files 0600).
package atomicfile

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// maxLinkHops matches the kernel's limit (MAXSYMLINKS) so a loop fails the
// same way a shell would.
const maxLinkHops = 40

// keptModeBits are the bits a replacement inherits from the file it
// replaces; the rest of fs.FileMode describes the file type.
const keptModeBits = fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky

// WriteFile makes path hold exactly data.
//
// It does nothing and reports changed=false when the file already holds
// data, so repeated rotations neither touch mtime nor wake file watchers.
// Otherwise it writes a temporary file next to the destination, fsyncs it,
// renames it over the destination and fsyncs the directory, so the rename
// survives a power loss.
//
// An existing file keeps its mode and, when running as root, its owner and
// group: a consumer that could read it before can read it after. A new file
// gets exactly perm (the umask is not applied; callers pass 0600). When
// path is a symbolic link, the file it points to is replaced and the link
// stays a link.
//
// A process that is not root cannot give a file away, so replacing a file
// owned by another user (or whose group it cannot set) would silently take
// it over; WriteFile refuses instead and writes nothing.
func WriteFile(path string, data []byte, perm os.FileMode) (changed bool, err error) {
	return writeFile(path, data, perm, os.Geteuid())
}

// writeFile takes the effective uid as a parameter so tests can exercise
// the non-root ownership rules while running as root, and the reverse.
func writeFile(path string, data []byte, perm os.FileMode, euid int) (bool, error) {
	dest, err := resolve(path)
	if err != nil {
		return false, err
	}
	dir := filepath.Dir(dest)

	mode := perm & keptModeBits
	uid, gid := -1, -1
	fi, err := os.Stat(dest)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		// A new file: nothing to compare with or keep.
	case errors.Is(err, syscall.ENOTDIR):
		return false, dirError(path, dir, err)
	case err != nil:
		return false, readError(path, dest, err)
	case !fi.Mode().IsRegular():
		return false, fmt.Errorf("cannot write %s: it is not a regular file (%s); point the target at a file: %w", path, fi.Mode().Type(), ErrNotRegular)
	default:
		old, err := os.ReadFile(dest)
		if err != nil {
			return false, readError(path, dest, err)
		}
		if bytes.Equal(old, data) {
			return false, nil
		}
		mode = fi.Mode() & keptModeBits
		uid, gid, err = ownerToKeep(path, fi, euid)
		if err != nil {
			return false, err
		}
	}

	sweepStale(dir, filepath.Base(dest))
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(dest)+".rotor-"+strconv.Itoa(os.Getpid())+"-*.tmp")
	if err != nil {
		return false, dirError(path, dir, err)
	}
	tmpName := tmp.Name()
	// Until the rename succeeds the temp file is ours to clean up; it may
	// hold a secret, so it must not be left behind on any error path.
	renamed := false
	defer func() {
		if !renamed {
			_ = tmp.Close()
			_ = os.Remove(tmpName)
		}
	}()

	if _, err := tmp.Write(data); err != nil {
		return false, fmt.Errorf("cannot write %s: writing the temporary file in %s failed; check free space and quotas: %w", path, dir, err)
	}
	// Owner and mode are set before the fsync so that they are as durable
	// as the content; chown comes first because it clears setuid/setgid.
	if err := chown(tmp, path, uid, gid); err != nil {
		return false, err
	}
	if err := tmp.Chmod(mode); err != nil {
		return false, fmt.Errorf("cannot write %s: cannot set mode %v on the new file; check the filesystem supports permissions: %w", path, mode, err)
	}
	if err := tmp.Sync(); err != nil {
		return false, fmt.Errorf("cannot write %s: fsync of the temporary file in %s failed; check the filesystem: %w", path, dir, err)
	}
	if err := tmp.Close(); err != nil {
		return false, fmt.Errorf("cannot write %s: closing the temporary file in %s failed; check free space and quotas: %w", path, dir, err)
	}
	if err := os.Rename(tmpName, dest); err != nil {
		return false, renameError(path, dest, dir, err)
	}
	renamed = true
	if err := syncDir(dir); err != nil {
		return true, fmt.Errorf("wrote %s but could not fsync directory %s, so the change may not survive a power loss; check the filesystem: %w", path, dir, err)
	}
	return true, nil
}

func chown(f *os.File, path string, uid, gid int) error {
	if uid == -1 && gid == -1 {
		return nil
	}
	err := f.Chown(uid, gid)
	switch {
	case err == nil:
		return nil
	case uid == -1:
		return fmt.Errorf("cannot write %s: cannot give the new file the old file's group %d; add rotor's user to that group or run rotor as root: %w", path, gid, err)
	}
	return fmt.Errorf("cannot write %s: cannot give the new file the old file's owner %d:%d; run rotor as root or as that user: %w", path, uid, gid, err)
}

// ErrNotRegular: the destination exists but is a directory, device, socket…
var ErrNotRegular = errors.New("not a regular file")

// ErrForeignOwner: the file belongs to someone a non-root process cannot
// hand a replacement to.
var ErrForeignOwner = errors.New("file owned by another user")

// CheckWritable reports, without writing anything, whether WriteFile could
// replace or create path: its directory exists and this process may
// create files in it, and path, if present, is a regular file.
func CheckWritable(path string) error {
	dest, err := resolve(path)
	if err != nil {
		return err
	}
	dir := filepath.Dir(dest)
	dirInfo, err := os.Stat(dir)
	if err != nil {
		return dirError(path, dir, err)
	}
	if !dirInfo.IsDir() {
		return fmt.Errorf("cannot write %s: %s is not a directory; point the target elsewhere: %w", path, dir, syscall.ENOTDIR)
	}
	if err := accessWrite(dir); err != nil {
		return dirError(path, dir, err)
	}
	fi, err := os.Stat(dest)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return readError(path, dest, err)
	case !fi.Mode().IsRegular():
		return fmt.Errorf("cannot write %s: it is not a regular file (%s); point the target at a file: %w", path, fi.Mode().Type(), ErrNotRegular)
	}
	// The rename over the file is refused for reasons its mode and the
	// directory's do not show.
	if attr, letter := lockedAttr(dest); attr != "" {
		return lockedFileError(path, dest, attr, letter, syscall.EPERM)
	}
	if onOtherDevice(fi, dirInfo) {
		return mountPointError(path, syscall.EBUSY)
	}
	return nil
}

// resolve follows symbolic links in path's last element so the file they
// point to is replaced instead of the link. filepath.EvalSymlinks would do
// for an existing file but fails on a dangling link, whose target WriteFile
// creates.
func resolve(path string) (string, error) {
	p := path
	for range maxLinkHops {
		fi, err := os.Lstat(p)
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
			return p, nil
		}
		if err != nil {
			return "", readError(path, p, err)
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			return p, nil
		}
		link, err := os.Readlink(p)
		if err != nil {
			return "", readError(path, p, err)
		}
		if !filepath.IsAbs(link) {
			link = filepath.Join(filepath.Dir(p), link)
		}
		p = link
	}
	return "", fmt.Errorf("cannot write %s: too many levels of symbolic links; fix the link: %w", path, syscall.ELOOP)
}

// renameError names what refused the rename of the new file over dest:
// the file (immutable, append-only, a mount point), the directory, or, when
// neither shows why, the kernel's policy.
func renameError(path, dest, dir string, err error) error {
	if attr, letter := lockedAttr(dest); attr != "" {
		return lockedFileError(path, dest, attr, letter, err)
	}
	if errors.Is(err, syscall.EBUSY) {
		return mountPointError(path, err)
	}
	if errors.Is(err, fs.ErrPermission) && accessWrite(dir) == nil {
		if attr, _ := lockedAttr(dir); attr == "" {
			return fmt.Errorf("cannot write %s: renaming the new file over it was refused although directory %s is writable;"+
				" check the file's flags (lsattr %s) and any security policy (SELinux, AppArmor) that covers it: %w", path, dir, dest, err)
		}
	}
	return dirError(path, dir, err)
}

func lockedFileError(path, dest, attr, letter string, err error) error {
	return fmt.Errorf("cannot write %s: the file is %s (chattr +%s), so it cannot be replaced, not even by root;"+
		" remove the flag with `chattr -%s %s` or point the target elsewhere: %w", path, attr, letter, letter, dest, err)
}

func mountPointError(path string, err error) error {
	return fmt.Errorf("cannot write %s: the file is a mount point of its own (a bind mount, such as a Docker volume or a"+
		" Kubernetes secret), and rotor replaces files by renaming a new one over them; mount its directory instead, or"+
		" point the target at a file in a writable directory: %w", path, err)
}

func dirError(path, dir string, err error) error {
	switch {
	case errors.Is(err, fs.ErrPermission):
		if attr, letter := lockedAttr(dir); attr != "" {
			return fmt.Errorf("cannot write %s: directory %s is %s (chattr +%s), so no file can be created or renamed in it,"+
				" not even by root; remove the flag with `chattr -%s %s` or point the target elsewhere: %w", path, dir, attr, letter, letter, dir, err)
		}
		return fmt.Errorf("cannot write %s: directory %s is not writable (permission denied); fix its permissions or point the target elsewhere"+
			" (rotor replaces the file by renaming a new one over it, which needs write access to the directory, not only to the file): %w", path, dir, err)
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("cannot write %s: directory %s does not exist; create it or point the target elsewhere: %w", path, dir, err)
	case errors.Is(err, syscall.EROFS):
		return fmt.Errorf("cannot write %s: directory %s is on a read-only filesystem; point the target elsewhere: %w", path, dir, err)
	case errors.Is(err, syscall.ENOTDIR):
		return fmt.Errorf("cannot write %s: %s is not a directory; point the target elsewhere: %w", path, dir, err)
	}
	return fmt.Errorf("cannot write %s in directory %s; check the directory: %w", path, dir, err)
}

func readError(path, dest string, err error) error {
	name := path
	if dest != path {
		name = fmt.Sprintf("%s (via symbolic link to %s)", path, dest)
	}
	if errors.Is(err, fs.ErrPermission) {
		return fmt.Errorf("cannot read %s to compare it with the new content: permission denied; fix its permissions: %w", name, err)
	}
	return fmt.Errorf("cannot read %s to compare it with the new content; check the path: %w", name, err)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// staleAfter is how old a leftover temp file of unknown origin must be
// before it is removed: older than any write in flight.
const staleAfter = time.Hour

// sweepStale removes temp files a killed writer left next to base. They
// hold a full copy of the file (a password, for a .env), so they must not
// outlive the crash. A temp file names its writer's pid: it is removed at
// once when that process is gone, and otherwise only when it is old (a
// writer on another host sharing the directory). Errors are ignored: this
// is tidying, not the write.
//
// The directory is read once per sweepEvery per process, not at every
// write: a batch writing a thousand files into one directory read its
// thousand names a thousand times (a third of a millisecond a write). So a
// process that keeps running finds a temp file left by another process's
// crash within sweepEvery, and any new process at its first write.
func sweepStale(dir, base string) {
	prefix := "." + base + ".rotor-"
	for _, name := range tempFiles.in(dir) {
		if !strings.HasPrefix(name, prefix) {
			continue
		}
		m := filepath.Join(dir, name)
		fi, err := os.Lstat(m)
		if err != nil || !fi.Mode().IsRegular() {
			tempFiles.forget(dir, name)
			continue
		}
		if writerGone(strings.TrimPrefix(name, prefix)) || time.Since(fi.ModTime()) > staleAfter {
			if os.Remove(m) == nil {
				tempFiles.forget(dir, name)
			}
		}
	}
}

// sweepEvery is how long a directory's listing of temp files is reused.
const sweepEvery = 30 * time.Second

// tempFiles caches, per directory, the names of the temp files (of any
// destination) found when it was last read.
var tempFiles = &tempListing{dirs: map[string]*tempDir{}}

type tempListing struct {
	mu   sync.Mutex
	dirs map[string]*tempDir
}

type tempDir struct {
	read  time.Time
	names []string
}

// in returns the temp-file names of dir, reading it again when the last
// listing is older than sweepEvery. A directory that cannot be read has
// none (the write that follows reports the problem).
func (l *tempListing) in(dir string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	d := l.dirs[dir]
	if d == nil || time.Since(d.read) >= sweepEvery {
		d = &tempDir{read: time.Now()}
		if entries, err := os.ReadDir(dir); err == nil {
			for _, e := range entries {
				if n := e.Name(); strings.HasPrefix(n, ".") && strings.Contains(n, ".rotor-") && strings.HasSuffix(n, ".tmp") {
					d.names = append(d.names, n)
				}
			}
		}
		l.dirs[dir] = d
	}
	return slices.Clone(d.names)
}

func (l *tempListing) forget(dir, name string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if d := l.dirs[dir]; d != nil {
		d.names = slices.DeleteFunc(d.names, func(n string) bool { return n == name })
	}
}

// writerGone reports whether rest ("<pid>-<random>.tmp") names a process
// that no longer exists on this host.
func writerGone(rest string) bool {
	pidText, _, ok := strings.Cut(rest, "-")
	if !ok {
		return false
	}
	pid, err := strconv.Atoi(pidText)
	if err != nil || pid <= 0 || pid == os.Getpid() {
		return false
	}
	return processGone(pid)
}
