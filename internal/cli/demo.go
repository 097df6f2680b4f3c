package cli

import (
	"context"

	"github.com/spf13/cobra"

	"github.com/rotorhq/rotor/internal/demo"
)

// DemoOptions are `rotor demo`'s inputs.
type DemoOptions struct {
	F         *Factory
	Dir       string
	Keep      bool
	Rotations int
}

// NewCmdDemo builds `rotor demo`.
func NewCmdDemo(f *Factory, runF func(*DemoOptions) error) *cobra.Command {
	opts := &DemoOptions{F: f}
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Watch rotor rotate a throwaway local PostgreSQL under load (needs PostgreSQL's server binaries)",
		Long: `demo starts a throwaway PostgreSQL (SCRAM authentication, TLS), creates a
dual role pair and a single role, writes .env files, runs a small app that
keeps opening connections with whatever .env says, rotates each credential
a few times through this very CLI, and prints what the app saw: failed
connection attempts per strategy, the failure window, dropped sessions.
Everything is removed afterwards unless --keep.`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			if runF != nil {
				return runF(opts)
			}
			_, err := demo.Run(cmd.Context(), demo.Options{
				Out: f.IO.Out, Dir: opts.Dir, Keep: opts.Keep, Rotations: opts.Rotations,
				Run: func(ctx context.Context, env map[string]string, args ...string) int {
					sub := &Factory{IO: f.IO, Now: f.Now, HTTPClient: f.HTTPClient, Debug: f.Debug,
						LookupEnv: func(k string) (string, bool) {
							if v, ok := env[k]; ok {
								return v, true
							}
							return f.LookupEnv(k)
						}}
					return Run(ctx, sub, args)
				},
			})
			return err
		},
	}
	cmd.Flags().StringVar(&opts.Dir, "dir", "", "keep the demo's files in this directory instead of a temporary one")
	cmd.Flags().BoolVar(&opts.Keep, "keep", false, "leave the cluster and files behind for inspection")
	cmd.Flags().IntVar(&opts.Rotations, "rotations", 3, "rotations per strategy")
	return cmd
}
