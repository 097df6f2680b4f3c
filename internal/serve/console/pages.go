package console

import (
	"cmp"

	"github.com/rotorhq/rotor/internal/engine"
	"github.com/rotorhq/rotor/internal/provider"
)

// The pages' markup, one function per page, in the layout every page
// shares. The markup is the console's own; every value from data goes
// through html's text, path or num (see html).

// layout is the page around p's content: the head, the top bar (the
// signed-in token and signing out), and <main>.
func layout(h html, v *view, p page) {
	h.raw(`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
`)
	if v.Refresh != 0 {
		// Only without JavaScript: live.js follows the page instead.
		h.raw(`<noscript><meta http-equiv="refresh" content="`)
		h.num(int64(v.Refresh))
		h.raw(`"></noscript>
`)
	}
	h.raw(`<title>`)
	h.text(v.Title)
	h.raw(` · rotor</title>
<link rel="stylesheet" href="/static/console.css">
<script src="/static/live.js" defer></script>
</head>
<body>
<a class="skip" href="#main">Skip to content</a>
<header class="top">
  <a class="brand" href="/">rotor</a>
`)
	if v.Signed {
		h.raw(`  <nav aria-label="Main">
    <a href="/">Credentials</a>
    <a href="/audit">Audit log</a>
  </nav>
  <form class="signout" method="post" action="/signout">
    <input type="hidden" name="csrf" value="`)
		h.text(v.CSRF)
		h.raw(`">
    <span class="who">`)
		h.text(v.Who)
		h.raw(` <span class="scope">(`)
		h.text(v.Scope)
		h.raw(`)</span></span>
    <button type="submit" class="link">Sign out</button>
  </form>
`)
	}
	h.raw(`</header>
<main id="main" tabindex="-1">
`)
	p.content(h, v)
	h.raw(`
</main>
</body>
</html>
`)
}

func (p *errorPage) content(h html, v *view) {
	h.raw(`<h1>`)
	h.text(p.Title)
	h.raw(`</h1>
<p class="error" role="alert">`)
	h.text(p.Message)
	h.raw(`</p>
<p>`)
	if v.Signed {
		h.raw(`<a href="/">Back to the credentials</a>`)
	} else {
		h.raw(`<a href="/signin">Sign in</a>`)
	}
	h.raw(`</p>`)
}

func (p *signinPage) content(h html, _ *view) {
	h.raw(`<h1>Sign in</h1>
<p>Sign in with an API token of this <code>rotor serve</code> (from <code>ROTOR_API_TOKENS</code>). A read token can look; a rotate token can also rotate; an admin token can also revoke and retire.</p>
`)
	if p.Error != "" {
		h.raw(`<p class="error" role="alert">`)
		h.text(p.Error)
		h.raw(`</p>
`)
	}
	h.raw(`<form method="post" action="/signin" class="stack">
  <input type="hidden" name="next" value="`)
	h.text(p.Next)
	h.raw(`">
  <label for="token">API token</label>
  <input id="token" name="token" type="password" autocomplete="current-password" required autofocus>
  <button type="submit">Sign in</button>
</form>`)
}

func (p *overviewPage) content(h html, _ *view) {
	h.raw(`<h1>Credentials</h1>
<p class="summary" id="summary"><strong>`)
	h.num(int64(p.Total))
	h.raw(`</strong> credentials:
  <span class="h-healthy">`)
	h.num(int64(p.Counts["healthy"]))
	h.raw(` healthy</span>,
  <span class="h-overdue">`)
	h.num(int64(p.Counts["overdue"]))
	h.raw(` overdue</span>,
  <span class="h-failing">`)
	h.num(int64(p.Counts["failing"]))
	h.raw(` failing</span>,
  <span class="h-never">`)
	h.num(int64(p.Counts["never"]))
	h.raw(` never rotated</span>.</p>
<form method="get" action="/" class="filters" role="search">
  <div><label for="q">Name contains</label><input id="q" name="q" value="`)
	h.text(p.Q)
	h.raw(`"></div>
  <div><label for="health">Health</label>
  <select id="health" name="health"><option value="">any</option>
  `)
	h.options(healths, p.Health)
	h.raw(`</select></div>
  <div><label for="sort">Sort by</label>
  <select id="sort" name="sort">`)
	h.options(sortOrder, p.Sort)
	h.raw(`</select></div>
  <button type="submit">Apply</button>
</form>
<div class="table-wrap">
<table class="creds">
<caption class="visually-hidden">One row per credential</caption>
<thead><tr><th scope="col">Credential</th><th scope="col">Health</th><th scope="col">Strategy / role</th><th scope="col">Age / policy</th><th scope="col">Next due</th><th scope="col">Last result</th><th scope="col">Targets</th><th scope="col">Retirement / old-role sessions</th></tr></thead>
<tbody>
`)
	for i := range p.Rows {
		p.Rows[i].write(h)
	}
	if len(p.Rows) == 0 {
		h.raw(`<tr><td colspan="8">No credential matches. <a href="/">Clear the filters</a>.</td></tr>
`)
	}
	h.raw(`</tbody>
</table>
</div>`)
}

