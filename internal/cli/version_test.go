package cli

import (
	"encoding/json"
	"runtime"
	"runtime/debug"
	"testing"

	"github.com/stretchr/testify/require"
)

// stamped is the build info of `go build` in a git checkout with
// uncommitted changes; test binaries carry no VCS stamp, so it is built by
// hand.
func stamped() *debug.BuildInfo {
	return &debug.BuildInfo{
		GoVersion: "go1.26.8",
		Main:      debug.Module{Path: "github.com/rotorhq/rotor", Version: "v0.4.1-0.20261203075513-0af85b1c2d3e+dirty"},
		Settings: []debug.BuildSetting{
			{Key: "-buildmode", Value: "exe"},
			{Key: "GOARCH", Value: "arm64"},
			{Key: "GOOS", Value: "darwin"},
			{Key: "vcs", Value: "git"},
			{Key: "vcs.revision", Value: "0af85b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a"},
			{Key: "vcs.time", Value: "2026-12-03T07:55:13Z"},
			{Key: "vcs.modified", Value: "true"},
		},
	}
}

func TestBuildInfoFrom(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name               string
		bi                 *debug.BuildInfo
		version, buildTime string
		want               BuildInfo
		wantLine           string
	}{
		{
			name: "VCS-stamped build",
			bi:   stamped(), version: "dev",
			want: BuildInfo{Version: "v0.4.1-0.20261203075513-0af85b1c2d3e+dirty", Revision: "0af85b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a",
				RevisionTime: "2026-12-03T07:55:13Z", Modified: true, GoVersion: "go1.26.8", Platform: "darwin/arm64"},
			wantLine: "v0.4.1-0.20261203075513-0af85b1c2d3e+dirty (revision 0af85b1c2d3e, modified, committed 2026-12-03T07:55:13Z) go1.26.8 darwin/arm64",
		},
		{
			name: "release build: -ldflags version and build time win",
			bi:   stamped(), version: "v0.5.0", buildTime: "2026-12-04T10:00:00Z",
			want: BuildInfo{Version: "v0.5.0", Revision: "0af85b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a", RevisionTime: "2026-12-03T07:55:13Z",
				Modified: true, BuildTime: "2026-12-04T10:00:00Z", GoVersion: "go1.26.8", Platform: "darwin/arm64"},
			wantLine: "v0.5.0 (revision 0af85b1c2d3e, modified, committed 2026-12-03T07:55:13Z, built 2026-12-04T10:00:00Z) go1.26.8 darwin/arm64",
		},
		{
			name:     "go run or go test: no module version, no VCS stamp",
			bi:       &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Path: "github.com/rotorhq/rotor", Version: "(devel)"}},
			version:  "dev",
			want:     BuildInfo{Version: "dev", GoVersion: "go1.26.8", Platform: runtime.GOOS + "/" + runtime.GOARCH},
			wantLine: "dev go1.26.8 " + runtime.GOOS + "/" + runtime.GOARCH,
		},
		{
			name:     "no build info at all",
			version:  "dev",
			want:     BuildInfo{Version: "dev", GoVersion: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH},
			wantLine: "dev " + runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := buildInfoFrom(tt.bi, tt.version, tt.buildTime)
			require.Equal(t, tt.want, got)
			require.Equal(t, tt.wantLine, got.String())
		})
	}
}

func TestBuildInfoJSON(t *testing.T) {
	t.Parallel()
	b, err := json.Marshal(buildInfoFrom(stamped(), "dev", "2026-12-04T10:00:00Z"))
	require.NoError(t, err)
	var got map[string]any
	require.NoError(t, json.Unmarshal(b, &got))
	require.Equal(t, map[string]any{
		"version": "v0.4.1-0.20261203075513-0af85b1c2d3e+dirty", "revision": "0af85b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a",
		"revision_time": "2026-12-03T07:55:13Z", "modified": true, "build_time": "2026-12-04T10:00:00Z",
		"go_version": "go1.26.8", "platform": "darwin/arm64",
	}, got)
}

// TestVersionCommand runs `rotor version` as a user would; this test
// binary's own build info has no VCS stamp.
func TestVersionCommand(t *testing.T) {
	t.Parallel()
	want := currentBuildInfo()
	require.Equal(t, runtime.Version(), want.GoVersion)

	code, out, errOut := run(t, nil, "", "version")
	require.Equal(t, ExitOK, code, errOut)
	require.Equal(t, "rotor "+want.String()+"\n", out)
	require.Contains(t, out, " "+runtime.Version()+" "+runtime.GOOS+"/"+runtime.GOARCH+"\n")

	code, out, errOut = run(t, nil, "", "version", "--json")
	require.Equal(t, ExitOK, code, errOut)
	var got BuildInfo
	require.NoError(t, json.Unmarshal([]byte(out), &got))
	require.Equal(t, want, got)

	code, _, errOut = run(t, nil, "", "version", "extra")
	require.Equal(t, ExitUsage, code)
	require.Contains(t, errOut, "unknown command \"extra\"")
}
