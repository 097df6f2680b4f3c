package schedule_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/rotorhq/rotor/internal/schedule"
)

const day = 24 * time.Hour

func mustParse(t *testing.T, every time.Duration, cron, window string, jitter time.Duration) *schedule.Schedule {
	t.Helper()
	s, err := schedule.Parse(every, cron, window, jitter)
	require.NoError(t, err)
	return s
}

func mustZone(t *testing.T, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	require.NoError(t, err)
	return loc
}

func utc(y int, m time.Month, d, h, min int) time.Time {
	return time.Date(y, m, d, h, min, 0, 0, time.UTC)
}

func TestParseErrors(t *testing.T) {
	t.Parallel()
	const windowHint = `; write e.g. "Sat,Sun 02:00-05:00 UTC" or "02:00-05:00"`
	tests := []struct {
		name    string
		every   time.Duration
		cron    string
		window  string
		jitter  time.Duration
		wantErr string
	}{
		{name: "negative every", every: -time.Hour, wantErr: "every and jitter must not be negative"},
		{name: "negative jitter", every: day, jitter: -time.Minute, wantErr: "every and jitter must not be negative"},
		{name: "every and cron", every: day, cron: "0 3 * * 1", wantErr: "set either every or cron, not both"},
		{name: "every too short", every: 30 * time.Second, wantErr: "every 30s is shorter than a minute; rotations need time to publish and drain"},
		{name: "cron with four fields", cron: "0 3 * *", wantErr: `bad cron expression "0 3 * *": `},
		{name: "cron hint", cron: "0 3 * *", wantErr: "; use five fields (minute hour day-of-month month day-of-week) or @daily/@weekly"},
		{name: "cron with seconds", cron: "0 0 3 * * 1", wantErr: `bad cron expression "0 0 3 * * 1"`},
		{name: "cron out of range", cron: "0 25 * * *", wantErr: `bad cron expression "0 25 * * *"`},
		{name: "cron garbage", cron: "weekly", wantErr: `bad cron expression "weekly"`},
		{name: "cron @every", cron: "@every 5s", wantErr: `cron "@every 5s": write every: instead of @every (e.g. every: 30d)`},
		{name: "window without period", window: "02:00-05:00", wantErr: "window and jitter need every or cron to say how often"},
		{name: "jitter without period", jitter: time.Hour, wantErr: "window and jitter need every or cron to say how often"},
		{name: "window without a time range", every: day, window: "Mon-Fri", wantErr: `bad window "Mon-Fri": no time range` + windowHint},
		{name: "window without an end", every: day, window: "Mon-Fri 02:00", wantErr: `bad window "Mon-Fri 02:00": time range needs HH:MM-HH:MM` + windowHint},
		{name: "unknown day", every: day, window: "Funday 02:00-03:00", wantErr: `bad window "Funday 02:00-03:00": unknown day "funday" (use mon, tue, wed, thu, fri, sat, sun)` + windowHint},
		{name: "unknown day in a range", every: day, window: "Mon-Xyz 02:00-03:00", wantErr: `unknown day "xyz"`},
		{name: "empty day in a list", every: day, window: "Sat, 02:00-03:00", wantErr: `bad window "Sat, 02:00-03:00"`},
		{name: "full day name", every: day, window: "Monday 02:00-03:00", wantErr: `unknown day "monday"`},
		{name: "bad hour", every: day, window: "02:00-25:00", wantErr: `bad window "02:00-25:00": bad time "25:00" (want HH:MM, 24-hour)` + windowHint},
		{name: "bad minute", every: day, window: "02:61-03:00", wantErr: `bad time "02:61"`},
		{name: "24:00 only ends a window", every: day, window: "24:00-02:00", wantErr: `bad time "24:00"`},
		{name: "start equals end", every: day, window: "02:00-02:00", wantErr: `bad window "02:00-02:00": start and end are equal; for a whole day write 00:00-24:00`},
		{name: "unknown zone", every: day, window: "02:00-03:00 Mars/Olympus", wantErr: `bad window "02:00-03:00 Mars/Olympus": unknown time zone "Mars/Olympus"; use an IANA name such as Europe/Berlin or UTC`},
		{name: "too many fields", every: day, window: "Mon 02:00-03:00 UTC extra", wantErr: `bad window "Mon 02:00-03:00 UTC extra"` + windowHint},
		{name: "zone before time", every: day, window: "Mon UTC 02:00-03:00", wantErr: `bad window "Mon UTC 02:00-03:00": time range needs HH:MM-HH:MM`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, err := schedule.Parse(tt.every, tt.cron, tt.window, tt.jitter)
			require.ErrorContains(t, err, tt.wantErr)
			require.Nil(t, s)
		})
	}
}

