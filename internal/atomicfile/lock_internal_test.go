package atomicfile

import (
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestLockSharesOneMutexPerFile: a file and a symbolic link to it are one
// file, so they must be locked by one mutex, or two targets naming it
// differently could interleave their edits.
func TestLockSharesOneMutexPerFile(t *testing.T) {
	dir := t.TempDir()
	real := filepath.Join(dir, ".env")
	require.NoError(t, os.WriteFile(real, nil, 0o600))
	link := filepath.Join(dir, "link.env")
	require.NoError(t, os.Symlink(real, link))
	realPath, err := filepath.EvalSymlinks(real)
	require.NoError(t, err)

	unlock := Lock(link)
	m, ok := pathLocks.Load(realPath)
	require.True(t, ok, "the lock is kept under the real path")
	require.False(t, m.(*sync.Mutex).TryLock(), "locking through the link holds the real file's mutex")
	_, ok = pathLocks.Load(link)
	require.False(t, ok, "no second mutex under the link's name")
	unlock()
	require.True(t, m.(*sync.Mutex).TryLock(), "unlock releases it")
	m.(*sync.Mutex).Unlock()
}
