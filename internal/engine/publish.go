package engine

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rotorhq/rotor/internal/connstr"
	"github.com/rotorhq/rotor/internal/provider"
	"github.com/rotorhq/rotor/internal/secret"
	"github.com/rotorhq/rotor/internal/store"
	"github.com/rotorhq/rotor/internal/target"
	"github.com/rotorhq/rotor/internal/template"
)

// vars are the template fields for the pending version.
func (r *run) vars() template.Vars {
	v := VarsFor(r.conn, r.pooled, r.to.Role, r.pending.password())
	if r.replica != nil {
		v.ReplicaURL = r.replica.WithUser(r.to.Role).WithPassword(r.pending.password()).URL()
	}
	return v
}

// VarsFor builds the template fields for role and password from how
// consumers connect (conn) and, when there is one, the pooled variant.
func VarsFor(conn, pooledConn *connstr.Conn, role string, pw secret.String) template.Vars {
	if conn == nil {
		return template.Vars{User: role, Password: pw}
	}
	base := conn.WithUser(role).WithPassword(pw)
	direct := base.WithHost(connstr.DirectHost(base.Host))
	pooled := base
	switch {
	case pooledConn != nil:
		pooled = pooledConn.WithUser(role).WithPassword(pw)
	case connstr.IsNeonHost(base.Host):
		if h, err := connstr.PooledHost(base.Host); err == nil {
			pooled = base.WithHost(h)
		}
	}
	// Most connections have no separate direct or pooled host: their URLs
	// are then the same string, built once (config load renders several
	// sample versions of every credential).
	url := base.URL()
	directURL, pooledURL := url, url
	if direct.Host != base.Host {
		directURL = direct.URL()
	}
	if pooled != base {
		pooledURL = pooled.URL()
	}
	return template.Vars{
		URL: url, DirectURL: directURL, PooledURL: pooledURL,
		User: role, Password: pw, Host: base.Host, Port: orDefault(base.Port, "5432"), Database: base.Database,
	}
}

// endpoints returns how consumers connect: the config's connection.url, or
// what the provider discovers when the config leaves it out, with the
// read replica it found (nil when none). A template that uses
// {{.ReplicaURL}} without a replica fails here, before any password
// changes.
func (e *Engine) endpoints(ctx context.Context, cr *Credential) (conn, pooled, replica *connstr.Conn, err error) {
	defer func() {
		if err == nil && replica == nil {
			err = needsReplica(cr)
		}
	}()
	if cr.Conn != nil {
		return cr.Conn, cr.Pooled, nil, nil
	}
	ep, ok := cr.Provider.(provider.Endpointer)
	if !ok {
		return nil, nil, nil, fmt.Errorf("%s has no connection.url and its provider cannot discover one; add connection: {url: …}", cr.Name)
	}
	resp, err := ep.Endpoints(ctx, provider.EndpointsRequest{})
	if err != nil {
		return nil, nil, nil, fmt.Errorf("discover endpoints: %w", err)
	}
	if conn, err = connstr.Parse(resp.Direct); err != nil {
		return nil, nil, nil, fmt.Errorf("discovered endpoint: %w", err)
	}
	if resp.Replica != "" {
		if replica, err = connstr.Parse(resp.Replica); err != nil {
			return nil, nil, nil, fmt.Errorf("discovered read replica: %w", err)
		}
	}
	if cr.Pooled != nil {
		return conn, cr.Pooled, replica, nil
	}
	if resp.Pooled != "" {
		if pooled, err = connstr.Parse(resp.Pooled); err != nil {
			return nil, nil, nil, fmt.Errorf("discovered pooled endpoint: %w", err)
		}
	}
	return conn, pooled, replica, nil
}

// needsReplica refuses a credential whose templates use {{.ReplicaURL}}
// when there is no read replica to fill it.
func needsReplica(cr *Credential) error {
	for _, t := range cr.Targets {
		for i, k := range t.Keys {
			if tpl := t.Values[i]; tpl != nil && tpl.Uses(template.ReplicaField) {
				return fmt.Errorf("%s: target %s, value %s: %w", cr.Name, t.Name, k, template.ErrNoReplica)
			}
		}
	}
	return nil
}

