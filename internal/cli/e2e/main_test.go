//go:build unix

package e2e_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/rotorhq/rotor/internal/pgtest"

	// Not used directly: importing the CLI makes `go test`'s cache key
	// cover the code the rotor binary is built from, so a change there
	// reruns these tests instead of replaying a cached pass.
	_ "github.com/rotorhq/rotor/internal/cli"
)

// rotorBin is the binary under test, built once by TestMain with the
// rotortest tag.
var rotorBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "rotor-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		os.Exit(1)
	}
	rotorBin = filepath.Join(dir, "rotor")
	if err := buildRotor(rotorBin); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := pgtest.Main(m)
	os.RemoveAll(dir)
	os.Exit(code)
}

func buildRotor(out string) error {
	goBin, err := exec.LookPath("go")
	if err != nil {
		return fmt.Errorf("the e2e tests build the rotor binary and need the go command on PATH: %w", err)
	}
	mod, err := exec.Command(goBin, "env", "GOMOD").Output()
	if err != nil {
		return fmt.Errorf("go env GOMOD: %w", err)
	}
	root := filepath.Dir(strings.TrimSpace(string(mod)))
	cmd := exec.Command(goBin, "build", "-tags", "rotortest", "-o", out, "./cmd/rotor")
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build -tags rotortest ./cmd/rotor: %v\n%s", err, b)
	}
	return nil
}

// proc is one running rotor process.
type proc struct {
	args []string
	cmd  *exec.Cmd
	out  bytes.Buffer
	err  bytes.Buffer
	done chan struct{}
	res  result
}

// result is how a rotor process ended and what it printed.
type result struct {
	args   []string
	code   int  // exit status; -1 when a signal ended it
	killed bool // ended by SIGKILL
	stdout string
	stderr string
}

// output is everything the process printed, for failure messages (after
// scrubbing) and leak scans.
func (r result) output() string { return r.stdout + r.stderr }

func startRotor(dir string, env []string, args ...string) (*proc, error) {
	p := &proc{args: args, done: make(chan struct{})}
	p.cmd = exec.Command(rotorBin, args...)
	p.cmd.Dir = dir
	p.cmd.Env = env
	p.cmd.Stdout, p.cmd.Stderr = &p.out, &p.err
	if err := p.cmd.Start(); err != nil {
		return nil, err
	}
	go func() {
		defer close(p.done)
		err := p.cmd.Wait()
		p.res = result{args: args, code: p.cmd.ProcessState.ExitCode(), stdout: p.out.String(), stderr: p.err.String()}
		if ws, ok := p.cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL {
			p.res.killed = true
		}
		var exit *exec.ExitError
		if err != nil && !errors.As(err, &exit) {
			p.res.code, p.res.stderr = -1, p.res.stderr+"\n(e2e: wait: "+err.Error()+")"
		}
	}()
	return p, nil
}

func (p *proc) wait() result {
	<-p.done
	return p.res
}

// exited reports whether the process has ended, without waiting.
func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// kill sends SIGKILL. Whether it landed before the process ended on its
// own shows in result.killed.
func (p *proc) kill() { _ = p.cmd.Process.Kill() }
