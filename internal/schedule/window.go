package schedule

import (
	"fmt"
	"strings"
	"time"
)

// Window is a recurring maintenance window: "Sat,Sun 02:00-05:00
// Europe/Berlin", "Mon-Fri 22:00-02:00 UTC", or just "02:00-05:00" (every
// day, UTC). A window that crosses midnight belongs to the day it starts;
// "24:00" ends a window at midnight. Times are wall-clock times in the
// window's zone, so on the days clocks change a window still closes at its
// written end (and may open late or be shorter, never longer).
type Window struct {
	days       [7]bool // indexed by time.Weekday
	start, end int     // minutes after midnight; end may be 24*60
	loc        *time.Location
	text       string
}

var weekdays = map[string]time.Weekday{
	"sun": time.Sunday, "mon": time.Monday, "tue": time.Tuesday, "wed": time.Wednesday,
	"thu": time.Thursday, "fri": time.Friday, "sat": time.Saturday,
}

// ParseWindow parses the window syntax described on Window.
func ParseWindow(s string) (*Window, error) {
	w := &Window{loc: time.UTC, text: strings.TrimSpace(s)}
	fields := strings.Fields(s)
	hint := `; write e.g. "Sat,Sun 02:00-05:00 UTC" or "02:00-05:00"`
	if len(fields) == 0 || len(fields) > 3 {
		return nil, fmt.Errorf("bad window %q%s", s, hint)
	}
	i := 0
	if !strings.Contains(fields[0], ":") {
		if err := w.parseDays(fields[0]); err != nil {
			return nil, fmt.Errorf("bad window %q: %v%s", s, err, hint)
		}
		i++
	} else {
		for d := range w.days {
			w.days[d] = true
		}
	}
	if i >= len(fields) {
		return nil, fmt.Errorf("bad window %q: no time range%s", s, hint)
	}
	from, to, ok := strings.Cut(fields[i], "-")
	if !ok {
		return nil, fmt.Errorf("bad window %q: time range needs HH:MM-HH:MM%s", s, hint)
	}
	var err error
	if w.start, err = parseClock(from); err != nil {
		return nil, fmt.Errorf("bad window %q: %v%s", s, err, hint)
	}
	if to == "24:00" {
		w.end = 24 * 60
	} else if w.end, err = parseClock(to); err != nil {
		return nil, fmt.Errorf("bad window %q: %v%s", s, err, hint)
	}
	if w.start == w.end {
		return nil, fmt.Errorf("bad window %q: start and end are equal; for a whole day write 00:00-24:00%s", s, hint)
	}
	i++
	if i < len(fields) {
		loc, err := time.LoadLocation(fields[i])
		if err != nil {
			return nil, fmt.Errorf("bad window %q: unknown time zone %q; use an IANA name such as Europe/Berlin or UTC", s, fields[i])
		}
		w.loc = loc
		i++
	}
	if i != len(fields) {
		return nil, fmt.Errorf("bad window %q%s", s, hint)
	}
	return w, nil
}

func (w *Window) parseDays(s string) error {
	for _, part := range strings.Split(strings.ToLower(s), ",") {
		a, b, isRange := strings.Cut(part, "-")
		da, ok := weekdays[a]
		if !ok {
			return fmt.Errorf("unknown day %q (use mon, tue, wed, thu, fri, sat, sun)", a)
		}
		if !isRange {
			w.days[da] = true
			continue
		}
		db, ok := weekdays[b]
		if !ok {
			return fmt.Errorf("unknown day %q (use mon, tue, wed, thu, fri, sat, sun)", b)
		}
		for d := da; ; d = (d + 1) % 7 {
			w.days[d] = true
			if d == db {
				break
			}
		}
	}
	return nil
}

func parseClock(s string) (int, error) {
	t, err := time.Parse("15:04", s)
	if err != nil {
		return 0, fmt.Errorf("bad time %q (want HH:MM, 24-hour)", s)
	}
	return t.Hour()*60 + t.Minute(), nil
}

func (w *Window) String() string { return w.text }

func sameClock(a, b time.Time) bool {
	return a.Day() == b.Day() && a.Hour() == b.Hour() && a.Minute() == b.Minute()
}

// openingOn returns the start of the window opening on the calendar day of
// t (in the window's zone).
func (w *Window) openingOn(t time.Time) time.Time {
	y, m, d := t.Date()
	return time.Date(y, m, d, w.start/60, w.start%60, 0, 0, w.loc)
}

// Contains reports whether t lies inside an opening of the window. It
// compares wall-clock times: measuring an opening as start plus a length
// would end it an hour late or early on the days clocks change.
func (w *Window) Contains(t time.Time) bool {
	lt := t.In(w.loc)
	m := lt.Hour()*60 + lt.Minute()
	today := lt.Weekday()
	if w.start < w.end {
		return w.days[today] && m >= w.start && m < w.end
	}
	// Crosses midnight: the evening belongs to today's opening, the early
	// morning to yesterday's.
	return (w.days[today] && m >= w.start) || (w.days[(today+6)%7] && m < w.end)
}

// NextOpen returns t if it is inside the window, else the start of the next
// opening after t.
func (w *Window) NextOpen(t time.Time) time.Time {
	if w.Contains(t) {
		return t
	}
	lt := t.In(w.loc)
	for ahead := 0; ahead <= 8; ahead++ {
		open := w.openingOn(lt.AddDate(0, 0, ahead))
		// When the clocks skip the start time, time.Date moves it; the
		// moved instant opens the window only if it is still inside it.
		if !w.days[open.Weekday()] || !w.Contains(open) {
			continue
		}
		// When the clocks fall back, the start time happens twice and
		// time.Date may pick the second; the window opens at the first.
		for _, shift := range []time.Duration{2 * time.Hour, time.Hour, 30 * time.Minute} {
			if e := open.Add(-shift); sameClock(e.In(w.loc), open) {
				open = e
				break
			}
		}
		if open.After(t) {
			return open.UTC()
		}
	}
	return t // unreachable with at least one day set
}
