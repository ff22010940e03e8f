package governor

import (
	"context"
	"crypto/rand"
	"fmt"
	"strings"

	warden "github.com/warden-sh/warden"
	"github.com/warden-sh/warden/ledger"
)

func randomID(prefix string) string {
	var b [12]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	return fmt.Sprintf("%s%x", prefix, b)
}

// DecideRequest is cognitive_decide's arguments.
type DecideRequest struct {
	Decision   string            `json:"decision"`
	Reasoning  string            `json:"reasoning,omitempty"`
	Confidence float64           `json:"confidence,omitempty"`
	Evidence   []string          `json:"evidence,omitempty"`
	Context    map[string]string `json:"context,omitempty"`
}

// DecideResult is a recorded decision.
type DecideResult struct {
	Success     bool           `json:"success"`
	DecisionID  string         `json:"decision_id"`
	Profile     warden.Profile `json:"profile"`
	ReceiptHash string         `json:"receipt_hash"`
	Seq         uint64         `json:"seq"`
}

// Decide records a decision in the cognitive scroll, at the caller's
// current profile (checked against the authority matrix in the same
// transaction).
func (g *Governor) Decide(ctx context.Context, p *warden.Principal, req DecideRequest) (*DecideResult, error) {
	if req.Decision == "" || len(req.Decision) > 4096 || len(req.Reasoning) > 16384 {
		return nil, warden.Errorf(warden.EINVALID, "decision is required (at most 4096 bytes; reasoning at most 16384).")
	}
	if req.Confidence < 0 || req.Confidence > 1 {
		return nil, warden.Errorf(warden.EINVALID, "confidence must be between 0 and 1.")
	}
	id := randomID("dec_")
	var out *DecideResult
	err := g.core.Update(ctx, "governor.Decide", func(tx warden.Tx) error {
		prof, err := g.requireProfile(tx, p, "cognitive_decide", g.authority["cognitive_decide"])
		if err != nil {
			return err
		}
		body := map[string]any{"decision_id": id, "principal": p.Name, "profile": prof, "decision": req.Decision,
			"reasoning": req.Reasoning, "confidence": req.Confidence, "evidence": nonNilStrings(req.Evidence), "context": req.Context}
		r, err := tx.Append(g.core.Draft(warden.ReceiptDecision, body, "decision", string(prof)))
		if err != nil {
			return err
		}
		out = &DecideResult{Success: true, DecisionID: id, Profile: prof, ReceiptHash: r.RootHash, Seq: r.Seq}
		return nil
	})
	return out, err
}

// TemRequest is cognitive_invoke_tem's arguments.
type TemRequest struct {
	ThreatID   string            `json:"threat_id,omitempty"`
	ThreatType string            `json:"threat_type,omitempty"`
	Reason     string            `json:"reason,omitempty"`
	Context    map[string]string `json:"context,omitempty"`
}

// TemResult is a recorded Tem invocation.
type TemResult struct {
	Success        bool           `json:"success"`
	InvocationID   string         `json:"invocation_id"`
	Profile        warden.Profile `json:"profile"`
	TemContextHash string         `json:"tem_context_hash"`
	ReceiptHash    string         `json:"receipt_hash"`
}

// InvokeTem records a Tem (threat-response) invocation. The authority
// matrix requires guardian or above; the tem_context_hash is computed
// before the receipt and is inside it.
func (g *Governor) InvokeTem(ctx context.Context, p *warden.Principal, req TemRequest) (*TemResult, error) {
	id := randomID("tem_")
	var out *TemResult
	err := g.core.Update(ctx, "governor.InvokeTem", func(tx warden.Tx) error {
		prof, err := g.requireProfile(tx, p, "cognitive_invoke_tem", g.authority["cognitive_invoke_tem"])
		if err != nil {
			return err
		}
		now := warden.FormatTime(g.core.Now())
		temCtx, err := ledger.Canonical(map[string]any{"invocation_id": id, "principal": p.Name, "profile": prof,
			"threat_id": req.ThreatID, "threat_type": req.ThreatType, "context": req.Context, "timestamp": now})
		if err != nil {
			return err
		}
		hash := ledger.BodyHash(temCtx)
		body := map[string]any{"invocation_id": id, "principal": p.Name, "profile": prof, "threat_id": req.ThreatID,
			"threat_type": req.ThreatType, "reason": req.Reason, "context": req.Context, "tem_context_hash": hash}
		tags := []string{"tem", string(prof)}
		if req.ThreatID != "" {
			tags = append(tags, req.ThreatID)
		}
		r, err := tx.Append(g.core.Draft(warden.ReceiptTemInvocation, body, tags...))
		if err != nil {
			return err
		}
		out = &TemResult{Success: true, InvocationID: id, Profile: prof, TemContextHash: hash, ReceiptHash: r.RootHash}
		return nil
	})
	return out, err
}

// AuditTrailRequest is cognitive_audit_trail's arguments: at most Limit
// receipts (default 100, at most warden.MaxPageSize), older than Before
// when given (the NextBefore of a previous answer).
type AuditTrailRequest struct {
	Limit  int     `json:"limit,omitempty"`
	Before *uint64 `json:"before,omitempty"`
}

