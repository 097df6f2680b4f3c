package storetest

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/rotorhq/rotor/internal/store"
)

func exerciseAudit(t *testing.T, newStore func(t *testing.T) store.Store) {
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
