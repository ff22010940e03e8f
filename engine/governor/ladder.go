package governor

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	warden "github.com/warden-sh/warden"
	"github.com/warden-sh/warden/ledger"
)

// EscalateRequest is the escalate tool's arguments (seed 002), plus
// warden's approval evidence. FromProfile is checked, never trusted: an
// escalation always starts from the subject's current profile.
type EscalateRequest struct {
	FromProfile         string                    `json:"from_profile,omitempty"`
	ToProfile           string                    `json:"to_profile"`
	EscalationType      string                    `json:"escalation_type"`
	Context             *warden.EscalationContext `json:"context,omitempty"`
	TTLSeconds          int                       `json:"ttl_seconds,omitempty"`
	DeescalateCondition string                    `json:"deescalate_condition,omitempty"`
	Reason              string                    `json:"reason"`
	// ApprovedBy names the approvers (one name or several).
	ApprovedBy StringList `json:"approved_by,omitempty"`
	// ApprovalSignatures maps approver → base64 ed25519 signature over the
	// request digest, for approvers with a registered key.
	ApprovalSignatures map[string]string `json:"approval_signatures,omitempty"`
	// Subject is the principal to escalate; operators and admins may act on
	// another principal, everyone else only on themselves.
	Subject string `json:"subject,omitempty"`
}

// EscalateResult is the seed's escalate result.
type EscalateResult struct {
	Success             bool                  `json:"success"`
	EscalationID        string                `json:"escalation_id"`
	Subject             string                `json:"subject"`
	FromProfile         warden.Profile        `json:"from_profile"`
	ToProfile           warden.Profile        `json:"to_profile"`
	EscalationType      warden.EscalationType `json:"escalation_type"`
	Reversible          bool                  `json:"reversible"`
	ExpiresAt           *string               `json:"expires_at"`
	ReceiptHash         string                `json:"receipt_hash"`
	TemContextHash      string                `json:"tem_context_hash"`
	DeescalateCondition string                `json:"deescalate_condition"`
	ApprovedBy          []string              `json:"approved_by"`
	Escalation          *warden.Escalation    `json:"escalation"`
	// ExpiredFirst lists hops whose TTL had passed and that came down,
	// receipted, before this escalation.
	ExpiredFirst []*DeescalateResult `json:"expired_first,omitempty"`
}

// escalationBody is the seed's escalation receipt body, plus warden's
// additions (subject, approvals, tem_context_hash inside the receipt).
type escalationBody struct {
	EscalationID     string                   `json:"escalation_id"`
	EventType        string                   `json:"event_type"`
	FromProfile      warden.Profile           `json:"from_profile"`
	ToProfile        warden.Profile           `json:"to_profile"`
	EscalationType   warden.EscalationType    `json:"escalation_type"`
	Reversible       bool                     `json:"reversible"`
	Context          warden.EscalationContext `json:"context"`
	ExpiresAt        *string                  `json:"expires_at"`
	Active           bool                     `json:"active"`
	DeescalatedAt    *string                  `json:"deescalated_at,omitempty"`
	DeescalationType *warden.DeescalationType `json:"deescalation_type,omitempty"`
	Subject          string                   `json:"subject"`
	Principal        string                   `json:"principal"`
	Reason           string                   `json:"reason,omitempty"`
	ApprovedBy       []string                 `json:"approved_by,omitempty"`
	TemContextHash   string                   `json:"tem_context_hash,omitempty"`
	// The rest of the escalation's record, so a replay rebuilds it
	// exactly (project.go); receipts written before they existed lack them.
	RequestReason          string `json:"escalation_reason,omitempty"`
	AutoDeescalate         bool   `json:"auto_deescalate"`
	DeescalateAfterSeconds *int   `json:"deescalate_after_seconds,omitempty"`
	DeescalateCondition    string `json:"deescalate_condition,omitempty"`
	CreatedAt              string `json:"created_at"`
	RequestedBy            string `json:"requested_by"`
	Drill                  bool   `json:"drill,omitempty"`
}

