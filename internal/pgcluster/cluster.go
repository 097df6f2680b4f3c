// Package pgcluster starts throwaway PostgreSQL clusters from the system's
// initdb and pg_ctl: SCRAM authentication, TLS with a self-signed
// certificate, listening on 127.0.0.1 only. Tests use it through pgtest;
// `rotor demo` uses it directly, which is why it does not import testing.
package pgcluster

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rotorhq/rotor/internal/osuser"
	"github.com/rotorhq/rotor/internal/secret"
)

// Options configures Start. The zero value is a working cluster.
type Options struct {
	// Dir is the base directory (data dir, log, CA file live under it). It
	// is created when missing; "" means a fresh directory under os.TempDir.
	Dir string
	// Port 0 picks a free TCP port on 127.0.0.1 (and picks again when
	// another process takes it first).
	Port int
	// LogStatements logs every statement (log_statement=all) and debug1
	// messages, so tests can scan the server log for leaked secrets.
	LogStatements bool
	// Settings are extra postgresql.conf settings; they override rotor's.
	Settings map[string]string
	// Stdout, when set, receives one line per startup step.
	Stdout io.Writer
	// Server is the installation to start from; nil means FindBinaries.
	Server *Server
}

// Cluster is a running throwaway PostgreSQL server.
type Cluster struct {
	Host      string
	Port      int
	SuperUser string
	// Dir is the base directory; DataDir, LogFile and CACertFile are in it.
	Dir     string
	DataDir string
	LogFile string
	// CACertFile is the PEM of the server's self-signed certificate, usable
	// as sslrootcert for sslmode=verify-full.
	CACertFile string
	BinDir     string
	// Major is the server's major version (0 if it did not say).
	Major int
	// root is Server.Root: the binaries run chrooted in it.
	root string

	superPassword secret.String
	runAs         *osuser.User
	removeDir     bool
	progress      io.Writer

	mu      sync.Mutex
	stopped bool
}

const (
	superUser      = "postgres"
	startAttempts  = 5
	pgctlTimeout   = "120" // seconds pg_ctl -w waits for start/stop
	passwordLength = 32
)

// superPasswordAlphabet includes URL-special characters on purpose: every
// caller that builds a URL from the superuser password proves its encoding.
const superPasswordAlphabet = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789@:/%?#&+="

// Start initialises and starts a new cluster. Call Stop to remove it.
func Start(ctx context.Context, opts Options) (*Cluster, error) {
	srv := opts.Server
	if srv == nil {
		dir, err := FindBinaries()
		if err != nil {
			return nil, err
		}
		srv = &Server{BinDir: dir, Major: majorOf(dir, "")}
	}
	runAs, err := osuser.ForServer(ctx, "PostgreSQL")
	if err != nil {
		return nil, err
	}
	password, err := randomPassword()
	if err != nil {
		return nil, err
	}
	c := &Cluster{
		Host:          "127.0.0.1",
		SuperUser:     superUser,
		BinDir:        srv.BinDir,
		Major:         srv.Major,
		root:          srv.Root,
		superPassword: password,
		runAs:         runAs,
		progress:      opts.Stdout,
	}
	if err := c.makeDir(opts.Dir); err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if ok {
			return
		}
		// pg_ctl -w gives up after its timeout but leaves the server
		// starting; stop it before its directory goes away.
		if c.DataDir != "" && c.running() {
			_, _ = c.run(context.WithoutCancel(ctx), "pg_ctl", "-w", "-D", c.DataDir, "-m", "immediate", "stop")
		}
		if c.removeDir {
			_ = os.RemoveAll(c.Dir)
		}
	}()
	c.DataDir = filepath.Join(c.Dir, "data")
	c.LogFile = filepath.Join(c.Dir, "server.log")
	c.CACertFile = filepath.Join(c.Dir, "ca.crt")

	if err := c.initdb(ctx); err != nil {
		return nil, err
	}
	if err := c.writeTLS(); err != nil {
		return nil, err
	}
	if err := c.writeHBA(); err != nil {
		return nil, err
	}
	if err := c.start(ctx, opts); err != nil {
		return nil, err
	}
	ok = true
	return c, nil
}

