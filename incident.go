package warden

import (
	"encoding/json"
	"net/url"
	"slices"
	"strings"
	"time"
)

// Severity of an incident. Severities only rise.
type Severity string

// Severities, lowest first.
const (
	SeverityLow      Severity = "low"
	SeverityMedium   Severity = "medium"
	SeverityHigh     Severity = "high"
	SeverityCritical Severity = "critical"
)

// Severities lists every severity, lowest first.
var Severities = []Severity{SeverityLow, SeverityMedium, SeverityHigh, SeverityCritical}

// Rank orders severities: low 1 … critical 4; 0 for an unknown value.
func (s Severity) Rank() int { return slices.Index(Severities, s) + 1 }

// ParseSeverity returns the severity named s, or EINVALID.
func ParseSeverity(s string) (Severity, error) {
	if Severity(s).Rank() == 0 {
		return "", Errorf(EINVALID, "Unknown severity %q; valid severities are low, medium, high, critical.", s)
	}
	return Severity(s), nil
}

// IncidentState is where an incident is in its life.
type IncidentState string

// Incident states. Open, contained and containment_failed count as open.
const (
	StateOpen              IncidentState = "open"
	StateContained         IncidentState = "contained"
	StateContainmentFailed IncidentState = "containment_failed"
	StateAcknowledged      IncidentState = "acknowledged"
	StateResolved          IncidentState = "resolved"
)

// IncidentStates lists every state.
var IncidentStates = []IncidentState{StateOpen, StateContained, StateContainmentFailed, StateAcknowledged, StateResolved}

// ParseIncidentState returns the state named s, or EINVALID.
func ParseIncidentState(s string) (IncidentState, error) {
	if !slices.Contains(IncidentStates, IncidentState(s)) {
		return "", Errorf(EINVALID, "Unknown incident state %q; valid states are open, contained, containment_failed, acknowledged, resolved.", s)
	}
	return IncidentState(s), nil
}

// IsOpen reports whether the state counts as open (degraded).
func (s IncidentState) IsOpen() bool {
	return s == StateOpen || s == StateContained || s == StateContainmentFailed
}

// Incident classes of seed 001.
const (
	ClassAttestationFailure      = "attestation_failure"
	ClassIntegrityViolation      = "integrity_violation"
	ClassUnauthorizedAccess      = "unauthorized_access"
	ClassManifestMismatch        = "manifest_mismatch"
	ClassPolicyBypassAttempt     = "policy_bypass_attempt"
	ClassPromptInjection         = "prompt_injection"
	ClassToolCallBurst           = "tool_call_burst"
	ClassModelBehaviorAnomaly    = "model_behavior_anomaly"
	ClassForbiddenAirlockRequest = "forbidden_airlock_request"
)

// IncidentClasses lists the nine classes in the runbook's order.
var IncidentClasses = []string{
	ClassAttestationFailure, ClassIntegrityViolation, ClassUnauthorizedAccess, ClassManifestMismatch,
	ClassPolicyBypassAttempt, ClassPromptInjection, ClassToolCallBurst, ClassModelBehaviorAnomaly,
	ClassForbiddenAirlockRequest,
}

// ValidateClass returns EINVALID unless class is one of the nine.
func ValidateClass(class string) error {
	if !slices.Contains(IncidentClasses, class) {
		return Errorf(EINVALID, "Unknown incident class %q; valid classes are %s.", class, joinStrings(IncidentClasses))
	}
	return nil
}

// LatchedClasses stay contained until the recovery ceremony completes.
var LatchedClasses = []string{ClassAttestationFailure, ClassIntegrityViolation, ClassUnauthorizedAccess, ClassManifestMismatch}

// IsLatched reports whether class latches.
func IsLatched(class string) bool { return slices.Contains(LatchedClasses, class) }

// Containment actions.
const (
	ActionFreezeAgent      = "freeze_agent"
	ActionDisableAirlock   = "disable_airlock"
	ActionForceVaultRelock = "force_vault_relock"
	ActionQuarantineModel  = "quarantine_model"
	ActionLogAlert         = "log_alert"
)

