package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"

	"github.com/rotorhq/rotor/internal/config"
	"github.com/rotorhq/rotor/internal/connstr"
	"github.com/rotorhq/rotor/internal/secret"
	"github.com/rotorhq/rotor/internal/store"
	"github.com/rotorhq/rotor/internal/store/storecopy"
)

// NewCmdState builds `rotor state` and its subcommands.
func NewCmdState(f *Factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "state",
		Short: "Look at the state store, or move it (SQLite → PostgreSQL)",
		Long: `The state store holds rotor's memory: the sealed versions, the journal of
every rotation, the deliveries, the audit trail and the leases. It is an
SQLite file beside the config by default, or a schema of a PostgreSQL
database that every machine running rotor shares (CI jobs, CronJobs,
teammates).

These commands need the config's state: and key_file: (or --state,
ROTOR_STATE_URL and ROTOR_KEY), nothing else: the databases' and targets'
secrets may be absent.`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			return &UsageError{errors.New("name a subcommand: info or migrate (see `rotor state --help`)")}
		},
	}
	cmd.AddCommand(NewCmdStateInfo(f, nil), NewCmdStateMigrate(f, nil))
	return cmd
}

// StateInfoOptions are `rotor state info`'s inputs.
type StateInfoOptions struct {
	F *Factory
}

// NewCmdStateInfo builds `rotor state info`.
func NewCmdStateInfo(f *Factory, runF func(*StateInfoOptions) error) *cobra.Command {
	opts := &StateInfoOptions{F: f}
	return &cobra.Command{
		Use:   "info",
		Short: "Which store, its schema version and id, the credentials it holds, and the key's fingerprint",
		Long: `Info shows which store rotor uses (driver and location, never a password),
its schema version, the store's id (the one rotor marks the roles it sets
with), every credential the store holds with its current version and last
rotation, and the encryption key's fingerprint — an HMAC that tells two keys
apart and reveals nothing of the key — with how many of the store's sealed
versions it opens.`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			if runF != nil {
				return runF(opts)
			}
			return runStateInfo(cmd.Context(), opts)
		},
	}
}

// StateInfo is what `rotor state info` reports.
type StateInfo struct {
	Driver        string               `json:"driver"`
	Location      string               `json:"location"`
	SchemaVersion int                  `json:"schema_version"`
	StoreID       string               `json:"store_id"`
	Key           KeyInfo              `json:"key"`
	Credentials   []StateCredentialRow `json:"credentials"`
}

// KeyInfo describes the encryption key without revealing it.
type KeyInfo struct {
	// Fingerprint is "" when no key was found (Error says why).
	Fingerprint string `json:"fingerprint,omitempty"`
	Source      string `json:"source,omitempty"`
	Error       string `json:"error,omitempty"`
	// Sealed is how many versions of the store hold a sealed secret;
	// Opens how many of them the key opens.
	Sealed int `json:"sealed_versions"`
	Opens  int `json:"opens"`
}

// StateCredentialRow is one credential the store holds.
type StateCredentialRow struct {
	Name        string     `json:"name"`
	Version     int64      `json:"current_version,omitempty"`
	Role        string     `json:"role,omitempty"`
	ActivatedAt *time.Time `json:"activated_at,omitempty"`
	Versions    int        `json:"versions"`
	Rotations   int        `json:"rotations"`
	Last        *StateRot  `json:"last_rotation,omitempty"`
}

// StateRot is a credential's newest rotation.
type StateRot struct {
	ID         int64        `json:"id"`
	Status     store.Status `json:"status"`
	Step       string       `json:"step,omitempty"`
	StartedAt  time.Time    `json:"started_at"`
	FinishedAt *time.Time   `json:"finished_at,omitempty"`
}

