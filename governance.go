package warden

import (
	"fmt"
	"slices"
	"time"
)

// Profile is a principal's authority level on the seed 002 ladder.
type Profile string

// The ladder, lowest first. Every principal starts at observer.
const (
	ProfileObserver  Profile = "observer"
	ProfileOperator  Profile = "operator"
	ProfileGuardian  Profile = "guardian"
	ProfilePhoenix   Profile = "phoenix"
	ProfileSovereign Profile = "sovereign"
)

// Profiles lists the ladder, lowest first.
var Profiles = []Profile{ProfileObserver, ProfileOperator, ProfileGuardian, ProfilePhoenix, ProfileSovereign}

// Rank orders profiles: observer 1 … sovereign 5; 0 for an unknown value.
func (p Profile) Rank() int { return slices.Index(Profiles, p) + 1 }

// ParseProfile returns the profile named s, or EINVALID.
func ParseProfile(s string) (Profile, error) {
	if Profile(s).Rank() == 0 {
		return "", Errorf(EINVALID, "Unknown profile %q; the ladder is observer, operator, guardian, phoenix, sovereign.", s)
	}
	return Profile(s), nil
}

// EscalationType says why authority rises (seed 002 values).
type EscalationType string

// Escalation types.
const (
	EscalationThreatDetected    EscalationType = "threat_detected"
	EscalationOperatorRequest   EscalationType = "operator_request"
	EscalationCrisisDeclared    EscalationType = "crisis_declared"
	EscalationQuorumApproved    EscalationType = "quorum_approved"
	EscalationSovereignOverride EscalationType = "sovereign_override"
)

// EscalationTypes lists every escalation type.
var EscalationTypes = []EscalationType{EscalationThreatDetected, EscalationOperatorRequest, EscalationCrisisDeclared, EscalationQuorumApproved, EscalationSovereignOverride}

// ParseEscalationType returns the type named s, or EINVALID.
func ParseEscalationType(s string) (EscalationType, error) {
	if !slices.Contains(EscalationTypes, EscalationType(s)) {
		return "", Errorf(EINVALID, "Unknown escalation_type %q; valid: threat_detected, operator_request, crisis_declared, quorum_approved, sovereign_override.", s)
	}
	return EscalationType(s), nil
}

// DeescalationType says why authority falls (seed 002 values).
type DeescalationType string

// De-escalation types.
const (
	DeescalationTimeoutExpired  DeescalationType = "timeout_expired"
	DeescalationThreatResolved  DeescalationType = "threat_resolved"
	DeescalationOperatorRelease DeescalationType = "operator_release"
	DeescalationCrisisConcluded DeescalationType = "crisis_concluded"
	DeescalationSovereignRevoke DeescalationType = "sovereign_revoke"
)

// DeescalationTypes lists every de-escalation type.
var DeescalationTypes = []DeescalationType{DeescalationTimeoutExpired, DeescalationThreatResolved, DeescalationOperatorRelease, DeescalationCrisisConcluded, DeescalationSovereignRevoke}

// ParseDeescalationType returns the type named s, or EINVALID.
func ParseDeescalationType(s string) (DeescalationType, error) {
	if !slices.Contains(DeescalationTypes, DeescalationType(s)) {
		return "", Errorf(EINVALID, "Unknown deescalation_type %q; valid: timeout_expired, threat_resolved, operator_release, crisis_concluded, sovereign_revoke.", s)
	}
	return DeescalationType(s), nil
}

// ToBaseline reports whether a de-escalation of this type returns the
// subject all the way to observer (one receipted hop at a time) rather than
// undoing one hop: a concluded crisis or a sovereign revocation ends every
// elevation.
func (d DeescalationType) ToBaseline() bool {
	return d == DeescalationCrisisConcluded || d == DeescalationSovereignRevoke
}

