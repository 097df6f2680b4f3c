package cli

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode"

	"github.com/spf13/cobra"

	"github.com/rotorhq/rotor/internal/connstr"
	"github.com/rotorhq/rotor/internal/engine"
	"github.com/rotorhq/rotor/internal/provider"
	"github.com/rotorhq/rotor/internal/target"
)

// PlanOptions are `rotor plan`'s inputs.
type PlanOptions struct {
	F       *Factory
	Names   []string
	Offline bool
}

// NewCmdPlan builds `rotor plan`.
func NewCmdPlan(f *Factory, runF func(*PlanOptions) error) *cobra.Command {
	opts := &PlanOptions{F: f}
	cmd := &cobra.Command{
		Use:   "plan [credential...]",
		Short: "Show what a rotation would do, target by target, without changing anything",
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Names = args
			if runF != nil {
				return runF(opts)
			}
			return runPlan(cmd.Context(), opts)
		},
	}
	cmd.Flags().BoolVar(&opts.Offline, "offline", false, "do not contact the database (skip privilege and session checks)")
	return cmd
}

func runPlan(ctx context.Context, opts *PlanOptions) error {
	f := opts.F
	f.Offline = opts.Offline
	creds, eng, err := f.readOnly(ctx, opts.Names)
	if err != nil {
		return err
	}
	plans, err := eng.Plans(ctx, creds, engine.PlanOptions{Offline: opts.Offline})
	if err != nil {
		return err
	}
	if f.JSON {
		return printJSONList(f, plans)
	}
	w := bufio.NewWriter(f.IO.Out)
	for i, p := range plans {
		if i > 0 {
			fmt.Fprintln(w)
		}
		printPlan(w, p)
	}
	return w.Flush()
}

func printPlan(w io.Writer, p *engine.Plan) {
	move := p.ToRole
	if p.FromRole != "" && p.FromRole != p.ToRole {
		move = p.FromRole + " → " + p.ToRole
	}
	fmt.Fprintf(w, "%s (%s, %s): %s\n", p.Credential, p.Strategy, p.Provider, move)
	for i, a := range p.Actions {
		fmt.Fprintf(w, "  %d. %s\n", i+1, a)
	}
	for _, t := range p.Targets {
		extra := []string{}
		if t.Reload {
			extra = append(extra, "reload")
		}
		if t.ReadBack {
			extra = append(extra, "read-back")
		}
		if !t.Idempotent {
			extra = append(extra, "not retried")
		}
		fmt.Fprintf(w, "  target %s (%s) → %s", t.Name, t.Type, t.Destination)
		if len(extra) > 0 {
			fmt.Fprintf(w, " [%s]", strings.Join(extra, ", "))
		}
		fmt.Fprintln(w)
		for _, k := range t.Keys {
			fmt.Fprintf(w, "      %s = %s\n", k, planValue(t.Values[k]))
		}
	}
	for _, warn := range p.Warnings {
		fmt.Fprintf(w, "  ! %s\n", warn)
	}
}

// ValidateOptions are `rotor validate`'s inputs.
type ValidateOptions struct {
	F       *Factory
	Names   []string
	Offline bool
}

// NewCmdValidate builds `rotor validate`.
func NewCmdValidate(f *Factory, runF func(*ValidateOptions) error) *cobra.Command {
	opts := &ValidateOptions{F: f}
	cmd := &cobra.Command{
		Use:   "validate [credential...]",
		Short: "Check the config, the database connection and every target's access, read-only",
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Names = args
			if runF != nil {
				return runF(opts)
			}
			return runValidate(cmd.Context(), opts)
		},
	}
	cmd.Flags().BoolVar(&opts.Offline, "offline", false, "only check the config file; contact nothing")
	return cmd
}

// Check is one line of `rotor validate` output.
type Check struct {
	Credential string   `json:"credential"`
	Subject    string   `json:"subject"`
	OK         bool     `json:"ok"`
	Error      string   `json:"error,omitempty"`
	Notes      []string `json:"notes,omitempty"`
}

