//go:build unix

package e2e_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/joho/godotenv"
	"github.com/stretchr/testify/require"

	"github.com/rotorhq/rotor/internal/connstr"
	"github.com/rotorhq/rotor/internal/pgbouncertest"
	"github.com/rotorhq/rotor/internal/pgcluster"
	"github.com/rotorhq/rotor/internal/pgtest"
	"github.com/rotorhq/rotor/internal/secret"
	"github.com/rotorhq/rotor/internal/store"
	"github.com/rotorhq/rotor/internal/store/storeurl"
)

// credSpec is one credential of a world's rotor.yaml.
type credSpec struct {
	name     string
	strategy string // "single" or "dual"
	// envFile is the dotenv target, relative to the world's directory;
	// default ".env.<name>".
	envFile string
	// extra is YAML added under the credential, indented four spaces.
	extra string
	// many adds targets: two more .env files, a slow exec target and a
	// flaky one (exits 75, "try again", on 30% of its runs; 12 attempts), each
	// leaving a dotenv file with DATABASE_URL behind — and a real PgBouncer
	// (a gatekeeper target) with a .env file of its pooled URL.
	many bool

	// Filled in by newWorld.
	roles []string
	group string
	// files are the dotenv files every target leaves, envFile first.
	files []string
}

// world is one test's rotor installation: a database of its own, roles of
// its own, a directory with rotor.yaml, the state store (.rotor/state.db),
// the key file (.rotor/key) and the dotenv targets.
type world struct {
	cl      *pgcluster.Cluster
	db      string
	dir     string
	cfgPath string
	creds   map[string]*credSpec
	env     []string

	mu    sync.Mutex
	runs  []result        // every rotor run, for leak scans
	known []secret.String // passwords seen, scrubbed from failure messages

	// strayTemps counts temporary files a SIGKILL left next to a target.
	strayTemps int
	// stateURL is the PostgreSQL store sharedStore gave the world (zero
	// for the SQLite file).
	stateURL secret.String
	// bouncerAdmin is the admin console of a credential's PgBouncer.
	bouncerAdmin secret.String
}

const cleanupTimeout = 30 * time.Second