// HopPolicy is the policy of one ladder hop (seed 002's ESCALATION_POLICIES).
type HopPolicy struct {
	From             Profile `json:"from" yaml:"from"`
	To               Profile `json:"to" yaml:"to"`
	Reversible       bool    `json:"reversible" yaml:"reversible"`
	AutoDeescalate   bool    `json:"auto_deescalate" yaml:"auto_deescalate"`
	DefaultTTL       int     `json:"default_ttl_seconds" yaml:"default_ttl_seconds"` // 0: no TTL
	MaxTTL           int     `json:"max_ttl_seconds" yaml:"max_ttl_seconds"`         // caller's ttl_seconds is capped here
	RequiresReason   bool    `json:"requires_reason" yaml:"requires_reason"`
	RequiresApproval bool    `json:"requires_approval" yaml:"requires_approval"`
	RequiresHuman    bool    `json:"requires_human" yaml:"requires_human"`
	// Quorum is how many distinct registered approvers must approve (N of
	// the M approvers); 0 or 1 means one.
	Quorum int `json:"quorum" yaml:"quorum"`
	// AutoOnThreatConfidence is escalate_on_threat's confidence threshold
	// for this hop (0: always for observer → operator).
	AutoOnThreatConfidence float64 `json:"auto_on_threat_confidence" yaml:"auto_on_threat_confidence"`
}

// Ladder is the configured set of hops; only adjacent hops exist.
type Ladder struct {
	Hops []HopPolicy `json:"hops" yaml:"hops"`
}

// DefaultLadder returns seed 002's policies: TTLs 3600/7200/1800 s, approval
// for phoenix and sovereign, phoenix → sovereign irreversible and human-only.
func DefaultLadder() *Ladder {
	return &Ladder{Hops: []HopPolicy{
		{From: ProfileObserver, To: ProfileOperator, Reversible: true, AutoDeescalate: true, DefaultTTL: 3600, MaxTTL: 3600, RequiresReason: true},
		{From: ProfileOperator, To: ProfileGuardian, Reversible: true, AutoDeescalate: true, DefaultTTL: 7200, MaxTTL: 7200, RequiresReason: true, AutoOnThreatConfidence: 0.8},
		{From: ProfileGuardian, To: ProfilePhoenix, Reversible: true, AutoDeescalate: true, DefaultTTL: 1800, MaxTTL: 1800, RequiresReason: true, RequiresApproval: true, Quorum: 1, AutoOnThreatConfidence: 0.95},
		{From: ProfilePhoenix, To: ProfileSovereign, Reversible: false, AutoDeescalate: false, RequiresReason: true, RequiresApproval: true, RequiresHuman: true, Quorum: 1},
	}}
}

// Hop returns the policy of from → to, or nil when there is no such path.
func (l *Ladder) Hop(from, to Profile) *HopPolicy {
	for i := range l.Hops {
		if l.Hops[i].From == from && l.Hops[i].To == to {
			return &l.Hops[i]
		}
	}
	return nil
}

// Validate checks that the ladder only has adjacent upward hops.
func (l *Ladder) Validate() error {
	for i, h := range l.Hops {
		if h.From.Rank() == 0 || h.To.Rank() != h.From.Rank()+1 {
			return Errorf(EINVALID, "Ladder hop %d (%s → %s) is not an adjacent upward hop.", i, h.From, h.To)
		}
		if h.AutoDeescalate && !h.Reversible {
			return Errorf(EINVALID, "Ladder hop %s → %s auto-de-escalates but is not reversible; a TTL cannot undo an irreversible hop.", h.From, h.To)
		}
		if h.DefaultTTL < 0 || h.MaxTTL < 0 || (h.MaxTTL > 0 && h.DefaultTTL > h.MaxTTL) {
			return Errorf(EINVALID, "Ladder hop %s → %s has invalid TTLs.", h.From, h.To)
		}
		if h.To == ProfileSovereign && (!h.RequiresHuman || !h.RequiresApproval) {
			return Errorf(EINVALID, "Ladder hop %s → sovereign must require a human and an approval (requires_human, requires_approval): sovereign is human-only, whatever the configuration.", h.From)
		}
	}
	return nil
}

