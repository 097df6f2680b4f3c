//go:build unix

package atomicfile_test

import (
	"bytes"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/rotorhq/rotor/internal/atomicfile"
)

// TestWriteFileUnwritableDirectory needs the kernel to refuse a write,
// which it never does to root; as root it reruns itself as nobody.
func TestWriteFileUnwritableDirectory(t *testing.T) {
	t.Parallel()
	runUnprivileged(t, func(t *testing.T) {
		dir := t.TempDir()
		existing := writeExisting(t, dir, "existing.env", "old\n", 0o600)
		missing := filepath.Join(dir, "new.env")
		require.NoError(t, os.Chmod(dir, 0o500))
		t.Cleanup(func() { _ = os.Chmod(dir, 0o700) })

		for _, path := range []string{existing, missing} {
			changed, err := atomicfile.WriteFile(path, []byte("new\n"), 0o600)
			require.ErrorIs(t, err, fs.ErrPermission)
			require.ErrorContains(t, err, "cannot write "+path+": directory "+dir+" is not writable (permission denied); fix its permissions or point the target elsewhere")
			require.False(t, changed)

			err = atomicfile.CheckWritable(path)
			require.ErrorIs(t, err, fs.ErrPermission)
			require.ErrorContains(t, err, "directory "+dir+" is not writable")
		}
		got, err := os.ReadFile(existing)
		require.NoError(t, err)
		require.Equal(t, "old\n", string(got))
		requireNoTempFiles(t, dir)
	})
}

func TestWriteFileUnreadableFile(t *testing.T) {
	t.Parallel()
	runUnprivileged(t, func(t *testing.T) {
		dir := t.TempDir()
		path := writeExisting(t, dir, ".env", "old\n", 0o200)

		_, err := atomicfile.WriteFile(path, []byte("new\n"), 0o600)
		require.ErrorIs(t, err, fs.ErrPermission)
		require.ErrorContains(t, err, "cannot read "+path+" to compare it with the new content: permission denied")
	})
}

// unprivilegedEnv carries the name of the test a child process must run
// as itself rather than re-executing again.
const unprivilegedEnv = "ROTOR_ATOMICFILE_UNPRIVILEGED_TEST"

// forking serialises writing a copy of the test binary with starting one.
var forking sync.Mutex

// runUnprivileged runs body as a user the kernel's permission checks apply
// to. Not root: body runs in this process. Root (containers, most CI):
// the test binary reruns just this test as nobody, because root bypasses
// file permissions and the behaviour under test would never happen.
func runUnprivileged(t *testing.T, body func(t *testing.T)) {
	t.Helper()
	if os.Getenv(unprivilegedEnv) == t.Name() || os.Geteuid() != 0 {
		require.NotZero(t, os.Geteuid(), "the body must not run as root")
		body(t)
		return
	}

	uid, gid := nobody(t)
	// nobody must be able to reach and run a copy of the test binary and
	// to create its own temporary directories.
	root := t.TempDir()
	for d := root; d != filepath.Dir(os.TempDir()) && d != "/"; d = filepath.Dir(d) {
		if strings.HasPrefix(d, os.TempDir()+string(filepath.Separator)) {
			require.NoError(t, os.Chmod(d, 0o755))
		}
	}
	self, err := os.Executable()
	require.NoError(t, err)
	exe := filepath.Join(root, filepath.Base(self))
	tmp := filepath.Join(root, "tmp")
	require.NoError(t, os.Mkdir(tmp, 0o700))
	require.NoError(t, os.Chown(tmp, uid, gid))

	cmd := exec.CommandContext(t.Context(), exe, "-test.run=^"+t.Name()+"$", "-test.v", "-test.count=1")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), unprivilegedEnv+"="+t.Name(), "TMPDIR="+tmp, "GOCOVERDIR=")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	// A copy open for writing while a parallel test forks is inherited by
	// that child until it execs, and exec of the copy then fails with "text
	// file busy": copies and starts take turns.
	forking.Lock()
	copyFile(t, self, exe, 0o755)
	err = cmd.Start()
	forking.Unlock()
	require.NoError(t, err)
	err = cmd.Wait()
	require.NoError(t, err, "%s as uid %d:\n%s", t.Name(), uid, out.String())
	require.Contains(t, out.String(), "--- PASS: "+t.Name(), "the unprivileged run did not run the test:\n%s", out.String())
}

func nobody(t *testing.T) (uid, gid int) {
	t.Helper()
	uid, gid = 65534, 65534
	if u, err := user.Lookup("nobody"); err == nil {
		if n, err := strconv.Atoi(u.Uid); err == nil {
			uid = n
		}
		if n, err := strconv.Atoi(u.Gid); err == nil {
			gid = n
		}
	}
	return uid, gid
}

func copyFile(t *testing.T, from, to string, mode fs.FileMode) {
	t.Helper()
	src, err := os.Open(from)
	require.NoError(t, err)
	defer src.Close()
	dst, err := os.OpenFile(to, os.O_CREATE|os.O_EXCL|os.O_WRONLY, mode)
	require.NoError(t, err)
	_, err = io.Copy(dst, src)
	require.NoError(t, err)
	require.NoError(t, dst.Close())
}

// TestWriteFileReadOnlyFile: a file's own mode does not stop its
// replacement, its directory's does. In a writable directory a read-only
// file is replaced and stays read-only; in a read-only directory the
// error names the directory and says why the directory matters.
func TestWriteFileReadOnlyFile(t *testing.T) {
	t.Parallel()
	runUnprivileged(t, func(t *testing.T) {
		dir := t.TempDir()
		path := writeExisting(t, dir, ".env", "old\n", 0o400)
		changed, err := atomicfile.WriteFile(path, []byte("new\n"), 0o600)
		require.NoError(t, err)
		require.True(t, changed)
		fi, err := os.Stat(path)
		require.NoError(t, err)
		require.Equal(t, fs.FileMode(0o400), fi.Mode().Perm())

		require.NoError(t, os.Chmod(dir, 0o500))
		t.Cleanup(func() { _ = os.Chmod(dir, 0o700) })
		_, err = atomicfile.WriteFile(path, []byte("newer\n"), 0o600)
		require.ErrorIs(t, err, fs.ErrPermission)
		require.ErrorContains(t, err, "cannot write "+path+": directory "+dir+" is not writable (permission denied)")
		require.ErrorContains(t, err, "rotor replaces the file by renaming a new one over it, which needs write access to the directory, not only to the file")
		got, err := os.ReadFile(path)
		require.NoError(t, err)
		require.Equal(t, "new\n", string(got))
	})
}
