package config_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/rotorhq/rotor/internal/config"
	"github.com/rotorhq/rotor/internal/resolve"
)

// FuzzParse feeds arbitrary bytes to the loader: it must never panic, and
// every error it reports must be located in the file (the "file:line:"
// shape users and editors rely on) and must not repeat an environment
// value, which may be a secret.
func FuzzParse(f *testing.F) {
	for _, seed := range []string{
		"version: 1\ncredentials:\n  app:\n    provider: {type: fake, admin_url: ${ADMIN_URL}}\n    connection: {url: postgresql://h/db}\n    strategy: single\n    role: app\n    targets:\n      - {name: env, type: fake, values: {DATABASE_URL: \"{{.URL}}\"}}\n",
		"version: 1\ncredentials: {}\n",
		"version: 2\n",
		"credentials:\n  app:\n    schedule: {every: 30d, window: \"Mon-Fri 02:00-05:00 UTC\", jitter: 1h}\n",
		"version: 1\ncredentials:\n  a:\n    targets: [{name: x, type: fake, values: {K: \"{{.Nope}}\"}}]\n",
		"- just\n- a list\n",
		"version: 1\ncredentials:\n  a: &x {strategy: dual}\n  b: *x\n",
		"\t\x00bad",
	} {
		f.Add(seed)
	}
	const canary = "fuzz-canary-secret-51e7"
	env := func(k string) (string, bool) {
		if k == "ADMIN_URL" {
			return "postgresql://admin:" + canary + "@db/postgres", true
		}
		return "", false
	}
	f.Fuzz(func(t *testing.T, src string) {
		cfg, err := resolve.Parse("rotor.yaml", []byte(src), env, fakeRegistry())
		if err == nil {
			cfg.Close()
			return
		}
		if strings.Contains(err.Error(), canary) {
			t.Fatalf("the error repeats an environment value")
		}
		var one *config.Error
		var many config.Errors
		switch {
		case errors.As(err, &many):
			for _, e := range many {
				if e.File != "rotor.yaml" {
					t.Fatalf("error not located in the file: %v", e)
				}
			}
		case errors.As(err, &one):
			if one.File != "rotor.yaml" {
				t.Fatalf("error not located in the file: %v", one)
			}
		default:
			t.Fatalf("error of an unexpected kind: %T %v", err, err)
		}
	})
}