func TestString(t *testing.T) {
	t.Parallel()
	tests := []struct {
		every  time.Duration
		cron   string
		window string
		jitter time.Duration
		want   string
	}{
		{want: "manual"},
		{every: 30 * day, want: "every 30d"},
		{every: 90 * time.Minute, want: "every 1h30m0s"},
		{cron: " 0 3 * * 1 ", want: "cron 0 3 * * 1"},
		{cron: "@weekly", want: "cron @weekly"},
		{every: 30 * day, window: " Mon-Fri 02:00-05:00 UTC ", jitter: day, want: "every 30d, in Mon-Fri 02:00-05:00 UTC, jitter 1d"},
		{cron: "0 3 * * *", jitter: 15 * time.Minute, want: "cron 0 3 * * *, jitter 15m0s"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			t.Parallel()
			s := mustParse(t, tt.every, tt.cron, tt.window, tt.jitter)
			require.Equal(t, tt.want, s.String())
			require.Equal(t, tt.want != "manual", s.Periodic())
		})
	}
	var none *schedule.Schedule
	require.Equal(t, "manual", none.String())
	require.False(t, none.Periodic())
}

func TestNextAndDue(t *testing.T) {
	t.Parallel()
	berlin := mustZone(t, "Europe/Berlin")
	epoch := time.Unix(0, 0).UTC()
	tests := []struct {
		name     string
		every    time.Duration
		cron     string
		window   string
		last     time.Time
		wantNext time.Time
		// due and notDue are instants at which Due must say yes and no.
		due, notDue []time.Time
	}{
		{
			name:     "manual is never due",
			last:     utc(2020, 1, 1, 0, 0),
			wantNext: time.Time{},
			notDue:   []time.Time{utc(2030, 1, 1, 0, 0)},
		},
		{
			name:     "manual never rotated is not due either",
			wantNext: time.Time{},
			notDue:   []time.Time{utc(2030, 1, 1, 0, 0)},
		},
		{
			name:     "never rotated is due now",
			every:    30 * day,
			wantNext: epoch,
			due:      []time.Time{utc(2025, 1, 1, 0, 0)},
		},
		{
			name:     "never rotated with cron is due now",
			cron:     "0 3 * * 1",
			wantNext: epoch,
			due:      []time.Time{utc(2025, 1, 1, 12, 0)},
		},
		{
			name:     "every 30d",
			every:    30 * day,
			last:     utc(2025, 1, 1, 10, 0),
			wantNext: utc(2025, 1, 31, 10, 0),
			due:      []time.Time{utc(2025, 1, 31, 10, 0), utc(2025, 6, 1, 0, 0)},
			notDue:   []time.Time{utc(2025, 1, 31, 9, 59), utc(2025, 1, 2, 0, 0)},
		},
		{
			name:     "every 30d counts absolute time across DST",
			every:    30 * day,
			last:     time.Date(2025, 3, 15, 12, 0, 0, 0, berlin),
			wantNext: time.Date(2025, 4, 14, 13, 0, 0, 0, berlin),
		},
		{
			name:     "cron Mondays 03:00 from a Wednesday",
			cron:     "0 3 * * 1",
			last:     utc(2025, 1, 1, 10, 0), // Wednesday
			wantNext: utc(2025, 1, 6, 3, 0),
			due:      []time.Time{utc(2025, 1, 6, 3, 0), utc(2025, 1, 8, 0, 0)},
			notDue:   []time.Time{utc(2025, 1, 6, 2, 59), utc(2025, 1, 5, 3, 0)},
		},
		{
			name:     "cron at the very minute it fired waits a week",
			cron:     "0 3 * * 1",
			last:     utc(2025, 1, 6, 3, 0),
			wantNext: utc(2025, 1, 13, 3, 0),
		},
		{
			name:     "cron is read in UTC whatever zone last is in",
			cron:     "0 3 * * 1",
			last:     time.Date(2025, 1, 1, 11, 0, 0, 0, berlin),
			wantNext: utc(2025, 1, 6, 3, 0),
		},
		{
			name:     "cron with CRON_TZ",
			cron:     "CRON_TZ=Europe/Berlin 0 3 * * 1",
			last:     utc(2025, 1, 1, 10, 0),
			wantNext: utc(2025, 1, 6, 2, 0),
		},
		{
			name:     "every with a window waits for the next opening",
			every:    day,
			window:   "02:00-05:00",
			last:     utc(2025, 1, 6, 10, 0),
			wantNext: utc(2025, 1, 8, 2, 0),
			due:      []time.Time{utc(2025, 1, 8, 2, 0), utc(2025, 1, 8, 4, 59), utc(2025, 1, 9, 3, 0)},
			// Overdue from Jan 7 10:00, but outside the window.
			notDue: []time.Time{utc(2025, 1, 7, 10, 0), utc(2025, 1, 8, 5, 0), utc(2025, 1, 8, 23, 0), utc(2026, 1, 1, 12, 0)},
		},
		{
			name:     "due time inside the window stays",
			every:    day,
			window:   "02:00-05:00",
			last:     utc(2025, 1, 6, 3, 0),
			wantNext: utc(2025, 1, 7, 3, 0),
		},
		{
			name:     "never rotated with a window is due inside it only",
			every:    30 * day,
			window:   "Sat,Sun 02:00-05:00 UTC",
			wantNext: utc(1970, 1, 3, 2, 0), // the first Saturday after the epoch
			due:      []time.Time{utc(2025, 1, 4, 3, 0)},
			notDue:   []time.Time{utc(2025, 1, 6, 3, 0), utc(2025, 1, 4, 6, 0)},
		},
		{
			name:     "cron with a window",
			cron:     "0 12 * * *",
			window:   "Mon-Fri 22:00-02:00 Europe/Berlin",
			last:     utc(2025, 1, 10, 13, 0), // Friday
			wantNext: utc(2025, 1, 13, 21, 0), // Monday 22:00 CET
			due:      []time.Time{utc(2025, 1, 14, 0, 30)},
			notDue:   []time.Time{utc(2025, 1, 11, 21, 30), utc(2025, 1, 13, 20, 59)},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := mustParse(t, tt.every, tt.cron, tt.window, 0)
			require.True(t, tt.wantNext.Equal(s.Next("app", tt.last)), "next: want %s, got %s", tt.wantNext, s.Next("app", tt.last))
			for _, now := range tt.due {
				require.True(t, s.Due("app", tt.last, now), "due at %s", now)
			}
			for _, now := range tt.notDue {
				require.False(t, s.Due("app", tt.last, now), "not due at %s", now)
			}
		})
	}
}

