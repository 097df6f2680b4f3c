//go:build unix && !linux

package pgbouncertest

import "syscall"

// dieWithParent has no portable equivalent outside Linux; Stop must be
// called.
func dieWithParent(*syscall.SysProcAttr) {}
