package hugeheap

import (
	"bytes"
	"os"
	"runtime"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Size is how much of the heap is advised: more than `rotor plan` over
// 1,000 credentials touches (10 MiB).
const Size = 16 << 20

// hugePage is the size of a transparent huge page on amd64 and arm64
// with 4 KiB base pages.
const hugePage = 2 << 20

// modeFile holds the kernel's setting, the chosen one in brackets:
// "always [madvise] never".
const modeFile = "/sys/kernel/mm/transparent_hugepage/enabled"

// init runs before most packages' own (their start-up allocations, 1.5 MB
// of heap, land in the advised range too), and after os's, which sets
// os.Args.
func init() {
	if !short(os.Args[1:]) || !wanted(os.Getenv("GODEBUG"), readMode()) {
		return
	}
	advise()
}

// shortCommands read the config, and the state or the database, print
// and exit: a config's worth of fresh heap is most of what they touch.
// The others are left alone: rotate, resume and retire spend seconds to
// minutes on the database and the targets (a 1,000-credential batch's
// peak RSS rose from 36 to 43 MiB with the advice, for no measurable
// speed), serve runs for days, and the version, help and the utilities
// touch too little heap to repay the garbage collection.
var shortCommands = map[string]bool{"plan": true, "validate": true, "status": true, "history": true}

// short reports whether rotor's arguments name one of shortCommands: the
// first argument that is not a flag. (A global flag with its value in the
// next argument, `-c rotor.yaml plan`, hides the command; the advice is
// then not given, which costs only speed.)
func short(args []string) bool {
	for _, a := range args {
		if a == "--" {
			return false
		}
		if !strings.HasPrefix(a, "-") {
			return shortCommands[a]
		}
	}
	return false
}

// readMode returns the contents of modeFile, or "" when it cannot be
// read (no transparent huge pages in this kernel, or no /sys): then
// nothing is advised.
func readMode() string {
	b, err := os.ReadFile(modeFile)
	if err != nil {
		return ""
	}
	return string(bytes.TrimSpace(b))
}

// wanted reports whether to advise, given GODEBUG and the kernel's mode.
// As in the runtime, the last disablethp= in GODEBUG counts.
func wanted(godebug, mode string) bool {
	disabled := false
	for _, kv := range strings.Split(godebug, ",") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(kv), "disablethp="); ok {
			disabled = v == "1"
		}
	}
	return !disabled && strings.Contains(mode, "[madvise]")
}

// advise has the runtime map Size bytes of heap as one allocation,
// marks the whole huge pages inside it MADV_HUGEPAGE, drops it and
// collects it, so that the heap's next allocations reuse that range.
// The runtime maps fresh heap without touching it, so the allocation
// costs address space, not memory.
func advise() {
	b := make([]byte, Size)
	base := uintptr(unsafe.Pointer(unsafe.SliceData(b)))
	start := (base + hugePage - 1) &^ (hugePage - 1)
	end := (base + Size) &^ (hugePage - 1)
	if start < end {
		// Advice, and nothing depends on it being taken: a kernel that
		// refuses it (EINVAL without THP) leaves the heap as it was.
		_ = unix.Madvise(b[start-base:end-base], unix.MADV_HUGEPAGE)
	}
	runtime.KeepAlive(b)
	runtime.GC()
}