func (r *run) urls() []secret.String {
	if r.to == nil {
		return nil
	}
	v := r.vars()
	return []secret.String{v.URL, v.DirectURL, v.PooledURL, v.ReplicaURL}
}

// rendered is one target's values for the pending version.
type rendered struct {
	t           *Target
	values      map[string]secret.String
	fingerprint string
}

// renderAll renders every target's values; a template error stops before
// any write.
func (r *run) renderAll() ([]*rendered, error) {
	vars := r.vars()
	out := make([]*rendered, 0, len(r.cr.Targets))
	for _, t := range r.cr.Targets {
		rd := &rendered{t: t, values: map[string]secret.String{}}
		for i, k := range t.Keys {
			v, err := t.Values[i].Execute(vars)
			if err != nil {
				return nil, fmt.Errorf("target %s, value %s: %w", t.Name, k, err)
			}
			rd.values[k] = v
		}
		rd.fingerprint = r.e.fingerprintValues(t, rd.values)
		out = append(out, rd)
	}
	return out, nil
}

// fingerprintValues is the HMAC recorded for what a target was sent.
func (e *Engine) fingerprintValues(t *Target, values map[string]secret.String) string {
	parts := []string{"target", t.Name}
	for _, k := range t.Keys {
		parts = append(parts, k, values[k].Reveal())
	}
	return e.Sealer.Fingerprint(parts...)
}

// publish writes every target (bounded parallelism, retries only for
// idempotent targets), then — only when every write succeeded — runs the
// reloads. A target already written with the same fingerprint in this
// rotation is not written again on resume.
func (r *run) publish(ctx context.Context) (string, error) {
	rds, err := r.renderAll()
	if err != nil {
		return "", err
	}
	done, err := r.priorDeliveries(ctx)
	if err != nil {
		return "", err
	}

	results := make([]TargetResult, len(rds))
	// Gatekeepers first, written and reloaded on their own: once any other
	// target hands out the new credential, the gatekeeper must already
	// accept it.
	if err := r.writeGatekeepers(ctx, rds, done, results); err != nil {
		r.res.Targets = results
		return "", err
	}
	// The last record the step makes rides with its done or failed
	// record (record's settles): nothing happens between the two. That is
	// the last write's when no target reloads or a write failed (no reload
	// runs then), else the last reload's.
	var writes, reloads atomic.Int32
	var writeFailed atomic.Bool
	for _, rd := range rds {
		if !rd.gatekeeper() {
			writes.Add(1)
			if target.Discover(rd.t.Impl).Reloader != nil {
				reloads.Add(1)
			}
		}
	}
	noReloads := reloads.Load() == 0
	journalErrs := make([]error, len(rds))
	r.parallel(ctx, len(rds), func(ctx context.Context, i int) {
		if rds[i].gatekeeper() {
			return
		}
		results[i], journalErrs[i] = r.write(ctx, rds[i], done[rds[i].t.Name], func(failed bool) bool {
			if failed {
				writeFailed.Store(true)
			}
			return writes.Add(-1) == 0 && (noReloads || writeFailed.Load())
		})
	})
	if err := errors.Join(journalErrs...); err != nil {
		r.res.Targets = results
		return "", err
	}
	var failed []string
	for _, tr := range results {
		if tr.State == store.DeliveryFailed {
			failed = append(failed, tr.Name+": "+tr.Error)
		}
	}
	if len(failed) > 0 {
		r.res.Targets = results
		return "", &StepError{Credential: r.cr.Name, RotationID: r.rot.ID, Step: StepPublish,
			Err:  fmt.Errorf("%d of %d target(s) failed:\n- %s", len(failed), len(rds), strings.Join(failed, "\n- ")),
			Hint: r.publishHint()}
	}

	// Phase two: reloads, only now that every copy holds the new value.
	r.parallel(ctx, len(rds), func(ctx context.Context, i int) {
		if rds[i].gatekeeper() {
			return
		}
		journalErrs[i] = r.reload(ctx, rds[i], &results[i], done[rds[i].t.Name], func(bool) bool { return reloads.Add(-1) == 0 })
	})
	r.res.Targets = results
	if err := errors.Join(journalErrs...); err != nil {
		return "", err
	}
	failed = failed[:0]
	for _, tr := range results {
		if tr.State == store.DeliveryFailed {
			failed = append(failed, tr.Name+": "+tr.Error)
		}
	}
	if len(failed) > 0 {
		return "", &StepError{Credential: r.cr.Name, RotationID: r.rot.ID, Step: StepPublish,
			Err:  fmt.Errorf("every target was written, but %d reload(s) failed:\n- %s", len(failed), strings.Join(failed, "\n- ")),
			Hint: r.publishHint()}
	}
	changed := 0
	for _, tr := range results {
		if tr.Changed {
			changed++
		}
	}
	return fmt.Sprintf("%d target(s) written (%d changed)", len(rds), changed), nil
}

