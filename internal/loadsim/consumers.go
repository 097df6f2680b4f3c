// Package loadsim simulates the consumers of a connection string, each kind
// picking a new value up the way real applications do, so that `rotor
// demo` and the load scenario of `make bench` can count what a rotation
// breaks:
//
//   - Requests open a new connection for every request with whatever their
//     source says at that moment: an app that re-reads its .env before each
//     connect, or — with a deployment's live file as the source — a
//     platform deployment that keeps serving with the old value until the
//     new deployment is live;
//   - Serverless opens short connections (connect, one query, close) at
//     irregular intervals, so that most of the time nothing is connected;
//   - Pool is a pgxpool whose connections live at most a lifetime and
//     whose new connections read the source; it never closes a session
//     mid-query, so any session that breaks was ended by the server;
//   - Race read the value at the last moment before it changed and
//     connects with it a little later.
//
// App, a Requests and a Pool on one .env file, is what `rotor demo` runs.
package loadsim

import (
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/joho/godotenv"
)

// requestTimeout bounds one login and its query, so that a stuck server
// shows up as a failure instead of a consumer that stops counting.
const requestTimeout = 5 * time.Second

// errNoURL: the source could not be read or holds no connection string.
var errNoURL = errors.New("the source holds no connection string")

// Source returns the connection string a consumer would use now, or ""
// when there is none to read.
type Source func() string

// DotenvFile reads key from a dotenv file, parsed by godotenv as a Go
// application would, every time it is called.
func DotenvFile(path, key string) Source {
	return func() string {
		b, err := os.ReadFile(path)
		if err != nil {
			return ""
		}
		env, err := godotenv.UnmarshalBytes(b)
		if err != nil {
			return ""
		}
		return env[key]
	}
}

// Consumer is one kind of simulated consumer.
type Consumer interface {
	// Run works until ctx ends.
	Run(ctx context.Context)
	// Snapshot returns what the consumer saw since the last call (or
	// since Run started) and resets the counters.
	Snapshot() Stats
}

// request opens a connection with url, runs one query and closes it; the
// query is part of the login's success because PgBouncer logs in to the
// server only when the first query comes.
func request(ctx context.Context, c *counter, url string, readAt time.Time) {
	cctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	err := errNoURL
	if url != "" {
		var conn *pgx.Conn
		conn, err = pgx.Connect(cctx, url)
		if err == nil {
			var one int
			err = conn.QueryRow(cctx, "SELECT 1").Scan(&one)
			conn.Close(context.WithoutCancel(ctx))
		}
	}
	if ctx.Err() != nil {
		return
	}
	if err != nil {
		c.fail(err, url)
		return
	}
	c.loggedIn(readAt)
	c.served()
}

// sleep waits d or until ctx ends; false when ctx ended.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// jitter is d randomised by ±50%, so that consumers do not move together.
func jitter(d time.Duration) time.Duration {
	return time.Duration(float64(d) * (0.5 + rand.Float64()))
}

// Requests are consumers that open a new connection per request, reading
// Source right before each connect.
type Requests struct {
	Source Source
	// Workers each send requests one after another.
	Workers int
	// Pause is the time between one worker's requests (randomised ±50%);
	// zero sends them back to back.
	Pause time.Duration
	c     counter
}

// Run implements Consumer.
func (r *Requests) Run(ctx context.Context) {
	r.c.start()
	var wg sync.WaitGroup
	for range r.Workers {
		wg.Go(func() {
			for ctx.Err() == nil {
				at := time.Now()
				request(ctx, &r.c, r.Source(), at)
				if r.Pause > 0 && !sleep(ctx, jitter(r.Pause)) {
					return
				}
			}
		})
	}
	wg.Wait()
}

// Snapshot implements Consumer.
func (r *Requests) Snapshot() Stats { return r.c.snapshot() }

// Serverless are functions invoked at irregular intervals, each
// invocation reading Source, connecting, running one query and closing.
type Serverless struct {
	Source Source
	// Functions are invoked independently of one another.
	Functions int
	// MeanGap is the mean time between two invocations of one function;
	// the gaps are exponentially distributed (arrivals at random, as
	// requests reach a function) and capped at MaxGap.
	MeanGap, MaxGap time.Duration
	c               counter
}

// Run implements Consumer.
func (s *Serverless) Run(ctx context.Context) {
	s.c.start()
	var wg sync.WaitGroup
	for range s.Functions {
		wg.Go(func() {
			for {
				gap := time.Duration(rand.ExpFloat64() * float64(s.MeanGap))
				if s.MaxGap > 0 {
					gap = min(gap, s.MaxGap)
				}
				if !sleep(ctx, gap) {
					return
				}
				at := time.Now()
				request(ctx, &s.c, s.Source(), at)
			}
		})
	}
	wg.Wait()
}

// Snapshot implements Consumer.
func (s *Serverless) Snapshot() Stats { return s.c.snapshot() }

// Pool is an application with a connection pool (pgxpool) of Size
// connections that are closed once they are between Lifetime/2 and
// Lifetime old, at their next release — never while a query runs — and
// whose new connections read Source (pgxpool's BeforeConnect). Size
// workers keep them busy with short queries. A query that fails on a
// pooled session counts as a dropped session; a new connection that
// cannot log in counts as a failed one.
type Pool struct {
	Source   Source
	Size     int
	Lifetime time.Duration
	c        counter
}

// Run implements Consumer.
func (p *Pool) Run(ctx context.Context) {
	p.c.start()
	var pool *pgxpool.Pool
	for pool == nil {
		var err error
		if pool, err = p.open(ctx); err != nil {
			if ctx.Err() != nil {
				return
			}
			p.c.fail(err, p.Source())
			if !sleep(ctx, 100*time.Millisecond) {
				return
			}
		}
	}
	defer pool.Close()
	var wg sync.WaitGroup
	for range p.Size {
		wg.Go(func() {
			for ctx.Err() == nil {
				p.query(ctx, pool)
				if !sleep(ctx, time.Duration(rand.Int64N(int64(10*time.Millisecond)))) {
					return
				}
			}
		})
	}
	wg.Wait()
}

