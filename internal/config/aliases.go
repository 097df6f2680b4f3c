package config

import (
	"strings"

	"go.yaml.in/yaml/v3"
)

// maxExpandedNodes bounds what anchors may expand to, so a file of nested
// aliases ("billion laughs") is refused instead of eating the memory. Only
// nodes copied through an alias count: a large file written out (10,000
// credentials for `rotor serve`) costs what it weighs and is not refused.
const maxExpandedNodes = 100_000

// expandAliases rewrites the document so that the rest of the loader never
// meets YAML's sharing: every alias (*name) becomes a copy of the anchored
// node, and every merge key (<<: *name, or a list of them) is replaced by
// the anchored mapping's pairs that the mapping does not set itself. Copies
// keep the anchor's line numbers, so an error inside shared settings points
// at the lines where they are written. Copies, not shared nodes: ${ENV}
// interpolation rewrites scalars in place.
func (d *decoder) expandAliases(n *yaml.Node) *yaml.Node {
	budget := maxExpandedNodes
	var expand func(n *yaml.Node, depth int, aliased bool) *yaml.Node
	expand = func(n *yaml.Node, depth int, aliased bool) *yaml.Node {
		if n == nil || budget < 0 {
			return n
		}
		if aliased {
			budget--
		}
		if budget < 0 || depth > 100 {
			budget = -1
			d.errorf(n, "the YAML anchors and aliases expand to more than %d nodes; write the settings out instead of nesting aliases", maxExpandedNodes)
			return n
		}
		if n.Kind == yaml.AliasNode {
			if n.Alias == nil {
				return n
			}
			return expand(n.Alias, depth+1, true)
		}
		// A node that is not itself an alias copy, has no anchor and whose
		// children all came back unchanged is returned as it is: a file
		// without anchors (the common case, and a 1,000-credential config
		// is 100,000 nodes) is then not copied at all. An alias's copy is
		// always a copy, so no node is ever in the tree twice.
		var content []*yaml.Node
		changed := aliased || n.Anchor != ""
		keep := func(i int, e *yaml.Node) {
			if !changed && e != n.Content[i] {
				changed = true
				content = append(make([]*yaml.Node, 0, len(n.Content)), n.Content[:i]...)
			}
			if changed {
				content = append(content, e)
			}
		}
		var merged []*yaml.Node
		if n.Kind == yaml.MappingNode {
			for i := 0; i+1 < len(n.Content); i += 2 {
				k, v := n.Content[i], n.Content[i+1]
				if k.Kind == yaml.ScalarNode && k.Tag == "!!merge" {
					if !changed {
						changed = true
						content = append(make([]*yaml.Node, 0, len(n.Content)), n.Content[:i]...)
					}
					merged = append(merged, d.mergeSources(expand(v, depth+1, aliased))...)
					continue
				}
				keep(i, expand(k, depth+1, aliased))
				keep(i+1, expand(v, depth+1, aliased))
			}
		} else {
			for i, child := range n.Content {
				keep(i, expand(child, depth+1, aliased))
			}
		}
		if !changed {
			return n
		}
		c := *n
		c.Anchor = ""
		c.Content = content
		if n.Kind == yaml.MappingNode {
			c.Content = mergeInto(c.Content, merged)
		}
		return &c
	}
	return expand(n, 0, false)
}

// mergeSources is the mappings a merge key names: one mapping or a
// sequence of them (earlier ones win, as YAML's merge key says).
func (d *decoder) mergeSources(v *yaml.Node) []*yaml.Node {
	switch v.Kind {
	case yaml.MappingNode:
		return []*yaml.Node{v}
	case yaml.SequenceNode:
		var out []*yaml.Node
		for _, m := range v.Content {
			if m.Kind != yaml.MappingNode {
				d.errorf(m, "<< merges mappings only; this item is a %s", kindName(m.Kind))
				continue
			}
			out = append(out, m)
		}
		return out
	}
	d.errorf(v, "<< merges a mapping (<<: *name) or a list of them, not a %s", kindName(v.Kind))
	return nil
}

// mergeInto appends the pairs of each source whose key own (and earlier
// sources) do not set.
func mergeInto(own []*yaml.Node, sources []*yaml.Node) []*yaml.Node {
	seen := map[string]bool{}
	for i := 0; i+1 < len(own); i += 2 {
		seen[own[i].Value] = true
	}
	for _, src := range sources {
		for i := 0; i+1 < len(src.Content); i += 2 {
			if k := src.Content[i]; !seen[k.Value] {
				seen[k.Value] = true
				own = append(own, k, src.Content[i+1])
			}
		}
	}
	return own
}

// dropExtensions removes the top-level keys starting with "x-": blocks
// that exist only to hold anchors (x-shared: {provider: &pg …}), as in
// Docker Compose files. Run after expandAliases, which has copied what
// they hold to wherever it is used.
func dropExtensions(doc *yaml.Node) {
	if doc.Kind != yaml.MappingNode {
		return
	}
	kept := doc.Content[:0]
	for i := 0; i+1 < len(doc.Content); i += 2 {
		if k := doc.Content[i]; k.Kind == yaml.ScalarNode && strings.HasPrefix(k.Value, "x-") {
			continue
		}
		kept = append(kept, doc.Content[i], doc.Content[i+1])
	}
	doc.Content = kept
}
