package engine_test

import (
	"encoding/json"
	"errors"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/rotorhq/rotor/internal/engine"
	"github.com/rotorhq/rotor/internal/pgtest"
	"github.com/rotorhq/rotor/internal/store"
)

// TestAuditTrail: the audit trail records what happened to a rotation, not
// only that it started and ended — each target's delivery, each retry, the
// failure of a step, and the run that resumed it, with the step it resumed
// from and whether the process before it died (a crash leaves no failure
// in the journal) or stopped at a failure.
func TestAuditTrail(t *testing.T) {
	t.Parallel()
	role := pgtest.UniqueName(t, "app")
	b := setup(t, setupOpts{memory: true, strategy: "single", roles: []string{role}})

	// Rotation 1: a retried write, then the process dies before confirm.
	b.mem.failPuts = 1
	killed := errors.New("killed")
	b.eng.Hooks = &engine.Hooks{BeforeStep: func(step string) error {
		if step == engine.StepConfirm {
			return killed
		}
		return nil
	}}
	_, err := b.eng.Rotate(b.ctx, b.cred(), engine.Options{})
	require.ErrorIs(t, err, killed)
	b.eng = b.newEngine()
	first := b.rotate(engine.Options{})
	require.Equal(t, store.StatusSucceeded, first.Status, first.Outcome)

	// Rotation 2: a write the target refuses stops publish; a later run
	// resumes after the fix.
	b.mem.failPuts, b.mem.failErr = 1, errors.New("memory: 400 bad request")
	_, err = b.eng.Rotate(b.ctx, b.cred(), engine.Options{})
	require.Error(t, err)
	second := b.rotate(engine.Options{})
	require.Equal(t, store.StatusSucceeded, second.Status, second.Outcome)

	events, err := b.store.ListAudit(b.ctx, store.ListAuditParams{Credential: "app"})
	require.NoError(t, err)
	slices.Reverse(events)
	type seen struct {
		rotation      int64
		event, target string
		detail        map[string]any
	}
	var got []seen
	for _, ev := range events {
		var d map[string]any
		require.NoError(t, json.Unmarshal([]byte(ev.Detail), &d), "detail of %s is JSON", ev.Event)
		target, _ := d["target"].(string)
		got = append(got, seen{ev.RotationID, ev.Event, target, d})
		require.NotEmpty(t, engine.EventResult(ev.Event), "%s counts as a result", ev.Event)
	}
	want := []struct {
		rotation      int64
		event, target string
	}{
		{first.RotationID, engine.EventStarted, ""},
		{first.RotationID, engine.EventRetry, "mem"},
		{first.RotationID, "delivery.written", "mem"},
		{first.RotationID, engine.EventResumed, ""},
		{first.RotationID, "delivery.verified", "mem"},
		{first.RotationID, engine.EventSucceeded, ""},
		{second.RotationID, engine.EventStarted, ""},
		{second.RotationID, "delivery.failed", "mem"},
		{second.RotationID, engine.EventFailed, ""},
		{second.RotationID, engine.EventResumed, ""},
		{second.RotationID, "delivery.written", "mem"},
		{second.RotationID, engine.EventSucceeded, ""},
	}
	i := 0
	for _, g := range got {
		if i < len(want) && g.rotation == want[i].rotation && g.event == want[i].event && (want[i].target == "" || g.target == want[i].target) {
			switch {
			case g.event == engine.EventResumed && g.rotation == first.RotationID:
				require.Equal(t, map[string]any{"from_step": "publish", "last_status": "done", "interrupted": true, "stopped_at": g.detail["stopped_at"]}, g.detail,
					"the process died after publish: nothing in the journal says why it stopped")
			case g.event == engine.EventResumed:
				require.Equal(t, "publish", g.detail["from_step"])
				require.Equal(t, "failed", g.detail["last_status"])
				require.Equal(t, false, g.detail["interrupted"])
				require.Contains(t, g.detail["error"], "memory: 400 bad request")
			case g.event == engine.EventRetry:
				require.Equal(t, float64(1), g.detail["attempt"])
				require.Contains(t, g.detail["error"], "503 service unavailable")
				require.NotEmpty(t, g.detail["retry_in"])
			case g.event == "delivery.failed":
				require.Contains(t, g.detail["error"], "400 bad request")
			}
			i++
		}
	}
	require.Equal(t, len(want), i, "the trail, oldest first (matched %d of %d): %+v", i, len(want), got)
	for _, r := range engine.Results {
		require.NotEmpty(t, engine.EventsWithResult(r), "result %s names events", r)
	}
}
