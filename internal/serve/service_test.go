package serve_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/joho/godotenv"
	"github.com/stretchr/testify/require"

	"github.com/rotorhq/rotor/internal/engine"
	"github.com/rotorhq/rotor/internal/pgtest"
	"github.com/rotorhq/rotor/internal/secret"
	"github.com/rotorhq/rotor/internal/serve"
	"github.com/rotorhq/rotor/internal/serve/servetest"
	"github.com/rotorhq/rotor/internal/store"
	"github.com/rotorhq/rotor/internal/store/postgres"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// world is servetest's World with the real service over it.
type world struct {
	*servetest.World
	t       *testing.T
	svc     *serve.Service
	st      store.Store
	envFile string
	oldPW   secret.String
}

type worldOpts struct {
	store   string // "sqlite" or "postgres"
	every   string // schedule
	tick    time.Duration
	creds   int
	noStart bool
}

func newWorld(t *testing.T, o worldOpts) *world {
	t.Helper()
	var names []string
	for i := range max(o.creds, 1) {
		names = append(names, fmt.Sprintf("app%d", i))
	}
	sw := servetest.New(t, servetest.Options{Store: o.store, Names: names, Every: o.every})
	w := &world{World: sw, t: t, st: sw.Store, envFile: sw.EnvFile("app0"), oldPW: sw.Passwords["app0"]}
	w.svc = sw.Service(serve.Options{Tick: o.tick, Workers: 2}, false)
	if !o.noStart {
		w.start()
	}
	return w
}

func (w *world) start() { require.NoError(w.t, w.svc.Start(context.Background())) }

