package governor

import (
	warden "github.com/warden-sh/warden"
)

// activeHuman reports whether name is an active credential an admin marked
// human, read inside the caller's transaction: a principal without a
// credential (the --dev principal, a test's bare principal) is not human,
// and neither is one revoked or unmarked since it authenticated.
func activeHuman(tx warden.ReadTx, name string) (bool, error) {
	c, err := tx.Credential(name)
	if warden.ErrorCode(err) == warden.ENOTFOUND {
		return false, nil
	} else if err != nil {
		return false, err
	}
	return c.IsActiveHuman(), nil
}

// requireHuman refuses, with an auth_failure receipt, a tool call whose
// caller is not an active human credential: the phoenix operations that
// cannot be undone (key rotation, mass revocation) are not an agent's to
// run, whatever profile it reached.
func (g *Governor) requireHuman(tx warden.Tx, p *warden.Principal, tool string) error {
	ok, err := activeHuman(tx, p.Name)
	if err != nil || ok {
		return err
	}
	return g.core.Deny(warden.ReceiptAuthFailure, map[string]any{"tool": tool, "principal": p.Name, "required": "human"},
		warden.EDENIED, "Tool %s requires a human requester: %s is not a credential an admin marked human.", tool, p.Name)
}
