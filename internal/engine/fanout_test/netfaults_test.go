package fanout_test

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/rotorhq/rotor/internal/engine"
	"github.com/rotorhq/rotor/internal/store"
	"github.com/rotorhq/rotor/internal/target/webapi/fakefaults"
)

// Network faults that an HTTP fake cannot produce by answering badly: a
// port where nothing listens (the kernel refuses the connection) and a
// slow-loris server that accepts the request and then trickles its answer
// a byte at a time. The recorder diverts a target's next requests to one
// of these real sockets, so the target's own HTTP stack meets them.

// anyKind diverts requests of every kind.
const anyKind kind = -1

type divert struct {
	addr string
	only kind
	n    int
}

// divertNext sends the next n requests of kind only (or anyKind) that
// target makes to addr instead of its fake.
func (r *recorder) divertNext(target, addr string, only kind, n int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.diverts == nil {
		r.diverts = map[string]*divert{}
	}
	r.diverts[target] = &divert{addr: addr, only: only, n: n}
}

func (r *recorder) takeDivert(target string, k kind) (string, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	d := r.diverts[target]
	if d == nil || d.n <= 0 || (d.only != anyKind && d.only != k) {
		return "", false
	}
	d.n--
	return d.addr, true
}

// refusedAddr is a loopback port nobody listens on.
func refusedAddr(t *testing.T) string {
	addr, err := fakefaults.ClosedAddr()
	require.NoError(t, err)
	return addr
}

// loris is a slow-loris HTTP server. It reads each request whole, then
// writes its answer one byte every drip: from the status line on
// (headersToo), or with the headers at once and then a body that never
// completes. It holds each connection until the client gives up.
type loris struct {
	ln         net.Listener
	drip       time.Duration
	headersToo bool
	wg         sync.WaitGroup
	mu         sync.Mutex
	requests   int
}

func startLoris(t *testing.T, headersToo bool) *loris {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	l := &loris{ln: ln, drip: 100 * time.Millisecond, headersToo: headersToo}
	done := make(chan struct{})
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			l.wg.Add(1)
			go func() {
				defer l.wg.Done()
				l.serve(c, done)
			}()
		}
	}()
	t.Cleanup(func() {
		close(done)
		ln.Close()
		l.wg.Wait()
	})
	return l
}

func (l *loris) addr() string { return l.ln.Addr().String() }

func (l *loris) served() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.requests
}

func (l *loris) serve(c net.Conn, done <-chan struct{}) {
	defer c.Close()
	req, err := http.ReadRequest(bufio.NewReader(c))
	if err != nil {
		return
	}
	io.Copy(io.Discard, req.Body)
	l.mu.Lock()
	l.requests++
	l.mu.Unlock()
	head := "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 65536\r\n\r\n"
	if !l.headersToo {
		if _, err := io.WriteString(c, head); err != nil {
			return
		}
		head = ""
	}
	drip := head + "{\"data\":\"" + strings.Repeat("z", 65536)
	for i := 0; i < len(drip); i++ {
		select {
		case <-done:
			return
		case <-time.After(l.drip):
		}
		if _, err := c.Write([]byte{drip[i]}); err != nil {
			return // the client gave up
		}
	}
}

// TestPlatformNetworkFaults puts each network fault in front of one
// platform while the other five and the .env file behave.
func TestPlatformNetworkFaults(t *testing.T) {
	t.Parallel()
	eachPlatform(t, []faultCase{
		{"connection refused once", refusedOnce},
		{"connection refused for good, then resume", refusedForGood},
		{"connection refused at reload", refusedAtReload},
		{"slow-loris headers", func(t *testing.T, name string) { slowLoris(t, name, true) }},
		{"slow-loris body", func(t *testing.T, name string) { slowLoris(t, name, false) }},
	})
}

// refusedOnce: the first request is refused; the write is tried again at
// once (after a capped backoff) and the rotation succeeds.
func refusedOnce(t *testing.T, name string) {
	w := newWorld(t, worldOpts{})
	w.rec.divertNext(name, refusedAddr(t), anyKind, 1)

	rot := w.rotate(engine.Options{})
	w.requireSucceeded(rot)
	require.Equal(t, 2, targetResult(t, rot.res, name).Attempts, "a refused connection is retried")
	sleeps := w.recordedSleeps()
	require.Len(t, sleeps, 1)
	require.LessOrEqual(t, sleeps[0], w.cred().MaxBackoff, "no Retry-After: capped backoff")
}

