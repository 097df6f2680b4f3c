package console

import (
	"cmp"
	"net/http"
	"slices"
	"strings"

	"github.com/rotorhq/rotor/internal/engine"
	"github.com/rotorhq/rotor/internal/provider"
	"github.com/rotorhq/rotor/internal/store"
)

// row is one credential on the overview.
type row struct {
	*engine.CredentialStatus
	Health string // healthy, overdue, failing, never
	Policy string // the schedule, as configured
	// Sessions are those still on an old role (pending retirements only).
	Sessions []provider.Session
}

// health is how a credential counts in the summary line: failing beats
// overdue beats healthy, so the worst news shows.
func health(st *engine.CredentialStatus) string {
	if st.Active != nil && st.Active.Error != "" {
		return "failing"
	}
	if st.Last != nil && (st.Last.Status == store.StatusRolledBack || st.Last.Status == store.StatusOldInUse || st.Last.Error != "") {
		return "failing"
	}
	for _, t := range st.Targets {
		if t.State == store.DeliveryFailed || t.State == store.DeliveryMismatch {
			return "failing"
		}
	}
	if st.Version == 0 { // never rotated is always due; say which it is
		return "never"
	}
	if st.Due {
		return "overdue"
	}
	return "healthy"
}

var sorts = map[string]func(a, b row) int{
	"name":   func(a, b row) int { return cmp.Compare(a.Name, b.Name) },
	"age":    func(a, b row) int { return cmp.Compare(b.Age, a.Age) },
	"health": func(a, b row) int { return cmp.Compare(healthRank[a.Health], healthRank[b.Health]) },
	"next": func(a, b row) int {
		if a.NextDue == nil || b.NextDue == nil {
			return cmp.Compare(boolInt(a.NextDue == nil), boolInt(b.NextDue == nil))
		}
		return a.NextDue.Compare(*b.NextDue)
	},
}

var healthRank = map[string]int{"failing": 0, "overdue": 1, "never": 2, "healthy": 3}

// healths and sortOrder are the filter's choices, in the order it offers
// them.
var (
	healths   = []string{"failing", "overdue", "never", "healthy"}
	sortOrder = []string{"health", "name", "age", "next"}
)

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func (c *console) overview(w http.ResponseWriter, r *http.Request, se *session) {
	b := c.opts.Backend
	q := r.URL.Query()
	filter, want, sortBy := strings.TrimSpace(q.Get("q")), q.Get("health"), q.Get("sort")
	if _, ok := sorts[sortBy]; !ok {
		sortBy = "health"
	}
	if _, ok := healthRank[want]; !ok {
		want = ""
	}
	// One config for the whole page: a reload in between must not mix two.
	creds := b.Config().Credentials
	sts, err := b.Engine().StatusAll(r.Context(), creds, engine.StatusOptions{})
	if err != nil {
		c.internalError(w, r, err)
		return
	}
	// Only a pending retirement's old role still works, so only those
	// credentials ask the database who is still on it; the rest of the
	// page is the store's, and a thousand credentials stay one read each.
	for i, st := range sts {
		if st.PendingRetirement != nil {
			sts[i] = c.liveStatus(r.Context(), creds[i], st)
		}
	}
	c.render(w, r, http.StatusOK, se, overviewData(sts, filter, want, sortBy))
}

// overviewPage is the overview: the rows the filter keeps, sorted, and
// the summary over every credential.
type overviewPage struct {
	head
	Rows   []row
	Total  int
	Counts map[string]int // credentials by health
	// Q, Health and Sort are the filter and the sort as applied.
	Q, Health, Sort string
}

// overviewData is the overview page's data for the statuses sts, kept
// apart from reading them so the benchmark renders a thousand rows
// without a store.
func overviewData(sts []*engine.CredentialStatus, filter, want, sortBy string) *overviewPage {
	counts := map[string]int{}
	var rows []row
	for _, st := range sts {
		rw := row{CredentialStatus: st, Health: health(st), Policy: st.Schedule, Sessions: oldSessions(st)}
		counts[rw.Health]++
		if filter != "" && !strings.Contains(strings.ToLower(st.Name), strings.ToLower(filter)) {
			continue
		}
		if want != "" && rw.Health != want {
			continue
		}
		rows = append(rows, rw)
	}
	slices.SortStableFunc(rows, func(a, b row) int {
		if n := sorts[sortBy](a, b); n != 0 {
			return n
		}
		return cmp.Compare(a.Name, b.Name)
	})
	return &overviewPage{head: head{Title: "Credentials"}, Rows: rows,
		Total: len(sts), Counts: counts, Q: filter, Health: want, Sort: sortBy}
}