func runStateInfo(ctx context.Context, opts *StateInfoOptions) error {
	f := opts.F
	loc, err := stateLocation(f)
	if err != nil {
		return err
	}
	st, err := openExistingStore(ctx, loc.State)
	if err != nil {
		return err
	}
	defer st.Close()
	in, err := st.Info(ctx)
	if err != nil {
		return err
	}
	out := &StateInfo{Driver: in.Driver, Location: in.Location, SchemaVersion: in.SchemaVersion, StoreID: in.ID, Credentials: []StateCredentialRow{}}

	versions, err := st.ListVersions(ctx, store.ListVersionsParams{})
	if err != nil {
		return err
	}
	rotations, err := st.ListRotations(ctx, store.ListRotationsParams{})
	if err != nil {
		return err
	}
	rows := map[string]*StateCredentialRow{}
	var names []string
	row := func(name string) *StateCredentialRow {
		r, ok := rows[name]
		if !ok {
			r = &StateCredentialRow{Name: name}
			rows[name] = r
			names = append(names, name)
		}
		return r
	}
	for _, v := range versions {
		r := row(v.Credential)
		r.Versions++
		if v.Stage == store.StageCurrent {
			at := v.ActivatedAt
			r.Version, r.Role, r.ActivatedAt = v.Seq, v.Role, &at
		}
	}
	for _, rot := range rotations { // newest first
		r := row(rot.Credential)
		r.Rotations++
		if r.Last == nil {
			r.Last = &StateRot{ID: rot.ID, Status: rot.Status, Step: rot.Step, StartedAt: rot.StartedAt}
			if !rot.FinishedAt.IsZero() {
				at := rot.FinishedAt
				r.Last.FinishedAt = &at
			}
		}
	}
	slices.Sort(names)
	for _, n := range names {
		out.Credentials = append(out.Credentials, *rows[n])
	}

	out.Key = keyInfo(f, loc.KeyFile, versions)
	if f.JSON {
		return printJSON(f, out)
	}
	printStateInfo(f.IO.Out, out)
	return nil
}

// keyInfo loads the key (never creating one) and tries it on every
// sealed version.
func keyInfo(f *Factory, keyFile string, versions []*store.Version) KeyInfo {
	var ki KeyInfo
	for _, v := range versions {
		if v.Sealed != nil {
			ki.Sealed++
		}
	}
	sealer, source, err := loadSealer(f, keyFile)
	if err != nil {
		ki.Error = err.Error()
		return ki
	}
	ki.Fingerprint, ki.Source = keyFingerprint(sealer), source
	for _, v := range versions {
		if v.Sealed != nil && openVersion(sealer, v) == nil {
			ki.Opens++
		}
	}
	return ki
}