// TTL returns the effective TTL of a hop for a requested ttl (0 or less:
// the default), capped by MaxTTL. Zero means the escalation never expires,
// which a hop with a maximum never grants: without a default, the maximum
// is the TTL.
func (h *HopPolicy) TTL(requested int) int {
	ttl := h.DefaultTTL
	if requested > 0 {
		ttl = requested
	}
	if h.MaxTTL > 0 && (ttl <= 0 || ttl > h.MaxTTL) {
		ttl = h.MaxTTL
	}
	return ttl
}

// EscalationContext is captured at escalation time (seed 002).
type EscalationContext struct {
	ThreatID           *string  `json:"threat_id"`
	ThreatType         *string  `json:"threat_type"`
	ThreatConfidence   *float64 `json:"threat_confidence"`
	ActiveAlerts       int      `json:"active_alerts"`
	MeshHealth         string   `json:"mesh_health"`
	TriggeringTool     *string  `json:"triggering_tool"`
	TriggeringDecision *string  `json:"triggering_decision"`
}

// Escalation is one hop of a subject's authority, active until it is
// de-escalated. A subject's current profile is the ToProfile of its deepest
// active escalation, or observer.
type Escalation struct {
	EscalationID           string            `json:"escalation_id"`
	Subject                string            `json:"subject"`
	RequestedBy            string            `json:"requested_by"`
	FromProfile            Profile           `json:"from_profile"`
	ToProfile              Profile           `json:"to_profile"`
	EscalationType         EscalationType    `json:"escalation_type"`
	Reason                 string            `json:"reason"`
	Context                EscalationContext `json:"context"`
	Reversible             bool              `json:"reversible"`
	AutoDeescalate         bool              `json:"auto_deescalate"`
	DeescalateAfterSeconds *int              `json:"deescalate_after_seconds"`
	DeescalateCondition    string            `json:"deescalate_condition"`
	ApprovedBy             []string          `json:"approved_by"`
	CreatedAt              string            `json:"created_at"`
	ExpiresAt              *string           `json:"expires_at"`
	TemContextHash         string            `json:"tem_context_hash"`
	ReceiptHash            string            `json:"receipt_hash"`
	Active                 bool              `json:"active"`
	DeescalatedAt          *string           `json:"deescalated_at"`
	DeescalationType       *DeescalationType `json:"deescalation_type"`
	Drill                  bool              `json:"drill,omitempty"`
}

// Expiry parses ExpiresAt; ok is false when the escalation has no TTL.
func (e *Escalation) Expiry() (t time.Time, ok bool) {
	if e.ExpiresAt == nil {
		return time.Time{}, false
	}
	t, err := time.Parse(TimeFormat, *e.ExpiresAt)
	return t, err == nil
}

// Budget is a treasury budget. Amounts are whole units.
type Budget struct {
	BudgetID  string `json:"budget_id"`
	Name      string `json:"name"`
	Allocated int64  `json:"allocated"`
	Spent     int64  `json:"spent"`
	Credited  int64  `json:"credited"`
	Currency  string `json:"currency"`
	Drill     bool   `json:"drill"`
	CreatedAt string `json:"created_at"`
	CreatedBy string `json:"created_by"`
}

// Balance is what may still be debited.
func (b *Budget) Balance() int64 { return b.Allocated + b.Credited - b.Spent }

// DrillBudgetCeiling caps every drill-mode budget (seed 000, drill 0).
const DrillBudgetCeiling = 1000