func (g *Governor) escalationDraft(esc *warden.Escalation, event, principal, reason string) warden.Draft {
	body := escalationBody{
		EscalationID: esc.EscalationID, EventType: event, FromProfile: esc.FromProfile, ToProfile: esc.ToProfile,
		EscalationType: esc.EscalationType, Reversible: esc.Reversible, Context: esc.Context, ExpiresAt: esc.ExpiresAt,
		Active: esc.Active, Subject: esc.Subject, Principal: principal, Reason: reason, ApprovedBy: esc.ApprovedBy,
		TemContextHash: esc.TemContextHash, AutoDeescalate: esc.AutoDeescalate, DeescalateAfterSeconds: esc.DeescalateAfterSeconds,
		DeescalateCondition: esc.DeescalateCondition, CreatedAt: esc.CreatedAt, RequestedBy: esc.RequestedBy, Drill: esc.Drill,
	}
	if reason != esc.Reason {
		body.RequestReason = esc.Reason // a de-escalation's reason is its own
	}
	if event == "deescalation" {
		body.DeescalatedAt, body.DeescalationType = esc.DeescalatedAt, esc.DeescalationType
	}
	tags := []string{"escalation", event, string(esc.FromProfile), string(esc.ToProfile)}
	if esc.Context.ThreatID != nil {
		tags = append(tags, *esc.Context.ThreatID)
	}
	return g.core.Draft("profile_"+event, body, tags...)
}

// RequestDigest identifies one escalation request for approvers: hex
// SHA-256 of the canonical {subject, from, to, escalation_type, generation}.
// generation counts the subject's escalations, so an approval can be used
// for one escalation only.
func RequestDigest(subject string, from, to warden.Profile, typ warden.EscalationType, generation uint64) string {
	c, _ := ledger.Canonical(map[string]any{"subject": subject, "from_profile": from, "to_profile": to, "escalation_type": typ, "generation": generation})
	sum := sha256.Sum256(c)
	return hex.EncodeToString(sum[:])
}

func generationKey(subject string) string { return "escalations:" + subject }

func (g *Governor) denyEscalation(p *warden.Principal, subject string, req *EscalateRequest, data map[string]any, code, format string, args ...any) error {
	body := map[string]any{"subject": subject, "principal": p.Name, "from_profile": req.FromProfile, "to_profile": req.ToProfile,
		"escalation_type": req.EscalationType}
	if req.Context != nil && req.Context.ThreatID != nil {
		body["threat_id"] = *req.Context.ThreatID
	}
	return g.core.Deny(warden.ReceiptEscalationDenied, body, code, format, args...).WithData(data)
}

