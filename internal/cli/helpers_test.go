package cli

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"github.com/stretchr/testify/require"
)

// testEnv is what every test factory sees as its environment: nothing from
// the real process leaks in (no ROTOR_KEY, no ROTOR_CONFIG).
type testEnv map[string]string

func (e testEnv) lookup(k string) (string, bool) {
	v, ok := e[k]
	return v, ok
}

type testIO struct {
	in, out, errOut *bytes.Buffer
}

func newTestFactory(env testEnv) (*Factory, testIO) {
	ios, in, out, errOut := TestStreams()
	f := &Factory{
		IO:         ios,
		LookupEnv:  env.lookup,
		Now:        func() time.Time { return time.Date(2025, 1, 6, 12, 0, 0, 0, time.UTC) },
		HTTPClient: &http.Client{},
	}
	return f, testIO{in: in, out: out, errOut: errOut}
}

// execSub runs args through the real root command with the subcommand
// named like the one newCmd builds replaced by it, so the root's global
// flags and flag-error handling apply exactly as in `rotor`.
func execSub(t *testing.T, f *Factory, newCmd func(*Factory) *cobra.Command, args []string) error {
	t.Helper()
	root := NewCmdRoot(f)
	sub := newCmd(f)
	for _, c := range root.Commands() {
		if c.Name() == sub.Name() {
			root.RemoveCommand(c)
		}
	}
	root.AddCommand(sub)
	root.SetArgs(append([]string{sub.Name()}, args...))
	root.SetIn(f.IO.In)
	root.SetOut(f.IO.Out)
	root.SetErr(f.IO.ErrOut)
	return root.ExecuteContext(context.Background())
}

// requireUsage checks err is a usage error (exit 2) whose message contains
// want.
func requireUsage(t *testing.T, err error, want string) {
	t.Helper()
	require.Error(t, err)
	var usage *UsageError
	require.True(t, errors.As(err, &usage), "want *UsageError, got %T: %v", err, err)
	require.Equal(t, ExitUsage, exitCode(err))
	require.ErrorContains(t, err, want)
}

// run is Run with args and stdin; it returns the exit code and the output.
func run(t *testing.T, env testEnv, stdin string, args ...string) (int, string, string) {
	t.Helper()
	f, io := newTestFactory(env)
	io.in.WriteString(stdin)
	code := Run(context.Background(), f, args)
	return code, io.out.String(), io.errOut.String()
}
