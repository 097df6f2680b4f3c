package hugeheap

import (
	"bufio"
	"os"
	"strconv"
	"strings"
	"testing"
	"unsafe"

	"github.com/stretchr/testify/require"
)

func TestWanted(t *testing.T) {
	const madvise, always, never = "always [madvise] never", "[always] madvise never", "always madvise [never]"
	require.True(t, wanted("", madvise))
	require.True(t, wanted("gctrace=1", madvise))
	require.False(t, wanted("", always), "always: the kernel backs the heap so already")
	require.False(t, wanted("", never))
	require.False(t, wanted("", ""), "no transparent huge pages in this kernel")
	require.False(t, wanted("disablethp=1", madvise))
	require.False(t, wanted("gctrace=1, disablethp=1", madvise))
	require.True(t, wanted("disablethp=1,disablethp=0", madvise), "the last setting counts, as in the runtime")
}

func TestShort(t *testing.T) {
	for _, args := range [][]string{{"plan"}, {"plan", "--offline", "--json"}, {"--json", "status"}, {"validate", "db"}, {"history"}} {
		require.True(t, short(args), "%q", args)
	}
	for _, args := range [][]string{nil, {"--version"}, {"version"}, {"help", "plan"}, {"rotate", "--all"}, {"serve"}, {"--", "plan"}, {"-c", "rotor.yaml", "plan"}} {
		require.False(t, short(args), "%q", args)
	}
}

// TestInitAdvisesTheHeap reads this test binary's own mappings, once
// advise has run as init runs it for a short command. Where the kernel's
// mode is madvise, a heap mapping of
// at least Size less the two partial huge pages carries the advice
// ("hg" in VmFlags) and what is allocated now lands in it; in any other
// mode no mapping carries it.
func TestInitAdvisesTheHeap(t *testing.T) {
	require.Empty(t, advisedRanges(t), "the test binary's arguments name no short command")
	if wanted(os.Getenv("GODEBUG"), readMode()) {
		advise()
	}
	advised := advisedRanges(t)
	if !wanted(os.Getenv("GODEBUG"), readMode()) {
		require.Empty(t, advised, "mode %q: nothing is advised", readMode())
		return
	}
	var total uintptr
	for _, r := range advised {
		total += r[1] - r[0]
	}
	require.GreaterOrEqual(t, total, uintptr(Size-2*hugePage), "advised: %x", advised)
	// 8 MiB, more than the free pages below the advised range hold: the
	// heap grows into it, not into a new mapping.
	inside := 0
	const n = 8 << 20 / 512
	keep := make([]*[512]byte, n)
	for i := range keep {
		keep[i] = new([512]byte)
		p := uintptr(unsafe.Pointer(keep[i]))
		for _, r := range advised {
			if r[0] <= p && p < r[1] {
				inside++
				break
			}
		}
	}
	require.Greater(t, inside, n/2, "fresh allocations land in the advised range")
}

// advisedRanges returns the [start, end) of each mapping of this process
// whose VmFlags include hg (MADV_HUGEPAGE).
func advisedRanges(t *testing.T) [][2]uintptr {
	t.Helper()
	f, err := os.Open("/proc/self/smaps")
	require.NoError(t, err)
	defer f.Close()
	var out [][2]uintptr
	var cur [2]uintptr
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if fields := strings.Fields(line); len(fields) > 0 && strings.Contains(fields[0], "-") && !strings.HasSuffix(fields[0], ":") {
			lo, hi, _ := strings.Cut(fields[0], "-")
			a, err1 := strconv.ParseUint(lo, 16, 64)
			b, err2 := strconv.ParseUint(hi, 16, 64)
			if err1 == nil && err2 == nil {
				cur = [2]uintptr{uintptr(a), uintptr(b)}
			}
			continue
		}
		if flags, ok := strings.CutPrefix(line, "VmFlags:"); ok && strings.Contains(" "+flags+" ", " hg ") {
			out = append(out, cur)
		}
	}
	require.NoError(t, sc.Err())
	return out
}
