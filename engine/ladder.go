package engine

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	warden "github.com/warden-sh/warden"
	"github.com/warden-sh/warden/ledger"
)

// Identity-scroll receipt types of the authority ladder (seed 002).
const (
	ReceiptEscalation       = "profile_escalation"
	ReceiptDeescalation     = "profile_deescalation"
	ReceiptEscalationDenied = "escalation_denied"
	ReceiptApproval         = "approval_recorded"
	ReceiptApproverKey      = "approver_key_registered"
)

// ApprovalLifetime bounds how long an approval may wait to be used.
const ApprovalLifetime = time.Hour

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
	Reason              string                    `json:"reason,omitempty"`
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
}

func (e *Engine) escalationDraft(esc *warden.Escalation, event, principal, reason string) warden.Draft {
	body := escalationBody{
		EscalationID: esc.EscalationID, EventType: event, FromProfile: esc.FromProfile, ToProfile: esc.ToProfile,
		EscalationType: esc.EscalationType, Reversible: esc.Reversible, Context: esc.Context, ExpiresAt: esc.ExpiresAt,
		Active: esc.Active, Subject: esc.Subject, Principal: principal, Reason: reason, ApprovedBy: esc.ApprovedBy,
		TemContextHash: esc.TemContextHash,
	}
	if event == "deescalation" {
		body.DeescalatedAt, body.DeescalationType = esc.DeescalatedAt, esc.DeescalationType
	}
	tags := []string{"escalation", event, string(esc.FromProfile), string(esc.ToProfile)}
	if esc.Context.ThreatID != nil {
		tags = append(tags, *esc.Context.ThreatID)
	}
	return e.draft("profile_"+event, warden.ScrollIdentity, body, tags...)
}

// subjectOf resolves whom a governance call acts on.
func subjectOf(p *warden.Principal, subject string) (string, error) {
	if subject == "" || subject == p.Name {
		return p.Name, nil
	}
	if !p.HasRole(warden.RoleOperator) {
		return "", warden.Errorf(warden.EFORBIDDEN, "Principal %q may only act on itself, not on %q (operators and admins may name a subject).", p.Name, subject)
	}
	return subject, warden.ValidatePrincipalName(subject)
}

// currentProfile is the subject's profile at now: its deepest active hop
// whose TTL has not passed, or observer. Expired hops the sweeper has not
// reached yet grant nothing.
func currentProfile(tx warden.ReadTx, subject string, now time.Time) (warden.Profile, []*warden.Escalation, error) {
	stack, err := tx.ActiveEscalations(subject)
	if err != nil {
		return "", nil, err
	}
	for i := len(stack) - 1; i >= 0; i-- {
		if exp, ok := stack[i].Expiry(); ok && stack[i].AutoDeescalate && !exp.After(now) {
			continue
		}
		return stack[i].ToProfile, stack, nil
	}
	return warden.ProfileObserver, stack, nil
}

// requireProfile refuses, with an auth_failure receipt, a caller whose
// current profile is below min; tools that act with authority call it
// inside their own transaction, so a concurrent de-escalation cannot slip
// between the check and the act.
func (e *Engine) requireProfile(tx warden.Tx, p *warden.Principal, tool string, min warden.Profile) (warden.Profile, error) {
	prof, _, err := currentProfile(tx, p.Name, e.now())
	if err != nil {
		return "", err
	}
	if prof.Rank() < min.Rank() {
		return prof, e.deny(warden.ReceiptAuthFailure, warden.ScrollIdentity, map[string]any{"tool": tool, "principal": p.Name,
			"profile": prof, "required": min}, warden.EDENIED, "Tool %s requires profile %s or above; %s is %s.", tool, min, p.Name, prof)
	}
	return prof, nil
}

