// Package cli is rotor's command line: one file per command, each with an
// Options struct and a NewCmdX(f, runF) constructor so flag parsing can be
// tested apart from running.
package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
)

// Version is set at build time (-ldflags "-X …cli.Version=v1.2.3"); left
// "dev", the module version from the build info is shown (see BuildInfo).
var Version = "dev"

// Main runs rotor with os.Args and returns the exit code.
func Main() int {
	f := NewFactory()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return Run(ctx, f, os.Args[1:])
}

// Run executes one rotor invocation against f; tests call it directly.
func Run(ctx context.Context, f *Factory, args []string) int {
	defer f.Close()
	root := NewCmdRoot(f)
	root.SetArgs(args)
	root.SetIn(f.IO.In)
	root.SetOut(f.IO.Out)
	root.SetErr(f.IO.ErrOut)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return ExitOK
	}
	if strings.HasPrefix(err.Error(), "unknown command") {
		err = &UsageError{err}
	}
	code := exitCode(err)
	var silent *SilentError
	if !errors.As(err, &silent) {
		fmt.Fprintln(f.IO.ErrOut, "rotor: "+err.Error())
	}
	if f.JSON && !f.wroteJSON {
		// A script reading stdout gets the failure in the form it asked
		// for; a command that printed its own document already has the
		// failure in it (validate's checks, rotate's errors).
		msg := err.Error()
		if silent != nil {
			msg = ""
		}
		_ = printJSON(f, ErrorOutput{Error: msg, ExitCode: code, Meaning: ExitMeaning(code)})
	}
	return code
}

// ErrorOutput is what a command run with --json prints on stdout when it
// fails before printing its own document.
type ErrorOutput struct {
	Error    string `json:"error"`
	ExitCode int    `json:"exit_code"`
	// Meaning is what the exit code means (ExitMeaning).
	Meaning string `json:"meaning"`
}

// NewCmdRoot builds the command tree.
func NewCmdRoot(f *Factory) *cobra.Command {
	root := &cobra.Command{
		Use:   "rotor",
		Short: "Rotate PostgreSQL credentials and roll the new connection string out everywhere",
		Long: `rotor rotates PostgreSQL role passwords (plain Postgres or Neon) and publishes
the new connection string to every place that holds a copy — .env files,
deploy platforms, CI secrets, secret managers, PgBouncer — with zero
downtime (dual strategy), crash safety (a journaled, resumable state
machine) and proof (login tests and read-back of every target).

Start with ` + "`rotor demo`" + ` to watch it work against a throwaway local database,
or ` + "`rotor init`" + ` to write a starter rotor.yaml.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	// --version is rotor's own flag, not cobra's: cobra prints a custom
	// version line through text/template, whose reflection keeps the
	// linker from dropping unused methods (a bigger binary, a slower
	// start). It is a flag of the root only, as cobra's is.
	showVersion := root.Flags().BoolP("version", "v", false, "print rotor's version and exit")
	root.RunE = func(cmd *cobra.Command, args []string) error {
		if !*showVersion {
			return cmd.Help()
		}
		_, err := fmt.Fprintln(f.IO.Out, "rotor "+currentBuildInfo().String())
		return err
	}
	pf := root.PersistentFlags()
	pf.StringVarP(&f.ConfigPath, "config", "c", "", "config file (default $ROTOR_CONFIG or ./rotor.yaml)")
	pf.StringVar(&f.StatePath, "state", "", "state store: a file path, sqlite://PATH or postgres://URL without its password (default: $ROTOR_STATE_URL, else the config's state, else .rotor/state.db)")
	pf.BoolVar(&f.JSON, "json", false, "print machine-readable JSON instead of text")
	pf.BoolVar(&f.Debug, "debug", false, "log debug detail to stderr (never secrets)")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &UsageError{err} })

	root.AddCommand(
		NewCmdInit(f, nil),
		NewCmdValidate(f, nil),
		NewCmdSetupRoles(f, nil),
		NewCmdPlan(f, nil),
		NewCmdRotate(f, nil),
		NewCmdResume(f, nil),
		NewCmdRetire(f, nil),
		NewCmdAdopt(f, nil),
		NewCmdStatus(f, nil),
		NewCmdHistory(f, nil),
		NewCmdState(f),
		NewCmdConnstr(f),
		NewCmdNeon(f),
		NewCmdServe(f, nil),
		NewCmdDemo(f, nil),
		NewCmdVersion(f),
	)
	return root
}

// printJSON writes v as indented JSON. Every --json document uses
// snake_case names and nests objects (docs/cli.md lists them).
func printJSON(f *Factory, v any) error {
	f.wroteJSON = true
	enc := json.NewEncoder(f.IO.Out)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// usageArgs wraps cobra's arg validators so their errors exit 2.
func usageArgs(v cobra.PositionalArgs) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if err := v(cmd, args); err != nil {
			return &UsageError{fmt.Errorf("%w (see `rotor %s --help`)", err, cmd.Name())}
		}
		return nil
	}
}