// ContainmentActions lists every action.
var ContainmentActions = []string{ActionFreezeAgent, ActionDisableAirlock, ActionForceVaultRelock, ActionQuarantineModel, ActionLogAlert}

// ValidateAction returns EINVALID unless a is a containment action.
func ValidateAction(a string) error {
	if !slices.Contains(ContainmentActions, a) {
		return Errorf(EINVALID, "Unknown containment action %q; valid actions are %s.", a, joinStrings(ContainmentActions))
	}
	return nil
}

// ContainmentResult is the outcome of one containment action.
type ContainmentResult struct {
	Action      string `json:"action"`
	Success     bool   `json:"success"`
	Error       string `json:"error"`
	CompletedAt string `json:"completed_at"`
	// DryRun is true when drill mode recorded the action without running it.
	DryRun   bool `json:"dry_run,omitempty"`
	Attempts int  `json:"attempts,omitempty"`
}

// Incident is a recorded security event, in the reference recorder's shape.
// Stores keep it as its JSON encoding, and listings send those records as
// they are (IncidentRecord): a field added after the first release MUST be
// omitempty (or every stored record migrated), else old records lack it.
type Incident struct {
	ID                 string              `json:"id"`
	CreatedAt          string              `json:"created_at"`
	Class              string              `json:"class"`
	Severity           Severity            `json:"severity"`
	State              IncidentState       `json:"state"`
	Source             string              `json:"source"`
	Description        string              `json:"description"`
	Evidence           map[string]string   `json:"evidence"`
	ContainmentActions []string            `json:"containment_actions"`
	ContainmentResults []ContainmentResult `json:"containment_results"`
	ResolvedAt         string              `json:"resolved_at"`
	// AckedAt and AckedBy copy the recovery acknowledgment (ceremony step
	// 6: when, and the operator named) onto the record, as the runbook
	// shows; absent until then and for incidents without a requirement.
	// Fields added to Incident MUST be omitempty: a forensic verifier
	// compares each record with its latest receipted snapshot, which an
	// earlier version may have written without the field.
	AckedAt string `json:"acked_at,omitempty"`
	AckedBy string `json:"acked_by,omitempty"`
	// Warden additions.
	Number     uint64 `json:"number"` // the id's counter, unique forever
	ReportedBy string `json:"reported_by"`
	// AcknowledgedAt/By record the operator's acknowledge transition (state
	// acknowledged), which is not the recovery acknowledgment above.
	AcknowledgedAt string `json:"acknowledged_at,omitempty"`
	AcknowledgedBy string `json:"acknowledged_by,omitempty"`
	ResolvedBy     string `json:"resolved_by,omitempty"`
	// ContainmentPending is true between the report and the recording of
	// the containment results; a server restarting finds and finishes it.
	ContainmentPending bool `json:"containment_pending,omitempty"`
	// EscalatedFrom is the severity before a window raised it.
	EscalatedFrom Severity `json:"escalated_from,omitempty"`
	// AutoContained is true when the class's policy auto-contains and the
	// containment actions were triggered (the stats' contained_count).
	AutoContained bool `json:"auto_contained"`
	Drill         bool `json:"drill,omitempty"`
}

// CreatedTime parses CreatedAt.
func (i *Incident) CreatedTime() time.Time {
	t, _ := time.Parse(TimeFormat, i.CreatedAt)
	return t
}

// StatsDelta returns how the incident counters change when an incident goes
// from old (nil: newly created) to new. Stores apply it in the transaction
// that writes the incident, so /health and /stats never scan.
// Keys: "total", "open", "contained", "resolved", "class:<c>",
// "open_severity:<s>", and OpenClassKey's (open by class and severity, for
// the metrics: counted, never scanned).
func StatsDelta(old, new *Incident) map[string]int64 {
	d := map[string]int64{}
	add := func(i *Incident, sign int64) {
		if i == nil {
			return
		}
		d["total"] += sign
		d["class:"+i.Class] += sign
		if i.State.IsOpen() {
			d["open"] += sign
			d["open_severity:"+string(i.Severity)] += sign
			d[OpenClassKey(i.Class, i.Severity)] += sign
		}
		if i.State == StateResolved {
			d["resolved"] += sign
		}
		if i.AutoContained {
			d["contained"] += sign
		}
	}
	add(old, -1)
	add(new, +1)
	for k, v := range d {
		if v == 0 {
			delete(d, k)
		}
	}
	return d
}