// refusedForGood: the platform stays unreachable. The rotation stops at
// publish with every other copy written and a message that says what
// happened; once the platform is back, resume writes only it.
func refusedForGood(t *testing.T, name string) {
	w := newWorld(t, worldOpts{})
	w.requireSucceeded(w.rotate(engine.Options{}))
	oldURL := w.envURL()
	before := w.writeCounts()

	w.rec.divertNext(name, refusedAddr(t), anyKind, 1<<20)
	rot := w.rotate(engine.Options{})
	w.requireStoppedAtPublish(rot, 1)
	tr := targetResult(t, rot.res, name)
	require.Equal(t, store.DeliveryFailed, tr.State)
	require.Equal(t, w.cred().Attempts, tr.Attempts, "refused on every attempt")
	require.Contains(t, tr.Error, "connection refused")
	newURL := w.envURL()
	require.False(t, newURL.Equal(oldURL))
	requireNoSecret(t, rot.err.Error(), mustParse(t, newURL).Password, "the publish error")
	v, ok := w.values()[name]
	require.True(t, ok && v.Equal(oldURL), "%s still holds the old URL", name)
	w.requireLogin(oldURL, "the old role, while a copy still holds it")

	w.rec.divertNext(name, "", anyKind, 0)
	mid := w.writeCounts()
	resumed := w.rotate(engine.Options{ResumeOnly: true})
	require.NoError(t, resumed.err)
	require.Equal(t, store.StatusSucceeded, resumed.res.Status, resumed.res.Outcome)
	after := w.writeCounts()
	for n := range before {
		if n == name {
			require.Equal(t, before[n], mid[n], "nothing reached %s while it refused connections", n)
			require.Greater(t, after[n], mid[n], "%s is written on resume", n)
		} else {
			require.Equal(t, mid[n], after[n], "%s was already written; resume must not write it again", n)
		}
	}
	w.requireAllHold(newURL)
	w.requireReloadsAfterWrites(resumed.requests, newURL)
	w.requireNoLogin(oldURL, "the old role, retired once the rollout finished")
}

// refusedAtReload: a reload (a redeploy, a pipeline) is never retried
// after a timeout or a 5xx, since it may be under way — but a refused
// connection never reached the platform, so it is sent again, and the
// platform sees exactly one reload.
func refusedAtReload(t *testing.T, name string) {
	w := newWorld(t, worldOpts{})
	w.rec.divertNext(name, refusedAddr(t), kindReload, 1)

	rot := w.rotate(engine.Options{})
	w.requireSucceeded(rot)
	diverted := 0
	for _, e := range rot.requests {
		if e.target == name && e.diverted {
			require.Equal(t, kindReload, e.kind)
			diverted++
		}
	}
	require.Equal(t, 1, diverted, "the first reload request met the closed port")
	require.Equal(t, 1, w.byName[name].reloads(), "%s reloaded exactly once", name)
}

// slowLoris: the platform accepts the request and answers a byte every
// 100 ms. Each attempt ends at publish.timeout (2 s here) instead of
// hanging; the write is idempotent, so it is tried again and succeeds.
func slowLoris(t *testing.T, name string, headersToo bool) {
	w := newWorld(t, worldOpts{timeout: "2s"})
	l := startLoris(t, headersToo)
	w.rec.divertNext(name, l.addr(), anyKind, 1)

	start := time.Now()
	rot := w.rotate(engine.Options{})
	elapsed := time.Since(start)
	w.requireSucceeded(rot)
	require.Equal(t, 1, l.served(), "the slow-loris server got the first request")
	require.Equal(t, 2, targetResult(t, rot.res, name).Attempts, "the attempt cut off at publish.timeout is retried")
	// Not a timing assertion on rotor's speed: without the per-attempt
	// deadline the drip (65 kB at 10 bytes/s) would take two hours.
	require.Less(t, elapsed, 2*time.Minute, "the slow answer was not cut off")
	sleeps := w.recordedSleeps()
	require.Len(t, sleeps, 1)
	require.LessOrEqual(t, sleeps[0], w.cred().MaxBackoff)

	var retry *engine.Event
	for _, ev := range w.events() {
		if ev.Target == name && ev.Status == "retry" {
			retry = &ev
			break
		}
	}
	require.NotNil(t, retry, "the retry is reported")
	require.Contains(t, retry.Detail, "publish.timeout", "the report names the setting that cut the attempt off")
}
