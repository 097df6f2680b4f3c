package cli

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/rotorhq/rotor/internal/engine"
	"github.com/rotorhq/rotor/internal/provider"
)

// SetupRolesOptions are `rotor setup-roles`'s inputs.
type SetupRolesOptions struct {
	F     *Factory
	Names []string
}

// NewCmdSetupRoles builds `rotor setup-roles`.
func NewCmdSetupRoles(f *Factory, runF func(*SetupRolesOptions) error) *cobra.Command {
	opts := &SetupRolesOptions{F: f}
	cmd := &cobra.Command{
		Use:   "setup-roles credential...",
		Short: "Create or repair the owner group and the two login roles of a dual credential",
		Long: `setup-roles makes a dual credential's roles ready: a NOLOGIN owner group
role, the two login roles as its members, and ` + "`ALTER ROLE <login> SET role = <group>`" + `
so that objects either login creates belong to the group. It never drops
anything and never changes the password of an existing role; new login
roles get a random password nobody knows until the first rotation.

On PostgreSQL 17 and later, with a superuser admin, it also installs a
login event trigger that records when each login role last logged in
(schema rotor_login): retirement then counts a consumer that connects per
request, and is gone between two samples of pg_stat_activity, as present.
Elsewhere it says why logins are not recorded; nothing fails.`,
		Args: usageArgs(cobra.MinimumNArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Names = args
			if runF != nil {
				return runF(opts)
			}
			return runSetupRoles(cmd.Context(), opts)
		},
	}
	return cmd
}

func runSetupRoles(ctx context.Context, opts *SetupRolesOptions) error {
	f := opts.F
	cfg, err := f.Config()
	if err != nil {
		return err
	}
	creds, err := selectCredentials(cfg, opts.Names)
	if err != nil {
		return err
	}
	type result struct {
		Credential string   `json:"credential"`
		Group      string   `json:"group"`
		Roles      []string `json:"roles"`
		Changes    []string `json:"changes"`
		// Logins says whether the roles' logins are recorded, and where
		// or why not.
		Logins loginRecord `json:"logins"`
	}
	var results []result
	for _, cr := range creds {
		if cr.Strategy != engine.StrategyDual {
			return &UsageError{fmt.Errorf("%s uses strategy %s; setup-roles prepares the two roles of a dual credential", cr.Name, cr.Strategy)}
		}
		db := ""
		if cr.Conn != nil {
			db = cr.Conn.Database
		}
		resp, err := cr.Provider.EnsureRoles(ctx, provider.EnsureRolesRequest{Group: cr.Group, Logins: cr.Roles, Database: db})
		if err != nil {
			return fmt.Errorf("%s: %w", cr.Name, err)
		}
		r := result{Credential: cr.Name, Group: cr.Group, Roles: cr.Roles, Changes: resp.Changes}
		if rec, ok := cr.Provider.(provider.LoginRecorder); ok {
			lr, err := rec.RecordLogins(ctx, provider.RecordLoginsRequest{Roles: cr.Roles})
			if err != nil {
				return fmt.Errorf("%s: %w", cr.Name, err)
			}
			r.Changes = append(r.Changes, lr.Changes...)
			r.Logins = loginRecord{Recorded: lr.Recorded, Where: lr.Where, Reason: lr.Reason}
		} else {
			r.Logins.Reason = "the " + cr.ProviderType + " provider keeps no record of logins; retirement relies on sampling sessions, drain.grace and drain.quiet"
		}
		results = append(results, r)
		if len(r.Changes) > 0 {
			st, err := f.Store(ctx)
			if err != nil {
				return fmt.Errorf("%s: the roles are set up, but the audit log could not be opened to record it: %w", cr.Name, err)
			}
			if _, err := st.AppendAudit(ctx, auditParams(f, cr.Name, engine.EventRolesSetUp, map[string]any{"group": cr.Group, "roles": cr.Roles, "changes": r.Changes})); err != nil {
				return fmt.Errorf("%s: the roles are set up, but recording it in the audit log failed: %w", cr.Name, err)
			}
		}
	}
	if f.JSON {
		return printJSON(f, results)
	}
	for _, r := range results {
		if len(r.Changes) == 0 {
			fmt.Fprintf(f.IO.Out, "%s: group %s with %s and %s already in place\n", r.Credential, r.Group, r.Roles[0], r.Roles[1])
		} else {
			fmt.Fprintf(f.IO.Out, "%s:\n", r.Credential)
			for _, c := range r.Changes {
				fmt.Fprintf(f.IO.Out, "  + %s\n", c)
			}
		}
		if r.Logins.Recorded {
			fmt.Fprintf(f.IO.Out, "  logins recorded by the %s\n", r.Logins.Where)
		} else {
			fmt.Fprintf(f.IO.Out, "  logins not recorded: %s\n", r.Logins.Reason)
		}
	}
	return nil
}

// loginRecord is setup-roles' account of provider.RecordLoginsResponse.
type loginRecord struct {
	Recorded bool   `json:"recorded"`
	Where    string `json:"where,omitempty"`
	Reason   string `json:"reason,omitempty"`
}
