// Package pgbouncertest starts a real, throwaway PgBouncer (the system's
// binary, from Debian's pgbouncer package) in front of a PostgreSQL server,
// for tests and benchmarks of the pgbouncer target.
//
// The bouncer authenticates clients with SCRAM against its own auth_file
// and passes SCRAM through to the server (the databases it serves name no
// user), which is the set-up targets-api.md §11 describes: a client logs in
// through PgBouncer only while the auth_file holds the very verifier the
// server holds. An admin user (in admin_users, with a random password) can
// run RELOAD on the admin console.
//
// The package does not import testing, so benchmarks and demos can start a
// bouncer too; StartTB is the convenience for tests.
package pgbouncertest

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/rotorhq/rotor/internal/osuser"
	"github.com/rotorhq/rotor/internal/pgcluster"
	"github.com/rotorhq/rotor/internal/secret"
)

// ErrBinaryNotFound means the pgbouncer executable is not installed.
var ErrBinaryNotFound = errors.New("pgbouncer not found on PATH or in /usr/sbin; install it with `apt-get install pgbouncer`")

// AdminUser is the admin console user every bouncer is started with.
const AdminUser = "rotor_admin"

// Options configures Start.
type Options struct {
	// ServerHost and ServerPort locate the PostgreSQL server; required.
	ServerHost string
	ServerPort int
	// Databases maps a database name clients use to the libpq-style
	// connection settings PgBouncer uses for it ("host=… port=… dbname=…").
	// nil serves every database under its own name through a "*" entry;
	// either way no user is set, so clients' SCRAM passes through.
	Databases map[string]string
	// Settings are extra [pgbouncer] settings; they override the defaults
	// (e.g. "server_idle_timeout": "1" so pooled server connections of a
	// drained role close quickly).
	Settings map[string]string
	// Dir is the working directory (config, auth_file, log); "" creates
	// one under os.TempDir that Stop removes.
	Dir string
	// Binary is the pgbouncer executable; "" finds it.
	Binary string
	// ClientTLS makes the bouncer require TLS from clients (a throwaway
	// self-signed certificate for 127.0.0.1, CACertFile); URL then asks
	// for sslmode=require.
	ClientTLS bool
}

// Bouncer is a running PgBouncer.
type Bouncer struct {
	Host string
	Port int
	// Dir holds ConfigFile, AuthFile and LogFile.
	Dir        string
	ConfigFile string
	// AuthFile is PgBouncer's auth_file (userlist.txt). It starts with the
	// admin user's entry; tests add roles to it (the pgbouncer target).
	AuthFile string
	LogFile  string
	// CACertFile is the certificate clients can verify the bouncer with
	// (verify-full); set only with Options.ClientTLS.
	CACertFile string

	adminPassword secret.String
	clientTLS     bool
	runAs         *osuser.User
	removeDir     bool
	cmd           *exec.Cmd
	exited        chan struct{}
	waitErr       error

	mu      sync.Mutex
	stopped bool
}

const (
	startAttempts = 5
	readyTimeout  = 30 * time.Second
	stopTimeout   = 30 * time.Second
)

// FindBinary returns the pgbouncer executable: on PATH, else Debian's
// /usr/sbin (not on a non-root user's PATH).
func FindBinary() (string, error) {
	if p, err := exec.LookPath("pgbouncer"); err == nil {
		return p, nil
	}
	for _, p := range []string{"/usr/sbin/pgbouncer", "/usr/local/sbin/pgbouncer", "/usr/local/bin/pgbouncer"} {
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", ErrBinaryNotFound
}

// Start writes a configuration and starts PgBouncer on a free port of
// 127.0.0.1, returning once it accepts connections. Call Stop to end it.
func Start(ctx context.Context, opts Options) (*Bouncer, error) {
	if opts.ServerHost == "" || opts.ServerPort == 0 {
		return nil, errors.New("pgbouncertest: ServerHost and ServerPort are required; pass the PostgreSQL cluster's Host and Port")
	}
	bin := opts.Binary
	if bin == "" {
		var err error
		if bin, err = FindBinary(); err != nil {
			return nil, err
		}
	}
	runAs, err := osuser.ForServer(ctx, "PgBouncer")
	if err != nil {
		return nil, err
	}
	pw, err := randomPassword()
	if err != nil {
		return nil, err
	}
	b := &Bouncer{Host: "127.0.0.1", adminPassword: pw, runAs: runAs}
	if err := b.makeDir(opts.Dir); err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok && b.removeDir {
			_ = os.RemoveAll(b.Dir)
		}
	}()
	b.ConfigFile = filepath.Join(b.Dir, "pgbouncer.ini")
	b.AuthFile = filepath.Join(b.Dir, "userlist.txt")
	b.LogFile = filepath.Join(b.Dir, "pgbouncer.log")
	if err := b.writeAuthFile(); err != nil {
		return nil, err
	}
	if opts.ClientTLS {
		if err := b.writeTLS(); err != nil {
			return nil, err
		}
	}
	var lastErr error
	for range startAttempts {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		if err := b.writeConfig(port, opts); err != nil {
			return nil, err
		}
		logStart := fileSize(b.LogFile)
		lastErr = b.start(ctx, bin, port)
		if lastErr == nil {
			b.Port = port
			ok = true
			return b, nil
		}
		if ctx.Err() != nil || !b.portTaken(logStart) {
			break
		}
	}
	return nil, fmt.Errorf("%w; see the PgBouncer log %s", lastErr, b.LogFile)
}

