package cli

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/rotorhq/rotor/internal/config"
	"github.com/rotorhq/rotor/internal/connstr"
	"github.com/rotorhq/rotor/internal/engine"
	pbuiltin "github.com/rotorhq/rotor/internal/provider/builtin"
	"github.com/rotorhq/rotor/internal/resolve"
	"github.com/rotorhq/rotor/internal/secret"
	"github.com/rotorhq/rotor/internal/store"
	"github.com/rotorhq/rotor/internal/store/sqlite"
	"github.com/rotorhq/rotor/internal/store/storeurl"
	tbuiltin "github.com/rotorhq/rotor/internal/target/builtin"
)

// Factory builds what commands need, lazily, so a command that needs no
// config (connstr, init, --version) never reads one.
type Factory struct {
	IO         *IOStreams
	LookupEnv  func(string) (string, bool)
	Now        func() time.Time
	HTTPClient *http.Client

	// Set by global flags.
	ConfigPath string
	StatePath  string
	JSON       bool
	Debug      bool

	// Hooks reach the engine in tests (crash injection).
	Hooks *engine.Hooks

	// ReadOnly is set by commands that promise to change nothing (plan,
	// status, history, validate): a missing state file or key is then not
	// created; an empty throwaway store stands in for it.
	ReadOnly bool
	// Offline is set by commands that contact neither the database nor a
	// target (status without --live, history, validate --offline, plan
	// --offline): they need no connection secrets, so the config's ${VAR}
	// references to variables that are not set are no error for them
	// (resolve.LoadOffline). Every other command needs each one set.
	Offline bool
	// SharedStore is set by commands that hand the store to other code
	// (serve's job queue): its SQLite pool is then not capped (see
	// sqlite.Store.LimitReaders).
	SharedStore bool

	// wroteJSON is set once a command printed its --json document.
	wroteJSON bool

	cfg   *resolve.Config
	st    store.Store
	eng   *engine.Engine
	log   *slog.Logger
	close []func()
	// cfgDisowned: the config went to an owner that closes it (serve).
	cfgDisowned bool
}

// disown hands the loaded config to another owner: Close leaves it open.
func (f *Factory) disown(*resolve.Config) { f.cfgDisowned = true }

// closeErr logs an error of closing something at the end of a command:
// the command's answer is already given, but nothing is dropped.
func (f *Factory) closeErr(err error) {
	if err != nil {
		f.Logger().Warn("close", "error", err.Error())
	}
}

// NewFactory returns a factory wired to the real process.
func NewFactory() *Factory {
	f := &Factory{
		IO:         System(),
		LookupEnv:  os.LookupEnv,
		Now:        time.Now,
		HTTPClient: &http.Client{Timeout: 60 * time.Second},
	}
	if installTestHooks != nil {
		installTestHooks(f)
	}
	return f
}

func (f *Factory) getenv(k string) string {
	v, _ := f.LookupEnv(k)
	return v
}

// Logger is the one logger of the invocation: with --debug it writes to
// stderr at debug level — JSON lines with --json, text otherwise (a
// terminal) — and without it nowhere. Everything that logs is handed this
// one (engine.Engine.Logger, provider.Params.Logger, the HTTP client and
// the store --debug wraps); see debug.go for what each logs.
func (f *Factory) Logger() *slog.Logger {
	if f.log == nil {
		if !f.Debug {
			f.log = slog.New(slog.NewTextHandler(io.Discard, nil))
			return f.log
		}
		opts := &slog.HandlerOptions{Level: slog.LevelDebug}
		if f.JSON {
			f.log = slog.New(slog.NewJSONHandler(f.IO.ErrOut, opts))
		} else {
			f.log = slog.New(slog.NewTextHandler(f.IO.ErrOut, opts))
		}
	}
	return f.log
}

// events is next, and with --debug every event logged as well.
func (f *Factory) events(next func(engine.Event)) func(engine.Event) {
	if !f.Debug {
		return next
	}
	return debugEvents(f.Logger(), next)
}

// configPath resolves --config, $ROTOR_CONFIG, then ./rotor.yaml.
func (f *Factory) configPath() string {
	if f.ConfigPath != "" {
		return f.ConfigPath
	}
	if p := f.getenv("ROTOR_CONFIG"); p != "" {
		return p
	}
	return config.DefaultFile
}

