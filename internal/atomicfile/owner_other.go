//go:build !unix

package atomicfile

import "io/fs"

// ownerToKeep: ownership is not a uid/gid pair outside unix; the new file
// inherits the directory's ACL as any file created there would.
func ownerToKeep(string, fs.FileInfo, int) (uid, gid int, err error) { return -1, -1, nil }

// accessWrite: without access(2), WriteFile's own error is the check.
func accessWrite(string) error { return nil }

// processGone cannot tell on this platform; old files are still swept.
func processGone(int) bool { return false }
