package atomicfile

import (
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// held is the lock entry for path, if any.
func held(path string) *pathLock {
	pathLocks.mu.Lock()
	defer pathLocks.mu.Unlock()
	return pathLocks.held[path]
}

// TestLockSharesOneMutexPerFile: a file and a symbolic link to it are one
// file, so they must be locked by one mutex, or two targets naming it
// differently could interleave their edits. The entry goes once the last
// holder or waiter is done.
func TestLockSharesOneMutexPerFile(t *testing.T) {
	dir := t.TempDir()
	real := filepath.Join(dir, ".env")
	require.NoError(t, os.WriteFile(real, nil, 0o600))
	link := filepath.Join(dir, "link.env")
	require.NoError(t, os.Symlink(real, link))
	realPath, err := filepath.EvalSymlinks(real)
	require.NoError(t, err)

	unlock := Lock(link)
	l := held(realPath)
	require.NotNil(t, l, "the lock is kept under the real path")
	require.False(t, l.mu.TryLock(), "locking through the link holds the real file's mutex")
	require.Nil(t, held(link), "no second mutex under the link's name")
	unlock()
	require.Nil(t, held(realPath), "released by its only user, the entry is gone")
}

// TestLockKeepsTheEntryForItsWaiters: while one holds the file's lock and
// another waits for it, the entry stays; a third that comes after the
// holder left still queues behind the waiter on the same mutex, never on
// a fresh one beside it.
func TestLockKeepsTheEntryForItsWaiters(t *testing.T) {
	path := filepath.Join(t.TempDir(), ".env")
	first := Lock(path)
	l := held(path)
	var order []string
	var mu sync.Mutex
	waited := make(chan struct{})
	go func() {
		unlock := Lock(path)
		mu.Lock()
		order = append(order, "second")
		mu.Unlock()
		unlock()
		close(waited)
	}()
	require.Eventually(t, func() bool {
		pathLocks.mu.Lock()
		defer pathLocks.mu.Unlock()
		return l.users == 2
	}, 5*time.Second, time.Millisecond, "the second caller waits on the held entry")
	mu.Lock()
	order = append(order, "first")
	mu.Unlock()
	first()
	<-waited
	require.Equal(t, []string{"first", "second"}, order, "the waiter got the lock only after the holder let go")
	require.Nil(t, held(path), "the last user removed the entry")
	// A new cycle starts from a new entry and works as before.
	again := Lock(path)
	require.NotNil(t, held(path))
	again()
	require.Nil(t, held(path))
}
