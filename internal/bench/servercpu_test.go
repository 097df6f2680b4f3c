package bench

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/rotorhq/rotor/internal/pgtest"
)

// serverCPU is the CPU the shared PostgreSQL server has used so far, user
// and system, from /proc: the postmaster's own, that of the backends it
// has reaped (a connection's backend exits when it closes) and that of
// its children still running (the checkpointer, the WAL writer, open
// connections). The difference across a run is what the run cost the
// server; the floor and rotor are compared on it as on their own CPU.
func serverCPU(b *testing.B) time.Duration {
	b.Helper()
	raw, err := os.ReadFile(filepath.Join(pgtest.Shared(b).DataDir, "postmaster.pid"))
	require.NoError(b, err)
	pid, _, _ := strings.Cut(string(raw), "\n")
	ticks := procTicks(b, pid, true)
	entries, err := os.ReadDir("/proc")
	require.NoError(b, err)
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue // exited since the listing
		}
		if f := statFields(stat); len(f) > 1 && f[1] == pid {
			ticks += procTicks(b, e.Name(), false)
		}
	}
	// USER_HZ is 100 on every Linux this runs on.
	return time.Duration(ticks) * 10 * time.Millisecond
}

// procTicks is pid's utime+stime, with its reaped children's when asked.
// A process that has exited since it was listed counts as zero.
func procTicks(b *testing.B, pid string, children bool) int64 {
	stat, err := os.ReadFile(filepath.Join("/proc", pid, "stat"))
	if err != nil {
		return 0
	}
	f := statFields(stat)
	// After the command: state, ppid, …; utime, stime, cutime, cstime are
	// fields 14–17 of proc(5), 11–14 here.
	last := 12
	if children {
		last = 14
	}
	require.Greater(b, len(f), last, "/proc/%s/stat: %q", pid, stat)
	var n int64
	for _, s := range f[11 : last+1] {
		v, err := strconv.ParseInt(s, 10, 64)
		require.NoError(b, err)
		n += v
	}
	return n
}

// statFields are the fields of /proc/PID/stat after the command name,
// which may hold spaces and parentheses.
func statFields(stat []byte) []string {
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return nil
	}
	return strings.Fields(string(stat[i+1:]))
}

// selfCPU is this process's CPU so far, user and system: the floor runs
// here, so the difference across it is the floor's own (and the little
// the test binary does beside it).
func selfCPU(b *testing.B) time.Duration {
	b.Helper()
	var ru syscall.Rusage
	require.NoError(b, syscall.Getrusage(syscall.RUSAGE_SELF, &ru))
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
