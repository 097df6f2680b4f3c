package cli

// installTestHooks is set by testhooks_rotortest.go, which only binaries
// built with `-tags rotortest` contain (the end-to-end crash tests), so a
// production binary carries no way to crash or stall itself.
var installTestHooks func(*Factory)
