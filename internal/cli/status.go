package cli

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/rotorhq/rotor/internal/engine"
)

// StatusOptions are `rotor status`'s inputs.
type StatusOptions struct {
	F     *Factory
	Names []string
	Live  bool
}

// NewCmdStatus builds `rotor status`.
func NewCmdStatus(f *Factory, runF func(*StatusOptions) error) *cobra.Command {
	opts := &StatusOptions{F: f}
	cmd := &cobra.Command{
		Use:   "status [credential...]",
		Short: "Show each credential: role in use, version age, next due, every target's last delivery",
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Names = args
			if runF != nil {
				return runF(opts)
			}
			return runStatus(cmd.Context(), opts)
		},
	}
	cmd.Flags().BoolVar(&opts.Live, "live", false, "also ask the database which sessions still use an old role")
	return cmd
}

func runStatus(ctx context.Context, opts *StatusOptions) error {
	f := opts.F
	f.Offline = !opts.Live
	creds, eng, err := f.readOnly(ctx, opts.Names)
	if err != nil {
		return err
	}
	var all []*engine.CredentialStatus
	for _, cr := range creds {
		st, err := eng.Status(ctx, cr, engine.StatusOptions{Live: opts.Live})
		if err != nil {
			return err
		}
		all = append(all, st)
	}
	if f.JSON {
		return printJSON(f, all)
	}
	now := f.Now()
	for i, st := range all {
		if i > 0 {
			fmt.Fprintln(f.IO.Out)
		}
		printStatus(f.IO.Out, st, now)
	}
	return nil
}

func printStatus(w io.Writer, st *engine.CredentialStatus, now time.Time) {
	fmt.Fprintf(w, "%s (%s)\n", st.Name, st.Strategy)
	if st.Role != "" {
		fmt.Fprintf(w, "  role in use   %s, version %d, %s old (%s)\n", st.Role, st.Version, ago(st.Age), st.Fingerprint)
	} else {
		fmt.Fprintln(w, "  role in use   unknown (never rotated by rotor)")
	}
	due := st.Schedule
	if st.NextDue != nil {
		switch {
		case st.Due:
			due += "; due now"
		case st.NextDue.After(now):
			due += fmt.Sprintf("; next due %s (in %s)", st.NextDue.UTC().Format("2006-01-02 15:04 MST"), ago(st.NextDue.Sub(now)))
		default:
			due += "; due (outside its window until " + st.NextDue.UTC().Format("2006-01-02 15:04 MST") + ")"
		}
	}
	fmt.Fprintf(w, "  schedule      %s\n", due)
	for _, fact := range st.Provider {
		fmt.Fprintf(w, "  provider      %s\n", fact)
	}
	if st.Last != nil {
		fmt.Fprintf(w, "  last rotation #%d %s, %s\n", st.Last.ID, st.Last.Status, st.Last.StartedAt.UTC().Format(time.RFC3339))
	}
	if st.Active != nil {
		fmt.Fprintf(w, "  unfinished    #%d at step %s\n", st.Active.ID, st.Active.Step)
	}
	if st.LeaseHolder != "" {
		fmt.Fprintf(w, "  running now   in %s\n", st.LeaseHolder)
	}
	if pr := st.PendingRetirement; pr != nil {
		fmt.Fprintf(w, "  retiring      old role %s (rotation #%d, %s): switched %s ago; it %s\n", pr.Role, pr.RotationID, pr.Status, ago(now.Sub(pr.SwitchedAt)), pr.RetiresWhen)
		if pr.LastLogin != nil {
			fmt.Fprintf(w, "                its last login was recorded %s ago\n", ago(now.Sub(*pr.LastLogin)))
		}
	}
	if len(st.Targets) > 0 {
		fmt.Fprintln(w, "  targets")
		for _, t := range st.Targets {
			when := "never"
			if t.At != nil {
				when = ago(now.Sub(*t.At)) + " ago"
			}
			line := fmt.Sprintf("    %-20s %-10s %-12s %-10s %s", t.Name, t.Type, t.State, when, t.Destination)
			if t.Error != "" {
				line += "  (" + firstLine(t.Error) + ")"
			}
			fmt.Fprintln(w, line)
		}
	}
	for _, s := range st.OldSessions {
		fmt.Fprintf(w, "  old-role session pid %d, application %q, from %s\n", s.PID, s.ApplicationName, orDash(s.ClientAddr))
	}
	for _, warn := range st.Warnings {
		fmt.Fprintf(w, "  ! %s\n", warn)
	}
}

func ago(d time.Duration) string {
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	default:
		return fmt.Sprintf("%dd", int(d.Hours()/24))
	}
}