func TestJitter(t *testing.T) {
	t.Parallel()
	const every, jitter = 30 * day, 6 * time.Hour
	s := mustParse(t, every, "", "", jitter)
	last := utc(2025, 1, 1, 10, 0)
	base := last.Add(every)

	offsets := map[time.Duration]bool{}
	for i := range 50 {
		name := fmt.Sprintf("cred-%d", i)
		for _, l := range []time.Time{last, last.Add(time.Nanosecond), last.Add(17 * day)} {
			next := s.Next(name, l)
			require.Equal(t, next, s.Next(name, l), "same inputs, same answer")
			off := next.Sub(l.Add(every))
			require.GreaterOrEqual(t, off, time.Duration(0))
			require.Less(t, off, jitter)
			offsets[off] = true
		}
	}
	require.Greater(t, len(offsets), 100, "jitter spreads credentials and rotations")

	// Due follows the jittered time exactly.
	next := s.Next("app", last)
	require.False(t, s.Due("app", last, next.Add(-time.Nanosecond)))
	require.True(t, s.Due("app", last, next))
	require.True(t, !next.Before(base) && next.Before(base.Add(jitter)))

	// A credential never rotated is due at once: no jitter.
	require.Equal(t, time.Unix(0, 0).UTC(), s.Next("app", time.Time{}))

	// With a window, the jittered time is moved into the window.
	w := mustParse(t, every, "", "03:00-04:00", jitter)
	for i := range 20 {
		n := w.Next(fmt.Sprintf("cred-%d", i), last)
		require.True(t, w.Window.Contains(n), "%s", n)
		require.False(t, n.Before(base))
	}
}

