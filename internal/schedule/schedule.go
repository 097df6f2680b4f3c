// Package schedule decides when a credential is due for rotation: a fixed
// period (`every`) or a cron expression (`cron`), optionally confined to a
// maintenance window (`window`) and spread by a jitter (`jitter`).
//
// Jitter is deterministic per credential and per previous rotation, so
// `rotor rotate --due` run from cron every few minutes gives the same answer
// each time instead of rolling dice on every invocation.
//
// Cron expressions are read in UTC, like windows without a zone, whatever
// the machine's zone; prefix one with CRON_TZ=Europe/Berlin for another.
package schedule

import (
	"errors"
	"fmt"
	"hash/fnv"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
)

// Schedule is a parsed schedule. The zero value means "never due by
// itself" (manual rotations only).
type Schedule struct {
	Every  time.Duration
	Cron   cron.Schedule
	cron   string
	Window *Window
	Jitter time.Duration
}

var cronParser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// Parse builds a schedule from its config fields.
func Parse(every time.Duration, cronExpr, window string, jitter time.Duration) (*Schedule, error) {
	s := &Schedule{Every: every, Jitter: jitter, cron: strings.TrimSpace(cronExpr)}
	if every < 0 || jitter < 0 {
		return nil, errors.New("every and jitter must not be negative")
	}
	if every > 0 && s.cron != "" {
		return nil, errors.New("set either every or cron, not both")
	}
	if every > 0 && every < time.Minute {
		return nil, fmt.Errorf("every %s is shorter than a minute; rotations need time to publish and drain", every)
	}
	if s.cron != "" {
		if strings.Contains(s.cron, "@every") {
			return nil, fmt.Errorf("cron %q: write every: instead of @every (e.g. every: 30d)", s.cron)
		}
		c, err := cronParser.Parse(s.cron)
		if err != nil {
			return nil, fmt.Errorf("bad cron expression %q: %v; use five fields (minute hour day-of-month month day-of-week) or @daily/@weekly", s.cron, err)
		}
		s.Cron = c
	}
	if strings.TrimSpace(window) != "" {
		w, err := ParseWindow(window)
		if err != nil {
			return nil, err
		}
		s.Window = w
	}
	if (s.Window != nil || jitter > 0) && every == 0 && s.Cron == nil {
		return nil, errors.New("window and jitter need every or cron to say how often")
	}
	return s, nil
}

// Periodic reports whether the schedule ever makes a credential due.
func (s *Schedule) Periodic() bool { return s != nil && (s.Every > 0 || s.Cron != nil) }

// String describes the schedule for humans.
func (s *Schedule) String() string {
	if !s.Periodic() {
		return "manual"
	}
	var parts []string
	if s.Every > 0 {
		parts = append(parts, "every "+formatDur(s.Every))
	} else {
		parts = append(parts, "cron "+s.cron)
	}
	if s.Window != nil {
		parts = append(parts, "in "+s.Window.String())
	}
	if s.Jitter > 0 {
		parts = append(parts, "jitter "+formatDur(s.Jitter))
	}
	return strings.Join(parts, ", ")
}

// Next returns when the credential named name, last rotated at last (zero
// if never), becomes due. A credential never rotated is due at once (within
// its window). A manual schedule returns the zero time.
func (s *Schedule) Next(name string, last time.Time) time.Time {
	if !s.Periodic() {
		return time.Time{}
	}
	var base time.Time
	switch {
	case last.IsZero():
		base = time.Unix(0, 0).UTC()
	case s.Every > 0:
		base = last.Add(s.Every)
	default:
		base = s.Cron.Next(last.UTC())
	}
	if s.Jitter > 0 && !last.IsZero() {
		base = base.Add(jitterFor(name, last, s.Jitter))
	}
	if s.Window != nil {
		base = s.Window.NextOpen(base)
	}
	return base
}

// NextFrom is Next seen from now: a credential already overdue (or never
// rotated) is due now, or at the next opening of its window.
func (s *Schedule) NextFrom(name string, last, now time.Time) time.Time {
	next := s.Next(name, last)
	if next.IsZero() {
		return next
	}
	if next.Before(now) {
		next = now
	}
	if s.Window != nil {
		next = s.Window.NextOpen(next)
	}
	return next
}

// Due reports whether the credential should rotate at now.
func (s *Schedule) Due(name string, last, now time.Time) bool {
	if !s.Periodic() {
		return false
	}
	if now.Before(s.Next(name, last)) {
		return false
	}
	return s.Window == nil || s.Window.Contains(now)
}

func jitterFor(name string, last time.Time, max time.Duration) time.Duration {
	h := fnv.New64a()
	fmt.Fprintf(h, "%s\x00%d", name, last.UnixNano())
	return time.Duration(h.Sum64() % uint64(max))
}

func formatDur(d time.Duration) string {
	if d%(24*time.Hour) == 0 {
		return fmt.Sprintf("%dd", d/(24*time.Hour))
	}
	return d.String()
}
