//go:build !unix

package pgcluster

import "syscall"

// chrootAttr: there is no chroot here; a Server with a Root is never found.
func chrootAttr(string) *syscall.SysProcAttr { return nil }
