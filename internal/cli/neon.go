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
	// Split writes each database's keys to a file of its own instead of
	// prefixing them, when a branch has several databases.
	Split bool
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
Vercel integration uses, plus DATABASE_URL_READONLY when the branch has a
read replica. With several databases, each one's keys get its name as a
prefix (SHOP_DATABASE_URL), or with --split a file of their own, so that no
two credentials write one key. Hosts need no configuring: the neon provider
finds the endpoint when it rotates. The method is sql (no connection is
dropped); when the project does not store passwords, the config takes the
admin role's password from $NEON_ADMIN_PASSWORD. Review the file, then
` + "`rotor validate`" + ` and ` + "`rotor rotate`" + `.`,
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
	fl.StringVar(&opts.Method, "method", "", "sql (default: ALTER ROLE over verified TLS, keeps connections) or api (reset_password, drops every connection of the compute)")
	fl.StringVar(&opts.EnvFile, "env-file", ".env", "the dotenv file the credentials are published to")
	fl.StringVarP(&opts.Output, "output", "o", "", "file to write (default: --config, $ROTOR_CONFIG or ./rotor.yaml)")
	fl.StringVar(&opts.APIURL, "api-url", "", "Neon API base URL (default $"+neon.APIHostEnv+" or "+neonapi.DefaultBaseURL+")")
	fl.BoolVar(&opts.Print, "print", false, "print the config to stdout instead of writing it")
	fl.BoolVar(&opts.Force, "force", false, "overwrite an existing file")
	fl.BoolVar(&opts.Split, "split", false, "with several databases, write each one's keys to its own file (<env-file>.<database>) instead of prefixing them")
	return cmd
}

// neonProject is what import learns from the API.
type neonProject struct {
	id, apiURL string
	branch     neonapi.Branch
	endpoint   *neonapi.Endpoint
	// replica is the branch's read replica (a read_only endpoint), if any.
	replica   *neonapi.Endpoint
	databases []neonapi.Database
	roles     []string
	// others are the other branches, with their roles.
	others []otherBranch
	// storesPasswords: Neon gives the admin role's password through the
	// API, so the config needs no admin_password.
	storesPasswords bool
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
	admin := ""
	if !p.storesPasswords {
		admin = "  export NEON_ADMIN_PASSWORD=…   (the database owner's password: the project does not store passwords)\n"
	}
	fmt.Fprintf(f.IO.Out, "wrote %s with %s\n\nnext:\n  export NEON_API_KEY=…   (rotor reads it at every run)\n%s  rotor validate -c %s\n  rotor rotate -c %s --due   (from cron or CI)\n", path, summary, admin, path, path)
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
		if eps[i].Disabled {
			continue
		}
		if p.endpoint == nil || (eps[i].Type == neonapi.EndpointReadWrite && p.endpoint.Type != neonapi.EndpointReadWrite) {
			p.endpoint = &eps[i]
		}
		if eps[i].Type == neonapi.EndpointReadOnly && p.replica == nil {
			p.replica = &eps[i]
		}
	}
	if p.replica == p.endpoint {
		p.replica = nil // no read_write endpoint; the replica is all there is
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
	if p.storesPasswords, err = storesPasswords(ctx, api, opts.ProjectID, p.branch.ID, p.databases[0]); err != nil {
		return nil, fail("ask Neon whether project "+opts.ProjectID+" stores passwords", err)
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

// storesPasswords asks for the database owner's connection string, as the
// provider will for its admin connection: a project with store_passwords
// off answers 412, or a URI without a password. The answer's password is
// dropped at once.
func storesPasswords(ctx context.Context, api *neonapi.Client, project, branch string, db neonapi.Database) (bool, error) {
	uri, err := api.ConnectionURI(ctx, project, neonapi.ConnectionURIParams{BranchID: branch, Database: db.Name, Role: db.OwnerName})
	if errors.Is(err, neonapi.ErrPrecondition) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	c, err := connstr.Parse(uri.Reveal())
	if err != nil {
		return false, nil
	}
	return !c.Password.IsZero(), nil
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

// keyNames are the value names a credential's target gets: Neon's own,
// with the database's name as a prefix when several databases share one
// file.
func keyNames(prefix string) (pooled, direct, replica string) {
	return prefix + "DATABASE_URL", prefix + "DATABASE_URL_UNPOOLED", prefix + "DATABASE_URL_READONLY"
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
		if pooled := neon.PooledHostOf(*p.endpoint); pooled != "" {
			w("#   pooled  %s  (PgBouncer, transaction mode)\n", pooled)
		}
		if p.replica != nil {
			w("#   replica %s  (read replica %s, read-only: {{.ReplicaURL}})\n", p.replica.Host, p.replica.ID)
		}
	}
	w("#\n# Needs in the environment:\n#   NEON_API_KEY  a Neon API key (Account settings → API keys)\n")
	if !p.storesPasswords {
		w("#   NEON_ADMIN_PASSWORD  the database owner's password. This project does not store\n")
		w("#                 role passwords (store_passwords is off), so rotor cannot ask Neon\n")
		w("#                 for it. When a credential rotates the owner itself, rotor keeps the\n")
		w("#                 new password in its store and logs in with it from then on; the\n")
		w("#                 variable is needed for the first rotation only.\n")
	}
	w("#\n#   rotor validate\n#   rotor plan\n#   rotor rotate --due        # from cron or CI\n")
	several := len(p.databases) > 1
	if several && !opts.Split {
		w("#\n# The branch has %d databases: each credential's keys start with its\n# database's name, so that no two credentials write one key.\n", len(p.databases))
	}
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
			w("      # api: Neon generates the password (reset_password) and, when the reset\n      # applies, drops every connection to the compute, of every role. sql\n      # (the default) keeps them (see docs/neon.md).\n")
		} else {
			w("      # sql: rotor sends the new password to Neon in plaintext, as Neon\n      # requires (it refuses hashed passwords), in an ALTER ROLE of its own over\n      # TLS that verifies the server, as %s; no connection is dropped.\n", yamlString(db.OwnerName))
		}
		w("      method: %s\n", method)
		if !p.storesPasswords {
			w("      # The project stores no passwords: the admin role's comes from here.\n")
			w("      admin_password: ${NEON_ADMIN_PASSWORD}\n")
		}
		if role == db.OwnerName {
			w("    # The owner is also the role rotor logs in as: rotor switches to each\n    # new password itself and keeps it in its store.\n")
		}
		w("    # single: one role, its password changed in place. For zero downtime,\n    # use strategy: dual with two roles (see `rotor setup-roles`).\n")
		w("    strategy: single\n    role: %s\n", yamlString(role))
		w("    schedule:\n      every: 30d\n")
		envFile, prefix := opts.EnvFile, ""
		switch {
		case several && opts.Split:
			envFile = opts.EnvFile + "." + name
		case several:
			prefix = envPrefix(name) + "_"
		}
		pooledKey, directKey, replicaKey := keyNames(prefix)
		w("    targets:\n      - name: env\n        type: dotenv\n        path: %s\n        values:\n", yamlString(envFile))
		w("          # The names Neon's Vercel integration sets.\n")
		w("          %s: \"{{.PooledURL}}\"\n          %s: \"{{.DirectURL}}\"\n", pooledKey, directKey)
		if p.replica != nil {
			w("          # The read replica (read-only).\n          %s: \"{{.ReplicaURL}}\"\n", replicaKey)
		}
	}
	return b.String(), fmt.Sprintf("%d credential(s): %s", len(names), strings.Join(names, ", "))
}

// envPrefix makes a credential name into a key prefix (shop-db → SHOP_DB).
func envPrefix(name string) string {
	var sb strings.Builder
	for _, r := range strings.ToUpper(name) {
		if (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9') {
			sb.WriteRune(r)
		} else {
			sb.WriteByte('_')
		}
	}
	return sb.String()
}

func orNone(s []string) string {
	if len(s) == 0 {
		return "(none)"
	}
	return strings.Join(s, ", ")
}