// newWorld sets up a world on cl (nil: the package's shared cluster).
// Single credentials get a login role with a password only the test knows;
// dual credentials get role names only: `rotor setup-roles` creates them.
func newWorld(t *testing.T, cl *pgcluster.Cluster, specs ...credSpec) *world {
	t.Helper()
	w := &world{dir: t.TempDir(), creds: map[string]*credSpec{}}
	if cl == nil {
		w.cl = pgtest.Shared(t)
		w.db, _ = pgtest.NewDatabase(t)
	} else {
		w.cl = cl
		w.db = createDatabase(t, cl)
	}
	w.known = append(w.known, w.cl.SuperPassword())

	var yaml strings.Builder
	fmt.Fprintf(&yaml, `version: 1
defaults:
  provider:
    type: postgres
    admin_url: ${ADMIN_URL}
  connection:
    url: postgresql://%s:%d/%s?sslmode=require&channel_binding=require
  drain:
    timeout: 20s
    poll: 50ms
    grace: 200ms
    quiet: 300ms
credentials:
`, w.cl.Host, w.cl.Port, w.db)
	for _, s := range specs {
		if s.envFile == "" {
			s.envFile = ".env." + s.name
		}
		base := pgtest.UniqueName(t, s.name)
		fmt.Fprintf(&yaml, "  %s:\n    strategy: %s\n", s.name, s.strategy)
		switch s.strategy {
		case "single":
			s.roles = []string{base}
			pw, err := secret.Generate(nil, secret.DefaultPolicy())
			require.NoError(t, err)
			w.known = append(w.known, pw)
			pgtest.NewRole(t, w.cl, base, pw)
			fmt.Fprintf(&yaml, "    role: %s\n", base)
		case "dual":
			s.roles = []string{base + "_b", base + "_g"}
			s.group = base + "_grp"
			t.Cleanup(func() {
				ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
				defer cancel()
				for _, r := range append(slices.Clone(s.roles), s.group) {
					if err := pgtest.DropRole(ctx, w.cl, r); err != nil {
						t.Errorf("%v", err)
					}
				}
			})
			fmt.Fprintf(&yaml, "    roles: [%s, %s]\n    group: %s\n", s.roles[0], s.roles[1], s.group)
		default:
			t.Fatalf("unknown strategy %q", s.strategy)
		}
		yaml.WriteString(s.extra)
		var bouncerTargets string
		var pooled string
		if s.many {
			b := pgbouncertest.StartTB(t, pgbouncertest.Options{ServerHost: w.cl.Host, ServerPort: w.cl.Port,
				Databases: map[string]string{w.db: fmt.Sprintf("host=%s port=%d dbname=%s", w.cl.Host, w.cl.Port, w.db)},
				Settings:  map[string]string{"server_idle_timeout": "1"}})
			w.bouncerAdmin = b.AdminURL()
			w.known = append(w.known, b.AdminPassword())
			pooled = s.envFile + ".pooled"
			fmt.Fprintf(&yaml, `    connection:
      url: postgresql://%[1]s:%[2]d/%[3]s?sslmode=require&channel_binding=require
      pooled_url: postgresql://%[4]s:%[5]d/%[3]s?sslmode=disable
`, w.cl.Host, w.cl.Port, w.db, b.Host, b.Port)
			bouncerTargets = fmt.Sprintf("      - {name: bouncer, type: pgbouncer, auth_file: %q, admin_url: \"${PGBOUNCER_ADMIN_URL}\", values: {DATABASE_URL: \"{{.PooledURL}}\"}}\n", b.AuthFile) +
				fmt.Sprintf("      - {name: pooled, type: dotenv, path: %s, values: {DATABASE_URL: \"{{.PooledURL}}\"}}\n", pooled)
		}
		fmt.Fprintf(&yaml, `    targets:
      - name: env
        type: dotenv
        path: %s
        values:
          DATABASE_URL: "{{.URL}}"
`, s.envFile)
		s.files = []string{s.envFile}
		if s.many {
			yaml.WriteString(bouncerTargets)
			s.files = append(s.files, pooled)
			for i := 2; i <= 3; i++ {
				f := fmt.Sprintf("%s.%d", s.envFile, i)
				fmt.Fprintf(&yaml, "      - {name: env%d, type: dotenv, path: %s, values: {DATABASE_URL: \"{{.URL}}\"}}\n", i, f)
				s.files = append(s.files, f)
			}
			// The exec targets write what they read on stdin (dotenv) to a
			// file through a rename, as a careful script would.
			slow, flaky := s.envFile+".slow", s.envFile+".flaky"
			fmt.Fprintf(&yaml, `      - name: slow
        type: exec
        command: [sh, -c, 'sleep 0.2; cat > %[1]s.part && mv %[1]s.part %[1]s']
        stdin: dotenv
        idempotent: true
        values: {DATABASE_URL: "{{.URL}}"}
      - name: flaky
        type: exec
        command: [sh, -c, 'n=$$(od -An -N1 -tu1 /dev/urandom); [ $$n -ge 77 ] || exit 75; cat > %[2]s.part && mv %[2]s.part %[2]s']
        stdin: dotenv
        idempotent: true
        values: {DATABASE_URL: "{{.URL}}"}
    publish: {max_backoff: 100ms, attempts: 12}
`, slow, flaky)
			s.files = append(s.files, slow, flaky)
		}
		w.creds[s.name] = &s
	}
	w.cfgPath = filepath.Join(w.dir, "rotor.yaml")
	require.NoError(t, os.WriteFile(w.cfgPath, []byte(yaml.String()), 0o600))

	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "PG") || strings.HasPrefix(k, "ROTOR_") || k == "ADMIN_URL" {
			continue
		}
		w.env = append(w.env, kv)
	}
	w.env = append(w.env, "ADMIN_URL="+w.cl.AdminURL(w.db).Reveal(), "ROTOR_CONFIG="+w.cfgPath)
	if !w.bouncerAdmin.IsZero() {
		w.env = append(w.env, "PGBOUNCER_ADMIN_URL="+w.bouncerAdmin.Reveal())
	}
	return w
}