func runValidate(ctx context.Context, opts *ValidateOptions) error {
	f := opts.F
	f.ReadOnly, f.Offline = true, opts.Offline
	cfg, err := f.Config()
	if err != nil {
		return err
	}
	creds, err := selectCredentials(cfg, opts.Names)
	if err != nil {
		return err
	}
	var checks []Check
	cc := Check{Subject: "config " + cfg.Path, OK: true, Notes: []string{fmt.Sprintf("%d credential(s)", len(cfg.Credentials))}}
	if len(cfg.Unset) > 0 {
		cc.Notes = append(cc.Notes, fmt.Sprintf("not set: %s; --offline needs none, every command that connects (validate, setup-roles, plan, rotate, resume, retire, status --live) needs each", strings.Join(cfg.Unset, ", ")))
	}
	checks = append(checks, cc)
	checks = append(checks, circularChecks(cfg, creds, f.getenv)...)
	if !opts.Offline {
		state := "state " + connstr.Redact(cfg.State)
		eng, err := f.Engine(ctx)
		if err != nil {
			checks = append(checks, Check{Subject: state, Error: err.Error()})
		} else {
			checks = append(checks, Check{Subject: state, OK: true})
		}
		for _, cr := range creds {
			if eng != nil {
				// A self-managed credential's provider logs in with the
				// password rotor keeps, not the stale one in the environment.
				if err := eng.UseStoredAdmin(ctx, cr); err != nil {
					checks = append(checks, Check{Credential: cr.Name, Subject: "stored admin password", Error: err.Error()})
				}
			}
			checks = append(checks, validateCredential(ctx, cr)...)
		}
	}
	failed := 0
	for _, c := range checks {
		if !c.OK {
			failed++
		}
	}
	if f.JSON {
		if err := printJSON(f, checks); err != nil {
			return err
		}
	} else {
		for _, c := range checks {
			mark := "✓"
			if !c.OK {
				mark = "✗"
			}
			subject := c.Subject
			if c.Credential != "" {
				subject = c.Credential + ": " + subject
			}
			fmt.Fprintf(f.IO.Out, "%s %s\n", mark, subject)
			if c.Error != "" {
				fmt.Fprintf(f.IO.Out, "    %s\n", strings.ReplaceAll(c.Error, "\n", "\n    "))
			}
			for _, n := range c.Notes {
				fmt.Fprintf(f.IO.Out, "    %s\n", n)
			}
		}
	}
	if failed > 0 {
		return errors.New(fmt.Sprintf("%d check(s) failed", failed))
	}
	return nil
}

func validateCredential(ctx context.Context, cr *engine.Credential) []Check {
	var out []Check
	pc := Check{Credential: cr.Name, Subject: "provider " + cr.ProviderType}
	resp, err := cr.Provider.Check(ctx, provider.CheckRequest{Roles: cr.Roles})
	if err != nil {
		pc.Error = err.Error()
	} else {
		pc.OK = true
		if resp.ServerVersion != "" {
			pc.Notes = append(pc.Notes, resp.ServerVersion)
		}
		pc.Notes = append(pc.Notes, resp.Notes...)
	}
	out = append(out, pc)
	if err == nil && cr.Strategy == engine.StrategyDual {
		par := Check{Credential: cr.Name, Subject: "privilege parity of " + strings.Join(cr.Roles, " and ")}
		p, err := cr.Provider.Parity(ctx, provider.ParityRequest{Roles: cr.Roles})
		switch {
		case errors.Is(err, provider.ErrUnsupported):
			par.OK, par.Notes = true, []string{"not checked by this provider"}
		case errors.Is(err, provider.ErrRoleNotFound):
			// Before `rotor setup-roles`, which validate comes first to
			// prepare for: a step to take, not a broken config.
			par.OK, par.Notes = true, []string{fmt.Sprintf("not checked yet: the roles do not all exist; run `rotor setup-roles %s`, then validate again", cr.Name)}
		case err != nil:
			par.Error = err.Error()
		case len(p.Differences) > 0:
			par.Error = "differences (rotations will stop until fixed):\n- " + strings.Join(p.Differences, "\n- ")
		default:
			par.OK = true
		}
		out = append(out, par)
	}
	for _, t := range cr.Targets {
		tc := Check{Credential: cr.Name, Subject: fmt.Sprintf("target %s (%s) → %s", t.Name, t.Type, t.Impl.Info().Destination)}
		if v := target.Discover(t.Impl).Validator; v != nil {
			resp, err := v.Validate(ctx, target.ValidateRequest{})
			if err != nil {
				tc.Error = err.Error()
			} else {
				tc.OK, tc.Notes = true, resp.Notes
			}
		} else {
			tc.OK, tc.Notes = true, []string{"this target type has no read-only check"}
		}
		out = append(out, tc)
	}
	return out
}

// planValue shows a template on one line of the plan: one holding a line
// break, a tab or another control character, or space at either end, is
// printed Go-quoted ("a\nb"), so that it cannot break the layout or pass
// for the next line; any other is printed as written.
func planValue(v string) string {
	if strings.TrimSpace(v) != v || strings.IndexFunc(v, func(r rune) bool { return !unicode.IsPrint(r) }) >= 0 {
		return strconv.Quote(v)
	}
	return v
}