func (c *Cluster) makeDir(dir string) error {
	if dir == "" {
		// In a chroot the cluster's files must be inside it.
		tmp := ""
		if c.root != "" {
			tmp = filepath.Join(c.root, "tmp")
		}
		d, err := os.MkdirTemp(tmp, "rotor-pg-")
		if err != nil {
			return fmt.Errorf("create a temporary directory for the cluster: %w", err)
		}
		c.Dir, c.removeDir = d, true
	} else {
		abs, err := filepath.Abs(dir)
		if err != nil {
			return fmt.Errorf("cluster directory %q: %w", dir, err)
		}
		if rel, err := filepath.Rel(c.root, abs); c.root != "" && (err != nil || strings.HasPrefix(rel, "..")) {
			return fmt.Errorf("cluster directory %s is outside the chroot %s its server runs in; give a directory under it, or none", abs, c.root)
		}
		if _, err := os.Stat(abs); errors.Is(err, os.ErrNotExist) {
			c.removeDir = true
		}
		if err := os.MkdirAll(abs, 0o700); err != nil {
			return fmt.Errorf("create cluster directory %s: %w", abs, err)
		}
		c.Dir = abs
	}
	if err := c.runAs.Chown(c.Dir); err != nil {
		return err
	}
	return c.runAs.CheckReachable(c.Dir)
}

func (c *Cluster) initdb(ctx context.Context) error {
	c.say("initdb %s", c.DataDir)
	// initdb reads the password from a file so it never shows up in argv;
	// the file lives only as long as initdb runs.
	pwFile := filepath.Join(c.Dir, "initdb.pw")
	if err := os.WriteFile(pwFile, []byte(c.superPassword.Reveal()+"\n"), 0o600); err != nil {
		return fmt.Errorf("write initdb password file: %w", err)
	}
	defer os.Remove(pwFile)
	if err := c.runAs.Chown(pwFile); err != nil {
		return err
	}
	_, err := c.run(ctx, "initdb",
		"-D", c.DataDir,
		"--username="+superUser,
		"--auth=scram-sha-256",
		"--pwfile="+pwFile,
		"--encoding=UTF8",
		"--locale=C",
		"--no-sync",
	)
	return err
}

func (c *Cluster) writeTLS() error {
	certPEM, keyPEM, err := SelfSignedCert(time.Now())
	if err != nil {
		return err
	}
	// PostgreSQL refuses a key file that others can read, and needs to own it.
	for name, data := range map[string][]byte{"server.crt": certPEM, "server.key": keyPEM} {
		path := filepath.Join(c.DataDir, name)
		if err := os.WriteFile(path, data, 0o600); err != nil {
			return fmt.Errorf("write %s: %w", path, err)
		}
		if err := c.runAs.Chown(path); err != nil {
			return err
		}
	}
	if err := os.WriteFile(c.CACertFile, certPEM, 0o644); err != nil {
		return fmt.Errorf("write %s: %w", c.CACertFile, err)
	}
	return nil
}

func (c *Cluster) writeHBA() error {
	// Both hostssl and host, so that clients can test sslmode=disable as well
	// as require and channel_binding=require.
	hba := "local all all scram-sha-256\n" +
		"hostssl all all 127.0.0.1/32 scram-sha-256\n" +
		"host all all 127.0.0.1/32 scram-sha-256\n"
	path := filepath.Join(c.DataDir, "pg_hba.conf")
	if err := os.WriteFile(path, []byte(hba), 0o600); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return c.runAs.Chown(path)
}

