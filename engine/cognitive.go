package engine

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"slices"

	warden "github.com/warden-sh/warden"
	"github.com/warden-sh/warden/ledger"
)

// Cognitive, guardian and phoenix receipt types.
const (
	ReceiptDecision       = "cognitive_decision"
	ReceiptTemInvocation  = "tem_invocation"
	ReceiptGuardianAnchor = "guardian_anchor"
	ReceiptPhoenixRevoke  = "phoenix_revoke_credentials"
	ReceiptPhoenixLock    = "phoenix_lockdown"
	// ReceiptPhoenixLockStart precedes the lockdown's actions.
	ReceiptPhoenixLockStart = "phoenix_lockdown_started"
)

func randomID(prefix string) string {
	var b [12]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err)
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

// Decide records a decision in the cognitive scroll.
func (e *Engine) Decide(ctx context.Context, p *warden.Principal, req DecideRequest) (map[string]any, error) {
	if req.Decision == "" || len(req.Decision) > 4096 || len(req.Reasoning) > 16384 {
		return nil, warden.Errorf(warden.EINVALID, "decision is required (at most 4096 bytes; reasoning at most 16384).")
	}
	if req.Confidence < 0 || req.Confidence > 1 {
		return nil, warden.Errorf(warden.EINVALID, "confidence must be between 0 and 1.")
	}
	id := randomID("dec_")
	var out map[string]any
	err := e.update(ctx, func(tx warden.Tx) error {
		prof, err := e.requireProfile(tx, p, "cognitive_decide", e.authority["cognitive_decide"])
		if err != nil {
			return err
		}
		body := map[string]any{"decision_id": id, "principal": p.Name, "profile": prof, "decision": req.Decision,
			"reasoning": req.Reasoning, "confidence": req.Confidence, "evidence": nonNilStrings(req.Evidence), "context": req.Context}
		r, err := tx.Append(e.draft(ReceiptDecision, warden.ScrollCognitive, body, "decision", string(prof)))
		if err != nil {
			return err
		}
		out = map[string]any{"success": true, "decision_id": id, "profile": prof, "receipt_hash": r.RootHash, "seq": r.Seq}
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

// InvokeTem records a Tem (threat-response) invocation. The authority
// matrix requires guardian or above; the tem_context_hash is computed
// before the receipt and is inside it.
func (e *Engine) InvokeTem(ctx context.Context, p *warden.Principal, req TemRequest) (map[string]any, error) {
	id := randomID("tem_")
	var out map[string]any
	err := e.update(ctx, func(tx warden.Tx) error {
		prof, err := e.requireProfile(tx, p, "cognitive_invoke_tem", e.authority["cognitive_invoke_tem"])
		if err != nil {
			return err
		}
		now := warden.FormatTime(e.now())
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
		r, err := tx.Append(e.draft(ReceiptTemInvocation, warden.ScrollCognitive, body, tags...))
		if err != nil {
			return err
		}
		out = map[string]any{"success": true, "invocation_id": id, "profile": prof, "tem_context_hash": hash, "receipt_hash": r.RootHash}
		return nil
	})
	return out, err
}

// AuditTrail lists cognitive-scroll receipts, newest first.
func (e *Engine) AuditTrail(ctx context.Context, limit int) (map[string]any, error) {
	if limit <= 0 || limit > warden.MaxPageSize {
		limit = 100
	}
	list, err := e.Receipts(ctx, warden.ReceiptFilter{Scroll: warden.ScrollCognitive, Limit: limit, Descending: true})
	if err != nil {
		return nil, err
	}
	return map[string]any{"decisions": list, "count": len(list)}, nil
}

// HistoryEntry is one escalation history entry (seed 002 plus context and
// tags, so a drill marker in a threat id is findable).
type HistoryEntry struct {
	EscalationID     string                   `json:"escalation_id"`
	EventType        string                   `json:"event_type"`
	FromProfile      warden.Profile           `json:"from_profile"`
	ToProfile        warden.Profile           `json:"to_profile"`
	Subject          string                   `json:"subject"`
	Timestamp        string                   `json:"timestamp"`
	ReceiptHash      string                   `json:"receipt_hash"`
	Seq              uint64                   `json:"seq"`
	Context          warden.EscalationContext `json:"context"`
	DeescalationType *warden.DeescalationType `json:"deescalation_type,omitempty"`
	Tags             []string                 `json:"tags"`
}

// EscalationHistory lists escalation receipts, newest first, optionally
// only those touching profile.
func (e *Engine) EscalationHistory(ctx context.Context, profile string, limit int) (map[string]any, error) {
	if profile != "" {
		if _, err := warden.ParseProfile(profile); err != nil {
			return nil, err
		}
	}
	if limit <= 0 || limit > warden.MaxPageSize {
		limit = 100
	}
	history := []HistoryEntry{}
	var after *uint64
	err := e.store.View(ctx, func(tx warden.ReadTx) error {
		f := warden.ReceiptFilter{Scroll: warden.ScrollIdentity, Tag: "escalation", Limit: warden.MaxPageSize, Descending: true}
		page, err := tx.Receipts(f)
		if err != nil {
			return err
		}
		_ = after
		for _, r := range page {
			if r.Type != ReceiptEscalation && r.Type != ReceiptDeescalation {
				continue
			}
			var b escalationBody
			if err := json.Unmarshal(r.Body, &b); err != nil {
				return err
			}
			if profile != "" && string(b.FromProfile) != profile && string(b.ToProfile) != profile {
				continue
			}
			history = append(history, HistoryEntry{EscalationID: b.EscalationID, EventType: b.EventType, FromProfile: b.FromProfile,
				ToProfile: b.ToProfile, Subject: b.Subject, Timestamp: r.Timestamp, ReceiptHash: r.RootHash, Seq: r.Seq,
				Context: b.Context, DeescalationType: b.DeescalationType, Tags: r.Tags})
			if len(history) == limit {
				break
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return map[string]any{"history": history, "count": len(history)}, nil
}

// ActiveEscalations lists active escalations of subject ("*" for all).
func (e *Engine) ActiveEscalations(ctx context.Context, subject string) (map[string]any, error) {
	if subject == "*" {
		subject = ""
	}
	list := []map[string]any{}
	err := e.store.View(ctx, func(tx warden.ReadTx) error {
		active, err := tx.ActiveEscalations(subject)
		for _, a := range active {
			list = append(list, map[string]any{"escalation_id": a.EscalationID, "subject": a.Subject, "from_profile": a.FromProfile,
				"to_profile": a.ToProfile, "escalation_type": a.EscalationType, "created_at": a.CreatedAt, "expires_at": a.ExpiresAt,
				"reversible": a.Reversible, "tem_context_hash": a.TemContextHash})
		}
		return err
	})
	return map[string]any{"active_count": len(list), "escalations": list}, err
}

// GuardianStatus reports scroll roots and the latest signed checkpoint.
func (e *Engine) GuardianStatus(ctx context.Context) (map[string]any, error) {
	out := map[string]any{"status": "operational", "drill_mode": e.drill}
	err := e.store.View(ctx, func(tx warden.ReadTx) error {
		head, err := tx.Head()
		if err != nil {
			return err
		}
		roots := map[string]any{}
		for name, s := range head.Scrolls {
			roots[name] = map[string]any{"size": s.Size, "root_hash": s.RootHash}
		}
		out["log_size"], out["root_hash"], out["scroll_roots"] = head.Size, head.RootHash, roots
		cp, err := tx.LatestCheckpoint()
		if err == nil {
			out["checkpoint"] = map[string]any{"size": cp.Size, "root_hash": cp.RootHash, "note": cp.Note, "created_at": warden.FormatTime(cp.CreatedAt)}
		} else if warden.ErrorCode(err) != warden.ENOTFOUND {
			return err
		}
		return nil
	})
	return out, err
}

// Mirror receives exported checkpoints (guardian anchoring).
type Mirror interface {
	// Put stores data under name; it MUST NOT overwrite an existing name.
	Put(name string, data []byte) error
}

// Anchor signs a checkpoint now, receipts the anchoring (tagged DRILL/* in
// drill mode) and exports the checkpoint to the mirror.
func (e *Engine) Anchor(ctx context.Context, p *warden.Principal) (map[string]any, error) {
	cp, err := e.Checkpoint(ctx)
	if err != nil {
		return nil, err
	}
	if cp == nil {
		return nil, warden.Errorf(warden.ECONFLICT, "The log is empty; nothing to anchor.")
	}
	name := fmt.Sprintf("checkpoint-%012d.note", cp.Size)
	if e.drill {
		name = "DRILL-" + name
	}
	mirrored := false
	if e.mirror != nil {
		if err := e.mirror.Put(name, []byte(cp.Note)); err != nil {
			return nil, fmt.Errorf("engine.Anchor: mirror: %w", err)
		}
		mirrored = true
	}
	tags := []string{"anchor"}
	if e.drill {
		tags = append(tags, "DRILL/anchor")
	}
	var r *warden.Receipt
	err = e.store.Update(ctx, func(tx warden.Tx) (err error) {
		r, err = tx.Append(e.draft(ReceiptGuardianAnchor, warden.ScrollSystem, map[string]any{"checkpoint_size": cp.Size,
			"root_hash": cp.RootHash, "mirror_name": name, "mirrored": mirrored, "principal": p.Name}, tags...))
		return err
	})
	if err != nil {
		return nil, err
	}
	return map[string]any{"success": true, "checkpoint_size": cp.Size, "root_hash": cp.RootHash, "checkpoint": cp.Note,
		"mirror_name": name, "mirrored": mirrored, "receipt_hash": r.RootHash, "tags": r.Tags}, nil
}

// CognitiveContext assembles what an agent may read about the system.
func (e *Engine) CognitiveContext(ctx context.Context, p *warden.Principal, include []string) (map[string]any, error) {
	if len(include) == 0 {
		include = []string{"health", "profile"}
	}
	out := map[string]any{}
	for _, part := range include {
		switch part {
		case "health":
			h, err := e.Health(ctx)
			if err != nil {
				return nil, err
			}
			out["health"] = map[string]any{"status": "operational", "open_incidents": h.OpenIncidents, "total_incidents": h.TotalIncidents,
				"receipts": h.Receipts, "drill_mode": e.drill}
		case "treasury":
			var budgets []*warden.Budget
			if err := e.store.View(ctx, func(tx warden.ReadTx) (err error) {
				budgets, err = tx.Budgets()
				return err
			}); err != nil {
				return nil, err
			}
			list := []*BudgetResult{}
			for _, b := range budgets {
				list = append(list, budgetResult(b))
			}
			out["treasury"] = map[string]any{"budgets": list, "count": len(list), "drill_mode": e.drill, "drill_ceiling": warden.DrillBudgetCeiling}
		case "escalations":
			a, err := e.ActiveEscalations(ctx, p.Name)
			if err != nil {
				return nil, err
			}
			out["escalations"] = a
		case "profile":
			prof, err := e.CurrentProfile(ctx, p.Name)
			if err != nil {
				return nil, err
			}
			out["profile"] = map[string]any{"principal": p.Name, "profile": prof}
		case "incidents":
			s, err := e.Stats(ctx)
			if err != nil {
				return nil, err
			}
			out["incidents"] = s
		case "guardian":
			g, err := e.GuardianStatus(ctx)
			if err != nil {
				return nil, err
			}
			out["guardian"] = g
		default:
			return nil, warden.Errorf(warden.EINVALID, "Unknown context %q; include any of health, treasury, escalations, profile, incidents, guardian.", part)
		}
	}
	return out, nil
}

// RevokeAll revokes every credential that is not an admin's (phoenix).
// In drill mode it is refused as a dry run and receipted as such.
func (e *Engine) RevokeAll(ctx context.Context, p *warden.Principal) (map[string]any, error) {
	var revoked []string
	err := e.update(ctx, func(tx warden.Tx) error {
		if _, err := e.requireProfile(tx, p, "phoenix_revoke_credentials", e.authority["phoenix_revoke_credentials"]); err != nil {
			return err
		}
		creds, err := tx.Credentials()
		if err != nil {
			return err
		}
		for _, c := range creds {
			if c.RevokedAt != nil || slices.Contains(c.Roles, warden.RoleAdmin) || c.Name == p.Name {
				continue
			}
			if !e.drill {
				if err := tx.RevokeCredential(c.Name, e.now()); err != nil {
					return err
				}
			}
			revoked = append(revoked, c.Name)
		}
		_, err = tx.Append(e.draft(ReceiptPhoenixRevoke, warden.ScrollIdentity, map[string]any{"principal": p.Name,
			"credentials": nonNilStrings(revoked), "dry_run": e.drill, "reversible": false}, "phoenix"))
		return err
	})
	if err != nil {
		return nil, err
	}
	return map[string]any{"success": true, "revoked": nonNilStrings(revoked), "dry_run": e.drill}, nil
}

// Lockdown freezes every agent and disables the airlock through the
// containment targets (phoenix); dry-run in drill mode.
func (e *Engine) Lockdown(ctx context.Context, p *warden.Principal, reason string) (map[string]any, error) {
	ps := e.policyState()
	pseudo := &warden.Incident{ID: randomID("LOCKDOWN-"), Class: warden.ClassUnauthorizedAccess, Severity: warden.SeverityCritical,
		Source: "warden:phoenix", Description: "global lockdown: " + reason, Evidence: map[string]string{}}
	actions := []string{warden.ActionFreezeAgent, warden.ActionDisableAirlock}
	// The lockdown is receipted before anything is frozen, so an action
	// never happens without its record, even if warden dies mid-way.
	err := e.update(ctx, func(tx warden.Tx) error {
		if _, err := e.requireProfile(tx, p, "phoenix_lockdown", e.authority["phoenix_lockdown"]); err != nil {
			return err
		}
		_, err := tx.Append(e.draft(ReceiptPhoenixLockStart, warden.ScrollIncident, map[string]any{"principal": p.Name, "reason": reason,
			"lockdown_id": pseudo.ID, "actions": actions, "dry_run": e.drill}, "phoenix"))
		return err
	})
	if err != nil {
		return nil, err
	}
	results := e.runActions(context.WithoutCancel(ctx), ps, actions, pseudo)
	err = e.store.Update(context.WithoutCancel(ctx), func(tx warden.Tx) error {
		_, err := tx.Append(e.draft(ReceiptPhoenixLock, warden.ScrollIncident, map[string]any{"principal": p.Name, "reason": reason,
			"lockdown_id": pseudo.ID, "results": results, "dry_run": e.drill, "reversible": true}, "phoenix"))
		return err
	})
	if err != nil {
		return nil, err
	}
	ok := true
	for _, r := range results {
		ok = ok && r.Success
	}
	return map[string]any{"success": ok, "lockdown_id": pseudo.ID, "results": results, "dry_run": e.drill}, nil
}