// OpenClassKeyPrefix begins the StatsDelta keys that count open incidents
// by class and severity.
const OpenClassKeyPrefix = "open_class:"

// OpenClassKey is the StatsDelta key counting the open incidents of class
// at severity: "open_class:<class>:<severity>" (a class has no ':').
func OpenClassKey(class string, sev Severity) string {
	return OpenClassKeyPrefix + class + ":" + string(sev)
}

// ParseOpenClassKey splits an OpenClassKey; ok is false for another key.
func ParseOpenClassKey(k string) (class string, sev Severity, ok bool) {
	rest, ok := strings.CutPrefix(k, OpenClassKeyPrefix)
	if !ok {
		return "", "", false
	}
	i := strings.LastIndexByte(rest, ':')
	if i < 0 {
		return "", "", false
	}
	return rest[:i], Severity(rest[i+1:]), true
}

// StatsFromCounters builds IncidentStats from StatsDelta counters.
func StatsFromCounters(c map[string]int64) *IncidentStats {
	s := &IncidentStats{ByClass: map[string]int64{}, OpenBySeverity: map[string]int64{}}
	for k, v := range c {
		switch {
		case k == "total":
			s.TotalIncidents = v
		case k == "open":
			s.OpenIncidents = v
		case k == "contained":
			s.ContainedCount = v
		case k == "resolved":
			s.ResolvedCount = v
		case len(k) > 6 && k[:6] == "class:":
			if v != 0 {
				s.ByClass[k[6:]] = v
			}
		case len(k) > 14 && k[:14] == "open_severity:":
			if v != 0 {
				s.OpenBySeverity[k[14:]] = v
			}
		}
	}
	return s
}

// IncidentFilter selects incidents. Zero fields do not filter.
type IncidentFilter struct {
	Class    string
	State    IncidentState
	Severity Severity
	// Limit caps the answer (0: no cap).
	Limit int
	// After continues a listing after the incident with this cursor
	// (listing order: severity rank descending, then number descending).
	After *IncidentCursor
}

// IncidentCursor is a position in the incident listing order.
type IncidentCursor struct {
	Rank   int
	Number uint64
}

// IncidentRecord is an incident as stored, undecoded: what a listing sends
// as it is (see Incident: every field added after the first release is
// omitempty, so an old record reads as a current one).
type IncidentRecord struct {
	Cursor IncidentCursor // its position in the listing order
	JSON   json.RawMessage
}

// RequirementCursor is a position in the order of Requirements: after the
// requirement of IncidentID created at CreatedNs (Unix nanoseconds).
type RequirementCursor struct {
	CreatedNs  int64
	IncidentID string
}

// CursorOf returns the position of r in the order of Requirements.
// EINVALID if its CreatedAt does not parse.
func (r *RecoveryRequirement) CursorOf() (*RequirementCursor, error) {
	t, err := time.Parse(TimeFormat, r.CreatedAt)
	if err != nil {
		return nil, Errorf(EINVALID, "Recovery requirement created_at %q is not RFC 3339.", r.CreatedAt)
	}
	return &RequirementCursor{CreatedNs: t.UnixNano(), IncidentID: r.IncidentID}, nil
}

// RecoveryRequirement is what must happen before a latched or critical
// incident may leave containment.
type RecoveryRequirement struct {
	IncidentID       string `json:"incident_id"`
	RequireAck       bool   `json:"require_ack"`
	RequireReattest  bool   `json:"require_reattest"`
	AckedAt          string `json:"acked_at"`
	AckedBy          string `json:"acked_by"`
	ReAttestedAt     string `json:"re_attested_at"`
	RecoveryComplete bool   `json:"recovery_complete"`
	// Warden additions: the authenticated principals behind each step.
	AckedByPrincipal      string `json:"acked_by_principal,omitempty"`
	ReAttestedByPrincipal string `json:"re_attested_by,omitempty"`
	CreatedAt             string `json:"created_at"`
}