// start writes rotor.conf and runs pg_ctl start, picking another port when
// the chosen one was taken between picking and binding.
func (c *Cluster) start(ctx context.Context, opts Options) error {
	conf := filepath.Join(c.DataDir, "postgresql.conf")
	f, err := os.OpenFile(conf, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("open %s: %w", conf, err)
	}
	_, err = f.WriteString("\ninclude 'rotor.conf'\n")
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("append to %s: %w", conf, err)
	}

	var lastErr error
	for attempt := 0; attempt < startAttempts; attempt++ {
		port := opts.Port
		if port == 0 {
			if port, err = freePort(); err != nil {
				return err
			}
		}
		if err := c.writeConf(port, opts); err != nil {
			return err
		}
		logStart := fileSize(c.LogFile)
		c.say("start PostgreSQL on %s:%d", c.Host, port)
		_, lastErr = c.run(ctx, "pg_ctl", "-w", "-t", pgctlTimeout, "-D", c.DataDir, "-l", c.LogFile, "start")
		if lastErr == nil {
			c.Port = port
			return nil
		}
		if opts.Port != 0 || !c.portTaken(logStart) || ctx.Err() != nil {
			break
		}
	}
	return fmt.Errorf("%w; see the server log %s", lastErr, c.LogFile)
}

func (c *Cluster) writeConf(port int, opts Options) error {
	settings := [][2]string{
		{"port", strconv.Itoa(port)},
		{"listen_addresses", "127.0.0.1"},
		{"password_encryption", "scram-sha-256"},
		{"ssl", "on"},
		{"ssl_cert_file", "server.crt"},
		{"ssl_key_file", "server.key"},
		// Throwaway data: durability buys nothing and costs test time.
		{"fsync", "off"},
		{"synchronous_commit", "off"},
		{"full_page_writes", "off"},
		{"shared_buffers", "32MB"},
		{"max_connections", "300"},
	}
	// A unix socket path is limited to about 100 bytes; a deep Dir falls
	// back to TCP only rather than failing to start.
	socketDir := ""
	if len(c.DataDir) < 80 {
		socketDir = c.DataDir
	}
	settings = append(settings, [2]string{"unix_socket_directories", socketDir})
	if opts.LogStatements {
		settings = append(settings,
			[2]string{"log_statement", "all"},
			[2]string{"log_min_messages", "debug1"},
			[2]string{"log_connections", "on"},
			[2]string{"log_disconnections", "on"},
		)
	}
	keys := make([]string, 0, len(opts.Settings))
	for k := range opts.Settings {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		settings = append(settings, [2]string{k, opts.Settings[k]})
	}
	var b strings.Builder
	b.WriteString("# written by rotor's pgcluster; later lines win\n")
	for _, kv := range settings {
		fmt.Fprintf(&b, "%s = '%s'\n", kv[0], strings.ReplaceAll(kv[1], "'", "''"))
	}
	path := filepath.Join(c.DataDir, "rotor.conf")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return c.runAs.Chown(path)
}

func (c *Cluster) portTaken(logStart int64) bool {
	log, err := c.ServerLog()
	if err != nil || int64(len(log)) < logStart {
		return false
	}
	tail := log[logStart:]
	return bytes.Contains(tail, []byte("Address already in use")) ||
		bytes.Contains(tail, []byte("could not bind"))
}

// Stop shuts the server down (fast mode: sessions are disconnected) and
// removes Dir when Start created it. Calling it again does nothing.
func (c *Cluster) Stop(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped {
		return nil
	}
	_, err := c.run(ctx, "pg_ctl", "-w", "-t", pgctlTimeout, "-D", c.DataDir, "-m", "fast", "stop")
	if err != nil && c.running() {
		return fmt.Errorf("stop the cluster in %s (it is still running; stop it with `pg_ctl -D %s stop`): %w", c.Dir, c.DataDir, err)
	}
	c.stopped = true
	if c.removeDir {
		if err := os.RemoveAll(c.Dir); err != nil {
			return fmt.Errorf("remove cluster directory %s: %w", c.Dir, err)
		}
	}
	return nil
}

// Restart stops the server (fast mode, so every session is cut) and starts
// it again on the same port, for tests of what survives a server restart.
func (c *Cluster) Restart(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped {
		return errors.New("restart: the cluster was stopped; start a new one with pgcluster.Start")
	}
	c.say("restart PostgreSQL on %s:%d", c.Host, c.Port)
	if _, err := c.run(ctx, "pg_ctl", "-w", "-t", pgctlTimeout, "-D", c.DataDir, "-l", c.LogFile, "-m", "fast", "restart"); err != nil {
		return fmt.Errorf("%w; see the server log %s", err, c.LogFile)
	}
	return nil
}