// write is the overview's row of one credential.
func (rw *row) write(h html) {
	h.raw(`<tr class="row-`)
	h.text(rw.Health)
	h.raw(`">
  <th scope="row"><a href="/credentials/`)
	h.path(rw.Name)
	h.raw(`">`)
	h.text(rw.Name)
	h.raw(`</a></th>
  <td><span class="badge b-`)
	h.text(rw.Health)
	h.raw(`">`)
	h.text(rw.Health)
	h.raw(`</span></td>
  <td>`)
	h.text(rw.Strategy)
	if rw.Role != "" {
		h.raw(`<br>`)
		h.el("code", rw.Role)
	}
	h.raw(`</td>
  <td>`)
	h.text(humanDuration(rw.Age))
	h.raw(` / `)
	h.text(rw.Policy)
	h.raw(`</td>
  <td>`)
	h.text(whenSet(rw.NextDue))
	h.raw(`</td>
  <td>`)
	rw.lastResult(h)
	h.raw(`</td>
  <td><ul class="plain">`)
	for _, t := range rw.Targets {
		h.raw(`<li><span class="badge d-`)
		h.text(string(t.State))
		h.raw(`">`)
		h.text(string(t.State))
		h.raw(`</span> `)
		h.text(t.Name)
		if t.Error != "" {
			h.raw(`: <span class="error-text">`)
			h.text(t.Error)
			h.raw(`</span>`)
		}
		h.raw(`</li>`)
	}
	h.raw(`</ul></td>
  <td>`)
	if pr := rw.PendingRetirement; pr != nil {
		h.el("code", pr.Role)
		h.raw(` pending: `)
		h.text(pr.RetiresWhen)
		if pr.LastLogin != nil {
			h.raw(`; last login `)
			h.text(whenSet(pr.LastLogin))
		}
	} else {
		h.raw(`—`)
	}
	if len(rw.Sessions) > 0 {
		h.raw(`<br><strong class="error-text">`)
		h.num(int64(len(rw.Sessions)))
		h.raw(` session(s) on the old role:</strong> `)
		h.text(describeSessions(rw.Sessions))
	}
	h.raw(`</td>
</tr>
`)
}

// lastResult is the row's last rotation, or else the one that runs or
// stopped.
func (rw *row) lastResult(h html) {
	switch last, act := rw.Last, rw.Active; {
	case last != nil:
		h.raw(`<a href="/rotations/`)
		h.num(last.ID)
		h.raw(`">`)
		h.text(string(last.Status))
		h.raw(`</a>`)
		if last.Error != "" {
			h.raw(`<br><span class="error-text">`)
			h.text(last.Error)
			h.raw(`</span>`)
		}
	case act != nil && act.Error != "":
		h.raw(`<span class="error-text">stopped at <a href="/rotations/`)
		h.num(act.ID)
		h.raw(`">`)
		h.text(act.Step)
		h.raw(`</a></span>; resume or rotate again`)
	case act != nil:
		h.raw(`running: <a href="/rotations/`)
		h.num(act.ID)
		h.raw(`">`)
		h.text(act.Step)
		h.raw(`</a>`)
	default:
		h.raw(`—`)
	}
}

