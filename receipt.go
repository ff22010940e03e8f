package warden

import (
	"encoding/json"
	"slices"
	"time"
)

// SchemaVersion is the receipt schema version, kept from seed 002.
const SchemaVersion = "2.0.0"

// Scrolls are views of the one receipt log; each has its own Merkle root.
const (
	ScrollIdentity  = "identity"  // principals, credentials, profiles, auth failures
	ScrollCognitive = "cognitive" // decisions and Tem invocations
	ScrollTreasury  = "treasury"  // budgets, debits, credits, denials
	ScrollIncident  = "incident"  // incidents, containment, recovery
	ScrollPolicy    = "policy"    // policy reloads and policy responses
	ScrollDrill     = "drill"     // drills and their artifacts
	ScrollSystem    = "system"    // server lifecycle: start, dev mode, drill mode, key hand-over
)

// Scrolls lists every valid scroll name.
var Scrolls = [...]string{ScrollIdentity, ScrollCognitive, ScrollTreasury, ScrollIncident, ScrollPolicy, ScrollDrill, ScrollSystem}

// ValidScroll reports whether s names a scroll.
func ValidScroll(s string) bool {
	for _, v := range Scrolls {
		if v == s {
			return true
		}
	}
	return false
}

// Receipt types: every type warden writes, grouped by the scroll it lives
// in. ReceiptScroll is the catalogue; the engine refuses to append a type
// it does not list, so this table is the whole vocabulary of the ledger.
const (
	// system
	ReceiptServerStart      = "server_start"           // a server started; records dev and drill mode
	ReceiptKeyRotation      = "ledger_key_rotation"    // the ledger handed over to a new signing key (ledger.KeyRotationType)
	ReceiptPhoenixRotateKey = "phoenix_rotate_key"     // a key rotation refused as a drill dry run
	ReceiptForensicExport   = "forensic_export"        // a forensic bundle was exported
	ReceiptGuardianAnchor   = "guardian_anchor"        // a checkpoint was signed and mirrored on request
	ReceiptTamperAccepted   = "ledger_tamper_accepted" // an operator accepted a failed startup check
	ReceiptStorageRecovered = "storage_recovered"      // writes work again after storage was unavailable; the outage and the writes it refused

	// identity
	ReceiptAuthFailure            = "auth_failure"             // a request was refused 401/403, or a tool below its profile
	ReceiptAuthFailuresSuppressed = "auth_failures_suppressed" // auth failures counted but not receipted one by one
	ReceiptDenialsSuppressed      = "denials_suppressed"       // a principal's denials counted but not receipted one by one
	ReceiptCredential             = "credential_added"
	ReceiptCredentialHuman        = "credential_human_set" // an admin changed a credential's human attribute
	ReceiptRevocation             = "credential_revoked"
	ReceiptEscalation             = "profile_escalation"
	ReceiptDeescalation           = "profile_deescalation"
	ReceiptEscalationDenied       = "escalation_denied"
	ReceiptApproval               = "approval_recorded"
	ReceiptApproverKey            = "approver_key_registered"
	ReceiptPhoenixRevoke          = "phoenix_revoke_credentials"
	ReceiptPhoenixDenied          = "phoenix_denied" // a phoenix operation refused by a rule other than authority (e.g. the last approver)

	// cognitive
	ReceiptDecision      = "cognitive_decision"
	ReceiptTemInvocation = "tem_invocation"

	// treasury
	ReceiptBudgetCreated = "treasury_budget_created"
	ReceiptDebit         = "treasury_debit"
	ReceiptCredit        = "treasury_credit"
	ReceiptTreasuryDeny  = "treasury_denial"

	// incident
	ReceiptIncidentReported     = "incident_reported"
	ReceiptSeverityRaised       = "incident_severity_raised"
	ReceiptRecoveryRequired     = "recovery_required"
	ReceiptContainment          = "incident_containment"
	ReceiptIncidentAcknowledged = "incident_acknowledged"
	ReceiptIncidentResolved     = "incident_resolved"
	ReceiptIncidentDenied       = "incident_denied"
	ReceiptRecoveryAcknowledged = "recovery_acknowledged"
	ReceiptRecoveryReattested   = "recovery_reattested"
	ReceiptRecoveryDenied       = "recovery_denied"
	ReceiptWebhookFailed        = "webhook_delivery_failed"
	ReceiptIntegrityBaseline    = "integrity_baseline_recorded"
	ReceiptPhoenixLockStart     = "phoenix_lockdown_started" // precedes the lockdown's actions
	ReceiptPhoenixLock          = "phoenix_lockdown"

	// policy
	ReceiptPolicyLoaded       = "policy_loaded"
	ReceiptPolicyReloadFailed = "policy_reload_failed"
)