// Registry is where the config's providers and targets come from.
func (f *Factory) Registry() resolve.Registry {
	reg := resolve.Registry{
		Provider:   pbuiltin.Lookup,
		Target:     tbuiltin.Lookup,
		HTTPClient: f.HTTPClient,
		Getenv:     f.getenv,
		Now:        f.Now,
	}
	if f.Debug {
		reg.HTTPClient = debugClient(cmp.Or(f.HTTPClient, http.DefaultClient), f.Logger(), f.Now)
		reg.Logger = f.Logger()
	}
	return reg
}

// Config loads the config once and builds its providers and targets.
func (f *Factory) Config() (*resolve.Config, error) {
	if f.cfg != nil {
		return f.cfg, nil
	}
	load := resolve.Load
	if f.Offline {
		load = resolve.LoadOffline
	}
	cfg, err := load(f.configPath(), f.LookupEnv, f.Registry())
	if err != nil {
		return nil, err
	}
	// The store: --state, else $ROTOR_STATE_URL (where a CI job or a
	// Kubernetes Secret puts a URL with its password), else the config.
	switch {
	case f.StatePath != "":
		if c, err := connstr.Parse(f.StatePath); err == nil && strings.Contains(f.StatePath, "://") && !c.Password.IsZero() {
			cfg.Close()
			return nil, &UsageError{errors.New("--state holds a password, and a command line can be read by every user of this machine; " +
				"pass the URL without it and set PGPASSWORD, or put the whole URL in ROTOR_STATE_URL")}
		}
		cfg.State = f.StatePath
	case f.getenv("ROTOR_STATE_URL") != "":
		cfg.State = f.getenv("ROTOR_STATE_URL")
	}
	f.cfg = cfg
	f.close = append(f.close, func() {
		if !f.cfgDisowned {
			f.closeErr(cfg.Close())
		}
	})
	f.Logger().Debug("config loaded", "path", cfg.Path, "credentials", len(cfg.Credentials), "state", connstr.Redact(cfg.State), "offline", f.Offline, "unset", cfg.Unset)
	return cfg, nil
}

// Store opens the state store named by the config (or --state).
func (f *Factory) Store(ctx context.Context) (store.Store, error) {
	if f.st != nil {
		return f.st, nil
	}
	cfg, err := f.Config()
	if err != nil {
		return nil, err
	}
	st, err := f.openStore(ctx, cfg.State)
	if err != nil {
		return nil, err
	}
	f.close = append(f.close, func() { st.Close() })
	if l, ok := st.(interface{ LimitReaders(int) }); ok && !f.SharedStore {
		l.LimitReaders(cliReaders)
	}
	if f.Debug {
		st = debugStore{Store: st, log: f.Logger()}
	}
	return st, nil
}

// openStore opens the store at location. A command that changes nothing
// does not create a state file: where none exists yet it reads an empty
// store in memory, which answers as a new file would.
func (f *Factory) openStore(ctx context.Context, location string) (store.Store, error) {
	if path, ok := storeurl.SQLitePath(location); ok && f.ReadOnly {
		if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
			return sqlite.OpenScratch(ctx)
		}
	}
	return OpenStore(ctx, location)
}

// cliReaders is how many SQLite read connections a command other than
// serve keeps beside the write connection: enough that a read never waits
// behind another for long, few enough that --parallel does not multiply
// the connections' memory.
const cliReaders = 2

// OpenStore opens a store by location: a file path, sqlite://PATH or a
// postgres:// URL (storeurl chooses the driver by scheme).
func OpenStore(ctx context.Context, location string) (store.Store, error) {
	return storeurl.Open(ctx, location)
}