func createDatabase(t *testing.T, cl *pgcluster.Cluster) string {
	t.Helper()
	name := pgtest.UniqueName(t, "db")
	ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
	defer cancel()
	conn, err := pgx.Connect(ctx, cl.AdminURL("postgres").Reveal())
	require.NoError(t, secret.Scrub(err, cl.SuperPassword()))
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize())
	require.NoError(t, err)
	return name
}

// start runs rotor in the world's directory with the world's environment
// plus extra ("KEY=value").
func (w *world) start(t *testing.T, extra []string, args ...string) *proc {
	t.Helper()
	p, err := startRotor(w.dir, append(slices.Clone(w.env), extra...), args...)
	require.NoError(t, err)
	return p
}

// finish waits for p and records its output for leak scans.
func (w *world) finish(p *proc) result {
	r := p.wait()
	w.mu.Lock()
	w.runs = append(w.runs, r)
	w.mu.Unlock()
	return r
}

// rotor runs one command to its end.
func (w *world) rotor(t *testing.T, extra []string, args ...string) result {
	t.Helper()
	return w.finish(w.start(t, extra, args...))
}

// mustRotor runs one command that must exit 0.
func (w *world) mustRotor(t *testing.T, args ...string) result {
	t.Helper()
	r := w.rotor(t, nil, args...)
	require.Equal(t, 0, r.code, "rotor %s:\n%s", strings.Join(args, " "), w.scrub(r.output()))
	return r
}

// scrub removes every password the test knows of from text that goes into
// a failure message.
func (w *world) scrub(s string) string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return secret.ScrubString(s, w.known...)
}

func (w *world) learn(pw secret.String) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !pw.IsZero() && !slices.ContainsFunc(w.known, pw.Equal) {
		w.known = append(w.known, pw)
	}
}

// snapshot is what the store says about one credential.
type snapshot struct {
	current []*store.Version
	pending []*store.Version
	active  []*store.Rotation
	last    *store.Rotation // newest rotation, finished or not
	journal []*store.Step   // of last
	secrets map[int64]secret.String
}

func (s snapshot) describe() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d current, %d pending, %d active rotation(s)", len(s.current), len(s.pending), len(s.active))
	if s.last != nil {
		fmt.Fprintf(&b, "; rotation %d %s, journal:", s.last.ID, s.last.Status)
		for _, st := range s.journal {
			fmt.Fprintf(&b, " %s:%s", st.Name, st.Status)
		}
	}
	return b.String()
}

// journaled reports whether the last rotation's journal has step in status.
func (s snapshot) journaled(step string, status store.StepStatus) bool {
	return slices.ContainsFunc(s.journal, func(st *store.Step) bool { return st.Name == step && st.Status == status })
}

// openStore opens the store the world's rotor runs use: ROTOR_STATE_URL
// once sharedStore gave the world one, else .rotor/state.db.
func (w *world) openStore(t *testing.T) store.Store {
	t.Helper()
	location := filepath.Join(w.dir, ".rotor", "state.db")
	for _, kv := range w.env {
		if u, ok := strings.CutPrefix(kv, "ROTOR_STATE_URL="); ok {
			location = u
		}
	}
	st, err := storeurl.Open(t.Context(), location)
	require.NoError(t, err)
	return st
}

