package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/rotorhq/rotor/internal/engine"
	"github.com/rotorhq/rotor/internal/store"
)

// RotateOptions are `rotor rotate`'s inputs.
type RotateOptions struct {
	F        *Factory
	Names    []string
	Due      bool
	All      bool
	Revoke   bool
	Force    bool
	Progress bool
	// Parallel is how many credentials rotate at once.
	Parallel int
	// Resume-only mode (`rotor resume`).
	ResumeOnly bool
	Abandon    string
}

// NewCmdRotate builds `rotor rotate`.
func NewCmdRotate(f *Factory, runF func(*RotateOptions) error) *cobra.Command {
	opts := &RotateOptions{F: f}
	cmd := &cobra.Command{
		Use:   "rotate [credential...]",
		Short: "Rotate credentials now (or only those due with --due)",
		Long: `Rotate runs the seven journaled steps for each named credential: lock,
prepare, apply, test, publish, confirm, finish. An interrupted rotation of
the same credential is finished first.

With --due, only credentials whose schedule says they are due are rotated:
run ` + "`rotor rotate --due`" + ` from cron or CI every few minutes.
With --revoke (a leaked password), the old credential's sessions are
terminated and it is made unusable at once, without waiting for a drain.`,
		Example: `  rotor rotate app-db
  rotor rotate --due
  rotor rotate app-db --revoke`,
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Names = args
			if len(args) == 0 && !opts.Due && !opts.All {
				return &UsageError{errors.New("name the credential(s) to rotate, or pass --due (those the schedule says are due) or --all")}
			}
			if len(args) > 0 && (opts.Due || opts.All) {
				return &UsageError{errors.New("--due and --all select credentials themselves; do not also name any")}
			}
			if opts.Due && opts.All {
				return &UsageError{errors.New("--due and --all cannot be combined")}
			}
			if opts.Parallel < 1 {
				return &UsageError{fmt.Errorf("--parallel %d: must be at least 1", opts.Parallel)}
			}
			if runF != nil {
				return runF(opts)
			}
			return runRotate(cmd.Context(), opts)
		},
	}
	cmd.Flags().BoolVar(&opts.Due, "due", false, "rotate only credentials whose schedule says they are due")
	cmd.Flags().BoolVar(&opts.All, "all", false, "rotate every credential in the config")
	cmd.Flags().BoolVar(&opts.Revoke, "revoke", false, "the old password leaked: terminate its sessions and make it unusable at once")
	cmd.Flags().BoolVar(&opts.Force, "force", false, "reuse a dual role even though it still has sessions")
	cmd.Flags().BoolVar(&opts.Progress, "progress", false, "print live progress even when stderr is not a terminal")
	cmd.Flags().IntVarP(&opts.Parallel, "parallel", "p", 1, "rotate up to this many credentials at once")
	return cmd
}

