package recorder

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"

	warden "github.com/warden-sh/warden"
	"github.com/warden-sh/warden/engine"
	"github.com/warden-sh/warden/ledger"
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
		return "", fmt.Errorf("recorder.PolicyDigest: %w", err)
	}
	sum := sha256.Sum256(c)
	return "sha256:" + hex.EncodeToString(sum[:]), nil
}

func (rec *Recorder) policyState() *policyState { return rec.policy.Load() }

// Policy returns the containment policy in force and its digest.
func (rec *Recorder) Policy() (*warden.ContainmentPolicy, string) {
	ps := rec.policyState()
	return ps.Policy, ps.Digest
}

// RecordPolicy receipts the policy in force (servers call it at start).
func (rec *Recorder) RecordPolicy(ctx context.Context, source string) error {
	ps := rec.policyState()
	return rec.core.Update(ctx, "recorder.RecordPolicy", func(tx warden.Tx) error {
		_, err := tx.Append(rec.core.Draft(warden.ReceiptPolicyLoaded, map[string]any{"digest": ps.Digest, "source": source, "policy": ps.Policy}, "containment-policy"))
		return err
	})
}

// ReloadPolicy re-reads the policy file and swaps it in. Both outcomes are
// receipted; an invalid file keeps the old policy and returns EINVALID
// naming the problem. Operators and admins only.
func (rec *Recorder) ReloadPolicy(ctx context.Context, p *warden.Principal) (string, error) {
	if err := engine.Authorize(p, "reload the containment policy", warden.RoleOperator); err != nil {
		return "", err
	}
	old := rec.policyState()
	if rec.loadPolicy == nil {
		return old.Digest, rec.core.Update(ctx, "recorder.ReloadPolicy", func(tx warden.Tx) error {
			_, err := tx.Append(rec.core.Draft(warden.ReceiptPolicyLoaded, map[string]any{"digest": old.Digest, "source": "built-in", "by": p.Name, "changed": false}, "containment-policy", "reload"))
			return err
		})
	}
	pol, err := rec.loadPolicy()
	var ps *policyState
	if err == nil {
		ps, err = newPolicyState(pol, "")
	}
	if err != nil {
		msg := warden.ErrorMessage(err)
		if warden.ErrorCode(err) == warden.EINTERNAL {
			msg = err.Error()
		}
		return "", rec.core.Update(ctx, "recorder.ReloadPolicy", func(tx warden.Tx) error {
			return rec.core.Deny(warden.ReceiptPolicyReloadFailed, map[string]any{"by": p.Name, "principal": p.Name, "kept_digest": old.Digest},
				warden.EINVALID, "Policy reload refused, the previous policy stays in force: %s", msg)
		})
	}
	err = rec.core.Update(ctx, "recorder.ReloadPolicy", func(tx warden.Tx) error {
		_, err := tx.Append(rec.core.Draft(warden.ReceiptPolicyLoaded, map[string]any{"digest": ps.Digest, "previous_digest": old.Digest, "by": p.Name, "changed": ps.Digest != old.Digest, "policy": ps.Policy},
			"containment-policy", "reload"))
		return err
	})
	if err != nil {
		return "", err
	}
	rec.policy.Store(ps)
	return ps.Digest, nil
}
