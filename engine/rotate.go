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

// ReceiptPhoenixRotateKey records a refused (drill) key rotation; a real one
// is the ledger.KeyRotationType hand-over receipt.
const ReceiptPhoenixRotateKey = "phoenix_rotate_key"

// KeyStore keeps the ledger signing keys across a rotation (datadir.Dir).
type KeyStore interface {
	// StageKey durably writes the next key beside the current one.
	StageKey(signer, verifier string) error
	// CommitKey makes the staged key current.
	CommitKey() error
	// AbandonKey discards a staged key.
	AbandonKey()
}

// RotateKey hands the ledger over to a new signing key (phoenix). In one
// transaction it appends a ledger_key_rotation receipt naming the new
// public key and a checkpoint covering it signed by BOTH keys, so anyone
// holding only the old public key can follow the log past the rotation.
// Then the new key becomes current. In drill mode it is refused as a dry
// run, receipted.
func (e *Engine) RotateKey(ctx context.Context, p *warden.Principal) (map[string]any, error) {
	if e.drill {
		err := e.store.Update(ctx, func(tx warden.Tx) error {
			_, err := tx.Append(e.draft(ReceiptPhoenixRotateKey, warden.ScrollSystem, map[string]any{"principal": p.Name, "dry_run": true,
				"reason": "drill mode: destructive phoenix operations are dry runs"}, "phoenix"))
			return err
		})
		return map[string]any{"success": true, "dry_run": true}, err
	}
	if e.keys == nil || e.signer == nil {
		return nil, fmt.Errorf("engine.RotateKey: no key store configured")
	}
	e.cpMu.Lock()
	defer e.cpMu.Unlock()
	oldSigner := e.signer
	keys, err := ledger.GenerateKeys(oldSigner.Name())
	if err != nil {
		return nil, err
	}
	newSigner, err := note.NewSigner(keys.Signer)
	if err != nil {
		return nil, err
	}
	if err := e.keys.StageKey(keys.Signer, keys.Verifier); err != nil {
		return nil, err
	}
	oldPub := e.currentPubkey()
	var cp *warden.Checkpoint
	err = e.update(ctx, func(tx warden.Tx) error {
		if _, err := e.requireProfile(tx, p, "phoenix_rotate_key", e.authority["phoenix_rotate_key"]); err != nil {
			return err
		}
		if _, err := tx.Append(e.draft(ledger.KeyRotationType, warden.ScrollSystem, map[string]any{
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
		return nil, fmt.Errorf("engine.RotateKey: %w", err)
	}
	// The hand-over is durable; a crash from here on is finished at the
	// next start (datadir's staged key matches a hand-over receipt).
	if err := e.keys.CommitKey(); err != nil {
		return nil, fmt.Errorf("engine.RotateKey: committing the new key: %w", err)
	}
	e.keyMu.Lock()
	e.signer = newSigner
	e.pubkey = strings.TrimSpace(e.pubkey) + "\n" + keys.Verifier
	if v, _, err := ledger.ParseVerifiers([]byte(e.pubkey)); err == nil {
		e.known = v
	}
	e.keyMu.Unlock()
	return map[string]any{"success": true, "old_pubkey": oldPub, "new_pubkey": keys.Verifier, "handover_checkpoint_size": cp.Size, "dry_run": false}, nil
}

// currentPubkey is the verifier key of the current signer: the last line of
// the public key text (oldest first).
func (e *Engine) currentPubkey() string {
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
		list, err := tx.Receipts(warden.ReceiptFilter{Type: ledger.KeyRotationType, Limit: warden.MaxPageSize, Descending: true})
		for _, r := range list {
			if strings.Contains(string(r.Body), pubkey) {
				found = true
			}
		}
		return err
	})
	return found, err
}

// keyState returns the current signer and trusted keys.
func (e *Engine) keyState() (note.Signer, note.Verifiers) {
	e.keyMu.RLock()
	defer e.keyMu.RUnlock()
	return e.signer, e.known
}