func (p *credentialPage) content(h html, v *view) {
	s := p.S
	h.raw(`<p class="crumbs"><a href="/">Credentials</a> › `)
	h.text(s.Name)
	h.raw(`</p>
<h1>`)
	h.text(s.Name)
	h.raw(` <span class="badge b-`)
	h.text(p.Health)
	h.raw(`">`)
	h.text(p.Health)
	h.raw(`</span></h1>
`)
	facts(h, s)
	if len(s.Warnings) > 0 {
		h.raw(`<ul class="warnings" aria-label="Warnings">`)
		h.items(s.Warnings)
		h.raw(`</ul>`)
	}
	h.raw(`

`)
	if len(p.Sessions) > 0 || s.PendingRetirement != nil || s.Strategy == engine.StrategyDual {
		oldRoleSessions(h, p.Sessions)
	}
	h.raw(`

`)
	if v.CanRot || v.CanAdm {
		actionButtons(h, v, s.Name)
	}
	h.raw(`

`)
	statusTargets(h, s.Targets)
	h.raw(`

`)
	if p.Latest != nil {
		h.raw(`<section aria-labelledby="lr"><h2 id="lr">Latest rotation (<a href="/rotations/`)
		h.num(p.Latest.ID)
		h.raw(`">`)
		h.num(p.Latest.ID)
		h.raw(`</a>)</h2>`)
		journal(h, p.Latest)
		h.raw(`</section>`)
	}
	h.raw(`

`)
	p.versions(h)
	h.raw(`

`)
	p.rotations(h)
	h.raw(`

<section aria-labelledby="pl"><h2 id="pl">Plan of the next rotation</h2>
`)
	if p.PlanError != "" {
		h.raw(`<p class="error">`)
		h.text(p.PlanError)
		h.raw(`</p>`)
	}
	h.raw(`
`)
	if p.Plan != nil {
		plan(h, p.Plan)
	}
	h.raw(`
</section>`)
}

// facts are a credential's status at a glance, with a pending
// retirement's evidence.
func facts(h html, s *engine.CredentialStatus) {
	h.raw(`<dl class="facts">
  <dt>Strategy</dt><dd>`)
	h.text(s.Strategy)
	h.raw(`</dd>
  <dt>Role in use</dt><dd>`)
	if s.Role != "" {
		h.el("code", s.Role)
	} else {
		h.raw(`—`)
	}
	h.raw(`</dd>
  <dt>Version</dt><dd>`)
	if s.Version != 0 {
		h.num(s.Version)
		h.raw(` (fingerprint `)
		h.el("code", s.Fingerprint)
		h.raw(`)`)
	} else {
		h.raw(`—`)
	}
	h.raw(`</dd>
  <dt>Age / policy</dt><dd>`)
	h.text(humanDuration(s.Age))
	h.raw(` / `)
	h.text(s.Schedule)
	h.raw(`</dd>
  <dt>Next due</dt><dd>`)
	h.text(whenSet(s.NextDue))
	if s.Due {
		h.raw(` <strong class="h-overdue">overdue</strong>`)
	}
	h.raw(`</dd>
  `)
	if pr := s.PendingRetirement; pr != nil {
		h.raw(`<dt>Pending retirement</dt><dd>`)
		h.el("code", pr.Role)
		h.raw(` (rotation <a href="/rotations/`)
		h.num(pr.RotationID)
		h.raw(`">`)
		h.num(pr.RotationID)
		h.raw(`</a>, `)
		h.text(string(pr.Status))
		h.raw(`): `)
		h.text(pr.RetiresWhen)
		h.raw(`. Evidence: switched `)
		h.text(when(pr.SwitchedAt))
		h.raw(`, grace until `)
		h.text(when(pr.GraceUntil))
		h.raw(`, deadline `)
		h.text(when(pr.Deadline))
		if pr.LastLogin != nil {
			h.raw(`, last login `)
			h.text(whenSet(pr.LastLogin))
		}
		h.raw(`.</dd>`)
	}
	h.raw(`
</dl>
`)
}

