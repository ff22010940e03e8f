package engine

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"runtime"

	warden "github.com/warden-sh/warden"
	"github.com/warden-sh/warden/ledger"
)

// Checkpoint signs and stores a checkpoint of the current log if it grew
// since the latest one, and returns the latest checkpoint either way
// (nil when the log is empty and none exists). It runs inside one store
// transaction, so the size, root and scroll roots it signs are one snapshot.
func (e *Engine) Checkpoint(ctx context.Context) (*warden.Checkpoint, error) {
	e.cpMu.Lock() // also held by RotateKey while it swaps the signer
	defer e.cpMu.Unlock()
	if e.signer == nil {
		return nil, fmt.Errorf("engine.Checkpoint: no signing key")
	}
	var out *warden.Checkpoint
	signed := false
	err := e.store.Update(ctx, func(tx warden.Tx) error {
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
		return nil, fmt.Errorf("engine.Checkpoint: %w", err)
	}
	if signed && e.metrics != nil {
		e.metrics.Checkpoints.Inc()
		e.metrics.LogSize.Set(float64(out.Size))
	}
	return out, nil
}

// LatestCheckpoint returns the newest signed checkpoint, or ENOTFOUND.
func (e *Engine) LatestCheckpoint(ctx context.Context) (*warden.Checkpoint, error) {
	var c *warden.Checkpoint
	err := e.store.View(ctx, func(tx warden.ReadTx) (err error) {
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
func (e *Engine) PublicKey() string {
	e.keyMu.RLock()
	defer e.keyMu.RUnlock()
	return e.pubkey
}

// Receipts lists receipts matching f.
func (e *Engine) Receipts(ctx context.Context, f warden.ReceiptFilter) ([]*warden.Receipt, error) {
	if f.Scroll != "" && !warden.ValidScroll(f.Scroll) {
		return nil, warden.Errorf(warden.EINVALID, "Unknown scroll %q.", f.Scroll)
	}
	if f.Limit < 0 || f.Limit > warden.MaxPageSize {
		return nil, warden.Errorf(warden.EINVALID, "limit must be between 1 and %d.", warden.MaxPageSize)
	}
	var out []*warden.Receipt
	err := e.store.View(ctx, func(tx warden.ReadTx) (err error) {
		out, err = tx.Receipts(f)
		return err
	})
	if out == nil {
		out = []*warden.Receipt{}
	}
	return out, err
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
func (e *Engine) Receipt(ctx context.Context, seq uint64) (*ReceiptProof, error) {
	var out ReceiptProof
	err := e.store.View(ctx, func(tx warden.ReadTx) error {
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
func (e *Engine) Consistency(ctx context.Context, from, to uint64) (*ConsistencyProof, error) {
	var out *ConsistencyProof
	err := e.store.View(ctx, func(tx warden.ReadTx) error {
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
func (e *Engine) Export(ctx context.Context, w io.Writer, origin string) error {
	bw := bufio.NewWriterSize(w, 1<<16)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false)
	err := e.store.View(ctx, func(tx warden.ReadTx) error {
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
		return fmt.Errorf("engine.Export: %w", err)
	}
	return bw.Flush()
}

// verifyChunk is how many receipts one reader scans at a time.
const verifyChunk = 16384

// VerifyStore verifies the whole log in the store against its signed
// checkpoints, using every core: readers scan disjoint seq ranges in
// parallel (receipts below the head are immutable, so separate snapshots
// agree on them), checkers re-hash in parallel, and the Merkle rebuild
// consumes them in order. Memory is bounded by the chunks in flight. It
// returns a *ledger.VerifyError naming the first bad sequence number, or
// the summary.
func VerifyStore(ctx context.Context, s warden.Store, v *ledger.Verifier) (*ledger.Summary, error) {
	var size uint64
	err := s.View(ctx, func(tx warden.ReadTx) error {
		if err := tx.Checkpoints(func(c *warden.Checkpoint) error {
			return v.AddCheckpoint([]byte(c.Note))
		}); err != nil {
			return err
		}
		// The scan covers every stored row, whatever the head claims, so
		// a row inserted past the head is still seen.
		h, err := tx.Head()
		if err != nil {
			return err
		}
		size = h.Size
		return nil
	})
	if err != nil {
		return nil, err
	}
	workers := runtime.GOMAXPROCS(0)
	p := v.Pipeline(workers)
	type chunk struct {
		recs []*warden.Receipt
		err  error
	}
	nchunks := int(size/verifyChunk) + 1 // the last one also reads past the head
	results := make([]chan chunk, nchunks)
	for i := range results {
		results[i] = make(chan chunk, 1)
	}
	sem := make(chan struct{}, workers+1) // chunks in flight
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		for i := 0; i < nchunks; i++ {
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				return
			}
			go func(i int) {
				from := uint64(i) * verifyChunk
				last := i == nchunks-1
				var c chunk
				c.err = s.View(ctx, func(tx warden.ReadTx) error {
					return tx.ScanReceipts(from, func(r *warden.Receipt) error {
						if !last && r.Seq >= from+verifyChunk {
							return errStop
						}
						c.recs = append(c.recs, r)
						return nil
					})
				})
				if c.err == errStop {
					c.err = nil
				}
				results[i] <- c
			}(i)
		}
	}()
	var scanErr error
	for i := 0; i < nchunks && scanErr == nil; i++ {
		var c chunk
		select {
		case c = <-results[i]:
		case <-ctx.Done():
			scanErr = ctx.Err()
			continue
		}
		<-sem
		if c.err != nil {
			scanErr = c.err
			break
		}
		for _, r := range c.recs {
			if err := p.Push(r); err != nil {
				break
			}
		}
	}
	cancel()
	if err := p.Close(); err != nil {
		return nil, err
	}
	if scanErr != nil {
		return nil, scanErr
	}
	return v.Finish()
}

// VerifyExport verifies an export read from r.
func VerifyExport(r io.Reader, v *ledger.Verifier) (*ledger.Summary, *ExportHeader, error) {
	dec := json.NewDecoder(bufio.NewReaderSize(r, 1<<16))
	var hdr ExportHeader
	if err := dec.Decode(&hdr); err != nil {
		return nil, nil, fmt.Errorf("export header: %w", err)
	}
	if hdr.Format != ExportFormat {
		return nil, nil, fmt.Errorf("export format %q is not %q", hdr.Format, ExportFormat)
	}
	p := v.Pipeline(runtime.GOMAXPROCS(0))
	line := 1
	seenReceipt := false
	for {
		var raw json.RawMessage
		if err := dec.Decode(&raw); err == io.EOF {
			break
		} else if err != nil {
			p.Close()
			return nil, &hdr, fmt.Errorf("export line %d: %w", line+1, err)
		}
		line++
		var probe struct {
			Checkpoint *string `json:"checkpoint"`
		}
		if err := json.Unmarshal(raw, &probe); err != nil {
			p.Close()
			return nil, &hdr, fmt.Errorf("export line %d: %w", line, err)
		}
		if probe.Checkpoint != nil {
			if seenReceipt {
				p.Close()
				return nil, &hdr, fmt.Errorf("export line %d: checkpoint after the first receipt; checkpoints come first", line)
			}
			if err := v.AddCheckpoint([]byte(*probe.Checkpoint)); err != nil {
				p.Close()
				return nil, &hdr, err
			}
			continue
		}
		seenReceipt = true
		rec := new(warden.Receipt)
		if err := decodeStrict(raw, rec); err != nil {
			p.Close()
			return nil, &hdr, fmt.Errorf("export line %d is not a receipt: %w", line, err)
		}
		if err := p.Push(rec); err != nil {
			break
		}
	}
	if err := p.Close(); err != nil {
		return nil, &hdr, err
	}
	s, err := v.Finish()
	return s, &hdr, err
}

func decodeStrict(raw []byte, v any) error {
	dec := json.NewDecoder(bytesReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return fmt.Errorf("trailing data")
	}
	return nil
}
