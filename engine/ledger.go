package engine

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"

	warden "github.com/warden-sh/warden"
	"github.com/warden-sh/warden/ledger"
)

// Checkpoint signs and stores a checkpoint of the current log if it grew
// since the latest one, and returns the latest checkpoint either way
// (nil when the log is empty and none exists). It runs inside one store
// transaction, so the size, root and scroll roots it signs are one snapshot.
func (e *Core) Checkpoint(ctx context.Context) (*warden.Checkpoint, error) {
	e.cpMu.Lock() // also held by RotateKey while it swaps the signer
	defer e.cpMu.Unlock()
	if e.signer == nil {
		return nil, fmt.Errorf("engine.Checkpoint: no signing key")
	}
	if e.signingPaused() {
		// Never sign over a log not yet verified, or found tampered.
		var out *warden.Checkpoint
		err := e.View(ctx, "engine.Checkpoint", func(tx warden.ReadTx) (err error) {
			out, err = tx.LatestCheckpoint()
			if warden.ErrorCode(err) == warden.ENOTFOUND {
				return nil
			}
			return err
		})
		return out, err
	}
	var out *warden.Checkpoint
	signed := false
	err := e.Update(ctx, "engine.Checkpoint", func(tx warden.Tx) error {
		head, err := tx.Head()
		if err != nil {
			return err
		}
		latest, err := tx.LatestCheckpoint()
		if err != nil && warden.ErrorCode(err) != warden.ENOTFOUND {
			return err
		}
		if latest != nil && latest.Size >= head.Size {
			out = latest
			return nil
		}
		if head.Size == 0 {
			return nil
		}
		body := checkpointBody(e.signer.Name(), head)
		msg, err := ledger.SignCheckpoint(body, e.signer)
		if err != nil {
			return err
		}
		out = &warden.Checkpoint{Size: head.Size, RootHash: head.RootHash, Note: string(msg), CreatedAt: e.now()}
		signed = true
		return tx.PutCheckpoint(out)
	})
	if err != nil {
		return nil, err
	}
	if signed && e.metrics != nil {
		e.metrics.Checkpoints.Inc()
		e.metrics.LogSize.Set(float64(out.Size))
	}
	return out, nil
}

// LatestCheckpoint returns the newest signed checkpoint, or ENOTFOUND.
func (e *Core) LatestCheckpoint(ctx context.Context) (*warden.Checkpoint, error) {
	var c *warden.Checkpoint
	err := e.View(ctx, "engine.LatestCheckpoint", func(tx warden.ReadTx) (err error) {
		c, err = tx.LatestCheckpoint()
		return err
	})
	if warden.ErrorCode(err) == warden.ENOTFOUND {
		return nil, warden.Errorf(warden.ENOTFOUND, "No checkpoint has been signed yet.")
	}
	return c, err
}

// PublicKey returns the ledger's signed-note verifier keys, one per line,
// oldest first (more than one after a key rotation).
func (e *Core) PublicKey() string {
	e.keyMu.RLock()
	defer e.keyMu.RUnlock()
	return e.pubkey
}

// Receipts lists receipts matching f.
func (e *Core) Receipts(ctx context.Context, f warden.ReceiptFilter) ([]*warden.Receipt, error) {
	if f.Scroll != "" && !warden.ValidScroll(f.Scroll) {
		return nil, warden.Errorf(warden.EINVALID, "Unknown scroll %q.", f.Scroll)
	}
	if f.Limit < 0 || f.Limit > warden.MaxPageSize {
		return nil, warden.Errorf(warden.EINVALID, "limit must be between 1 and %d.", warden.MaxPageSize)
	}
	var out []*warden.Receipt
	err := e.View(ctx, "engine.Receipts", func(tx warden.ReadTx) (err error) {
		out, err = tx.Receipts(f)
		return err
	})
	if out == nil {
		out = []*warden.Receipt{}
	}
	return out, err
}

// ReceiptPage is a page of the receipt listing; the cursor is the last
// receipt's seq (the next page's after, or before when descending).
type ReceiptPage = warden.Page[*warden.Receipt, uint64]

// ListReceipts returns a page of the receipts matching f: at most f.Limit
// (1 to warden.MaxPageSize), the next page's cursor if another receipt
// matches beyond this page, and how many receipts match f's Scroll, Type
// and Tag (After and Before bound the page, not the count), from one
// snapshot. The count comes from the log's head without a filter or with
// Scroll alone; with Type it is counted over an index (the cost grows with
// the receipts of that type); with Tag it is not given (nil), since
// counting would read every receipt.
func (e *Core) ListReceipts(ctx context.Context, f warden.ReceiptFilter) (*ReceiptPage, error) {
	if f.Scroll != "" && !warden.ValidScroll(f.Scroll) {
		return nil, warden.Errorf(warden.EINVALID, "Unknown scroll %q.", f.Scroll)
	}
	if err := warden.CheckPageLimit(f.Limit); err != nil {
		return nil, err
	}
	limit := f.Limit
	page := &ReceiptPage{}
	err := e.View(ctx, "engine.ListReceipts", func(tx warden.ReadTx) error {
		switch {
		case f.Type == "" && f.Tag == "":
			head, err := tx.Head()
			if err != nil {
				return err
			}
			n := int64(head.Size)
			if f.Scroll != "" {
				n = int64(head.Scrolls[f.Scroll].Size)
			}
			page.Total = &n
		case f.Type != "":
			n, err := tx.CountReceipts(f)
			if err != nil {
				return err
			}
			total := int64(n)
			page.Total = &total
		}
		// One more says whether a next page exists; the store pages at
		// most MaxPageSize, so a full page of that size asks once more.
		g := f
		g.Limit = min(limit+1, warden.MaxPageSize)
		list, err := tx.Receipts(g)
		if err != nil {
			return err
		}
		if len(list) == limit && limit == warden.MaxPageSize {
			last := list[limit-1].Seq
			if f.Descending {
				g.Before = &last
			} else {
				g.After = &last
			}
			g.Limit = 1
			more, err := tx.Receipts(g)
			if err != nil {
				return err
			}
			list = append(list, more...)
		}
		page.Items = list
		return nil
	})
	if err != nil {
		return nil, err
	}
	if page.Items == nil {
		page.Items = []*warden.Receipt{}
	}
	if len(page.Items) > limit {
		page.Items = page.Items[:limit]
		next := page.Items[limit-1].Seq
		page.Next = &next
	}
	return page, nil
}

