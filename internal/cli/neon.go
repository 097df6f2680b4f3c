package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/rotorhq/rotor/internal/atomicfile"
	"github.com/rotorhq/rotor/internal/connstr"
	"github.com/rotorhq/rotor/internal/provider/neon"
	"github.com/rotorhq/rotor/internal/provider/neon/neonapi"
	"github.com/rotorhq/rotor/internal/secret"
)

// NeonImportOptions are `rotor neon import`'s inputs.
type NeonImportOptions struct {
	F         *Factory
	ProjectID string
	Branch    string
	Databases []string
	Role      string
	Method    string
	EnvFile   string
	Output    string
	APIURL    string
	Print     bool
	Force     bool
}

// NewCmdNeon builds `rotor neon` and its subcommands.
func NewCmdNeon(f *Factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "neon",
		Short: "Work with Neon projects",
		Args:  usageArgs(cobra.NoArgs),
	}
	cmd.AddCommand(newCmdNeonImport(f, nil))
	return cmd
}

func newCmdNeonImport(f *Factory, runF func(context.Context, *NeonImportOptions) error) *cobra.Command {
	opts := &NeonImportOptions{F: f}
	cmd := &cobra.Command{
		Use:   "import --project-id ID",
		Short: "Write a rotor config for a Neon project's databases, roles and branches",
		Long: `import reads a Neon project through the Neon API (key from $NEON_API_KEY) and
writes a rotor config with one credential per database of the default branch:
its owner role (or --role), the branches that hold it, and a .env target with
DATABASE_URL (pooled) and DATABASE_URL_UNPOOLED (direct), the names Neon's
Vercel integration uses. Hosts need no configuring: the neon provider finds
the endpoint when it rotates. Review the file, then ` + "`rotor validate`" + ` and
` + "`rotor rotate`" + `.`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			if opts.ProjectID == "" {
				return &UsageError{errors.New("--project-id is required; copy it from the Neon console (Project settings)")}
			}
			if opts.Method != "" && opts.Method != neon.MethodSQL && opts.Method != neon.MethodAPI {
				return &UsageError{fmt.Errorf("--method %q: use sql or api", opts.Method)}
			}
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return runNeonImport(cmd.Context(), opts)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&opts.ProjectID, "project-id", "", "the Neon project id (required)")
	fl.StringVar(&opts.Branch, "branch", "", "branch whose databases to import (default: the project's default branch)")
	fl.StringSliceVar(&opts.Databases, "database", nil, "databases to import (default: all of the branch's)")
	fl.StringVar(&opts.Role, "role", "", "role whose password to rotate (default: each database's owner)")
	fl.StringVar(&opts.Method, "method", "", "sql or api (default: api for an owner role, which is also the admin, else sql)")
	fl.StringVar(&opts.EnvFile, "env-file", ".env", "the dotenv file the credentials are published to")
	fl.StringVarP(&opts.Output, "output", "o", "", "file to write (default: --config, $ROTOR_CONFIG or ./rotor.yaml)")
	fl.StringVar(&opts.APIURL, "api-url", "", "Neon API base URL (default $"+neon.APIHostEnv+" or "+neonapi.DefaultBaseURL+")")
	fl.BoolVar(&opts.Print, "print", false, "print the config to stdout instead of writing it")
	fl.BoolVar(&opts.Force, "force", false, "overwrite an existing file")
	return cmd
}

// neonProject is what import learns from the API.
type neonProject struct {
	id, apiURL string
	branch     neonapi.Branch
	endpoint   *neonapi.Endpoint
	databases  []neonapi.Database
	roles      []string
	// others are the other branches, with their roles.
	others []otherBranch
}

type otherBranch struct {
	branch neonapi.Branch
	roles  []string
}

func runNeonImport(ctx context.Context, opts *NeonImportOptions) error {
	f := opts.F
	key, _ := f.LookupEnv("NEON_API_KEY")
	if key == "" {
		return &UsageError{errors.New("NEON_API_KEY is not set; create an API key in the Neon console (Account settings → API keys) and export NEON_API_KEY")}
	}
	apiURL := opts.APIURL
	if apiURL == "" {
		apiURL, _ = f.LookupEnv(neon.APIHostEnv)
	}
	api := &neonapi.Client{BaseURL: apiURL, APIKey: secret.New(key), HTTP: f.HTTPClient, Now: f.Now, UserAgent: "rotor neon import"}
	p, err := readNeonProject(ctx, api, opts)
	if err != nil {
		return err
	}
	p.apiURL = apiURL
	text, summary := neonConfig(p, opts)
	if opts.Print {
		_, err := fmt.Fprint(f.IO.Out, text)
		return err
	}
	path := opts.Output
	if path == "" {
		path = f.configPath()
	}
	if _, err := os.Stat(path); err == nil && !opts.Force {
		return &UsageError{fmt.Errorf("%s already exists; pass --force to overwrite it, -o to write elsewhere, or --print to see the config", path)}
	}
	if _, err := atomicfile.WriteFile(path, []byte(text), 0o600); err != nil {
		return err
	}
	fmt.Fprintf(f.IO.Out, "wrote %s with %s\n\nnext:\n  export NEON_API_KEY=…   (rotor reads it at every run)\n  rotor validate -c %s\n  rotor rotate -c %s --due   (from cron or CI)\n", path, summary, path, path)
	return nil
}

