package config

import (
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Duration is a time.Duration that also accepts days ("30d"), because
// rotation periods are usually counted in days and "720h" reads badly.
type Duration time.Duration

// D returns the value as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

func (d Duration) String() string { return FormatDuration(time.Duration(d)) }

// UnmarshalYAML implements yaml.Unmarshaler.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := ParseDuration(n.Value)
	if err != nil {
		// A TypeError lets yaml.v3 go on decoding the rest of the
		// document, so that the loader can report every problem at once.
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: %v", n.Line, err)}}
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML implements yaml.Marshaler.
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

// ParseDuration accepts Go durations (90s, 15m, 1h30m) and whole or
// fractional days (30d, 1.5d), optionally followed by Go units (1d12h).
func ParseDuration(s string) (time.Duration, error) {
	in := strings.TrimSpace(s)
	if in == "" {
		return 0, fmt.Errorf("empty duration; write e.g. 90s, 15m, 12h or 30d")
	}
	bad := fmt.Errorf("bad duration %q; write e.g. 90s, 15m, 12h or 30d", in)
	var days time.Duration
	rest := in
	if m := daysRE.FindStringSubmatch(in); m != nil {
		n, err := strconv.ParseFloat(m[1], 64)
		if err != nil || n*float64(24*time.Hour) >= math.MaxInt64 {
			return 0, bad
		}
		days = time.Duration(n * float64(24*time.Hour))
		if rest = m[2]; rest == "" {
			return days, nil
		}
	}
	v, err := time.ParseDuration(rest)
	if err != nil || v < 0 || days+v < days {
		return 0, bad
	}
	return days + v, nil
}

// daysRE splits "1.5d12h" into its days and the Go duration after them.
// Only plain decimals count as days: ParseFloat alone would also take
// "Inf", "NaN", "1e9" and "0x1p4".
var daysRE = regexp.MustCompile(`^([0-9]+(?:\.[0-9]+)?)d(.*)$`)

// FormatDuration prints whole days as "Nd" and everything else as Go does.
func FormatDuration(d time.Duration) string {
	if d > 0 && d%(24*time.Hour) == 0 {
		return fmt.Sprintf("%dd", d/(24*time.Hour))
	}
	return d.String()
}

// ParseSince reads a history filter's "since": a duration back from now
// (90m, 24h, 7d) or an RFC 3339 time or date (UTC). The error quotes s;
// callers prefix the flag or parameter it came from.
func ParseSince(s string, now time.Time) (time.Time, error) {
	if d, err := ParseDuration(s); err == nil {
		return now.Add(-d), nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04", "2006-01-02"} {
		if t, err := time.ParseInLocation(layout, s, time.UTC); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("%q: write a duration back from now (90m, 24h, 7d) or a time (2025-01-06 or 2025-01-06T15:04:05Z)", s)
}
