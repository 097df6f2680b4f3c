package postgres

import "testing"

// The admin connections' caches are sized for the provider's own
// statements unless the URL asks otherwise.
func TestAdminCachesAreSizedForTheProvider(t *testing.T) {
	for _, tc := range []struct {
		url         string
		stmts, desc int
	}{
		{"postgresql://admin:pw@db.example:5432/postgres", adminStatementCache, 0},
		{"postgresql://admin:pw@db.example:5432/postgres?statement_cache_capacity=200", 200, 0},
		{"postgresql://admin:pw@db.example:5432/postgres?default_query_exec_mode=describe_exec", adminStatementCache, pgxDefaultCacheCapacity},
	} {
		p, err := newFromOptions(Options{AdminURL: tc.url})
		if err != nil {
			t.Fatalf("%s: %v", tc.url, err)
		}
		if got := p.conns.cfg.StatementCacheCapacity; got != tc.stmts {
			t.Errorf("%s: statement cache %d, want %d", tc.url, got, tc.stmts)
		}
		if got := p.conns.cfg.DescriptionCacheCapacity; got != tc.desc {
			t.Errorf("%s: description cache %d, want %d", tc.url, got, tc.desc)
		}
	}
}
