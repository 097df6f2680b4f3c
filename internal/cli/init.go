package cli

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/rotorhq/rotor/internal/atomicfile"
	"github.com/rotorhq/rotor/internal/config"
	"github.com/rotorhq/rotor/internal/secret"
)

// InitOptions are `rotor init`'s inputs.
type InitOptions struct {
	F          *Factory
	Force      bool
	Credential string
	Strategy   string
	Print      bool
}

// NewCmdInit builds `rotor init`.
func NewCmdInit(f *Factory, runF func(*InitOptions) error) *cobra.Command {
	opts := &InitOptions{F: f}
	cmd := &cobra.Command{
		Use:   "init",
		Short: "Write a commented starter rotor.yaml and an encryption key",
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			if !config.ValidName(opts.Credential) {
				return &UsageError{fmt.Errorf("--credential %q: use letters, digits, '_', '.', '-' (starting with a letter or digit)", opts.Credential)}
			}
			if opts.Strategy != "dual" && opts.Strategy != "single" {
				return &UsageError{fmt.Errorf("--strategy %q: use dual or single", opts.Strategy)}
			}
			if runF != nil {
				return runF(opts)
			}
			return runInit(opts)
		},
	}
	cmd.Flags().BoolVar(&opts.Force, "force", false, "overwrite an existing config file")
	cmd.Flags().StringVar(&opts.Credential, "credential", "app-db", "name of the first credential")
	cmd.Flags().StringVar(&opts.Strategy, "strategy", "dual", "dual (two alternating roles, zero downtime) or single")
	cmd.Flags().BoolVar(&opts.Print, "print", false, "print the config to stdout instead of writing files")
	return cmd
}

func runInit(opts *InitOptions) error {
	f := opts.F
	text := StarterConfig(opts.Credential, opts.Strategy)
	if opts.Print {
		fmt.Fprint(f.IO.Out, text)
		return nil
	}
	path := f.configPath()
	if _, err := os.Stat(path); err == nil && !opts.Force {
		return &UsageError{fmt.Errorf("%s already exists; pass --force to overwrite it, or --print to see the starter config", path)}
	}
	if _, err := atomicfile.WriteFile(path, []byte(text), 0o600); err != nil {
		return err
	}
	dir := filepath.Join(filepath.Dir(path), ".rotor")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	// The key and the state never belong in git.
	if _, err := atomicfile.WriteFile(filepath.Join(dir, ".gitignore"), []byte("*\n"), 0o600); err != nil {
		return err
	}
	_, source, err := secret.LoadKey(f.getenv, filepath.Join(dir, "key"), true)
	if err != nil && !errors.Is(err, os.ErrExist) {
		return err
	}
	fmt.Fprintf(f.IO.Out, "wrote %s\nencryption key: %s\n\nnext:\n  1. export ROTOR_ADMIN_URL='postgresql://admin:…@host/db' (an admin that may ALTER ROLE)\n  2. edit %s: connection.url, roles, targets\n", path, source, path)
	if opts.Strategy == "dual" {
		fmt.Fprintf(f.IO.Out, "  3. rotor setup-roles %s\n  4. rotor plan %s && rotor rotate %s\n", opts.Credential, opts.Credential, opts.Credential)
	} else {
		fmt.Fprintf(f.IO.Out, "  3. rotor plan %s && rotor rotate %s\n", opts.Credential, opts.Credential)
	}
	return nil
}

// StarterConfig returns the commented config `rotor init` writes.
func StarterConfig(name, strategy string) string {
	roles := "    roles: [app_blue, app_green]   # two login roles that alternate\n    group: app                      # NOLOGIN role that owns the objects (rotor setup-roles creates it)\n"
	if strategy == "single" {
		roles = "    role: app                       # the login role whose password changes in place\n"
	}
	return strings.NewReplacer("NAME", name, "STRATEGY", strategy, "ROLES", roles).Replace(`# rotor configuration — see README.md "Configuration reference".
version: 1

# Where rotor keeps its journal and the (encrypted) passwords. A file path,
# relative to this file, or sqlite://PATH.
state: .rotor/state.db
# Encryption key for secrets at rest; ROTOR_KEY in the environment wins.
key_file: .rotor/key

credentials:
  NAME:
    provider:
      type: postgres
      # An admin connection allowed to ALTER ROLE. Secrets come from the
      # environment, never from this file.
      admin_url: ${ROTOR_ADMIN_URL}
    # How consumers connect. User and password are filled in by rotor.
    connection:
      url: postgresql://db.example.internal:5432/app?sslmode=require&channel_binding=require
      # pooled_url: postgresql://pgbouncer.example.internal:6432/app?sslmode=require
    strategy: STRATEGY          # dual: zero downtime; single: one role, brief failures
ROLES    password:
      length: 32                # >= 128 bits of entropy is enforced
    schedule:
      every: 30d                # or cron: "0 3 * * 1"
      window: "Mon-Fri 02:00-05:00 UTC"
      jitter: 1h
    drain:                      # dual: retire the old role only on evidence that consumers moved
      grace: 30s                # after every reload finished, keep the old role valid this long
      quiet: 10s                # then it must show no session for this long
      wait: 2m                  # rotate waits this long, then ends "switched"; retire later
      timeout: 1h               # from the switch: still in use then? leave it and report (exit 4)
      terminate: false          # true: at the timeout, retire it and end its sessions
    retire: immediately         # or next-rotation (old role valid until the next one)
    targets:
      - name: local-env
        type: dotenv
        path: .env
        values:
          DATABASE_URL: "{{.URL}}"
`)
}
