package cli

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/rotorhq/rotor/internal/engine"
	"github.com/rotorhq/rotor/internal/resolve"
	"github.com/rotorhq/rotor/internal/secret"
	"github.com/rotorhq/rotor/internal/serve"
	"github.com/rotorhq/rotor/internal/serve/api"
	"github.com/rotorhq/rotor/internal/serve/auth"
	"github.com/rotorhq/rotor/internal/serve/console"
	"github.com/rotorhq/rotor/internal/serve/metrics"
)

// ServeOptions are `rotor serve`'s inputs.
type ServeOptions struct {
	F               *Factory
	Listen          string
	TLSCert, TLSKey string
	InsecureListen  bool
	Workers         int
	Tick            time.Duration
	ShutdownTimeout time.Duration
	RescueAfter     time.Duration
	WatchInterval   time.Duration
	ID              string

	// listening, when set (tests), is told the address once the server
	// accepts connections.
	listening func(addr string)
}

// NewCmdServe builds `rotor serve`.
func NewCmdServe(f *Factory, runF func(*ServeOptions) error) *cobra.Command {
	opts := &ServeOptions{F: f}
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run rotor as a service: schedule, HTTP API, console, metrics and leak response",
		Long: `serve runs rotor as a long-lived service. It rotates each credential when its
schedule says it is due, on demand through the HTTP API and console, and at
once after a leak report; it retires a dual rotation's old role when the
evidence is in. Jobs run on River over the state store: on the PostgreSQL
store several replicas share the work, one of them (the elected leader)
schedules, and a replica that dies has its rotation resumed elsewhere from
the journal.

Endpoints: /healthz, /readyz, /metrics, /api/v1/… (openapi.json there),
/hooks/github (secret scanning alerts) and the console at /.

API tokens come from ROTOR_API_TOKENS (NAME:SCOPE:TOKEN, comma or newline
separated; scopes read, rotate, admin) or the file ROTOR_API_TOKENS_FILE
names; the GitHub webhook secret from ROTOR_GITHUB_WEBHOOK_SECRET.

SIGTERM or SIGINT: stop taking jobs, let the running ones finish within
--shutdown-timeout, then stop them at their next journaled step, exit 0.
SIGHUP, or a change of the config file, reloads the config; an invalid one
is logged and the one in force kept. Logs are JSON lines on stderr.`,
		Example: `  ROTOR_API_TOKENS=ops:admin:$(openssl rand -hex 24) rotor serve
  rotor serve --listen 0.0.0.0:8443 --tls-cert tls.crt --tls-key tls.key
  ROTOR_STATE_URL=postgres://rotor@db/rotor rotor serve --listen 0.0.0.0:8080 --insecure-listen`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			if runF != nil {
				return runF(opts)
			}
			return runServe(cmd.Context(), opts)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&opts.Listen, "listen", "127.0.0.1:8080", "address to listen on (host:port)")
	fl.StringVar(&opts.TLSCert, "tls-cert", "", "TLS certificate file (PEM); with --tls-key, serve HTTPS")
	fl.StringVar(&opts.TLSKey, "tls-key", "", "TLS private key file (PEM)")
	fl.BoolVar(&opts.InsecureListen, "insecure-listen", false, "allow plain HTTP on a non-loopback address (TLS ends in front of rotor)")
	fl.IntVar(&opts.Workers, "workers", 4, "jobs this replica runs at once")
	fl.DurationVar(&opts.Tick, "tick", time.Minute, "how often the leader looks for due credentials and pending retirements")
	fl.DurationVar(&opts.ShutdownTimeout, "shutdown-timeout", 30*time.Second, "on SIGTERM, how long running jobs may take before they are stopped at their next journaled step")
	fl.DurationVar(&opts.RescueAfter, "rescue-after", 10*time.Minute, "a job running this long on a replica that stopped answering is run again elsewhere (resumed from the journal)")
	fl.DurationVar(&opts.WatchInterval, "watch-config", 5*time.Second, "how often to check the config file for changes (0: only on SIGHUP)")
	fl.StringVar(&opts.ID, "id", "", "this replica's name in logs, leases and River (default host-pid-random)")
	return cmd
}

// serveInputs is everything checked before the service starts.
type serveInputs struct {
	tls     *tls.Config
	tokens  *auth.Tokens
	hookKey secret.String
}

