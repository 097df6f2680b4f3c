package storetest

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/rotorhq/rotor/internal/store"
)

// exerciseInfo: every store has a random id of its own that stays the
// same for its life, and knows its schema version.
func exerciseInfo(t *testing.T, newStore func(t *testing.T) store.Store) {
	a, b := newStore(t), newStore(t)
	ia, err := a.Info(t.Context())
	require.NoError(t, err)
	require.Len(t, ia.ID, 32)
	require.Positive(t, ia.SchemaVersion)
	require.NotEmpty(t, ia.Driver)
	again, err := a.Info(t.Context())
	require.NoError(t, err)
	require.Equal(t, ia.ID, again.ID)
	ib, err := b.Info(t.Context())
	require.NoError(t, err)
	require.NotEqual(t, ia.ID, ib.ID, "two stores, two ids")
}
