package cli

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/rotorhq/rotor/internal/connstr"
)

// NewCmdConnstr builds `rotor connstr` and its subcommands.
func NewCmdConnstr(f *Factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "connstr",
		Short: "Connection-string utilities (redact, parse); never print a password",
		Long: `Connection-string utilities. Read the string from stdin rather than
passing it as an argument: arguments end up in shell history and in ` + "`ps`" + `.

  echo "$DATABASE_URL" | rotor connstr redact
  rotor connstr parse < .env.url`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			return &UsageError{errors.New("name a subcommand: redact or parse (see `rotor connstr --help`)")}
		},
	}
	cmd.AddCommand(&cobra.Command{
		Use:   "redact [string]",
		Short: "Print the input with every secret replaced by REDACTED and every other byte as it was",
		Args:  usageArgs(cobra.MaximumNArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			in, err := connstrInput(f, args)
			if err != nil {
				return err
			}
			out := connstr.Redact(in)
			if !strings.HasSuffix(out, "\n") {
				out += "\n"
			}
			_, err = io.WriteString(f.IO.Out, out)
			return err
		},
	})
	cmd.AddCommand(&cobra.Command{
		Use:   "parse [string]",
		Short: "Show the parts of a connection string (the password only as its length)",
		Args:  usageArgs(cobra.MaximumNArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			in, err := connstrInput(f, args)
			if err != nil {
				return err
			}
			c, err := connstr.Parse(strings.TrimSpace(in))
			if err != nil {
				return &UsageError{err}
			}
			pw := "(none)"
			if n := len(c.Password.Reveal()); n > 0 {
				pw = fmt.Sprintf("(set, %d characters)", n)
			}
			params := map[string]string{}
			var keys []string
			for _, p := range c.Params {
				params[p.Key] = p.Value
				keys = append(keys, p.Key)
			}
			hosts, err := c.Hosts()
			if err != nil {
				return &UsageError{err}
			}
			pooled, perr := connstr.PooledHost(c.Host)
			if f.JSON {
				// host and port stay libpq's comma-separated lists;
				// hosts pairs them up.
				out := map[string]any{"form": c.Form.String(), "user": c.User, "password": pw, "host": c.Host, "port": c.Port,
					"hosts": hosts, "database": c.Database, "params": params, "redacted": c.Redacted(), "neon": connstr.IsNeonHost(c.Host)}
				if perr == nil {
					out["pooled_host"], out["direct_host"] = pooled, connstr.DirectHost(c.Host)
				}
				return printJSON(f, out)
			}
			w := f.IO.Out
			fmt.Fprintf(w, "form      %s\nuser      %s\npassword  %s\n", c.Form, c.User, pw)
			if len(hosts) == 1 {
				fmt.Fprintf(w, "host      %s\nport      %s\n", c.Host, orDash(c.Port))
			} else {
				// One line per host: the raw port list (",5433") reads as
				// a typo.
				for _, h := range hosts {
					fmt.Fprintf(w, "host      %s port %s\n", orDash(h.Host), orDefault(h.Port))
				}
			}
			fmt.Fprintf(w, "database  %s\n", c.Database)
			for _, k := range keys {
				fmt.Fprintf(w, "param     %s=%s\n", k, params[k])
			}
			if perr == nil {
				fmt.Fprintf(w, "neon      pooled host %s, direct host %s\n", pooled, connstr.DirectHost(c.Host))
			}
			fmt.Fprintf(w, "redacted  %s\n", c.Redacted())
			return nil
		},
	})
	return cmd
}

func connstrInput(f *Factory, args []string) (string, error) {
	if len(args) == 1 {
		return args[0], nil
	}
	if f.IO.IsStdinTTY() {
		return "", &UsageError{errors.New("pipe the connection string on stdin (e.g. `echo \"$DATABASE_URL\" | rotor connstr redact`)")}
	}
	b, err := io.ReadAll(io.LimitReader(f.IO.In, 1<<20))
	if err != nil {
		return "", err
	}
	if len(strings.TrimSpace(string(b))) == 0 {
		return "", &UsageError{errors.New("no input on stdin")}
	}
	return string(b), nil
}

func orDefault(port string) string {
	if port == "" {
		return "default"
	}
	return port
}