// checkServe checks the flags and the environment, changing nothing.
func checkServe(opts *ServeOptions) (*serveInputs, error) {
	f := opts.F
	in := &serveInputs{}
	host, port, err := net.SplitHostPort(opts.Listen)
	if err != nil || port == "" {
		return nil, &UsageError{fmt.Errorf("--listen %q: not host:port; write it like 127.0.0.1:8080 or 0.0.0.0:8443", opts.Listen)}
	}
	if (opts.TLSCert == "") != (opts.TLSKey == "") {
		return nil, &UsageError{errors.New("--tls-cert and --tls-key go together: give both files, or neither")}
	}
	if opts.TLSCert != "" {
		pair, err := tls.LoadX509KeyPair(opts.TLSCert, opts.TLSKey)
		if err != nil {
			return nil, &UsageError{fmt.Errorf("--tls-cert %s / --tls-key %s: %v; give a PEM certificate and its private key", opts.TLSCert, opts.TLSKey, err)}
		}
		in.tls = &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{pair}}
	}
	if in.tls == nil && !loopback(host) && !opts.InsecureListen {
		return nil, &UsageError{fmt.Errorf("--listen %s is reachable from other machines and would carry API tokens in plain HTTP; "+
			"give --tls-cert and --tls-key, listen on 127.0.0.1, or pass --insecure-listen when TLS ends in front of rotor (a proxy, a service mesh)", opts.Listen)}
	}
	if opts.Workers < 1 || opts.Tick < time.Second || opts.ShutdownTimeout < 0 || opts.RescueAfter < time.Second || opts.WatchInterval < 0 {
		return nil, &UsageError{errors.New("--workers must be at least 1, --tick at least 1s, --rescue-after at least 1s, --shutdown-timeout and --watch-config not negative")}
	}
	spec, hasSpec := f.LookupEnv("ROTOR_API_TOKENS")
	file, hasFile := f.LookupEnv("ROTOR_API_TOKENS_FILE")
	if hasSpec && hasFile && spec != "" && file != "" {
		return nil, &UsageError{errors.New("both ROTOR_API_TOKENS and ROTOR_API_TOKENS_FILE are set; keep one")}
	}
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("read the API tokens from ROTOR_API_TOKENS_FILE: %w", err)
		}
		spec = string(b)
	}
	if in.tokens, err = auth.Parse(spec); err != nil {
		return nil, &UsageError{err}
	}
	in.hookKey = secret.New(f.getenv("ROTOR_GITHUB_WEBHOOK_SECRET"))
	return in, nil
}

