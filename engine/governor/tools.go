package governor

import (
	"context"
	"encoding/json"
	"sort"

	warden "github.com/warden-sh/warden"
	"github.com/warden-sh/warden/engine"
	"github.com/warden-sh/warden/jsonx"
)

// Tool is one governance operation exposed with seed 000's tool name, over
// HTTP (POST /api/v1/governance/{name}) and MCP alike.
type Tool struct {
	Name        string
	Description string
	// NewArgs returns a pointer to a zero argument struct; transports decode
	// into it strictly and derive the input schema from its type.
	NewArgs func() any
	// Call runs the tool; args is what NewArgs returned, decoded.
	Call func(ctx context.Context, g *Governor, p *warden.Principal, args any) (any, error)
}

// DefaultAuthority is the minimum profile each tool needs (docs/GOVERNANCE.md).
// Ladder rules (approvals, adjacency) apply on top for the escalation tools.
var DefaultAuthority = map[string]warden.Profile{
	"cognitive_context":          warden.ProfileObserver,
	"get_active_escalations":     warden.ProfileObserver,
	"get_escalation_history":     warden.ProfileObserver,
	"cognitive_audit_trail":      warden.ProfileObserver,
	"guardian_status":            warden.ProfileObserver,
	"treasury_balance":           warden.ProfileObserver,
	"escalate":                   warden.ProfileObserver,
	"escalate_on_threat":         warden.ProfileObserver,
	"escalate_to_phoenix":        warden.ProfileObserver,
	"deescalate":                 warden.ProfileObserver,
	"check_expired_escalations":  warden.ProfileObserver,
	"approve_escalation":         warden.ProfileObserver,
	"cognitive_decide":           warden.ProfileObserver,
	"treasury_create_budget":     warden.ProfileObserver,
	"treasury_debit":             warden.ProfileObserver,
	"treasury_credit":            warden.ProfileObserver,
	"cognitive_invoke_tem":       warden.ProfileGuardian,
	"guardian_anchor":            warden.ProfileGuardian,
	"register_approver_key":      warden.ProfileObserver,
	"phoenix_revoke_credentials": warden.ProfilePhoenix,
	"phoenix_lockdown":           warden.ProfilePhoenix,
	"phoenix_rotate_key":         warden.ProfilePhoenix,
}

// Authorized is the authority decision: may a caller at profile call tool
// under matrix? Unknown tools are never authorized. It is pure and cheap
// (BenchmarkAuthorityDecision).
func Authorized(matrix map[string]warden.Profile, tool string, profile warden.Profile) bool {
	min, ok := matrix[tool]
	return ok && profile.Rank() >= min.Rank() && profile.Rank() > 0
}

type contextArgs struct {
	Include []string `json:"include,omitempty"`
}
type phoenixArgs struct {
	Reason             string            `json:"reason"`
	ApprovedBy         StringList        `json:"approved_by"`
	ApprovalSignatures map[string]string `json:"approval_signatures,omitempty"`
	Subject            string            `json:"subject,omitempty"`
}
type activeArgs struct {
	Subject string `json:"subject,omitempty"`
}
type noArgs struct{}
type budgetArgs struct {
	BudgetID string `json:"budget_id"`
}
type approveArgs struct {
	RequestDigest string `json:"request_digest"`
}
type reasonArgs struct {
	Reason string `json:"reason"`
}

func tool[A any](name, desc string, call func(ctx context.Context, g *Governor, p *warden.Principal, a *A) (any, error)) *Tool {
	return &Tool{
		Name: name, Description: desc,
		NewArgs: func() any { return new(A) },
		Call: func(ctx context.Context, g *Governor, p *warden.Principal, args any) (any, error) {
			return call(ctx, g, p, args.(*A))
		},
	}
}

// SweepResult is check_expired_escalations' answer.
type SweepResult struct {
	Expired []*DeescalateResult `json:"expired"`
	Count   int                 `json:"count"`
}

// ApproveResult is approve_escalation's answer.
type ApproveResult struct {
	Success  bool             `json:"success"`
	Approval *warden.Approval `json:"approval"`
}