var receiptScrolls = map[string]string{
	ReceiptServerStart: ScrollSystem, ReceiptKeyRotation: ScrollSystem, ReceiptPhoenixRotateKey: ScrollSystem,
	ReceiptForensicExport: ScrollSystem, ReceiptGuardianAnchor: ScrollSystem, ReceiptTamperAccepted: ScrollSystem, ReceiptStorageRecovered: ScrollSystem,

	ReceiptAuthFailure: ScrollIdentity, ReceiptAuthFailuresSuppressed: ScrollIdentity, ReceiptDenialsSuppressed: ScrollIdentity, ReceiptCredential: ScrollIdentity,
	ReceiptCredentialHuman: ScrollIdentity, ReceiptRevocation: ScrollIdentity, ReceiptEscalation: ScrollIdentity, ReceiptDeescalation: ScrollIdentity,
	ReceiptEscalationDenied: ScrollIdentity, ReceiptApproval: ScrollIdentity, ReceiptApproverKey: ScrollIdentity,
	ReceiptPhoenixRevoke: ScrollIdentity, ReceiptPhoenixDenied: ScrollIdentity,

	ReceiptDecision: ScrollCognitive, ReceiptTemInvocation: ScrollCognitive,

	ReceiptBudgetCreated: ScrollTreasury, ReceiptDebit: ScrollTreasury, ReceiptCredit: ScrollTreasury, ReceiptTreasuryDeny: ScrollTreasury,

	ReceiptIncidentReported: ScrollIncident, ReceiptSeverityRaised: ScrollIncident, ReceiptRecoveryRequired: ScrollIncident,
	ReceiptContainment: ScrollIncident, ReceiptIncidentAcknowledged: ScrollIncident, ReceiptIncidentResolved: ScrollIncident,
	ReceiptIncidentDenied: ScrollIncident, ReceiptRecoveryAcknowledged: ScrollIncident, ReceiptRecoveryReattested: ScrollIncident,
	ReceiptRecoveryDenied: ScrollIncident, ReceiptWebhookFailed: ScrollIncident, ReceiptIntegrityBaseline: ScrollIncident,
	ReceiptPhoenixLockStart: ScrollIncident, ReceiptPhoenixLock: ScrollIncident,

	ReceiptPolicyLoaded: ScrollPolicy, ReceiptPolicyReloadFailed: ScrollPolicy,
}

// ReceiptScroll returns the scroll a receipt type is written to, and false
// for a type warden never writes.
func ReceiptScroll(typ string) (string, bool) {
	s, ok := receiptScrolls[typ]
	return s, ok
}

// ReceiptTypes lists every receipt type warden writes, sorted.
func ReceiptTypes() []string {
	out := make([]string, 0, len(receiptScrolls))
	for t := range receiptScrolls {
		out = append(out, t)
	}
	slices.Sort(out)
	return out
}

// Receipt is one entry of the append-only ledger. The first seven fields are
// the seed's; Seq and LeafHash place it in the Merkle log.
//
// RootHash is "blake3:" + hex(BLAKE3(JCS(Body))). LeafHash is the RFC 6962
// leaf hash (SHA-256 of 0x00 ‖ entry) where entry is the RFC 8785 canonical
// JSON of every other field including Seq (see package ledger).
type Receipt struct {
	Seq           uint64          `json:"seq"`
	SchemaVersion string          `json:"schema_version"`
	Type          string          `json:"type"`
	Timestamp     string          `json:"timestamp"`
	Scroll        string          `json:"scroll"`
	Tags          []string        `json:"tags"`
	RootHash      string          `json:"root_hash"`
	Body          json.RawMessage `json:"body"`
	LeafHash      string          `json:"leaf_hash"` // hex
}

// Draft is what a rule hands the store to append: everything but the fields
// the ledger computes (Seq, RootHash, LeafHash, SchemaVersion).
type Draft struct {
	Type   string
	Scroll string
	Tags   []string
	Time   time.Time
	// Body is any JSON-serialisable value; it is stored in canonical form.
	Body any
}

// ReceiptFilter selects receipts for listing. Zero fields do not filter.
type ReceiptFilter struct {
	Scroll string
	Type   string
	Tag    string
	// After returns only receipts with Seq > *After.
	After *uint64
	// Before returns only receipts with Seq < *Before: with Descending, the
	// cursor that pages backwards from the newest (Before = the last Seq of
	// the previous page).
	Before *uint64
	// Limit caps the page; the store applies DefaultPageSize when 0.
	Limit int
	// Descending lists newest first.
	Descending bool
}

// Page sizes of every listing: receipts, incidents, recovery requirements,
// webhook deliveries and credentials.
const (
	DefaultPageSize = 100
	MaxPageSize     = 1000
)

// Checkpoint is a signed statement of the log's size and root, in the C2SP
// tlog-checkpoint signed-note format. Note is the complete signed note text.
type Checkpoint struct {
	Size      uint64    `json:"size"`
	RootHash  []byte    `json:"-"`
	Note      string    `json:"note"`
	CreatedAt time.Time `json:"created_at"`
}
