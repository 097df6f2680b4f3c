package atomicfile

import (
	"path/filepath"
	"sync"
)

// pathLocks holds a mutex for each file being edited, and only while it
// is: a batch over a thousand files would otherwise keep a thousand
// mutexes (and their map entries) for the rest of the process.
var pathLocks = struct {
	mu   sync.Mutex
	held map[string]*pathLock // real path → its lock
}{held: map[string]*pathLock{}}

type pathLock struct {
	mu sync.Mutex
	// users counts the holder and the waiters (guarded by pathLocks.mu);
	// the last one to leave removes the entry.
	users int
}

// Lock serialises read-edit-write cycles on one file within this process:
// two targets (two credentials) may share a file, and without it one
// cycle could undo the other's edit. Two names for one file (a symbolic
// link) share the lock. Call the returned func to release it.
func Lock(path string) (unlock func()) {
	if real, err := filepath.EvalSymlinks(path); err == nil {
		path = real
	}
	pathLocks.mu.Lock()
	l := pathLocks.held[path]
	if l == nil {
		l = &pathLock{}
		pathLocks.held[path] = l
	}
	l.users++
	pathLocks.mu.Unlock()
	l.mu.Lock()
	return func() {
		l.mu.Unlock()
		pathLocks.mu.Lock()
		if l.users--; l.users == 0 {
			delete(pathLocks.held, path)
		}
		pathLocks.mu.Unlock()
	}
}
