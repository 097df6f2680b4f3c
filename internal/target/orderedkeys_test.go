package target_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/rotorhq/rotor/internal/secret"
	"github.com/rotorhq/rotor/internal/target"
)

func TestOrderedKeys(t *testing.T) {
	t.Parallel()
	v := secret.New("x")
	req := target.PutRequest{
		// Config order, a repeat, and a key without a value.
		Keys:   []string{"URL", "PGPASSWORD", "URL", "MISSING"},
		Values: map[string]secret.String{"URL": v, "PGPASSWORD": v, "ZED": v, "ALPHA": v},
	}
	for range 20 { // map order must not matter
		require.Equal(t, []string{"URL", "PGPASSWORD", "ALPHA", "ZED"}, req.OrderedKeys())
	}
	require.Empty(t, target.PutRequest{}.OrderedKeys())
}
