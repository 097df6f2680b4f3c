package dotenv_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/joho/godotenv"
	"github.com/stretchr/testify/require"

	"github.com/rotorhq/rotor/internal/target/dotenv"
	"github.com/rotorhq/rotor/internal/target/targettest"
	"github.com/rotorhq/rotor/internal/testdeps"
)

// nodeDir holds the pinned Node dotenv (package.json, package-lock.json).
const nodeDir = "testdata/node"

// nodeCase is one file written by Edit and the value its key must hold.
type nodeCase struct {
	name  string
	base  string
	value string
}

// TestNodeDotenvReadsBack proves the quoting rules against the real
// parsers: every value Edit accepts reads back byte for byte in Node's
// dotenv and in godotenv, and for every value it refuses, each quoting a
// simpler writer would try is misread by at least one of them.
func TestNodeDotenvReadsBack(t *testing.T) {
	t.Parallel()
	node := requireNode(t)

	bases := []string{
		"",
		"# app\nexport DATABASE_URL=old # primary\nOTHER='x'\n",
		"A=1\r\nDATABASE_URL=\"multi\r\nline\"\r\nB=2",
	}
	var cases []nodeCase
	for _, v := range targettest.Values() {
		for i, base := range bases {
			cases = append(cases, nodeCase{name: fmt.Sprintf("%s in base %d", v.Name, i), base: base, value: v.Value})
		}
	}
	for _, v := range characterValues() {
		cases = append(cases, nodeCase{name: v.Name, base: bases[1], value: v.Value})
	}

	dir := t.TempDir()
	var accepted, refused []nodeCase
	var files []string
	want := map[string]nodeCase{}
	for i, c := range cases {
		out, err := dotenv.Edit([]byte(c.base), map[string]string{fuzzKey: c.value}, []string{fuzzKey})
		if err != nil {
			require.ErrorIs(t, err, dotenv.ErrUnrepresentable, c.name)
			refused = append(refused, c)
			continue
		}
		accepted = append(accepted, c)
		files = append(files, writeCase(t, dir, fmt.Sprintf("accepted-%d.env", i), out, c, want))
	}
	// For refused values, the candidates a simpler writer would produce.
	for i, c := range refused {
		for j, written := range naiveQuotings(c.value) {
			out := c.base + fuzzKey + "=" + written + "\n"
			files = append(files, writeCase(t, dir, fmt.Sprintf("refused-%d-%d.env", i, j), []byte(out), c, want))
		}
	}

	parsed := parseWithNode(t, node, dir, files)

	var failures []string
	for _, f := range files {
		c := want[f]
		content, err := os.ReadFile(f)
		require.NoError(t, err)
		goValues, goErr := godotenv.UnmarshalBytes(content)
		nodeValue, inNode := parsed[f][fuzzKey]
		bothExact := goErr == nil && goValues[fuzzKey] == c.value && inNode && nodeValue == c.value
		isAccepted := strings.Contains(filepath.Base(f), "accepted-")
		switch {
		case isAccepted && !bothExact:
			failures = append(failures, fmt.Sprintf("%s: written by Edit but read back differently (godotenv ok: %v, node ok: %v)",
				c.name, goErr == nil && goValues[fuzzKey] == c.value, inNode && nodeValue == c.value))
		case !isAccepted && bothExact && !deliberatelyRefused(c.value, content):
			failures = append(failures, fmt.Sprintf("%s: refused by Edit, yet %s reads back exactly in both", c.name, filepath.Base(f)))
		}
	}
	require.Empty(t, failures, "%d of %d files (%d values accepted, %d refused)", len(failures), len(files), len(accepted), len(refused))
	require.NotEmpty(t, refused, "the cases must include values no quoting can carry")
}