var tools = []*Tool{
	tool("cognitive_context", "Read system context: include any of health, treasury, escalations, profile, incidents, guardian.",
		func(ctx context.Context, g *Governor, p *warden.Principal, a *contextArgs) (any, error) {
			return g.CognitiveContext(ctx, p, a.Include)
		}),
	tool("escalate", "Escalate one hop up the ladder observer → operator → guardian → phoenix → sovereign (human-only), from the current profile.",
		func(ctx context.Context, g *Governor, p *warden.Principal, a *EscalateRequest) (any, error) {
			return g.Escalate(ctx, p, *a)
		}),
	tool("escalate_on_threat", "Escalate on a detected threat; the target profile follows from the current profile and the confidence.",
		func(ctx context.Context, g *Governor, p *warden.Principal, a *ThreatRequest) (any, error) {
			return g.EscalateOnThreat(ctx, p, *a)
		}),
	tool("escalate_to_phoenix", "Declare a crisis: guardian → phoenix, with verified approval.",
		func(ctx context.Context, g *Governor, p *warden.Principal, a *phoenixArgs) (any, error) {
			return g.Escalate(ctx, p, EscalateRequest{ToProfile: string(warden.ProfilePhoenix), EscalationType: string(warden.EscalationCrisisDeclared),
				Context: &warden.EscalationContext{MeshHealth: "crisis"}, Reason: a.Reason, ApprovedBy: a.ApprovedBy,
				ApprovalSignatures: a.ApprovalSignatures, DeescalateCondition: "crisis_resolved", Subject: a.Subject})
		}),
	tool("deescalate", "Undo an active escalation (and the hops above it); crisis_concluded and sovereign_revoke return to baseline.",
		func(ctx context.Context, g *Governor, p *warden.Principal, a *DeescalateRequest) (any, error) {
			return g.Deescalate(ctx, p, *a)
		}),
	tool("check_expired_escalations", "De-escalate every escalation whose TTL has passed, now.",
		func(ctx context.Context, g *Governor, p *warden.Principal, a *noArgs) (any, error) {
			r, err := g.SweepExpired(ctx)
			if r == nil {
				r = []*DeescalateResult{}
			}
			return &SweepResult{Expired: r, Count: len(r)}, err
		}),
	tool("get_active_escalations", "List active escalations (your own; operators may pass subject, or \"*\" for all).",
		func(ctx context.Context, g *Governor, p *warden.Principal, a *activeArgs) (any, error) {
			subject := p.Name
			if a.Subject != "" && a.Subject != p.Name {
				// Another principal's escalations, or everyone's ("*"), are
				// an operator's to read (the transports receipt the 403).
				if !p.HasRole(warden.RoleOperator) {
					return nil, warden.Errorf(warden.EFORBIDDEN, "Principal %q may only list its own escalations: another principal's, or \"*\" for all, needs the operator role.", p.Name)
				}
				subject = a.Subject
			}
			return g.ActiveEscalations(ctx, subject)
		}),
	tool("get_escalation_history", "Escalation and de-escalation receipts, newest first, with context and tags.",
		func(ctx context.Context, g *Governor, p *warden.Principal, a *HistoryRequest) (any, error) {
			return g.EscalationHistory(ctx, *a)
		}),
	tool("approve_escalation", "Approve an escalation request digest (approver credential).",
		func(ctx context.Context, g *Governor, p *warden.Principal, a *approveArgs) (any, error) {
			ap, err := g.Approve(ctx, p, a.RequestDigest)
			if err != nil {
				return nil, err
			}
			return &ApproveResult{Success: true, Approval: ap}, nil
		}),
	tool("register_approver_key", "Register an approver's ed25519 public key (admin).",
		func(ctx context.Context, g *Governor, p *warden.Principal, a *ApproverKeyRequest) (any, error) {
			return g.RegisterApproverKey(ctx, p, *a)
		}),
	tool("cognitive_decide", "Record a decision with its reasoning in the cognitive scroll.",
		func(ctx context.Context, g *Governor, p *warden.Principal, a *DecideRequest) (any, error) {
			return g.Decide(ctx, p, *a)
		}),
	tool("cognitive_invoke_tem", "Invoke Tem threat response (guardian or above).",
		func(ctx context.Context, g *Governor, p *warden.Principal, a *TemRequest) (any, error) {
			return g.InvokeTem(ctx, p, *a)
		}),
	tool("cognitive_audit_trail", "Decisions and Tem invocations, newest first.",
		func(ctx context.Context, g *Governor, p *warden.Principal, a *AuditTrailRequest) (any, error) {
			return g.AuditTrail(ctx, *a)
		}),
	tool("treasury_create_budget", "Create a budget (drill mode: isolated, at most 1000 units).",
		func(ctx context.Context, g *Governor, p *warden.Principal, a *CreateBudgetRequest) (any, error) {
			return g.CreateBudget(ctx, p, *a)
		}),
	tool("treasury_debit", "Spend from a budget; over budget is refused with \"insufficient funds\" and receipted.",
		func(ctx context.Context, g *Governor, p *warden.Principal, a *MoveRequest) (any, error) {
			return g.Debit(ctx, p, *a)
		}),
	tool("treasury_credit", "Add funds to a budget.",
		func(ctx context.Context, g *Governor, p *warden.Principal, a *MoveRequest) (any, error) {
			return g.Credit(ctx, p, *a)
		}),
	tool("treasury_balance", "A budget's allocation, spend and balance.",
		func(ctx context.Context, g *Governor, p *warden.Principal, a *budgetArgs) (any, error) {
			return g.Budget(ctx, a.BudgetID)
		}),
	tool("guardian_status", "Scroll roots and the latest signed checkpoint.",
		func(ctx context.Context, g *Governor, p *warden.Principal, a *noArgs) (any, error) {
			return g.GuardianStatus(ctx)
		}),
	tool("guardian_anchor", "Sign a checkpoint now and export it to the mirror (DRILL/* in drill mode).",
		func(ctx context.Context, g *Governor, p *warden.Principal, a *noArgs) (any, error) {
			return g.Anchor(ctx, p)
		}),
	tool("phoenix_revoke_credentials", "Revoke every credential but the admins', the caller's and human approvers' (phoenix, human requester; dry-run in drill mode).",
		func(ctx context.Context, g *Governor, p *warden.Principal, a *noArgs) (any, error) {
			return g.RevokeAll(ctx, p)
		}),
	tool("phoenix_rotate_key", "Hand the ledger over to a new signing key, co-signed by the old one (phoenix, human requester; dry-run in drill mode).",
		func(ctx context.Context, g *Governor, p *warden.Principal, a *noArgs) (any, error) {
			return g.RotateKey(ctx, p)
		}),
	tool("phoenix_lockdown", "Freeze every agent and disable the airlock (phoenix; dry-run in drill mode).",
		func(ctx context.Context, g *Governor, p *warden.Principal, a *reasonArgs) (any, error) {
			return g.Lockdown(ctx, p, a.Reason)
		}),
}

