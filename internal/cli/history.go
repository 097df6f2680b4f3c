package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/rotorhq/rotor/internal/config"
	"github.com/rotorhq/rotor/internal/engine"
	"github.com/rotorhq/rotor/internal/store"
)

// HistoryOptions are `rotor history`'s inputs.
type HistoryOptions struct {
	F     *Factory
	Name  string
	Limit int
	// Since keeps events at or after it; Result those that count as it
	// (engine.Results).
	Since  time.Time
	Result string
}

// NewCmdHistory builds `rotor history`.
func NewCmdHistory(f *Factory, runF func(*HistoryOptions) error) *cobra.Command {
	opts := &HistoryOptions{F: f}
	var since, credential string
	cmd := &cobra.Command{
		Use:   "history [credential]",
		Short: "Show the audit trail: rotations, resumes, failures, retries, deliveries, retirements (never secrets)",
		Long: `History lists the audit trail, newest first: each rotation's start, the
deliveries to its targets and their retries, the failure of a step, the run
that resumed it (and whether the one before had died), the switch, the
retirement of an old role, abandoned and rolled-back rotations, and
setup-roles. Each event counts as one result, which --result filters by:
` + strings.Join(engine.Results, ", ") + `.`,
		Example: `  rotor history app-db
  rotor history --since 7d --result failed
  rotor history --credential app-db --since 2025-01-06 --json`,
		Args: usageArgs(cobra.MaximumNArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			switch {
			case len(args) == 1 && credential != "" && credential != args[0]:
				return &UsageError{fmt.Errorf("name the credential once: %s or --credential %s", args[0], credential)}
			case len(args) == 1:
				opts.Name = args[0]
			default:
				opts.Name = credential
			}
			if opts.Limit < 1 {
				return &UsageError{fmt.Errorf("--limit %d: must be at least 1", opts.Limit)}
			}
			if since != "" {
				t, err := config.ParseSince(since, f.Now())
				if err != nil {
					return &UsageError{fmt.Errorf("--since %w", err)}
				}
				opts.Since = t
			}
			if opts.Result != "" && !slices.Contains(engine.Results, opts.Result) {
				return &UsageError{fmt.Errorf("--result %q: use one of %s", opts.Result, strings.Join(engine.Results, ", "))}
			}
			if runF != nil {
				return runF(opts)
			}
			return runHistory(cmd.Context(), opts)
		},
	}
	cmd.Flags().IntVarP(&opts.Limit, "limit", "n", 50, "show at most this many events")
	cmd.Flags().StringVar(&credential, "credential", "", "only this credential's events (as the argument)")
	cmd.Flags().StringVar(&since, "since", "", "only events since then: a duration back from now (90m, 24h, 7d) or a time (2025-01-06, 2025-01-06T15:04:05Z)")
	cmd.Flags().StringVar(&opts.Result, "result", "", "only events with this result: "+strings.Join(engine.Results, ", "))
	return cmd
}

// HistoryEvent is one audit event as `rotor history --json` prints it.
type HistoryEvent = engine.HistoryEvent

func runHistory(ctx context.Context, opts *HistoryOptions) error {
	f := opts.F
	f.ReadOnly, f.Offline = true, true
	cfg, err := f.Config()
	if err != nil {
		return err
	}
	if opts.Name != "" {
		if _, err := cfg.Credential(opts.Name); err != nil {
			return &UsageError{err}
		}
	}
	st, err := f.Store(ctx)
	if err != nil {
		return err
	}
	p := store.ListAuditParams{Credential: opts.Name, Since: opts.Since, Limit: opts.Limit}
	if opts.Result != "" {
		p.Events = engine.EventsWithResult(opts.Result)
	}
	events, err := st.ListAudit(ctx, p)
	if err != nil {
		return fmt.Errorf("read the audit trail: %w", err)
	}
	out := make([]HistoryEvent, 0, len(events))
	for _, ev := range events {
		out = append(out, engine.HistoryEventOf(ev))
	}
	if f.JSON {
		return printJSON(f, out)
	}
	if len(out) == 0 {
		fmt.Fprintln(f.IO.Out, "no events yet")
		return nil
	}
	for _, ev := range out {
		printHistoryEvent(f.IO.Out, ev)
	}
	return nil
}

func printHistoryEvent(w io.Writer, ev HistoryEvent) {
	at, _ := time.Parse(time.RFC3339Nano, ev.At)
	rot := "-"
	if ev.RotationID != 0 {
		rot = "#" + strconv.FormatInt(ev.RotationID, 10)
	}
	fmt.Fprintf(w, "%s  %-14s %-5s %-28s %-9s %s\n", at.Format(time.RFC3339), ev.Credential, rot, ev.Event, orDash(ev.Result), detailLine(ev.Detail))
}

// detailLine shows a detail object as key=value pairs in key order, text
// with spaces quoted, on one line.
func detailLine(raw json.RawMessage) string {
	var obj map[string]any
	if err := json.Unmarshal(raw, &obj); err != nil {
		return firstLine(string(raw))
	}
	keys := make([]string, 0, len(obj))
	for k := range obj {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		var v string
		switch x := obj[k].(type) {
		case string:
			v = x
			if strings.ContainsAny(v, " \t\n\"=") || v == "" {
				v = strconv.Quote(firstLine(v))
			}
		default:
			b, _ := json.Marshal(x)
			v = string(b)
		}
		parts = append(parts, k+"="+v)
	}
	return strings.Join(parts, " ")
}
