package main

// The Neon mode (-neon): the load scenario against the Neon fake
// (internal/provider/neon/neonfake) for three ways side by side — dual
// with method sql, dual with method api, single with method api.
//
// The fake's endpoint hosts (ep-….<region>.aws.neon.tech) do not resolve
// and its endpoints listen on random ports, while rotor and the consumers
// take their hosts from Neon's API and connect to port 5432, as on Neon.
// So this process plays Neon's DNS: net.DefaultResolver (which pgx uses
// for every lookup, rotor's own included) answers each endpoint host,
// direct or -pooler, with a loopback address of its own, and a forwarder
// on that address's port 5432 passes the bytes to the fake's proxy for
// the endpoint (Server.Route). Host names, SNI and certificate checks stay
// as they are on Neon.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5"
	"golang.org/x/net/dns/dnsmessage"

	"github.com/rotorhq/rotor/internal/pgcluster"
	"github.com/rotorhq/rotor/internal/provider/neon/neonfake"
	"github.com/rotorhq/rotor/internal/secret"
)

// neonWays are the Neon mode's ways, in table order: the credential's
// name in rotor.yaml, the row's name.
var neonWays = []struct{ cred, name string }{
	{"dual_sql", "rotor dual, method sql"},
	{"dual_api", "rotor dual, method api"},
	{"single_api", "rotor single, method api"},
}

// neonPath is the consumers' path in the table.
const neonPath = "Neon fake, direct"

// runNeon measures the Neon ways under load.
func runNeon(ctx context.Context, o options) ([]row, error) {
	dir, err := os.MkdirTemp("", "rotor-bench-neon-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	if err := os.Chmod(dir, 0o711); err != nil {
		return nil, err
	}
	fmt.Fprintln(os.Stderr, "starting a throwaway PostgreSQL to play the Neon compute…")
	cl, err := pgcluster.Start(ctx, pgcluster.Options{Dir: filepath.Join(dir, "pg"), Settings: map[string]string{"max_connections": "200"}})
	if err != nil {
		return nil, err
	}
	defer cl.Stop(context.WithoutCancel(ctx))
	fake := neonfake.New(neonfake.Config{})
	defer fake.Close()
	main, err := fake.AddBranch(ctx, neonfake.BranchSpec{Name: "main", Cluster: cl})
	if err != nil {
		return nil, err
	}
	if _, err := fake.AddDatabase(ctx, main.ID, "neondb", "neondb_owner"); err != nil {
		return nil, err
	}
	dns, err := startNeonDNS(fake)
	if err != nil {
		return nil, err
	}
	defer dns.close()
	net.DefaultResolver = &net.Resolver{PreferGo: true, Dial: dns.dial}

	// app_single exists as a role made over SQL would: created on the
	// compute directly (a verifier, not the plaintext).
	admin, err := pgx.Connect(ctx, cl.AdminURL("postgres").Reveal())
	if err != nil {
		return nil, secret.Scrub(err, cl.SuperPassword())
	}
	pw, err := secret.Generate(nil, secret.DefaultPolicy())
	if err != nil {
		admin.Close(ctx)
		return nil, err
	}
	v, err := secret.SCRAMVerifier(nil, pw)
	if err != nil {
		admin.Close(ctx)
		return nil, err
	}
	_, err = admin.Exec(ctx, "CREATE ROLE app_single LOGIN PASSWORD '"+v.Reveal()+"'")
	admin.Close(ctx)
	if err != nil {
		return nil, secret.Scrub(err, v)
	}

	bn := &bench{ctx: ctx, o: o, dir: dir,
		direct: fmt.Sprintf("postgresql://%s/neondb?sslmode=require&channel_binding=require", main.Host),
		env:    map[string]string{"NEON_API_KEY": fake.APIKey, "ROTOR_CONFIG": filepath.Join(dir, "rotor.yaml")}}
	for name, text := range map[string]string{"stage.sh": stageScript, "go-live.sh": goLiveScript} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o700); err != nil {
			return nil, err
		}
	}
	var creds []string
	for _, w := range neonWays {
		creds = append(creds, w.cred)
		if err := os.Mkdir(filepath.Join(dir, "deploy-"+w.cred), 0o700); err != nil {
			return nil, err
		}
	}
	if err := os.WriteFile(bn.env["ROTOR_CONFIG"], []byte(bn.neonConfig(fake)), 0o600); err != nil {
		return nil, err
	}
	for _, c := range []string{"dual_sql", "dual_api"} {
		if err := bn.rotor("setup-roles", c); err != nil {
			return nil, err
		}
	}
	if err := bn.rotor(append([]string{"rotate"}, creds...)...); err != nil {
		return nil, err
	}
	var rows []row
	for _, nw := range neonWays {
		w := way{name: nw.name, path: neonPath, cred: nw.cred}
		r, err := bn.measure(w, false, o.rotations, func() error { return bn.rotor("rotate", w.cred) })
		if err != nil {
			return nil, err
		}
		rows = append(rows, r)
	}
	return rows, nil
}

