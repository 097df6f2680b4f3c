// Package loadsim simulates the consumers of a connection string: request
// workers that open a new connection for every request with whatever the
// .env file says at that moment, and a pool of long-lived sessions that
// reconnect periodically, as a real connection pool does. `rotor demo` and
// the load scenario of `make bench` use it to count what a rotation breaks.
package loadsim

import (
	"context"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/joho/godotenv"

	"github.com/rotorhq/rotor/internal/connstr"
	"github.com/rotorhq/rotor/internal/secret"
)

// App is one simulated application reading DATABASE_URL from EnvFile.
type App struct {
	Name    string
	EnvFile string
	// Key is the variable holding the URL (default DATABASE_URL).
	Key string
	// Workers each open, use and close a new connection in a loop.
	Workers int
	// Pool is the number of long-lived sessions.
	Pool int
	// Recycle is how long a pool session lives before it reconnects with
	// the current file (randomised ±50% so sessions do not move together).
	Recycle time.Duration

	ok, failed, poolDropped atomic.Int64
	mu                      sync.Mutex
	// burstStart..lastFail is the current run of failures; window is the
	// longest run seen, i.e. the longest time new connections failed.
	burstStart, lastFail time.Time
	window               time.Duration
	lastErr              string
	kinds                map[string]int64
	since                time.Time
}

// burstGap separates two failure windows: failures further apart than
// this belong to different rotations.
const burstGap = 250 * time.Millisecond

// Stats is what the app observed since the last Snapshot.
type Stats struct {
	OK, Failed int64
	// PoolDropped counts long-lived sessions that broke without the app
	// closing them (terminated or killed by the server).
	PoolDropped int64
	// Window is the longest stretch during which new connections failed.
	Window time.Duration
	// PerSecond is the rate of connection attempts.
	PerSecond float64
	LastError string
	// Kinds counts the failures by the server's (or PgBouncer's) message.
	Kinds map[string]int64
}

// Run works until ctx ends.
func (a *App) Run(ctx context.Context) {
	a.mu.Lock()
	a.since = time.Now()
	a.mu.Unlock()
	var wg sync.WaitGroup
	for i := 0; i < a.Workers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				a.request(ctx)
			}
		}()
	}
	for i := 0; i < a.Pool; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a.session(ctx)
		}()
	}
	wg.Wait()
}

func (a *App) url() string {
	b, err := os.ReadFile(a.EnvFile)
	if err != nil {
		return ""
	}
	env, err := godotenv.UnmarshalBytes(b)
	if err != nil {
		return ""
	}
	key := a.Key
	if key == "" {
		key = "DATABASE_URL"
	}
	return env[key]
}

func (a *App) request(ctx context.Context) {
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	url := a.url()
	conn, err := pgx.Connect(cctx, url)
	if err == nil {
		var one int
		err = conn.QueryRow(cctx, "SELECT 1").Scan(&one)
		conn.Close(context.Background())
	}
	if ctx.Err() != nil {
		return
	}
	if err == nil {
		a.ok.Add(1)
		return
	}
	a.failed.Add(1)
	now := time.Now()
	a.mu.Lock()
	if a.lastFail.IsZero() || now.Sub(a.lastFail) > burstGap {
		a.burstStart = now
	}
	a.lastFail = now
	a.window = max(a.window, now.Sub(a.burstStart))
	a.lastErr = scrubURL(err.Error(), url)
	if a.kinds == nil {
		a.kinds = map[string]int64{}
	}
	a.kinds[kindOf(a.lastErr)]++
	a.mu.Unlock()
}

// session holds one connection open, checks it every 50ms, and reconnects
// with the current file when its lifetime is up. A check that fails on a
// session the app did not close counts as a dropped session.
func (a *App) session(ctx context.Context) {
	var conn *pgx.Conn
	var deadline time.Time
	defer func() {
		if conn != nil {
			conn.Close(context.Background())
		}
	}()
	for ctx.Err() == nil {
		if conn == nil || time.Now().After(deadline) {
			if conn != nil {
				conn.Close(context.Background())
				conn = nil
			}
			cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			c, err := pgx.Connect(cctx, a.url())
			cancel()
			if err == nil {
				life := time.Duration(float64(a.Recycle) * (0.5 + rand.Float64()))
				conn, deadline = c, time.Now().Add(life)
			}
		}
		if conn != nil {
			cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			_, err := conn.Exec(cctx, "SELECT 1")
			cancel()
			if err != nil && ctx.Err() == nil {
				a.poolDropped.Add(1)
				conn.Close(context.Background())
				conn = nil
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Snapshot returns the counters since the last call and resets them.
func (a *App) Snapshot() Stats {
	a.mu.Lock()
	defer a.mu.Unlock()
	s := Stats{OK: a.ok.Swap(0), Failed: a.failed.Swap(0), PoolDropped: a.poolDropped.Swap(0), LastError: a.lastErr, Window: a.window, Kinds: a.kinds}
	a.kinds = nil
	if el := time.Since(a.since).Seconds(); el > 0 {
		s.PerSecond = float64(s.OK+s.Failed) / el
	}
	a.burstStart, a.lastFail, a.lastErr, a.window, a.since = time.Time{}, time.Time{}, "", 0, time.Now()
	return s
}

// scrubURL keeps the password of url out of a message shown to the user.
func scrubURL(msg, url string) string {
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