// oldRoleSessions are the sessions still on a role the credential moved
// off, as the database reports them.
func oldRoleSessions(h html, ss []provider.Session) {
	h.raw(`<section aria-labelledby="os"><h2 id="os">Sessions on an old role</h2>
`)
	if len(ss) == 0 {
		h.raw(`<p>None: no session uses the old role now.</p>`)
	} else {
		h.raw(`<div class="table-wrap"><table>
<thead><tr><th scope="col">PID</th><th scope="col">Application</th><th scope="col">Client</th><th scope="col">Database</th><th scope="col">Since</th><th scope="col">State</th></tr></thead>
<tbody>`)
		for _, s := range ss {
			h.raw(`<tr><td>`)
			h.num(int64(s.PID))
			h.raw(`</td>`)
			h.el("td", cmp.Or(s.ApplicationName, "(none)"))
			h.el("td", cmp.Or(s.ClientAddr, "local socket"))
			h.el("td", s.Database)
			h.el("td", when(s.BackendStart))
			h.el("td", s.State)
			h.raw(`</tr>`)
		}
		h.raw(`</tbody>
</table></div>`)
	}
	h.raw(`
</section>
`)
}

// actionButtons link to the confirmation of each action the scope allows.
func actionButtons(h html, v *view, name string) {
	h.raw(`<section aria-labelledby="act"><h2 id="act">Actions</h2>
<p class="actions">
  `)
	if v.CanRot {
		h.raw(`<a class="button" href="/credentials/`)
		h.path(name)
		h.raw(`/confirm/rotate">Rotate now…</a>`)
	}
	h.raw(`
  `)
	if v.CanAdm {
		h.raw(`<a class="button danger" href="/credentials/`)
		h.path(name)
		h.raw(`/confirm/revoke">Revoke (leak)…</a>
  <a class="button" href="/credentials/`)
		h.path(name)
		h.raw(`/confirm/retire">Retire…</a>`)
	}
	h.raw(`
</p></section>
`)
}

// statusTargets are each target's last known delivery.
func statusTargets(h html, ts []engine.TargetStatus) {
	h.raw(`<section aria-labelledby="tg"><h2 id="tg">Targets</h2>
<div class="table-wrap"><table>
<thead><tr><th scope="col">Target</th><th scope="col">Type</th><th scope="col">Destination</th><th scope="col">State</th><th scope="col">Attempts</th><th scope="col">Error</th></tr></thead>
<tbody>`)
	for _, t := range ts {
		h.raw(`<tr><th scope="row">`)
		h.text(t.Name)
		h.raw(`</th>`)
		h.el("td", t.Type)
		h.raw(`<td>`)
		h.el("code", t.Destination)
		h.raw(`</td><td><span class="badge d-`)
		h.text(string(t.State))
		h.raw(`">`)
		h.text(string(t.State))
		h.raw(`</span></td><td>`)
		h.num(int64(t.Attempts))
		h.raw(`</td><td class="error-text">`)
		h.text(t.Error)
		h.raw(`</td></tr>`)
	}
	h.raw(`</tbody>
</table></div></section>`)
}

func (p *credentialPage) versions(h html) {
	h.raw(`<section aria-labelledby="vs"><h2 id="vs">Versions</h2>
<div class="table-wrap"><table>
<thead><tr><th scope="col">#</th><th scope="col">Role</th><th scope="col">Stage</th><th scope="col">Fingerprint</th><th scope="col">Created</th><th scope="col">Activated</th><th scope="col">Retired</th></tr></thead>
<tbody>`)
	for _, ver := range p.Versions {
		h.raw(`<tr><td>`)
		h.num(ver.Seq)
		h.raw(`</td><td>`)
		h.el("code", ver.Role)
		h.raw(`</td>`)
		h.el("td", string(ver.Stage))
		h.raw(`<td>`)
		h.el("code", ver.Fingerprint)
		h.raw(`</td>`)
		h.el("td", when(ver.CreatedAt))
		h.el("td", when(ver.ActivatedAt))
		h.el("td", when(ver.RetiredAt))
		h.raw(`</tr>`)
	}
	if len(p.Versions) == 0 {
		h.raw(`<tr><td colspan="7">No versions yet: rotor has not rotated it.</td></tr>`)
	}
	h.raw(`</tbody>
</table></div></section>`)
}

