package engine

// LeaseName is the name of a credential's lease in the store: while a
// process works on the credential it holds this lease and renews it, so
// a lease that lapsed says its holder stopped (`rotor serve` uses that to
// rescue the job of a replica that died).
func LeaseName(credential string) string { return leaseName(credential) }
