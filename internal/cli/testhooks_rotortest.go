//go:build rotortest

package cli

import (
	"errors"
	"fmt"
	"iter"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rotorhq/rotor/internal/engine"
)

// Environment variables read by binaries built with -tags rotortest. Each
// holds a comma-separated list of specs.
//
//	ROTOR_TEST_CRASH_AT=<step>[:<n>]       SIGKILL this process right before
//	                                       the n-th time (default 1) a rotation
//	                                       in it reaches step
//	ROTOR_TEST_PAUSE_AT=<step>:<duration>  sleep that long before step
//	ROTOR_TEST_PAUSE_AT=<step>:<abs path>  wait before step until that file
//	                                       exists (a gate a test opens)
//
// Steps are the engine's: prepare, apply, test, publish, confirm, finish
// (lock is taken before the journal, so it has no hook).
const (
	envCrashAt = "ROTOR_TEST_CRASH_AT"
	envPauseAt = "ROTOR_TEST_PAUSE_AT"
)

func init() { installTestHooks = installEnvHooks }

// installEnvHooks gives f engine hooks built from the environment. A bad
// spec makes every rotation fail at its first step with the reason, so a
// typo in a test cannot pass as "no crash happened".
func installEnvHooks(f *Factory) {
	crash, _ := f.LookupEnv(envCrashAt)
	pause, _ := f.LookupEnv(envPauseAt)
	if crash == "" && pause == "" {
		return
	}
	h, err := parseEnvHooks(crash, pause)
	if err != nil {
		f.Hooks = &engine.Hooks{BeforeStep: func(string) error { return err }}
		return
	}
	f.Hooks = &engine.Hooks{BeforeStep: h.beforeStep}
}

type envHooks struct {
	crash map[string]int // step → which arrival dies
	pause map[string]func()

	mu   sync.Mutex
	seen map[string]int
}

func parseEnvHooks(crash, pause string) (*envHooks, error) {
	h := &envHooks{crash: map[string]int{}, pause: map[string]func(){}, seen: map[string]int{}}
	for spec := range specs(crash) {
		step, nth, hasN := strings.Cut(spec, ":")
		n := 1
		if hasN {
			var err error
			if n, err = strconv.Atoi(nth); err != nil || n < 1 {
				return nil, fmt.Errorf("%s=%q: %q is not a positive count", envCrashAt, crash, nth)
			}
		}
		if err := checkStep(envCrashAt, step); err != nil {
			return nil, err
		}
		h.crash[step] = n
	}
	for spec := range specs(pause) {
		step, arg, ok := strings.Cut(spec, ":")
		if !ok {
			return nil, fmt.Errorf("%s=%q: want <step>:<duration> or <step>:<absolute path>", envPauseAt, pause)
		}
		if err := checkStep(envPauseAt, step); err != nil {
			return nil, err
		}
		if d, err := time.ParseDuration(arg); err == nil {
			h.pause[step] = func() { time.Sleep(d) }
			continue
		}
		if !filepath.IsAbs(arg) {
			return nil, fmt.Errorf("%s=%q: %q is neither a duration nor an absolute path", envPauseAt, pause, arg)
		}
		h.pause[step] = func() { waitForFile(arg) }
	}
	return h, nil
}

func specs(list string) iter.Seq[string] {
	return func(yield func(string) bool) {
		for s := range strings.SplitSeq(list, ",") {
			if s = strings.TrimSpace(s); s != "" && !yield(s) {
				return
			}
		}
	}
}

func checkStep(env, step string) error {
	if step == engine.StepLock || !slices.Contains(engine.Steps, step) {
		return fmt.Errorf("%s: unknown step %q (known: %s)", env, step, strings.Join(engine.Steps[1:], ", "))
	}
	return nil
}

func (h *envHooks) beforeStep(step string) error {
	if p := h.pause[step]; p != nil {
		p()
	}
	n, ok := h.crash[step]
	if !ok {
		return nil
	}
	h.mu.Lock()
	h.seen[step]++
	die := h.seen[step] == n
	h.mu.Unlock()
	if die {
		killSelf()
		return errors.New("rotortest: SIGKILL of the own process did not stop it")
	}
	return nil
}

// killSelf ends the process the way the kernel's OOM killer or `kill -9`
// would: no deferred calls, no lease release, no journal entry.
func killSelf() {
	if p, err := os.FindProcess(os.Getpid()); err == nil {
		_ = p.Kill() // SIGKILL on Unix
	}
	// Signal delivery is asynchronous: never run on in the meantime.
	time.Sleep(time.Minute)
}

func waitForFile(path string) {
	for {
		if _, err := os.Stat(path); err == nil {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}