func TestWindowContains(t *testing.T) {
	t.Parallel()
	berlin := mustZone(t, "Europe/Berlin")
	newYork := mustZone(t, "America/New_York")
	// 2025-01-06 is a Monday.
	tests := []struct {
		window  string
		in, out []time.Time
	}{
		{
			window: "Sat,Sun 02:00-05:00 UTC",
			in:     []time.Time{utc(2025, 1, 4, 2, 0), utc(2025, 1, 4, 4, 59), utc(2025, 1, 5, 3, 0)},
			out:    []time.Time{utc(2025, 1, 4, 1, 59), utc(2025, 1, 4, 5, 0), utc(2025, 1, 3, 3, 0), utc(2025, 1, 6, 3, 0)},
		},
		{
			window: "sat,SUN 02:00-05:00",
			in:     []time.Time{utc(2025, 1, 4, 2, 0)},
			out:    []time.Time{utc(2025, 1, 6, 2, 0)},
		},
		{
			// A range that wraps around the week.
			window: "Fri-Mon 10:00-11:00",
			in:     []time.Time{utc(2025, 1, 10, 10, 0), utc(2025, 1, 11, 10, 30), utc(2025, 1, 12, 10, 30), utc(2025, 1, 13, 10, 59)},
			out:    []time.Time{utc(2025, 1, 7, 10, 30), utc(2025, 1, 8, 10, 30), utc(2025, 1, 9, 10, 30), utc(2025, 1, 13, 11, 0)},
		},
		{
			window: "Mon-Wed,Sat 10:00-11:00",
			in:     []time.Time{utc(2025, 1, 6, 10, 0), utc(2025, 1, 7, 10, 0), utc(2025, 1, 8, 10, 0), utc(2025, 1, 11, 10, 0)},
			out:    []time.Time{utc(2025, 1, 9, 10, 0), utc(2025, 1, 10, 10, 0), utc(2025, 1, 12, 10, 0)},
		},
		{
			window: "22:00-02:00",
			in:     []time.Time{utc(2025, 1, 6, 22, 0), utc(2025, 1, 6, 23, 59), utc(2025, 1, 7, 0, 0), utc(2025, 1, 7, 1, 59)},
			out:    []time.Time{utc(2025, 1, 6, 21, 59), utc(2025, 1, 7, 2, 0), utc(2025, 1, 7, 12, 0)},
		},
		{
			// An overnight window belongs to the day it starts.
			window: "Mon 22:00-02:00",
			in:     []time.Time{utc(2025, 1, 6, 23, 0), utc(2025, 1, 7, 1, 0)},
			out:    []time.Time{utc(2025, 1, 6, 1, 0), utc(2025, 1, 7, 23, 0), utc(2025, 1, 5, 23, 0)},
		},
		{
			window: "Fri 22:00-24:00",
			in:     []time.Time{utc(2025, 1, 10, 22, 0), utc(2025, 1, 10, 23, 59)},
			out:    []time.Time{utc(2025, 1, 11, 0, 0), utc(2025, 1, 10, 21, 59)},
		},
		{
			window: "00:00-24:00",
			in:     []time.Time{utc(2025, 1, 6, 0, 0), utc(2025, 1, 6, 12, 0), utc(2025, 1, 6, 23, 59)},
		},
		{
			window: "02:00-05:00 Europe/Berlin",
			in: []time.Time{
				utc(2025, 1, 15, 1, 0), utc(2025, 1, 15, 3, 59), // winter, CET = UTC+1
				utc(2025, 7, 15, 0, 0), utc(2025, 7, 15, 2, 59), // summer, CEST = UTC+2
			},
			out: []time.Time{utc(2025, 1, 15, 0, 59), utc(2025, 1, 15, 4, 0), utc(2025, 7, 15, 3, 0), utc(2025, 7, 14, 23, 59)},
		},
		{
			// 2025-03-30: Berlin's clocks jump from 02:00 CET to 03:00 CEST
			// (01:00 UTC). The window still closes at 05:00 on the clock.
			window: "02:00-05:00 Europe/Berlin",
			in:     []time.Time{utc(2025, 3, 30, 1, 0), time.Date(2025, 3, 30, 4, 59, 0, 0, berlin)},
			out:    []time.Time{utc(2025, 3, 30, 0, 59), time.Date(2025, 3, 30, 5, 0, 0, 0, berlin), utc(2025, 3, 30, 3, 30)},
		},
		{
			// 2025-10-26: Berlin's clocks fall back from 03:00 CEST to 02:00
			// CET (01:00 UTC); 02:00-03:00 happens twice, both inside.
			window: "02:00-05:00 Europe/Berlin",
			in:     []time.Time{utc(2025, 10, 26, 0, 0), utc(2025, 10, 26, 0, 30), utc(2025, 10, 26, 1, 30), utc(2025, 10, 26, 3, 59)},
			out:    []time.Time{utc(2025, 10, 25, 23, 59), utc(2025, 10, 26, 4, 0)},
		},
		{
			// 2025-03-09: New York skips 02:00-03:00.
			window: "01:00-03:00 America/New_York",
			in:     []time.Time{time.Date(2025, 3, 9, 1, 30, 0, 0, newYork)},
			out:    []time.Time{utc(2025, 3, 9, 7, 0), time.Date(2025, 3, 9, 3, 0, 0, 0, newYork)},
		},
	}
	for _, tt := range tests {
		t.Run(tt.window, func(t *testing.T) {
			t.Parallel()
			w, err := schedule.ParseWindow(tt.window)
			require.NoError(t, err)
			require.Equal(t, tt.window, w.String())
			for _, ts := range tt.in {
				require.True(t, w.Contains(ts), "%s is inside", ts)
				require.Equal(t, ts, w.NextOpen(ts), "inside: NextOpen is the time itself")
			}
			for _, ts := range tt.out {
				require.False(t, w.Contains(ts), "%s is outside", ts)
				next := w.NextOpen(ts)
				require.True(t, next.After(ts), "NextOpen(%s) = %s", ts, next)
				require.True(t, w.Contains(next), "NextOpen(%s) = %s opens the window", ts, next)
				require.False(t, w.Contains(next.Add(-time.Minute)), "NextOpen(%s) = %s is the first minute", ts, next)
			}
		})
	}
}

