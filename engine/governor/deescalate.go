package governor

import (
	"context"
	"fmt"
	"slices"
	"time"

	warden "github.com/warden-sh/warden"
)

// DeescalateResult is the seed's deescalate result; Hops lists every hop
// undone, top first, each with its own receipt.
type DeescalateResult struct {
	Success          bool                    `json:"success"`
	EscalationID     string                  `json:"escalation_id"`
	FromProfile      warden.Profile          `json:"from_profile"`
	ToProfile        warden.Profile          `json:"to_profile"`
	DeescalationType warden.DeescalationType `json:"deescalation_type"`
	Reason           string                  `json:"reason"`
	ReceiptHash      string                  `json:"receipt_hash"`
	DurationSeconds  float64                 `json:"duration_seconds"`
	Hops             []DeescalatedHop        `json:"hops"`
}

// DeescalatedHop is one hop undone.
type DeescalatedHop struct {
	EscalationID string         `json:"escalation_id"`
	FromProfile  warden.Profile `json:"from_profile"`
	ToProfile    warden.Profile `json:"to_profile"`
	ReceiptHash  string         `json:"receipt_hash"`
}

// DeescalateRequest is deescalate's arguments.
type DeescalateRequest struct {
	EscalationID     string `json:"escalation_id"`
	DeescalationType string `json:"deescalation_type"`
	Reason           string `json:"reason,omitempty"`
}

// Deescalate undoes an active escalation and every hop above it, one hop
// at a time, each with its own profile_deescalation receipt; a concluded
// crisis or a sovereign revocation returns the subject to observer. An
// irreversible hop falls only to sovereign_revoke by an admin whose
// credential is marked human. The subject
// itself, operators and admins may de-escalate. Refusals (unknown or
// inactive escalation, not reversible) are receipted.
func (g *Governor) Deescalate(ctx context.Context, p *warden.Principal, req DeescalateRequest) (*DeescalateResult, error) {
	typ, err := warden.ParseDeescalationType(req.DeescalationType)
	if err != nil {
		return nil, err
	}
	id, reason := req.EscalationID, req.Reason
	var res *DeescalateResult
	err = g.core.Update(ctx, "governor.Deescalate", func(tx warden.Tx) error {
		denyBody := map[string]any{"escalation_id": id, "principal": p.Name, "deescalation_type": typ}
		target, err := tx.Escalation(id)
		if warden.ErrorCode(err) == warden.ENOTFOUND || (err == nil && !target.Active) {
			return g.core.Deny(warden.ReceiptEscalationDenied, denyBody, warden.ENOTFOUND, "Escalation %s not found or already inactive", id)
		} else if err != nil {
			return err
		}
		if target.Subject != p.Name && !p.HasRole(warden.RoleOperator) {
			return g.core.Deny(warden.ReceiptEscalationDenied, denyBody, warden.EFORBIDDEN,
				"Principal %q may not de-escalate %s's escalation %s.", p.Name, target.Subject, id)
		}
		res, err = g.popHops(tx, p, target, typ, reason, denyBody)
		return err
	})
	if err != nil {
		return nil, err
	}
	return res, nil
}