// Missing returns the steps still missing, in ceremony order.
func (r *RecoveryRequirement) Missing() []string {
	var m []string
	if r.RequireAck && r.AckedAt == "" {
		m = append(m, "acknowledgment (warden recovery ack, or POST /api/v1/recovery/ack)")
	}
	if r.RequireReattest && r.ReAttestedAt == "" {
		m = append(m, "re-attestation (warden recovery reattest, or POST /api/v1/recovery/reattest)")
	}
	return m
}

// Settle recomputes RecoveryComplete.
func (r *RecoveryRequirement) Settle() { r.RecoveryComplete = len(r.Missing()) == 0 }

// NeedsRequirement reports whether an incident of class at severity must
// have a recovery requirement: latched classes and critical severity.
func NeedsRequirement(class string, sev Severity) bool {
	return IsLatched(class) || sev == SeverityCritical
}

// NeedsReattest reports whether recovery needs re-attestation: critical
// severity, or the attestation_failure or integrity_violation class.
func NeedsReattest(class string, sev Severity) bool {
	return sev == SeverityCritical || class == ClassAttestationFailure || class == ClassIntegrityViolation
}

// IncidentStats are the counters behind /health and /api/v1/stats.
type IncidentStats struct {
	TotalIncidents int64            `json:"total_incidents"`
	OpenIncidents  int64            `json:"open_incidents"`
	ContainedCount int64            `json:"contained_count"`
	ResolvedCount  int64            `json:"resolved_count"`
	ByClass        map[string]int64 `json:"by_class"`
	OpenBySeverity map[string]int64 `json:"open_by_severity"`
}

// Health is the /health answer: the seed's fields plus the log size and
// the server's modes. Status is "ok", or "degraded" while Degraded lists
// why warden cannot do all it should.
type Health struct {
	Status         string        `json:"status"`
	OpenIncidents  int64         `json:"open_incidents"`
	TotalIncidents int64         `json:"total_incidents"`
	Receipts       uint64        `json:"receipts"`
	Dev            bool          `json:"dev,omitempty"`
	Drill          bool          `json:"drill_mode,omitempty"`
	Degraded       []Degradation `json:"degraded,omitempty"`
	// Ledger is the startup verification of the log and state tables
	// (absent where none ran).
	Ledger *LedgerCheck `json:"ledger,omitempty"`
}

// Degradation is a condition under which warden still answers but cannot
// do all it should; /health names it (503 "degraded") until it clears.
type Degradation struct {
	// Cause is stable (CauseStorageUnavailable); Message is the sentence
	// the refused requests got.
	Cause   string `json:"cause"`
	Message string `json:"message"`
	// Since is when it started (RFC 3339); FailedWrites counts the writes
	// refused since then (storage_unavailable; 0 for ledger_tampered,
	// which refuses every write until an operator decides).
	Since        string `json:"since"`
	FailedWrites uint64 `json:"failed_writes"`
}

// Causes of a degradation.
const (
	// CauseStorageUnavailable: writes fail with EUNAVAILABLE (storage is
	// full); reads still work.
	CauseStorageUnavailable = "storage_unavailable"
	// CauseLedgerTampered: the startup check found the log or the state
	// tables tampered; writes are refused until an operator decides.
	CauseLedgerTampered = "ledger_tampered"
)

// ReportKey binds the Idempotency-Key a principal sent with a report to the
// incident that report created, so a retry returns that incident instead of
// creating a second one. It is a projection of the incident_reported
// receipt, whose detail carries the key and the request hash.
type ReportKey struct {
	Principal string `json:"principal"`
	Key       string `json:"key"`
	// RequestHash is "sha256:" + hex of the report's canonical JSON: a
	// retry must send the same report.
	RequestHash string    `json:"request_hash"`
	IncidentID  string    `json:"incident_id"`
	CreatedAt   time.Time `json:"created_at"`
}

// Report idempotency keys: how long one is remembered, and its size.
const (
	ReportKeyTTL    = 24 * time.Hour
	MaxReportKeyLen = 255
)