// wait polls the job until River has finished with it.
func (w *world) wait(id int64) *serve.Job {
	w.t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		j, err := w.svc.Job(w.t.Context(), id)
		require.NoError(w.t, err)
		if j.FinishedAt != nil {
			return j
		}
		if time.Now().After(deadline) {
			w.t.Fatalf("job %d still %s after 2 minutes (errors %v)", id, j.State, j.Errors)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// envURL is the connection string the .env target holds now.
func (w *world) envURL() secret.String {
	m, err := godotenv.Read(w.envFile)
	require.NoError(w.t, err)
	return secret.New(m["DATABASE_URL"])
}

func (w *world) rotations(cred string) []*store.Rotation {
	rs, err := w.st.ListRotations(w.t.Context(), store.ListRotationsParams{Credential: cred})
	require.NoError(w.t, err)
	return rs
}

func TestJobRotates(t *testing.T) {
	for _, kind := range []string{"sqlite", "postgres"} {
		t.Run(kind, func(t *testing.T) {
			// Queued before the service starts: the leader's first tick,
			// which runs at start, would otherwise find app0 (never
			// rotated) due and could queue it first.
			w := newWorld(t, worldOpts{store: kind, noStart: true})
			job, err := w.svc.Enqueue(t.Context(), serve.Request{Credential: "app0", Kind: serve.KindRotate, Trigger: serve.TriggerAPI, Actor: "ci"})
			require.NoError(t, err)
			require.False(t, job.Duplicate)
			require.Equal(t, "app0", job.Credential)
			w.start()
			done := w.wait(job.ID)
			require.Equal(t, "completed", done.State, "errors: %v", done.Errors)
			require.NotZero(t, done.RotationID)
			require.Equal(t, "ci", done.Actor)

			url := w.envURL()
			require.NoError(t, pgtest.CanLogin(t.Context(), url), "the .env's new string logs in")
			require.False(t, strings.Contains(url.Reveal(), w.oldPW.Reveal()))
			rs := w.rotations("app0")
			require.Len(t, rs, 1)
			require.Equal(t, done.RotationID, rs[0].ID)
			require.Equal(t, store.StatusSucceeded, rs[0].Status)

			// That tick adds nothing while the API's job is queued or
			// running, but when it read the schedule before the rotation
			// finished and queues after, a scheduled job follows (it
			// finds nothing due when it starts). Only the API's job is
			// this test's.
			jobs, err := w.svc.Jobs(t.Context(), "app0", 10)
			require.NoError(t, err)
			var api []*serve.Job
			for _, j := range jobs {
				if j.Trigger == serve.TriggerAPI {
					api = append(api, j)
					continue
				}
				require.Equal(t, serve.TriggerSchedule, j.Trigger, "job %d", j.ID)
			}
			require.Len(t, api, 1)
			require.Equal(t, job.ID, api[0].ID)
			none, err := w.svc.Jobs(t.Context(), "nobody", 10)
			require.NoError(t, err)
			require.Empty(t, none)
			require.NoError(t, w.svc.Ready(t.Context()))
		})
	}
}

func TestEnqueueIsUniqueAndIdempotent(t *testing.T) {
	for _, kind := range []string{"sqlite", "postgres"} {
		t.Run(kind, func(t *testing.T) {
			w := newWorld(t, worldOpts{store: kind, noStart: true})
			ctx := t.Context()
			req := serve.Request{Credential: "app0", Kind: serve.KindRotate, Trigger: serve.TriggerAPI, Actor: "ci"}
			first, err := w.svc.Enqueue(ctx, req)
			require.NoError(t, err)
			again, err := w.svc.Enqueue(ctx, req)
			require.NoError(t, err)
			require.True(t, again.Duplicate, "a credential is never queued twice")
			require.Equal(t, first.ID, again.ID)

			// A revoke is another action: a leak is never swallowed by a
			// routine rotation already queued.
			rev, err := w.svc.Enqueue(ctx, serve.Request{Credential: "app0", Kind: serve.KindRevoke, Trigger: serve.TriggerLeak, Actor: "leak"})
			require.NoError(t, err)
			require.False(t, rev.Duplicate)
			require.NotEqual(t, first.ID, rev.ID)

			// The scheduler's job rotates only if still due when it runs:
			// it is queued beside a requested one, never in its place, so
			// a request is never answered with a job that may do nothing.
			sched, err := w.svc.Enqueue(ctx, serve.Request{Credential: "app0", Kind: serve.KindRotate, Trigger: serve.TriggerSchedule, Actor: "scheduler"})
			require.NoError(t, err)
			require.False(t, sched.Duplicate)
			require.NotEqual(t, first.ID, sched.ID)
			schedAgain, err := w.svc.Enqueue(ctx, serve.Request{Credential: "app0", Kind: serve.KindRotate, Trigger: serve.TriggerSchedule, Actor: "scheduler"})
			require.NoError(t, err)
			require.True(t, schedAgain.Duplicate, "one due time is queued once")
			require.Equal(t, sched.ID, schedAgain.ID)
			again, err = w.svc.Enqueue(ctx, req)
			require.NoError(t, err)
			require.Equal(t, first.ID, again.ID, "a request joins the queued request, not the scheduler's job")

			depth, err := w.svc.QueueDepth(ctx)
			require.NoError(t, err)
			require.Equal(t, map[serve.Kind]int{serve.KindRotate: 2, serve.KindRevoke: 1, serve.KindRetire: 0}, depth)

			_, err = w.svc.Enqueue(ctx, serve.Request{Credential: "nope", Kind: serve.KindRotate})
			require.ErrorIs(t, err, serve.ErrUnknownCredential)
			_, err = w.svc.Job(ctx, 999999)
			require.ErrorIs(t, err, serve.ErrNoJob)

			// Run them; then the same Idempotency-Key returns the finished
			// job, while a request without it queues a new one.
			w.start()
			w.wait(first.ID)
			w.wait(rev.ID)
			w.wait(sched.ID)
			for _, id := range []int64{first.ID, rev.ID} {
				j, err := w.svc.Job(ctx, id)
				require.NoError(t, err)
				require.NotZero(t, j.RotationID, "requested job %d names the rotation it ran", id)
			}
			keyed := req
			keyed.IdempotencyKey = "3f0c-deploy-42"
			k1, err := w.svc.Enqueue(ctx, keyed)
			require.NoError(t, err)
			require.False(t, k1.Duplicate)
			w.wait(k1.ID)
			k2, err := w.svc.Enqueue(ctx, keyed)
			require.NoError(t, err)
			require.True(t, k2.Duplicate)
			require.Equal(t, k1.ID, k2.ID)
			require.Equal(t, "completed", k2.State)
			rs := w.rotations("app0")
			var got []string
			for _, r := range rs {
				got = append(got, r.Trigger+" "+string(r.Status))
			}
			jobs, err := w.svc.Jobs(ctx, "app0", 10)
			require.NoError(t, err)
			for _, j := range jobs {
				got = append(got, fmt.Sprintf("job %d %s %s %v", j.ID, j.Kind, j.State, j.Errors))
			}
			require.Len(t, rs, 3, "rotate, revoke, keyed rotate: three rotations, the repeats none: %v", got)
		})
	}
}

func TestSchedulerRotatesWhatIsDueOnce(t *testing.T) {
	for _, kind := range []string{"sqlite", "postgres"} {
		t.Run(kind, func(t *testing.T) {
			// Never rotated means due; after one rotation none is due for
			// 30 days, however many ticks pass.
			w := newWorld(t, worldOpts{store: kind, creds: 3, tick: 100 * time.Millisecond})
			deadline := time.Now().Add(2 * time.Minute)
			for {
				n := 0
				for i := range 3 {
					for _, r := range w.rotations(fmt.Sprintf("app%d", i)) {
						if r.Status == store.StatusSucceeded {
							n++
						}
					}
				}
				if n == 3 {
					break
				}
				require.True(t, time.Now().Before(deadline), "the scheduler rotated %d of 3 due credentials in 2 minutes", n)
				time.Sleep(100 * time.Millisecond)
			}
			// Many more ticks: still one rotation each.
			time.Sleep(time.Second)
			for i := range 3 {
				cred := fmt.Sprintf("app%d", i)
				require.Len(t, w.rotations(cred), 1, "%s rotated once for one due time", cred)
				jobs, err := w.svc.Jobs(t.Context(), cred, 50)
				require.NoError(t, err)
				for _, j := range jobs {
					require.Equal(t, serve.TriggerSchedule, j.Trigger)
					require.Equal(t, "scheduler", j.Actor)
				}
			}
			require.NoError(t, pgtest.CanLogin(t.Context(), w.envURL()))
		})
	}
}

// Readiness: the store answers and its migrations are what this replica
// started on; a newer rotor that migrated the shared schema makes it
// not ready, naming why.
func TestReadyNoticesANewerSchema(t *testing.T) {
	w := newWorld(t, worldOpts{store: "postgres", noStart: true})
	require.NoError(t, w.svc.Ready(t.Context()))
	pool := w.st.(*postgres.Store).Pool()
	_, err := pool.Exec(t.Context(), `INSERT INTO rotor.schema_migrations (version, name, applied_at) SELECT MAX(version)+1, 'from a newer rotor', now() FROM rotor.schema_migrations`)
	require.NoError(t, err)
	err = w.svc.Ready(t.Context())
	require.Error(t, err)
	require.Contains(t, err.Error(), "a newer rotor migrated it")
}

// StatusAll answers for every credential in the config's order, the same
// as Status one by one, and stops when its context ends.
func TestStatusAllKeepsTheConfigOrder(t *testing.T) {
	w := newWorld(t, worldOpts{creds: 12, noStart: true})
	cfg := w.svc.Config()
	all, err := w.svc.Engine().StatusAll(t.Context(), cfg.Credentials, engine.StatusOptions{})
	require.NoError(t, err)
	require.Len(t, all, 12)
	for i, cr := range cfg.Credentials {
		one, err := w.svc.Engine().Status(t.Context(), cr, engine.StatusOptions{})
		require.NoError(t, err)
		require.Equal(t, cr.Name, all[i].Name)
		one.NextDue, all[i].NextDue = nil, nil // "due now" is read at each call
		require.Equal(t, one, all[i])
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err = w.svc.Engine().StatusAll(ctx, cfg.Credentials, engine.StatusOptions{})
	require.ErrorIs(t, err, context.Canceled)
}