// priorDeliveries is what this rotation already delivered, by target
// (written before the test, or by a run that was interrupted).
func (r *run) priorDeliveries(ctx context.Context) (map[string]*store.Delivery, error) {
	prior, err := r.e.Store.ListDeliveries(ctx, store.ListDeliveriesParams{RotationID: r.rot.ID})
	if err != nil {
		return nil, err
	}
	done := map[string]*store.Delivery{}
	for _, d := range prior {
		done[d.Target] = d
	}
	return done, nil
}

func (r *run) publishHint() string {
	if r.cr.Strategy == StrategyDual {
		return "every target still holds a working credential (the old role was not touched). Fix the failing target(s), then `rotor resume` finishes the rollout."
	}
	return "the database already has the new password, so consumers reading the failed target(s) cannot open new connections. Fix them and run `rotor resume` now."
}

// parallel runs fn for 0..n-1 with at most Concurrency at once.
func (r *run) parallel(ctx context.Context, n int, fn func(context.Context, int)) {
	if n == 1 {
		// One target, the common case: nothing to overlap, so no
		// goroutine to start (and whose stack to grow) for it.
		fn(ctx, 0)
		return
	}
	sem := make(chan struct{}, max(r.cr.Concurrency, 1))
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		sem <- struct{}{}
		go func(i int) {
			defer func() { <-sem; wg.Done() }()
			fn(ctx, i)
		}(i)
	}
	wg.Wait()
}

// write sends one target its values and journals the delivery; the error
// is only ever the journal's, a target's failure is in the result. last
// is called once, when the delivery is recorded, with whether it failed,
// and says whether the record settles (record).
func (r *run) write(ctx context.Context, rd *rendered, prior *store.Delivery, last func(failed bool) bool) (TargetResult, error) {
	info := rd.t.Impl.Info()
	tr := TargetResult{Name: rd.t.Name, Type: rd.t.Type, Destination: info.Destination}
	if prior != nil && prior.Fingerprint == rd.fingerprint && delivered(prior.State) {
		// Written earlier in this rotation (before the test, or by a run
		// that was interrupted): it did change for this rotation.
		tr.State, tr.Attempts, tr.Changed, tr.Detail = prior.State, prior.Attempts, true, "written earlier in this rotation"
		r.e.emit(Event{Credential: r.cr.Name, RotationID: r.rot.ID, Step: StepPublish, Target: rd.t.Name, Status: "skip", Detail: "already written"})
		return tr, nil
	}
	start := r.e.Now()
	r.e.emit(Event{Credential: r.cr.Name, RotationID: r.rot.ID, Step: StepPublish, Target: rd.t.Name, Status: "start", Detail: info.Destination})
	attempts := 0
	if prior != nil {
		attempts = prior.Attempts
	}
	if err := r.e.holds(ctx, r.held); err != nil {
		return tr, err
	}
	var resp target.PutResponse
	mode := writeRetries
	if !info.Idempotent {
		mode = noRetries
	}
	err := r.retry(ctx, rd.t, mode, &attempts, func(ctx context.Context) error {
		var err error
		resp, err = r.put(ctx, rd)
		return err
	})
	tr.Attempts, tr.Duration = attempts, r.e.Now().Sub(start)
	if err != nil {
		tr.State, tr.Error = store.DeliveryFailed, r.scrub(err).Error()
	} else {
		tr.State, tr.Changed, tr.Detail = store.DeliveryWritten, resp.Changed, resp.Ref
		if !resp.Changed {
			tr.Detail = "unchanged"
		}
	}
	return tr, r.record(ctx, rd, tr, last(tr.State == store.DeliveryFailed))
}