func (p *Pool) open(ctx context.Context) (*pgxpool.Pool, error) {
	url := p.Source()
	if url == "" {
		return nil, errNoURL
	}
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, err
	}
	cfg.MaxConns, cfg.MinConns = int32(max(p.Size, 1)), 0
	cfg.MaxConnLifetime, cfg.MaxConnLifetimeJitter = p.Lifetime/2, p.Lifetime/2
	// Connections past their lifetime are closed while idle too, not only
	// at their next use.
	cfg.HealthCheckPeriod = 100 * time.Millisecond
	// No ping before handing a connection out: pgxpool would quietly
	// replace a session the server ended, and that is what is counted.
	cfg.ShouldPing = func(context.Context, pgxpool.ShouldPingParams) bool { return false }
	cfg.BeforeConnect = func(ctx context.Context, cc *pgx.ConnConfig) error {
		at := time.Now()
		cur := p.Source()
		if cur == "" {
			return errNoURL
		}
		next, err := pgx.ParseConfig(cur)
		if err != nil {
			return err
		}
		// Host, database and TLS settings stay what the pool was built
		// with; a rotation changes only the role and its password.
		cc.User, cc.Password = next.User, next.Password
		cc.AfterConnect = func(ctx context.Context, pc *pgconn.PgConn) error {
			// Through PgBouncer the server login happens at the first
			// query: make it part of the connect, so a refused login is a
			// failed connection and not a dropped session.
			if _, err := pc.Exec(ctx, "SELECT 1").ReadAll(); err != nil {
				return err
			}
			p.c.loggedIn(at)
			return nil
		}
		return nil
	}
	return pgxpool.NewWithConfig(ctx, cfg)
}

// query borrows a connection, holds it for a query of up to 20 ms and
// gives it back.
func (p *Pool) query(ctx context.Context, pool *pgxpool.Pool) {
	cctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	conn, err := pool.Acquire(cctx)
	if err != nil {
		if ctx.Err() == nil {
			p.c.fail(err, p.Source())
		}
		return
	}
	defer conn.Release()
	hold := float64(rand.IntN(21)) / 1000
	_, err = conn.Exec(cctx, "SELECT pg_sleep($1)", hold)
	switch {
	case ctx.Err() != nil:
	case err != nil:
		p.c.drop(err, p.Source())
	default:
		p.c.served()
	}
}

// Snapshot implements Consumer.
func (p *Pool) Snapshot() Stats { return p.c.snapshot() }

// Race is a consumer that read the connection string at the last moment
// before it changed and connects with that old value Delay later: it
// reads Source every Poll, and when a read returns a new value it
// connects — once — with the value of the read before, Delay after that
// read. Every change of the source gives exactly one such attempt.
type Race struct {
	Source Source
	Delay  time.Duration
	// Poll is how often Source is read (default 1 ms), so the old value
	// is at most that old when the change lands.
	Poll     time.Duration
	c        counter
	attempts atomic.Int64
}

// Attempts is how many connections the race has finished since Run
// started (Snapshot does not reset it): one per change of the source.
func (r *Race) Attempts() int64 { return r.attempts.Load() }

// Run implements Consumer.
func (r *Race) Run(ctx context.Context) {
	r.c.start()
	poll := r.Poll
	if poll <= 0 {
		poll = time.Millisecond
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	last, lastAt := r.Source(), time.Now()
	for sleep(ctx, poll) {
		at := time.Now()
		cur := r.Source()
		if cur == "" {
			continue
		}
		if last != "" && cur != last {
			old, readAt := last, lastAt
			wg.Go(func() {
				if sleep(ctx, time.Until(readAt.Add(r.Delay))) {
					request(ctx, &r.c, old, readAt)
					r.attempts.Add(1)
				}
			})
		}
		last, lastAt = cur, at
	}
}

// Snapshot implements Consumer.
func (r *Race) Snapshot() Stats { return r.c.snapshot() }

// App is one simulated application reading DATABASE_URL from EnvFile: a
// Requests and a Pool on that file, counted together.
type App struct {
	Name    string
	EnvFile string
	// Key is the variable holding the URL (default DATABASE_URL).
	Key string
	// Workers each open, use and close a new connection in a loop.
	Workers int
	// Pool is the number of pooled sessions.
	Pool int
	// Recycle is the longest a pooled session lives before it reconnects
	// with the current file (each lives between half of it and all of it).
	Recycle time.Duration

	once sync.Once
	req  *Requests
	pool *Pool
}

func (a *App) parts() (*Requests, *Pool) {
	a.once.Do(func() {
		key := a.Key
		if key == "" {
			key = "DATABASE_URL"
		}
		src := DotenvFile(a.EnvFile, key)
		a.req = &Requests{Source: src, Workers: a.Workers}
		a.pool = &Pool{Source: src, Size: a.Pool, Lifetime: a.Recycle}
	})
	return a.req, a.pool
}

// Run works until ctx ends.
func (a *App) Run(ctx context.Context) {
	req, pool := a.parts()
	var wg sync.WaitGroup
	wg.Go(func() { req.Run(ctx) })
	if a.Pool > 0 {
		wg.Go(func() { pool.Run(ctx) })
	}
	wg.Wait()
}

// Snapshot returns the counters since the last call and resets them.
func (a *App) Snapshot() Stats {
	req, pool := a.parts()
	return Merge(req.Snapshot(), pool.Snapshot())
}
