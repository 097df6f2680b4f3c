//go:build linux

package atomicfile_test

import (
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/rotorhq/rotor/internal/atomicfile"
)

// chattr sets an inode attribute on path and removes it when the test
// ends (t.TempDir cannot delete an immutable file). Setting one needs
// CAP_LINUX_IMMUTABLE and a filesystem that has them (ext4, xfs, btrfs;
// not tmpfs or overlayfs): without either the test cannot make the
// kernel refuse this way, and skips, saying which.
func chattr(t *testing.T, attr, path string) {
	t.Helper()
	bin, err := exec.LookPath("chattr")
	if err != nil {
		t.Skip("chattr is not installed, so no file can be made immutable or append-only here")
	}
	if out, err := exec.Command(bin, "+"+attr, path).CombinedOutput(); err != nil {
		t.Skipf("chattr +%s is not possible here (needs CAP_LINUX_IMMUTABLE and a filesystem with inode flags): %v: %s", attr, err, out)
	}
	t.Cleanup(func() {
		out, err := exec.Command(bin, "-"+attr, path).CombinedOutput()
		require.NoError(t, err, "chattr -%s %s: %s", attr, path, out)
	})
}

// TestWriteFileRefusedByTheFile: an immutable or append-only file refuses
// the rename even for root, in a writable directory; the error names the
// file and the flag, not the directory.
func TestWriteFileRefusedByTheFile(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct{ attr, name string }{{"i", "immutable"}, {"a", "append-only"}} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			path := writeExisting(t, dir, ".env", "old\n", 0o600)
			chattr(t, tt.attr, path)

			want := "cannot write " + path + ": the file is " + tt.name + " (chattr +" + tt.attr + "), so it cannot be replaced, not even by root;" +
				" remove the flag with `chattr -" + tt.attr + " " + path + "`"
			changed, err := atomicfile.WriteFile(path, []byte("new\n"), 0o600)
			require.ErrorIs(t, err, fs.ErrPermission)
			require.ErrorContains(t, err, want)
			require.NotContains(t, err.Error(), "directory")
			require.False(t, changed)

			err = atomicfile.CheckWritable(path)
			require.ErrorIs(t, err, fs.ErrPermission)
			require.ErrorContains(t, err, want)

			got, err := os.ReadFile(path)
			require.NoError(t, err)
			require.Equal(t, "old\n", string(got))
			requireNoTempFiles(t, dir)
		})
	}
}

// TestWriteFileRefusedByTheDirectory: an immutable directory takes no new
// file, even from root; the error names the directory and the flag.
func TestWriteFileRefusedByTheDirectory(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "app")
	require.NoError(t, os.Mkdir(dir, 0o700))
	path := writeExisting(t, dir, ".env", "old\n", 0o600)
	chattr(t, "i", dir)

	want := "cannot write " + path + ": directory " + dir + " is immutable (chattr +i), so no file can be created or renamed in it," +
		" not even by root; remove the flag with `chattr -i " + dir + "`"
	changed, err := atomicfile.WriteFile(path, []byte("new\n"), 0o600)
	require.ErrorIs(t, err, fs.ErrPermission)
	require.ErrorContains(t, err, want)
	require.False(t, changed)

	err = atomicfile.CheckWritable(path)
	require.ErrorIs(t, err, fs.ErrPermission)
	require.ErrorContains(t, err, want)
}
