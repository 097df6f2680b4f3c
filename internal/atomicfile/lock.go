package atomicfile

import (
	"path/filepath"
	"sync"
)

var pathLocks sync.Map // real path → *sync.Mutex

// Lock serialises read-edit-write cycles on one file within this process:
// two targets (two credentials) may share a file, and without it one
// cycle could undo the other's edit. Two names for one file (a symbolic
// link) share the lock. Call the returned func to release it.
func Lock(path string) (unlock func()) {
	if real, err := filepath.EvalSymlinks(path); err == nil {
		path = real
	}
	m, _ := pathLocks.LoadOrStore(path, new(sync.Mutex))
	mu := m.(*sync.Mutex)
	mu.Lock()
	return mu.Unlock
}
