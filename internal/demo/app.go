package demo

import (
	"context"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/joho/godotenv"

	"github.com/rotorhq/rotor/internal/connstr"
	"github.com/rotorhq/rotor/internal/secret"
)

// App simulates consumers of one .env file: workers that open a new
// connection for every request, each time with whatever DATABASE_URL the
// file holds at that moment, and a long-lived "pool" session that is
// recycled periodically, as a real connection pool would.
type App struct {
	Name    string
	EnvFile string
	Workers int
	// Recycle is how often the pool session reconnects with the current file.
	Recycle time.Duration

	ok, failed, poolDropped atomic.Int64
	mu                      sync.Mutex
	// burstStart..lastFail is the current run of failures; window is the
	// longest run seen, i.e. the longest time new connections failed.
	burstStart, lastFail time.Time
	window               time.Duration
	lastErr              string
}

// burstGap separates two failure windows: failures further apart than
// this belong to different rotations.
const burstGap = 250 * time.Millisecond

// Stats is what the app observed.
type Stats struct {
	OK, Failed, PoolDropped int64
	// Window is the longest stretch during which new connections failed.
	Window    time.Duration
	LastError string
}

// Run works until ctx ends.
func (a *App) Run(ctx context.Context) {
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
	wg.Add(1)
	go func() {
		defer wg.Done()
		a.pool(ctx)
	}()
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
	return env["DATABASE_URL"]
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
	a.mu.Unlock()
}

// pool holds one session open, checks it every 50ms, and reconnects with
// the current file every Recycle. A check that fails on a session rotor did
// not mean to end counts as a dropped session.
func (a *App) pool(ctx context.Context) {
	var conn *pgx.Conn
	var since time.Time
	defer func() {
		if conn != nil {
			conn.Close(context.Background())
		}
	}()
	for ctx.Err() == nil {
		if conn == nil || time.Since(since) > a.Recycle {
			if conn != nil {
				conn.Close(context.Background())
				conn = nil
			}
			cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			c, err := pgx.Connect(cctx, a.url())
			cancel()
			if err == nil {
				conn, since = c, time.Now()
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

// Snapshot returns the counters so far and resets them.
func (a *App) Snapshot() Stats {
	a.mu.Lock()
	defer a.mu.Unlock()
	s := Stats{OK: a.ok.Swap(0), Failed: a.failed.Swap(0), PoolDropped: a.poolDropped.Swap(0), LastError: a.lastErr, Window: a.window}
	a.burstStart, a.lastFail, a.lastErr, a.window = time.Time{}, time.Time{}, "", 0
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
