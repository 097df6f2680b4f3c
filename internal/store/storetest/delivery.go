package storetest

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/rotorhq/rotor/internal/store"
)

func upsertDelivery(t *testing.T, s store.Store, r *store.Rotation, target string, state store.DeliveryState) *store.Delivery {
	t.Helper()
	d, err := s.UpsertDelivery(t.Context(), store.UpsertDeliveryParams{
		RotationID: r.ID, Credential: r.Credential, Target: target, State: state,
		Fingerprint: "fp-" + target, Attempts: 1, Now: t0,
	})
	require.NoError(t, err)
	return d
}

func exerciseDelivery(t *testing.T, newStore func(t *testing.T) store.Store) {
	t.Run("UpsertReplaces", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		ctx := t.Context()
		r := insertRotation(t, s, "app-db", 0)

		d, err := s.UpsertDelivery(ctx, store.UpsertDeliveryParams{
			RotationID: r.ID, Credential: "app-db", Target: "vercel", State: store.DeliveryFailed,
			Fingerprint: "fp1", Attempts: 1, Error: "429 too many requests", Detail: "retry-after 2s", Now: t0,
		})
		require.NoError(t, err)
		require.Equal(t, &store.Delivery{
			RotationID: r.ID, Credential: "app-db", Target: "vercel", State: store.DeliveryFailed,
			Fingerprint: "fp1", Attempts: 1, Error: "429 too many requests", Detail: "retry-after 2s", UpdatedAt: t0.UTC(),
		}, d)
		requireTime(t, t0, d.UpdatedAt)

		t1 := t0.Add(3 * time.Second)
		d, err = s.UpsertDelivery(ctx, store.UpsertDeliveryParams{
			RotationID: r.ID, Credential: "app-db", Target: "vercel", State: store.DeliveryVerified,
			Fingerprint: "fp2", Attempts: 2, Now: t1,
		})
		require.NoError(t, err)
		require.Equal(t, store.DeliveryVerified, d.State)
		require.Equal(t, "fp2", d.Fingerprint)
		require.Equal(t, 2, d.Attempts)
		require.Empty(t, d.Error)
		require.Empty(t, d.Detail)
		requireTime(t, t1, d.UpdatedAt)

		got, err := s.ListDeliveries(ctx, store.ListDeliveriesParams{RotationID: r.ID})
		require.NoError(t, err)
		require.Equal(t, []*store.Delivery{d}, got, "one row per (rotation, target)")
	})

	t.Run("ByRotation", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		r := insertRotation(t, s, "app-db", 0)
		other := insertRotation(t, s, "other-db", 0)
		dz := upsertDelivery(t, s, r, "z-dotenv", store.DeliveryWritten)
		da := upsertDelivery(t, s, r, "a-github", store.DeliveryVerified)
		upsertDelivery(t, s, other, "a-github", store.DeliveryPending)

		got, err := s.ListDeliveries(t.Context(), store.ListDeliveriesParams{RotationID: r.ID})
		require.NoError(t, err)
		require.Equal(t, []*store.Delivery{da, dz}, got, "ordered by target")
	})

	t.Run("ByCredentialLatestPerTarget", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		ctx := t.Context()
		r1 := insertRotation(t, s, "app-db", 0)
		upsertDelivery(t, s, r1, "fly", store.DeliveryVerified)
		oldRender := upsertDelivery(t, s, r1, "render", store.DeliveryVerified)
		finish(t, s, r1.ID, store.StatusAbandoned, false)

		r2 := insertRotation(t, s, "app-db", 0)
		newFly := upsertDelivery(t, s, r2, "fly", store.DeliveryMismatch)
		otherRot := insertRotation(t, s, "other-db", 0)
		upsertDelivery(t, s, otherRot, "aws", store.DeliveryVerified)

		got, err := s.ListDeliveries(ctx, store.ListDeliveriesParams{Credential: "app-db"})
		require.NoError(t, err)
		require.Equal(t, []*store.Delivery{newFly, oldRender}, got,
			"each target's row from the newest rotation that touched it, other credentials excluded")
	})

	t.Run("UnknownRotation", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		_, err := s.UpsertDelivery(t.Context(), store.UpsertDeliveryParams{
			RotationID: 4242, Credential: "app-db", Target: "vercel", State: store.DeliveryPending, Now: t0,
		})
		require.ErrorIs(t, err, store.ErrNotFound)
	})
}