// NewCmdResume builds `rotor resume`.
func NewCmdResume(f *Factory, runF func(*RotateOptions) error) *cobra.Command {
	opts := &RotateOptions{F: f, ResumeOnly: true}
	cmd := &cobra.Command{
		Use:   "resume [credential...]",
		Short: "Continue interrupted rotations from their journal",
		Long: `Resume finishes every rotation that stopped before its last step — a crash,
a failed target, Ctrl-C — using the password it had already generated, so
nothing the database accepts is ever lost. Without names it resumes every
credential that has an unfinished rotation; it never starts a new one.

--abandon gives up on an unfinished rotation instead; that is allowed only
before it published anything.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Names = args
			if opts.Abandon != "" && len(args) > 0 {
				return &UsageError{errors.New("--abandon takes the credential name itself; do not also name others")}
			}
			if runF != nil {
				return runF(opts)
			}
			if opts.Abandon != "" {
				return runAbandon(cmd.Context(), opts)
			}
			return runRotate(cmd.Context(), opts)
		},
	}
	cmd.Flags().StringVar(&opts.Abandon, "abandon", "", "abandon the unfinished rotation of this credential (only before it published)")
	cmd.Flags().BoolVar(&opts.Progress, "progress", false, "print live progress even when stderr is not a terminal")
	return cmd
}

func runRotate(ctx context.Context, opts *RotateOptions) error {
	f := opts.F
	cfg, err := f.Config()
	if err != nil {
		return err
	}
	creds, err := selectCredentials(cfg, opts.Names)
	if err != nil {
		return err
	}
	if err := refuseCircular(cfg, creds, f.getenv); err != nil {
		return err
	}
	eng, err := f.Engine(ctx)
	if err != nil {
		return err
	}
	prog := newProgress(f.IO.ErrOut, opts.Progress || (f.IO.IsStderrTTY() && !f.JSON))
	eng.Events = f.events(prog.event)

	trigger := "manual"
	switch {
	case opts.ResumeOnly:
		trigger = "resume"
	case opts.Due:
		trigger = "schedule"
	}
	// Each outcome is printed as soon as it and those before it are done,
	// and then dropped: a batch of thousands keeps only its errors.
	var (
		failures  []error
		attention bool
		results   int
		list      *jsonList
		writeErr  error
	)
	if f.JSON {
		list = newJSONList(f, true)
	}
	eng.RotateEachFunc(ctx, creds, engine.EachOptions{
		Options:  engine.Options{Trigger: trigger, Revoke: opts.Revoke, Force: opts.Force, ResumeOnly: opts.ResumeOnly},
		DueOnly:  opts.Due,
		Parallel: opts.Parallel,
	}, func(o engine.Outcome) {
		if o.Result != nil {
			results++
			attention = attention || o.Result.Status == store.StatusOldInUse
		}
		if o.Err != nil {
			failures = append(failures, o.Err)
		}
		switch {
		case o.Result == nil && o.Err == nil, writeErr != nil:
		case list != nil:
			writeErr = list.add(RotationOutput{Result: o.Result, Credential: o.Credential, Error: errorText(o.Err)})
		case o.Result != nil:
			printResult(f.IO.Out, o.Result)
		}
	})
	switch {
	case list != nil:
		if writeErr == nil {
			writeErr = list.close()
		}
		if writeErr != nil {
			return writeErr
		}
	case results == 0 && len(failures) == 0 && opts.ResumeOnly:
		fmt.Fprintln(f.IO.Out, "nothing to resume: no rotation is unfinished")
	case results == 0 && len(failures) == 0 && opts.Due:
		fmt.Fprintln(f.IO.Out, "nothing is due")
	}
	switch {
	case len(failures) == 1:
		return failures[0]
	case len(failures) > 1:
		inProgress := true
		msgs := make([]string, len(failures))
		for i, e := range failures {
			msgs[i] = e.Error()
			inProgress = inProgress && errors.Is(e, engine.ErrInProgress)
		}
		joined := errors.New(strings.Join(msgs, "\n"))
		if inProgress {
			return fmt.Errorf("%w: %v", engine.ErrInProgress, joined)
		}
		return joined
	case attention:
		return &AttentionError{Msg: "published, but an old role is still in use; see the sessions above and `rotor status --live`"}
	}
	return nil
}

// RotationOutput is one credential's entry in the --json of rotate and
// resume: what the rotation did (engine.Result's fields; none when it
// could not start) and, when it failed, the error it stopped with.
type RotationOutput struct {
	*engine.Result
	Credential string `json:"credential"`
	Error      string `json:"error,omitempty"`
}

func errorText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func runAbandon(ctx context.Context, opts *RotateOptions) error {
	f := opts.F
	cfg, err := f.Config()
	if err != nil {
		return err
	}
	cr, err := cfg.Credential(opts.Abandon)
	if err != nil {
		return &UsageError{err}
	}
	eng, err := f.Engine(ctx)
	if err != nil {
		return err
	}
	rot, err := eng.Abandon(ctx, cr)
	if err != nil {
		return err
	}
	if f.JSON {
		return printJSON(f, map[string]any{"credential": cr.Name, "rotation_id": rot.ID, "status": rot.Status})
	}
	fmt.Fprintf(f.IO.Out, "%s: rotation %d abandoned; nothing consumers use was changed\n", cr.Name, rot.ID)
	return nil
}

// progress prints live step and target events.
type progress struct {
	mu sync.Mutex
	w  io.Writer
	on bool
}

func newProgress(w io.Writer, on bool) *progress { return &progress{w: w, on: on} }

func (p *progress) event(ev engine.Event) {
	if !p.on {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	icon := map[string]string{"start": "…", "done": "✓", "failed": "✗", "retry": "↻", "skip": "·", "wait": "⧗", "note": "•"}[ev.Status]
	subject := ev.Step
	indent := ""
	if ev.Target != "" {
		subject, indent = "target "+ev.Target, "    "
	}
	line := fmt.Sprintf("%s%s %s %s", indent, icon, ev.Credential, subject)
	if ev.Elapsed > 0 {
		line += " (" + roundDur(ev.Elapsed) + ")"
	}
	if ev.Detail != "" {
		line += ": " + firstLine(ev.Detail)
	}
	fmt.Fprintln(p.w, line)
}

func printResult(w io.Writer, r *engine.Result) {
	verb := map[store.Status]string{
		store.StatusSucceeded:  "rotated",
		store.StatusOldInUse:   "rotated (old role still in use)",
		store.StatusSwitched:   "switched (old role retires later)",
		store.StatusRolledBack: "rolled back",
		store.StatusAbandoned:  "abandoned",
		store.StatusActive:     "stopped",
	}[r.Status]
	if verb == "" {
		verb = string(r.Status)
	}
	head := fmt.Sprintf("%s: %s", r.Credential, verb)
	if r.Resumed {
		head += fmt.Sprintf(" (resumed rotation %d)", r.RotationID)
	}
	head += " in " + roundDur(r.Duration)
	fmt.Fprintln(w, head)
	if r.Outcome != "" {
		fmt.Fprintln(w, "  "+r.Outcome)
	}
	for _, s := range r.Steps {
		fmt.Fprintf(w, "  %-8s %-6s %8s  %s\n", s.Name, s.Status, roundDur(s.Duration), firstLine(s.Detail))
	}
	if len(r.Targets) > 0 {
		fmt.Fprintln(w, "  targets:")
		for _, t := range r.Targets {
			detail := t.Detail
			if t.Error != "" {
				detail = t.Error
			}
			fmt.Fprintf(w, "    %-20s %-10s %-12s attempts=%d %8s  %s\n", t.Name, t.Type, t.State, t.Attempts, roundDur(t.Duration), firstLine(detail))
		}
	}
	for _, s := range r.OldSessions {
		fmt.Fprintf(w, "  still on the old role: pid %d, application %q, from %s, since %s\n", s.PID, s.ApplicationName, orDash(s.ClientAddr), s.BackendStart.Format(time.RFC3339))
	}
	if r.Terminated > 0 {
		fmt.Fprintf(w, "  terminated %d session(s) of the old credential\n", r.Terminated)
	}
	if ret := r.Retirement; ret != nil {
		switch ret.State {
		case engine.RetirementPending:
			fmt.Fprintf(w, "  old role %s: still valid; it %s\n", ret.Role, ret.RetiresWhen)
		case engine.RetirementRetired, engine.RetirementTerminated:
			fmt.Fprintf(w, "  old role %s: %s %s\n", ret.Role, ret.State, ret.Evidence)
		}
	}
	if fw := r.FailureWindow; fw != nil {
		fmt.Fprintf(w, "  failure window %s: new connections with the old string could fail from the password change (%s) until the last reload finished (%s)\n",
			roundDur(fw.Duration), fw.From.Format(time.RFC3339Nano), fw.To.Format(time.RFC3339Nano))
	}
}

func roundDur(d time.Duration) string {
	switch {
	case d <= 0:
		return "0s"
	case d < time.Millisecond:
		return d.Round(time.Microsecond).String()
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	default:
		return d.Round(10 * time.Millisecond).String()
	}
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i] + " …"
	}
	return s
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