func printStateInfo(w io.Writer, in *StateInfo) {
	fmt.Fprintf(w, "store         %s %s\n", in.Driver, in.Location)
	fmt.Fprintf(w, "schema        version %d\n", in.SchemaVersion)
	fmt.Fprintf(w, "store id      %s\n", in.StoreID)
	switch k := in.Key; {
	case k.Error != "":
		fmt.Fprintf(w, "key           none: %s\n", k.Error)
	default:
		fmt.Fprintf(w, "key           %s (%s); opens %d of %d sealed version(s)\n", k.Fingerprint, k.Source, k.Opens, k.Sealed)
		if k.Opens < k.Sealed {
			fmt.Fprintln(w, "  ! this key does not open every sealed version: it is not the key the store was sealed with; find that one (ROTOR_KEY or the key file)")
		}
	}
	if len(in.Credentials) == 0 {
		fmt.Fprintln(w, "credentials   none yet (nothing rotated with this store)")
		return
	}
	fmt.Fprintf(w, "credentials   %d\n", len(in.Credentials))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  NAME\tVERSION\tROLE\tCURRENT SINCE\tLAST ROTATION")
	for _, c := range in.Credentials {
		version, role, since := "-", "-", "-"
		if c.ActivatedAt != nil {
			version, role, since = fmt.Sprint(c.Version), c.Role, c.ActivatedAt.UTC().Format(time.RFC3339)
		}
		last := "-"
		if r := c.Last; r != nil {
			last = fmt.Sprintf("#%d %s %s", r.ID, r.Status, r.StartedAt.UTC().Format(time.RFC3339))
			if r.Status == store.StatusActive {
				last = fmt.Sprintf("#%d unfinished at step %s", r.ID, orDash(r.Step))
			}
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\n", c.Name, version, role, since, last)
	}
	tw.Flush()
}

// StateMigrateOptions are `rotor state migrate`'s inputs.
type StateMigrateOptions struct {
	F *Factory
	// To is the target store's location, without a password; ToEnv names
	// an environment variable holding it, password and all.
	To    string
	ToEnv string
}

// NewCmdStateMigrate builds `rotor state migrate`.
func NewCmdStateMigrate(f *Factory, runF func(*StateMigrateOptions) error) *cobra.Command {
	opts := &StateMigrateOptions{F: f}
	cmd := &cobra.Command{
		Use:   "migrate --to URL | --to-env VAR",
		Short: "Copy the state store into an empty one (SQLite → PostgreSQL) and verify the copy",
		Long: `Migrate copies the store rotor uses now (the config's state:, --state or
ROTOR_STATE_URL) into an empty store — every version with its sealed secret
byte for byte (the same key opens it), every rotation, journal step,
delivery, audit event and lease, and the store's id, so the marks rotor left
on the roles stay valid. Then it reads the copy back and verifies it: each
table's row count and SHA-256 digest, every sealed version opened with the
key, and the source re-read to make sure nothing wrote to it meanwhile.

The target must be empty (a new PostgreSQL schema is). No rotation may run
while it copies: stop the scheduled jobs that use the old store first.

A password never goes on the command line, where every user of the machine
can read it: give --to without one and the password in PGPASSWORD or
~/.pgpass, or put the whole URL in an environment variable and name it with
--to-env.`,
		Example: `  PGPASSWORD=… rotor state migrate --to 'postgres://rotor_state@db.internal/rotor?sslmode=verify-full'
  NEW_STATE_URL=postgres://rotor_state:…@db.internal/rotor rotor state migrate --to-env NEW_STATE_URL`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			switch {
			case opts.To == "" && opts.ToEnv == "":
				return &UsageError{errors.New("say where to copy the store: --to postgres://USER@HOST/DB (password in PGPASSWORD) or --to-env VAR")}
			case opts.To != "" && opts.ToEnv != "":
				return &UsageError{errors.New("--to and --to-env name the target twice; give one")}
			case opts.To != "" && holdsPassword(opts.To):
				return &UsageError{errors.New("--to holds a password, and a command line can be read by every user of this machine; " +
					"pass the URL without it and set PGPASSWORD, or put the whole URL in an environment variable and pass --to-env VAR")}
			}
			if runF != nil {
				return runF(opts)
			}
			return runStateMigrate(cmd.Context(), opts)
		},
	}
	cmd.Flags().StringVar(&opts.To, "to", "", "the target store: postgres://USER@HOST:PORT/DB?sslmode=verify-full (no password), or a new SQLite file path")
	cmd.Flags().StringVar(&opts.ToEnv, "to-env", "", "the environment variable holding the target store's URL, password included")
	return cmd
}

// StoreRef names a store without a password.
type StoreRef struct {
	Driver        string `json:"driver"`
	Location      string `json:"location"`
	SchemaVersion int    `json:"schema_version"`
}

func storeRef(in *store.Info) StoreRef {
	return StoreRef{Driver: in.Driver, Location: in.Location, SchemaVersion: in.SchemaVersion}
}

// MigrateReport is what `rotor state migrate --json` prints.
type MigrateReport struct {
	From    StoreRef          `json:"from"`
	To      StoreRef          `json:"to"`
	StoreID string            `json:"store_id"`
	Tables  []storecopy.Table `json:"tables"`
	Sealed  int               `json:"sealed_versions_opened"`
	Key     string            `json:"key_fingerprint,omitempty"`
	// State is what to write as the config's state: now (no password).
	State string   `json:"state"`
	Next  []string `json:"next"`
}

