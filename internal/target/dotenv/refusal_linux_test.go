//go:build linux

package dotenv_test

import (
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/rotorhq/rotor/internal/secret"
	"github.com/rotorhq/rotor/internal/target"
)

// TestImmutableFile: an immutable .env (chattr +i) is refused by the file
// itself, in a writable directory and even for root. Put, Validate and the
// mode option all say so and how to lift it, instead of blaming the
// directory. Setting the flag needs CAP_LINUX_IMMUTABLE and a filesystem
// with inode flags (ext4, xfs, btrfs; not tmpfs or overlayfs); without
// them the kernel cannot be made to refuse this way and the test skips,
// saying which.
func TestImmutableFile(t *testing.T) {
	t.Parallel()
	for _, opts := range []string{"path: .env", `{path: .env, mode: "0600"}`} {
		t.Run(opts, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			path := writeFile(t, dir, ".env", "DATABASE_URL=old\n", 0o644)
			bin, err := exec.LookPath("chattr")
			if err != nil {
				t.Skip("chattr is not installed, so no file can be made immutable here")
			}
			if out, err := exec.Command(bin, "+i", path).CombinedOutput(); err != nil {
				t.Skipf("chattr +i is not possible here (needs CAP_LINUX_IMMUTABLE and a filesystem with inode flags): %v: %s", err, out)
			}
			t.Cleanup(func() {
				out, err := exec.Command(bin, "-i", path).CombinedOutput()
				require.NoError(t, err, "chattr -i: %s", out)
			})
			tg := newTarget(t, dir, opts)
			want := `dotenv target "app-env": cannot write ` + path + ": the file is immutable (chattr +i), so it cannot be replaced, not even by root;" +
				" remove the flag with `chattr -i " + path + "`"

			resp, err := tg.Put(t.Context(), target.PutRequest{
				Values: map[string]secret.String{"DATABASE_URL": secret.New("postgres://u:canary@h/db")},
				Keys:   []string{"DATABASE_URL"},
			})
			require.ErrorIs(t, err, fs.ErrPermission)
			require.ErrorContains(t, err, want)
			require.NotContains(t, err.Error(), "directory")
			require.NotContains(t, err.Error(), "canary")
			require.False(t, resp.Changed)

			_, err = tg.(target.Validator).Validate(t.Context(), target.ValidateRequest{})
			require.ErrorIs(t, err, fs.ErrPermission)
			require.ErrorContains(t, err, want)

			got, err := os.ReadFile(path)
			require.NoError(t, err)
			require.Equal(t, "DATABASE_URL=old\n", string(got))
			fi, err := os.Stat(path)
			require.NoError(t, err)
			require.Equal(t, fs.FileMode(0o644), fi.Mode().Perm())
			entries, err := os.ReadDir(filepath.Dir(path))
			require.NoError(t, err)
			require.Len(t, entries, 1, "no temporary file left behind")
		})
	}
}