// delivered reports whether a delivery in state s holds the written value
// as far as rotor knows.
func delivered(s store.DeliveryState) bool {
	switch s {
	case store.DeliveryWritten, store.DeliveryReloaded, store.DeliveryVerified, store.DeliveryUnverified:
		return true
	}
	return false
}

// reload runs one target's reload and journals it; like write, the error
// is only ever the journal's, and last is write's.
func (r *run) reload(ctx context.Context, rd *rendered, tr *TargetResult, prior *store.Delivery, last func(failed bool) bool) error {
	rl := target.Discover(rd.t.Impl).Reloader
	if rl == nil {
		return nil
	}
	if prior != nil && prior.Fingerprint == rd.fingerprint && (prior.State == store.DeliveryReloaded || prior.State == store.DeliveryVerified || prior.State == store.DeliveryUnverified) {
		return nil
	}
	if err := r.e.holds(ctx, r.held); err != nil {
		return err
	}
	start := r.e.Now()
	r.e.emit(Event{Credential: r.cr.Name, RotationID: r.rot.ID, Step: StepPublish, Target: rd.t.Name, Status: "start", Detail: "reload"})
	// A reload (a redeploy, a restart) is retried only when the target
	// says so explicitly: after a timeout it may already be under way.
	attempts := 0
	var resp target.ReloadResponse
	err := r.retry(ctx, rd.t, reloadRetries, &attempts, func(ctx context.Context) error {
		var err error
		resp, err = rl.Reload(ctx, target.ReloadRequest{RotationID: strconv.FormatInt(r.rot.ID, 10)})
		return err
	})
	tr.Duration += r.e.Now().Sub(start)
	if err != nil {
		tr.State, tr.Error = store.DeliveryFailed, fmt.Sprintf("reload (%d attempt(s)): %v", attempts, r.scrub(err))
	} else {
		tr.State, tr.Detail = store.DeliveryReloaded, resp.Detail
	}
	return r.record(ctx, rd, *tr, last(tr.State == store.DeliveryFailed))
}

// record reports and journals one target's state. A record that
// settles is the step's last act: it rides with the step's done or failed
// record (run.settled) instead of a write of its own, and a process that
// dies in between runs the step again on resume, as if the target had
// not answered yet.
func (r *run) record(ctx context.Context, rd *rendered, tr TargetResult, settles bool) error {
	r.emitDelivery(tr)
	if settles {
		r.settled = append(r.settled, r.deliveryParams(rd, tr))
		return nil
	}
	if _, err := r.e.Store.UpsertDelivery(context.WithoutCancel(ctx), r.deliveryParams(rd, tr)); err != nil {
		return journalError(fmt.Sprintf("record that target %s is %s", tr.Name, tr.State), err)
	}
	return nil
}

func (r *run) emitDelivery(tr TargetResult) {
	status := "done"
	if tr.State == store.DeliveryFailed {
		status = "failed"
	}
	r.e.emit(Event{Credential: r.cr.Name, RotationID: r.rot.ID, Step: StepPublish, Target: tr.Name, Status: status,
		Detail: orDefault(tr.Error, tr.Detail), Elapsed: tr.Duration})
}

func (r *run) deliveryParams(rd *rendered, tr TargetResult) store.UpsertDeliveryParams {
	return store.UpsertDeliveryParams{Fence: r.fence,
		RotationID: r.rot.ID, Credential: r.cr.Name, Target: tr.Name, State: tr.State, Fingerprint: rd.fingerprint,
		Attempts: tr.Attempts, Error: tr.Error, Detail: tr.Detail, Now: r.e.now(), Deferred: true,
		Audit: r.deliveryAudit(tr),
	}
}