func runStateMigrate(ctx context.Context, opts *StateMigrateOptions) error {
	f := opts.F
	target := opts.To
	if opts.ToEnv != "" {
		target = f.getenv(opts.ToEnv)
		if target == "" {
			return &UsageError{fmt.Errorf("--to-env %s: the variable is not set or empty; export the target store's URL in it", opts.ToEnv)}
		}
	}
	loc, err := stateLocation(f)
	if err != nil {
		return err
	}
	if sameLocation(loc.State, target) {
		return &UsageError{errors.New("the target is the store rotor uses now; name another one")}
	}
	from, err := openExistingStore(ctx, loc.State)
	if err != nil {
		return err
	}
	defer from.Close()
	to, err := OpenStore(ctx, target)
	if err != nil {
		return fmt.Errorf("open the target store: %w", err)
	}
	defer to.Close()
	fromInfo, err := from.Info(ctx)
	if err != nil {
		return err
	}
	toInfo, err := to.Info(ctx)
	if err != nil {
		return err
	}
	if fromInfo.Driver == toInfo.Driver && fromInfo.Location == toInfo.Location {
		return &UsageError{fmt.Errorf("the target %s is the store rotor uses now; name another one", toInfo.Location)}
	}

	// The key is needed only when there is something sealed to check.
	var (
		sealer  *secret.Sealer
		keyErr  error
		keyRead bool
	)
	check := func(v *store.Version) error {
		if !keyRead {
			keyRead = true
			sealer, _, keyErr = loadSealer(f, loc.KeyFile)
		}
		if keyErr != nil {
			return fmt.Errorf("the copy cannot be checked without the key: %w", keyErr)
		}
		return openVersion(sealer, v)
	}
	rep, err := storecopy.Copy(ctx, from, to, storecopy.Options{Now: f.Now(), CheckSealed: check})
	if errors.Is(err, store.ErrNotEmpty) {
		return fmt.Errorf("%w; migrate copies only into an empty store: name a new schema (?schema=NAME) or a new database", err)
	}
	if err != nil {
		return err
	}
	out := &MigrateReport{From: storeRef(fromInfo), To: storeRef(toInfo), StoreID: rep.ID, Tables: rep.Tables, Sealed: rep.Sealed, State: withoutPassword(target)}
	if sealer != nil {
		out.Key = keyFingerprint(sealer)
	}
	point := "point every rotor at the new store: write `state: " + out.State + "` in " + configName(f)
	if toInfo.Driver == "postgres" {
		point += " (the password stays out of the file: PGPASSWORD or ~/.pgpass), or set ROTOR_STATE_URL where the URL must carry its password (a CI secret, a Kubernetes Secret)"
	}
	switch loc.From {
	case "ROTOR_STATE_URL":
		point += "; ROTOR_STATE_URL still names the old store and overrides the config: change or unset it"
	case "--state":
		point += "; stop passing --state with the old store"
	}
	out.Next = []string{
		point,
		"move the old store out of the way (" + oldStoreHint(fromInfo) + "): it has the same store id, and a rotor still using it would rotate behind the new store's back",
		"run `rotor state info` to see the new store",
	}
	if f.JSON {
		return printJSON(f, out)
	}
	w := f.IO.Out
	fmt.Fprintf(w, "copied %s %s\n    to %s %s\n", fromInfo.Driver, fromInfo.Location, toInfo.Driver, toInfo.Location)
	fmt.Fprintf(w, "store id %s (kept: the marks on the roles stay valid)\n", rep.ID)
	fmt.Fprintf(w, "  %-10s %6s  %s\n", "table", "rows", "sha256")
	for _, t := range rep.Tables {
		fmt.Fprintf(w, "  %-10s %6d  %s\n", t.Name, t.Rows, t.SHA256)
	}
	verified := "verified: every table's row count and digest read back from the target match the source"
	if rep.Sealed > 0 {
		verified += fmt.Sprintf("; %d sealed version(s) open with the key %s", rep.Sealed, out.Key)
	}
	fmt.Fprintln(w, verified)
	fmt.Fprintln(w, "next:")
	for i, n := range out.Next {
		fmt.Fprintf(w, "  %d. %s\n", i+1, n)
	}
	return nil
}

