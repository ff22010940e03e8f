package governor

import (
	"context"
	"slices"

	warden "github.com/warden-sh/warden"
	"github.com/warden-sh/warden/engine"
)

// RevokeAllResult is phoenix_revoke_credentials' answer.
type RevokeAllResult struct {
	Success bool     `json:"success"`
	Revoked []string `json:"revoked"`
	DryRun  bool     `json:"dry_run"`
}

// RevokeAll revokes every credential except the admins', the caller's
// and the human approvers' (phoenix, human requester only): the agents go,
// the people who administer and approve the way back stay. It is refused,
// and the refusal receipted, if afterwards no active admin or no active
// approver would remain. In drill mode nothing is revoked and the dry run
// is receipted as such.
func (g *Governor) RevokeAll(ctx context.Context, p *warden.Principal) (*RevokeAllResult, error) {
	const tool = "phoenix_revoke_credentials"
	var revoked []string
	err := g.core.Update(ctx, "governor.RevokeAll", func(tx warden.Tx) error {
		if _, err := g.requireProfile(tx, p, tool, g.authority[tool]); err != nil {
			return err
		}
		if err := g.requireHuman(tx, p, tool); err != nil {
			return err
		}
		creds, err := tx.Credentials()
		if err != nil {
			return err
		}
		at := g.core.Now()
		var revoke []string
		admins, approvers := 0, 0
		for _, c := range creds {
			if c.RevokedAt != nil {
				continue
			}
			if slices.Contains(c.Roles, warden.RoleAdmin) || c.Name == p.Name || (c.Human && slices.Contains(c.Roles, warden.RoleApprover)) {
				if slices.Contains(c.Roles, warden.RoleAdmin) {
					admins++
				}
				if slices.Contains(c.Roles, warden.RoleApprover) {
					approvers++
				}
				continue
			}
			revoke = append(revoke, c.Name)
		}
		if admins == 0 || approvers == 0 {
			return g.core.Deny(warden.ReceiptPhoenixDenied, map[string]any{"tool": tool, "principal": p.Name,
				"admins_left": admins, "approvers_left": approvers, "would_revoke": nonNilStrings(revoke)}, warden.EDENIED,
				"Mass revocation refused: it would leave %d active admin(s) and %d active approver(s), and it must leave at least one of each (it keeps admins, the caller and human approvers; mark an approver human with `warden credential human NAME true`).", admins, approvers)
		}
		for _, name := range revoke {
			if !g.core.Drill() {
				if err := tx.RevokeCredential(name, at); err != nil {
					return err
				}
			}
			revoked = append(revoked, name)
		}
		_, err = tx.Append(g.core.Draft(warden.ReceiptPhoenixRevoke, map[string]any{"principal": p.Name,
			"credentials": nonNilStrings(revoked), "dry_run": g.core.Drill(), "reversible": false, "revoked_at": warden.FormatTime(at)}, "phoenix"))
		return err
	})
	if err != nil {
		return nil, err
	}
	return &RevokeAllResult{Success: true, Revoked: nonNilStrings(revoked), DryRun: g.core.Drill()}, nil
}

// LockdownResult is phoenix_lockdown's answer: success only if every
// action succeeded.
type LockdownResult struct {
	Success    bool                       `json:"success"`
	LockdownID string                     `json:"lockdown_id"`
	Results    []warden.ContainmentResult `json:"results"`
	DryRun     bool                       `json:"dry_run"`
}

// Lockdown freezes every agent and disables the airlock through the
// containment targets (phoenix); dry-run in drill mode.
func (g *Governor) Lockdown(ctx context.Context, p *warden.Principal, reason string) (*LockdownResult, error) {
	pol, _ := g.incidents.Policy() // the policy when asked, whatever a reload does meanwhile
	pseudo := &warden.Incident{ID: randomID("LOCKDOWN-"), Class: warden.ClassUnauthorizedAccess, Severity: warden.SeverityCritical,
		Source: "warden:phoenix", Description: "global lockdown: " + reason, Evidence: map[string]string{}}
	actions := []string{warden.ActionFreezeAgent, warden.ActionDisableAirlock}
	// The lockdown is receipted before anything is frozen, so an action
	// never happens without its record, even if warden dies mid-way.
	err := g.core.Update(ctx, "governor.Lockdown", func(tx warden.Tx) error {
		if _, err := g.requireProfile(tx, p, "phoenix_lockdown", g.authority["phoenix_lockdown"]); err != nil {
			return err
		}
		_, err := tx.Append(g.core.Draft(warden.ReceiptPhoenixLockStart, map[string]any{"principal": p.Name, "reason": reason,
			"lockdown_id": pseudo.ID, "actions": actions, "dry_run": g.core.Drill()}, "phoenix"))
		return err
	})
	if err != nil {
		return nil, err
	}
	results := g.incidents.RunActions(context.WithoutCancel(ctx), pol, actions, pseudo)
	err = g.core.Update(context.WithoutCancel(ctx), "governor.Lockdown", func(tx warden.Tx) error {
		_, err := tx.Append(g.core.Draft(warden.ReceiptPhoenixLock, map[string]any{"principal": p.Name, "reason": reason,
			"lockdown_id": pseudo.ID, "results": results, "dry_run": g.core.Drill(), "reversible": true}, "phoenix"))
		return err
	})
	if err != nil {
		return nil, err
	}
	ok := true
	for _, r := range results {
		ok = ok && r.Success
	}
	return &LockdownResult{Success: ok, LockdownID: pseudo.ID, Results: results, DryRun: g.core.Drill()}, nil
}

// RotateKey hands the ledger over to a new signing key (phoenix, human
// requester only): the caller's profile and credential are checked inside
// the hand-over's transaction. In drill mode nothing is rotated and the
// dry run is receipted, after the same checks.
func (g *Governor) RotateKey(ctx context.Context, p *warden.Principal) (*engine.RotateKeyResult, error) {
	const tool = "phoenix_rotate_key"
	return g.core.RotateKey(ctx, p, func(tx warden.Tx) error {
		if _, err := g.requireProfile(tx, p, tool, g.authority[tool]); err != nil {
			return err
		}
		return g.requireHuman(tx, p, tool)
	})
}