// SeverityWindow escalates a class's severity when Threshold incidents of
// it are reported within Window.
type SeverityWindow struct {
	Class     string
	Threshold int
	Window    time.Duration
	Raise     Severity
}

// SeverityWindows are the runbook's escalation rules.
var SeverityWindows = []SeverityWindow{
	{ClassPromptInjection, 3, 5 * time.Minute, SeverityCritical},
	{ClassToolCallBurst, 5, time.Minute, SeverityHigh},
	{ClassPolicyBypassAttempt, 2, 10 * time.Minute, SeverityCritical},
	{ClassForbiddenAirlockRequest, 5, 5 * time.Minute, SeverityHigh},
	{ClassModelBehaviorAnomaly, 3, 15 * time.Minute, SeverityCritical},
}

func joinStrings(s []string) string {
	out := ""
	for i, v := range s {
		if i > 0 {
			out += ", "
		}
		out += v
	}
	return out
}

// IntegrityBaseline is the recorded state of the files the integrity
// monitor watches. Roots are the paths given; files under a root directory
// that are not in Files are "added" when scanned.
type IntegrityBaseline struct {
	Roots     []string       `json:"roots"`
	Files     []BaselineFile `json:"files"`
	CreatedAt string         `json:"created_at"`
	CreatedBy string         `json:"created_by"`
}

// BaselineFile is one file's recorded hash.
type BaselineFile struct {
	Path   string `json:"path"`
	SHA256 string `json:"sha256"`
	Size   int64  `json:"size"`
}

// Webhook events.
const (
	EventContainment = "containment"
	EventEscalation  = "escalation"
	EventRecovery    = "recovery"
)

// Delivery is one webhook delivery in the outbox. It is written in the
// transaction of the state change it reports, and sent after commit.
type Delivery struct {
	ID            uint64          `json:"id"`
	Event         string          `json:"event"`
	URL           string          `json:"url"`
	Payload       json.RawMessage `json:"payload"`
	IncidentID    string          `json:"incident_id"`
	Status        string          `json:"status"` // pending, delivered, failed
	Attempts      int             `json:"attempts"`
	NextAttemptAt time.Time       `json:"next_attempt_at"`
	LastError     string          `json:"last_error"`
	LastStatus    int             `json:"last_status"`
	CreatedAt     time.Time       `json:"created_at"`
	DeliveredAt   time.Time       `json:"delivered_at"`
}

// DeliveryFilter selects webhook deliveries for listing, newest first.
type DeliveryFilter struct {
	IncidentID string // "" for every incident's
	Before     uint64 // only ids below it; 0 for from the newest
	Limit      int
}

// Delivery statuses.
const (
	DeliveryPending   = "pending"
	DeliveryDelivered = "delivered"
	DeliveryFailed    = "failed"
)

// Destination names the receiver a delivery to rawURL goes to: the URL
// without its credentials, query or fragment, scheme and host lowercased;
// rawURL itself if it has no host. Deliveries to one destination share a
// lane in the sender and back off together when it fails. It is the path,
// not only the host: receivers on one host (a chat service's webhooks)
// fail, and rate-limit, one URL at a time, so one URL's failures must not
// hold back another's.
func Destination(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil || u.Host == "" {
		return rawURL
	}
	return strings.ToLower(u.Scheme) + "://" + strings.ToLower(u.Host) + u.EscapedPath()
}

// WindowFor returns the severity window of class, or nil.
func WindowFor(class string) *SeverityWindow {
	for i := range SeverityWindows {
		if SeverityWindows[i].Class == class {
			return &SeverityWindows[i]
		}
	}
	return nil
}

// EscalateSeverity applies class's severity window: recent is how many
// incidents of class were reported in the window before this one (the
// window is the half-open interval (now-Window, now]). When recent+1
// reaches the threshold and the window's severity is higher, it returns
// that severity and the window; otherwise sev unchanged and nil. Severity
// only rises.
func EscalateSeverity(class string, sev Severity, recent int) (Severity, *SeverityWindow) {
	w := WindowFor(class)
	if w == nil || recent+1 < w.Threshold || w.Raise.Rank() <= sev.Rank() {
		return sev, nil
	}
	return w.Raise, w
}