// inspect reads the store directly; no rotor process may run meanwhile.
// Sealed secrets are opened with the key file, as the engine does.
func (w *world) inspect(t *testing.T, cred string) snapshot {
	t.Helper()
	ctx := t.Context()
	st := w.openStore(t)
	defer st.Close()
	var err error
	var s snapshot
	s.current, err = st.ListVersions(ctx, store.ListVersionsParams{Credential: cred, Stages: []store.Stage{store.StageCurrent}})
	require.NoError(t, err)
	s.pending, err = st.ListVersions(ctx, store.ListVersionsParams{Credential: cred, Stages: []store.Stage{store.StagePending}})
	require.NoError(t, err)
	s.active, err = st.ListRotations(ctx, store.ListRotationsParams{Credential: cred, Active: true})
	require.NoError(t, err)
	rots, err := st.ListRotations(ctx, store.ListRotationsParams{Credential: cred, Limit: 1})
	require.NoError(t, err)
	if len(rots) > 0 {
		s.last = rots[0]
		s.journal, err = st.ListSteps(ctx, store.ListStepsParams{RotationID: s.last.ID})
		require.NoError(t, err)
	}
	s.secrets = map[int64]secret.String{}
	all, err := st.ListVersions(ctx, store.ListVersionsParams{Credential: cred})
	require.NoError(t, err)
	for _, v := range all {
		if v.Sealed != nil {
			s.secrets[v.ID] = w.open(t, v)
		}
	}
	return s
}

// open decrypts a version's password. The additional data and the JSON
// layout are the engine's (engine.aad and engine.material): if they change,
// this fails loudly rather than passing.
func (w *world) open(t *testing.T, v *store.Version) secret.String {
	t.Helper()
	key, _, err := secret.LoadKey(func(string) string { return "" }, filepath.Join(w.dir, ".rotor", "key"), false)
	require.NoError(t, err)
	sealer, err := secret.NewSealer(key)
	require.NoError(t, err)
	plain, err := sealer.Open(v.Sealed, []byte("rotor/v1/version\x00"+v.Credential+"\x00"+v.Role))
	require.NoError(t, err, "open version %d of %s", v.Seq, v.Credential)
	var m struct {
		Password string `json:"p"`
	}
	require.NoError(t, json.Unmarshal(plain, &m), "version %d of %s: sealed material is not the engine's JSON", v.Seq, v.Credential)
	pw := secret.New(m.Password)
	w.learn(pw)
	return pw
}

// login connects as a consumer does: TLS with channel binding.
func (w *world) login(ctx context.Context, role string, pw secret.String) error {
	return pgtest.CanLogin(ctx, w.cl.URL(role, pw, w.db, "sslmode=require", "channel_binding=require"))
}

// envConn is the credential's DATABASE_URL as its .env file holds it now;
// nil when the file or the key does not exist yet.
func (w *world) envConn(t *testing.T, cred string) (*connstr.Conn, secret.String) {
	t.Helper()
	return w.fileConn(t, w.creds[cred].envFile)
}

// fileConn is DATABASE_URL as the dotenv file name (relative to the
// world's directory) holds it now; nil when the file or the key does not
// exist yet.
func (w *world) fileConn(t *testing.T, name string) (*connstr.Conn, secret.String) {
	t.Helper()
	path := filepath.Join(w.dir, name)
	m, err := godotenv.Read(path)
	if os.IsNotExist(err) {
		return nil, secret.String{}
	}
	require.NoError(t, err)
	raw, ok := m["DATABASE_URL"]
	if !ok {
		return nil, secret.String{}
	}
	url := secret.New(raw)
	w.learn(url)
	c, err := connstr.Parse(raw)
	require.NoError(t, secret.Scrub(err, url), "DATABASE_URL in %s does not parse", path)
	w.learn(c.Password)
	return c, url
}

func (w *world) envPath(cred string) string { return filepath.Join(w.dir, w.creds[cred].envFile) }

// version is one password the store made current, as a test remembers it.
type version struct {
	seq  int64
	role string
	pw   secret.String
}