// running reports whether a postmaster still holds the data dir.
func (c *Cluster) running() bool {
	_, err := os.Stat(filepath.Join(c.DataDir, "postmaster.pid"))
	return err == nil
}

// SuperPassword is the superuser's password.
func (c *Cluster) SuperPassword() secret.String { return c.superPassword }

// URL returns a postgresql:// URL for user on database, with sslmode=require
// unless params (each "key=value") say otherwise. User and password are
// percent-encoded, so any characters work.
func (c *Cluster) URL(user string, password secret.String, database string, params ...string) secret.String {
	q := url.Values{}
	q.Set("sslmode", "require")
	for _, p := range params {
		k, v, _ := strings.Cut(p, "=")
		q.Set(k, v)
	}
	u := url.URL{
		Scheme:   "postgresql",
		User:     url.User(user),
		Host:     net.JoinHostPort(c.Host, strconv.Itoa(c.Port)),
		Path:     "/" + database,
		RawQuery: q.Encode(),
	}
	if !password.IsZero() {
		u.User = url.UserPassword(user, password.Reveal())
	}
	return secret.New(u.String())
}

// AdminURL returns the superuser's URL for database (sslmode=require).
func (c *Cluster) AdminURL(database string) secret.String {
	return c.URL(c.SuperUser, c.superPassword, database)
}

// ServerLog returns everything the server has logged so far.
func (c *Cluster) ServerLog() ([]byte, error) {
	b, err := os.ReadFile(c.LogFile)
	if err != nil {
		return nil, fmt.Errorf("read the server log: %w", err)
	}
	return b, nil
}

// run runs a PostgreSQL binary as the server user and returns its output;
// the error carries the output, which is what explains a failed initdb.
func (c *Cluster) run(ctx context.Context, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, filepath.Join(c.BinDir, name), args...)
	cmd.Dir = c.Dir
	cmd.Env = serverEnv(c.runAs != nil)
	if c.root != "" {
		cmd.SysProcAttr = chrootAttr(c.root)
	}
	c.runAs.Apply(cmd)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	// pg_ctl's postmaster redirects its own output to the log file, but a
	// stray inherited descriptor must never make Wait hang forever.
	cmd.WaitDelay = 10 * time.Second
	if err := cmd.Run(); err != nil {
		return out.Bytes(), fmt.Errorf("%s failed: %s: %w", name, strings.TrimSpace(out.String()), err)
	}
	return out.Bytes(), nil
}

// serverEnv drops PG* variables: PGDATA, PGPORT and friends in the caller's
// environment must not redirect the throwaway cluster's tools. When the
// tools run as another user, that user's identity replaces the caller's.
func serverEnv(otherUser bool) []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "PG") {
			continue
		}
		if otherUser && (strings.HasPrefix(kv, "HOME=") || strings.HasPrefix(kv, "USER=") || strings.HasPrefix(kv, "LOGNAME=")) {
			continue
		}
		env = append(env, kv)
	}
	return env
}

func (c *Cluster) say(format string, args ...any) {
	if c.progress != nil {
		fmt.Fprintf(c.progress, format+"\n", args...)
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("pick a free port on 127.0.0.1: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func fileSize(path string) int64 {
	info, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return info.Size()
}

func randomPassword() (secret.String, error) {
	// Rejection sampling keeps every character equally likely.
	limit := 256 - 256%len(superPasswordAlphabet)
	out := make([]byte, 0, passwordLength)
	buf := make([]byte, passwordLength)
	for len(out) < passwordLength {
		if _, err := rand.Read(buf); err != nil {
			return secret.String{}, fmt.Errorf("generate the superuser password: %w", err)
		}
		for _, b := range buf {
			if int(b) < limit && len(out) < passwordLength {
				out = append(out, superPasswordAlphabet[int(b)%len(superPasswordAlphabet)])
			}
		}
	}
	return secret.New(string(out)), nil
}