// InclusionProof proves a receipt's place in the log under a checkpoint.
type InclusionProof struct {
	LeafIndex  uint64   `json:"leaf_index"`
	TreeSize   uint64   `json:"tree_size"`
	Hashes     [][]byte `json:"hashes"` // base64 in JSON
	Checkpoint string   `json:"checkpoint"`
}

// ReceiptProof is a receipt with its inclusion proof against the latest
// checkpoint; Proof is nil while the receipt is newer than every checkpoint.
type ReceiptProof struct {
	Receipt  *warden.Receipt `json:"receipt"`
	Anchored bool            `json:"anchored"`
	Proof    *InclusionProof `json:"proof"`
}

// Receipt returns receipt seq with its inclusion proof. ENOTFOUND if absent.
func (e *Core) Receipt(ctx context.Context, seq uint64) (*ReceiptProof, error) {
	var out ReceiptProof
	err := e.View(ctx, "engine.Receipt", func(tx warden.ReadTx) error {
		r, err := tx.Receipt(seq)
		if err != nil {
			return err
		}
		out.Receipt = r
		cp, err := tx.LatestCheckpoint()
		if warden.ErrorCode(err) == warden.ENOTFOUND || (err == nil && cp.Size <= seq) {
			return nil
		} else if err != nil {
			return err
		}
		hashes, err := ledger.InclusionProof(seq, cp.Size, tx.MerkleHashes)
		if err != nil {
			return err
		}
		out.Anchored = true
		out.Proof = &InclusionProof{LeafIndex: seq, TreeSize: cp.Size, Hashes: nonNil(hashes), Checkpoint: cp.Note}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// ConsistencyProof proves that the log at size To extends the log at From.
type ConsistencyProof struct {
	From     uint64   `json:"from"`
	To       uint64   `json:"to"`
	FromRoot []byte   `json:"from_root"`
	ToRoot   []byte   `json:"to_root"`
	Hashes   [][]byte `json:"hashes"`
}

// Consistency returns the consistency proof between two sizes ≤ the log's
// current size. EINVALID unless from ≤ to ≤ size.
func (e *Core) Consistency(ctx context.Context, from, to uint64) (*ConsistencyProof, error) {
	var out *ConsistencyProof
	err := e.View(ctx, "engine.Consistency", func(tx warden.ReadTx) error {
		head, err := tx.Head()
		if err != nil {
			return err
		}
		if from > to || to > head.Size {
			return warden.Errorf(warden.EINVALID, "Consistency needs 0 <= from <= to <= %d (the log size); got from=%d to=%d.", head.Size, from, to)
		}
		hashes, err := ledger.ConsistencyProof(from, to, tx.MerkleHashes)
		if err != nil {
			return err
		}
		r1, err := ledger.RootAt(from, tx.MerkleHashes)
		if err != nil {
			return err
		}
		r2, err := ledger.RootAt(to, tx.MerkleHashes)
		if err != nil {
			return err
		}
		out = &ConsistencyProof{From: from, To: to, FromRoot: r1, ToRoot: r2, Hashes: nonNil(hashes)}
		return nil
	})
	return out, err
}

func nonNil(h [][]byte) [][]byte {
	if h == nil {
		return [][]byte{}
	}
	return h
}

// ExportHeader is the first line of a receipt export.
type ExportHeader struct {
	Format     string `json:"format"`
	Origin     string `json:"origin"`
	PublicKey  string `json:"pubkey"`
	ExportedAt string `json:"exported_at"`
}

// ExportFormat names the export layout: a header line, one
// {"checkpoint": note} line per checkpoint in size order, then one receipt
// per line in seq order.
const ExportFormat = "warden-receipts/v1"

// ExportLine is one line of an export after the header: a checkpoint or a
// receipt (exactly one is set).
type ExportLine struct {
	Checkpoint string `json:"checkpoint,omitempty"`
}

// Export writes the whole log as JSON Lines from one snapshot, in bounded
// memory: header, every signed checkpoint, then every receipt.
func (e *Core) Export(ctx context.Context, w io.Writer, origin string) error {
	bw := bufio.NewWriterSize(w, 1<<16)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false)
	err := e.View(ctx, "engine.Export", func(tx warden.ReadTx) error {
		if err := enc.Encode(ExportHeader{Format: ExportFormat, Origin: origin, PublicKey: e.PublicKey(), ExportedAt: warden.FormatTime(e.now())}); err != nil {
			return err
		}
		if err := tx.Checkpoints(func(c *warden.Checkpoint) error {
			return enc.Encode(ExportLine{Checkpoint: c.Note})
		}); err != nil {
			return err
		}
		return tx.ScanReceipts(0, func(r *warden.Receipt) error { return enc.Encode(r) })
	})
	if err != nil {
		return err
	}
	return bw.Flush()
}
