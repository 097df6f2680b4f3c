package cli

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/spf13/cobra"
)

// BuildInfo is what `rotor version` and `rotor --version` report. JSON
// field names are snake_case, as in every other --json output.
type BuildInfo struct {
	// Version is the -ldflags Version when set, else the module version
	// the go command stamped (a tag, or a pseudo-version), else "dev".
	Version string `json:"version"`
	// Revision, RevisionTime and Modified are the VCS stamp of the build
	// (vcs.revision, vcs.time, vcs.modified); empty in builds without
	// one (go test, -buildvcs=false, a source tree without .git).
	Revision     string `json:"revision,omitempty"`
	RevisionTime string `json:"revision_time,omitempty"`
	Modified     bool   `json:"modified"`
	// BuildTime is the -ldflags BuildTime when set: Go's build info
	// records no build time, so that builds are reproducible.
	BuildTime string `json:"build_time,omitempty"`
	GoVersion string `json:"go_version"`
	Platform  string `json:"platform"`
}

// BuildTime is set at build time (-ldflags "-X …cli.BuildTime=2026-01-02T15:04:05Z").
var BuildTime = ""

// currentBuildInfo reads this binary's build info.
func currentBuildInfo() BuildInfo {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return buildInfoFrom(nil, Version, BuildTime)
	}
	return buildInfoFrom(bi, Version, BuildTime)
}

// buildInfoFrom is currentBuildInfo for a given debug.BuildInfo (nil when
// the binary has none) and -ldflags values, so tests can build one.
func buildInfoFrom(bi *debug.BuildInfo, version, buildTime string) BuildInfo {
	out := BuildInfo{Version: version, BuildTime: buildTime, GoVersion: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	if bi == nil {
		if out.Version == "" {
			out.Version = "dev"
		}
		return out
	}
	if bi.GoVersion != "" {
		out.GoVersion = bi.GoVersion
	}
	if out.Version == "" || out.Version == "dev" {
		out.Version = "dev"
		if v := bi.Main.Version; v != "" && v != "(devel)" {
			out.Version = v
		}
	}
	goos, goarch := "", ""
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			out.Revision = s.Value
		case "vcs.time":
			out.RevisionTime = s.Value
		case "vcs.modified":
			out.Modified = s.Value == "true"
		case "GOOS":
			goos = s.Value
		case "GOARCH":
			goarch = s.Value
		}
	}
	if goos != "" && goarch != "" {
		out.Platform = goos + "/" + goarch
	}
	return out
}

// String is the one line `rotor --version` prints, after "rotor ":
// v1.2.3 (revision 0af85b1c2d3e, modified, committed 2026-12-03T07:55:13Z, built 2026-12-03T08:00:00Z) go1.26.8 linux/amd64
func (b BuildInfo) String() string {
	var detail []string
	if b.Revision != "" {
		rev := b.Revision
		if len(rev) > 12 {
			rev = rev[:12]
		}
		detail = append(detail, "revision "+rev)
	}
	if b.Modified {
		detail = append(detail, "modified")
	}
	if b.RevisionTime != "" {
		detail = append(detail, "committed "+b.RevisionTime)
	}
	if b.BuildTime != "" {
		detail = append(detail, "built "+b.BuildTime)
	}
	s := b.Version
	if len(detail) > 0 {
		s += " (" + strings.Join(detail, ", ") + ")"
	}
	return s + " " + b.GoVersion + " " + b.Platform
}

// NewCmdVersion builds `rotor version`.
func NewCmdVersion(f *Factory) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print rotor's version, VCS revision, Go version and platform (--json for all fields)",
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			b := currentBuildInfo()
			if f.JSON {
				return printJSON(f, b)
			}
			_, err := fmt.Fprintln(f.IO.Out, "rotor "+b.String())
			return err
		},
	}
}