func readNeonProject(ctx context.Context, api *neonapi.Client, opts *NeonImportOptions) (*neonProject, error) {
	fail := func(what string, err error) error {
		var apiErr *neonapi.Error
		if errors.As(err, &apiErr) && apiErr.Status == 401 {
			return fmt.Errorf("%s: %w; check NEON_API_KEY", what, err)
		}
		if errors.As(err, &apiErr) && apiErr.Status == 404 {
			return fmt.Errorf("%s: %w; check --project-id", what, err)
		}
		return fmt.Errorf("%s: %w", what, err)
	}
	p := &neonProject{id: opts.ProjectID}
	branches, err := api.ListBranches(ctx, opts.ProjectID)
	if err != nil {
		return nil, fail("list the branches of project "+opts.ProjectID, err)
	}
	found := false
	for _, b := range branches {
		if (opts.Branch == "" && (b.Default || b.Primary)) || (opts.Branch != "" && (b.ID == opts.Branch || b.Name == opts.Branch)) {
			p.branch, found = b, true
			break
		}
	}
	if !found {
		names := make([]string, len(branches))
		for i, b := range branches {
			names[i] = b.Name
		}
		if opts.Branch == "" {
			return nil, fmt.Errorf("project %s reports no default branch (branches: %s); pass --branch", opts.ProjectID, strings.Join(names, ", "))
		}
		return nil, &UsageError{fmt.Errorf("project %s has no branch %q (branches: %s)", opts.ProjectID, opts.Branch, strings.Join(names, ", "))}
	}
	eps, err := api.ListBranchEndpoints(ctx, opts.ProjectID, p.branch.ID)
	if err != nil {
		return nil, fail("list the endpoints of branch "+p.branch.Name, err)
	}
	for i := range eps {
		if p.endpoint == nil || (eps[i].Type == neonapi.EndpointReadWrite && p.endpoint.Type != neonapi.EndpointReadWrite) {
			p.endpoint = &eps[i]
		}
	}
	dbs, err := api.ListDatabases(ctx, opts.ProjectID, p.branch.ID)
	if err != nil {
		return nil, fail("list the databases of branch "+p.branch.Name, err)
	}
	for _, d := range dbs {
		if len(opts.Databases) == 0 || slices.Contains(opts.Databases, d.Name) {
			p.databases = append(p.databases, d)
		}
	}
	for _, want := range opts.Databases {
		if !slices.ContainsFunc(dbs, func(d neonapi.Database) bool { return d.Name == want }) {
			return nil, &UsageError{fmt.Errorf("branch %s has no database %q", p.branch.Name, want)}
		}
	}
	if len(p.databases) == 0 {
		return nil, fmt.Errorf("branch %s has no databases; create one in the Neon console first", p.branch.Name)
	}
	if p.roles, err = roleNames(ctx, api, opts.ProjectID, p.branch.ID); err != nil {
		return nil, fail("list the roles of branch "+p.branch.Name, err)
	}
	if opts.Role != "" && !slices.Contains(p.roles, opts.Role) {
		return nil, &UsageError{fmt.Errorf("branch %s has no role %q (roles: %s)", p.branch.Name, opts.Role, strings.Join(p.roles, ", "))}
	}
	for _, b := range branches {
		if b.ID == p.branch.ID {
			continue
		}
		roles, err := roleNames(ctx, api, opts.ProjectID, b.ID)
		if err != nil {
			return nil, fail("list the roles of branch "+b.Name, err)
		}
		p.others = append(p.others, otherBranch{branch: b, roles: roles})
	}
	return p, nil
}

func roleNames(ctx context.Context, api *neonapi.Client, project, branch string) ([]string, error) {
	roles, err := api.ListRoles(ctx, project, branch)
	if err != nil {
		return nil, err
	}
	names := make([]string, len(roles))
	for i, r := range roles {
		names[i] = r.Name
	}
	slices.Sort(names)
	return names, nil
}

var yamlPlain = regexp.MustCompile(`^[A-Za-z0-9_./][A-Za-z0-9_./:@+-]*$`)

// yamlString writes s as a YAML scalar, quoted unless plainly safe.
func yamlString(s string) string {
	if yamlPlain.MatchString(s) && !strings.HasSuffix(s, ":") &&
		!slices.Contains([]string{"true", "false", "yes", "no", "on", "off", "null", "all", "~"}, strings.ToLower(s)) {
		return s
	}
	return strconv.Quote(s)
}

