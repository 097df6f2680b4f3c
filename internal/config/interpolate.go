package config

import (
	"regexp"
	"strings"

	"go.yaml.in/yaml/v3"
)

var envRef = regexp.MustCompile(`\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)\}`)

// interpolate replaces ${VAR} in every scalar with the environment value;
// "$$" is a literal "$". A variable that is not set is an error at its
// line — rotor must not quietly rotate against an empty admin URL — unless
// allowUnset says the key it is under may go without (a command that
// connects to nothing needs no connection secrets). Either way the
// reference stays in the value as written and the variable is recorded in
// d.unset, so that whoever uses the value can tell. It returns the text as
// written of every scalar it rewrote, so secret-holding keys can tell what
// came from the environment and what was typed into the file.
func (d *decoder) interpolate(doc *yaml.Node, getenv func(string) (string, bool), allowUnset func(topKey string) bool) map[*yaml.Node]string {
	written := map[*yaml.Node]string{}
	var walk func(n *yaml.Node, lenient bool)
	walk = func(n *yaml.Node, lenient bool) {
		if n.Kind == yaml.ScalarNode && strings.Contains(n.Value, "$") {
			raw, used := n.Value, false
			n.Value = envRef.ReplaceAllStringFunc(n.Value, func(m string) string {
				if m == "$$" {
					return "$"
				}
				name := m[2 : len(m)-1]
				v, ok := getenv(name)
				if !ok {
					if d.unset == nil {
						d.unset = map[string]bool{}
					}
					d.unset[name] = true
					if !lenient {
						d.errorf(n, "environment variable %s is not set; export it before running rotor (secrets belong in the environment, not in this file)", name)
					}
					return m
				}
				used = true
				return v
			})
			if n.Value != raw {
				written[n] = raw
			}
			if used {
				// A value from the environment is a string, even if it
				// looks like a number or a boolean.
				n.Tag = "!!str"
				n.Style = yaml.DoubleQuotedStyle
			}
		}
		for _, c := range n.Content {
			walk(c, lenient)
		}
	}
	if doc.Kind != yaml.MappingNode {
		walk(doc, false)
		return written
	}
	for i := 0; i+1 < len(doc.Content); i += 2 {
		k, v := doc.Content[i], doc.Content[i+1]
		walk(k, false)
		walk(v, allowUnset != nil && allowUnset(k.Value))
	}
	return written
}

// envMarker stands in for ${VAR} references when a value as written is
// parsed: letters only, so it is valid in every part of a URL.
const envMarker = "rotorenvref"

// fromEnv reports whether raw (a value as written) references the
// environment, and returns it with every reference replaced by envMarker
// and "$$" by "$".
func fromEnv(raw string) (masked string, refs bool) {
	masked = envRef.ReplaceAllStringFunc(raw, func(m string) string {
		if m == "$$" {
			return "$"
		}
		refs = true
		return envMarker
	})
	return masked, refs
}
