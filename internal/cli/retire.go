package cli

import (
	"context"
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/rotorhq/rotor/internal/engine"
	"github.com/rotorhq/rotor/internal/store"
)

// RetireOptions are `rotor retire`'s inputs.
type RetireOptions struct {
	F        *Factory
	Name     string
	Now      bool
	Progress bool
}

// NewCmdRetire builds `rotor retire`.
func NewCmdRetire(f *Factory, runF func(*RetireOptions) error) *cobra.Command {
	opts := &RetireOptions{F: f}
	cmd := &cobra.Command{
		Use:   "retire credential",
		Short: "Retire the old role of a dual rotation that switched, once every consumer has moved",
		Long: `A dual rotation retires its old role only on evidence that every consumer
has moved: every reload finished, drain.grace passed since, and no session
seen on the role for drain.quiet. When that takes longer than drain.wait,
the rotation ends as "switched" and the old role keeps working. Retire
carries the retirement out: it watches the old role for up to drain.wait
and retires it when the evidence is complete, or says what is missing.
` + "`rotor rotate --due`" + ` and ` + "`rotor resume`" + ` do the same for every credential.

--now retires at once without evidence and terminates the sessions still
on the old role: consumers that have not moved yet will fail.`,
		Example: `  rotor retire app-db
  rotor retire app-db --now`,
		Args: usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Name = args[0]
			if runF != nil {
				return runF(opts)
			}
			return runRetire(cmd.Context(), opts)
		},
	}
	cmd.Flags().BoolVar(&opts.Now, "now", false, "retire at once, without evidence; sessions still on the old role are terminated")
	cmd.Flags().BoolVar(&opts.Progress, "progress", false, "print live progress even when stderr is not a terminal")
	return cmd
}

func runRetire(ctx context.Context, opts *RetireOptions) error {
	f := opts.F
	cfg, err := f.Config()
	if err != nil {
		return err
	}
	cr, err := cfg.Credential(opts.Name)
	if err != nil {
		return &UsageError{err}
	}
	if cr.Strategy != engine.StrategyDual {
		return &UsageError{fmt.Errorf("%s uses the %s strategy: it has no old role to retire", cr.Name, cr.Strategy)}
	}
	eng, err := f.Engine(ctx)
	if err != nil {
		return err
	}
	prog := newProgress(f.IO.ErrOut, opts.Progress || (f.IO.IsStderrTTY() && !f.JSON))
	eng.Events = f.events(prog.event)
	if opts.Now {
		fmt.Fprintf(f.IO.ErrOut, "warning: retiring the old role of %s without evidence; consumers still on it lose their sessions and cannot log in again\n", cr.Name)
	}
	res, err := eng.Retire(ctx, cr, engine.RetireOptions{Now: opts.Now, Reason: "retire --now"})
	if errors.Is(err, engine.ErrNothingToRetire) {
		if f.JSON {
			return printJSON(f, map[string]any{"credential": cr.Name, "retirement": nil})
		}
		fmt.Fprintf(f.IO.Out, "%s: no old role is awaiting retirement\n", cr.Name)
		return nil
	}
	if err != nil {
		return err
	}
	if f.JSON {
		if err := printJSON(f, res); err != nil {
			return err
		}
	} else {
		printResult(f.IO.Out, res)
	}
	if res.Status == store.StatusOldInUse {
		return &AttentionError{Msg: "the old role is still in use past its deadline; see the sessions above"}
	}
	return nil
}
