package pgbouncertest

import "syscall"

// dieWithParent makes the kernel kill PgBouncer when the test binary dies
// without calling Stop (a panic, a timeout), so no bouncer outlives it.
func dieWithParent(a *syscall.SysProcAttr) { a.Pdeathsig = syscall.SIGKILL }
