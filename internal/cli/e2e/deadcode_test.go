//go:build unix

package e2e_test

import (
	"bufio"
	"bytes"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestLinkerDropsUnusedMethods builds the release binary with the
// linker's dependency dump and fails if anything reachable calls
// reflect.Value.MethodByName (or Method with a value not known when
// linking): the linker then keeps every exported method of every type
// that may sit in an interface, which cost the binary 4.6 MB and each
// start 2.5 MiB of resident memory (docs/benchmarks.md, tenth round).
// text/template's executor is the usual way in: cobra's SetVersionTemplate
// or SetHelpTemplate, html/template, or executing a text/template.
func TestLinkerDropsUnusedMethods(t *testing.T) {
	t.Parallel()
	goBin, err := exec.LookPath("go")
	require.NoError(t, err, "this test builds rotor and needs the go command on PATH")
	mod, err := exec.Command(goBin, "env", "GOMOD").Output()
	require.NoError(t, err)
	cmd := exec.Command(goBin, "build", "-trimpath", "-ldflags=-dumpdep", "-o", filepath.Join(t.TempDir(), "rotor"), "./cmd/rotor")
	cmd.Dir = filepath.Dir(strings.TrimSpace(string(mod)))
	var dump bytes.Buffer
	cmd.Stderr = &dump
	require.NoError(t, cmd.Run(), "go build -ldflags=-dumpdep ./cmd/rotor:\n%.2000s", dump.String())

	// Each line is "caller -> callee"; a function that disables the
	// elimination is marked <ReflectMethod> on its own side.
	marked := map[string]bool{}
	callers := map[string][]string{}
	sc := bufio.NewScanner(&dump)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		from, to, ok := strings.Cut(sc.Text(), " -> ")
		if !ok {
			continue
		}
		if name, ok := strings.CutSuffix(from, " <ReflectMethod>"); ok {
			marked[name] = true
			from = name
		}
		to = strings.TrimSuffix(to, " <ReflectMethod>")
		callers[to] = append(callers[to], from)
	}
	require.NoError(t, sc.Err())
	require.NotEmpty(t, callers, "the linker printed no dependency dump: did -dumpdep change?")
	for name := range marked {
		t.Errorf("%s is reachable and calls reflect's method lookup; reached from: %s", name, strings.Join(reachedFrom(callers, name, 12), " <- "))
	}
}

// reachedFrom is one chain of callers leading to name, nearest first,
// at most n long.
func reachedFrom(callers map[string][]string, name string, n int) []string {
	chain := []string{name}
	seen := map[string]bool{name: true}
	for len(chain) < n {
		next := ""
		for _, c := range callers[chain[len(chain)-1]] {
			if !seen[c] {
				next = c
				break
			}
		}
		if next == "" {
			break
		}
		seen[next] = true
		chain = append(chain, next)
	}
	return chain
}
