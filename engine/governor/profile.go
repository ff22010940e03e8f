package governor

import (
	"context"
	"time"

	warden "github.com/warden-sh/warden"
)

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
func (g *Governor) requireProfile(tx warden.Tx, p *warden.Principal, tool string, min warden.Profile) (warden.Profile, error) {
	prof, _, err := currentProfile(tx, p.Name, g.core.Now())
	if err != nil {
		return "", err
	}
	if prof.Rank() < min.Rank() {
		return prof, g.core.Deny(warden.ReceiptAuthFailure, map[string]any{"tool": tool, "principal": p.Name,
			"profile": prof, "required": min}, warden.EDENIED, "Tool %s requires profile %s or above; %s is %s.", tool, min, p.Name, prof)
	}
	return prof, nil
}

// CurrentProfile returns a subject's current profile.
func (g *Governor) CurrentProfile(ctx context.Context, subject string) (warden.Profile, error) {
	var p warden.Profile
	err := g.core.View(ctx, "governor.CurrentProfile", func(tx warden.ReadTx) (err error) {
		p, _, err = currentProfile(tx, subject, g.core.Now())
		return err
	})
	return p, err
}
