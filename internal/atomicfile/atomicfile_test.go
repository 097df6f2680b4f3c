package atomicfile_test

import (
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/rotorhq/rotor/internal/atomicfile"
)

func TestWriteFile(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name string
		// setup prepares dir and returns the path to write.
		setup       func(t *testing.T, dir string) string
		data        string
		perm        os.FileMode
		wantChanged bool
		// wantMode is the mode of the file that ends up holding the data.
		wantMode fs.FileMode
	}{
		{
			name:        "new file gets perm",
			setup:       func(t *testing.T, dir string) string { return filepath.Join(dir, ".env") },
			data:        "new content\n",
			perm:        0o600,
			wantChanged: true,
			wantMode:    0o600,
		},
		{
			name:        "new file perm is exact, umask not applied",
			setup:       func(t *testing.T, dir string) string { return filepath.Join(dir, ".env") },
			data:        "new content\n",
			perm:        0o666,
			wantChanged: true,
			wantMode:    0o666,
		},
		{
			name: "same content is not rewritten",
			setup: func(t *testing.T, dir string) string {
				return writeExisting(t, dir, ".env", "new content\n", 0o640)
			},
			data:        "new content\n",
			perm:        0o600,
			wantChanged: false,
			wantMode:    0o640,
		},
		{
			name: "existing file keeps its mode",
			setup: func(t *testing.T, dir string) string {
				return writeExisting(t, dir, ".env", "old\n", 0o644)
			},
			data:        "new content\n",
			perm:        0o600,
			wantChanged: true,
			wantMode:    0o644,
		},
		{
			name: "read-only file is replaced and stays read-only",
			setup: func(t *testing.T, dir string) string {
				return writeExisting(t, dir, ".env", "old\n", 0o400)
			},
			data:        "new content\n",
			perm:        0o600,
			wantChanged: true,
			wantMode:    0o400,
		},
		{
			name: "setgid bit is kept",
			setup: func(t *testing.T, dir string) string {
				p := writeExisting(t, dir, ".env", "old\n", 0o640)
				require.NoError(t, os.Chmod(p, 0o640|fs.ModeSetgid))
				return p
			},
			data:        "new content\n",
			perm:        0o600,
			wantChanged: true,
			wantMode:    0o640 | fs.ModeSetgid,
		},
		{
			name: "empty data over empty file is a no-op",
			setup: func(t *testing.T, dir string) string {
				return writeExisting(t, dir, ".env", "", 0o600)
			},
			data:        "",
			perm:        0o600,
			wantChanged: false,
			wantMode:    0o600,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			path := tt.setup(t, dir)
			data := []byte(tt.data)
			before, statErr := os.Stat(path)

			changed, err := atomicfile.WriteFile(path, data, tt.perm)
			require.NoError(t, err)
			require.Equal(t, tt.wantChanged, changed)

			got, err := os.ReadFile(path)
			require.NoError(t, err)
			require.Equal(t, string(data), string(got))
			after, err := os.Stat(path)
			require.NoError(t, err)
			require.Equal(t, tt.wantMode, after.Mode()&(fs.ModePerm|fs.ModeSetgid|fs.ModeSetuid|fs.ModeSticky))
			if statErr == nil {
				// A skipped write leaves the very same inode; a real one
				// replaces it, which is what makes the write atomic.
				require.Equal(t, !tt.wantChanged, os.SameFile(before, after))
			}
			requireNoTempFiles(t, dir)
		})
	}
}

