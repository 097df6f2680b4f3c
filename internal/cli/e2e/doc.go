// Package e2e tests the rotor binary from the outside, the way an operator
// and cron use it: a binary built with `-tags rotortest` (so it can be
// told to SIGKILL itself before a step, see internal/cli's
// testhooks_rotortest.go) runs against a real PostgreSQL, its own state
// store and dotenv targets.
//
// It proves what the design promises across process boundaries: a rotation
// killed at any point leaves a credential that works and that `rotor
// resume` finishes; two processes never rotate one credential at once; no
// generated password reaches output, the audit log, the state file or the
// server log; exit codes mean what they say.
//
// The default run kills at every step boundary of both strategies plus ten
// random points, on each state store (SQLite, and PostgreSQL through
// ROTOR_STATE_URL); `ROTOR_SOAK_KILLS=200 go test -run Crash
// ./internal/cli/e2e/` (`make soak`) adds as many random kills as asked,
// and ROTOR_SOAK_STORES=sqlite or =postgres runs on one store only.
package e2e
