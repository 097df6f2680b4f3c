//go:build !linux

package atomicfile

import "io/fs"

// lockedAttr: the chattr flags are Linux's; elsewhere the kernel's own
// error is reported.
func lockedAttr(string) (attr, letter string) { return "", "" }

// onOtherDevice: device numbers are compared on Linux only.
func onOtherDevice(fs.FileInfo, fs.FileInfo) bool { return false }