func TestWriteFileSymlinks(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name string
		// setup returns the path to write (a link) and the file that must
		// receive the data.
		setup func(t *testing.T, dir string) (link, real string)
	}{
		{
			name: "absolute link",
			setup: func(t *testing.T, dir string) (string, string) {
				real := writeExisting(t, dir, "real.env", "old\n", 0o640)
				link := filepath.Join(dir, ".env")
				require.NoError(t, os.Symlink(real, link))
				return link, real
			},
		},
		{
			name: "relative link into another directory",
			setup: func(t *testing.T, dir string) (string, string) {
				require.NoError(t, os.Mkdir(filepath.Join(dir, "shared"), 0o755))
				real := writeExisting(t, filepath.Join(dir, "shared"), "app.env", "old\n", 0o640)
				require.NoError(t, os.Mkdir(filepath.Join(dir, "app"), 0o755))
				link := filepath.Join(dir, "app", ".env")
				require.NoError(t, os.Symlink("../shared/app.env", link))
				return link, real
			},
		},
		{
			name: "chain of links",
			setup: func(t *testing.T, dir string) (string, string) {
				real := writeExisting(t, dir, "real.env", "old\n", 0o640)
				require.NoError(t, os.Symlink("real.env", filepath.Join(dir, "middle.env")))
				link := filepath.Join(dir, ".env")
				require.NoError(t, os.Symlink("middle.env", link))
				return link, real
			},
		},
		{
			name: "dangling link creates its target",
			setup: func(t *testing.T, dir string) (string, string) {
				link := filepath.Join(dir, ".env")
				require.NoError(t, os.Symlink("real.env", link))
				return link, filepath.Join(dir, "real.env")
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			link, real := tt.setup(t, dir)
			wantMode := fs.FileMode(0o600)
			if fi, err := os.Stat(real); err == nil {
				wantMode = fi.Mode().Perm()
			}

			changed, err := atomicfile.WriteFile(link, []byte("new\n"), 0o600)
			require.NoError(t, err)
			require.True(t, changed)

			fi, err := os.Lstat(link)
			require.NoError(t, err)
			require.Equal(t, fs.ModeSymlink, fi.Mode().Type(), "the link must stay a link")
			got, err := os.ReadFile(real)
			require.NoError(t, err)
			require.Equal(t, "new\n", string(got))
			fi, err = os.Stat(real)
			require.NoError(t, err)
			require.Equal(t, wantMode, fi.Mode().Perm())

			changed, err = atomicfile.WriteFile(link, []byte("new\n"), 0o600)
			require.NoError(t, err)
			require.False(t, changed, "the comparison must read through the link too")
			requireNoTempFiles(t, dir)
		})
	}
}

func TestWriteFileSymlinkLoop(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	require.NoError(t, os.Symlink(b, a))
	require.NoError(t, os.Symlink(a, b))

	_, err := atomicfile.WriteFile(a, []byte("x"), 0o600)
	require.ErrorIs(t, err, syscall.ELOOP)
	require.ErrorContains(t, err, "too many levels of symbolic links")
}

func TestWriteFileErrors(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name    string
		setup   func(t *testing.T, dir string) string
		wantIs  error
		wantMsg string
	}{
		{
			name:    "missing directory",
			setup:   func(t *testing.T, dir string) string { return filepath.Join(dir, "nope", ".env") },
			wantIs:  fs.ErrNotExist,
			wantMsg: "does not exist; create it or point the target elsewhere",
		},
		{
			name: "destination is a directory",
			setup: func(t *testing.T, dir string) string {
				p := filepath.Join(dir, ".env")
				require.NoError(t, os.Mkdir(p, 0o755))
				return p
			},
			wantIs:  atomicfile.ErrNotRegular,
			wantMsg: "is not a regular file",
		},
		{
			name: "parent is a file",
			setup: func(t *testing.T, dir string) string {
				return filepath.Join(writeExisting(t, dir, "file", "x", 0o600), ".env")
			},
			wantIs:  syscall.ENOTDIR,
			wantMsg: "is not a directory",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			path := tt.setup(t, dir)

			changed, err := atomicfile.WriteFile(path, []byte("new\n"), 0o600)
			require.ErrorIs(t, err, tt.wantIs)
			require.ErrorContains(t, err, tt.wantMsg)
			require.ErrorContains(t, err, path)
			require.False(t, changed)
			requireNoTempFiles(t, dir)
		})
	}
}

