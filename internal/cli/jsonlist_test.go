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

// TestJSONListStreamsEachElement: a list written element by element (a
// batch of rotations) has every element on the output as soon as add
// returns, and ends as the one-document encoding of the whole list.
func TestJSONListStreamsEachElement(t *testing.T) {
	t.Parallel()
	list := []RotationOutput{{Credential: "a"}, {Credential: "b", Error: "b: <failed> & stopped"}, {Credential: "c"}}
	f1, io1 := newTestFactory(testEnv{})
	require.NoError(t, printJSON(f1, list))
	f2, io2 := newTestFactory(testEnv{})
	l := newJSONList(f2, true)
	for i, v := range list {
		require.NoError(t, l.add(v))
		require.Contains(t, io2.out.String(), `"credential": "`+v.Credential+`"`, "element %d is written when add returns", i)
	}
	require.NoError(t, l.close())
	require.Equal(t, io1.out.String(), io2.out.String())

	f3, io3 := newTestFactory(testEnv{})
	require.NoError(t, newJSONList(f3, true).close())
	require.Equal(t, "[]\n", io3.out.String(), "nothing added: an empty list")
}