// Authority returns the tool → minimum profile matrix in force.
func (g *Governor) Authority() map[string]warden.Profile { return g.authority }

// Tools lists the governance tools, sorted by name.
func Tools() []*Tool {
	out := append([]*Tool(nil), tools...)
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// CallTool decodes a tool's arguments strictly, checks the authority
// matrix against the caller's current profile (a call below the minimum is
// denied with an auth_failure receipt), and runs the tool.
func (g *Governor) CallTool(ctx context.Context, p *warden.Principal, name string, raw json.RawMessage) (any, error) {
	var t *Tool
	for _, x := range tools {
		if x.Name == name {
			t = x
		}
	}
	if t == nil {
		return nil, warden.Errorf(warden.ENOTFOUND, "Unknown tool %q.", name)
	}
	args := t.NewArgs()
	if len(raw) == 0 {
		raw = json.RawMessage("{}")
	}
	if err := jsonx.DecodeRequired(raw, args); err != nil {
		return nil, err
	}
	prof, err := g.CurrentProfile(ctx, p.Name)
	if err != nil {
		return nil, err
	}
	if !Authorized(g.authority, name, prof) {
		err := warden.Errorf(warden.EDENIED, "Tool %s requires profile %s or above; %s is %s.", name, g.authority[name], p.Name, prof)
		// Receipted like every refused request, under the same flood limit.
		g.core.RecordAuthFailure(ctx, engine.AuthFailure{Status: 403, Code: warden.EDENIED, Reason: err.Message, Principal: p.Name,
			Method: "tool", Path: name, Tool: name})
		return nil, err
	}
	return t.Call(ctx, g, p, args)
}
