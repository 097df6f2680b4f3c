package neon

import "fmt"

// DescribeApply words, for `rotor plan`, what this provider's method does
// where it differs from the engine's generic plan (a rotor-generated
// password, set as a SCRAM verifier the server never sees as plaintext,
// and put back on a failed test): the sentence for generating the
// password, the one for applying it to role, and the one for a failed
// single-strategy test. "" keeps the engine's sentence. No I/O: plan
// --offline uses it too.
func (n *Neon) DescribeApply(role string) (generate, apply, rollback string) {
	branches := "the default branch"
	if n.selection.All || len(n.selection.Names) > 0 {
		branches = "branches " + n.selection.String()
	}
	if n.method == MethodAPI {
		return "have Neon generate the password (reset_password: npg_ and 12 letters and digits); rotor stores it encrypted the moment Neon returns it",
			fmt.Sprintf("reset the password of role %s through the Neon API on %s and wait for Neon's operations; when a reset applies, Neon drops every connection to the compute endpoint, of every role, not only %s's", role, branches, role),
			"a failed test cannot be rolled back: a reset cannot set a chosen password"
	}
	return "",
		fmt.Sprintf("set it on role %s on %s with ALTER ROLE … PASSWORD in plaintext, as Neon requires (it refuses hashed passwords), in a statement of its own over TLS that verifies the server, with statement logging off where the admin role may; no connection is dropped; then log in with it to prove Neon applied it", role, branches),
		"on failure put the previous password back the same way, from rotor's stored copy"
}