func (p *credentialPage) rotations(h html) {
	h.raw(`<section aria-labelledby="rs"><h2 id="rs">Rotations</h2>
<div class="table-wrap"><table>
<thead><tr><th scope="col">Rotation</th><th scope="col">Status</th><th scope="col">Trigger</th><th scope="col">Last step</th><th scope="col">Started</th><th scope="col">Finished</th><th scope="col">Error</th></tr></thead>
<tbody>`)
	for _, rot := range p.Rotations {
		h.raw(`<tr><td><a href="/rotations/`)
		h.num(rot.ID)
		h.raw(`">`)
		h.num(rot.ID)
		h.raw(`</a></td><td>`)
		h.text(string(rot.Status))
		if rot.Revoke {
			h.raw(` (revoke)`)
		}
		h.raw(`</td>`)
		h.el("td", rot.Trigger)
		h.el("td", rot.Step)
		h.el("td", when(rot.StartedAt))
		h.el("td", when(rot.FinishedAt))
		h.raw(`<td class="error-text">`)
		h.text(rot.Error)
		h.raw(`</td></tr>`)
	}
	if len(p.Rotations) == 0 {
		h.raw(`<tr><td colspan="7">None yet.</td></tr>`)
	}
	h.raw(`</tbody>
</table></div></section>`)
}

// plan is what the next rotation would do, as `rotor plan` says it.
func plan(h html, pl *engine.Plan) {
	h.raw(`
<p>From `)
	if pl.FromRole != "" {
		h.el("code", pl.FromRole)
	} else {
		h.raw(`—`)
	}
	h.raw(` to `)
	h.el("code", pl.ToRole)
	h.raw(` (`)
	h.text(pl.Strategy)
	h.raw(`, provider `)
	h.text(pl.Provider)
	h.raw(`)`)
	if pl.Resume != nil {
		h.raw(`; resumes rotation `)
		h.num(pl.Resume.ID)
	}
	h.raw(`.</p>
<ol>`)
	h.items(pl.Actions)
	h.raw(`</ol>
<ul>`)
	for _, t := range pl.Targets {
		h.raw(`<li>`)
		h.text(t.Name)
		h.raw(` (`)
		h.text(t.Type)
		h.raw(`) → `)
		h.el("code", t.Destination)
		h.raw(`: `)
		for i, k := range t.Keys {
			if i > 0 {
				h.raw(`, `)
			}
			h.el("code", k)
		}
		if t.Reload {
			h.raw(`; reloads`)
		}
		if t.ReadBack {
			h.raw(`; read back`)
		}
		h.raw(`</li>`)
	}
	h.raw(`</ul>
`)
	if len(pl.Warnings) > 0 {
		h.raw(`<ul class="warnings">`)
		h.items(pl.Warnings)
		h.raw(`</ul>`)
	}
	h.raw(`
`)
}

func (p *confirmPage) content(h html, v *view) {
	h.raw(`<p class="crumbs"><a href="/">Credentials</a> › <a href="/credentials/`)
	h.path(p.Name)
	h.raw(`">`)
	h.text(p.Name)
	h.raw(`</a> › confirm</p>
<h1>`)
	h.text(p.Label)
	h.raw(`: `)
	h.text(p.Name)
	h.raw(`?</h1>
<p class="what">`)
	h.text(p.Says)
	h.raw(`</p>
<form method="post" action="/credentials/`)
	h.path(p.Name)
	h.raw(`/`)
	h.path(p.Action)
	h.raw(`" class="stack">
  <input type="hidden" name="csrf" value="`)
	h.text(v.CSRF)
	h.raw(`">
  <label for="reason">Reason (for the audit log, optional)</label>
  <input id="reason" name="reason" maxlength="500">
  `)
	if p.Retire {
		h.raw(`<div class="check"><input id="now" name="now" type="checkbox"><label for="now">Now: do not wait for the evidence</label></div>`)
	}
	h.raw(`
  <p class="actions"><button type="submit" class="`)
	if p.Action == "revoke" {
		h.raw(`danger`)
	}
	h.raw(`" id="confirm">`)
	h.text(p.Label)
	h.raw(`</button>
  <a href="/credentials/`)
	h.path(p.Name)
	h.raw(`">Cancel</a></p>
</form>`)
}

