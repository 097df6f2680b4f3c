package cli

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/rotorhq/rotor/internal/engine"
)

// TestPrintJSONListPrintsWhatPrintJSONPrints: the streamed list is the
// same bytes as the one-document encoding, for an empty, a nil, a
// one-element and a longer list, with nested values, escapes and HTML
// characters (which both escape).
func TestPrintJSONListPrintsWhatPrintJSONPrints(t *testing.T) {
	t.Parallel()
	plan := func(name string) *engine.Plan {
		return &engine.Plan{Credential: name, Strategy: "dual", ToRole: "app_<blue>", Actions: []string{"a & b", "\"quoted\"\n"},
			Targets: []engine.PlanTarget{{Name: "env", Values: map[string]string{"B": "{{.URL}}", "A": "x"}, Keys: []string{"A", "B"}}}}
	}
	for name, list := range map[string][]*engine.Plan{
		"nil":   nil,
		"empty": {},
		"one":   {plan("app")},
		"three": {plan("a"), plan("b"), {Credential: "c"}},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			f1, io1 := newTestFactory(testEnv{})
			require.NoError(t, printJSON(f1, list))
			f2, io2 := newTestFactory(testEnv{})
			require.NoError(t, printJSONList(f2, list))
			require.Equal(t, io1.out.String(), io2.out.String())
			require.True(t, f2.wroteJSON)
		})
	}
}
