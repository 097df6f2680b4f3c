package bench

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/rotorhq/rotor/internal/cli"
)

// BenchmarkPlanInProcess is BenchmarkPlan1000's `rotor plan --offline
// --json` run through cli.Run in this process, so that
// `-cpuprofile`/`-memprofile` see where the time goes (the binary's
// figure adds start-up and the process's exit). No database is contacted:
// the config names a host that is never dialled.
func BenchmarkPlanInProcess(b *testing.B) {
	dir := b.TempDir()
	var cfg strings.Builder
	cfg.WriteString("version: 1\ndefaults:\n  provider:\n    type: postgres\n    admin_url: ${ADMIN_URL}\n  connection: {url: \"postgresql://db.invalid:5432/app?sslmode=require\"}\n  strategy: single\ncredentials:\n")
	for i := range 1000 {
		fmt.Fprintf(&cfg, "  c%04d:\n    role: r_%04d\n    targets:\n      - {name: env, type: dotenv, path: env/%04d.env, values: {DATABASE_URL: \"{{.URL}}\"}}\n", i, i, i)
	}
	path := filepath.Join(dir, "rotor.yaml")
	require.NoError(b, os.WriteFile(path, []byte(cfg.String()), 0o600))
	env := map[string]string{"ADMIN_URL": "postgresql://admin:admin-password@db.invalid:5432/app", "ROTOR_CONFIG": path}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		out := runInProcess(b, env, "plan", "--offline", "--json")
		require.Positive(b, len(out))
	}
}

// runInProcess runs rotor's command line in this process with env as its
// whole environment, requires it to succeed, and returns its stdout.
func runInProcess(b *testing.B, env map[string]string, args ...string) []byte {
	b.Helper()
	ios, _, out, errOut := cli.TestStreams()
	f := &cli.Factory{
		IO:         ios,
		LookupEnv:  func(k string) (string, bool) { v, ok := env[k]; return v, ok },
		Now:        time.Now,
		HTTPClient: &http.Client{},
	}
	code := cli.Run(context.Background(), f, args)
	require.Equal(b, cli.ExitOK, code, errOut.String())
	return out.Bytes()
}