// stateSettings say where the store and the key are.
type stateSettings struct {
	// State is the store's location; it may hold a password when it came
	// from ROTOR_STATE_URL.
	State string
	// From says where State came from: "--state", "ROTOR_STATE_URL" or
	// "config".
	From string
	// KeyFile is the key file used when ROTOR_KEY is unset; "" when there
	// is no config to name one.
	KeyFile string
}

// unsetEnv stands in for a ${VAR} of the config that is not set: the state
// commands read only state: and key_file:, so a missing database or
// target secret must not stop them.
const unsetEnv = "rotor-unset-env"

// stateLocation finds the store as every command does (--state, else
// ROTOR_STATE_URL, else the config's state:) and the key file, reading only
// the config's state: and key_file:. With --state or ROTOR_STATE_URL no
// config file is needed (the key must then be in ROTOR_KEY).
func stateLocation(f *Factory) (*stateSettings, error) {
	var loc stateSettings
	switch {
	case f.StatePath != "":
		if strings.Contains(f.StatePath, "://") && holdsPassword(f.StatePath) {
			return nil, &UsageError{errors.New("--state holds a password, and a command line can be read by every user of this machine; " +
				"pass the URL without it and set PGPASSWORD, or put the whole URL in ROTOR_STATE_URL")}
		}
		loc.State, loc.From = f.StatePath, "--state"
	case f.getenv("ROTOR_STATE_URL") != "":
		loc.State, loc.From = f.getenv("ROTOR_STATE_URL"), "ROTOR_STATE_URL"
	}
	path := f.configPath()
	if loc.State != "" && !fileExists(path) {
		return &loc, nil
	}
	data, err := config.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var unset []string
	lenient := func(k string) (string, bool) {
		if v, ok := f.LookupEnv(k); ok {
			return v, true
		}
		unset = append(unset, k)
		return unsetEnv, true
	}
	cfg, err := config.Parse(path, data, lenient)
	if cfg == nil {
		return nil, err
	}
	// The problems that matter here are those of state: and key_file:
	// (a password typed into state:, say); the credentials' are for the
	// commands that rotate them.
	var problems config.Errors
	if errors.As(err, &problems) {
		lines := topLevelLines(data, "state", "key_file")
		var fatal config.Errors
		for _, p := range problems {
			if p.Line > 0 && lines[p.Line] {
				fatal = append(fatal, p)
			}
		}
		if len(fatal) > 0 {
			return nil, fatal
		}
	}
	if loc.State == "" {
		if strings.Contains(cfg.State, unsetEnv) || strings.Contains(cfg.KeyFile, unsetEnv) {
			var names []string
			for _, m := range envRefRE.FindAllStringSubmatch(topLevelText(data, "state", "key_file"), -1) {
				if slices.Contains(unset, m[1]) && !slices.Contains(names, m[1]) {
					names = append(names, m[1])
				}
			}
			return nil, &UsageError{fmt.Errorf("%s: state: or key_file: uses an environment variable that is not set (%s); export it", path, strings.Join(names, ", "))}
		}
		loc.State, loc.From = cfg.State, "config"
	}
	if !strings.Contains(cfg.KeyFile, unsetEnv) {
		loc.KeyFile = cfg.KeyFile
	}
	return &loc, nil
}

