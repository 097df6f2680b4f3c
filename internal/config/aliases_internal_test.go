package config

import (
	"testing"

	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
)

// expandAliases copies only what sharing touches: a subtree without
// anchors or aliases is kept as it is (no copy of a large plain file),
// and every alias becomes a node of its own, so interpolating one site in
// place cannot change another.
func TestExpandAliasesCopiesOnlyWhatIsShared(t *testing.T) {
	t.Parallel()
	var root yaml.Node
	require.NoError(t, yaml.Unmarshal([]byte("plain: {a: 1, b: [x, y]}\nshared: &s {c: 2}\none: *s\ntwo: *s\n"), &root))
	in := root.Content[0]
	d := &decoder{file: "rotor.yaml"}
	out := d.expandAliases(in)
	require.Empty(t, d.errs)
	require.NotSame(t, in, out, "the document holds an anchor, so its mapping is rebuilt")
	value := func(n *yaml.Node, key string) *yaml.Node {
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == key {
				return n.Content[i+1]
			}
		}
		t.Fatalf("no key %q", key)
		return nil
	}
	require.Same(t, value(in, "plain"), value(out, "plain"), "a subtree without anchors is not copied")
	one, two := value(out, "one"), value(out, "two")
	require.Equal(t, yaml.MappingNode, one.Kind)
	require.NotSame(t, one, two)
	require.NotSame(t, one.Content[1], two.Content[1])
	require.NotSame(t, value(in, "shared"), value(out, "shared"))
	require.Empty(t, value(out, "shared").Anchor)

	var plain yaml.Node
	require.NoError(t, yaml.Unmarshal([]byte("a: {b: 1}\n"), &plain))
	require.Same(t, plain.Content[0], d.expandAliases(plain.Content[0]), "a file without anchors is not copied at all")
}
