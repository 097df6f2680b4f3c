//go:build linux

package atomicfile

import (
	"io/fs"
	"os"
	"syscall"
	"unsafe"
)

// The inode flags of chattr(1) that make the kernel refuse to replace or
// rename a file whatever its mode, even for root.
const (
	fsImmutableFL = 0x10
	fsAppendFL    = 0x20
)

// lockedAttr names the chattr attribute that keeps path from being
// replaced or renamed ("immutable", "append-only") and its letter for
// chattr ("i", "a"), or returns "" when there is none or the flags cannot be read (a
// filesystem without them, a file rotor may not open).
func lockedAttr(path string) (attr, letter string) {
	f, err := os.Open(path)
	if err != nil {
		return "", ""
	}
	defer f.Close()
	// FS_IOC_GETFLAGS is _IOR('f', 1, long); the kernel writes an int.
	ioc := uintptr(0x80006601) | unsafe.Sizeof(uintptr(0))<<16
	var flags uint32
	if _, _, errno := syscall.Syscall(syscall.SYS_IOCTL, f.Fd(), ioc, uintptr(unsafe.Pointer(&flags))); errno != 0 {
		return "", ""
	}
	switch {
	case flags&fsImmutableFL != 0:
		return "immutable", "i"
	case flags&fsAppendFL != 0:
		return "append-only", "a"
	}
	return "", ""
}

// onOtherDevice reports whether file and its directory dir live on
// different filesystems, which makes file a mount point of its own.
func onOtherDevice(file, dir fs.FileInfo) bool {
	a, ok1 := file.Sys().(*syscall.Stat_t)
	b, ok2 := dir.Sys().(*syscall.Stat_t)
	return ok1 && ok2 && a.Dev != b.Dev
}
