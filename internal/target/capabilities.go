package target

// Capability names one optional interface a target may implement.
type Capability int

const (
	CanReload Capability = iota + 1
	CanCheck
	CanValidate
	CanNotify
	CanCheckKeys
	CanGatekeep
	CanCheckValues
)

// Switchable is implemented by targets whose options can switch a
// capability off (vercel's redeploy: false, render's deploy: false): the
// method stays on the type, and Enabled reports false for it, so the
// engine neither calls it nor reports a reload that did not happen.
// Enabled is called without I/O, once per target.
type Switchable interface {
	Enabled(c Capability) bool
}

// Capabilities are the optional interfaces a target offers; a nil field
// means the target does not offer it (or its options switched it off).
type Capabilities struct {
	Reloader     Reloader
	Checker      Checker
	Validator    Validator
	Notifier     Notifier
	KeyChecker   KeyChecker
	ValueChecker ValueChecker
	Gatekeeper   Gatekeeper
}

// Discover is the one place optional target interfaces are looked up;
// callers use its fields instead of asserting types themselves, so a
// capability switched off by the options is off everywhere.
func Discover(t Target) Capabilities {
	sw, _ := t.(Switchable)
	on := func(c Capability) bool { return sw == nil || sw.Enabled(c) }
	var caps Capabilities
	if r, ok := t.(Reloader); ok && on(CanReload) {
		caps.Reloader = r
	}
	if c, ok := t.(Checker); ok && on(CanCheck) {
		caps.Checker = c
	}
	if v, ok := t.(Validator); ok && on(CanValidate) {
		caps.Validator = v
	}
	if n, ok := t.(Notifier); ok && on(CanNotify) {
		caps.Notifier = n
	}
	if k, ok := t.(KeyChecker); ok && on(CanCheckKeys) {
		caps.KeyChecker = k
	}
	if v, ok := t.(ValueChecker); ok && on(CanCheckValues) {
		caps.ValueChecker = v
	}
	if g, ok := t.(Gatekeeper); ok && on(CanGatekeep) {
		caps.Gatekeeper = g
	}
	return caps
}