// Engine builds the engine with the store and the encryption key. The key
// is created only when the store holds no secrets yet: a missing key with
// existing secrets is an error, never a silent new key.
func (f *Factory) Engine(ctx context.Context) (*engine.Engine, error) {
	if f.eng != nil {
		return f.eng, nil
	}
	cfg, err := f.Config()
	if err != nil {
		return nil, err
	}
	st, err := f.Store(ctx)
	if err != nil {
		return nil, err
	}
	// Whether the store holds secrets is asked once, and only where the
	// answer matters: a read-only command never creates a key.
	create := !f.ReadOnly && !f.storeHasVersions(ctx, cfg, st)
	key, source, err := secret.LoadKey(f.getenv, cfg.KeyFile, create)
	if err != nil && f.ReadOnly && errors.Is(err, os.ErrNotExist) && !f.storeHasVersions(ctx, cfg, st) {
		// Nothing is encrypted yet, so a throwaway key reads the state.
		source = "none yet (nothing rotated)"
		key, err = secret.GenerateKey(nil)
	}
	if err != nil {
		if !create && errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("the state store holds encrypted passwords but the key is missing (%s not found and ROTOR_KEY unset); restore the key file or set ROTOR_KEY", cfg.KeyFile)
		}
		return nil, err
	}
	sealer, err := secret.NewSealer(key)
	if err != nil {
		return nil, err
	}
	f.Logger().Debug("encryption key loaded", "source", source)
	eng := &engine.Engine{Store: st, Sealer: sealer, Now: f.Now, Logger: f.Logger(), Hooks: f.Hooks}
	if v := f.getenv("ROTOR_LEASE_TTL"); v != "" {
		// How long a lease outlives a holder that stopped renewing it (a
		// paused or partitioned process) before another may take over.
		d, err := time.ParseDuration(v)
		if err != nil || d < time.Second {
			return nil, &UsageError{fmt.Errorf("ROTOR_LEASE_TTL=%q: not a duration of at least 1s; write it like 30s", v)}
		}
		eng.LeaseTTL = d
	}
	if f.Debug {
		dial := debugDial(f.Logger(), f.Now)
		eng.DialAfter = dial
		eng.Dial = func(ctx context.Context, u secret.String) error { return dial(ctx, u, nil) }
	}
	f.eng = eng
	return f.eng, nil
}

// storeHasVersions reports whether the store holds any encrypted secret
// of the configured credentials.
func (f *Factory) storeHasVersions(ctx context.Context, cfg *resolve.Config, st store.Store) bool {
	// One query answers for an empty store (a first run, a plan before any
	// rotation) and for a store whose newest version is one of this
	// config's; only a store shared with other configs is asked per
	// credential.
	vs, err := st.ListVersions(ctx, store.ListVersionsParams{Limit: 1})
	if err != nil {
		return true
	}
	if len(vs) == 0 {
		return false
	}
	if slices.ContainsFunc(cfg.Credentials, func(cr *engine.Credential) bool { return cr.Name == vs[0].Credential }) {
		return true
	}
	for _, cr := range cfg.Credentials {
		vs, err := st.ListVersions(ctx, store.ListVersionsParams{Credential: cr.Name, Limit: 1})
		if err != nil || len(vs) > 0 {
			return true
		}
	}
	return false
}

// Close releases everything the factory opened.
func (f *Factory) Close() {
	for i := len(f.close) - 1; i >= 0; i-- {
		f.close[i]()
	}
	f.close = nil
}

// readOnly is what the commands that only look (plan, status) start
// with: the config, the named credentials (all when none is named) and an
// engine over the store opened read-only.
func (f *Factory) readOnly(ctx context.Context, names []string) ([]*engine.Credential, *engine.Engine, error) {
	f.ReadOnly = true
	cfg, err := f.Config()
	if err != nil {
		return nil, nil, err
	}
	creds, err := selectCredentials(cfg, names)
	if err != nil {
		return nil, nil, err
	}
	eng, err := f.Engine(ctx)
	if err != nil {
		return nil, nil, err
	}
	return creds, eng, nil
}

// selectCredentials returns the named credentials, or all when names is
// empty and all is allowed.
func selectCredentials(cfg *resolve.Config, names []string) ([]*engine.Credential, error) {
	if len(names) == 0 {
		return cfg.Credentials, nil
	}
	var out []*engine.Credential
	seen := map[string]bool{}
	for _, n := range names {
		if seen[n] {
			continue
		}
		seen[n] = true
		cr, err := cfg.Credential(n)
		if err != nil {
			return nil, &UsageError{err}
		}
		out = append(out, cr)
	}
	return out, nil
}
