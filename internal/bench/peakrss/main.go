// Command peakrss runs a command and writes its peak resident set size to
// a file, so that the benchmarks measure the child and only the child.
//
//	peakrss OUT COMMAND [ARG...]
//
// OUT gets one line: the child's peak RSS in KiB, the launcher's own
// high-water RSS in KiB (the floor, below), the child's user and system
// CPU in microseconds and its wall time in microseconds.
//
// Why not read the rusage of a child that the benchmark starts itself: Go
// starts children with clone(CLONE_VM|CLONE_VFORK), so until exec the
// child shares the parent's address space, and Linux's exec records that
// address space's high-water RSS into the child's (fs/exec.c, exec_mmap:
// setmax_mm_hiwater_rss). A child of a 50 MiB test process therefore
// reports at least 50 MiB whatever it uses. This launcher is a few MiB, so
// the child inherits only that floor; OUT also gets the launcher's own
// high-water mark to show the floor. OUT also holds the child's CPU and
// wall time, so that the launcher's own start is in neither.
//
// stdin, stdout, stderr and the environment pass through; the exit status
// is the child's.
package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) < 3 {
		fmt.Fprintln(os.Stderr, "usage: peakrss OUT COMMAND [ARG...]")
		os.Exit(2)
	}
	out := os.Args[1]
	floor, err := ownHighWater()
	if err != nil {
		fmt.Fprintln(os.Stderr, "peakrss:", err)
		os.Exit(2)
	}
	cmd := exec.Command(os.Args[2], os.Args[3:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	start := time.Now()
	runErr := cmd.Run()
	wall := time.Since(start)
	var exit *exec.ExitError
	if runErr != nil && !errors.As(runErr, &exit) {
		fmt.Fprintln(os.Stderr, "peakrss:", runErr)
		os.Exit(2)
	}
	ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	if err := os.WriteFile(out, fmt.Appendf(nil, "%d %d %d %d %d\n", ru.Maxrss, floor,
		cmd.ProcessState.UserTime().Microseconds(), cmd.ProcessState.SystemTime().Microseconds(), wall.Microseconds()), 0o600); err != nil {
		fmt.Fprintln(os.Stderr, "peakrss:", err)
		os.Exit(2)
	}
	os.Exit(cmd.ProcessState.ExitCode())
}

// ownHighWater is this process's VmHWM in KiB: the least the child can
// report.
func ownHighWater() (int64, error) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(string(b)) {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			var kib int64
			if _, err := fmt.Sscanf(strings.TrimSpace(rest), "%d kB", &kib); err != nil {
				return 0, fmt.Errorf("VmHWM %q: %w", rest, err)
			}
			return kib, nil
		}
	}
	return 0, errors.New("no VmHWM in /proc/self/status")
}
