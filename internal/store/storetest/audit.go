package storetest

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/rotorhq/rotor/internal/store"
)

func exerciseAudit(t *testing.T, newStore func(t *testing.T) store.Store) {
	t.Run("WithTheWriteItReports", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		ctx := t.Context()
		l, err := acquire(t, s, "a", t0)
		require.NoError(t, err)
		r, err := s.InsertRotation(ctx, store.InsertRotationParams{Credential: "app-db", Strategy: "single", Trigger: "manual", Now: t0, Fence: l.Fence(),
			Audit: &store.AppendAuditParams{Event: "rotation.started", Actor: "a", Detail: `{"trigger":"manual"}`}})
		require.NoError(t, err)
		_, err = s.UpsertDelivery(ctx, store.UpsertDeliveryParams{RotationID: r.ID, Target: "env", State: store.DeliveryWritten, Now: t0.Add(time.Second), Fence: l.Fence(),
			Audit: &store.AppendAuditParams{Event: "delivery.written", Actor: "a", Detail: `{"target":"env"}`}})
		require.NoError(t, err)
		events, err := s.ListAudit(ctx, store.ListAuditParams{Credential: "app-db"})
		require.NoError(t, err)
		require.Len(t, events, 2)
		for i, want := range []struct {
			event string
			at    time.Time
		}{{"delivery.written", t0.Add(time.Second)}, {"rotation.started", t0}} {
			require.Equal(t, want.event, events[i].Event)
			require.Equal(t, r.ID, events[i].RotationID, "the event names the rotation of its write")
			require.Equal(t, "app-db", events[i].Credential)
			require.Equal(t, "a", events[i].Actor)
			requireTime(t, want.at, events[i].At)
		}

		// A write that is refused appends no event either.
		_, err = acquire(t, s, "b", t0.Add(time.Hour))
		require.NoError(t, err)
		_, err = s.UpsertDelivery(ctx, store.UpsertDeliveryParams{RotationID: r.ID, Target: "env", State: store.DeliveryReloaded, Now: t0.Add(time.Hour), Fence: l.Fence(),
			Audit: &store.AppendAuditParams{Event: "delivery.reloaded"}})
		require.ErrorIs(t, err, store.ErrFenced)
		_, err = s.InsertRotation(ctx, store.InsertRotationParams{Credential: "app-db", Strategy: "single", Trigger: "manual", Now: t0.Add(time.Hour), Fence: l.Fence(),
			Audit: &store.AppendAuditParams{Event: "rotation.started"}})
		require.ErrorIs(t, err, store.ErrFenced)
		again, err := s.ListAudit(ctx, store.ListAuditParams{Credential: "app-db"})
		require.NoError(t, err)
		require.Equal(t, events, again)
	})

	t.Run("AppendAndList", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		ctx := t.Context()
		var events []*store.AuditEvent
		for i, cred := range []string{"app-db", "other-db", "app-db", "app-db"} {
			e, err := s.AppendAudit(ctx, store.AppendAuditParams{
				Credential: cred, RotationID: int64(i), Event: "rotation.started", Actor: "alice",
				Detail: `{"n":1}`, Now: t0.Add(time.Duration(i) * time.Nanosecond),
			})
			require.NoError(t, err)
			require.NotZero(t, e.ID)
			require.Equal(t, cred, e.Credential)
			require.Equal(t, int64(i), e.RotationID, "audit events may name rotations the store does not hold")
			require.Equal(t, "rotation.started", e.Event)
			require.Equal(t, "alice", e.Actor)
			require.Equal(t, `{"n":1}`, e.Detail)
			requireTime(t, t0.Add(time.Duration(i)*time.Nanosecond), e.At)
			events = append(events, e)
		}

		all, err := s.ListAudit(ctx, store.ListAuditParams{})
		require.NoError(t, err)
		require.Equal(t, []*store.AuditEvent{events[3], events[2], events[1], events[0]}, all, "newest first")

		app, err := s.ListAudit(ctx, store.ListAuditParams{Credential: "app-db", Limit: 2})
		require.NoError(t, err)
		require.Equal(t, []*store.AuditEvent{events[3], events[2]}, app)

		none, err := s.ListAudit(ctx, store.ListAuditParams{Credential: "nope"})
		require.NoError(t, err)
		require.Empty(t, none)
	})
	t.Run("Filters", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		ctx := t.Context()
		var events []*store.AuditEvent
		for i, ev := range []struct{ cred, name string }{
			{"app-db", "rotation.started"}, {"app-db", "rotation.failed"}, {"other-db", "rotation.failed"},
			{"app-db", "rotation.resumed"}, {"app-db", "rotation.succeeded"},
		} {
			e, err := s.AppendAudit(ctx, store.AppendAuditParams{Credential: ev.cred, RotationID: 1, Event: ev.name, Actor: "alice",
				Detail: "{}", Now: t0.Add(time.Duration(i) * time.Minute)})
			require.NoError(t, err)
			events = append(events, e)
		}
		got, err := s.ListAudit(ctx, store.ListAuditParams{Since: t0.Add(time.Minute)})
		require.NoError(t, err)
		require.Equal(t, []*store.AuditEvent{events[4], events[3], events[2], events[1]}, got, "at or after Since")
		got, err = s.ListAudit(ctx, store.ListAuditParams{Events: []string{"rotation.failed", "rotation.resumed"}})
		require.NoError(t, err)
		require.Equal(t, []*store.AuditEvent{events[3], events[2], events[1]}, got)
		got, err = s.ListAudit(ctx, store.ListAuditParams{Credential: "app-db", Since: t0.Add(2 * time.Minute), Events: []string{"rotation.failed", "rotation.succeeded"}, Limit: 5})
		require.NoError(t, err)
		require.Equal(t, []*store.AuditEvent{events[4]}, got, "every filter applies")
		got, err = s.ListAudit(ctx, store.ListAuditParams{Credential: "app-db", Events: []string{"rotation.failed", "rotation.started"}, Limit: 1})
		require.NoError(t, err)
		require.Equal(t, []*store.AuditEvent{events[1]}, got, "the limit applies after the filters")
	})
}