// requireSettled asserts the state every finished command must leave: no
// unfinished rotation, one current version and no pending one, a .env file
// whose DATABASE_URL logs in with sslmode=require and
// channel_binding=require and holds exactly the store's current password.
// When the current version is newer than before, the password before it
// must no longer log in (single: replaced; dual: its role retired) unless
// the rotation reported the old role still in use. It returns the current
// version.
func (w *world) requireSettled(t *testing.T, cred string, before *version) *version {
	t.Helper()
	ctx := t.Context()
	cs := w.creds[cred]
	s := w.inspect(t, cred)
	require.Empty(t, s.active, "an unfinished rotation is left: %s", s.describe())
	require.Len(t, s.current, 1, "exactly one current version: %s", s.describe())
	require.Empty(t, s.pending, "no pending version may be left: %s", s.describe())
	cur := s.current[0]
	curPW, ok := s.secrets[cur.ID]
	require.True(t, ok, "the current version's secret must not be wiped")

	conn, url := w.envConn(t, cred)
	require.NotNil(t, conn, "%s must hold DATABASE_URL", cs.envFile)
	require.Equal(t, cur.Role, conn.User, ".env must name the store's current role")
	require.True(t, curPW.Equal(conn.Password), ".env must hold the store's current password (version %d)", cur.Seq)
	for _, p := range []string{"sslmode", "channel_binding"} {
		v, _ := conn.Param(p)
		require.Equal(t, "require", v, "DATABASE_URL must keep %s=require", p)
	}
	require.NoError(t, pgtest.CanLogin(ctx, url), "DATABASE_URL from %s must log in", cs.envFile)
	for _, f := range cs.files[1:] {
		other, otherURL := w.fileConn(t, f)
		require.NotNil(t, other, "%s must hold DATABASE_URL", f)
		if strings.HasSuffix(f, ".pooled") {
			require.Equal(t, conn.User, other.User, "%s must name the current role", f)
			require.True(t, other.Password.Equal(conn.Password), "%s must hold the current password", f)
			require.NoError(t, pgtest.CanLogin(ctx, otherURL), "%s must log in through PgBouncer", f)
			continue
		}
		require.True(t, otherURL.Equal(url), "%s must hold the same DATABASE_URL as %s", f, cs.envFile)
	}

	requireNoStrayTempFiles(t, filepath.Dir(w.envPath(cred)))

	now := &version{seq: cur.Seq, role: cur.Role, pw: curPW}
	if before == nil || now.seq == before.seq {
		return now
	}
	require.Greater(t, now.seq, before.seq)
	switch {
	case cs.strategy == "single":
		require.Equal(t, before.role, now.role)
		requireRefused(t, w.login(ctx, before.role, before.pw), "single: the replaced password of %s", before.role)
	case s.last != nil && s.last.Status == store.StatusOldInUse:
		require.NotEqual(t, before.role, now.role, "dual: the new password goes to the other role")
		require.NoError(t, w.login(ctx, before.role, before.pw), "dual: an old role reported in use must keep working")
	default:
		require.NotEqual(t, before.role, now.role, "dual: the new password goes to the other role")
		requireRefused(t, w.login(ctx, before.role, before.pw), "dual: the retired role %s", before.role)
	}
	return now
}

func requireRefused(t *testing.T, err error, what string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(what, args...)
	require.Error(t, err, "%s must no longer log in", msg)
	require.Contains(t, err.Error(), "password authentication failed", msg)
}

// requireNoStrayTempFiles: atomicfile's temporary files hold the new
// secret; none may outlive a finished command.
func requireNoStrayTempFiles(t *testing.T, dir string) {
	t.Helper()
	stray, err := filepath.Glob(filepath.Join(dir, ".*.rotor-*.tmp"))
	require.NoError(t, err)
	require.Empty(t, stray, "temporary files holding a secret were left next to the target")
}

// unfinishedShown reports whether `rotor status` reports an unfinished
// rotation of cred.
func (w *world) unfinishedShown(t *testing.T, cred string) bool {
	t.Helper()
	r := w.mustRotor(t, "status", cred)
	return strings.Contains(r.stdout, "unfinished")
}
