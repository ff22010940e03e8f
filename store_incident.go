package warden

import "time"

// IncidentReader is the incident recorder's part of ReadTx.
type IncidentReader interface {
	// Incident returns the incident with id, or ENOTFOUND.
	Incident(id string) (*Incident, error)
	// Incidents calls fn for every incident matching f, ordered by severity
	// (critical first) then newest first (number descending), streaming in
	// bounded memory. It stops at fn's first error and returns it.
	Incidents(f IncidentFilter, fn func(*Incident) error) error
	// IncidentRecords is Incidents without decoding: each incident's
	// record as stored (the JSON encoding of Incident that wrote it) with
	// its position in the listing. The JSON is fn's to keep.
	IncidentRecords(f IncidentFilter, fn func(IncidentRecord) error) error
	// CountIncidents counts the incidents matching f's Class, State and
	// Severity (f.Limit and f.After do not count). Its cost grows with the
	// number of incidents it counts (one index range), so callers use the
	// stats counters (IncidentStats) where a filter allows.
	CountIncidents(f IncidentFilter) (int64, error)
	// CountIncidentsIn counts incidents of class created in (from, to] (a
	// severity window: strictly after from, at or before to, so incidents
	// stamped after to by a clock that stepped back are not counted),
	// counting no further than limit: a window only needs to know whether
	// its threshold is reached, and the cost MUST NOT grow with the number
	// of incidents stored.
	CountIncidentsIn(class string, from, to time.Time, limit int) (int, error)
	// IncidentStats returns the counters maintained with StatsDelta.
	IncidentStats() (*IncidentStats, error)
	// Requirement returns the recovery requirement of an incident, or
	// ENOTFOUND if it has none.
	Requirement(incidentID string) (*RecoveryRequirement, error)
	// Requirements calls fn for every requirement, incomplete ones only if
	// pendingOnly, oldest first.
	Requirements(pendingOnly bool, fn func(*RecoveryRequirement) error) error
	// PendingRequirements returns up to limit incomplete requirements in
	// Requirements' order (oldest first, then by incident id), after the
	// cursor if one is given. Its cost MUST NOT grow with the number of
	// requirements before the cursor.
	PendingRequirements(after *RequirementCursor, limit int) ([]*RecoveryRequirement, error)
	// CountPendingRequirements counts the incomplete requirements; its cost
	// grows with their number.
	CountPendingRequirements() (int64, error)
	// PendingContainment calls fn for every incident whose containment was
	// started but not recorded (Incident.ContainmentPending), oldest first.
	PendingContainment(fn func(*Incident) error) error
	// IntegrityBaseline returns the integrity baseline, or ENOTFOUND.
	IntegrityBaseline() (*IntegrityBaseline, error)
	// DueDestinations returns up to limit destinations (Destination of a
	// delivery's URL) with at least one pending delivery whose
	// NextAttemptAt is not after now, the one whose oldest such delivery is
	// oldest first (ties by name). Its cost MUST NOT grow with the number
	// of deliveries per destination: a dead receiver's backlog is read
	// only when asked for by name.
	DueDestinations(now time.Time, limit int) ([]string, error)
	// DueDeliveries returns up to limit pending webhook deliveries to
	// destination whose NextAttemptAt is not after now, oldest first (by
	// NextAttemptAt, then ID).
	DueDeliveries(now time.Time, destination string, limit int) ([]*Delivery, error)
	// Deliveries returns up to f.Limit webhook deliveries (of f.IncidentID,
	// or all), newest first (by id, descending), older than f.Before if it
	// is not 0. Its cost MUST NOT grow with the number of deliveries newer
	// than f.Before.
	Deliveries(f DeliveryFilter) ([]*Delivery, error)
	// CountDeliveries counts the webhook deliveries of an incident ("" for
	// all); its cost grows with their number.
	CountDeliveries(incidentID string) (int64, error)
	// CountOpenIncidents counts the open incidents (IncidentState.IsOpen)
	// by class and severity, each count with how many of them are latched:
	// their recovery requirement is incomplete. Classes and severities
	// without an open incident are absent. Servers read it periodically
	// for their metrics, so its cost MUST NOT grow with the incidents, open
	// or not (contained alerts nobody resolves accumulate by the million):
	// the open ones are counted (warden.OpenClassKey), the latched ones
	// found through the incomplete requirements.
	CountOpenIncidents() ([]OpenIncidentCount, error)
	// CountPendingDeliveries counts the webhook deliveries still pending
	// (the outbox's backlog, due or waiting for a retry). Its cost MUST NOT
	// grow with the deliveries settled (delivered or failed).
	CountPendingDeliveries() (int64, error)
	// Counter returns the current value of a named counter (0 if unused).
	Counter(name string) (uint64, error)
	// ReportKey returns the idempotency key a principal gave a report, or
	// ENOTFOUND. It returns a stored key whatever its age: whether it is
	// still in force (ReportKeyTTL) is the rules' decision.
	ReportKey(principal, key string) (*ReportKey, error)
	// EachReportKey streams every stored report key by principal and key,
	// in bounded memory (the state replay compares them with the receipts).
	EachReportKey(fn func(*ReportKey) error) error
}

// IncidentWriter is the incident recorder's part of Tx.
type IncidentWriter interface {
	// NextCounter increments the named counter and returns its new value
	// (1 on first use). Counters never repeat, across restarts included.
	NextCounter(name string) (uint64, error)
	// CreateIncident stores a new incident and applies StatsDelta(nil, i).
	// ECONFLICT if the id or the number exists; EINVALID if i lacks an id,
	// a number, a known class, severity or state, or a parsable created_at.
	CreateIncident(i *Incident) error
	// UpdateIncident replaces a stored incident and applies
	// StatsDelta(old, i). ENOTFOUND if it does not exist; EINVALID if i is
	// invalid as for CreateIncident or changes the number, class or
	// created_at, which never change.
	UpdateIncident(i *Incident) error
	// PutRequirement creates or replaces an incident's recovery requirement,
	// ordered in Requirements by its CreatedAt. ENOTFOUND if the incident
	// does not exist.
	PutRequirement(r *RecoveryRequirement) error
	// PutIntegrityBaseline replaces the integrity baseline.
	PutIntegrityBaseline(b *IntegrityBaseline) error
	// EnqueueDelivery adds a webhook delivery to the outbox and sets its ID.
	EnqueueDelivery(d *Delivery) error
	// UpdateDelivery records a delivery attempt's outcome. ENOTFOUND if
	// the delivery does not exist.
	UpdateDelivery(d *Delivery) error
	// PutReportKey stores a report's idempotency key, replacing one the
	// principal gave before under the same key (an expired one).
	// ENOTFOUND if the incident does not exist; EINVALID if a field is
	// empty or CreatedAt is zero.
	PutReportKey(k *ReportKey) error
	// ForgetReportKeys deletes up to limit report keys created before
	// before, oldest first, and returns how many it deleted. The cost MUST
	// NOT grow with the number of keys kept.
	ForgetReportKeys(before time.Time, limit int) (int, error)
}

// OpenIncidentCount is how many open incidents one class has at one
// severity, and how many of those are latched: their recovery requirement
// is incomplete, so they can be neither acknowledged nor resolved yet.
type OpenIncidentCount struct {
	Class    string
	Severity Severity
	Open     int64
	Latched  int64
}