// neonConfig is rotor.yaml of the Neon ways: one provider per method,
// consumers given the direct host ({{.DirectURL}}).
func (bn *bench) neonConfig(fake *neonfake.Server) string {
	prov := func(method string) string {
		return fmt.Sprintf(`{type: neon, api_key: "${NEON_API_KEY}", api_url: %q, project_id: %q, database: neondb, method: %s, sslrootcert: %q}`,
			fake.URL, fake.ProjectID, method, fake.CACertFile)
	}
	return fmt.Sprintf(`version: 1
credentials:
  dual_sql:
    provider: %[1]s
    strategy: dual
    roles: [sql_blue, sql_green]
    group: sql_owner
    drain: %[3]s
    targets:
      - {name: env, type: dotenv, path: .env.dual_sql, values: {DATABASE_URL: "{{.DirectURL}}"}}
      - %[4]s
  dual_api:
    provider: %[2]s
    strategy: dual
    roles: [api_blue, api_green]
    group: api_owner
    drain: %[3]s
    targets:
      - {name: env, type: dotenv, path: .env.dual_api, values: {DATABASE_URL: "{{.DirectURL}}"}}
      - %[5]s
  single_api:
    provider: %[2]s
    strategy: single
    role: app_single
    targets:
      - {name: env, type: dotenv, path: .env.single_api, values: {DATABASE_URL: "{{.DirectURL}}"}}
      - %[6]s
`, prov("sql"), prov("api"), drain, bn.deployTarget("dual_sql", "{{.DirectURL}}"), bn.deployTarget("dual_api", "{{.DirectURL}}"), bn.deployTarget("single_api", "{{.DirectURL}}"))
}

// neonDNS answers the fake's endpoint hosts with a loopback address each
// and forwards that address's port 5432 to the endpoint's proxy.
type neonDNS struct {
	fake *neonfake.Server

	mu    sync.Mutex
	byDst map[int]net.IP // the proxy's port → the address that forwards to it
	lns   []net.Listener
	next  byte
}

func startNeonDNS(fake *neonfake.Server) (*neonDNS, error) {
	return &neonDNS{fake: fake, byDst: map[int]net.IP{}, next: 1}, nil
}

func (d *neonDNS) close() {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, l := range d.lns {
		l.Close()
	}
}

// addr is the loopback address that reaches host, started on first use;
// ok false for a host that is no endpoint of the fake.
func (d *neonDNS) addr(host string) (net.IP, bool, error) {
	_, port, ok := d.fake.Route(strings.TrimSuffix(host, "."))
	if !ok {
		return nil, false, nil
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if ip, ok := d.byDst[port]; ok {
		return ip, true, nil
	}
	ip := net.IPv4(127, 77, 0, d.next)
	l, err := net.Listen("tcp", net.JoinHostPort(ip.String(), "5432"))
	if err != nil {
		return nil, false, fmt.Errorf("play Neon's DNS: listen on %s:5432 for the endpoint %s: %w", ip, host, err)
	}
	d.next++
	d.lns = append(d.lns, l)
	d.byDst[port] = ip
	go forward(l, fmt.Sprintf("127.0.0.1:%d", port))
	return ip, true, nil
}

// forward passes every connection to l on to dst, both ways; when either
// side ends, both do, as a TCP path would.
func forward(l net.Listener, dst string) {
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			s, err := net.Dial("tcp", dst)
			if err != nil {
				return
			}
			defer s.Close()
			done := make(chan struct{}, 2)
			go func() { _, _ = io.Copy(s, c); done <- struct{}{} }()
			go func() { _, _ = io.Copy(c, s); done <- struct{}{} }()
			<-done
		}()
	}
}