// characterValues puts every ASCII character and the Unicode characters
// that parsers treat as blanks or line ends at the start, middle and end of
// a value, alone, and in pairs with the characters quoting rules are about.
func characterValues() []targettest.Value {
	var chars []rune
	for r := rune(1); r < 0x80; r++ {
		chars = append(chars, r)
	}
	chars = append(chars, 0x85, 0xA0, 0x2028, 0x2029, 0xFEFF, 0x1F511)

	var values []targettest.Value
	for _, r := range chars {
		c := string(r)
		name := fmt.Sprintf("U+%04X", r)
		values = append(values,
			targettest.Value{Name: name + " alone", Value: c},
			targettest.Value{Name: name + " first", Value: c + "x"},
			targettest.Value{Name: name + " inside", Value: "x" + c + "y"},
			targettest.Value{Name: name + " last", Value: "x" + c},
		)
	}
	special := []rune{'$', '{', '(', ')', '}', '\\', '\'', '"', '#', '`', '\n', '\r', ' ', '=', 'A', 'a', '0', '_', 'n', 'r'}
	for _, a := range special {
		for _, b := range special {
			name := fmt.Sprintf("U+%04X U+%04X", a, b)
			values = append(values,
				targettest.Value{Name: name + " pair", Value: string(a) + string(b)},
				targettest.Value{Name: name + " pair inside", Value: "x" + string(a) + string(b) + "y"},
			)
		}
	}
	return values
}

// deliberatelyRefused reports the refusals that are a choice, not a
// necessity: both parsers read a raw line break, and a quote after a
// backslash, inside single quotes, but Edit keeps every statement on one
// line (for line-based tools: docker --env-file, systemd, grep) and never
// puts ' inside single quotes, where every other parser ends the value.
func deliberatelyRefused(value string, written []byte) bool {
	single := bytes.HasSuffix(written, []byte("='"+value+"'\n"))
	return single && (strings.Contains(value, "\n") || strings.Contains(value, `\'`))
}

// naiveQuotings are the ways a writer that knows only one parser would
// quote v: raw single quotes, double quotes escaping line breaks, and
// godotenv.Marshal's double-quote escaping.
func naiveQuotings(v string) []string {
	lineBreaks := strings.NewReplacer("\n", `\n`, "\r", `\r`)
	godotenvStyle := strings.NewReplacer(`\`, `\\`, "\n", `\n`, "\r", `\r`, `"`, `\"`, "!", `\!`, "$", `\$`, "`", "\\`")
	return []string{
		"'" + v + "'",
		`"` + lineBreaks.Replace(v) + `"`,
		`"` + godotenvStyle.Replace(v) + `"`,
	}
}

func writeCase(t *testing.T, dir, name string, content []byte, c nodeCase, want map[string]nodeCase) string {
	t.Helper()
	p := filepath.Join(dir, name)
	require.NoError(t, os.WriteFile(p, content, 0o600))
	want[p] = c
	return p
}

// parseWithNode runs testdata/node/parse.js. File names go in on stdin and
// values come back in a file, so no value reaches argv or output.
func parseWithNode(t *testing.T, node, dir string, files []string) map[string]map[string]string {
	t.Helper()
	outPath := filepath.Join(dir, "parsed.json")
	req, err := json.Marshal(map[string]any{"files": files, "out": outPath})
	require.NoError(t, err)

	cmd := exec.CommandContext(t.Context(), node, "parse.js")
	cmd.Dir = nodeDir
	cmd.Stdin = bytes.NewReader(req)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	require.NoError(t, cmd.Run(), "node parse.js: %s", stderr.String())

	raw, err := os.ReadFile(outPath)
	require.NoError(t, err)
	var parsed map[string]map[string]string
	require.NoError(t, json.Unmarshal(raw, &parsed))
	return parsed
}

// requireNode returns the node binary. Without node or the pinned dotenv
// the test is skipped with a hint where skipping is allowed, and fails
// under `make test` and CI, where a silently skipped cross-check would
// prove nothing (the rule is testdeps').
func requireNode(t *testing.T) string {
	t.Helper()
	hint := "scripts/deps.sh installs them (Node.js, npm, then npm ci --prefix internal/target/dotenv/testdata/node)"
	testdeps.SkipUnderQuick(t, "Node.js")
	missing := func(what string) { testdeps.Missing(t, "", errors.New(what), hint) }
	node, err := exec.LookPath("node")
	if err != nil {
		missing("node is not on PATH")
		return ""
	}
	if _, err := os.Stat(filepath.Join(nodeDir, "node_modules", "dotenv", "package.json")); errors.Is(err, os.ErrNotExist) {
		missing("Node's dotenv is not installed in " + nodeDir)
	}
	return node
}