// CurrentProfile returns a subject's current profile.
func (e *Engine) CurrentProfile(ctx context.Context, subject string) (warden.Profile, error) {
	var p warden.Profile
	err := e.store.View(ctx, func(tx warden.ReadTx) (err error) {
		p, _, err = currentProfile(tx, subject, e.now())
		return err
	})
	return p, err
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

func (e *Engine) denyEscalation(p *warden.Principal, subject string, req *EscalateRequest, data map[string]any, code, format string, args ...any) error {
	body := map[string]any{"subject": subject, "principal": p.Name, "from_profile": req.FromProfile, "to_profile": req.ToProfile,
		"escalation_type": req.EscalationType}
	if req.Context != nil && req.Context.ThreatID != nil {
		body["threat_id"] = *req.Context.ThreatID
	}
	err := e.deny(ReceiptEscalationDenied, warden.ScrollIdentity, body, code, format, args...)
	if len(data) > 0 {
		err.(*denial).err.Data = data
	}
	return err
}

// Escalate raises a subject one hop up the ladder, with the seed's rules
// and warden's fixes: the hop starts from the current profile; only
// adjacent hops exist; approvals must come from registered approvers other
// than the requester, verified by their recorded approval (their own
// credential) or an ed25519 signature over the request digest, in the
// configured quorum; the Tem context hash is computed before the receipt
// and is inside it. Every refusal changes nothing and is receipted, with
// the seed's sentences (EDENIED).
func (e *Engine) Escalate(ctx context.Context, p *warden.Principal, req EscalateRequest) (*EscalateResult, error) {
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
		return nil, err
	}
	now := e.now()
	var res *EscalateResult
	err = e.update(ctx, func(tx warden.Tx) error {
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
		expired, stack, err := e.expireSubject(tx, subject, now)
		if err != nil {
			return err
		}
		from := warden.ProfileObserver
		if len(stack) > 0 {
			from = stack[len(stack)-1].ToProfile
		}
		if req.FromProfile != "" && warden.Profile(req.FromProfile) != from {
			return e.denyEscalation(p, subject, &req, nil, warden.EDENIED,
				"No escalation path from %s to %s: %s's current profile is %s, and escalations start from the current profile.", req.FromProfile, to, subject, from)
		}
		hop := e.ladder.Hop(from, to)
		if hop == nil {
			return e.denyEscalation(p, subject, &req, nil, warden.EDENIED, "No escalation path from %s to %s", from, to)
		}
		if hop.RequiresHuman && typ != warden.EscalationSovereignOverride {
			return e.denyEscalation(p, subject, &req, nil, warden.EDENIED, "Escalation to %s requires human (sovereign) approval", to)
		}
		gen, err := tx.Counter(generationKey(subject))
		if err != nil {
			return err
		}
		digest := RequestDigest(subject, from, to, typ, gen)
		var approvers []string
		if hop.RequiresApproval {
			if approvers, err = e.checkApprovals(tx, p, subject, &req, hop, digest, now); err != nil {
				return err
			}
		}
		reason := strings.TrimSpace(req.Reason)
		if reason == "" && req.Context != nil && req.Context.ThreatID != nil {
			reason = "threat " + *req.Context.ThreatID
		}
		if hop.RequiresReason && reason == "" {
			return e.denyEscalation(p, subject, &req, nil, warden.EDENIED, "Escalation to %s requires a reason", to)
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
			Drill:               e.drill,
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
		r, err := tx.Append(e.escalationDraft(esc, "escalation", p.Name, reason))
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
	e.countReceipt(warden.ScrollIdentity)
	return res, nil
}

func nonNilStrings(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// checkApprovals verifies the approvals of a hop that requires them and
// returns the approvers counted towards the quorum.
func (e *Engine) checkApprovals(tx warden.Tx, p *warden.Principal, subject string, req *EscalateRequest, hop *warden.HopPolicy, digest string, now time.Time) ([]string, error) {
	quorum := max(hop.Quorum, 1)
	need := map[string]any{"approval_required": true, "request_digest": digest, "quorum": quorum}
	if len(req.ApprovedBy) == 0 {
		return nil, e.denyEscalation(p, subject, req, need, warden.EDENIED, "Escalation to %s requires approval", hop.To)
	}
	recorded, err := tx.Approvals(digest)
	if err != nil {
		return nil, err
	}
	var ok []string
	for _, name := range req.ApprovedBy {
		if slices.Contains(ok, name) {
			continue
		}
		if name == p.Name || name == subject {
			return nil, e.denyEscalation(p, subject, req, need, warden.EDENIED, "Escalation to %s requires approval: %s cannot approve its own escalation", hop.To, name)
		}
		cred, err := tx.Credential(name)
		if warden.ErrorCode(err) == warden.ENOTFOUND || (err == nil && (cred.RevokedAt != nil || !cred.Principal().HasRole(warden.RoleApprover))) {
			return nil, e.denyEscalation(p, subject, req, need, warden.EDENIED, "Escalation to %s requires approval: %q is not a registered approver", hop.To, name)
		} else if err != nil {
			return nil, err
		}
		if sig, has := req.ApprovalSignatures[name]; has {
			key, err := tx.ApproverKey(name)
			if warden.ErrorCode(err) == warden.ENOTFOUND {
				return nil, e.denyEscalation(p, subject, req, need, warden.EDENIED, "Escalation to %s requires approval: approver %q has no registered key to check its signature", hop.To, name)
			} else if err != nil {
				return nil, err
			}
			raw, derr := base64.StdEncoding.DecodeString(sig)
			if derr != nil || len(key.PublicKey) != ed25519.PublicKeySize || !ed25519.Verify(key.PublicKey, []byte(digest), raw) {
				return nil, e.denyEscalation(p, subject, req, need, warden.EDENIED, "Escalation to %s requires approval: %s's signature over request %s does not verify", hop.To, name, digest)
			}
			ok = append(ok, name)
			continue
		}
		found := false
		for _, a := range recorded {
			if a.Approver != name {
				continue
			}
			at, perr := time.Parse(warden.TimeFormat, a.CreatedAt)
			if perr == nil && now.Sub(at) <= ApprovalLifetime {
				found = true
			}
		}
		if !found {
			return nil, e.denyEscalation(p, subject, req, need, warden.EDENIED, "Escalation to %s requires approval: %s has not approved request %s (approve_escalation within %s)", hop.To, name, digest, ApprovalLifetime)
		}
		ok = append(ok, name)
	}
	if len(ok) < quorum {
		return nil, e.denyEscalation(p, subject, req, need, warden.EDENIED, "Escalation to %s requires approval: %d of %d approvals", hop.To, len(ok), quorum)
	}
	return ok, nil
}

// Approve records the calling approver's approval of a request digest.
func (e *Engine) Approve(ctx context.Context, p *warden.Principal, digest string) (*warden.Approval, error) {
	if err := Authorize(p, "approve escalations", warden.RoleApprover); err != nil {
		return nil, err
	}
	if len(digest) != 64 {
		return nil, warden.Errorf(warden.EINVALID, "request_digest must be the 64 hex digits an escalation denial returned.")
	}
	if _, err := hex.DecodeString(digest); err != nil {
		return nil, warden.Errorf(warden.EINVALID, "request_digest must be hex.")
	}
	a := &warden.Approval{RequestDigest: digest, Approver: p.Name, Method: "credential", CreatedAt: warden.FormatTime(e.now())}
	err := e.store.Update(ctx, func(tx warden.Tx) error {
		// Approving twice is idempotent: the first approval stands and no
		// second receipt contradicts the stored one.
		existing, err := tx.Approvals(digest)
		if err != nil {
			return err
		}
		for _, x := range existing {
			if x.Approver == p.Name {
				a = x
				return nil
			}
		}
		if err := tx.PutApproval(a); err != nil {
			return err
		}
		_, err = tx.Append(e.draft(ReceiptApproval, warden.ScrollIdentity, a, "approval"))
		return err
	})
	if err != nil {
		return nil, err
	}
	return a, nil
}

// RegisterApproverKey registers an approver's ed25519 public key (admin).
func (e *Engine) RegisterApproverKey(ctx context.Context, p *warden.Principal, approver string, pub []byte) error {
	if err := Authorize(p, "register approver keys", warden.RoleAdmin); err != nil {
		return err
	}
	if len(pub) != ed25519.PublicKeySize {
		return warden.Errorf(warden.EINVALID, "public_key must be a %d-byte ed25519 key (base64).", ed25519.PublicKeySize)
	}
	k := &warden.ApproverKey{Approver: approver, PublicKey: pub, CreatedAt: warden.FormatTime(e.now())}
	return e.store.Update(ctx, func(tx warden.Tx) error {
		c, err := tx.Credential(approver)
		if warden.ErrorCode(err) == warden.ENOTFOUND || (err == nil && !c.Principal().HasRole(warden.RoleApprover)) {
			return warden.Errorf(warden.EINVALID, "%q is not a registered approver.", approver)
		} else if err != nil {
			return err
		}
		if err := tx.PutApproverKey(k); err != nil {
			return err
		}
		_, err = tx.Append(e.draft(ReceiptApproverKey, warden.ScrollIdentity, map[string]any{"approver": approver, "public_key": pub, "by": p.Name}, "approval"))
		return err
	})
}

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

// Deescalate undoes an active escalation and every hop above it, one hop
// at a time, each with its own profile_deescalation receipt; a concluded
// crisis or a sovereign revocation returns the subject to observer. An
// irreversible hop falls only to sovereign_revoke by an admin. The subject
// itself, operators and admins may de-escalate. Refusals (unknown or
// inactive escalation, not reversible) are receipted.
func (e *Engine) Deescalate(ctx context.Context, p *warden.Principal, id string, typ warden.DeescalationType, reason string) (*DeescalateResult, error) {
	if _, err := warden.ParseDeescalationType(string(typ)); err != nil {
		return nil, err
	}
	var res *DeescalateResult
	err := e.update(ctx, func(tx warden.Tx) error {
		denyBody := map[string]any{"escalation_id": id, "principal": p.Name, "deescalation_type": typ}
		target, err := tx.Escalation(id)
		if warden.ErrorCode(err) == warden.ENOTFOUND || (err == nil && !target.Active) {
			return e.deny(ReceiptEscalationDenied, warden.ScrollIdentity, denyBody, warden.ENOTFOUND, "Escalation %s not found or already inactive", id)
		} else if err != nil {
			return err
		}
		if target.Subject != p.Name && !p.HasRole(warden.RoleOperator) {
			return e.deny(ReceiptEscalationDenied, warden.ScrollIdentity, denyBody, warden.EFORBIDDEN,
				"Principal %q may not de-escalate %s's escalation %s.", p.Name, target.Subject, id)
		}
		res, err = e.popHops(tx, p, target, typ, reason, denyBody)
		return err
	})
	if err != nil {
		return nil, err
	}
	e.countReceipt(warden.ScrollIdentity)
	return res, nil
}

// popHops undoes target and the hops above it (all hops when typ returns
// to baseline), top first, in the caller's transaction.
func (e *Engine) popHops(tx warden.Tx, p *warden.Principal, target *warden.Escalation, typ warden.DeescalationType, reason string, denyBody map[string]any) (*DeescalateResult, error) {
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
			return nil, e.deny(ReceiptEscalationDenied, warden.ScrollIdentity, denyBody, warden.EDENIED,
				"Escalation %s is not reversible without sovereign override", h.EscalationID)
		}
		if !h.Reversible && !p.HasRole(warden.RoleAdmin) {
			return nil, e.deny(ReceiptEscalationDenied, warden.ScrollIdentity, denyBody, warden.EDENIED,
				"Escalation %s is not reversible without sovereign override, and only a human admin may revoke it", h.EscalationID)
		}
	}
	now := e.now()
	at := warden.FormatTime(now)
	res := &DeescalateResult{Success: true, EscalationID: target.EscalationID, FromProfile: target.ToProfile, ToProfile: target.FromProfile,
		DeescalationType: typ, Reason: reason}
	for i := len(stack) - 1; i >= idx; i-- {
		h := stack[i]
		h.Active = false
		h.DeescalatedAt, h.DeescalationType = &at, &typ
		r, err := tx.Append(e.escalationDraft(h, "deescalation", p.Name, reason))
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
func (e *Engine) SweepExpired(ctx context.Context) ([]*DeescalateResult, error) {
	var out []*DeescalateResult
	for {
		now := e.now()
		var due []*warden.Escalation
		if err := e.store.View(ctx, func(tx warden.ReadTx) (err error) {
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
			err := e.update(ctx, func(tx warden.Tx) (err error) {
				results, _, err = e.expireSubject(tx, d.Subject, now)
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
func (e *Engine) expireSubject(tx warden.Tx, subject string, now time.Time) ([]*DeescalateResult, []*warden.Escalation, error) {
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
		r, err := e.popHops(tx, sweeper, top, warden.DeescalationTimeoutExpired, fmt.Sprintf("TTL of %ds expired", ttl), map[string]any{"escalation_id": top.EscalationID})
		if err != nil {
			return out, nil, err
		}
		out = append(out, r)
	}
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
