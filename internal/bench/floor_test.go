package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/rotorhq/rotor/internal/pgtest"
	"github.com/rotorhq/rotor/internal/secret"
)

// The floor: the least work a crash-safe rotation of one single-strategy
// role with one .env copy needs, written plainly, with nothing of rotor
// in it —
//
//  1. a new password, and its SCRAM-SHA-256 verifier computed here (the
//     server never sees the plaintext);
//  2. a journal record, fsync'd, before the change (a crash after the
//     ALTER ROLE must know the new password);
//  3. ALTER ROLE … PASSWORD '<verifier>' on an admin connection kept open;
//  4. one login with the new password over TLS + SCRAM (the proof);
//  5. the .env written atomically: a temporary file, fsync'd, renamed
//     over the old one, the directory fsync'd;
//  6. a journal record, fsync'd, after.
//
// BenchmarkFloorVsRotor runs it and `rotor rotate --all` on the same
// server in the same run, one at a time and 8 at once, and reports the
// ratio (issue 17 aims at ≤ 1.3).

// floor rotates every credential of set once, with parallel workers.
func floor(b *testing.B, set *batchSet, parallel int) time.Duration {
	b.Helper()
	ctx := context.Background()
	journalDir := b.TempDir()
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, parallel)
	start := time.Now()
	for w := range parallel {
		wg.Go(func() {
			if err := floorWorker(ctx, set, journalDir, w, &next); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	took := time.Since(start)
	close(errs)
	for err := range errs {
		require.NoError(b, err)
	}
	return took
}

func floorWorker(ctx context.Context, set *batchSet, journalDir string, w int, next *atomic.Int64) error {
	admin, err := pgx.Connect(ctx, set.adminURL.Reveal())
	if err != nil {
		return secret.Scrub(err, set.adminURL)
	}
	defer admin.Close(ctx)
	journal, err := os.OpenFile(filepath.Join(journalDir, fmt.Sprintf("journal-%d", w)), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer journal.Close()
	record := func(line string) error {
		if _, err := journal.WriteString(line + "\n"); err != nil {
			return err
		}
		return journal.Sync()
	}
	for {
		i := int(next.Add(1)) - 1
		if i >= len(set.roles) {
			return nil
		}
		role := set.roles[i]
		pw, err := secret.Generate(nil, secret.DefaultPolicy())
		if err != nil {
			return err
		}
		v, err := secret.SCRAMVerifier(nil, pw)
		if err != nil {
			return err
		}
		// The journal holds the verifier's fingerprint in rotor; a
		// record of the same size stands for it here.
		if err := record(fmt.Sprintf("%d prepare %s %x", i, role, len(v.Reveal()))); err != nil {
			return err
		}
		if _, err := admin.Exec(ctx, "ALTER ROLE "+pgx.Identifier{role}.Sanitize()+" PASSWORD '"+v.Reveal()+"'"); err != nil {
			return secret.Scrub(err, v)
		}
		url := set.roleURL(role, pw)
		if err := pgtest.CanLogin(ctx, url); err != nil {
			return err
		}
		if err := writeEnv(filepath.Join(set.dir, "env", fmt.Sprintf("%04d.env", i)), "DATABASE_URL="+url.Reveal()+"\n"); err != nil {
			return err
		}
		if err := record(fmt.Sprintf("%d done", i)); err != nil {
			return err
		}
	}
}

// writeEnv replaces path atomically and durably.
func writeEnv(path, content string) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, ".env-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := f.WriteString(content); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// BenchmarkFloorVsRotor: the floor and `rotor rotate --all` over the same
// number of credentials on the same server, and their ratio, twice: the
// first rotation of each credential, and the next one ("again-"), which
// is what a schedule runs from then on — rotor then has a current version
// to check for drift and a previous one to retire; the floor does the
// same work both times. ROTOR_BENCH_CREDENTIALS sets the count (default
// 1,000).
func BenchmarkFloorVsRotor(b *testing.B) {
	n := envCount(b, "ROTOR_BENCH_CREDENTIALS", 1000)
	for _, parallel := range []int{1, 8} {
		b.Run(fmt.Sprintf("credentials=%d/parallel=%d", n, parallel), func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				floorSet, rotorSet := newBatch(b, n), newBatch(b, n)
				for _, round := range []string{"", "again-"} {
					floorServer, floorCPU := serverCPU(b), selfCPU(b)
					floorTook := floor(b, floorSet, parallel)
					floorServer, floorCPU = serverCPU(b)-floorServer, selfCPU(b)-floorCPU
					rotorServer := serverCPU(b)
					u, _ := run(b, rotorSet.env, "rotate", "--all", "--json", "--parallel", strconv.Itoa(parallel))
					rotorServer = serverCPU(b) - rotorServer
					perRotation := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 / float64(n) }
					// Each side's own CPU and the server's, per rotation: what
					// rotor asks of the database beyond the floor's ALTER ROLE
					// and login.
					b.ReportMetric(perRotation(floorCPU), round+"floor-cpu-ms/rotation")
					b.ReportMetric(perRotation(u.cpu), round+"rotor-cpu-ms/rotation")
					b.ReportMetric(perRotation(floorServer), round+"floor-server-cpu-ms/rotation")
					b.ReportMetric(perRotation(rotorServer), round+"rotor-server-cpu-ms/rotation")
					b.ReportMetric(float64(n)/floorTook.Seconds(), round+"floor-rotations/s")
					b.ReportMetric(float64(n)/u.wall.Seconds(), round+"rotor-rotations/s")
					b.ReportMetric(u.wall.Seconds()/floorTook.Seconds(), round+"rotor/floor")
				}
			}
		})
	}
}