func (b *Bouncer) makeDir(dir string) error {
	if dir == "" {
		d, err := os.MkdirTemp("", "rotor-pgbouncer-")
		if err != nil {
			return fmt.Errorf("create a directory for PgBouncer: %w", err)
		}
		b.Dir, b.removeDir = d, true
	} else {
		abs, err := filepath.Abs(dir)
		if err != nil {
			return fmt.Errorf("PgBouncer directory %q: %w", dir, err)
		}
		if err := os.MkdirAll(abs, 0o700); err != nil {
			return fmt.Errorf("create PgBouncer directory %s: %w", abs, err)
		}
		b.Dir = abs
	}
	if err := b.runAs.Chown(b.Dir); err != nil {
		return err
	}
	return b.runAs.CheckReachable(b.Dir)
}

// writeAuthFile starts the auth_file with the admin user, whose SCRAM
// verifier PgBouncer checks itself (the admin console has no server).
func (b *Bouncer) writeAuthFile() error {
	v, err := secret.SCRAMVerifier(nil, b.adminPassword)
	if err != nil {
		return fmt.Errorf("admin user's verifier: %w", err)
	}
	content := "; written by rotor's pgbouncertest\n" + Entry(AdminUser, v.Reveal())
	if err := os.WriteFile(b.AuthFile, []byte(content), 0o600); err != nil {
		return fmt.Errorf("write %s: %w", b.AuthFile, err)
	}
	return b.runAs.Chown(b.AuthFile)
}

// writeTLS writes the certificate and key PgBouncer serves clients with.
func (b *Bouncer) writeTLS() error {
	certPEM, keyPEM, err := pgcluster.SelfSignedCert(time.Now())
	if err != nil {
		return err
	}
	b.clientTLS = true
	b.CACertFile = filepath.Join(b.Dir, "client.crt")
	for path, data := range map[string][]byte{b.CACertFile: certPEM, filepath.Join(b.Dir, "client.key"): keyPEM} {
		if err := os.WriteFile(path, data, 0o600); err != nil {
			return fmt.Errorf("write %s: %w", path, err)
		}
		if err := b.runAs.Chown(path); err != nil {
			return err
		}
	}
	return nil
}

// Entry is one auth_file line: both fields double-quoted, a quote doubled.
func Entry(user, secretText string) string {
	q := func(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }
	return q(user) + " " + q(secretText) + "\n"
}

func (b *Bouncer) writeConfig(port int, opts Options) error {
	dbs := opts.Databases
	if dbs == nil {
		// The fallback database: any name goes to the same name upstream.
		dbs = map[string]string{"*": fmt.Sprintf("host=%s port=%d", opts.ServerHost, opts.ServerPort)}
	}
	settings := map[string]string{
		"listen_addr": "127.0.0.1",
		"listen_port": strconv.Itoa(port),
		// No unix socket: parallel bouncers would fight over /tmp/.s.PGSQL.<port>.
		"unix_socket_dir":           "",
		"auth_type":                 "scram-sha-256",
		"auth_file":                 b.AuthFile,
		"admin_users":               AdminUser,
		"logfile":                   b.LogFile,
		"pidfile":                   filepath.Join(b.Dir, "pgbouncer.pid"),
		"pool_mode":                 "session",
		"server_tls_sslmode":        "require",
		"max_client_conn":           "200",
		"default_pool_size":         "20",
		"server_login_retry":        "1",
		"ignore_startup_parameters": "extra_float_digits",
	}
	if b.clientTLS {
		settings["client_tls_sslmode"] = "require"
		settings["client_tls_cert_file"] = b.CACertFile
		settings["client_tls_key_file"] = filepath.Join(b.Dir, "client.key")
	}
	for k, v := range opts.Settings {
		settings[k] = v
	}
	var sb strings.Builder
	sb.WriteString(";; written by rotor's pgbouncertest\n[databases]\n")
	for _, name := range sortedKeys(dbs) {
		fmt.Fprintf(&sb, "%s = %s\n", name, dbs[name])
	}
	sb.WriteString("\n[pgbouncer]\n")
	for _, k := range sortedKeys(settings) {
		fmt.Fprintf(&sb, "%s = %s\n", k, settings[k])
	}
	if err := os.WriteFile(b.ConfigFile, []byte(sb.String()), 0o600); err != nil {
		return fmt.Errorf("write %s: %w", b.ConfigFile, err)
	}
	return b.runAs.Chown(b.ConfigFile)
}

