package dotenv

import (
	"regexp"
	"testing"
)

// FuzzValidKeyIsThePattern: validKey accepts exactly [A-Za-z_][A-Za-z0-9_]*,
// the names godotenv, Node's dotenv and POSIX shells all read. The seeds
// run in every `go test`.
func FuzzValidKeyIsThePattern(f *testing.F) {
	pattern := regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	for _, seed := range []string{"", "A", "_", "DATABASE_URL", "db_url2", "1A", "A-B", "A.B", "A B", "Ä", "A\n", "export"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, k string) {
		if got, want := validKey(k), pattern.MatchString(k); got != want {
			t.Fatalf("validKey(%q) = %v, the pattern says %v", k, got, want)
		}
	})
}
