// Package storetest is the conformance suite every store.Store driver must
// pass. A driver's tests call Exercise with a constructor that returns a
// fresh, empty store per call; subtests run in parallel, each on its own
// store, so the constructor must isolate them (a new file, schema or
// database) and close the store in t.Cleanup.
package storetest

import (
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/rotorhq/rotor/internal/store"
)

// racers is how many goroutines contend in the concurrency subtests: enough
// that a missing lock shows up, few enough for two cores.
const racers = 20

// t0 is deliberately not UTC and has nanoseconds: drivers must return the
// same instant, to the nanosecond, in UTC.
var t0 = time.Date(2031, 4, 5, 6, 7, 8, 123456789, time.FixedZone("IST", 5*3600+1800))

// Exercise runs the conformance suite against the driver newStore builds.
func Exercise(t *testing.T, newStore func(t *testing.T) store.Store) {
	t.Helper()
	groups := []struct {
		name string
		run  func(t *testing.T, newStore func(t *testing.T) store.Store)
	}{
		{"Lease", exerciseLease},
		{"Fence", exerciseFence},
		{"Version", exerciseVersion},
		{"Rotation", exerciseRotation},
		{"StartRotation", exerciseStart},
		{"Step", exerciseStep},
		{"Deferred", exerciseDeferred},
		{"Delivery", exerciseDelivery},
		{"FinishRotation", exerciseFinish},
		{"FinishRetirement", exerciseRetirement},
		{"Info", exerciseInfo},
		{"Copy", exerciseCopy},
		{"Audit", exerciseAudit},
		{"Close", exerciseClose},
	}
	for _, g := range groups {
		t.Run(g.name, func(t *testing.T) {
			t.Parallel()
			g.run(t, newStore)
		})
	}
}

// requireTime checks that got is the instant want, in UTC.
func requireTime(t *testing.T, want, got time.Time) {
	t.Helper()
	require.True(t, want.Equal(got), "want %s, got %s", want, got)
	require.Equal(t, time.UTC, got.Location())
}

func ptr[T any](v T) *T { return &v }

// race runs fn from racers goroutines released at once and returns each
// one's error, indexed by goroutine. Assertions stay on the test goroutine.
func race(fn func(i int) error) []error {
	errs := make([]error, racers)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range racers {
		wg.Go(func() {
			<-start
			errs[i] = fn(i)
		})
	}
	close(start)
	wg.Wait()
	return errs
}

// winners returns the indexes of the nil errors.
func winners(errs []error) []int {
	var w []int
	for i, err := range errs {
		if err == nil {
			w = append(w, i)
		}
	}
	return w
}

func exerciseClose(t *testing.T, newStore func(t *testing.T) store.Store) {
	s := newStore(t)
	require.NoError(t, s.Close())
	require.NoError(t, s.Close(), "Close must be idempotent")
}
