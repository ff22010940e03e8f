package governor

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/hex"
	"slices"
	"time"

	warden "github.com/warden-sh/warden"
	"github.com/warden-sh/warden/engine"
)

// ApprovalLifetime bounds how long an approval may wait to be used.
const ApprovalLifetime = time.Hour

// checkApprovals verifies the approvals of a hop that requires them and
// returns the approvers counted towards the quorum. Neither the requester
// nor the subject may approve; a human-only hop counts only approvers
// whose credentials are marked human.
func (g *Governor) checkApprovals(tx warden.Tx, p *warden.Principal, subject string, req *EscalateRequest, hop *warden.HopPolicy, digest string, now time.Time) ([]string, error) {
	quorum := max(hop.Quorum, 1)
	need := map[string]any{"approval_required": true, "request_digest": digest, "quorum": quorum}
	if len(req.ApprovedBy) == 0 {
		return nil, g.denyEscalation(p, subject, req, need, warden.EDENIED, "Escalation to %s requires approval", hop.To)
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
			return nil, g.denyEscalation(p, subject, req, need, warden.EDENIED, "Escalation to %s requires approval: %s cannot approve its own escalation", hop.To, name)
		}
		cred, err := tx.Credential(name)
		if warden.ErrorCode(err) == warden.ENOTFOUND || (err == nil && (cred.RevokedAt != nil || !cred.Principal().HasRole(warden.RoleApprover))) {
			return nil, g.denyEscalation(p, subject, req, need, warden.EDENIED, "Escalation to %s requires approval: %q is not a registered approver", hop.To, name)
		} else if err != nil {
			return nil, err
		}
		if hop.RequiresHuman && !cred.IsActiveHuman() {
			return nil, g.denyEscalation(p, subject, req, need, warden.EDENIED,
				"Escalation to %s requires human (sovereign) approval: approver %q is not a credential an admin marked human", hop.To, name)
		}
		if sig, has := req.ApprovalSignatures[name]; has {
			key, err := tx.ApproverKey(name)
			if warden.ErrorCode(err) == warden.ENOTFOUND {
				return nil, g.denyEscalation(p, subject, req, need, warden.EDENIED, "Escalation to %s requires approval: approver %q has no registered key to check its signature", hop.To, name)
			} else if err != nil {
				return nil, err
			}
			raw, derr := base64.StdEncoding.DecodeString(sig)
			if derr != nil || len(key.PublicKey) != ed25519.PublicKeySize || !ed25519.Verify(key.PublicKey, []byte(digest), raw) {
				return nil, g.denyEscalation(p, subject, req, need, warden.EDENIED, "Escalation to %s requires approval: %s's signature over request %s does not verify", hop.To, name, digest)
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
			return nil, g.denyEscalation(p, subject, req, need, warden.EDENIED, "Escalation to %s requires approval: %s has not approved request %s (approve_escalation within %s)", hop.To, name, digest, ApprovalLifetime)
		}
		ok = append(ok, name)
	}
	if len(ok) < quorum {
		return nil, g.denyEscalation(p, subject, req, need, warden.EDENIED, "Escalation to %s requires approval: %d of %d approvals", hop.To, len(ok), quorum)
	}
	return ok, nil
}

// Approve records the calling approver's approval of a request digest.
func (g *Governor) Approve(ctx context.Context, p *warden.Principal, digest string) (*warden.Approval, error) {
	if err := engine.Authorize(p, "approve escalations", warden.RoleApprover); err != nil {
		return nil, err
	}
	if len(digest) != 64 {
		return nil, warden.Errorf(warden.EINVALID, "request_digest must be the 64 hex digits an escalation denial returned.")
	}
	if _, err := hex.DecodeString(digest); err != nil {
		return nil, warden.Errorf(warden.EINVALID, "request_digest must be hex.")
	}
	a := &warden.Approval{RequestDigest: digest, Approver: p.Name, Method: "credential", CreatedAt: warden.FormatTime(g.core.Now())}
	err := g.core.Update(ctx, "governor.Approve", func(tx warden.Tx) error {
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
		_, err = tx.Append(g.core.Draft(warden.ReceiptApproval, a, "approval"))
		return err
	})
	if err != nil {
		return nil, err
	}
	return a, nil
}

// ApproverKeyRequest is register_approver_key's arguments.
type ApproverKeyRequest struct {
	Approver  string `json:"approver"`
	PublicKey string `json:"public_key"` // base64 ed25519
}

// ApproverKeyResult is register_approver_key's answer.
type ApproverKeyResult struct {
	Success  bool   `json:"success"`
	Approver string `json:"approver"`
}

// RegisterApproverKey registers an approver's ed25519 public key (admin),
// receipted. EINVALID unless the key is a base64 ed25519 key and the
// approver a registered approver.
func (g *Governor) RegisterApproverKey(ctx context.Context, p *warden.Principal, req ApproverKeyRequest) (*ApproverKeyResult, error) {
	if err := engine.Authorize(p, "register approver keys", warden.RoleAdmin); err != nil {
		return nil, err
	}
	pub, err := base64.StdEncoding.DecodeString(req.PublicKey)
	if err != nil {
		return nil, warden.Errorf(warden.EINVALID, "public_key must be base64.")
	}
	if len(pub) != ed25519.PublicKeySize {
		return nil, warden.Errorf(warden.EINVALID, "public_key must be a %d-byte ed25519 key (base64).", ed25519.PublicKeySize)
	}
	approver := req.Approver
	k := &warden.ApproverKey{Approver: approver, PublicKey: pub, CreatedAt: warden.FormatTime(g.core.Now())}
	err = g.core.Update(ctx, "governor.RegisterApproverKey", func(tx warden.Tx) error {
		c, err := tx.Credential(approver)
		if warden.ErrorCode(err) == warden.ENOTFOUND || (err == nil && !c.Principal().HasRole(warden.RoleApprover)) {
			return warden.Errorf(warden.EINVALID, "%q is not a registered approver.", approver)
		} else if err != nil {
			return err
		}
		if err := tx.PutApproverKey(k); err != nil {
			return err
		}
		_, err = tx.Append(g.core.Draft(warden.ReceiptApproverKey, map[string]any{"approver": approver, "public_key": pub, "by": p.Name, "created_at": k.CreatedAt}, "approval"))
		return err
	})
	if err != nil {
		return nil, err
	}
	return &ApproverKeyResult{Success: true, Approver: approver}, nil
}