func (p *jobPage) content(h html, _ *view) {
	j := p.J
	crumbs(h, j.Credential, "job", j.ID)
	h.raw(`
<h1>Job `)
	h.num(j.ID)
	h.raw(`: `)
	h.text(string(j.Kind))
	h.raw(` `)
	h.text(j.Credential)
	h.raw(`</h1>
<p id="job-state" data-state="`)
	h.text(j.State)
	h.raw(`">State <strong class="j-`)
	h.text(j.State)
	h.raw(`">`)
	h.text(j.State)
	h.raw(`</strong>`)
	if j.Duplicate {
		h.raw(` (already asked for: this is the job that was queued)`)
	}
	h.raw(`; asked by `)
	h.text(j.Actor)
	h.raw(` at `)
	h.text(when(j.CreatedAt))
	if j.FinishedAt != nil {
		h.raw(`, finished `)
		h.text(whenSet(j.FinishedAt))
	}
	h.raw(`.</p>
`)
	if len(j.Errors) > 0 {
		h.raw(`<ul class="error" role="alert">`)
		h.items(j.Errors)
		h.raw(`</ul>`)
	}
	h.raw(`
`)
	if p.Live {
		live(h, j.Credential, "job", j.ID, "Waiting for progress…")
	}
	h.raw(`
`)
	if p.R != nil {
		h.raw(`<section aria-labelledby="rot"><h2 id="rot">Rotation <a href="/rotations/`)
		h.num(p.R.ID)
		h.raw(`">`)
		h.num(p.R.ID)
		h.raw(`</a></h2>`)
		journal(h, p.R)
		h.raw(`</section>`)
	}
}

func (p *rotationPage) content(h html, _ *view) {
	r := p.R
	crumbs(h, r.Credential, "rotation", r.ID)
	h.raw(`
<h1>Rotation `)
	h.num(r.ID)
	h.raw(`: `)
	h.text(r.Credential)
	h.raw(`</h1>
<p>Started `)
	h.text(when(r.StartedAt))
	if !r.FinishedAt.IsZero() {
		h.raw(`, finished `)
		h.text(when(r.FinishedAt))
	}
	h.raw(`; strategy `)
	h.text(r.Strategy)
	h.raw(`.</p>
`)
	if p.Live {
		live(h, r.Credential, "rotation", r.ID, "Running…")
	}
	h.raw(`
`)
	journal(h, r)
}

// crumbs is the trail from the overview through credential to its job or
// rotation id (what names which).
func crumbs(h html, credential string, what markup, id int64) {
	h.raw(`<p class="crumbs"><a href="/">Credentials</a> › <a href="/credentials/`)
	h.path(credential)
	h.raw(`">`)
	h.text(credential)
	h.raw(`</a> › ` + what + ` `)
	h.num(id)
	h.raw(`</p>`)
}

// live is where live.js shows the progress of a job or rotation (what)
// as it streams in; note is what it says until the first event.
func live(h html, credential string, what markup, id int64, note markup) {
	h.raw(`<div id="live" data-credential="`)
	h.text(credential)
	h.raw(`" data-follow="` + what + `=`)
	h.num(id)
	h.raw(`" aria-live="polite"><p class="muted" id="live-note">` + note + ` (this page refreshes itself)</p><ol id="live-events"></ol></div>`)
}

