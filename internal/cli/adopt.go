package cli

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"
)

// AdoptOptions are `rotor adopt`'s inputs.
type AdoptOptions struct {
	F    *Factory
	Name string
}

// NewCmdAdopt builds `rotor adopt`.
func NewCmdAdopt(f *Factory, runF func(*AdoptOptions) error) *cobra.Command {
	opts := &AdoptOptions{F: f}
	cmd := &cobra.Command{
		Use:   "adopt credential",
		Short: "Make this store manage a credential's roles as they are now, after a change behind its back",
		Long: `rotor marks every role it sets with the store and version that set it (the
role's comment), and before changing a password it reads the marks and logs
in with the password it believes is current. When another rotor store, a
restored older copy of this one, or a person (ALTER ROLE, a console reset)
changed the role since, the rotation stops rather than overwrite it.

Adopt accepts the roles as they are: each gets this store's mark, and the
next rotation proceeds and sets a fresh password. Run it only once you know
which store should manage the credential from now on; the other store must
stop rotating it.`,
		Example: `  rotor adopt app-db
  rotor rotate app-db`,
		Args: usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Name = args[0]
			if runF != nil {
				return runF(opts)
			}
			return runAdopt(cmd.Context(), opts)
		},
	}
	return cmd
}

func runAdopt(ctx context.Context, opts *AdoptOptions) error {
	f := opts.F
	cfg, err := f.Config()
	if err != nil {
		return err
	}
	cr, err := cfg.Credential(opts.Name)
	if err != nil {
		return &UsageError{err}
	}
	eng, err := f.Engine(ctx)
	if err != nil {
		return err
	}
	res, err := eng.Adopt(ctx, cr)
	if err != nil {
		return err
	}
	if f.JSON {
		return printJSON(f, map[string]any{"credential": cr.Name, "roles": res})
	}
	for _, r := range res {
		prev := r.Previous
		if prev == "" {
			prev = "(none)"
		}
		fmt.Fprintf(f.IO.Out, "%s: role %s adopted; it was marked %s\n", cr.Name, r.Role, prev)
	}
	fmt.Fprintf(f.IO.Out, "the next `rotor rotate %s` sets a fresh password\n", cr.Name)
	return nil
}