func (r *run) scrub(err error) error { return secret.Scrub(err, r.secrets()...) }

// retryMode says which failures may be tried again.
type retryMode int

const (
	// noRetries: one attempt per run (the write is not idempotent).
	noRetries retryMode = iota
	// writeRetries: RetryableError, timeouts and network errors (the
	// write is idempotent, so a duplicate is harmless).
	writeRetries
	// reloadRetries: only an explicit RetryableError; a reload that timed
	// out may be running already.
	reloadRetries
)

// retry calls fn until it succeeds, the error is not retryable under mode,
// or the attempts run out. Backoff is capped exponential with full jitter;
// a Retry-After from the backend is honoured (up to 5 minutes).
func (r *run) retry(ctx context.Context, t *Target, mode retryMode, attempts *int, fn func(context.Context) error) error {
	limit := r.cr.Attempts
	if mode == noRetries {
		limit = 1
	}
	timeout, timeoutKey := r.cr.TargetTimeout, "publish.timeout"
	if mode == reloadRetries && t.ReloadTimeout > 0 {
		// A reload waits until consumers run the new values (a deploy
		// that is live, a rollout that is complete): its own bound.
		timeout, timeoutKey = t.ReloadTimeout, "the target's reload_timeout"
	}
	var err error
	for i := 0; i < limit; i++ {
		*attempts++
		actx, cancel := context.WithTimeout(ctx, timeout)
		err = fn(actx)
		timedOut := actx.Err() != nil && ctx.Err() == nil
		cancel()
		if err == nil {
			return nil
		}
		if timedOut {
			err = fmt.Errorf("%w (not finished within %s, %s)", err, timeoutKey, formatDuration(timeout))
		}
		if ctx.Err() != nil || i == limit-1 || !retryable(err, timedOut, mode) {
			return err
		}
		wait := r.e.backoff(i, r.cr.MaxBackoff)
		var re *target.RetryableError
		if errors.As(err, &re) && re.RetryAfter > 0 {
			wait = min(re.RetryAfter, 5*time.Minute)
		}
		r.e.emit(Event{Credential: r.cr.Name, RotationID: r.rot.ID, Step: StepPublish, Target: t.Name, Status: "retry",
			Detail: fmt.Sprintf("attempt %d failed (%v); retrying in %s", i+1, r.scrub(err), wait.Round(time.Millisecond))})
		r.auditRetry(ctx, t, i+1, err, wait)
		if err := r.e.Sleep(ctx, wait); err != nil {
			return err
		}
	}
	return err
}

func retryable(err error, timedOut bool, mode retryMode) bool {
	var re *target.RetryableError
	if errors.As(err, &re) || target.NotSent(err) {
		// NotSent: the request never left, so even a reload may be sent.
		return true
	}
	if mode != writeRetries {
		return false
	}
	if timedOut {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne)
}

func (e *Engine) backoff(attempt int, cap time.Duration) time.Duration {
	base := 200 * time.Millisecond << min(attempt, 16)
	if base > cap || base <= 0 {
		base = cap
	}
	return time.Duration(e.jitter(int64(base)) + 1)
}

// jitter is a number in [0, n) drawn from the engine's Rand. Should the
// reader fail, it is n-1: the full wait, only the jitter is lost.
func (e *Engine) jitter(n int64) int64 {
	var b [8]byte
	if _, err := io.ReadFull(e.Rand, b[:]); err != nil {
		e.Logger.Debug("no randomness for the retry jitter; waiting the full backoff", "error", err)
		return n - 1
	}
	return int64(binary.BigEndian.Uint64(b[:]) % uint64(n))
}

