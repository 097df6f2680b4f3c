package config

import (
	"regexp"
	"strings"

	"go.yaml.in/yaml/v3"
)

var envRef = regexp.MustCompile(`\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)\}`)

// interpolate replaces ${VAR} in every scalar with the environment value;
// "$$" is a literal "$". A variable that is not set is an error at its
// line: rotor must not quietly rotate against an empty admin URL. It
// returns the set of nodes whose value came from the environment, so
// secret-holding keys can insist on it.
func (d *decoder) interpolate(n *yaml.Node, getenv func(string) (string, bool)) map[*yaml.Node]bool {
	from := map[*yaml.Node]bool{}
	var walk func(*yaml.Node)
	walk = func(n *yaml.Node) {
		if n.Kind == yaml.ScalarNode && strings.Contains(n.Value, "$") {
			used := false
			n.Value = envRef.ReplaceAllStringFunc(n.Value, func(m string) string {
				if m == "$$" {
					return "$"
				}
				name := m[2 : len(m)-1]
				v, ok := getenv(name)
				if !ok {
					d.errorf(n, "environment variable %s is not set; export it before running rotor (secrets belong in the environment, not in this file)", name)
					return ""
				}
				used = true
				return v
			})
			if used {
				from[n] = true
				// A value from the environment is a string, even if it
				// looks like a number or a boolean.
				n.Tag = "!!str"
				n.Style = yaml.DoubleQuotedStyle
			}
		}
		for _, c := range n.Content {
			walk(c)
		}
	}
	walk(n)
	return from
}
