package engine

import (
	"context"

	"github.com/rotorhq/rotor/internal/secret"
)

// Two pieces of a rotation's work need nothing from the steps before
// them, and run while those steps wait for the store, the disk or the
// server, instead of after them: drawing the new password (its SCRAM
// verifier is 4,096 rounds of HMAC-SHA-256), and the test's connection
// (TCP, TLS and the server's new backend, about a third of a login).
// Neither changes what the journal holds or when: the password reaches
// the store in prepare's write as before, and the login names the role
// only after apply has set the password.

// freshPassword is a new password and its verifier, drawn on a goroutine
// of its own (drawPassword).
type freshPassword struct {
	done    chan struct{}
	pw, ver secret.String
	err     error
}

// drawPassword starts drawing a new password for cr, for prepare. A run
// that never gets there (it fails first, or finds drift) leaves it to the
// collector; its only cost is the CPU.
func (e *Engine) drawPassword(cr *Credential) *freshPassword {
	f := &freshPassword{done: make(chan struct{})}
	go func() {
		defer close(f.done)
		if f.pw, f.err = e.generatePassword(cr); f.err == nil {
			f.ver, f.err = secret.SCRAMVerifier(e.Rand, f.pw)
		}
	}()
	return f
}

// wait returns the password and its verifier once drawn.
func (f *freshPassword) wait() (pw, ver secret.String, err error) {
	<-f.done
	return f.pw, f.ver, f.err
}

// earlyLogin is the test step's first login on the direct URL, connected
// while apply sets the password (connectEarly) and held back, before it
// names the role, until the test lets it go (loginEarly).
type earlyLogin struct {
	url    secret.String
	ready  chan struct{}
	done   chan struct{}
	err    error
	cancel context.CancelFunc
}

// connectEarly starts the early login, when the engine can dial in two
// halves (Engine.DialAfter). Its time limit is the test's own, counted
// from now: a login still waiting when it runs out is tried again from
// the start by the test.
func (r *run) connectEarly(ctx context.Context) {
	if r.e.DialAfter == nil || r.early != nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, r.cr.TestTimeout)
	l := &earlyLogin{url: r.vars().DirectURL, ready: make(chan struct{}), done: make(chan struct{}), cancel: cancel}
	go func() {
		defer close(l.done)
		l.err = r.e.DialAfter(ctx, l.url, l.ready)
	}()
	r.early = l
}

// loginEarly lets the early login go on, if it was connected for url,
// and reports whether it logged in. Any failure — the connection dropped
// while it waited (an API reset that restarts the server does that), the
// time ran out, or the server refused — returns false, and the test logs
// in again from the start, exactly as without it: only that login's
// outcome counts.
func (r *run) loginEarly(url secret.String) bool {
	l := r.early
	if l == nil {
		return false
	}
	r.early = nil
	if !l.url.Equal(url) {
		l.cancel()
		<-l.done
		return false
	}
	close(l.ready)
	<-l.done
	l.cancel()
	return l.err == nil
}

// dropEarly closes the early login unused: apply failed, the backend
// chose another password, or the run ended before the test.
func (r *run) dropEarly() {
	if l := r.early; l != nil {
		r.early = nil
		l.cancel()
		<-l.done
	}
}
