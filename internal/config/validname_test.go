package config_test

import (
	"regexp"
	"testing"

	"github.com/rotorhq/rotor/internal/config"
)

// FuzzValidNameIsThePattern: ValidName accepts exactly the names the
// documented pattern does, 1 to 63 of [a-zA-Z0-9_.-] starting with a
// letter or digit. The seeds run in every `go test`.
func FuzzValidNameIsThePattern(f *testing.F) {
	pattern := regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$`)
	for _, seed := range []string{"", "a", "app-db", "App_DB.v2", "0db", "-db", "_db", ".db", "a b", "a/b", "ä", "a\n",
		"a123456789012345678901234567890123456789012345678901234567890bc", "a123456789012345678901234567890123456789012345678901234567890bcd"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := config.ValidName(s), pattern.MatchString(s); got != want {
			t.Fatalf("ValidName(%q) = %v, the pattern says %v", s, got, want)
		}
	})
}
