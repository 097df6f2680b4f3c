package testdeps

import (
	"fmt"
	"os/exec"
)

// Browsers are the Chromium builds a browser test drives, in the order
// they are looked for on PATH (Debian's package, Ubuntu's, Google's).
var Browsers = []string{"chromium", "chromium-browser", "google-chrome"}

// Browser returns the path of a Chromium for browser tests (chromedp).
// When none is on PATH it skips the test where skipping is allowed and
// fails it otherwise (make test, CI), like a missing PostgreSQL.
func Browser(tb TB) string {
	tb.Helper()
	if SkipUnderQuick(tb, "Chromium") {
		return ""
	}
	for _, name := range Browsers {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	Missing(tb, "start a browser", fmt.Errorf("no Chromium on PATH (looked for %v)", Browsers),
		"ROTOR_DEPS_BROWSER=1 scripts/deps.sh chromium installs it (Debian: apt-get install chromium)")
	return ""
}
