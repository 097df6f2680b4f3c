package atomicfile

import (
	"path/filepath"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"
)

// A bind-mounted file cannot be made in a test without privileges and a
// mount namespace, so the EBUSY that rename(2) returns for one is fed to
// renameError directly.
func TestRenameErrorMountPoint(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, ".env")
	err := renameError(path, path, dir, syscall.EBUSY)
	require.ErrorIs(t, err, syscall.EBUSY)
	require.ErrorContains(t, err, "cannot write "+path+": the file is a mount point of its own (a bind mount, such as a Docker volume or a Kubernetes secret)")
	require.ErrorContains(t, err, "mount its directory instead")
	require.NotContains(t, err.Error(), "directory "+dir)
}