func (b *Bouncer) start(ctx context.Context, bin string, port int) error {
	// Not CommandContext: the bouncer outlives the context that started it.
	cmd := exec.Command(bin, b.ConfigFile)
	cmd.Dir = b.Dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "LANG=C"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	dieWithParent(cmd.SysProcAttr)
	b.runAs.Apply(cmd)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", bin, err)
	}
	exited := make(chan struct{})
	go func() {
		b.waitErr = cmd.Wait()
		close(exited)
	}()
	deadline := time.Now().Add(readyTimeout)
	addr := net.JoinHostPort(b.Host, strconv.Itoa(port))
	for {
		select {
		case <-exited:
			return fmt.Errorf("pgbouncer exited at start (%v): %s", b.waitErr, strings.TrimSpace(stderr.String()))
		default:
		}
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			b.cmd, b.exited = cmd, exited
			return nil
		}
		if ctx.Err() != nil || time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			<-exited
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("pgbouncer did not accept connections on %s within %s", addr, readyTimeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// portTaken reports whether the attempt that logged after logStart failed
// because another process bound the port first.
func (b *Bouncer) portTaken(logStart int64) bool {
	log, err := os.ReadFile(b.LogFile)
	if err != nil || int64(len(log)) < logStart {
		return false
	}
	return bytes.Contains(log[logStart:], []byte("Address already in use"))
}

// Stop shuts PgBouncer down and removes Dir when Start created it. Calling
// it again does nothing.
func (b *Bouncer) Stop(ctx context.Context) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.stopped {
		return nil
	}
	// SIGINT is PgBouncer's "safe shutdown": it waits for clients to
	// finish, which a test's leftover sessions may never do; SIGTERM is
	// the immediate one.
	_ = b.cmd.Process.Signal(syscall.SIGTERM)
	timer := time.NewTimer(stopTimeout)
	defer timer.Stop()
	select {
	case <-b.exited:
	case <-ctx.Done():
		_ = b.cmd.Process.Kill()
		<-b.exited
	case <-timer.C:
		_ = b.cmd.Process.Kill()
		<-b.exited
	}
	b.stopped = true
	if b.removeDir {
		if err := os.RemoveAll(b.Dir); err != nil {
			return fmt.Errorf("remove PgBouncer directory %s: %w", b.Dir, err)
		}
	}
	return nil
}

// AdminURL is the admin console's URL (database "pgbouncer"). The console
// speaks only the simple query protocol.
func (b *Bouncer) AdminURL() secret.String {
	return b.URL(AdminUser, b.adminPassword, "pgbouncer")
}

// AdminPassword is the admin user's password.
func (b *Bouncer) AdminPassword() secret.String { return b.adminPassword }

// URL returns a postgresql:// URL through the bouncer for user on
// database: sslmode=require with Options.ClientTLS, else sslmode=disable.
// (PgBouncer does not offer SCRAM channel binding, so no
// channel_binding=require.)
func (b *Bouncer) URL(user string, password secret.String, database string) secret.String {
	u := url.URL{
		Scheme:   "postgresql",
		User:     url.User(user),
		Host:     net.JoinHostPort(b.Host, strconv.Itoa(b.Port)),
		Path:     "/" + database,
		RawQuery: "sslmode=disable",
	}
	if b.clientTLS {
		u.RawQuery = "sslmode=require"
	}
	if !password.IsZero() {
		u.User = url.UserPassword(user, password.Reveal())
	}
	return secret.New(u.String())
}

// Log returns what PgBouncer has logged so far.
func (b *Bouncer) Log() ([]byte, error) {
	data, err := os.ReadFile(b.LogFile)
	if err != nil {
		return nil, fmt.Errorf("read the PgBouncer log: %w", err)
	}
	return data, nil
}

// ChownToServer gives path to the OS user PgBouncer runs as (when the
// caller is root), so a file a test writes next to the auth_file stays
// readable by the bouncer.
func (b *Bouncer) ChownToServer(path string) error { return b.runAs.Chown(path) }

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("pick a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func fileSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}

func randomPassword() (secret.String, error) {
	const alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789"
	buf := make([]byte, 32)
	if _, err := rand.Read(buf); err != nil {
		return secret.String{}, fmt.Errorf("admin password: %w", err)
	}
	for i := range buf {
		buf[i] = alphabet[int(buf[i])%len(alphabet)]
	}
	return secret.New(string(buf)), nil
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
