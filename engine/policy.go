package engine

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"

	warden "github.com/warden-sh/warden"
	"github.com/warden-sh/warden/ledger"
)

// Policy receipt types, in the policy scroll.
const (
	ReceiptPolicyLoaded       = "policy_loaded"
	ReceiptPolicyReloadFailed = "policy_reload_failed"
)

// policyState is an immutable loaded policy; reloads swap it atomically so
// a request sees one policy from start to end.
type policyState struct {
	Policy *warden.ContainmentPolicy
	Digest string
}

func newPolicyState(p *warden.ContainmentPolicy, digest string) (*policyState, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	if digest == "" {
		var err error
		if digest, err = PolicyDigest(p); err != nil {
			return nil, err
		}
	}
	return &policyState{Policy: p, Digest: digest}, nil
}

// PolicyDigest is "sha256:" + hex SHA-256 of the policy's canonical JSON.
func PolicyDigest(p *warden.ContainmentPolicy) (string, error) {
	c, err := ledger.Canonical(p)
	if err != nil {
		return "", fmt.Errorf("engine.PolicyDigest: %w", err)
	}
	sum := sha256.Sum256(c)
	return "sha256:" + hex.EncodeToString(sum[:]), nil
}

func (e *Engine) policyState() *policyState { return e.policy.Load() }

// Policy returns the containment policy in force and its digest.
func (e *Engine) Policy() (*warden.ContainmentPolicy, string) {
	ps := e.policyState()
	return ps.Policy, ps.Digest
}

// RecordPolicy receipts the policy in force (servers call it at start).
func (e *Engine) RecordPolicy(ctx context.Context, source string) error {
	ps := e.policyState()
	return e.store.Update(ctx, func(tx warden.Tx) error {
		_, err := tx.Append(e.draft(ReceiptPolicyLoaded, warden.ScrollPolicy,
			map[string]any{"digest": ps.Digest, "source": source, "policy": ps.Policy}, "containment-policy"))
		return err
	})
}

// ReloadPolicy re-reads the policy file and swaps it in. Both outcomes are
// receipted; an invalid file keeps the old policy and returns EINVALID
// naming the problem. Operators and admins only.
func (e *Engine) ReloadPolicy(ctx context.Context, p *warden.Principal) (string, error) {
	if err := Authorize(p, "reload the containment policy", warden.RoleOperator); err != nil {
		return "", err
	}
	old := e.policyState()
	if e.loadPolicy == nil {
		return old.Digest, e.update(ctx, func(tx warden.Tx) error {
			_, err := tx.Append(e.draft(ReceiptPolicyLoaded, warden.ScrollPolicy,
				map[string]any{"digest": old.Digest, "source": "built-in", "by": p.Name, "changed": false}, "containment-policy", "reload"))
			return err
		})
	}
	pol, err := e.loadPolicy()
	var ps *policyState
	if err == nil {
		ps, err = newPolicyState(pol, "")
	}
	if err != nil {
		msg := warden.ErrorMessage(err)
		if warden.ErrorCode(err) == warden.EINTERNAL {
			msg = err.Error()
		}
		return "", e.update(ctx, func(tx warden.Tx) error {
			return e.deny(ReceiptPolicyReloadFailed, warden.ScrollPolicy, map[string]any{"by": p.Name, "kept_digest": old.Digest},
				warden.EINVALID, "Policy reload refused, the previous policy stays in force: %s", msg)
		})
	}
	err = e.update(ctx, func(tx warden.Tx) error {
		_, err := tx.Append(e.draft(ReceiptPolicyLoaded, warden.ScrollPolicy,
			map[string]any{"digest": ps.Digest, "previous_digest": old.Digest, "by": p.Name, "changed": ps.Digest != old.Digest, "policy": ps.Policy},
			"containment-policy", "reload"))
		return err
	})
	if err != nil {
		return "", err
	}
	e.policy.Store(ps)
	return ps.Digest, nil
}