// verifyTargets reads back every Checker target (in parallel, bounded
// like publish) and compares each key with what was written.
func (r *run) verifyTargets(ctx context.Context) (string, error) {
	rds, err := r.renderAll()
	if err != nil {
		return "", err
	}
	results := make([]TargetResult, len(rds))
	checked := make([]bool, len(rds))
	r.parallel(ctx, len(rds), func(ctx context.Context, i int) {
		rd := rds[i]
		ck := target.Discover(rd.t.Impl).Checker
		if ck == nil {
			return
		}
		checked[i] = true
		results[i] = r.check(ctx, rd, ck)
	})
	var mismatched []string
	verified, unverifiable := 0, 0
	for i, rd := range rds {
		if !checked[i] {
			unverifiable++
			continue
		}
		tr := results[i]
		switch tr.State {
		case store.DeliveryVerified:
			verified++
		case store.DeliveryUnverified:
			unverifiable++
		default:
			mismatched = append(mismatched, rd.t.Name+": "+tr.Error)
		}
		r.setTargetResult(tr)
		// The last thing the step does (a revoke writes them first, see
		// opened): they ride with its done or failed record.
		r.emitDelivery(tr)
		r.settled = append(r.settled, r.deliveryParams(rd, tr))
	}
	if len(mismatched) > 0 {
		sort.Strings(mismatched)
		return "", &StepError{Credential: r.cr.Name, RotationID: r.rot.ID, Step: StepConfirm,
			Err:  fmt.Errorf("%d target(s) do not hold what was written:\n- %s", len(mismatched), strings.Join(mismatched, "\n- ")),
			Hint: "something else may be writing these targets. Check them, then `rotor resume` publishes again and re-checks."}
	}
	return fmt.Sprintf("%d target(s) verified by read-back, %d not readable", verified, unverifiable), nil
}

// check reads one target back and classifies it: verified, unverifiable
// (write-only keys) or mismatch (a key missing or different).
func (r *run) check(ctx context.Context, rd *rendered, ck target.Checker) TargetResult {
	tr := r.targetResult(rd)
	cctx, cancel := context.WithTimeout(ctx, r.cr.TargetTimeout)
	resp, err := ck.Check(cctx, target.CheckRequest{Keys: rd.t.Keys})
	cancel()
	switch {
	case err != nil && errors.Is(err, target.ErrUnreadable):
		tr.State = store.DeliveryUnverified
		return tr
	case err != nil:
		tr.State, tr.Error = store.DeliveryMismatch, "read back: "+r.scrub(err).Error()
		return tr
	}
	unreadable := map[string]bool{}
	for _, k := range resp.Unreadable {
		unreadable[k] = true
	}
	var missing, differ, hidden []string
	for _, k := range rd.t.Keys {
		got, ok := resp.Values[k]
		switch {
		case unreadable[k]:
			hidden = append(hidden, k)
		case !ok:
			missing = append(missing, k)
		case !got.Equal(rd.values[k]):
			differ = append(differ, k)
		}
	}
	switch {
	case len(missing) > 0 || len(differ) > 0:
		var parts []string
		if len(differ) > 0 {
			parts = append(parts, "holds a different value for "+strings.Join(differ, ", "))
		}
		if len(missing) > 0 {
			parts = append(parts, "is missing "+strings.Join(missing, ", "))
		}
		tr.State, tr.Error = store.DeliveryMismatch, "read back: "+strings.Join(parts, " and ")
	case len(hidden) > 0:
		tr.State, tr.Detail = store.DeliveryUnverified, "write-only: "+strings.Join(hidden, ", ")
		if len(resp.Notes) > 0 {
			tr.Detail += " (" + strings.Join(resp.Notes, "; ") + ")"
		}
	default:
		tr.State = store.DeliveryVerified
	}
	return tr
}

func (r *run) targetResult(rd *rendered) TargetResult {
	for _, tr := range r.res.Targets {
		if tr.Name == rd.t.Name {
			return tr
		}
	}
	info := rd.t.Impl.Info()
	return TargetResult{Name: rd.t.Name, Type: rd.t.Type, Destination: info.Destination, State: store.DeliveryWritten}
}

func (r *run) setTargetResult(tr TargetResult) {
	for i := range r.res.Targets {
		if r.res.Targets[i].Name == tr.Name {
			r.res.Targets[i] = tr
			return
		}
	}
	r.res.Targets = append(r.res.Targets, tr)
}