// popHops undoes target and the hops above it (all hops when typ returns
// to baseline), top first, in the caller's transaction.
func (g *Governor) popHops(tx warden.Tx, p *warden.Principal, target *warden.Escalation, typ warden.DeescalationType, reason string, denyBody map[string]any) (*DeescalateResult, error) {
	stack, err := tx.ActiveEscalations(target.Subject)
	if err != nil {
		return nil, err
	}
	idx := slices.IndexFunc(stack, func(x *warden.Escalation) bool { return x.EscalationID == target.EscalationID })
	if idx < 0 {
		return nil, fmt.Errorf("engine.popHops: active escalation %s missing from its stack", target.EscalationID)
	}
	if typ.ToBaseline() {
		idx = 0
	}
	for _, h := range stack[idx:] {
		if !h.Reversible && typ != warden.DeescalationSovereignRevoke {
			return nil, g.core.Deny(warden.ReceiptEscalationDenied, denyBody, warden.EDENIED,
				"Escalation %s is not reversible without sovereign override", h.EscalationID)
		}
		if !h.Reversible {
			human, err := activeHuman(tx, p.Name)
			if err != nil {
				return nil, err
			}
			if !human || !p.HasRole(warden.RoleAdmin) {
				return nil, g.core.Deny(warden.ReceiptEscalationDenied, denyBody, warden.EDENIED,
					"Escalation %s is not reversible without sovereign override, and only a human admin may revoke it", h.EscalationID)
			}
		}
	}
	now := g.core.Now()
	at := warden.FormatTime(now)
	res := &DeescalateResult{Success: true, EscalationID: target.EscalationID, FromProfile: target.ToProfile, ToProfile: target.FromProfile,
		DeescalationType: typ, Reason: reason}
	for i := len(stack) - 1; i >= idx; i-- {
		h := stack[i]
		h.Active = false
		h.DeescalatedAt, h.DeescalationType = &at, &typ
		r, err := tx.Append(g.escalationDraft(h, "deescalation", p.Name, reason))
		if err != nil {
			return nil, err
		}
		if err := tx.PutEscalation(h); err != nil {
			return nil, err
		}
		res.Hops = append(res.Hops, DeescalatedHop{EscalationID: h.EscalationID, FromProfile: h.ToProfile, ToProfile: h.FromProfile, ReceiptHash: r.RootHash})
		if h.EscalationID == target.EscalationID {
			res.ReceiptHash = r.RootHash
			if created, err := time.Parse(warden.TimeFormat, h.CreatedAt); err == nil {
				res.DurationSeconds = now.Sub(created).Seconds()
			}
		}
	}
	if typ.ToBaseline() {
		res.ToProfile = warden.ProfileObserver
	}
	return res, nil
}

// SweepExpired de-escalates every escalation whose TTL passed, from stored
// deadlines: the top hop of each subject first, then each hop below it that
// has expired too, each receipted as timeout_expired. Since a hop never
// outlives the one below it, no expired hop stays up. It returns what it
// undid.
func (g *Governor) SweepExpired(ctx context.Context) ([]*DeescalateResult, error) {
	var out []*DeescalateResult
	for {
		now := g.core.Now()
		var due []*warden.Escalation
		if err := g.core.View(ctx, "governor.SweepExpired", func(tx warden.ReadTx) (err error) {
			due, err = tx.DueEscalations(now, 100)
			return err
		}); err != nil {
			return out, err
		}
		if len(due) == 0 {
			return out, nil
		}
		for _, d := range due {
			var results []*DeescalateResult
			err := g.core.Update(ctx, "governor.SweepExpired", func(tx warden.Tx) (err error) {
				results, _, err = g.expireSubject(tx, d.Subject, now)
				return err
			})
			if err != nil {
				return out, err
			}
			out = append(out, results...)
		}
	}
}

// expireSubject brings down, top first, every hop of subject whose TTL
// passed at now, each with its own timeout_expired receipt.
func (g *Governor) expireSubject(tx warden.Tx, subject string, now time.Time) ([]*DeescalateResult, []*warden.Escalation, error) {
	sweeper := &warden.Principal{Name: "warden:ttl-sweeper", Roles: []warden.Role{warden.RoleOperator}}
	var out []*DeescalateResult
	for {
		stack, err := tx.ActiveEscalations(subject)
		if err != nil || len(stack) == 0 {
			return out, stack, err
		}
		top := stack[len(stack)-1]
		exp, ok := top.Expiry()
		if !ok || !top.AutoDeescalate || exp.After(now) {
			return out, stack, nil
		}
		ttl := 0
		if top.DeescalateAfterSeconds != nil {
			ttl = *top.DeescalateAfterSeconds
		}
		r, err := g.popHops(tx, sweeper, top, warden.DeescalationTimeoutExpired, fmt.Sprintf("TTL of %ds expired", ttl), map[string]any{"escalation_id": top.EscalationID})
		if err != nil {
			return out, nil, err
		}
		out = append(out, r)
	}
}
