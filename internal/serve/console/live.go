package console

import (
	"context"
	"time"

	"github.com/rotorhq/rotor/internal/engine"
	"github.com/rotorhq/rotor/internal/provider"
)

// liveTimeout bounds asking the database who is still on an old role: a
// slow or unreachable database must not hold a page.
var liveTimeout = 5 * time.Second

// liveStatus is cr's status with what only the database knows (sessions
// still on an old role, a pending retirement's last login, roles changed
// behind the store's back), as `rotor status --live` reports it. When the
// database does not answer in time, the stored status st is kept and a
// warning says why the sessions are missing.
func (c *console) liveStatus(ctx context.Context, cr *engine.Credential, st *engine.CredentialStatus) *engine.CredentialStatus {
	ctx, cancel := context.WithTimeout(ctx, liveTimeout)
	defer cancel()
	live, err := c.opts.Backend.Engine().Status(ctx, cr, engine.StatusOptions{Live: true})
	if err != nil {
		c.log.Warn("console: live status", "credential", cr.Name, "error", err.Error())
		cp := *st
		cp.Warnings = append(append([]string(nil), st.Warnings...), "could not ask the database who still uses the old role: "+err.Error())
		return &cp
	}
	return live
}

// oldSessions are the sessions still on a role the credential has moved
// off: a pending retirement's old role, and (dual) the other role.
func oldSessions(st *engine.CredentialStatus) []provider.Session {
	var out []provider.Session
	seen := map[int]bool{}
	add := func(ss []provider.Session) {
		for _, s := range ss {
			if !seen[s.PID] {
				seen[s.PID] = true
				out = append(out, s)
			}
		}
	}
	if st.PendingRetirement != nil {
		add(st.PendingRetirement.Sessions)
	}
	add(st.OldSessions)
	return out
}