func TestWindowNextOpen(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, window string
		from, want   time.Time
	}{
		{name: "later today", window: "02:00-05:00", from: utc(2025, 1, 6, 1, 0), want: utc(2025, 1, 6, 2, 0)},
		{name: "tomorrow", window: "02:00-05:00", from: utc(2025, 1, 6, 5, 0), want: utc(2025, 1, 7, 2, 0)},
		{name: "next allowed day", window: "Sat,Sun 02:00-05:00", from: utc(2025, 1, 8, 12, 0), want: utc(2025, 1, 11, 2, 0)},
		{name: "a week ahead", window: "Mon 02:00-05:00", from: utc(2025, 1, 6, 5, 0), want: utc(2025, 1, 13, 2, 0)},
		{name: "overnight", window: "Fri 22:00-02:00", from: utc(2025, 1, 11, 2, 0), want: utc(2025, 1, 17, 22, 0)},
		{name: "zone", window: "02:00-05:00 Europe/Berlin", from: utc(2025, 1, 6, 12, 0), want: utc(2025, 1, 7, 1, 0)},
		{name: "clocks skip the start", window: "02:00-05:00 Europe/Berlin", from: utc(2025, 3, 29, 23, 0), want: utc(2025, 3, 30, 1, 0)},
		{name: "clocks skip the whole window", window: "02:00-02:30 Europe/Berlin", from: utc(2025, 3, 29, 12, 0), want: utc(2025, 3, 31, 0, 0)},
		{name: "clocks fall back", window: "02:00-05:00 Europe/Berlin", from: utc(2025, 10, 25, 12, 0), want: utc(2025, 10, 26, 0, 0)},
		{name: "from another zone", window: "02:00-05:00", from: time.Date(2025, 1, 6, 8, 0, 0, 0, time.FixedZone("X", 7*3600)), want: utc(2025, 1, 6, 2, 0)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			w, err := schedule.ParseWindow(tt.window)
			require.NoError(t, err)
			got := w.NextOpen(tt.from)
			require.True(t, tt.want.Equal(got), "want %s, got %s", tt.want, got)
		})
	}
}

func TestNextFromNeverRotatedHonoursWindow(t *testing.T) {
	t.Parallel()
	s, err := schedule.Parse(24*time.Hour, "", "02:00-04:00 UTC", 0)
	require.NoError(t, err)
	now := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	require.Equal(t, time.Date(2026, 11, 27, 2, 0, 0, 0, time.UTC), s.NextFrom("app", time.Time{}, now))
	inside := time.Date(2026, 11, 26, 3, 0, 0, 0, time.UTC)
	require.Equal(t, inside, s.NextFrom("app", time.Time{}, inside))
	last := time.Date(2026, 11, 20, 2, 30, 0, 0, time.UTC)
	require.Equal(t, time.Date(2026, 11, 21, 2, 30, 0, 0, time.UTC), s.NextFrom("app", last, time.Date(2026, 11, 21, 0, 0, 0, 0, time.UTC)))
}
