package store

// ExportParams select what Export reads: everything, for now.
type ExportParams struct{}

// Snapshot is every row a store holds. Each table is in a fixed order, so
// that two stores holding the same rows export equal snapshots whatever
// their driver: leases by name, deliveries by rotation and target (both
// compared byte-wise, as SQLite does, never by a locale's collation), the
// other tables by id.
type Snapshot struct {
	// ID is the store's id (Info.ID).
	ID string
	// Leases holds every lease row, released ones (Holder "") included:
	// their tokens must never go back.
	Leases     []*Lease
	Versions   []*Version
	Rotations  []*Rotation
	Steps      []*Step
	Deliveries []*Delivery
	Audit      []*AuditEvent
}

// ImportParams carry the rows Import writes.
type ImportParams struct {
	Snapshot *Snapshot
}