// AuditTrail is cognitive_audit_trail's answer. NextBefore is non-null
// exactly when older receipts exist: pass it as before to read them.
type AuditTrail struct {
	Decisions  []*warden.Receipt `json:"decisions"`
	Count      int               `json:"count"`
	NextBefore *uint64           `json:"next_before"`
}

// AuditTrail lists cognitive-scroll receipts, newest first, a page at a
// time. EINVALID for a limit outside 1..warden.MaxPageSize (0 means 100):
// a larger one is refused, never silently cut.
func (g *Governor) AuditTrail(ctx context.Context, req AuditTrailRequest) (*AuditTrail, error) {
	limit := req.Limit
	switch {
	case limit == 0:
		limit = 100
	case limit < 0 || limit > warden.MaxPageSize:
		return nil, warden.Errorf(warden.EINVALID, "limit must be between 1 and %d; page on with before (the answer's next_before).", warden.MaxPageSize)
	}
	out := &AuditTrail{}
	err := g.core.View(ctx, "governor.AuditTrail", func(tx warden.ReadTx) (err error) {
		f := warden.ReceiptFilter{Scroll: warden.ScrollCognitive, Before: req.Before, Limit: limit, Descending: true}
		if out.Decisions, err = tx.Receipts(f); err != nil || len(out.Decisions) < limit {
			return err
		}
		// A full page: is there an older receipt?
		f.Before, f.Limit = &out.Decisions[limit-1].Seq, 1
		more, err := tx.Receipts(f)
		if len(more) > 0 {
			out.NextBefore = f.Before
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	out.Count = len(out.Decisions)
	return out, nil
}

// Context is cognitive_context's answer: the parts asked for, each absent
// unless included.
type Context struct {
	Health      *ContextHealth        `json:"health,omitempty"`
	Treasury    *ContextTreasury      `json:"treasury,omitempty"`
	Escalations *ActiveList           `json:"escalations,omitempty"`
	Profile     *ContextProfile       `json:"profile,omitempty"`
	Incidents   *warden.IncidentStats `json:"incidents,omitempty"`
	Guardian    *GuardianStatus       `json:"guardian,omitempty"`
}

// ContextHealth is the health part of a context.
type ContextHealth struct {
	Status         string `json:"status"`
	OpenIncidents  int64  `json:"open_incidents"`
	TotalIncidents int64  `json:"total_incidents"`
	Receipts       uint64 `json:"receipts"`
	DrillMode      bool   `json:"drill_mode"`
}

// ContextTreasury is the treasury part of a context.
type ContextTreasury struct {
	Budgets      []*BudgetResult `json:"budgets"`
	Count        int             `json:"count"`
	DrillMode    bool            `json:"drill_mode"`
	DrillCeiling int64           `json:"drill_ceiling"`
}

// ContextProfile is the profile part of a context.
type ContextProfile struct {
	Principal string         `json:"principal"`
	Profile   warden.Profile `json:"profile"`
}

// ContextParts are the parts cognitive_context may include.
var ContextParts = []string{"health", "treasury", "escalations", "profile", "incidents", "guardian"}

// CognitiveContext assembles what an agent may read about the system:
// include names the parts (default health and profile). EINVALID for an
// unknown part.
func (g *Governor) CognitiveContext(ctx context.Context, p *warden.Principal, include []string) (*Context, error) {
	if len(include) == 0 {
		include = []string{"health", "profile"}
	}
	out := &Context{}
	for _, part := range include {
		switch part {
		case "health":
			h, err := g.incidents.Health(ctx)
			if err != nil {
				return nil, err
			}
			out.Health = &ContextHealth{Status: "operational", OpenIncidents: h.OpenIncidents, TotalIncidents: h.TotalIncidents,
				Receipts: h.Receipts, DrillMode: g.core.Drill()}
		case "treasury":
			var budgets []*warden.Budget
			if err := g.core.View(ctx, "governor.CognitiveContext", func(tx warden.ReadTx) (err error) {
				budgets, err = tx.Budgets()
				return err
			}); err != nil {
				return nil, err
			}
			list := []*BudgetResult{}
			for _, b := range budgets {
				list = append(list, budgetResult(b))
			}
			out.Treasury = &ContextTreasury{Budgets: list, Count: len(list), DrillMode: g.core.Drill(), DrillCeiling: warden.DrillBudgetCeiling}
		case "escalations":
			a, err := g.ActiveEscalations(ctx, p.Name)
			if err != nil {
				return nil, err
			}
			out.Escalations = a
		case "profile":
			prof, err := g.CurrentProfile(ctx, p.Name)
			if err != nil {
				return nil, err
			}
			out.Profile = &ContextProfile{Principal: p.Name, Profile: prof}
		case "incidents":
			s, err := g.incidents.Stats(ctx)
			if err != nil {
				return nil, err
			}
			out.Incidents = s
		case "guardian":
			gs, err := g.GuardianStatus(ctx)
			if err != nil {
				return nil, err
			}
			out.Guardian = gs
		default:
			return nil, warden.Errorf(warden.EINVALID, "Unknown context %q; include any of %s.", part, strings.Join(ContextParts, ", "))
		}
	}
	return out, nil
}