func TestCheckWritable(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name    string
		setup   func(t *testing.T, dir string) string
		wantIs  error
		wantMsg string
	}{
		{
			name:  "existing file",
			setup: func(t *testing.T, dir string) string { return writeExisting(t, dir, ".env", "A=1\n", 0o600) },
		},
		{
			name:  "missing file in existing directory",
			setup: func(t *testing.T, dir string) string { return filepath.Join(dir, ".env") },
		},
		{
			name: "dangling link",
			setup: func(t *testing.T, dir string) string {
				p := filepath.Join(dir, ".env")
				require.NoError(t, os.Symlink("real.env", p))
				return p
			},
		},
		{
			name:    "missing directory",
			setup:   func(t *testing.T, dir string) string { return filepath.Join(dir, "nope", ".env") },
			wantIs:  fs.ErrNotExist,
			wantMsg: "does not exist; create it or point the target elsewhere",
		},
		{
			name: "parent is a file",
			setup: func(t *testing.T, dir string) string {
				return filepath.Join(writeExisting(t, dir, "file", "x", 0o600), ".env")
			},
			wantIs:  syscall.ENOTDIR,
			wantMsg: "is not a directory",
		},
		{
			name: "destination is a directory",
			setup: func(t *testing.T, dir string) string {
				p := filepath.Join(dir, ".env")
				require.NoError(t, os.Mkdir(p, 0o755))
				return p
			},
			wantIs:  atomicfile.ErrNotRegular,
			wantMsg: "is not a regular file",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			path := tt.setup(t, dir)

			err := atomicfile.CheckWritable(path)
			if tt.wantIs == nil {
				require.NoError(t, err)
			} else {
				require.ErrorIs(t, err, tt.wantIs)
				require.ErrorContains(t, err, tt.wantMsg)
			}
			entries, err := os.ReadDir(dir)
			require.NoError(t, err)
			for _, e := range entries {
				require.NotContains(t, e.Name(), ".rotor-", "CheckWritable must not write")
			}
		})
	}
}

func writeExisting(t *testing.T, dir, name, content string, mode fs.FileMode) string {
	t.Helper()
	p := filepath.Join(dir, name)
	require.NoError(t, os.WriteFile(p, []byte(content), 0o600))
	require.NoError(t, os.Chmod(p, mode))
	return p
}

func requireNoTempFiles(t *testing.T, dir string) {
	t.Helper()
	matches, err := filepath.Glob(filepath.Join(dir, "*.rotor-*.tmp"))
	require.NoError(t, err)
	hidden, err := filepath.Glob(filepath.Join(dir, ".*.rotor-*.tmp"))
	require.NoError(t, err)
	require.Empty(t, append(matches, hidden...), "temporary files left behind")
}

func TestWriteFileSweepsStaleTempFiles(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, ".env")
	// pid 2^22+1 is above Linux's pid_max default and never alive.
	dead := filepath.Join(dir, "..env.rotor-4194305-123.tmp")
	live := filepath.Join(dir, "..env.rotor-1-456.tmp")
	old := filepath.Join(dir, "..env.rotor-x.tmp")
	other := filepath.Join(dir, ".other.rotor-4194305-789.tmp")
	for _, p := range []string{dead, live, old, other} {
		require.NoError(t, os.WriteFile(p, []byte("left by a killed writer"), 0o600))
	}
	long := time.Now().Add(-2 * time.Hour)
	require.NoError(t, os.Chtimes(old, long, long))

	_, err := atomicfile.WriteFile(path, []byte("A=1\n"), 0o600)
	require.NoError(t, err)
	require.NoFileExists(t, dead, "a killed writer's copy must not outlive the crash")
	require.NoFileExists(t, old, "an old temp file of unknown origin is removed")
	require.FileExists(t, live, "a live process's write may still be in flight")
	require.FileExists(t, other, "only this file's temp files are touched")
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.Len(t, entries, 3, "no temp file of our own is left either")
}