var envRefRE = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)\}`)

// topLevelText is the text of the lines topLevelLines returns.
func topLevelText(data []byte, keys ...string) string {
	lines := topLevelLines(data, keys...)
	var b strings.Builder
	for i, l := range strings.Split(string(data), "\n") {
		if lines[i+1] {
			b.WriteString(l + "\n")
		}
	}
	return b.String()
}

// topLevelLines returns the lines of the config's top-level keys named.
func topLevelLines(data []byte, keys ...string) map[int]bool {
	lines := map[int]bool{}
	var root yaml.Node
	if yaml.Unmarshal(data, &root) != nil || len(root.Content) == 0 || root.Content[0].Kind != yaml.MappingNode {
		return lines
	}
	m := root.Content[0].Content
	for i := 0; i+1 < len(m); i += 2 {
		for _, k := range keys {
			if m[i].Value == k {
				lines[m[i].Line], lines[m[i+1].Line] = true, true
			}
		}
	}
	return lines
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

func holdsPassword(location string) bool {
	c, err := connstr.Parse(location)
	return err == nil && !c.Password.IsZero()
}

// sqlitePath returns the file of a SQLite location ("" for another
// driver), as storeurl reads it.
func sqlitePath(location string) string {
	scheme, rest, ok := strings.Cut(location, "://")
	switch {
	case !ok:
		return location
	case strings.EqualFold(scheme, "sqlite"), strings.EqualFold(scheme, "file"):
		return rest
	}
	return ""
}

// openExistingStore opens the store at location, refusing to create an
// SQLite file that is not there: a typo in the path would otherwise show
// or copy an empty store.
func openExistingStore(ctx context.Context, location string) (store.Store, error) {
	if p := sqlitePath(location); p != "" {
		if _, err := os.Stat(p); errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("no state store at %s: nothing has been rotated with this config yet, or the state lives elsewhere (--state, ROTOR_STATE_URL)", p)
		}
	}
	return OpenStore(ctx, location)
}

func sameLocation(a, b string) bool {
	pa, pb := sqlitePath(a), sqlitePath(b)
	if pa == "" || pb == "" {
		return false
	}
	aa, errA := filepath.Abs(pa)
	ab, errB := filepath.Abs(pb)
	return errA == nil && errB == nil && aa == ab
}

// withoutPassword is location as the config may hold it.
func withoutPassword(location string) string {
	if !strings.Contains(location, "://") || sqlitePath(location) != "" {
		return location
	}
	c, err := connstr.Parse(location)
	if err != nil {
		return connstr.Redact(location)
	}
	return c.WithPassword(secret.String{}).URL().Reveal()
}

func configName(f *Factory) string {
	if p := f.configPath(); p != "" {
		return p
	}
	return "rotor.yaml"
}

func oldStoreHint(in *store.Info) string {
	if in.Driver == "sqlite" {
		return "mv " + in.Location + " " + in.Location + ".migrated"
	}
	return "drop or rename its schema once you no longer need it"
}

// loadSealer loads the key without ever creating one.
func loadSealer(f *Factory, keyFile string) (*secret.Sealer, string, error) {
	key, source, err := secret.LoadKey(f.getenv, keyFile, false)
	if err != nil {
		return nil, "", err
	}
	s, err := secret.NewSealer(key)
	clear(key)
	if err != nil {
		return nil, "", err
	}
	return s, source, nil
}

// keyFingerprint names a key without revealing it: an HMAC of a fixed
// label under the key's fingerprint subkey. The same key always shows the
// same fingerprint, so two machines can compare theirs.
func keyFingerprint(s *secret.Sealer) string { return s.Fingerprint("rotor/v1/key-fingerprint") }

// openVersion checks that the key opens a version's sealed secret. The
// additional data is the engine's (engine.aad, internal/engine/rotate.go):
// a secret opens only as its own credential and role. The e2e test of
// `state migrate` opens versions the engine sealed, so a change there
// fails it.
func openVersion(s *secret.Sealer, v *store.Version) error {
	plain, err := s.Open(v.Sealed, []byte("rotor/v1/version\x00"+v.Credential+"\x00"+v.Role))
	clear(plain)
	return err
}
