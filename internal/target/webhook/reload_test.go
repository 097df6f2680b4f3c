package webhook_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/rotorhq/rotor/internal/secret"
	"github.com/rotorhq/rotor/internal/target"
	"github.com/rotorhq/rotor/internal/target/webhook"
)

// The reload of a webhook target is the receiver's acknowledgement: its
// 2xx to the delivery (a failing receiver fails the Put, so the engine
// never reaches the reload; TestAnswersMapToTargetErrors), plus
// reload_wait for receivers that act on the event later.

func reloadValues() map[string]secret.String {
	return map[string]secret.String{"DATABASE_URL": secret.New("postgres://app_green:pw-reload-canary@db/app")}
}

// recordWaits makes tg's reload_wait end at once and records each wait.
func recordWaits(tg *webhook.Target) *[]time.Duration {
	var waits []time.Duration
	tg.SetAfter(func(d time.Duration) <-chan time.Time {
		waits = append(waits, d)
		ch := make(chan time.Time, 1)
		ch <- time.Time{}
		return ch
	})
	return &waits
}

// TestReloadWithoutWaitIsTheAcknowledgement: no reload_wait, no wait.
func TestReloadWithoutWaitIsTheAcknowledgement(t *testing.T) {
	t.Parallel()
	r := newReceiver(t)
	tg := mustTarget(t, opts(r, ""))
	tg.SetAfter(func(time.Duration) <-chan time.Time {
		t.Error("no reload_wait, yet the reload waited")
		return nil
	})
	_, err := tg.Put(t.Context(), putReq(reloadValues(), "DATABASE_URL"))
	require.NoError(t, err)
	resp, err := tg.Reload(t.Context(), target.ReloadRequest{RotationID: "42"})
	require.NoError(t, err)
	require.Equal(t, "the receiver's 2xx is its acknowledgement", resp.Detail)
}

// TestReloadWaitsAfterTheAcknowledgement: with reload_wait the reload
// finishes that long after the 2xx, and says so.
func TestReloadWaitsAfterTheAcknowledgement(t *testing.T) {
	t.Parallel()
	r := newReceiver(t)
	tg := mustTarget(t, opts(r, "reload_wait: 30s\n"))
	waits := recordWaits(tg)
	_, err := tg.Put(t.Context(), putReq(reloadValues(), "DATABASE_URL"))
	require.NoError(t, err)
	require.Len(t, r.Deliveries(), 1)
	resp, err := tg.Reload(t.Context(), target.ReloadRequest{RotationID: "42"})
	require.NoError(t, err)
	require.Equal(t, "receiver answered 2xx, then waited reload_wait 30s", resp.Detail)
	require.Equal(t, []time.Duration{30 * time.Second}, *waits, "the clock did not move since the 2xx")
	require.Len(t, r.Deliveries(), 1, "the reload sends nothing")
}

// TestReloadTimesOut: reload_timeout ending during reload_wait fails the
// reload with ctx's error, naming what was left.
func TestReloadTimesOut(t *testing.T) {
	t.Parallel()
	r := newReceiver(t)
	tg := mustTarget(t, opts(r, "reload_wait: 2m\n"))
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	tg.SetAfter(func(time.Duration) <-chan time.Time {
		cancel() // the reload's time runs out while it waits
		return make(chan time.Time)
	})
	_, err := tg.Put(t.Context(), putReq(reloadValues(), "DATABASE_URL"))
	require.NoError(t, err)
	_, err = tg.Reload(ctx, target.ReloadRequest{RotationID: "42"})
	require.ErrorIs(t, err, context.Canceled)
	require.ErrorContains(t, err, "the receiver answered 2xx, but the reload's time ran out with 2m0s of reload_wait 2m0s left")
	require.ErrorContains(t, err, "then run `rotor resume`")
}

// TestReloadAfterAResumeWaitsInFull: a Reload in a process that did not
// make the delivery (a resume after a crash) cannot know when the 2xx
// came, so it waits all of reload_wait.
func TestReloadAfterAResumeWaitsInFull(t *testing.T) {
	t.Parallel()
	r := newReceiver(t)
	tg := mustTarget(t, opts(r, "reload_wait: 45s\n"))
	waits := recordWaits(tg)
	_, err := tg.Reload(t.Context(), target.ReloadRequest{RotationID: "7"})
	require.NoError(t, err)
	require.Equal(t, []time.Duration{45 * time.Second}, *waits)
	require.Empty(t, r.Deliveries())
}

func TestReloadWaitMustBeADuration(t *testing.T) {
	t.Parallel()
	r := newReceiver(t)
	for _, bad := range []string{"soon", "-5s"} {
		_, err := newTarget(t, opts(r, "reload_wait: "+bad+"\n"))
		require.ErrorIs(t, err, target.ErrInvalid)
		require.ErrorContains(t, err, `reload_wait "`+bad+`" is not a duration like 20s or 2m`)
	}
}

// TestReloadIsACapabilityOnlyWithAWait: without reload_wait the engine
// finds no reload to run or report.
func TestReloadIsACapabilityOnlyWithAWait(t *testing.T) {
	t.Parallel()
	r := newReceiver(t)
	require.Nil(t, target.Discover(mustTarget(t, opts(r, ""))).Reloader)
	require.NotNil(t, target.Discover(mustTarget(t, opts(r, "reload_wait: 1s\n"))).Reloader)
}
