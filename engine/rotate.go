package engine

import (
	"context"
	"fmt"
	"sort"
	"strings"

	warden "github.com/warden-sh/warden"
	"github.com/warden-sh/warden/ledger"
	"golang.org/x/mod/sumdb/note"
)

// RotateKeyResult is a key rotation's outcome.
type RotateKeyResult struct {
	Success bool `json:"success"`
	DryRun  bool `json:"dry_run"`
	// OldPubkey and NewPubkey are the signed-note verifier keys before and
	// after; empty for a dry run.
	OldPubkey string `json:"old_pubkey,omitempty"`
	NewPubkey string `json:"new_pubkey,omitempty"`
	// HandoverCheckpointSize is the size of the checkpoint signed by both
	// keys.
	HandoverCheckpointSize uint64 `json:"handover_checkpoint_size,omitempty"`
}

// RotateKey hands the ledger over to a new signing key on behalf of p. In
// one transaction it runs authorize (the caller's rule: who may rotate;
// its *Denial is receipted), appends a ledger_key_rotation receipt naming
// the new public key and stores a checkpoint covering it signed by BOTH
// keys, so anyone holding only the old public key can follow the log past
// the rotation. Then the new key becomes current. In drill mode nothing is
// rotated: after the same authorize, the dry run is receipted
// (phoenix_rotate_key).
func (e *Core) RotateKey(ctx context.Context, p *warden.Principal, authorize func(tx warden.Tx) error) (*RotateKeyResult, error) {
	if e.drill {
		err := e.Update(ctx, "engine.RotateKey", func(tx warden.Tx) error {
			if authorize != nil {
				if err := authorize(tx); err != nil {
					return err
				}
			}
			_, err := tx.Append(e.Draft(warden.ReceiptPhoenixRotateKey, map[string]any{"principal": p.Name, "dry_run": true,
				"reason": "drill mode: destructive phoenix operations are dry runs"}, "phoenix"))
			return err
		})
		if err != nil {
			return nil, err
		}
		return &RotateKeyResult{Success: true, DryRun: true}, nil
	}
	if e.keys == nil || e.signer == nil {
		return nil, fmt.Errorf("engine.RotateKey: no key store configured")
	}
	if e.signingPaused() {
		return nil, warden.Errorf(warden.EUNAVAILABLE, "The ledger key cannot be rotated while the startup check has not verified the log (see /health).")
	}
	e.cpMu.Lock()
	defer e.cpMu.Unlock()
	oldSigner := e.signer
	keys, err := ledger.GenerateKeys(oldSigner.Name())
	if err != nil {
		return nil, named("engine.RotateKey", err)
	}
	newSigner, err := note.NewSigner(keys.Signer)
	if err != nil {
		return nil, named("engine.RotateKey", err)
	}
	if err := e.keys.StageKey(keys.Signer, keys.Verifier); err != nil {
		return nil, named("engine.RotateKey: staging the key", err)
	}
	oldPub := e.currentPubkey()
	var cp *warden.Checkpoint
	err = e.Update(ctx, "engine.RotateKey", func(tx warden.Tx) error {
		if authorize != nil {
			if err := authorize(tx); err != nil {
				return err
			}
		}
		if _, err := tx.Append(e.Draft(warden.ReceiptKeyRotation, map[string]any{
			"old_pubkey": oldPub, "new_pubkey": keys.Verifier, "principal": p.Name, "reversible": false,
		}, "phoenix", "key-rotation")); err != nil {
			return err
		}
		head, err := tx.Head()
		if err != nil {
			return err
		}
		body := checkpointBody(oldSigner.Name(), head)
		msg, err := note.Sign(&note.Note{Text: body.Text()}, oldSigner, newSigner)
		if err != nil {
			return err
		}
		cp = &warden.Checkpoint{Size: head.Size, RootHash: head.RootHash, Note: string(msg), CreatedAt: e.now()}
		return tx.PutCheckpoint(cp)
	})
	if err != nil {
		e.keys.AbandonKey()
		return nil, err
	}
	// The hand-over is durable; a crash from here on is finished at the
	// next start (datadir's staged key matches a hand-over receipt).
	if err := e.keys.CommitKey(); err != nil {
		return nil, named("engine.RotateKey: committing the new key", err)
	}
	e.keyMu.Lock()
	e.signer = newSigner
	e.pubkey = strings.TrimSpace(e.pubkey) + "\n" + keys.Verifier
	if v, _, err := ledger.ParseVerifiers([]byte(e.pubkey)); err == nil {
		e.known = v
	}
	e.keyMu.Unlock()
	return &RotateKeyResult{Success: true, OldPubkey: oldPub, NewPubkey: keys.Verifier, HandoverCheckpointSize: cp.Size}, nil
}

// currentPubkey is the verifier key of the current signer: the last line of
// the public key text (oldest first).
func (e *Core) currentPubkey() string {
	e.keyMu.RLock()
	defer e.keyMu.RUnlock()
	lines := strings.Split(strings.TrimSpace(e.pubkey), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}

// checkpointBody builds the checkpoint text for a head.
func checkpointBody(origin string, head *warden.LogHead) *ledger.CheckpointBody {
	body := &ledger.CheckpointBody{Origin: origin, Size: head.Size, Root: head.RootHash}
	names := make([]string, 0, len(head.Scrolls))
	for name := range head.Scrolls {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		s := head.Scrolls[name]
		body.Scrolls = append(body.Scrolls, ledger.ScrollRoot{Name: name, Size: s.Size, Root: s.RootHash})
	}
	return body
}

// HandedOverTo reports whether the log holds a hand-over to pubkey; a
// server finds a staged key with it after a crash mid-rotation.
func HandedOverTo(ctx context.Context, s warden.Store, pubkey string) (bool, error) {
	found := false
	err := s.View(ctx, func(tx warden.ReadTx) error {
		list, err := tx.Receipts(warden.ReceiptFilter{Type: warden.ReceiptKeyRotation, Limit: warden.MaxPageSize, Descending: true})
		for _, r := range list {
			if strings.Contains(string(r.Body), pubkey) {
				found = true
			}
		}
		return err
	})
	return found, err
}

// KeyState returns the current signer and the trusted keys (every key
// the log was ever signed with, after rotations).
func (e *Core) KeyState() (note.Signer, note.Verifiers) {
	e.keyMu.RLock()
	defer e.keyMu.RUnlock()
	return e.signer, e.known
}