// TreasuryOp is a recorded debit or credit, keyed for idempotency.
type TreasuryOp struct {
	BudgetID       string `json:"budget_id"`
	IdempotencyKey string `json:"idempotency_key"`
	Kind           string `json:"kind"` // debit or credit
	Amount         int64  `json:"amount"`
	Description    string `json:"description"`
	BalanceAfter   int64  `json:"balance_after"`
	ReceiptHash    string `json:"receipt_hash"`
	Seq            uint64 `json:"seq"`
	CreatedAt      string `json:"created_at"`
	Principal      string `json:"principal"`
}

// Approval is a registered approver's approval of one request digest.
type Approval struct {
	RequestDigest string `json:"request_digest"`
	Approver      string `json:"approver"`
	Method        string `json:"method"` // credential or signature
	CreatedAt     string `json:"created_at"`
}

// ApproverKey is an approver's registered ed25519 public key.
type ApproverKey struct {
	Approver  string `json:"approver"`
	PublicKey []byte `json:"public_key"`
	CreatedAt string `json:"created_at"`
}

// GovernanceReader is the governance part of ReadTx.
type GovernanceReader interface {
	// Escalation returns one escalation, active or not, or ENOTFOUND.
	Escalation(id string) (*Escalation, error)
	// ActiveEscalations returns a subject's active escalations, lowest hop
	// first ("" for every subject, ordered by subject then hop).
	ActiveEscalations(subject string) ([]*Escalation, error)
	// DueEscalations returns up to limit active, auto-de-escalating
	// escalations that are the top of their subject's stack and expired at
	// now, soonest first.
	DueEscalations(now time.Time, limit int) ([]*Escalation, error)
	// CountActiveEscalations counts the active escalations by the profile
	// they raise to (ToProfile); profiles without one are absent. Servers
	// read it periodically for their metrics, so its cost MUST NOT grow
	// with de-escalated history, nor read whole records.
	CountActiveEscalations() (map[Profile]int64, error)
	// Budget returns a budget, or ENOTFOUND.
	Budget(id string) (*Budget, error)
	// Budgets lists every budget by id.
	Budgets() ([]*Budget, error)
	// TreasuryOp returns a recorded operation by budget and idempotency
	// key, or ENOTFOUND.
	TreasuryOp(budgetID, key string) (*TreasuryOp, error)
	// Approvals returns the approvals of a request digest.
	Approvals(digest string) ([]*Approval, error)
	// ApproverKey returns an approver's registered key, or ENOTFOUND.
	ApproverKey(approver string) (*ApproverKey, error)

	// The Each methods stream every row of a table in a fixed order, in
	// bounded memory, stopping at fn's first error and returning it: the
	// state replay compares them with what the receipts say.

	// EachEscalation streams every escalation, active or not, by id.
	EachEscalation(fn func(*Escalation) error) error
	// EachTreasuryOp streams every recorded debit and credit.
	EachTreasuryOp(fn func(*TreasuryOp) error) error
	// EachApproval streams every approval by digest, then approver.
	EachApproval(fn func(*Approval) error) error
	// EachApproverKey streams every registered approver key by approver.
	EachApproverKey(fn func(*ApproverKey) error) error
}

// GovernanceWriter is the governance part of Tx.
type GovernanceWriter interface {
	// PutEscalation creates or replaces an escalation.
	PutEscalation(e *Escalation) error
	// CreateBudget stores a new budget; ECONFLICT if the id exists.
	CreateBudget(b *Budget) error
	// UpdateBudget replaces a budget; ENOTFOUND if absent.
	UpdateBudget(b *Budget) error
	// PutTreasuryOp records an operation; ECONFLICT if its idempotency
	// key was used for that budget.
	PutTreasuryOp(op *TreasuryOp) error
	// PutApproval records an approval (idempotent per digest and approver).
	PutApproval(a *Approval) error
	// PutApproverKey registers or replaces an approver's key.
	PutApproverKey(k *ApproverKey) error
}

// EscalationID formats an escalation id: "esc_" + 24 hex digits (seed 002).
func EscalationID(random [12]byte) string { return fmt.Sprintf("esc_%x", random) }