var unsafeNameChars = regexp.MustCompile(`[^A-Za-z0-9_.-]+`)

// credentialName derives a valid, unique credential name from a database
// name.
func credentialName(db string, taken map[string]bool) string {
	name := strings.Trim(unsafeNameChars.ReplaceAllString(db, "-"), "-._")
	if name == "" {
		name = "neon-db"
	}
	if len(name) > 50 {
		name = name[:50]
	}
	base := name
	for i := 2; taken[name]; i++ {
		name = fmt.Sprintf("%s-%d", base, i)
	}
	taken[name] = true
	return name
}

func neonConfig(p *neonProject, opts *NeonImportOptions) (text, summary string) {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	w("# rotor.yaml for Neon project %s, written by `rotor neon import`.\n#\n", p.id)
	w("# Branches (a role's password is per branch: a child branch keeps the old\n# password after a rotation on its parent unless it is listed in branches:):\n")
	w("#   %s (%s), default — roles: %s\n", p.branch.Name, p.branch.ID, orNone(p.roles))
	for _, o := range p.others {
		w("#   %s (%s) — roles: %s\n", o.branch.Name, o.branch.ID, orNone(o.roles))
	}
	if p.endpoint != nil {
		w("#\n# Consumers reach %s through endpoint %s; rotor finds it when it rotates:\n", p.branch.Name, p.endpoint.ID)
		w("#   direct  %s\n", p.endpoint.Host)
		if pooled, err := connstr.PooledHost(p.endpoint.Host); err == nil {
			w("#   pooled  %s  (PgBouncer, transaction mode)\n", pooled)
		}
	}
	w("#\n# Needs in the environment:\n#   NEON_API_KEY  a Neon API key (Account settings → API keys)\n#\n")
	w("#   rotor validate\n#   rotor plan\n#   rotor rotate --due        # from cron or CI\n")
	w("version: 1\nstate: .rotor/state.db\nkey_file: .rotor/key\n\ncredentials:\n")
	taken := map[string]bool{}
	var names []string
	for _, db := range p.databases {
		role := opts.Role
		if role == "" {
			role = db.OwnerName
		}
		method := opts.Method
		if method == "" {
			method = neon.MethodSQL
			if role == db.OwnerName {
				method = neon.MethodAPI
			}
		}
		name := credentialName(db.Name, taken)
		names = append(names, fmt.Sprintf("%s (role %s, method %s)", name, role, method))
		var holders []string
		for _, o := range p.others {
			if slices.Contains(o.roles, role) {
				holders = append(holders, o.branch.Name)
			}
		}
		w("  %s:\n    provider:\n      type: neon\n      api_key: ${NEON_API_KEY}\n", name)
		if p.apiURL != "" {
			w("      api_url: %s\n", yamlString(p.apiURL))
		}
		w("      project_id: %s\n      database: %s\n", yamlString(p.id), yamlString(db.Name))
		if len(holders) > 0 {
			w("      # Also on %s, where the old password would keep working: list them\n      # here too (or write branches: all) to rotate them in the same run.\n", strings.Join(holders, ", "))
		}
		ref := p.branch.Name
		if ref == "all" {
			ref = p.branch.ID // `all` means every branch, not one named so
		}
		w("      branches: [%s]\n", yamlString(ref))
		if method == neon.MethodAPI {
			w("      # api: Neon generates the password (reset_password) and drops the\n      # compute's open connections when it applies. sql keeps them, but the\n      # admin role (here the owner itself) cannot change its own password\n      # over SQL without losing its stored one, and Neon documents that\n      # ALTER ROLE takes plaintext passwords only (see docs/neon.md).\n")
		} else {
			w("      # sql: ALTER ROLE with a SCRAM verifier as the owner %s; no connection\n      # is dropped. If Neon refuses the verifier, switch to method: api.\n", yamlString(db.OwnerName))
		}
		w("      method: %s\n", method)
		w("    # single: one role, its password changed in place. For zero downtime,\n    # use strategy: dual with two roles (see `rotor setup-roles`).\n")
		w("    strategy: single\n    role: %s\n", yamlString(role))
		w("    schedule:\n      every: 30d\n")
		w("    targets:\n      - name: env\n        type: dotenv\n        path: %s\n        values:\n", yamlString(opts.EnvFile))
		w("          # The names Neon's Vercel integration sets.\n")
		w("          DATABASE_URL: \"{{.PooledURL}}\"\n          DATABASE_URL_UNPOOLED: \"{{.DirectURL}}\"\n")
	}
	return b.String(), fmt.Sprintf("%d credential(s): %s", len(names), strings.Join(names, ", "))
}

func orNone(s []string) string {
	if len(s) == 0 {
		return "(none)"
	}
	return strings.Join(s, ", ")
}