// Escalate raises a subject one hop up the ladder, with the seed's rules
// and warden's fixes: the hop starts from the current profile; only
// adjacent hops exist; approvals must come from registered approvers other
// than the requester, verified by their recorded approval (their own
// credential) or an ed25519 signature over the request digest, in the
// configured quorum; the Tem context hash is computed before the receipt
// and is inside it. Every refusal changes nothing and is receipted, with
// the seed's sentences (EDENIED).
func (g *Governor) Escalate(ctx context.Context, p *warden.Principal, req EscalateRequest) (*EscalateResult, error) {
	// An empty target is a missing argument, not an unknown profile "".
	switch {
	case req.ToProfile == "":
		return nil, warden.Errorf(warden.EINVALID, "to_profile is required.")
	case req.EscalationType == "":
		return nil, warden.Errorf(warden.EINVALID, "escalation_type is required.")
	}
	to, err := warden.ParseProfile(req.ToProfile)
	if err != nil {
		return nil, err
	}
	typ, err := warden.ParseEscalationType(req.EscalationType)
	if err != nil {
		return nil, err
	}
	if req.FromProfile != "" {
		if _, err := warden.ParseProfile(req.FromProfile); err != nil {
			return nil, err
		}
	}
	if req.TTLSeconds < 0 {
		return nil, warden.Errorf(warden.EINVALID, "ttl_seconds must not be negative.")
	}
	if len(req.Reason) > 2048 {
		return nil, warden.Errorf(warden.EINVALID, "reason exceeds 2048 bytes.")
	}
	subject, err := subjectOf(p, req.Subject)
	if err != nil {
		return nil, err
	}
	var random [12]byte
	if _, err := rand.Read(random[:]); err != nil {
		return nil, fmt.Errorf("governor.Escalate: %w", err)
	}
	now := g.core.Now()
	var res *EscalateResult
	err = g.core.Update(ctx, "governor.Escalate", func(tx warden.Tx) error {
		// Hops whose TTL passed come down first (receipted), so an
		// escalation never stands on an expired one.
		if subject != p.Name {
			// Acting on another principal: it must exist and be active,
			// so no profile waits for a credential created later.
			c, err := tx.Credential(subject)
			if warden.ErrorCode(err) == warden.ENOTFOUND || (err == nil && c.RevokedAt != nil) {
				return warden.Errorf(warden.EINVALID, "Subject %q is not an active principal.", subject)
			} else if err != nil {
				return err
			}
		}
		expired, stack, err := g.expireSubject(tx, subject, now)
		if err != nil {
			return err
		}
		from := warden.ProfileObserver
		if len(stack) > 0 {
			from = stack[len(stack)-1].ToProfile
		}
		if req.FromProfile != "" && warden.Profile(req.FromProfile) != from {
			return g.denyEscalation(p, subject, &req, nil, warden.EDENIED,
				"No escalation path from %s to %s: %s's current profile is %s, and escalations start from the current profile.", req.FromProfile, to, subject, from)
		}
		hop := g.ladder.Hop(from, to)
		if hop == nil {
			return g.denyEscalation(p, subject, &req, nil, warden.EDENIED, "No escalation path from %s to %s", from, to)
		}
		if hop.RequiresHuman {
			if typ != warden.EscalationSovereignOverride {
				return g.denyEscalation(p, subject, &req, nil, warden.EDENIED, "Escalation to %s requires human (sovereign) approval", to)
			}
			// Human-only: a person asks, for a person.
			for _, who := range []struct{ role, name string }{{"requester", p.Name}, {"subject", subject}} {
				ok, err := activeHuman(tx, who.name)
				if err != nil {
					return err
				}
				if !ok {
					return g.denyEscalation(p, subject, &req, nil, warden.EDENIED,
						"Escalation to %s requires human (sovereign) approval: the %s %s is not a credential an admin marked human", to, who.role, who.name)
				}
			}
		}
		gen, err := tx.Counter(generationKey(subject))
		if err != nil {
			return err
		}
		digest := RequestDigest(subject, from, to, typ, gen)
		var approvers []string
		if hop.RequiresApproval {
			if approvers, err = g.checkApprovals(tx, p, subject, &req, hop, digest, now); err != nil {
				return err
			}
		}
		reason := strings.TrimSpace(req.Reason)
		if reason == "" && req.Context != nil && req.Context.ThreatID != nil {
			reason = "threat " + *req.Context.ThreatID
		}
		if hop.RequiresReason && reason == "" {
			return g.denyEscalation(p, subject, &req, nil, warden.EDENIED, "Escalation to %s requires a reason", to)
		}
		if _, err := tx.NextCounter(generationKey(subject)); err != nil {
			return err
		}
		esc := &warden.Escalation{
			EscalationID:        warden.EscalationID(random),
			Subject:             subject,
			RequestedBy:         p.Name,
			FromProfile:         from,
			ToProfile:           to,
			EscalationType:      typ,
			Reason:              reason,
			Reversible:          hop.Reversible,
			AutoDeescalate:      hop.AutoDeescalate,
			DeescalateCondition: req.DeescalateCondition,
			ApprovedBy:          approvers,
			CreatedAt:           warden.FormatTime(now),
			Active:              true,
			Drill:               g.core.Drill(),
		}
		if esc.DeescalateCondition == "" {
			esc.DeescalateCondition = "timeout"
		}
		if req.Context != nil {
			esc.Context = *req.Context
		}
		if esc.Context.MeshHealth == "" {
			esc.Context.MeshHealth = "unknown"
		}
		if ttl := hop.TTL(req.TTLSeconds); ttl > 0 {
			deadline := now.Add(time.Duration(ttl) * time.Second)
			// A hop never outlives the hop it stands on, so the ladder
			// always comes down from the top.
			if n := len(stack); n > 0 {
				if below, ok := stack[n-1].Expiry(); ok && below.Before(deadline) {
					deadline = below
					ttl = int(below.Sub(now).Seconds())
				}
			}
			exp := warden.FormatTime(deadline)
			esc.ExpiresAt, esc.DeescalateAfterSeconds = &exp, &ttl
		}
		// The Tem context hash exists before the receipt and is part of it.
		temCtx, err := ledger.Canonical(map[string]any{
			"escalation_id":      esc.EscalationID,
			"profile_transition": fmt.Sprintf("%s → %s", from, to),
			"threat_context":     esc.Context,
			"timestamp":          esc.CreatedAt,
		})
		if err != nil {
			return err
		}
		esc.TemContextHash = ledger.BodyHash(temCtx)
		r, err := tx.Append(g.escalationDraft(esc, "escalation", p.Name, reason))
		if err != nil {
			return err
		}
		esc.ReceiptHash = r.RootHash
		if err := tx.PutEscalation(esc); err != nil {
			return err
		}
		res = &EscalateResult{Success: true, EscalationID: esc.EscalationID, Subject: subject, FromProfile: from, ToProfile: to,
			EscalationType: typ, Reversible: esc.Reversible, ExpiresAt: esc.ExpiresAt, ReceiptHash: esc.ReceiptHash,
			TemContextHash: esc.TemContextHash, DeescalateCondition: esc.DeescalateCondition, ApprovedBy: nonNilStrings(approvers), Escalation: esc,
			ExpiredFirst: expired}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return res, nil
}

func nonNilStrings(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// StringList is a JSON string or array of strings.
type StringList []string

// UnmarshalJSON accepts "a" or ["a", "b"].
func (s *StringList) UnmarshalJSON(b []byte) error {
	var one string
	if err := json.Unmarshal(b, &one); err == nil {
		if one == "" {
			*s = nil
		} else {
			*s = StringList{one}
		}
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		return fmt.Errorf("must be a string or an array of strings")
	}
	*s = many
	return nil
}

// ThreatRequest is escalate_on_threat's arguments. CurrentProfile, if
// given, is checked against the subject's real profile, never trusted.
type ThreatRequest struct {
	CurrentProfile string  `json:"current_profile,omitempty"`
	ThreatID       string  `json:"threat_id"`
	ThreatType     string  `json:"threat_type"`
	Confidence     float64 `json:"confidence"`
	Subject        string  `json:"subject,omitempty"`
}

// EscalateOnThreat escalates on a detected threat (seed 002): observer →
// operator always, operator → guardian at the hop's confidence threshold
// (0.8), guardian → phoenix at 0.95 (and phoenix still needs approval).
// current_profile, if given, is checked against the real one.
func (g *Governor) EscalateOnThreat(ctx context.Context, p *warden.Principal, a ThreatRequest) (*EscalateResult, error) {
	if a.Confidence < 0 || a.Confidence > 1 {
		return nil, warden.Errorf(warden.EINVALID, "confidence must be between 0 and 1.")
	}
	subject, err := subjectOf(p, a.Subject)
	if err != nil {
		return nil, err
	}
	cur, err := g.CurrentProfile(ctx, subject)
	if err != nil {
		return nil, err
	}
	var to warden.Profile
	for _, h := range g.ladder.Hops {
		if h.From == cur && a.Confidence >= h.AutoOnThreatConfidence {
			to = h.To
		}
	}
	req := EscalateRequest{FromProfile: a.CurrentProfile, EscalationType: string(warden.EscalationThreatDetected), Subject: a.Subject,
		Context:             &warden.EscalationContext{ThreatID: &a.ThreatID, ThreatType: &a.ThreatType, ThreatConfidence: &a.Confidence},
		DeescalateCondition: "no_active_threats_1h"}
	if to == "" {
		body := map[string]any{"subject": subject, "principal": p.Name, "current_profile": cur, "confidence": a.Confidence, "threat_id": a.ThreatID}
		return nil, g.core.Update(ctx, "governor.EscalateOnThreat", func(tx warden.Tx) error {
			return g.core.Deny(warden.ReceiptEscalationDenied, body, warden.EDENIED,
				"Confidence %g insufficient for escalation from %s", a.Confidence, cur).WithData(map[string]any{"escalated": false})
		})
	}
	req.ToProfile = string(to)
	return g.Escalate(ctx, p, req)
}