// dial is net.Resolver's Dial: a stream connection (the resolver frames
// its messages as over TCP) to an in-process server that answers A
// queries for the fake's hosts and says NXDOMAIN for every other name.
func (d *neonDNS) dial(ctx context.Context, _, _ string) (net.Conn, error) {
	client, server := net.Pipe()
	go d.serve(server)
	return client, nil
}

func (d *neonDNS) serve(c net.Conn) {
	defer c.Close()
	for {
		var n [2]byte
		if _, err := io.ReadFull(c, n[:]); err != nil {
			return
		}
		msg := make([]byte, int(n[0])<<8|int(n[1]))
		if _, err := io.ReadFull(c, msg); err != nil {
			return
		}
		resp, err := d.answer(msg)
		if err != nil {
			fmt.Fprintln(os.Stderr, "rotor-bench:", err)
			return
		}
		if _, err := c.Write(append([]byte{byte(len(resp) >> 8), byte(len(resp))}, resp...)); err != nil {
			return
		}
	}
}

func (d *neonDNS) answer(msg []byte) ([]byte, error) {
	var p dnsmessage.Parser
	h, err := p.Start(msg)
	if err != nil {
		return nil, err
	}
	q, err := p.Question()
	if err != nil {
		return nil, err
	}
	rh := dnsmessage.Header{ID: h.ID, Response: true, Authoritative: true, RecursionAvailable: true}
	ip, ok, err := d.addr(q.Name.String())
	if err != nil {
		return nil, err
	}
	if !ok {
		rh.RCode = dnsmessage.RCodeNameError
	}
	b := dnsmessage.NewBuilder(nil, rh)
	b.EnableCompression()
	if err := b.StartQuestions(); err != nil {
		return nil, err
	}
	if err := b.Question(q); err != nil {
		return nil, err
	}
	if err := b.StartAnswers(); err != nil {
		return nil, err
	}
	if ok && q.Type == dnsmessage.TypeA {
		var a [4]byte
		copy(a[:], ip.To4())
		if err := b.AResource(dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: 60}, dnsmessage.AResource{A: a}); err != nil {
			return nil, err
		}
	}
	out, err := b.Finish()
	if err != nil {
		return nil, errors.Join(errors.New("play Neon's DNS"), err)
	}
	return out, nil
}

// printNeonTable is the Neon ways' table: per way and consumer kind,
// failed connections and dropped sessions.
func printNeonTable(w io.Writer, rows []row, o options) {
	fmt.Fprintf(w, "Neon fake, per way: %d re-readers of .env, %d deployment request workers and %d serverless functions (reading the deployment's live file; its reload takes %s), a pgxpool of %d connections living at most %s (reading .env)\n\n",
		o.workers, o.deployments, o.serverless, o.deployDelay, o.pool, o.poolLifetime)
	tw := tabwriter.NewWriter(w, 0, 0, 1, ' ', tabwriter.Debug)
	fmt.Fprintln(tw, "way\tconsumer\tok\tfailed connections\tlongest failure window\tsessions dropped\trotations\told login refused after\trotation wall time (mean / max)")
	for _, r := range rows {
		for i, c := range r.consumers {
			s := c.stats
			perWay := "\t\t"
			if i == 0 {
				perWay = fmt.Sprintf("%d\t%d/%d\t%s / %s", r.rotations, r.oldRefused, r.rotations, r.rotateMean.Round(time.Millisecond), r.rotateMax.Round(time.Millisecond))
			}
			fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\t%d\t%s\n", r.way, c.kind, s.OK, s.Failed, s.Window.Round(time.Millisecond), s.PoolDropped, perWay)
		}
	}
	tw.Flush()
	for _, r := range rows {
		if r.stopped > 0 {
			fmt.Fprintf(w, "%s: %d of %d rotations stopped and were resumed; the first said: %s\n", r.way, r.stopped, r.rotations, r.stopReason)
		}
		if r.attention > 0 {
			fmt.Fprintf(w, "%s: %d of %d rotations ended with the old role still in use (exit 4)\n", r.way, r.attention, r.rotations)
		}
		for _, c := range r.consumers {
			if len(c.stats.Kinds) == 0 {
				continue
			}
			var ks []string
			for _, k := range slices.Sorted(maps.Keys(c.stats.Kinds)) {
				ks = append(ks, fmt.Sprintf("%d × %q", c.stats.Kinds[k], k))
			}
			fmt.Fprintf(w, "%s, %s: %s\n", r.way, c.kind, strings.Join(ks, ", "))
		}
	}
}
