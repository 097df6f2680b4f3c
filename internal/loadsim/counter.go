package loadsim

import (
	"cmp"
	"maps"
	"strings"
	"sync"
	"time"

	"github.com/rotorhq/rotor/internal/connstr"
	"github.com/rotorhq/rotor/internal/secret"
)

// burstGap separates two failure windows: failures further apart than
// this belong to different rotations.
const burstGap = 250 * time.Millisecond

// Stats is what one kind of consumer observed since the last Snapshot.
type Stats struct {
	// OK counts requests (or pooled queries) that were served; Failed
	// counts new connections that could not log in or were refused
	// before their first query was answered.
	OK, Failed int64
	// PoolDropped counts sessions that broke after their login without
	// the app closing them (terminated or killed by the server). Only
	// consumers that hold sessions — pools — can see one.
	PoolDropped int64
	// Window is the longest stretch during which new connections failed.
	Window time.Duration
	// ReadToLogin is the longest time from a consumer reading the
	// connection string to its login finishing (the first query
	// answered), over the successful logins: the time a dual rotation's
	// grace period must cover.
	ReadToLogin time.Duration
	// PerSecond is the rate of connection attempts (pools: of queries).
	PerSecond float64
	LastError string
	// Kinds counts the failures by the server's (or PgBouncer's) message.
	Kinds map[string]int64
}

// Merge adds two kinds' observations together (one app running both).
func Merge(a, b Stats) Stats {
	s := Stats{OK: a.OK + b.OK, Failed: a.Failed + b.Failed, PoolDropped: a.PoolDropped + b.PoolDropped,
		Window: max(a.Window, b.Window), ReadToLogin: max(a.ReadToLogin, b.ReadToLogin),
		PerSecond: a.PerSecond + b.PerSecond, LastError: cmp.Or(b.LastError, a.LastError)}
	if len(a.Kinds)+len(b.Kinds) > 0 {
		s.Kinds = maps.Clone(a.Kinds)
		if s.Kinds == nil {
			s.Kinds = map[string]int64{}
		}
		for k, n := range b.Kinds {
			s.Kinds[k] += n
		}
	}
	return s
}

// counter accumulates one consumer kind's outcomes between snapshots.
type counter struct {
	mu                  sync.Mutex
	ok, failed, dropped int64
	// burstStart..lastFail is the current run of failures; window is the
	// longest run seen, i.e. the longest time new connections failed.
	burstStart, lastFail time.Time
	window               time.Duration
	readToLogin          time.Duration
	lastErr              string
	kinds                map[string]int64
	since                time.Time
}

func (c *counter) start() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.since.IsZero() {
		c.since = time.Now()
	}
}

// loggedIn records a login that finished, readAt being when the consumer
// read the connection string it used.
func (c *counter) loggedIn(readAt time.Time) {
	d := time.Since(readAt)
	c.mu.Lock()
	c.readToLogin = max(c.readToLogin, d)
	c.mu.Unlock()
}

func (c *counter) served() {
	c.mu.Lock()
	c.ok++
	c.mu.Unlock()
}

// fail records a connection that could not log in; url is what it used,
// kept out of the message.
func (c *counter) fail(err error, url string) { c.failAt(time.Now(), err, url) }

func (c *counter) failAt(now time.Time, err error, url string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.failed++
	if c.lastFail.IsZero() || now.Sub(c.lastFail) > burstGap {
		c.burstStart = now
	}
	c.lastFail = now
	c.window = max(c.window, now.Sub(c.burstStart))
	c.note(err, url, "")
}

// drop records a session that broke after its login.
func (c *counter) drop(err error, url string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.dropped++
	c.note(err, url, "session ended: ")
}

func (c *counter) note(err error, url, prefix string) {
	c.lastErr = scrubURL(err.Error(), url)
	if c.kinds == nil {
		c.kinds = map[string]int64{}
	}
	c.kinds[prefix+kindOf(c.lastErr)]++
}

// snapshot returns the counters since the last call and resets them.
func (c *counter) snapshot() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := Stats{OK: c.ok, Failed: c.failed, PoolDropped: c.dropped, LastError: c.lastErr, Window: c.window,
		ReadToLogin: c.readToLogin, Kinds: c.kinds}
	if el := time.Since(c.since).Seconds(); el > 0 && !c.since.IsZero() {
		s.PerSecond = float64(s.OK+s.Failed+s.PoolDropped) / el
	}
	c.ok, c.failed, c.dropped, c.kinds = 0, 0, 0, nil
	c.burstStart, c.lastFail, c.lastErr, c.window, c.readToLogin, c.since = time.Time{}, time.Time{}, "", 0, 0, time.Now()
	return s
}

// scrubURL keeps the password of url out of a message shown to the user.
func scrubURL(msg, url string) string {
	if url == "" {
		return msg
	}
	c, err := connstr.Parse(url)
	if err != nil {
		return secret.ScrubString(msg, secret.New(url))
	}
	return secret.ScrubString(msg, c.Password, secret.New(url))
}

// kindOf is the part of a connection error that names the failure: the
// server's message after "FATAL: ", without the role name.
func kindOf(msg string) string {
	if _, after, ok := strings.Cut(msg, "FATAL: "); ok {
		msg = after
	}
	if i := strings.Index(msg, " for user "); i >= 0 {
		msg = msg[:i]
	}
	if i := strings.Index(msg, " (SQLSTATE"); i >= 0 {
		msg = msg[:i]
	}
	return msg
}