// journal is one rotation's steps and its targets' attempts, on the
// credential, job and rotation pages.
func journal(h html, r *rotationView) {
	h.raw(`
<p>Status <strong>`)
	h.text(string(r.Status))
	h.raw(`</strong>`)
	if r.Revoke {
		h.raw(` (revoke)`)
	}
	h.raw(`, trigger `)
	h.text(r.Trigger)
	h.raw(`, last step `)
	h.text(r.Step)
	if r.Outcome != "" {
		h.raw(`; `)
		h.text(r.Outcome)
	}
	h.raw(`.</p>
`)
	if r.Error != "" {
		h.raw(`<p class="error" role="alert">`)
		h.text(r.Error)
		h.raw(`</p>`)
	}
	h.raw(`
<h3>Steps</h3>
<ol class="steps" id="steps">`)
	for _, s := range r.Steps {
		h.raw(`<li class="s-`)
		h.text(string(s.Status))
		h.raw(`"><span class="badge s-`)
		h.text(string(s.Status))
		h.raw(`">`)
		h.text(string(s.Status))
		h.raw(`</span> `)
		h.text(s.Name)
		h.raw(` <span class="muted">`)
		h.text(when(s.At))
		if s.Tries > 1 {
			h.raw(` (`)
			h.num(int64(s.Tries))
			h.raw(` runs)`)
		}
		h.raw(`</span>`)
		if s.Detail != "" {
			h.raw(`<br><code class="detail">`)
			h.text(s.Detail)
			h.raw(`</code>`)
		}
		h.raw(`</li>`)
	}
	if len(r.Steps) == 0 {
		h.raw(`<li>No step journaled yet.</li>`)
	}
	h.raw(`</ol>
<h3>Targets and attempts</h3>
<div class="table-wrap"><table>
<thead><tr><th scope="col">Target</th><th scope="col">State</th><th scope="col">Attempts</th><th scope="col">Fingerprint</th><th scope="col">Error</th><th scope="col">Updated</th></tr></thead>
<tbody>`)
	for _, d := range r.Deliveries {
		h.raw(`<tr><th scope="row">`)
		h.text(d.Target)
		h.raw(`</th><td><span class="badge d-`)
		h.text(string(d.State))
		h.raw(`">`)
		h.text(string(d.State))
		h.raw(`</span></td><td>`)
		h.num(int64(d.Attempts))
		h.raw(`</td><td>`)
		h.el("code", d.Fingerprint)
		h.raw(`</td><td class="error-text">`)
		h.text(d.Error)
		h.raw(`</td>`)
		h.el("td", when(d.UpdatedAt))
		h.raw(`</tr>`)
	}
	if len(r.Deliveries) == 0 {
		h.raw(`<tr><td colspan="6">No target written yet.</td></tr>`)
	}
	h.raw(`</tbody>
</table></div>
`)
}

func (p *auditPage) content(h html, _ *view) {
	h.raw(`<h1>Audit log</h1>
`)
	if p.Error != "" {
		h.raw(`<p class="error" role="alert">`)
		h.text(p.Error)
		h.raw(`</p>`)
	}
	h.raw(`
<form method="get" action="/audit" class="filters" role="search">
  <div><label for="credential">Credential</label><select id="credential" name="credential"><option value="">any</option>
  `)
	names := make([]string, len(p.Credentials))
	for i, cr := range p.Credentials {
		names[i] = cr.Name
	}
	h.options(names, p.Credential)
	h.raw(`</select></div>
  <div><label for="actor">Actor</label><input id="actor" name="actor" value="`)
	h.text(p.Actor)
	h.raw(`"></div>
  <div><label for="result">Result</label><select id="result" name="result"><option value="">any</option>
  `)
	h.options(engine.Results, p.Result)
	h.raw(`</select></div>
  <div><label for="since">Since (24h, 7d or a time)</label><input id="since" name="since" value="`)
	h.text(p.Since)
	h.raw(`"></div>
  <div><label for="until">Until (24h, 7d or a time)</label><input id="until" name="until" value="`)
	h.text(p.Until)
	h.raw(`"></div>
  <button type="submit">Apply</button>
</form>
<div class="table-wrap"><table class="audit">
<thead><tr><th scope="col">At</th><th scope="col">Credential</th><th scope="col">Event</th><th scope="col">Result</th><th scope="col">Actor</th><th scope="col">Rotation</th><th scope="col">Detail</th></tr></thead>
<tbody>`)
	for _, ev := range p.Events {
		h.raw(`<tr>`)
		h.el("td", ev.At)
		h.raw(`<td><a href="/credentials/`)
		h.path(ev.Credential)
		h.raw(`">`)
		h.text(ev.Credential)
		h.raw(`</a></td>`)
		h.el("td", ev.Event)
		h.el("td", ev.Result)
		h.el("td", ev.Actor)
		h.raw(`<td>`)
		if ev.RotationID != 0 {
			h.raw(`<a href="/rotations/`)
			h.num(ev.RotationID)
			h.raw(`">`)
			h.num(ev.RotationID)
			h.raw(`</a>`)
		}
		h.raw(`</td><td><code class="detail">`)
		h.text(string(ev.Detail))
		h.raw(`</code></td></tr>`)
	}
	if len(p.Events) == 0 {
		h.raw(`<tr><td colspan="7">No events match.</td></tr>`)
	}
	h.raw(`</tbody>
</table></div>`)
}