// loopback reports whether host names only this machine.
func loopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func runServe(ctx context.Context, opts *ServeOptions) error {
	f := opts.F
	in, err := checkServe(opts)
	if err != nil {
		return err
	}
	level := slog.LevelInfo
	if f.Debug {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewJSONHandler(f.IO.ErrOut, &slog.HandlerOptions{Level: level}))
	f.log = log
	f.SharedStore = true // River runs its queries on the store's pool
	cfg, err := f.Config()
	if err != nil {
		return err
	}
	eng, err := f.Engine(ctx)
	if err != nil {
		return err
	}
	// The service owns the configs from here (it closes each when no job
	// uses it any more); the factory must not close one under a job.
	f.disown(cfg)

	var m *metrics.Metrics
	svc, err := serve.New(ctx, serve.Options{Config: cfg, Engine: eng, Logger: log, ID: opts.ID, Workers: opts.Workers,
		Tick: opts.Tick, RescueAfter: opts.RescueAfter,
		Finished: func(cred, strategy, result string, d time.Duration) { m.RotationFinished(cred, strategy, result, d) },
		Observe:  func(res *engine.Result) { m.Observe(res) }})
	if err != nil {
		cfg.Close()
		return err
	}
	bi := currentBuildInfo()
	m = metrics.New(svc, metrics.BuildInfo{Version: bi.Version, Revision: bi.Revision, GoVersion: bi.GoVersion})
	m.SetLogger(log)

	var stopping atomic.Bool
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if stopping.Load() {
			http.Error(w, "stopping", http.StatusServiceUnavailable)
			return
		}
		rctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
		defer cancel()
		if err := svc.Ready(rctx); err != nil {
			http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	mux.Handle("GET /metrics", m.Handler())
	apiH := api.New(api.Options{Backend: svc, Tokens: in.tokens, GitHubWebhookSecret: in.hookKey, Logger: log.With("component", "api")})
	mux.Handle("/api/", apiH)
	mux.Handle("/hooks/", apiH)
	mux.Handle("/", console.New(console.Options{Backend: svc, Tokens: in.tokens, Secure: in.tls != nil, Logger: log.With("component", "console"),
		Done: ctx.Done()}))

	ln, err := net.Listen("tcp", opts.Listen)
	if err != nil {
		cfg.Close()
		return fmt.Errorf("listen on %s: %w", opts.Listen, err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute, TLSConfig: in.tls,
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	if in.tls != nil {
		ln = tls.NewListener(ln, in.tls)
	}
	if err := svc.Start(context.WithoutCancel(ctx)); err != nil {
		ln.Close()
		cfg.Close()
		return fmt.Errorf("start the job queue: %w", err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	scheme := "http"
	if in.tls != nil {
		scheme = "https"
	}
	log.Info("serving", "address", scheme+"://"+ln.Addr().String(), "replica", svc.ID(), "credentials", len(cfg.Credentials),
		"tokens", in.tokens.Len(), "github_webhook", !in.hookKey.IsZero())
	if in.tokens.Len() == 0 {
		log.Warn("no API tokens: the API and the console refuse every request; set ROTOR_API_TOKENS")
	}
	if opts.listening != nil {
		opts.listening(ln.Addr().String())
	}

	stopReload := watchConfig(ctx, opts, f, svc, log)
	defer stopReload()

	var serveErr error
	select {
	case <-ctx.Done():
		log.Info("stopping: no new jobs; running ones have " + opts.ShutdownTimeout.String() + " to finish")
	case serveErr = <-served:
		log.Error("the HTTP server stopped", "error", serveErr.Error())
	}
	stopping.Store(true)
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), opts.ShutdownTimeout)
	defer cancel()
	stopErr := svc.Stop(sctx)
	hctx, hcancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer hcancel()
	if err := srv.Shutdown(hctx); err != nil {
		stopErr = errors.Join(stopErr, fmt.Errorf("stop the HTTP server: %w", err))
	}
	if stopErr != nil {
		log.Error("stopped with errors", "error", stopErr.Error())
		return stopErr
	}
	log.Info("stopped")
	if serveErr != nil && !errors.Is(serveErr, http.ErrServerClosed) {
		return serveErr
	}
	return nil
}

// watchConfig reloads the config on SIGHUP and when the file changes
// (polled: no watcher survives every editor's rename and every
// ConfigMap's symlink swap, a stat does). An invalid config is logged and
// the one in force kept.
func watchConfig(ctx context.Context, opts *ServeOptions, f *Factory, svc *serve.Service, log *slog.Logger) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	path := f.configPath()
	last := fileStamp(path)
	var tick <-chan time.Time
	if opts.WatchInterval > 0 {
		t := time.NewTicker(opts.WatchInterval)
		tick = t.C
		go func() { <-ctx.Done(); t.Stop() }()
	}
	reload := func(why string) {
		cfg, err := resolve.Load(path, f.LookupEnv, f.Registry())
		if err != nil {
			log.Error("config reload refused; the config in force is kept", "why", why, "path", path, "error", err.Error())
			return
		}
		svc.Reload(cfg)
		log.Info("config reloaded", "why", why, "path", path, "credentials", len(cfg.Credentials))
	}
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				last = fileStamp(path)
				reload("SIGHUP")
			case <-tick:
				if s := fileStamp(path); s != last {
					last = s
					reload("file changed")
				}
			}
		}
	}()
	return func() {
		signal.Stop(hup)
		cancel()
	}
}

// fileStamp is what a change of the config file changes: its size, its
// modification time and (through a symlink swap) the file it names.
func fileStamp(path string) string {
	fi, err := os.Stat(path)
	if err != nil {
		return "missing"
	}
	var ino uint64
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		ino = uint64(st.Ino)
	}
	return fmt.Sprintf("%d/%d/%d", fi.Size(), fi.ModTime().UnixNano(), ino)
}
