// Package hugeheap asks Linux to back the first megabytes of the Go heap
// with transparent huge pages, for the commands that run for a fraction
// of a second and read a whole config: plan, validate, status and
// history. cmd/rotor imports it; its init does the work.
//
// A short command spends most of its time taking page faults: each
// first touch of a 4 KiB page of fresh heap is one, and on a virtual
// machine whose faults are slow (about 20 µs each on the Firecracker VMs
// rotor is benchmarked on) `rotor plan` over 1,000 credentials took 2,600
// of them in its heap, half its time (docs/benchmarks.md, the
// twenty-first round). Where the kernel's transparent huge pages are set
// to "madvise", the mode most distributions ship, memory is backed by
// 2 MiB pages only when the program asks. The Go runtime does not ask
// (since Go 1.21.1) and maps its heap a few megabytes at a time, so
// there is no one mapping to advise for the process's life: at start
// this package has the runtime map Size bytes of heap at once, advises
// them, and gives them back to the heap, whose next allocations land in
// them.
//
// It does nothing unless the kernel's mode is "madvise" ("always" already
// backs the heap so, "never" refuses), and nothing under
// GODEBUG=disablethp=1, the Go runtime's own switch against huge pages
// for the heap. The cost is one garbage collection of a heap that holds
// little but the runtime's and the packages' start-up allocations, and a
// resident set rounded up to 2 MiB within the advised range.
package hugeheap
